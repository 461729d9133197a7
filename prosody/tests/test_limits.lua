-- The limits of the XEP's "Keys" in the Lua core (the Python side: tests/test_limits.py): a
-- key set of more than MAX_PUBLISHED_KEYS keys is malformed in every place a domain publishes
-- it, and is refused before its keys are read.  Run from anywhere: lua5.4 prosody/tests/test_limits.lua
local setup = dofile((debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".") .. "/setup.lua");
local core = setup.core;
local st = require "util.stanza";
local xml = require "util.xml";
local json = require "util.json";

local passed, failed = 0, 0;
local function check(name, cond, detail)
	if cond then passed = passed + 1; else failed = failed + 1; print("FAIL: " .. name .. (detail and (" -- " .. detail) or "")); end
end
local function refusal(f, ...)
	local ok, err = pcall(f, ...);
	if ok or type(err) ~= "table" or err.tp_error ~= true then return nil; end
	return err;
end

local LIMIT = core.MAX_PUBLISHED_KEYS;
check("the limits come from spec/constants.json", LIMIT == 64 and core.KEY_FETCH_INTERVAL == 10);

-- `count` keys: one current, the rest revoked (distinct 32-byte keys)
local function key_set(count)
	local keys = { { key = core.signing_key(("\1"):rep(32)).public, status = "current", alg = "ed25519" } };
	for i = 2, count do
		keys[i] = { key = core.b64_raw(("%032d"):format(i)), status = "revoked", since = "2026-01-01T00:00:00Z", alg = "ed25519" };
	end
	return keys;
end

for _, count in ipairs { LIMIT, LIMIT + 1 } do
	local keys = key_set(count);
	local query = st.stanza("query", { xmlns = core.NS_DISCO_INFO }):tag("feature", { var = core.NS }):up()
		:add_child(core.key_form(keys, 300, 0));
	query = xml.parse(tostring(query));
	local texts = core.txt_records(keys);
	local posh = json.decode(json.encode(core.posh_document(keys, 600)));
	if count <= LIMIT then
		check("form: " .. count .. " keys are read", #core.read_disco_info(query, "a.example").keys == count);
		check("txt: " .. count .. " keys are read", #core.read_txt_records(texts, "a.example") == count);
		check("posh: " .. count .. " keys are read", #core.read_posh_document(posh, "a.example") == count);
	else
		for name, err in pairs { form = refusal(core.read_disco_info, query, "a.example"),
				txt = refusal(core.read_txt_records, texts, "a.example"),
				posh = refusal(core.read_posh_document, posh, "a.example") } do
			check(name .. ": " .. count .. " keys are malformed", err and err.reason == "malformed"
				and err.text:find(("publishes %d keys"):format(count), 1, true) ~= nil, err and err.text);
		end
	end
end

-- counted before any is parsed: a bad key beyond the limit is not what the refusal names
local keys = key_set(LIMIT + 1);
local texts = core.txt_records(keys);
texts[#texts] = "v=tp1; k=ed25519:not-a-key";
local err = refusal(core.read_txt_records, texts, "a.example");
check("txt: the count is checked first", err and err.text:find("publishes 65 keys", 1, true) ~= nil, err and err.text);

print(("%d passed, %d failed"):format(passed, failed));
os.exit(failed == 0 and 0 or 1);
