-- The Lua core as a line-oriented service for the differential test (tests/test_differential.py):
-- one JSON request per line on stdin, one JSON answer per line on stdout.  The Python test sends
-- the same generated stanzas to the Python core and compares every answer.
--
--   {"op": "verify", "stanza": "<message .../>", "anchor": {...}, "now": "...", "max_skew": 300}
--       -> {"verdict", "weakest", "hops": [...], "statuses": [...], "notes": [...],
--           "chain_problem", "signing_inputs": [base64, ...]}  or  {"refused": reason code}
--   {"op": "receive", "stanza": "...", "origin", "domain", "takes_part", "keys", "view", "now", "max_skew"}
--       -> {"chain", "chain_reason", "prev_key", "in_view", "accepted"}  or  {"refused": ...}
local setup = dofile((debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".") .. "/setup.lua");
local core = setup.core;
local json = require "util.json";
local xml = require "util.xml";
local base64 = require "util.encodings".base64;

local map = setup.map;
local array_mt = getmetatable(require "util.array"());
local function array(t) return setmetatable(t, array_mt); end

local function verify(req)
	local root = assert(xml.parse(req.stanza), "not well-formed");
	local anchor = map(req.anchor);
	local message, wrapper, _, outer_from = core.find_message(root);
	core.check_wrapper(wrapper, outer_from, anchor.me);
	local fields = core.message_fields(message);
	local atts = core.decode_path(message) or {};
	local keys = {};
	for i, k in ipairs(anchor.keys) do keys[i] = map(k); end
	local report = core.verify(fields, atts, { server = anchor.server, keys = keys, me = anchor.me,
		view = map(anchor.view), takes_part = anchor.takes_part ~= false }, core.parse_time(req.now),
		{ max_skew = req.max_skew, archived = wrapper == "archive" });
	local hops = {};
	for i, h in ipairs(report.hops) do
		hops[i] = { label = h.label, role = h.role, from = h.sender, to = h.receiver, method = h.method,
			result = h.result, reason = h.reason or json.null, strength = core.strength_names[h.strength],
			key_source = h.key_source or json.null };
	end
	local statuses, inputs = {}, {};
	for i, s in ipairs(report.statuses) do statuses[i] = s.status; end
	local prefix = core.message_prefix(fields);
	for i, a in ipairs(atts) do inputs[i] = base64.encode(core.fields_input(prefix, i > 1 and atts[i - 1].sig or "", a)); end
	return { verdict = report.verdict, weakest = array(report.weakest), hops = array(hops),
		statuses = array(statuses), notes = array(report.notes), chain_problem = report.chain_problem or json.null,
		signing_inputs = array(inputs) };
end

local function receive(req)
	local message = assert(xml.parse(req.stanza), "not well-formed");
	local fields = core.message_fields(message);
	local keys = {};
	for i, k in ipairs(req.keys) do keys[i] = map(k); end
	local base = map(req.view);
	local decision = core.receive_chain(message, fields, { origin = req.origin, domain = req.domain,
		takes_part = req.takes_part, keys = keys, in_view = base, now = core.parse_time(req.now),
		max_skew = req.max_skew, seen = {} });
	return { chain = decision.chain, chain_reason = decision.chain_reason or json.null,
		prev_key = decision.prev_key or json.null, in_view = core.received_in_view(base, decision),
		accepted = array(decision.accepted) };
end

local OPS = { verify = verify, receive = receive };
for line in io.lines() do
	local req = json.decode(line);
	local ok, answer = pcall(OPS[req.op], req);
	if not ok then
		-- a trust-path error is a refusal; anything else is a bug, and ends this process
		if type(answer) ~= "table" or not answer.tp_error then error(answer, 0); end
		answer = { refused = answer.reason, text = answer.text };
	end
	io.write(json.encode(answer), "\n");
	io.flush();
end
