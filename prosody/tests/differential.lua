-- The Lua core as a line-oriented service for the differential test (tests/test_differential.py):
-- one JSON request per line on stdin, one JSON answer per line on stdout.  The Python test sends
-- the same generated stanzas to the Python core and compares every answer.
--
--   {"op": "decode", "stanza": "<message .../>"}
--       -> {"records": [...], "fields": {...}, "signing_inputs": [base64, ...]}  or  {"refused", "limit"}
--   {"op": "filter", "stanza", "session_key"}            -> filter_client_path()'s decision
--   {"op": "receive", "stanza", "origin", "takes_part", "keys", "key_source"} -> receive_chain()'s
--   {"op": "attest", "stanza", "seed_hex", "record": {...}} -> {"text": the new record} or {"refused"}
--   {"op": "client_hop", "verdict", "server_view", "client_view", "missing"} -> client_hop_problem()'s
--       {"method", "reason"} (null: the hop meets the requirement)
--   {"op": "txt", "texts", "domain"}     -> read_txt_records()'s keys, or {"refused"}
--   {"op": "posh", "document" (JSON text), "domain"} -> read_posh_document()'s keys and expires
local setup = dofile((debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".") .. "/setup.lua");
local core, value = setup.core, setup.value;
local json = require "util.json";
local xml = require "util.xml";
local base64 = require "util.encodings".base64;

local array_mt = getmetatable(require "util.array"());
local function array(t) return setmetatable(t, array_mt); end
local null = json.null;
local function n(v) if v == nil then return null; end return v; end
local function unhex(s) return (s:gsub("..", function (h) return string.char(tonumber(h, 16)); end)); end

local function parse(text) return assert(xml.parse(text), "not well-formed"); end

-- What a record says, in the shape the Python test writes the reference's records in.
local function summary(a)
	local extra = {};
	for i, pair in ipairs(a.extra) do extra[i] = array { pair[1], pair[2] }; end
	return { text = a.text, signer = n(a.signer), key = a.key, time = n(a.time), alg = n(a.alg),
		in_view = a.in_view and core.view_text(a.in_view) or null, out_view = core.view_text(a.out_view),
		in_peer = n(a.in_peer), out_peer = n(a.out_peer), chain = n(a.chain), chain_reason = n(a.chain_reason),
		vouch = n(a.vouch), removed = n(a.removed), stored = n(a.stored),
		covers = a.covers and array(a.covers) or null, extra = array(extra) };
end

-- decode_path, then message_fields with the qualified payloads the records cover (the order
-- of the reference's receive.verify_stanza).
local function decode(message)
	local atts = core.decode_path(message) or {};
	local extra = {};
	for _, a in ipairs(atts) do
		for _, token in ipairs(a.covers or {}) do if token:sub(1, 1) == "{" then extra[token] = true; end end
	end
	return atts, core.message_fields(message, extra);
end

local OPS = {};
function OPS.decode(req)
	local atts, fields = decode(parse(req.stanza));
	local records, inputs, texts = {}, {}, {};
	for i, a in ipairs(atts) do
		records[i] = summary(a);
		inputs[i] = base64.encode(core.signing_input(fields, table.concat(texts, " "), core.unsigned_text(a), a.covers));
		texts[i] = a.text;
	end
	local every = {};
	for i, token in ipairs(core.PAYLOAD_ORDER) do every[i] = token; end
	return { records = array(records), signing_inputs = array(inputs),
		fields = { id = fields.id, type = fields.type, present = array(fields.present),
			payloads = base64.encode(core.payload_input(fields, every)) } };
end

-- The record texts of the path as they are now (a receiving server passes on records it did
-- not read, which a strict decoder would refuse).
local function path_texts(message)
	local path = core.find_path_element(message);
	local out = {};
	for i, text in ipairs(path and core.path_records(path) or {}) do out[i] = text; end
	return array(out);
end

function OPS.filter(req)
	local message = parse(req.stanza);
	local d = core.filter_client_path(message, value(req.session_key));
	return { kept = d.kept and d.kept.text or null, removed = d.removed, chain = d.chain,
		chain_reason = n(d.chain_reason), vouch = n(d.vouch), path = path_texts(message) };
end

function OPS.receive(req)
	local message = parse(req.stanza);
	local keys = nil; -- an empty list: no key set (the fetch failed)
	if #req.keys > 0 then
		keys = {};
		for i, k in ipairs(req.keys) do keys[i] = setup.map(k); end
	end
	local d = core.receive_chain(message, { origin = req.origin, takes_part = req.takes_part, keys = keys,
		key_source = req.key_source, keys_unavailable = req.keys_unavailable == true });
	return { chain = d.chain, chain_reason = n(d.chain_reason), vouch = n(d.vouch), refetch = d.refetch,
		unreadable = d.error ~= nil, sig = n(d.sig), path = path_texts(message) };
end

function OPS.attest(req)
	local message = parse(req.stanza);
	local atts, fields = decode(message);
	local texts = {};
	for i, a in ipairs(atts) do texts[i] = a.text; end
	local r = req.record;
	local function view(text) if value(text) == nil then return nil; end return core.decode_view(text); end
	local ok, att = pcall(core.attest, fields, core.signing_key(unhex(req.seed_hex)), {
		signer = value(r.signer), time = value(r.time), in_view = view(r.in_view), out_view = view(r.out_view),
		in_peer = value(r.in_peer), out_peer = value(r.out_peer), chain = value(r.chain),
		chain_reason = value(r.chain_reason), vouch = value(r.vouch), removed = value(r.removed),
		stored = value(r.stored), previous = table.concat(texts, " ") });
	if not ok then
		if type(att) == "table" then error(att, 0); end
		return { usage_error = true };
	end
	return { text = att.text };
end

function OPS.client_hop(req)
	local client_view = value(req.client_view);
	local method, reason = core.client_hop_problem(req.verdict, core.decode_view(req.server_view, "view"),
		client_view and core.decode_view(client_view, "view") or nil, value(req.missing));
	if not method then return { meets = true }; end
	return { method = method, reason = reason };
end

-- A key set as the Python test writes it (KeySet.to_json's entries).
local function key_list(keys)
	local out = {};
	for i, k in ipairs(keys) do
		out[i] = { key = k.key, alg = k.alg, status = k.status, not_after = n(k.not_after), since = n(k.since) };
	end
	return array(out);
end

function OPS.txt(req)
	return { keys = key_list(core.read_txt_records(req.texts, req.domain)) };
end

function OPS.posh(req)
	local keys, expires = core.read_posh_document(json.decode(req.document), req.domain);
	return { keys = key_list(keys), expires = expires };
end

for line in io.lines() do
	local req = json.decode(line);
	local ok, answer = pcall(OPS[req.op], req);
	if not ok then
		-- a trust-path error is a refusal; anything else is a bug, and ends this process
		if type(answer) ~= "table" or not answer.tp_error then error(answer, 0); end
		answer = { refused = answer.reason, limit = answer.limit == true, text = answer.text };
	end
	io.write(json.encode(answer), "\n");
	io.flush();
end
