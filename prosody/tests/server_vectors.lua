-- The server rules of the Lua core against spec/vectors/server/ (the same files the Python core
-- runs in tests/test_server_vectors.py): what the sending server keeps of a client's path and
-- states in its <in/> view, what a receiving server decides about a chain and whether it
-- refuses the message, which hop a <require/> names, and what a pre-flight answer holds.
--
--   lua5.4 prosody/tests/server_vectors.lua
--
-- Prints "N passed, M failed" and exits non-zero on failure.
local setup = dofile((debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".") .. "/setup.lua");
local core = setup.core;
local xml = require "util.xml";

local dir = setup.repo .. "/spec/vectors/server";
local passed, failed = 0, 0;

local read, value, map = setup.read, setup.value, setup.map;

local function show(v)
	if type(v) ~= "table" then return tostring(v); end
	local parts = {};
	for k, x in pairs(v) do parts[#parts + 1] = tostring(k) .. "=" .. show(x); end
	table.sort(parts);
	return "{" .. table.concat(parts, ", ") .. "}";
end

local function same(a, b)
	if type(a) ~= "table" or type(b) ~= "table" then return a == b; end
	for k, v in pairs(a) do if not same(v, b[k]) then return false; end end
	for k in pairs(b) do if a[k] == nil then return false; end end
	return true;
end

local function check(name, what, got, wanted)
	if same(got, wanted) then
		passed = passed + 1;
	else
		failed = failed + 1;
		print(("FAIL: %s: %s is %s, expected %s"):format(name, what, show(got), show(wanted)));
	end
end

local function sigs(message)
	local atts = core.decode_path(message) or {};
	local out = {};
	for i, a in ipairs(atts) do out[i] = a.sig; end
	return out;
end

local function list(t) local out = {}; for i, v in ipairs(t or {}) do out[i] = v; end return out; end

local index = setup.read_json(dir .. "/index.json");
for _, case in ipairs(index.cases) do
	local name, facts, expected = case.name, case.facts, case.expected;
	if facts.role == "sending" then
		local message = assert(xml.parse(read(dir .. "/" .. case.stanza)));
		local decision = core.filter_client_path(message, core.message_fields(message), facts.session,
			{ domain = facts.domain, client_key = value(facts.client_key), now = core.parse_time(facts.now),
				max_skew = facts.max_skew });
		check(name, "kept", decision.kept and decision.kept.sig, value(expected.kept));
		check(name, "removed", decision.removed, expected.removed);
		check(name, "chain", decision.chain, expected.chain);
		check(name, "chain_reason", decision.chain_reason, value(expected.chain_reason));
		check(name, "in_view", core.client_in_view(map(facts.view), decision), map(expected.in_view));
		check(name, "path", sigs(message), list(expected.path));
	elseif facts.role == "receiving" then
		local message = assert(xml.parse(read(dir .. "/" .. case.stanza)));
		local fields = core.message_fields(message);
		local keys = {};
		for i, k in ipairs(facts.keys) do keys[i] = map(k); end
		local seen = {};
		for _, sig in ipairs(facts.seen) do seen[sig] = true; end
		local base = map(facts.view);
		local decision = core.receive_chain(message, fields, { origin = facts.origin, domain = facts.domain,
			takes_part = facts.takes_part, keys = keys, in_view = base, now = core.parse_time(facts.now),
			max_skew = facts.max_skew, seen = seen });
		local view = core.received_in_view(base, decision);
		check(name, "chain", decision.chain, expected.chain);
		check(name, "chain_reason", decision.chain_reason, value(expected.chain_reason));
		check(name, "prev_key", decision.prev_key, value(expected.prev_key));
		check(name, "in_view", view, map(expected.in_view));
		check(name, "accepted", decision.accepted, list(expected.accepted));
		check(name, "path", sigs(message), list(expected.path));
		local hop = fields.require and core.received_requirement_problem(fields.require, view, decision) or nil;
		check(name, "refusal", hop, map(expected.refusal));
	elseif facts.role == "require" then
		local views = {};
		for i, v in ipairs(facts.views) do views[i] = map(v); end
		check(name, "hop", core.unmet_requirement(facts.required, views, #views), map(expected.hop));
	elseif facts.role == "preflight" then
		local answer = core.preflight_answer(facts.domain, value(facts.takes_part), map(facts.view));
		check(name, "domain", answer.domain, expected.domain);
		check(name, "takes_part", answer.takes_part, value(expected.takes_part));
		check(name, "out", answer.out_view, map(expected.out));
	else
		failed = failed + 1;
		print(("FAIL: %s: unknown role %s"):format(name, tostring(facts.role)));
	end
end

print(("%d passed, %d failed"):format(passed, failed));
os.exit(failed == 0 and 0 or 1);
