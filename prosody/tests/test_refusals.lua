-- The module's attested refusals (mod_trust_path/refusals.lib.lua, with markers.lib.lua,
-- attest.lib.lua and held.lib.lua) without a server: a refusal to a client of this host is
-- signed for its session (no 'i=' or 'c=', p= its full JID, h=refusal); one to a remote domain
-- carries a marker that says "this server's refusal", which signs at route/remote without an
-- in-view; an error beyond the held limits is never answered with an error.
-- Run: lua5.4 prosody/tests/test_refusals.lua (tests/test_lua.py runs it).
local setup = dofile((debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".") .. "/setup.lua");
local core = setup.core;
local st = require "util.stanza";

local passed, failed = 0, 0;
local function check(name, cond, detail)
	if cond then passed = passed + 1; else
		failed = failed + 1;
		print("FAIL " .. name .. (detail and (": " .. tostring(detail)) or ""));
	end
end

-- What the module's parts see of Prosody: module:send, module:log, timers, the sessions.
local routed, timers = {}, {};
_G.module = {
	log = function () end,
	send = function (_, stanza) routed[#routed + 1] = stanza; end,
	add_timer = function (_, _, f) timers[#timers + 1] = f; end,
};
local full_sessions = {};
_G.prosody = { full_sessions = full_sessions, hosts = { ["a.example"] = {}, ["rooms.a.example"] = {} } };

local HOST, NS = "a.example", core.NS;
local NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas";
local signing_key = core.signing_key(("\9"):rep(32));
local function part(name, tp) return assert(loadfile(setup.module_dir .. "/" .. name .. ".lib.lua"))()(tp); end
local tp = { core = core, host = HOST, NS_INTERNAL = "urn:xmpp:trust-path:internal:0", NS_STANZAS = NS_STANZAS,
	keys = { marker_key = ("m"):rep(32), signing_key = signing_key },
	tls = { c2s_view = function (session) return session.view; end },
	options = { limits = { held_messages = 1, held_bytes = 100000, held_total_bytes = 100000, held_seconds = 10 } } };
tp.markers = part("markers", tp);
tp.attest = part("attest", tp);
tp.refusals = part("refusals", tp);
local refusals, markers, attest = tp.refusals, tp.markers, tp.attest;

local C2S_VIEW = core.decode_view("tls-unique,pass,1.2,djSWh7FpINkrW5Hd", "o");
local S2S_VIEW = core.decode_view("pin,pass,1.3,5PxfJwOFRGv/usd9", "o");
local ALICE = "alice@a.example/phone";
local HOP = { peer = "b.example", method = "pkix", reason = "ca-only", required = "trusted" };
local function refused_message(from, to, id)
	return st.message({ from = from, to = to, id = id, type = "chat" }):text_tag("body", "secret words")
		:tag("require", { xmlns = NS, verdict = "trusted" }):up();
end
local function records(stanza) return core.decode_path(stanza) or {}; end

-- Does the path's first record verify over `stanza` as its signer wrote it, and is it the refuser's?
local function refusers_record(stanza)
	local atts = records(stanza);
	local first = atts[1];
	if not first then return nil, "no record"; end
	local fields = core.message_fields(stanza);
	local ok = core.verify_signature(first.key, first.sig, core.signing_input(fields, "", core.unsigned_text(first), first.covers));
	if not ok then return nil, "the signature does not verify"; end
	return first;
end

local function session(jid)
	local s = { type = "c2s", host = HOST, full_jid = jid, view = C2S_VIEW, sent = {} };
	s.send = function (stanza) s.sent[#s.sent + 1] = stanza; return true; end
	full_sessions[jid] = s;
	return s;
end
local alice = session(ALICE);

-- The error echoes nothing of the message but its id.
local err = refusals.error_for(refused_message(ALICE, "bob@b.example", "m1"), "policy-violation", "words", HOP);
check("the error echoes no payload", not tostring(err):find("secret", 1, true) and not err:get_child("require", NS)
	and not err:get_child("body"));

-- To a client of this host: sent to the session its 'to' names (not routed: a marker would be
-- removed on message/*), with a marker saying "this host's refusal", which the session's
-- delivery filter signs when the error goes out (attest_delivery in delivery.lib.lua).
routed, alice.sent = {}, {};
refusals.send(err);
local sent = alice.sent[1];
check("to a local client: sent to its session, not routed, unsigned yet, with a marker", #alice.sent == 1
	and #routed == 0 and records(sent)[1] == nil and markers.has_marker(sent));
-- the delivery filter: the marker read, then signed for the session; after a hibernation or a
-- client-state hold it is signed as "offline" (with the arrival as 'stored'), which a refusal's
-- record never states: it is signed at delivery, with the delivery time
local delivered = sent and st.clone(sent);
local held_pending = delivered and markers.read_marker(markers.take_markers(delivered));
local first, why;
if held_pending then
	attest.sign_onto(delivered, held_pending, C2S_VIEW, ALICE, held_pending.arrived);
	first, why = refusers_record(delivered);
end
check("the refuser's record: s=this host, no in-view or chain, the client's session, h=refusal, no 'st'", first
	and first.signer == HOST and first.in_view == nil and first.chain == nil and first.vouch == nil and first.removed == nil
	and first.stored == nil and first.out_peer == ALICE and core.view_text(first.out_view) == core.view_text(C2S_VIEW)
	and table.concat(first.covers, ",") == "refusal" and first.key == signing_key.public, first and first.text or why);

-- To the session the refused message came from (pre-message, route/remote): sent to it, marked.
routed, alice.sent = {}, {};
refusals.send(refusals.error_for(refused_message(ALICE, "bob@a.example", "m2"), "policy-violation", "words", HOP), alice);
check("to the sending session: sent to it, not routed, with a marker", #alice.sent == 1 and #routed == 0
	and markers.has_marker(alice.sent[1]));

-- To a remote domain: a marker saying "this host's refusal", signed when it leaves (route/remote).
routed = {};
local remote = refusals.error_for(refused_message("carol@c.example/pc", "bob@a.example", "m3"), "policy-violation", "words", HOP);
refusals.send(remote);
local out = routed[1];
check("to a remote domain: routed unsigned, with a marker", out and records(out)[1] == nil and markers.has_marker(out));
local marker = out and markers.take_markers(out);
local pending = marker and markers.read_marker(marker);
check("the marker reads as this host's refusal", pending and pending.refusal == true and pending.in_view == nil
	and pending.chain == nil and pending.arrived ~= nil);
local att = pending and attest.sign_onto(out, pending, S2S_VIEW, nil, nil);
first, why = refusers_record(out or st.message());
check("signed with the s2s out-view: no in-view, chain or p=", att and first and first.in_view == nil and first.chain == nil
	and first.out_peer == nil and core.view_text(first.out_view) == core.view_text(S2S_VIEW)
	and table.concat(first.covers, ",") == "refusal", why);
check("a refusal's record is only ever its first", att and attest.sign_onto(out, pending, S2S_VIEW, nil, nil) == nil
	and #records(out) == 1);
-- the refusal marker is honoured only on the error it was made for
local moved = st.clone(remote);
local replayed = refusals.error_for(refused_message("carol@c.example/pc", "bob@a.example", "other"), "policy-violation", "w", HOP);
for _, child in ipairs(moved.tags) do if child.attr.xmlns == tp.NS_INTERNAL then replayed:add_direct_child(child); end end
check("a refusal marker moved onto another error is not honoured", markers.take_markers(replayed) == nil);

-- Nothing to sign for: a local user without that session, a local service, an error without an id.
routed, alice.sent = {}, {};
refusals.send(refusals.error_for(refused_message("dave@a.example/gone", "bob@b.example", "m4"), "policy-violation", "w", HOP));
refusals.send(refusals.error_for(refused_message("rooms.a.example", "bob@b.example", "m5"), "policy-violation", "w", HOP));
check("no session, a local service: routed unsigned, without a marker", #routed == 2
	and records(routed[1])[1] == nil and records(routed[2])[1] == nil
	and not markers.has_marker(routed[1]) and not markers.has_marker(routed[2]));
refusals.send(refusals.error_for(st.message({ from = ALICE, to = "bob@b.example" }), "policy-violation", "w", HOP));
local no_id = alice.sent[1] and st.clone(alice.sent[1]);
local no_id_pending = no_id and markers.read_marker(markers.take_markers(no_id) or st.stanza("x"));
check("no id: to its session, and the filter's signing finds nothing to bind a record to", no_id ~= nil
	and (no_id_pending == nil or attest.sign_onto(no_id, no_id_pending, C2S_VIEW, ALICE, nil) == nil)
	and records(no_id)[1] == nil);

-- Rule 5: every <unverified-hop/> a local client sends goes, and every one from elsewhere in this
-- host's name, whichever <error/> child holds it: a stanza error has one <error/>, but a forger
-- may put the refusal into a second one, after a plain first.
local function hops_left(stanza)
	local n = 0;
	for _, e in ipairs(stanza.tags) do
		if e.name == "error" then
			for _, child in ipairs(e.tags) do
				if child.name == "unverified-hop" and child.attr.xmlns == NS then n = n + 1; end
			end
		end
	end
	return n;
end
local function forged_error(first_by, second_by)
	return st.message({ type = "error", from = "carol@a.example/pc", to = ALICE, id = "f1" })
		:tag("error", { type = "cancel", by = first_by }):tag("undefined-condition", { xmlns = NS_STANZAS }):up():up()
		:tag("error", { type = "cancel", by = second_by }):tag("policy-violation", { xmlns = NS_STANZAS }):up()
		:tag("unverified-hop", { xmlns = NS, peer = "b.example", method = "none", reason = "not-verified",
			required = "trusted" }):up():up();
end
local from_client = forged_error("b.example", HOST);
check("from a local client: the refusal in a second <error/> is removed",
	refusals.remove_forged(from_client, true) == 1 and hops_left(from_client) == 0, tostring(from_client));
local in_our_name = forged_error("b.example", HOST);
check("from elsewhere, in this host's name in a second <error/>: removed",
	refusals.remove_forged(in_our_name, false) == 1 and hops_left(in_our_name) == 0, tostring(in_our_name));
local theirs = forged_error(HOST, "b.example");
check("from elsewhere, in another server's name: kept (its path lets the sender judge it)",
	refusals.remove_forged(theirs, false) == 0 and hops_left(theirs) == 1, tostring(theirs));

-- Held while a domain's keys are fetched: beyond the limits a message is answered with
-- <resource-constraint/>, an error (an attested refusal on its way back) never is: it is decided
-- at once, as if the fetch had failed.
local held = part("held", tp);
local never = { next = function () end };
local decided = {};
local function decide(events, info) decided[#decided + 1] = { events = events, info = info }; end
local function unavailable() return { unavailable = true }; end
local function event(stanza) return { origin = { type = "s2sin" }, stanza = stanza }; end
routed = {};
held.hold("b.example", event(refused_message("bob@b.example/desk", ALICE, "h1")), function () return never; end, decide, unavailable);
local incoming_error = st.message({ type = "error", from = "bob@b.example", to = ALICE, id = "h2" })
	:tag("error", { type = "cancel", by = "b.example" }):tag("policy-violation", { xmlns = NS_STANZAS }):up():up()
	:tag("path", { xmlns = NS }):text("x"):up();
held.hold("b.example", event(incoming_error), function () return never; end, decide, unavailable);
check("an error beyond the limits is not answered", #routed == 0);
check("but decided at once, without the keys", #decided == 1 and decided[1].events[1].stanza == incoming_error
	and decided[1].info.unavailable == true);
held.hold("b.example", event(refused_message("bob@b.example/desk", ALICE, "h3")), function () return never; end, decide, unavailable);
check("a message beyond the limits is answered with <resource-constraint/>", #routed == 1
	and routed[1]:get_child("error"):get_child("resource-constraint", NS_STANZAS) ~= nil and #decided == 1);

print(("%d passed, %d failed"):format(passed, failed));
os.exit(failed == 0 and 0 or 1);
