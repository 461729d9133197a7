-- The exact bytes an attestation signs (XEP "Signing Input"; reference/trustpath/core/signing.py):
-- a NUL-separated list of (name, value) fields of the message and the attestation, so that the
-- signature survives the stanza's namespace changing at the s2s hop and servers adding elements.
local M = ...;
local NS = M.NS;

local NUL = "\0";
-- The attributes the XEP defines, in Unicode code point order.  Decoding rejects any
-- other attribute, so sorting the present ones is the same as walking these lists.
M.ATTESTATION_ORDER = { "alg", "for", "prev-key", "signer", "stored", "time" };
M.VIEW_ORDER = { "cb", "chain", "chain-reason", "cipher", "key-source", "method", "peer",
	"reason", "removed", "result", "side", "spki", "tls" };
local ATTESTATION_FIELD = { alg = "alg", ["for"] = "for_id", ["prev-key"] = "prev_key", signer = "signer",
	stored = "stored", time = "time" };

local ATTESTATION_ORDER, VIEW_ORDER = M.ATTESTATION_ORDER, M.VIEW_ORDER;

-- The signing input is built in one scratch buffer (Lua is single-threaded and nothing here
-- yields) and concatenated once: a server builds several per message, and every temporary
-- string or table is work for the garbage collector.
local buf = {};
local t_concat = table.concat;

local TEXT_GROUPS = { { "body", "bodies" }, { "subject", "subjects" }, { "thread", "threads" } };

-- The message part of the signing input; the same for every attestation of a message.
function M.message_prefix(fields)
	buf[1], buf[2], buf[3], buf[4], buf[5], buf[6], buf[7] = NS, NUL, "from", NUL, fields.sender, NUL, "to";
	buf[8], buf[9], buf[10], buf[11], buf[12], buf[13], buf[14] = NUL, fields.to, NUL, "type", NUL, fields.type, NUL;
	local n = 14;
	for _, group in ipairs(TEXT_GROUPS) do
		for _, item in ipairs(fields[group[2]]) do
			buf[n + 1] = group[1];
			if item.lang then buf[n + 2], buf[n + 3] = "@", item.lang; else buf[n + 2], buf[n + 3] = "", ""; end
			buf[n + 4], buf[n + 5], buf[n + 6] = NUL, item.text, NUL;
			n = n + 6;
		end
	end
	if fields.require then
		buf[n + 1], buf[n + 2], buf[n + 3], buf[n + 4] = "require", NUL, fields.require, NUL;
		n = n + 4;
	end
	local report = fields.report;
	if report then
		for p = 1, #report do
			local prefix, attrs = "hop.", report[p];
			if p == 1 then
				prefix = "report.";
			else
				buf[n + 1], buf[n + 2], buf[n + 3], buf[n + 4] = "hop", NUL, tostring(p - 1), NUL;
				n = n + 4;
			end
			for i = 1, #attrs, 2 do
				buf[n + 1], buf[n + 2], buf[n + 3], buf[n + 4], buf[n + 5] = prefix, attrs[i], NUL, attrs[i + 1], NUL;
				n = n + 5;
			end
		end
	end
	return t_concat(buf, "", 1, n);
end

-- The signing input part of a view ("in." or "out." fields) is appended to buf after
-- position n; returns the new end.  A server signs the same view tables for every message of
-- a session: M.reuse_view() marks such a table (which must not change afterwards), and its
-- encoding is then computed once.
local view_encodings = { ["in."] = setmetatable({}, { __mode = "k" }), ["out."] = setmetatable({}, { __mode = "k" }) };
local reusable = setmetatable({}, { __mode = "k" });
function M.reuse_view(view) reusable[view] = true; return view; end
local function append_view(n, prefix, view)
	local cache = view_encodings[prefix];
	local encoded = cache[view];
	if encoded then buf[n + 1] = encoded; return n + 1; end
	local start = n;
	for _, name in ipairs(VIEW_ORDER) do
		local value = view[name];
		if value ~= nil then
			buf[n + 1], buf[n + 2], buf[n + 3], buf[n + 4], buf[n + 5] = prefix, name, NUL, tostring(value), NUL;
			n = n + 5;
		end
	end
	if reusable[view] then
		encoded = t_concat(buf, "", start + 1, n);
		cache[view] = encoded;
		buf[start + 1] = encoded;
		return start + 1;
	end
	return n;
end
function M.view_input(prefix, view)
	return t_concat(buf, "", 1, append_view(0, prefix, view));
end

-- The bytes `att` signs, given the message prefix and the previous attestation's sig ("" for
-- the first).  `att.sig` is ignored.
function M.fields_input(prefix, prev_sig, att)
	buf[1], buf[2], buf[3], buf[4], buf[5] = prefix, "prev", NUL, prev_sig, NUL;
	local n = 5;
	for _, name in ipairs(ATTESTATION_ORDER) do
		local value = att[ATTESTATION_FIELD[name]];
		if value ~= nil then
			buf[n + 1], buf[n + 2], buf[n + 3], buf[n + 4], buf[n + 5] = "attestation.", name, NUL, value, NUL;
			n = n + 5;
		end
	end
	if att.in_view then n = append_view(n, "in.", att.in_view); end
	if att.out_view then n = append_view(n, "out.", att.out_view); end
	return t_concat(buf, "", 1, n);
end

function M.signing_input(fields, prev_sig, att, prefix)
	return M.fields_input(prefix or M.message_prefix(fields), prev_sig, att);
end
