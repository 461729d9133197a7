-- From a local client to a remote domain (XEP "At the Sending Server"): the client's key
-- announcement, anti-forgery on each message with an internal marker holding this server's
-- <in/> view, then this server's attestation with the <out/> view of the s2s link when the
-- message leaves (route/remote, or s2sout-established for a link still coming up), and the
-- refusal of a message whose <require/> a hop cannot meet.
local st = require "util.stanza";
local jid_lib = require "util.jid";
local async = require "util.async";
local xml = require "util.xml";

return function (tp)
	local core, host, max_skew = tp.core, tp.host, tp.options.max_skew;
	local NS, NS_INTERNAL = core.NS, tp.NS_INTERNAL;
	local tls, markers, peers, refusals, attest = tp.tls, tp.markers, tp.peers, tp.refusals, tp.attest;

	-- <client-key/> (XEP "Client Key Announcement"): the key a client signs this session's
	-- attestations with.
	local function handle_client_key(event)
		local origin, stanza = event.origin, event.stanza;
		local element = stanza.tags[1];
		if element.attr.alg and element.attr.alg ~= "ed25519" then
			origin.send(st.error_reply(stanza, "cancel", "feature-not-implemented", "only ed25519 is supported"));
			return true;
		end
		if not core.is_b64_32(element.attr.key) then
			origin.send(st.error_reply(stanza, "modify", "bad-request", "the key must be a base64 encoding of 32 bytes"));
			return true;
		end
		origin.trust_path_client_key = element.attr.key;
		module:log("debug", "%s announced client key %s", origin.full_jid, element.attr.key);
		origin.send(st.reply(stanza));
		return true;
	end

	-- A message from a local client (pre-message/*): anti-forgery, then the marker.
	local function on_client_message(event)
		local origin, stanza = event.origin, event.stanza;
		if origin.type ~= "c2s" then return; end
		markers.take_markers(stanza); -- a client cannot bring its own marker
		if stanza.attr.type == "error" then
			core.remove_paths(stanza);
			return;
		end
		local fields = core.try(core.message_fields, stanza);
		if not fields then
			-- no 'id' (or no 'to'): nothing may be attested, and nothing the client claims stays
			local removed = core.remove_paths(stanza);
			if removed > 0 then module:log("info", "removed %d attestation(s) from %s: the message cannot be attested", removed, origin.full_jid); end
			return;
		end
		local now = os.time();
		local result = core.filter_client_path(stanza, fields, origin.full_jid,
			{ domain = host, client_key = origin.trust_path_client_key, now = now, max_skew = max_skew });
		if result.removed > 0 then
			module:log("info", "removed %d forged attestation(s) from message %s of %s", result.removed, fields.id, origin.full_jid);
		end
		if result.chain == "fail" then
			module:log("info", "the attestation of %s on message %s was dropped: %s", origin.full_jid, fields.id, result.chain_reason);
		end
		local in_view = tls.in_view_of(tls.c2s_view(origin), core.client_in_view, result);
		-- Rooms and other local services do not take part (XEP "Storage, Copies, Archives and
		-- Rooms"): only messages to a remote domain or to a user of this host get a marker.
		local to_host = jid_lib.host(fields.to);
		if stanza.attr.type == "groupchat" or (to_host ~= host and prosody.hosts[to_host]) then return; end
		stanza:add_direct_child(markers.make_marker(in_view, result.kept and origin.trust_path_client_key or nil,
			result.kept and result.kept.sig or nil, now));
	end

	-- Sign a message that leaves over `session` (an authenticated s2s stream to `domain`).
	-- Returns true to send it, or false and an error stanza when <require/> cannot be met.
	local function sign_for_link(stanza, pending, session, domain)
		local out_view = tls.s2s_view(session, domain);
		local required = stanza:get_child("require", NS);
		required = required and required.attr.verdict;
		if core.REQUIRED_STRENGTH[required] then
			local client_out;
			local atts = core.try(core.decode_path, stanza);
			if atts and atts[1] then client_out = atts[1].out_view; end
			local hop = core.unmet_requirement(required, { out_view, client_out }, 2);
			if hop then
				module:log("info", "refusing message %s of %s: the hop to %s is verified by '%s' only, and the sender required '%s'",
					tostring(stanza.attr.id), tostring(stanza.attr.from), hop.peer, hop.method, required);
				return false, refusals.error_for(stanza, "policy-violation",
					("the hop to %s is verified by '%s' only, and the sender required '%s'"):format(hop.peer, hop.method, required), hop);
			end
		end
		local att, why = attest.sign_onto(stanza, pending, out_view);
		if not att then
			module:log("info", "message %s to %s leaves without this server's attestation: %s", tostring(stanza.attr.id), domain, why);
		end
		return true;
	end

	-- route/remote: sign a message from a local client before mod_s2s sends it; a message that
	-- requires verified hops goes only to a domain that takes part.
	local function on_route_remote(event)
		local stanza, origin, to_host = event.stanza, event.origin, event.to_host;
		if stanza.name ~= "message" then return; end
		local marker = markers.take_markers(stanza);
		if not marker then return; end
		local pending = markers.read_marker(marker);
		if not pending then return; end
		local required = stanza:get_child("require", NS);
		required = required and required.attr.verdict;
		local function refuse(err)
			if origin and origin.type == "c2s" and origin.send then origin.send(err); else module:send(err); end
			return true;
		end
		if core.REQUIRED_STRENGTH[required] then
			-- A message that requires verified hops goes only to a domain that takes part.
			local now = os.time();
			local info = peers.cached_peer_info(to_host, now);
			if not info and async.ready() then info = async.wait_for(peers.fetch_peer_info(to_host)); end
			if not (info and info.takes_part) and not peers.is_remembered(to_host, now) then
				module:log("info", "refusing message %s of %s: %s does not take part in trust-path and the sender required '%s'",
					tostring(stanza.attr.id), tostring(stanza.attr.from), to_host, required);
				local session = prosody.hosts[host].s2sout[to_host];
				local method = session and session.type == "s2sout" and tls.s2s_view(session, to_host).method or "none";
				return refuse(refusals.error_for(stanza, "policy-violation",
					("%s does not take part in trust-path, so its hops cannot be verified"):format(to_host),
					{ peer = to_host, method = method, reason = "not-participating", required = required }));
			end
		end
		local session = prosody.hosts[host].s2sout[to_host];
		if session and (session.type == "s2sout" or session.type == "s2sin") then
			local ok, err = sign_for_link(stanza, pending, session, to_host);
			if not ok then return refuse(err); end
			return; -- mod_s2s sends it
		end
		-- The link is still being set up: mod_s2s queues a serialized copy.  Keep the marker in
		-- it, and sign in s2sout-established, when the link and its <out/> view exist (rule 43).
		stanza:add_direct_child(marker);
	end

	-- s2sout-established: messages queued (serialized, with their markers) while the link came up
	-- are signed now, so that their <out/> describes the link they use.
	local function on_s2sout_established(event)
		local session = event.session;
		local sendq = session.sendq;
		if not sendq then return; end
		local domain = session.to_host;
		local i = 1;
		while i <= #sendq do
			local data = sendq[i];
			local keep = true;
			if type(data[1]) == "string" and data[1]:find(NS_INTERNAL, 1, true) then
				local ok, result = pcall(function ()
					local stanza = assert(xml.parse(data[1]));
					stanza.attr.xmlns = nil;
					local marker = markers.take_markers(stanza);
					local pending = marker and markers.read_marker(marker);
					if pending then
						local sent, err = sign_for_link(stanza, pending, session, domain);
						if not sent then module:send(err); return false; end
						module:log("debug", "signed message %s, queued while the link to %s came up", tostring(stanza.attr.id), domain);
					end
					data[1] = tostring(stanza);
					return true;
				end);
				if not ok then
					module:log("error", "could not sign a message queued for %s: %s; dropping it", domain, tostring(result));
					keep = false;
				else
					keep = result;
				end
			end
			if keep then i = i + 1; else table.remove(sendq, i); end
		end
	end

	-- Never let a marker leave over s2s (a message that got one here and is routed on).
	local function strip_leaving_markers(event)
		local stanza = event.stanza;
		if stanza.name == "message" and markers.has_marker(stanza) then
			-- route/remote at priority 1 keeps a marker only for a link that is still coming up;
			-- mod_s2s then queues it and s2sout-established removes it.  Anything else goes here.
			local session = prosody.hosts[host].s2sout[event.to_host];
			if session and (session.type == "s2sout" or session.type == "s2sin") then markers.take_markers(stanza); end
		end
	end

	return {
		handle_client_key = handle_client_key,
		on_client_message = on_client_message,
		on_route_remote = on_route_remote,
		on_s2sout_established = on_s2sout_established,
		strip_leaving_markers = strip_leaving_markers,
	};
end
