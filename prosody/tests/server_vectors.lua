-- Runs the server-rule vectors (spec/vectors/server/index.json) through the Lua core of
-- mod_trust_path: what a participating server decides, without checking signatures.
--
--   lua5.4 prosody/tests/server_vectors.lua
--
--   sending    filter_client_path(): which record of a local client's path is kept, how many
--              are removed, the chain and vouching the server's record states, the path after
--   receiving  receive_chain(): the chain a receiving server states about what arrived from
--              a.example, its vouching (the key source), whether it asks for the keys again,
--              the path after, and received_requirement_problem() for a <require/>
--   require    unmet_requirement(): the hop a refusal names
--   delivery   delivery_requirement_problem(): what the last hop to a resource meets; a sending
--              case with a "view" also sending_requirement_problem() (the sender's hop)
--   preflight  preflight_answer(): what a pre-flight answer holds
-- Prints "N passed, M failed" and exits non-zero on failure.
local setup = dofile((debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".") .. "/setup.lua");
local core, value, read, read_json = setup.core, setup.value, setup.read, setup.read_json;
local xml = require "util.xml";

local dir = setup.repo .. "/spec/vectors/server";
local passed, failed = 0, 0;
local function check(name, cond, detail)
	if cond then passed = passed + 1; else
		failed = failed + 1;
		print("FAIL: " .. name .. (detail and (" -- " .. tostring(detail)) or ""));
	end
end

-- The signatures in the path after the decision, read from the record texts: a receiving
-- server passes on records it did not read, which a strict decoder would refuse.
local function sigs(message)
	local path = core.find_path_element(message);
	local out = {};
	for i, text in ipairs(path and core.path_records(path) or {}) do out[i] = text:match(";z=([^;]*)$") or text; end
	return table.concat(out, " ");
end
local function joined(list) return table.concat(list, " "); end
local function same_hop(got, want)
	want = value(want);
	if want == nil or got == nil then return want == got; end
	return got.peer == want.peer and got.method == want.method and got.reason == want.reason
		and got.required == value(want.required);
end
local function describe(hop)
	if not hop then return "none"; end
	return ("%s %s %s %s"):format(hop.peer, hop.method, hop.reason, tostring(hop.required));
end
-- A view from the vectors' raw parts (which may break the rules: preflight cases test that).
local function raw_view(t)
	t = value(t);
	if t == nil then return nil; end
	local result, reason = t.result, nil;
	if result ~= "pass" and result ~= "none" then result, reason = "fail", t.result; end
	return { method = t.method, result = result, tls = t.tls, spki = value(t.spki), reason = reason };
end

local ROLES = {};
function ROLES.sending(case, message)
	local facts, want = case.facts, case.expected;
	local d = core.filter_client_path(message, value(facts.session_key));
	check(case.name .. ": kept", (d.kept and d.kept.sig) == value(want.kept), d.kept and d.kept.sig);
	check(case.name .. ": removed", d.removed == want.removed, d.removed);
	check(case.name .. ": chain", d.chain == want.chain and d.chain_reason == value(want.chain_reason),
		d.chain .. " " .. tostring(d.chain_reason));
	check(case.name .. ": vouch", d.vouch == value(want.vouch), d.vouch);
	check(case.name .. ": path after", sigs(message) == joined(want.path), sigs(message));
	if facts.view ~= nil then -- what the message's <require/> meets at the sending server
		local fields = core.message_fields(message);
		local hop = core.sending_requirement_problem(fields.require, fields.sender, core.decode_view(facts.view, "view"), d);
		check(case.name .. ": refusal", same_hop(hop, want.refusal), describe(hop));
	end
end
function ROLES.receiving(case, message)
	local facts, want = case.facts, case.expected;
	local keys = nil; -- no key set: none could be fetched
	if #facts.keys > 0 then
		keys = {};
		for i, k in ipairs(facts.keys) do keys[i] = setup.map(k); end
	end
	local fields = core.message_fields(message);
	local d = core.receive_chain(message, { origin = facts.origin, takes_part = facts.takes_part, keys = keys,
		key_source = facts.key_source, keys_unavailable = value(facts.keys_unavailable) == true });
	check(case.name .. ": chain", d.chain == want.chain and d.chain_reason == value(want.chain_reason),
		d.chain .. " " .. tostring(d.chain_reason) .. " " .. tostring(d.error));
	check(case.name .. ": vouch", d.vouch == value(want.vouch), d.vouch);
	check(case.name .. ": refetch", d.refetch == want.refetch);
	check(case.name .. ": path after", sigs(message) == joined(want.path), sigs(message));
	local hop;
	if fields.require then
		hop = core.received_requirement_problem(fields.require, facts.origin, core.decode_view(facts.view, "view"), d);
	end
	check(case.name .. ": refusal", same_hop(hop, want.refusal), describe(hop));
end
function ROLES.require(case)
	local hops = {};
	for i, h in ipairs(case.facts.hops) do hops[i] = { peer = h.peer, view = core.decode_view(h.view, "view") }; end
	local hop = core.unmet_requirement(case.facts.required, hops);
	check(case.name .. ": hop", same_hop(hop, case.expected.hop), describe(hop));
end
function ROLES.delivery(case)
	local facts = case.facts;
	local client_view = value(facts.client_view);
	local hop = core.delivery_requirement_problem(facts.required, facts.recipient,
		core.decode_view(facts.server_view, "view"), client_view and core.decode_view(client_view, "view") or nil);
	check(case.name .. ": hop", same_hop(hop, case.expected.hop), describe(hop));
end
function ROLES.preflight(case)
	local facts, want = case.facts, case.expected;
	local answer = core.preflight_answer(facts.domain, value(facts.takes_part), raw_view(facts.view));
	check(case.name .. ": domain", answer.domain == want.domain);
	check(case.name .. ": takes part", answer.takes_part == value(want.takes_part));
	check(case.name .. ": link", (answer.link and core.view_text(answer.link)) == value(want.link));
	local element = core.preflight_element(answer);
	check(case.name .. ": element", element.attr.link == value(want.link) and element.attr.domain == want.domain
		and element.attr["takes-part"] == (want.takes_part == true and "true" or want.takes_part == false and "false" or nil));
end

local index = read_json(dir .. "/index.json");
local ran = {};
for _, case in ipairs(index.cases) do
	local run = ROLES[case.facts.role];
	check(case.name .. ": a role this test knows (" .. case.facts.role .. ")", run ~= nil);
	if run then
		local message = case.stanza and assert(xml.parse(read(dir .. "/" .. case.stanza)), case.stanza);
		local ok, err = pcall(run, case, message);
		check(case.name .. ": ran", ok, err);
		ran[case.facts.role] = (ran[case.facts.role] or 0) + 1;
	end
end
for _, role in ipairs { "sending", "receiving", "require", "delivery", "preflight" } do
	check("cases of role " .. role, (ran[role] or 0) > 0);
end

print(("%d passed, %d failed"):format(passed, failed));
os.exit(failed == 0 and 0 or 1);
