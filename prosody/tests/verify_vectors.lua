-- Checks the Lua core of mod_trust_path (core/*.lua + trust_path_crypto.so) against the
-- published test vectors in spec/vectors (urn:xmpp:trust-path:1).  Run from anywhere:
--
--   lua5.4 prosody/tests/verify_vectors.lua
--
-- 1. signing/*.json and receipts/*.signing.json: verify(public_key, sig, signing_input) equals
--    'verifies', and re-signing with the test seed gives the same sig where 'reproducible'.
-- 2. The signing input rebuilt in Lua from the stanza (scenarios/NN-name.xml or
--    receipts/NAME.xml, parsed with util.xml) equals every record's 'signing_input', byte for
--    byte; every record decodes to its own text.
-- 3. attest() with a reproducible record's own fields writes exactly that record (field order,
--    'h=', the signature).
-- 4. Every rejections/ file is refused by the part of the core that reads it, with the reason
--    code of the Python core's exception.  A few are refused before the core sees them (by
--    Prosody's XML parser and stream limits) or only by a recipient client (record order);
--    those are listed below, and a new case cannot be skipped without being listed.
-- 5. Attested refusals (refusals/*.xml and scenarios/NN-name.error.xml, signed by the Python
--    core): each record's signature verifies over the signing input rebuilt in Lua from the
--    error (the refusal payload, h=refusal, byte for byte as the Python core projects it), and
--    attest() writes each record again (the refuser's first one without 'i=' or 'c='); a
--    refusal whose hop was changed after signing verifies for none of its records.
-- There is no verdict check here: servers do not verify (the recipient client does).
-- Prints "N passed, M failed" and exits non-zero on failure.

local setup = dofile((debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".") .. "/setup.lua");
local repo, core = setup.repo, setup.core;
local xml = require "util.xml";
local base64 = require "util.encodings".base64;

local vectors = repo .. "/spec/vectors";
local passed, failed = 0, 0;
local function check(name, cond, detail)
	if cond then
		passed = passed + 1;
	else
		failed = failed + 1;
		print("FAIL: " .. name .. (detail and (" -- " .. detail) or ""));
	end
end

local read, read_json = setup.read, setup.read_json;
local function list(dir, pattern)
	local out = {};
	local p = assert(io.popen(("ls %q"):format(dir)));
	for name in p:lines() do if name:match(pattern) then out[#out + 1] = name; end end
	p:close();
	table.sort(out);
	return out;
end
local function unhex(s) return (s:gsub("..", function (h) return string.char(tonumber(h, 16)); end)); end
local function show(s) return (s:gsub("%z", "\\0")); end

local seeds = {}; -- public key -> seed (keys.json)
for _, k in ipairs(read_json(vectors .. "/keys.json").keys) do seeds[k.public] = unhex(k.private_seed_hex); end

-- The message of a stanza file, its fields (with the payloads its records cover beyond the
-- table's tokens) and its decoded records.
local function load_stanza(path)
	local root = assert(xml.parse(read(path)), "not well-formed: " .. path);
	local message = core.find_message(root);
	local atts = core.decode_path(message) or {};
	local extra = {};
	for _, a in ipairs(atts) do
		for _, token in ipairs(a.covers or {}) do if token:sub(1, 1) == "{" then extra[token] = true; end end
	end
	return message, core.message_fields(message, extra), atts;
end

local function check_signing(stem, vec, stanza_path)
	local message_ok, message, fields, atts = pcall(load_stanza, stanza_path);
	check(stem .. ": stanza decodes", message_ok, tostring(message));
	if not message_ok then return; end
	local texts = {};
	for i, rec in ipairs(vec.records) do
		local label = ("%s record %d (%s)"):format(stem, rec.index, rec.signer);
		local data = base64.decode(rec.signing_input_base64);
		check(label .. ": signature verifies as the vector says",
			core.verify_signature(rec.public_key, rec.sig, data) == rec.verifies);
		local seed = seeds[rec.public_key];
		if rec.reproducible then
			check(label .. ": re-signing reproduces sig", seed and core.sign(core.signing_key(seed), data) == rec.sig);
		end
		local att = atts[i];
		check(label .. ": record in the stanza", att and att.text == rec.record);
		if att then
			local rebuilt = core.signing_input(fields, table.concat(texts, " "), core.unsigned_text(att), att.covers);
			check(label .. ": signing input rebuilt from the stanza", rebuilt == data, show(rebuilt) .. "\n  vs " .. show(data));
			if rec.reproducible and seed then
				local ok, again = pcall(core.attest, fields, core.signing_key(seed), { signer = att.signer, time = att.time,
					in_view = att.in_view, in_peer = att.in_peer, out_peer = att.out_peer, chain = att.chain,
					chain_reason = att.chain_reason, vouch = att.vouch, removed = att.removed, stored = att.stored,
					out_view = att.out_view, alg = att.alg, extra = att.extra, previous = table.concat(texts, " ") });
				check(label .. ": attest() writes the same record", ok and again.text == rec.record,
					ok and again.text or tostring(again));
			end
			texts[#texts + 1] = att.text;
		end
	end
	check(stem .. ": every record has a vector", #atts == #vec.records);
end

for _, name in ipairs(list(vectors .. "/signing", "%.json$")) do
	local stem = name:gsub("%.json$", "");
	check_signing(stem, read_json(vectors .. "/signing/" .. name), vectors .. "/scenarios/" .. stem .. ".xml");
end
for _, name in ipairs(list(vectors .. "/receipts", "%.signing%.json$")) do
	local stem = name:gsub("%.signing%.json$", "");
	check_signing("receipts/" .. stem, read_json(vectors .. "/receipts/" .. name), vectors .. "/receipts/" .. stem .. ".xml");
end

-- 4. Rejections.
local rejections = read_json(vectors .. "/rejections/index.json");
local anchor = read_json(vectors .. "/rejections/" .. rejections.anchor);
-- Refused before the core sees a stanza: Prosody's stream parser refuses DTDs, entities,
-- comments and what is not XML; its stanza size limit and the module's depth check are not
-- the core's either.  Refused only by a recipient client, which knows the message's path:
-- records in the wrong order, or by a signer not on it (a server keeps what it does not sign),
-- or 'st' on a record other than the delivering server's (a receiving server's receive_chain
-- refuses it on what arrives: spec/vectors/server).
local NOT_THE_CORE = { ["dtd.xml"] = "parser", ["entity-expansion.xml"] = "parser", ["not-xml.xml"] = "parser",
	["comment.xml"] = "parser", ["huge-1MB.xml"] = "stream", ["deep-nesting.xml"] = "stream",
	["same-signer-twice.xml"] = "verifier", ["signer-not-on-path.xml"] = "verifier",
	["records-out-of-order.xml"] = "verifier", ["stored-on-the-sending-servers-record.xml"] = "verifier" };
local REASON = { MalformedStanza = "malformed", LimitExceeded = "malformed", ForgedWrapper = "malformed",
	UnsupportedVersion = "unsupported-version", UnsupportedAlgorithm = "unsupported-algorithm" };
local skipped = {};
for _, case in ipairs(rejections.cases) do
	local label = "rejections/" .. case.file;
	local data = read(vectors .. "/rejections/" .. case.file);
	local root = xml.parse(data);
	if NOT_THE_CORE[case.file] then
		skipped[case.file] = true;
		if NOT_THE_CORE[case.file] == "parser" then check(label .. ": util.xml refuses it", root == nil); end
	else
		local ok, err = pcall(function ()
			assert(root, "not well-formed");
			local message, wrapper, _, outer_from = core.find_message(root);
			core.check_wrapper(wrapper, outer_from, anchor.me);
			core.message_fields(message);
			core.decode_path(message);
		end);
		local got = not ok and type(err) == "table" and err.tp_error and err or nil;
		check(label .. ": refused", got ~= nil, ok and "accepted" or tostring(err));
		if got then
			check(label .. ": as " .. REASON[case.error], got.reason == REASON[case.error], got.reason .. ": " .. got.text);
			check(label .. ": a limit exactly when the reference says so", (got.limit == true) == (case.error == "LimitExceeded"));
			check(label .. ": names what is wrong (" .. case.message_contains .. ")",
				got.text:lower():find(case.message_contains:lower(), 1, true) ~= nil, got.text);
		end
	end
end
for file in pairs(NOT_THE_CORE) do check(file .. ": still a rejection case", skipped[file]); end

-- 5. Attested refusals.
local function check_refusal(label, path, intact)
	local ok, message, fields, atts = pcall(load_stanza, path);
	check(label .. ": decodes", ok, tostring(message));
	if not ok then return; end
	check(label .. ": covers the refusal", fields.elements.refusal ~= nil and #atts > 0 and atts[1].in_view == nil
		and atts[1].chain == nil and table.concat(atts[1].covers or {}, ",") == "refusal");
	local texts = {};
	for i, att in ipairs(atts) do
		local record = ("%s record %d (%s)"):format(label, i, tostring(att.signer));
		local previous = table.concat(texts, " ");
		local data = core.signing_input(fields, previous, core.unsigned_text(att), att.covers);
		check(record .. (intact and ": verifies over the signing input rebuilt in Lua" or ": changed after signing, does not verify"),
			core.verify_signature(att.key, att.sig, data) == intact);
		local seed = seeds[att.key];
		if intact and seed then
			local wrote, again = pcall(core.attest, fields, core.signing_key(seed), { signer = att.signer, time = att.time,
				in_view = att.in_view, in_peer = att.in_peer, out_peer = att.out_peer, chain = att.chain,
				chain_reason = att.chain_reason, vouch = att.vouch, removed = att.removed, stored = att.stored,
				out_view = att.out_view, alg = att.alg, extra = att.extra, previous = previous });
			check(record .. ": attest() writes the same record", wrote and again.text == att.text, wrote and again.text or tostring(again));
		end
		texts[#texts + 1] = att.text;
	end
end
local refusal_cases = 0;
for _, case in ipairs(read_json(vectors .. "/refusals/index.json")) do
	local path = vectors .. "/refusals/" .. case.name .. ".xml";
	local root = assert(xml.parse(read(path)), "not well-formed: " .. path);
	if core.find_path_element(root) then
		check_refusal("refusals/" .. case.name, path, case.name ~= "changed-on-the-way-back");
		refusal_cases = refusal_cases + 1;
	else
		check("refusals/" .. case.name .. ": without a path, nothing to check", case.verdict == "untrusted");
	end
end
check("refusals: the four signed cases were checked", refusal_cases == 4, tostring(refusal_cases));
for _, name in ipairs(list(vectors .. "/scenarios", "%.error%.xml$")) do
	check_refusal("scenarios/" .. name, vectors .. "/scenarios/" .. name, true);
end

print(("%d passed, %d failed"):format(passed, failed));
os.exit(failed == 0 and 0 or 1);
