-- mod_trust_path: Trust Path (urn:xmpp:trust-path:0) for Prosody 0.12 and later.
--
-- Every message a local client sends to a remote domain leaves with this server's signed
-- attestation of the two hops it saw (the client's c2s stream and the s2s stream), and
-- every message delivered to a local client carries this server's attestation of the hop
-- it arrived on and the c2s stream it is delivered on.  See xep/trust-path.xml; the options
-- are documented in README.md.  A host takes part iff this module is loaded on it.
--
-- This file is the module's hooks, and nothing else: what each hook does lives in this folder,
-- one concern per file, loaded with module:require():
--
--   core/            the protocol in plain Lua (signing input, decoder, verifier, server rules),
--                    the same functions as the Python core (reference/trustpath/core)
--   options          the options, read once
--   keys             the attestation key, the marker secret, the published key form
--   tls              TLS facts and DANE of a session, SASL and channel binding, the views
--   markers          internal markers (what this server knew when a message reached it)
--   attest           this server's own attestation
--   peers            remote domains: participation, keys, remembered policy
--   refusals         the errors a refused message turns into
--   pins             s2s certificate pins and how each s2s link was verified
--   preflight        the pre-flight query
--   sending          from a local client to a remote domain
--   receiving        from a remote domain
--   delivery         to a local client, and the archived copy
--
-- How it hooks into Prosody (0.12):
--   pre-message/*        message from a local client: anti-forgery (keep at most the client's
--                        own valid attestation), then an internal marker holding this server's
--                        <in/> view of the client's hop.
--   route/remote         sign (in view from the marker, out view of the s2s link) before
--                        mod_s2s sends; stanzas queued while the link comes up are signed in
--                        s2sout-established, so their <out/> describes the link they use.
--   message/* (s2sin)    verify the received chain with the sending domain's published keys,
--                        decide chain pass/absent/stripped/fail, and leave a marker with the
--                        <in/> view for delivery.
--   message/* (0.5, -0.25) around mod_mam (0), which archives a message for a local user: sign
--                        the delivery attestation for the resource mod_message hands the message
--                        to first, so that the archive stores the path as delivered (XEP rule 40).
--   stanzas/out filter   on c2s sessions: sign per delivered resource (also carbons, offline
--                        messages with 'stored', archive results), remove every marker.
--   iq <client-key/>, iq-get <preflight/>, s2s-check-certificate, s2s-authenticated: see above.

local here = (module.path or ""):match("^(.*)/[^/]*$") or ".";

-- The state every part shares: the core, this host, the namespaces, and each part once loaded.
local tp = {
	core = assert(loadfile(here .. "/core/init.lua"))(),
	host = module.host,
	NS_INTERNAL = "urn:xmpp:trust-path:internal:0",
	NS_DISCO_INFO = "http://jabber.org/protocol/disco#info",
	NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas",
	NS_MAM = "urn:xmpp:mam:2",
};
tp.core.crypto(); -- fail now, with how to fix it, if there is no Ed25519
for _, part in ipairs { "options", "keys", "tls", "markers", "attest", "peers", "refusals", "pins", "preflight",
		"sending", "receiving", "delivery" } do
	tp[part] = module:require(part)(tp);
end
local NS = tp.core.NS;
local tls, pins, preflight = tp.tls, tp.pins, tp.preflight;
local sending, receiving, delivery = tp.sending, tp.receiving, tp.delivery;

-- Discovery (XEP "Discovery"): the feature and the key form.
module:add_feature(NS);
module:add_extension(tp.keys.disco_form());

-- Session facts.
module:hook("authentication-success", function (event) tls.record_authentication(event.session); end, 10);
module:hook("iq-set/self/" .. NS .. ":client-key", sending.handle_client_key);
module:hook("iq-set/host/" .. NS .. ":client-key", function (event)
	if event.origin.type == "c2s" then return sending.handle_client_key(event); end
end);
module:hook_global("s2s-check-certificate", pins.check_certificate, 0);
module:hook("s2s-authenticated", pins.record_s2s_authentication, 10);

-- The pre-flight query.
module:hook("iq-get/self/" .. NS .. ":preflight", preflight.handle_preflight);
module:hook("iq-get/host/" .. NS .. ":preflight", preflight.handle_preflight);

-- From a local client: before mod_carbons (-0.5) and mod_mam (0) copy the stanza.
module:hook("pre-message/full", sending.on_client_message, 100);
module:hook("pre-message/bare", sending.on_client_message, 100);
module:hook("pre-message/host", sending.on_client_message, 100);
-- To a remote domain; a marker never leaves over s2s (0.5: after signing at 1).
module:hook("route/remote", sending.on_route_remote, 1);
module:hook("route/remote", sending.strip_leaving_markers, 0.5);
module:hook("s2sout-established", sending.on_s2sout_established, 10);

-- From a remote domain.
module:hook("message/full", receiving.on_remote_message, 100);
module:hook("message/bare", receiving.on_remote_message, 100);
module:hook("message/host", receiving.on_remote_host_message, 100);
-- Learn a new peer's keys as soon as it connects, so its first message need not wait.
module:hook("s2sin-established", receiving.on_s2sin_established);

-- The archived copy: mod_mam archives at priority 0; before it (0.5) and right after it
-- (-0.25), before mod_carbons (-0.5) and mod_message (-1).
module:hook("message/full", function (event) delivery.before_archiving(event, true); end, 0.5);
module:hook("message/bare", function (event) delivery.before_archiving(event, false); end, 0.5);
module:hook("pre-message/full", delivery.compact_path, 0.5);
module:hook("pre-message/bare", delivery.compact_path, 0.5);
module:hook("message/full", function (event) delivery.after_archiving(event, false); end, -0.25);
module:hook("message/bare", function (event) delivery.after_archiving(event, false); end, -0.25);
module:hook("pre-message/full", function (event) delivery.after_archiving(event, true); end, -0.25);
module:hook("pre-message/bare", function (event) delivery.after_archiving(event, true); end, -0.25);
-- A message kept in offline storage (delivery failed after all) takes its marker along.
module:hook("message/offline/handle", delivery.on_offline_handle, 100);

-- To a local client: the delivery filter on every c2s session of this host.
module:hook("resource-bind", function (event) delivery.add_filter(event.session); end, 100);
for _, session in pairs(prosody.full_sessions) do delivery.add_filter(session); end
function module.unload() delivery.remove_filters(); end
