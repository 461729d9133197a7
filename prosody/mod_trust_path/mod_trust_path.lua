-- mod_trust_path: Trust Path (urn:xmpp:trust-path:1) for Prosody 0.12 and later.
--
-- Every message a local client sends to a remote domain leaves with this server's signed record
-- of the hop it came in on (how the client authenticated: the SASL channel binding this server
-- checked, a client key registered before, or SASL alone) and the s2s hop it leaves on; every
-- message delivered to a local client carries this server's record of the hop it arrived on
-- (and what arrived: chain pass, absent, stripped or fail) and the c2s hop it is delivered on.
-- Servers sign but do not verify signatures: the recipient client verifies every record.  See
-- xep/trust-path.xml; the options are documented in README.md.  A host takes part iff this
-- module is loaded on it.
--
-- This file is the module's hooks, and nothing else: what each hook does lives in this folder,
-- one concern per file, loaded with module:require():
--
--   core/            the protocol in plain Lua (records, signing input, server rules, key form),
--                    the same functions as the Python core (reference/trustpath/core)
--   options          the options, read once
--   keys             the signing key, the marker secret, the published key form
--   tls              TLS facts and DANE of a session, SASL channel binding, the views
--   markers          internal markers (what this server knew when a message reached it; each
--                    valid only on the message it was made for)
--   attest           this server's own record
--   peers            remote domains: participation, keys and their key source, remembered policy
--   refusals         the errors a refused message turns into, signed by this server
--   held             messages from a remote domain held while its keys are fetched, bounded
--   pins             s2s certificate pins and how each s2s link was verified
--   preflight        the pre-flight query
--   sending          from a local client to a remote domain
--   receiving        from a remote domain
--   delivery         to a local client, and the archived copy
--
-- How it hooks into Prosody (0.12):
--   authentication-success  the channel binding util.sasl.scram checked (tls-unique in 0.12)
--   iq <session-key/>    the key the client signs this session's records with
--   pre-message/*        message from a local client: anti-forgery (keep at most the client's
--                        own record under that key), then an internal marker holding this
--                        server's in-view of the client's hop and what it kept.
--   route/remote         sign (in-view from the marker, out-view of the s2s link) before
--                        mod_s2s sends; stanzas queued while the link comes up are signed in
--                        s2sout-established, so their out-view describes the link they use.
--                        This server's refusals to a remote domain are signed there too (a
--                        marker without in-view); to a local client, right before they go.
--   message/* (s2sin)    decide chain pass/absent/stripped/fail from the sending domain's
--                        published keys (fetched over this server's own s2s link, rated by it),
--                        and leave a marker with the in-view for delivery (also for an error
--                        that carries a path: an attested refusal on its way back).
--   message/* (0.5, -0.25) around mod_mam (0), which archives a message for a local user: sign
--                        the delivery record for the resource mod_message hands the message
--                        to first, so that the archive stores the path as delivered (XEP: Storage, Copies, Archives and Rooms).
--   stanzas/out filter   on c2s sessions: sign per delivered resource (also carbons, offline
--                        messages with 'st=', archive results), remove every marker.
--   csi-flushing, csi-client-active  mod_csi_simple (XEP-0352) lets an inactive client's
--                        buffer go: messages the filter kept back while it was held are signed
--                        now, with 'st=' (a client-state delay is shown like storage).
--   smacks-hibernation-end  a resumed session: the new connection's TLS facts and binding,
--                        and the delivery filter again.  The filter runs after mod_smacks
--                        queues a stanza, so a hibernating session signs nothing; what it
--                        held is signed when resent (or delivered from offline storage after
--                        the session expired) on the connection that carries it, with 'st='.
--   iq-get <preflight/>, s2s-check-certificate, s2s-authenticated: see pins and preflight.

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
		"sending", "held", "receiving", "delivery" } do
	tp[part] = module:require(part)(tp);
end
local NS = tp.core.NS;
local tls, pins, preflight = tp.tls, tp.pins, tp.preflight;
local sending, receiving, delivery = tp.sending, tp.receiving, tp.delivery;

-- Discovery (XEP "Discovery and Keys"): the feature and the key form.
module:add_feature(NS);
local key_form = tp.keys.disco_form();
module:add_extension(key_form);
-- prosodyctl reload: the keys are read again (a key rotation needs no restart), and the form
-- that publishes them is replaced.
module:hook_global("config-reloaded", function ()
	if not tp.keys.reload() then return; end
	module:remove_item("extension", key_form);
	key_form = tp.keys.disco_form();
	module:add_extension(key_form);
end);

-- Session facts.
module:hook("authentication-success", function (event) tls.record_authentication(event.session); end, 10);
module:hook("iq-set/self/" .. NS .. ":session-key", sending.handle_session_key);
module:hook("iq-set/host/" .. NS .. ":session-key", function (event)
	if event.origin.type == "c2s" then return sending.handle_session_key(event); end
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

-- A marker is this server's only if its own hooks put it in: a client's and a remote server's
-- are removed below (pre-message/*, and message/* from s2sin at 100); a message from anywhere
-- else (a component: a room relaying what a user of another server sent, a module) loses every
-- marker before anything reads one.
local function strip_foreign_markers(event)
	local origin_type = event.origin and event.origin.type;
	if origin_type ~= "c2s" and origin_type ~= "s2sin" and event.stanza.name == "message" then
		tp.markers.take_markers(event.stanza);
	end
end
for _, kind in ipairs { "full", "bare", "host" } do module:hook("message/" .. kind, strip_foreign_markers, 1000); end

-- From a remote domain.
module:hook("message/full", receiving.on_remote_message, 100);
module:hook("message/bare", receiving.on_remote_message, 100);
module:hook("message/host", receiving.on_remote_host_message, 100);
-- Learn a new peer's keys as soon as it connects, so its first message need not wait.
module:hook("s2sin-established", receiving.on_s2sin_established);

-- The archived copy: mod_mam archives at priority 0; before it (0.5) and right after it
-- (-0.25), before mod_carbons (-0.5) and mod_message (-1).
module:hook("message/full", function (event) return delivery.before_archiving(event, true); end, 0.5);
module:hook("message/bare", function (event) return delivery.before_archiving(event, false); end, 0.5);
module:hook("message/full", delivery.after_archiving, -0.25);
module:hook("message/bare", delivery.after_archiving, -0.25);
-- A message kept in offline storage (delivery failed after all) takes its marker along.
module:hook("message/offline/handle", delivery.on_offline_handle, 100);

-- To a local client: the delivery filter on every c2s session of this host.
module:hook("resource-bind", function (event) delivery.add_filter(event.session); end, 100);
-- A resumed session (XEP-0198) goes on with the new connection's filters, and mod_smacks resends
-- its queue through them before it binds anything or fires smacks-hibernation-end: so the filter
-- is on every authenticated c2s session already (it signs only for a bound session).
module:hook("authentication-success", function (event) delivery.add_filter(event.session); end, 5);
-- Client state (XEP-0352, mod_csi_simple): what the filter kept for an inactive client is signed
-- and written when the buffer is let go (before mod_csi_simple resumes the writes, at 0 and 1).
module:hook("csi-flushing", delivery.on_csi_flushing, 10);
module:hook("csi-client-active", delivery.on_csi_active, 10);
module:hook("pre-resource-unbind", delivery.on_unbind, 10);
module:hook("smacks-hibernation-end", function (event)
	local original = event.resumed;
	if not original then return; end
	tls.on_resumed(event.origin, original);
	delivery.add_filter(original);
end);
for _, session in pairs(prosody.full_sessions) do delivery.add_filter(session); end
function module.unload() delivery.remove_filters(); end
