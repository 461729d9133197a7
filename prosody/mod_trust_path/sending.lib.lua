-- From a local client to a remote domain (XEP "At the Sending Server"): the client's key
-- announcement (<session-key/>), anti-forgery on each message (keep at most the client's own
-- record, under the key its session announced; no signature is checked) with an internal marker
-- holding this server's in-view and what it kept, then this server's record with the out-view of
-- the s2s link when the message leaves (route/remote, or s2sout-established for a link still
-- coming up), and the refusal of a message whose <require/> a hop cannot meet.
local st = require "util.stanza";
local jid_lib = require "util.jid";
local async = require "util.async";
local xml = require "util.xml";

return function (tp)
	local core, host, max_skew = tp.core, tp.host, tp.options.max_skew;
	local NS, NS_INTERNAL = core.NS, tp.NS_INTERNAL;
	local tls, markers, peers, refusals, attest = tp.tls, tp.markers, tp.peers, tp.refusals, tp.attest;

	-- Client keys registered on earlier connections (XEP "Session Key Announcement": method "device"), per account:
	-- { [key] = first announced (epoch seconds) }.  A key first announced on this connection is
	-- registered for the next ones; it does not bind this one.
	local device_store = tp.options.device_keys and module:open_store("trust_path_client_keys") or nil;
	local MAX_DEVICE_KEYS = 32;

	local function known_device(session, key)
		if not device_store or not session.username then return false; end
		local keys = device_store:get(session.username) or {};
		if keys[key] then return true; end
		local count = 0;
		for _ in pairs(keys) do count = count + 1; end
		if count >= MAX_DEVICE_KEYS then
			-- forget the oldest: a client that makes a key per session must not fill the store
			local oldest;
			for k, t in pairs(keys) do if not oldest or t < keys[oldest] then oldest = k; end end
			keys[oldest] = nil;
		end
		keys[key] = os.time();
		local ok, err = device_store:set(session.username, keys);
		if not ok then module:log("warn", "could not register the client key of %s: %s", tostring(session.full_jid), tostring(err)); end
		return false;
	end

	-- <session-key key='ed25519:...'/> (XEP "Session Key Announcement"): the key a client signs
	-- this session's records with (base64 without padding; padding is accepted and dropped).
	local function handle_session_key(event)
		local origin, stanza = event.origin, event.stanza;
		local element = stanza.tags[1];
		local alg, key = tostring(element.attr.key or ""):match("^([^:]*):(.*)$");
		if alg and not core.ALGORITHMS[alg] then
			origin.send(st.error_reply(stanza, "cancel", "feature-not-implemented", "only ed25519 is supported"));
			return true;
		end
		key = key and key:gsub("=+$", "") or nil;
		if not core.is_key(key) then
			origin.send(st.error_reply(stanza, "modify", "bad-request",
				"the key must be ed25519: and a base64 encoding of 32 bytes"));
			return true;
		end
		-- The client's own view of this connection (optional): what the last hop of a message with
		-- <require/> is judged by when it is delivered here (XEP "Requiring Verified Hops").
		local client_view;
		if element.attr.view ~= nil then
			local ok, decoded = pcall(core.decode_view, element.attr.view, "view");
			if not ok then
				origin.send(st.error_reply(stanza, "modify", "bad-request",
					"the view must be method,result,tls,spki as a record writes it"));
				return true;
			end
			client_view = decoded;
		end
		origin.trust_path_session_key = key;
		origin.trust_path_client_view = client_view;
		origin.trust_path_device = known_device(origin, key);
		origin.trust_path_view = nil; -- its method may change (device)
		module:log("debug", "%s announced session key %s (%s)", origin.full_jid, key,
			origin.trust_path_device and "registered before" or "new");
		origin.send(st.reply(stanza));
		return true;
	end

	-- The method of this host's established link to `domain`, or "none".
	local function link_method(domain)
		local session = prosody.hosts[host].s2sout[domain];
		if session and (session.type == "s2sout" or session.type == "s2sin") then return tls.s2s_view(session, domain).method; end
		return "none";
	end

	-- Why a message with <require/> from a local client cannot go on (the error to return), or
	-- nil: its sender's hop (H1) cannot meet it, or it goes to a room (a groupchat message, or
	-- anything for a service of this server), which does not take part in this version.
	local function refuse_at_sending(stanza, fields, origin, in_view, decision, to_host)
		local required = fields.require;
		local hop, text;
		if stanza.attr.type == "groupchat" or (to_host ~= host and prosody.hosts[to_host]) then
			-- first, as it holds whatever the sender's hop: clients do not attest groupchat messages
			hop = { peer = to_host, method = prosody.hosts[to_host] and "none" or link_method(to_host),
				reason = "not-participating", required = required };
			text = ("%s is a room or service that does not take part in trust-path, so its hops cannot be verified"):format(to_host);
		else
			hop = core.sending_requirement_problem(required, origin.full_jid, in_view, decision);
			text = hop and ("the hop from %s is verified by '%s' only (%s), and the sender required '%s'"):format(
				hop.peer, hop.method, hop.reason, required);
		end
		if not hop then return nil; end
		module:log("info", "refusing message %s of %s: %s", fields.id, origin.full_jid, text);
		return refusals.error_for(stanza, "policy-violation", text, hop);
	end

	-- A message from a local client (pre-message/*): anti-forgery, then the marker.
	local function on_client_message(event)
		local origin, stanza = event.origin, event.stanza;
		if origin.type ~= "c2s" then return; end
		markers.take_markers(stanza); -- a client cannot bring its own marker
		if stanza.attr.type == "error" then
			core.remove_paths(stanza);
			if tp.refusals.remove_forged(stanza, true) > 0 then
				module:log("info", "removed a refusal from an error %s sent: a client refuses nothing", origin.full_jid);
			end
			return;
		end
		local fields = core.try(core.message_fields, stanza);
		if not fields or fields.id == "" then
			-- no id (or no 'to'): nothing may be attested, and nothing the client claims stays
			local required = stanza:get_child("require", NS);
			if fields and required and core.REQUIRED_STRENGTH[required.attr.verdict] then
				-- a message that cannot be attested cannot meet a requirement either
				-- (its error has no id the signer could bind a record to either: it goes unsigned)
				refusals.send(refusals.error_for(stanza, "policy-violation", "a message without an id cannot be attested",
					{ peer = origin.full_jid, method = tls.c2s_view(origin).method, reason = "no-id",
						required = required.attr.verdict }), origin);
				return true;
			end
			local removed = core.remove_paths(stanza);
			if removed > 0 then module:log("info", "removed %d record(s) from %s: the message cannot be attested", removed, origin.full_jid); end
			return;
		end
		local now = os.time();
		local decision = core.filter_client_path(stanza, origin.trust_path_session_key);
		if decision.removed > 0 then
			module:log("info", "removed %d forged record(s) from message %s of %s", decision.removed, fields.id, origin.full_jid);
		end
		if decision.chain == "fail" then
			module:log("info", "the record of %s on message %s was dropped: %s", origin.full_jid, fields.id, decision.chain_reason);
		end
		local to_host = jid_lib.host(fields.to);
		local in_view = tls.c2s_view(origin);
		-- A message that requires verified hops goes nowhere unless the sender's own hop meets it
		-- (whatever the route: a remote domain, a user of this host, a room), and never into a room.
		if core.REQUIRED_STRENGTH[fields.require] then
			local refusal = refuse_at_sending(stanza, fields, origin, in_view, decision, to_host);
			if refusal then refusals.send(refusal, origin); return true; end
		end
		-- Rooms and other local services do not take part (XEP "Storage, Copies, Archives and
		-- Rooms"): only messages to a remote domain or to a user of this host get a marker.
		if stanza.attr.type == "groupchat" or (to_host ~= host and prosody.hosts[to_host]) then return; end
		-- the client's key was announced on this session ("link"), or registered before ("device")
		local vouch = decision.vouch and (in_view.method == "device" and "device" or "link") or nil;
		stanza:add_direct_child(markers.make_marker(stanza, { in_view = in_view, chain = decision.chain,
			chain_reason = decision.chain_reason, vouch = vouch, removed = decision.removed,
			prev_sig = decision.kept and decision.kept.sig or nil }, now));
	end

	-- Sign a message that leaves over `session` (an authenticated s2s stream to `domain`):
	-- a message from a local client, or this server's refusal (`pending.refusal`).
	-- Returns true to send it, or false and an error stanza when <require/> cannot be met.
	local function sign_for_link(stanza, pending, session, domain)
		local out_view = tls.s2s_view(session, domain);
		local required = not pending.refusal and stanza:get_child("require", NS);
		required = required and required.attr.verdict;
		if core.REQUIRED_STRENGTH[required] then
			-- the hop to the remote domain (the sender's own hop was checked when the message came in)
			local hop = core.unmet_requirement(required, { { peer = domain, view = out_view } });
			if hop then
				module:log("info", "refusing message %s of %s: the hop to %s is verified by '%s' only, and the sender required '%s'",
					tostring(stanza.attr.id), tostring(stanza.attr.from), hop.peer, hop.method, required);
				return false, refusals.error_for(stanza, "policy-violation",
					("the hop to %s is verified by '%s' only, and the sender required '%s'"):format(hop.peer, hop.method, required), hop);
			end
		end
		local att, why = attest.sign_onto(stanza, pending, out_view, nil, nil);
		if not att then
			module:log("info", "message %s to %s leaves without this server's record: %s", tostring(stanza.attr.id), domain, why);
		end
		return true;
	end

	-- route/remote: sign a message from a local client, or this server's refusal, before mod_s2s
	-- sends it; a message that requires verified hops goes only to a domain that takes part.
	local function on_route_remote(event)
		local stanza, origin, to_host = event.stanza, event.origin, event.to_host;
		if stanza.name ~= "message" then return; end
		local marker = markers.take_markers(stanza);
		if not marker then return; end
		local pending = markers.read_marker(marker);
		if not pending then return; end
		local required = not pending.refusal and stanza:get_child("require", NS);
		required = required and required.attr.verdict;
		local function refuse(err)
			refusals.send(err, origin and origin.type == "c2s" and origin.full_jid and origin or nil);
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
				local method = session and (session.type == "s2sout" or session.type == "s2sin") and tls.s2s_view(session, to_host).method or "none";
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
		-- it, and sign in s2sout-established, when the link and its <out/> view exist (rule 33).
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
						if not sent then refusals.send(err); return false; end
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
		handle_session_key = handle_session_key,
		on_client_message = on_client_message,
		on_route_remote = on_route_remote,
		on_s2sout_established = on_s2sout_established,
		strip_leaving_markers = strip_leaving_markers,
	};
end
