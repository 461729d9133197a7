-- To a local client (XEP "Storage, Copies, Archives and Rooms"): one record per delivered
-- resource, naming it in 'p=' (a stanzas/out filter on c2s sessions: live messages, carbon
-- copies, offline messages with 'st=' = when this server received them, archive results), and
-- the archived copy as delivered (the same section).
local filters = require "util.filters";
local jid_lib = require "util.jid";
local st = require "util.stanza";

return function (tp)
	local core, host = tp.core, tp.host;
	local NS, NS_INTERNAL = core.NS, tp.NS_INTERNAL;
	local NS_CARBONS, NS_FORWARD, NS_DELAY, NS_MAM = core.NS_CARBONS, core.NS_FORWARD, core.NS_DELAY, tp.NS_MAM;
	local tls, markers, attest, refusals = tp.tls, tp.markers, tp.attest, tp.refusals;
	local full_sessions, bare_sessions = prosody.full_sessions, prosody.bare_sessions;

	-- Sign `message` (a clone, changed in place) for its delivery on `session`.  `how` is "live"
	-- (delivered as it arrives, or a carbon copy), "offline" (it waited: in offline storage, or
	-- in a hibernating session's XEP-0198 queue, resent on resumption: 'st=' = arrival time) or
	-- "archive" (a MAM result: the archived copy).
	local function attest_delivery(message, session, how)
		local marker = markers.take_markers(message);
		if not marker then return; end
		local presigned_sig = marker.attr["presigned-sig"];
		if presigned_sig and attest.last_sig(message) == presigned_sig then
			-- The record for the first resource was signed before mod_mam archived the message
			-- (see presign_for_archive below): that resource gets exactly what the archive holds;
			-- any other delivery gets its own record instead.
			if how == "archive" or (how == "live" and session.full_jid == marker.attr["presigned-for"]) then return; end
			attest.remove_last(message, presigned_sig);
		end
		local pending = markers.read_marker(marker);
		if not pending then return; end
		local stored = how ~= "live" and pending.arrived or nil;
		local att, why = attest.sign_onto(message, pending, tls.c2s_view(session), session.full_jid, stored);
		if not att then
			module:log("debug", "message %s delivered to %s without this server's record: %s",
				tostring(message.attr.id), tostring(session.full_jid), why);
		end
	end

	-- The message inside a carbon copy or an archive result, and how it is delivered.
	local WRAPPERS = {
		[NS_CARBONS] = { sent = "live", received = "live" },
		[NS_MAM] = { result = "archive" },
	};

	-- Messages signed before archiving for their only resource (see after_archiving below),
	-- with their markers, which they then do not carry.
	local presigned_markers = setmetatable({}, { __mode = "k" });

	-- Did this server hold `out` before delivering it: offline storage (mod_offline stamps a
	-- <delay/> from this host), or mod_smacks's queue (its <delay/> is from the user's bare JID;
	-- resent on resumption, or moved to offline storage when the session expired)?
	local function held(out, session)
		local bare = session.username and (session.username .. "@" .. host);
		for _, child in ipairs(out.tags) do
			if child.name == "delay" and child.attr.xmlns == NS_DELAY and (child.attr.from == host or child.attr.from == bare) then
				return true;
			end
		end
		return false;
	end

	local function attest_deliveries(out, session, resending)
		local waited = resending or held(out, session);
		-- carbons and archive results: attest the forwarded message, for this resource
		for _, wrapper in ipairs(out.tags) do
			local kinds = WRAPPERS[wrapper.attr.xmlns];
			local how = kinds and kinds[wrapper.name];
			-- a carbon copy that waited (a hibernating session's queue, a client-state buffer) is
			-- shown like a stored message too
			if how == "live" and waited then how = "offline"; end
			if how then
				local forwarded = wrapper:get_child("forwarded", NS_FORWARD);
				for _, inner in ipairs(forwarded and forwarded.tags or {}) do
					-- the forwarded message carries xmlns='jabber:client' explicitly
					if inner.name == "message" then attest_delivery(inner, session, how); end
				end
			end
		end
		if out:get_child("path", NS) or out:get_child("pending", NS_INTERNAL) then
			attest_delivery(out, session, waited and "offline" or "live");
		end
	end

	-- The bound session a stanza is delivered on.  After a stream resumption (XEP-0198) mod_smacks
	-- hands the hibernated session the new connection's filters, which Prosody calls with the new
	-- connection's own session object: that one never bound a resource, but shares its connection
	-- with the resumed session.  Its TLS facts and channel binding are the new connection's
	-- (also while mod_smacks resends its queue, before smacks-hibernation-end).
	local function delivering_session(session)
		if session.full_jid then return session; end
		if session.type ~= "c2s" or session.host ~= host or not session.username or not session.conn then return nil; end
		local user = bare_sessions[session.username .. "@" .. host];
		for _, bound in pairs(user and user.sessions or {}) do
			if bound.conn == session.conn and bound.full_jid then
				if bound.trust_path_resumed_by ~= session then
					tls.on_resumed(session, bound);
					bound.trust_path_resumed_by = session;
				end
				return bound;
			end
		end
		return nil;
	end

	-- Before mod_csi_simple (0) holds and mod_smacks (-999) queues what it sends (both copy the
	-- stanza): a message signed for its only resource before archiving takes its marker along,
	-- so that a copy delivered later is signed afresh, when and where it is delivered.
	local function queue_filter(stanza, session)
		if stanza.name ~= "message" or not (session.smacks or session.csi_counter) then return stanza; end
		local presigned = presigned_markers[stanza];
		if not presigned then return stanza; end
		local out = st.clone(stanza);
		out:add_direct_child(presigned);
		return out;
	end

	-- <require/> on the last hop (XEP "Requiring Verified Hops"): the message `stanza` carries, or
	-- the one a carbon copy or an archive result forwards; its verdict, and whether it is forwarded.
	local function required_of(stanza)
		local required = stanza:get_child("require", NS);
		if required then return required.attr.verdict, false; end
		for _, wrapper in ipairs(stanza.tags) do
			if WRAPPERS[wrapper.attr.xmlns] then
				local forwarded = wrapper:get_child("forwarded", NS_FORWARD);
				local inner = forwarded and forwarded:get_child("message", "jabber:client");
				required = inner and inner:get_child("require", NS);
				if required then return required.attr.verdict, true; end
			end
		end
		return nil;
	end

	-- Why the last hop to `session` cannot meet `required`: this server's view of it, and the view
	-- the client announced with its session key (a client that announced none does not take part).
	local function last_hop_problem(required, session)
		return core.delivery_requirement_problem(required, session.full_jid, tls.c2s_view(session),
			session.trust_path_client_view);
	end

	local function refusal_text(hop)
		return ("the hop to %s is verified by '%s' only (%s), and the sender required '%s'"):format(
			hop.peer, hop.method, hop.reason, hop.required);
	end

	-- Delivery to a resource whose hop does not meet the message's <require/> does not happen.  A
	-- live message reached a resource that meets it (the check on arrival refused it otherwise), so
	-- this copy (another resource, a carbon copy, an archive result) is dropped; a message held
	-- before delivery (offline storage, a resumed session's queue) is refused now, with the error.
	local function unmet_last_hop(stanza, bound, held_now)
		-- an error may echo the message it is about: it goes to its sender whatever that asked for
		if stanza.attr.type == "error" then return false; end
		local required, forwarded = required_of(stanza);
		if not core.REQUIRED_STRENGTH[required] then return false; end
		local hop = last_hop_problem(required, bound);
		if not hop then return false; end
		module:log("info", "not delivering message %s to %s: %s", tostring(stanza.attr.id), tostring(bound.full_jid),
			refusal_text(hop));
		if not forwarded and held_now then
			refusals.send(refusals.error_for(stanza, "policy-violation", refusal_text(hop), hop));
		end
		return true;
	end

	-- Sign a copy of `stanza` (with `presigned`, the marker kept aside for it, if any) for its
	-- delivery on `session` (the filter's), and remove every marker.
	local function signed_copy(stanza, session, presigned, resending)
		-- the same stanza object goes to every resource and into storage: sign a copy
		local out = st.clone(stanza);
		if presigned then out:add_direct_child(presigned); end
		local bound = delivering_session(session);
		if bound then
			local ok, err = pcall(attest_deliveries, out, bound, resending);
			if not ok then module:log("error", "attesting a delivery to %s failed: %s", tostring(bound.full_jid), tostring(err)); end
		end
		markers.take_markers(out); -- whatever happened, no marker reaches a client (archives, other wrappers)
		return out;
	end

	-- Client state (XEP-0352).  mod_csi_simple holds what is not urgent for an inactive client
	-- by pausing its connection's writes, in a filter that runs before this one: a message signed
	-- here would be written out later, its record older than its delivery (a false clock-skew
	-- after a long hold, and a delivery time the message never had).  So this filter keeps such a
	-- message unsigned, and everything held after it (to keep the order), per connection, and
	-- signs and writes them when the buffer is flushed (csi-flushing: an urgent stanza or the
	-- client's activity; csi-client-active; the session's end), with 'st=' the arrival (XEP:
	-- a client-state delay is shown like storage).  mod_smacks queued the stanza before this
	-- filter: a connection lost meanwhile loses nothing, its queue resends it.
	-- Kept by connection: when it is lost and the session hibernates (XEP-0198), mod_smacks has
	-- all of it and resends it through the new connection's filters; the lost one's is dropped.
	local csi_held = setmetatable({}, { __mode = "k" }); -- connection -> { session = ..., stanza, ... }

	-- After mod_csi_simple's filter: it left the state "inactive" iff it held this stanza (it
	-- switches to "flushing" when it lets the buffer go).
	local function csi_holding(session)
		return session.state == "inactive" and session.csi_counter ~= nil and session.conn ~= nil;
	end

	local function write_held(conn)
		local queue = conn and csi_held[conn];
		if not queue then return; end
		csi_held[conn] = nil;
		local session = queue.session;
		for i = 1, #queue do
			local out = queue[i];
			if out.name == "message" then out = signed_copy(out, session, nil, false); end
			local data = session.filter and session.filter("bytes/out", tostring(out)) or tostring(out);
			if data then
				local ok, err = pcall(conn.write, conn, data);
				if not ok then module:log("debug", "a held stanza for %s was not written: %s", tostring(session.full_jid), tostring(err)); end
			end
		end
	end

	local function delivery_filter(stanza, session)
		if stanza.name == "message" then
			local bound = delivering_session(session);
			if bound and unmet_last_hop(stanza, bound, session.resending_unacked or held(stanza, bound)) then return nil; end
		end
		local conn = session.conn;
		local waiting = conn and csi_held[conn];
		if waiting or stanza.name == "message" then
			if csi_holding(session) and (waiting or markers.has_marker(stanza) or presigned_markers[stanza]) then
				if not waiting then waiting = { session = session }; csi_held[conn] = waiting; end
				local presigned = presigned_markers[stanza];
				if presigned then stanza = st.clone(stanza); stanza:add_direct_child(presigned); end
				waiting[#waiting + 1] = stanza; -- mod_csi_simple's copy (mod_smacks queued the same one: not changed)
				return nil;
			elseif waiting then
				write_held(conn); -- not held (any more): what waited goes first
			end
		end
		if stanza.name ~= "message" then return stanza; end
		local resending = session.resending_unacked;
		local presigned = presigned_markers[stanza];
		if presigned then
			local bound = delivering_session(session);
			if bound and bound.full_jid == presigned.attr["presigned-for"] and not resending and not markers.has_marker(stanza) then
				return stanza;
			end
		elseif not markers.has_marker(stanza) then
			return stanza;
		end
		return signed_copy(stanza, session, presigned, resending);
	end

	-- The buffer is let go: what this filter kept goes first (the connection's writes are still
	-- paused, or the stanza that flushes it is on its way through the filters).
	local function on_csi_flushing(event) write_held(event.session and event.session.conn); end
	local function on_csi_active(event) write_held(event.origin and event.origin.conn); end
	local function on_unbind(event) write_held(event.session and event.session.conn); end

	-- The archived copy.  mod_mam archives a message to a local user in message/full and
	-- message/bare at priority 0, before mod_message (-1) delivers it.  So the record for
	-- the resource mod_message delivers to first is signed here, just before, onto the stanza
	-- itself: the archive stores it as that resource receives it, and the marker notes which
	-- resource and which signature, so that the filter delivers that very record there
	-- and signs afresh for any other resource (carbons, several resources).  The marker is
	-- kept out of the archived copy and put back for delivery right after mod_mam (or, when
	-- that resource is the user's only one, kept aside: the message then goes out untouched).
	-- A message with no resource online keeps its marker in the archive; it is signed when it
	-- is delivered (from offline storage, with 'stored') or read from the archive (with
	-- 'stored' = arrival time and <out/> naming the resource that queries).

	-- The session mod_message hands the message to first (mod_message's process_to_bare).
	local function first_recipient(stanza, to_full)
		local to = stanza.attr.to;
		if not to then return nil; end
		if to_full then
			local session = full_sessions[to];
			if session then return session; end
		end
		local t = stanza.attr.type;
		if t ~= nil and t ~= "chat" and t ~= "normal" then return nil; end
		local user = bare_sessions[to_full and jid_lib.bare(to) or to];
		local top = user and user.top_resources;
		return top and top[1] or nil;
	end

	local function presign_for_archive(event, to_full)
		local stanza = event.stanza;
		local marker = markers.direct_marker(stanza);
		if not marker or marker.attr["presigned-sig"] then return; end
		local session = first_recipient(stanza, to_full);
		if not (session and session.type == "c2s" and session.host == host and session.full_jid) then return; end
		-- a hibernating session (XEP-0198) delivers later, maybe over another connection: signed then
		if session.hibernating then return; end
		local pending = markers.read_marker(marker);
		if not pending then return; end
		local att = attest.sign_onto(stanza, pending, tls.c2s_view(session), session.full_jid, nil);
		if not att then return; end
		marker.attr["presigned-for"], marker.attr["presigned-sig"] = session.full_jid, att.sig;
		markers.remove_child(stanza, marker);
		event.trust_path_marker = marker;
	end

	-- On arrival, before it is archived or delivered: a message with <require/> that would be
	-- delivered live to resources none of which meets it is refused now, with the error; one for
	-- a user with no resource online waits in offline storage and is checked when delivered.
	local function refuse_unmet_last_hop(stanza, to_full)
		-- an error (an attested refusal on its way back, which may echo a <require/>) is never refused
		if stanza.attr.type == "error" then return false; end
		local required = stanza:get_child("require", NS);
		required = required and required.attr.verdict;
		if not core.REQUIRED_STRENGTH[required] or not markers.direct_marker(stanza) then return false; end
		local to = stanza.attr.to;
		local recipients = {};
		if to_full and full_sessions[to] then
			recipients = { full_sessions[to] };
		else
			local user = bare_sessions[to_full and jid_lib.bare(to) or to];
			recipients = user and user.top_resources or {};
		end
		local first;
		for _, session in ipairs(recipients) do
			local hop = last_hop_problem(required, session);
			if not hop then return false; end
			first = first or hop;
		end
		if not first then return false; end
		module:log("info", "refusing message %s to %s: %s", tostring(stanza.attr.id), tostring(to), refusal_text(first));
		refusals.send(refusals.error_for(stanza, "policy-violation", refusal_text(first), first));
		return true;
	end

	local function before_archiving(event, to_full)
		if event.stanza.name ~= "message" then return; end
		if refuse_unmet_last_hop(event.stanza, to_full) then return true; end
		presign_for_archive(event, to_full); -- the record for the first resource
	end

	local function after_archiving(event)
		local stanza = event.stanza;
		local marker = event.trust_path_marker;
		if marker then
			event.trust_path_marker = nil;
			local presigned_for = marker.attr["presigned-for"];
			local user = bare_sessions[jid_lib.bare(presigned_for)];
			local sessions = user and user.sessions;
			local only = sessions and next(sessions);
			if only and next(sessions, only) == nil and sessions[only].full_jid == presigned_for then
				-- the only resource, which gets the message as archived: nothing to sign, nothing to
				-- copy (no carbons), no marker to remove
				presigned_markers[stanza] = marker;
			else
				stanza:add_direct_child(marker);
			end
		end
	end

	-- A message kept in offline storage (delivery failed after all) takes its marker along.
	local function on_offline_handle(event)
		local marker = presigned_markers[event.stanza];
		if marker then
			presigned_markers[event.stanza] = nil;
			event.stanza:add_direct_child(marker);
		end
	end

	-- Run last, after other filters have changed the stanza, after mod_csi_simple (0) decided
	-- whether to hold it and after mod_smacks (-999) queued it: its queue keeps the marker, so a
	-- stanza resent on resumption (or moved to offline storage when the session expires) is
	-- signed when and where it is delivered, and a hibernating session (mod_smacks stops the
	-- stanza) signs nothing for a dead connection.
	local FILTER_PRIORITY, QUEUE_FILTER_PRIORITY = -1000, 10;
	local function add_filter(session)
		-- c2s_unbound: authenticated, no resource yet (a session that is about to resume)
		if (session.type == "c2s" or session.type == "c2s_unbound") and session.host == host then
			filters.add_filter(session, "stanzas/out", queue_filter, QUEUE_FILTER_PRIORITY);
			filters.add_filter(session, "stanzas/out", delivery_filter, FILTER_PRIORITY);
		end
	end
	local function remove_filters()
		for conn in pairs(csi_held) do write_held(conn); end -- unloaded: nothing stays behind
		for _, session in pairs(prosody.full_sessions) do
			if session.host == host then
				filters.remove_filter(session, "stanzas/out", queue_filter);
				filters.remove_filter(session, "stanzas/out", delivery_filter);
			end
		end
	end

	return {
		before_archiving = before_archiving,
		after_archiving = after_archiving,
		on_offline_handle = on_offline_handle,
		add_filter = add_filter,
		on_csi_flushing = on_csi_flushing,
		on_csi_active = on_csi_active,
		on_unbind = on_unbind,
		remove_filters = remove_filters,
	};
end
