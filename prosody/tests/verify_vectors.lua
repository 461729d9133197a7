-- Checks the Lua side of trust-path (trust_path_core.lua + trust_path_crypto.so) against the
-- published test vectors in spec/vectors.  Run from the repository root or anywhere:
--
--   lua5.4 prosody/tests/verify_vectors.lua
--
-- 1. signing/*.json: verify(public_key, sig, signing_input) == reproducible, and re-signing
--    with the test seed gives the same sig where reproducible.
-- 2. The signing input rebuilt in Lua from scenarios/NN-name.xml (parsed with util.xml)
--    equals every attestation's "signing_input", byte for byte.
-- 3. The recipient client's verdict (verify() with the anchor file) for every delivered
--    scenario and every findings case equals the expected verdict, hop and reason.
-- 4. A receiving server's chain decision (receive_chain(): what arrived at b.example,
--    checked with a.example's keys) equals the 'chain' / 'chain-reason' / 'prev-key' that
--    b.example signed in each scenario: pass for 01, tampered for 07, replayed for 09,
--    clock-skew for 14, absent for 05, stripped for 06, ...
-- 5. The sending server's anti-forgery check, and every rejections/ file is refused.
-- 6. receipts/: a delivery receipt carrying a <report/>, which every attestation signs.  As
--    1-2 for receipts/NAME.signing.json and NAME.xml, and as 3 for the recipient client's
--    verdict on the receipt's own path (the expected 'receipt').
-- Prints "N passed, M failed" and exits non-zero on failure.

local setup = dofile((debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".") .. "/setup.lua");
local repo = setup.repo;
local core = setup.core;
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

-- seeds by public key (keys.json)
local seeds = {};
for _, k in ipairs(read_json(vectors .. "/keys.json").keys) do seeds[k.public] = unhex(k.private_seed_hex); end
local function public_of(label)
	for _, k in ipairs(read_json(vectors .. "/keys.json").keys) do
		if k.label == label then return k.public; end
	end
end

-- parse a stanza file and return the message, its fields, its decoded path and the wrapper
local function load_stanza(path)
	local root = assert(xml.parse(read(path)));
	local message, wrapper, _, outer_from = core.find_message(root);
	return message, core.message_fields(message), core.decode_path(message), wrapper, outer_from;
end

local function anchor_of(a)
	return { server = a.server, keys = a.keys, me = a.me, view = a.view, takes_part = a.takes_part ~= false };
end

---------------------------------------------------------------------------------------------
print("1-2. signing vectors: signatures, and the signing input rebuilt from the stanza");
local function check_signing(stem, vec, stanza_path)
	local _, fields, atts = load_stanza(stanza_path);
	check(stem .. ": attestation count", atts and #atts == #vec.attestations);
	for _, v in ipairs(vec.attestations) do
		local label = ("%s[%d] %s"):format(stem, v.index, v.signer);
		local input = v.signing_input;
		check(label .. ": signing_input_base64 agrees", base64.decode(v.signing_input_base64) == input);
		check(label .. ": verify == reproducible",
			core.verify_signature(v.public_key, v.sig, input) == v.reproducible);
		if v.reproducible then
			local seed = seeds[v.public_key];
			check(label .. ": seed known", seed ~= nil);
			if seed then check(label .. ": re-signing gives sig", core.sign(seed, input) == v.sig); end
		end
		local att = atts and atts[v.index + 1];
		if att then
			local prev = v.index > 0 and atts[v.index].sig or "";
			local rebuilt = core.signing_input(fields, prev, att);
			check(label .. ": signing input rebuilt from XML", rebuilt == input,
				rebuilt ~= input and ("\n  got  %s\n  want %s"):format(show(rebuilt), show(input)) or nil);
			check(label .. ": sig in XML", att.sig == v.sig);
		end
	end
end
for _, name in ipairs(list(vectors .. "/signing", "%.json$")) do
	local stem = name:gsub("%.json$", "");
	check_signing(stem, read_json(vectors .. "/signing/" .. name), vectors .. "/scenarios/" .. stem .. ".xml");
end

-- the XEP's worked example (344 bytes, RFC 8032 test 1 key)
do
	local st = require "util.stanza";
	local msg = st.message({ to = "bob@b.example", id = "6b1e0a", type = "chat", from = "alice@a.example/phone" })
		:text_tag("body", "Hi Bob");
	local fields = core.message_fields(msg);
	local att = { signer = "alice@a.example/phone", time = "2026-11-25T09:00:00Z", for_id = "6b1e0a",
		out_view = { peer = "a.example", side = "client", tls = "1.3", cipher = "1302",
			spki = "FV2T/hz7KnVaOMDmzJgqZk6wZQVV7LCYxP3iYUSjpGo=", method = "pin", result = "pass" } };
	local input = core.signing_input(fields, "", att);
	local sha256 = require "util.hashes".sha256;
	check("XEP worked example: 344 bytes", #input == 344);
	check("XEP worked example: SHA-256", sha256(input, true) == "9c82c868e63dcb70cdca38ed3423ec79f02be2426b415fc10d1fd3fe8ad26f71");
	local seed = unhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60");
	check("XEP worked example: public key", core.public_b64(seed) == "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=");
	check("XEP worked example: sig", core.sign(seed, input)
		== "TEcdzUOGW4kh+8rW4KW36QbpLNT5cY+EAmYyei/3bSURnPj7eZNp7NTYXxNo0CAlCH/L5D3rrIzE2HTuo/gUBA==");
	-- and through attest(), which is what the module calls
	local signed = core.attest(fields, { signer = att.signer, time = core.parse_time(att.time), seed = seed,
		out_view = att.out_view });
	check("XEP worked example: attest()", signed.sig == "TEcdzUOGW4kh+8rW4KW36QbpLNT5cY+EAmYyei/3bSURnPj7eZNp7NTYXxNo0CAlCH/L5D3rrIzE2HTuo/gUBA==");
	-- the element round-trips through the decoder and a serializer/parser
	local copy = st.clone(msg);
	core.add_attestation(copy, signed);
	local reparsed = assert(xml.parse(tostring(copy)));
	local back = core.decode_path(reparsed);
	check("encode/decode round trip", back and #back == 1 and back[1].sig == signed.sig
		and core.signing_input(core.message_fields(reparsed), "", back[1]) == input);
end

---------------------------------------------------------------------------------------------
print("3. recipient client verdicts: scenarios and findings");
local function check_verdict(label, stanza_path, anchor, now, expected)
	local _, fields, atts, wrapper, outer_from = load_stanza(stanza_path);
	core.check_wrapper(wrapper, outer_from, anchor.me);
	local report = core.verify(fields, atts, anchor_of(anchor), assert(core.parse_time(now)),
		{ max_skew = anchor.max_skew, archived = wrapper == "archive" });
	check(label .. ": verdict " .. expected.verdict, report.verdict == expected.verdict,
		"got " .. report.verdict .. " weakest " .. table.concat(report.weakest, ","));
	if type(expected.hop) == "string" then
		local found;
		for _, h in ipairs(report.hops) do if h.label == expected.hop then found = h; end end
		check(label .. ": " .. expected.hop .. " reason " .. tostring(expected.reason),
			found and found.reason == expected.reason, found and ("got " .. tostring(found.reason)) or "no such hop");
	end
end
for _, name in ipairs(list(vectors .. "/scenarios", "%.expected%.json$")) do
	local stem = name:gsub("%.expected%.json$", "");
	local expected = read_json(vectors .. "/scenarios/" .. name);
	if expected.delivered then
		check_verdict(stem, vectors .. "/scenarios/" .. stem .. ".xml",
			read_json(vectors .. "/scenarios/" .. stem .. ".anchor.json"), expected.now, expected);
	end
end
for _, case in ipairs(read_json(vectors .. "/findings/index.json").cases) do
	check_verdict("findings/" .. case.name, vectors .. "/findings/" .. case.stanza,
		read_json(vectors .. "/findings/" .. case.anchor), case.now, case);
end

---------------------------------------------------------------------------------------------
print("4. receiving server: the chain b.example computed from what arrived from a.example");
-- a.example's keys when the messages arrived (before any rotation)
local a_keys = { { key = public_of("server/a.example/1"), status = "current" } };
local participates = { ["05-ss-not-participating"] = false };
local chain_expect = { ["01-all-pinned"] = "pass", ["07-body-tampered"] = "fail/tampered",
	["09-replayed"] = "fail/replayed", ["14-clock-skew"] = "fail/clock-skew",
	["05-ss-not-participating"] = "absent", ["06-ss-stripped"] = "stripped" };
local seen_required = {};
for _, name in ipairs(list(vectors .. "/scenarios", "%.xml$")) do
	local stem = name:gsub("%.xml$", "");
	if not stem:find("%.error$") then
		local message, fields, atts = load_stanza(vectors .. "/scenarios/" .. name);
		local last = atts and atts[#atts];
		if last and last.signer == "b.example" and last.in_view and last.in_view.peer == "a.example" then
			-- what arrived at b.example: the stanza without b.example's attestation
			local arrived = require "util.stanza".clone(message);
			local path = core.find_path_element(arrived);
			table.remove(path.tags);
			for i = #path, 1, -1 do
				if type(path[i]) == "table" and path[i].name == "attestation" and path[i].attr.sig == last.sig then
					table.remove(path, i);
				end
			end
			if #path.tags == 0 then core.remove_paths(arrived); end
			local in_view = {};
			for k, v in pairs(last.in_view) do in_view[k] = v; end
			in_view.chain, in_view["chain-reason"], in_view["key-source"], in_view.removed = nil, nil, nil, nil;
			local now = core.parse_time(last.stored or last.time);
			local decision = core.receive_chain(arrived, core.message_fields(arrived), {
				origin = "a.example", domain = "b.example", takes_part = participates[stem] ~= false,
				keys = a_keys, in_view = in_view, now = now, max_skew = 300 });
			local got = decision.chain .. (decision.chain_reason and decision.chain == "fail" and ("/" .. decision.chain_reason) or "");
			local want = last.in_view.chain .. (last.in_view["chain-reason"] and ("/" .. last.in_view["chain-reason"]) or "");
			check(stem .. ": chain " .. want, got == want, "got " .. got);
			if chain_expect[stem] then
				seen_required[stem] = true;
				check(stem .. ": chain is " .. chain_expect[stem], got == chain_expect[stem], "got " .. got);
			end
			check(stem .. ": prev-key", decision.prev_key == last.prev_key,
				("got %s want %s"):format(tostring(decision.prev_key), tostring(last.prev_key)));
			check(stem .. ": key-source", (decision.prev_key and decision.key_source) == last.in_view["key-source"]);
		end
	end
end
for stem in pairs(chain_expect) do check(stem .. ": receiving-server case ran", seen_required[stem]); end

---------------------------------------------------------------------------------------------
print("5. sending server anti-forgery, and rejections");
do
	local message, fields, atts = load_stanza(vectors .. "/scenarios/01-all-pinned.xml");
	local client = atts[1];
	local ctx = { domain = "a.example", client_key = public_of("client/alice@a.example/phone"),
		now = core.parse_time("2026-11-25T09:00:00Z"), max_skew = 300 };
	check("client attestation kept", core.client_attestation_problem(fields, client, ctx) == nil);
	local other = setmetatable({ id = "other" }, { __index = fields });
	check("client attestation: other id -> replayed", core.client_attestation_problem(other, client, ctx) == "replayed");
	local later = setmetatable({ now = ctx.now + 301 }, { __index = ctx });
	check("client attestation: late -> clock-skew", core.client_attestation_problem(fields, client, later) == "clock-skew");
	local wrong = setmetatable({ client_key = public_of("client/bob@b.example/desk") }, { __index = ctx });
	check("client attestation: other key -> tampered", core.client_attestation_problem(fields, client, wrong) == "tampered");
	local elsewhere = setmetatable({ domain = "c.example" }, { __index = ctx });
	check("client attestation: other server -> chain-broken",
		core.client_attestation_problem(fields, client, elsewhere) == "chain-broken");
	-- a client that sends the whole received path: its own attestation stays, 2 are removed
	local sent = require "util.stanza".clone(message);
	local result = core.filter_client_path(sent, fields, "alice@a.example/phone", ctx);
	local left = core.decode_path(sent);
	check("filter: keeps the client's own", result.kept and result.kept.sig == client.sig and #left == 1);
	check("filter: removed 2, chain pass", result.removed == 2 and result.chain == "pass");
	local bare = require "util.stanza".clone(message);
	core.remove_paths(bare);
	local r2 = core.filter_client_path(bare, fields, "alice@a.example/phone", ctx);
	check("filter: no path -> absent", r2.chain == "absent" and r2.removed == 0 and core.find_path_element(bare) == nil);
end

local rejections = read_json(vectors .. "/rejections/index.json");
local rejection_anchor = read_json(vectors .. "/rejections/" .. rejections.anchor);
for _, case in ipairs(rejections.cases) do
	local data = read(vectors .. "/rejections/" .. case.file);
	local refused;
	if #data > core.MAX_STANZA_BYTES then
		refused = "size";
	else
		local root, err = xml.parse(data);
		if not root then
			refused = "xml: " .. tostring(err);
		else
			local ok, why = core.try(function ()
				if core.depth(root, core.MAX_DEPTH + 1) > core.MAX_DEPTH then core.fail("malformed", "too deep"); end
				local message, wrapper, _, outer_from = core.find_message(root);
				core.check_wrapper(wrapper, outer_from, rejection_anchor.me);
				core.message_fields(message);
				return core.decode_path(message);
			end);
			refused = not ok and tostring(why) or nil;
		end
	end
	check("rejections/" .. case.file .. " refused", refused ~= nil);
end

---------------------------------------------------------------------------------------------
print("6. receipts: the signed <report/>, and the verdict on the receipt's own path");
local receipt_cases = read_json(vectors .. "/receipts/index.json");
check("receipts: some cases", #receipt_cases > 0);
for _, case in ipairs(receipt_cases) do
	local stem = vectors .. "/receipts/" .. case.name;
	local label = "receipts/" .. case.name;
	local _, fields = load_stanza(stem .. ".xml");
	check(label .. ": the message carries a <report/>", fields.report ~= nil);
	check_signing(label, read_json(stem .. ".signing.json"), stem .. ".xml");
	local expected = read_json(stem .. ".expected.json");
	check_verdict(label, stem .. ".xml", read_json(stem .. ".anchor.json"), expected.now,
		{ verdict = expected.receipt });
end

print(("%d passed, %d failed"):format(passed, failed));
os.exit(failed == 0 and 0 or 1);
