-- To a local client (XEP "Storage, Copies, Archives and Rooms"): one attestation per delivered
-- resource (a stanzas/out filter on c2s sessions: live messages, carbon copies, offline messages
-- with 'stored', archive results), and the archived copy as delivered (XEP rule 40).
local filters = require "util.filters";
local jid_lib = require "util.jid";
local modulemanager = require "core.modulemanager";
local xml = require "util.xml";
local st = require "util.stanza";

return function (tp)
	local core, host = tp.core, tp.host;
	local NS, NS_INTERNAL = core.NS, tp.NS_INTERNAL;
	local NS_CARBONS, NS_FORWARD, NS_DELAY, NS_MAM = core.NS_CARBONS, core.NS_FORWARD, core.NS_DELAY, tp.NS_MAM;
	local tls, markers, attest = tp.tls, tp.markers, tp.attest;

	-- How the archive stores the path.  mod_mam clones the message twice and mod_storage_internal
	-- turns every element and attribute of the stored copy into Lua source; for a <path/>
	-- (dozens of attributes) that was most of the cost of archiving a message.  So while
	-- mod_mam runs, the <path/> is replaced by its XML text in one internal element
	-- (<archived-path/>), and put back right after (after_archiving below); an archive result
	-- gets the <path/> back, parsed from that text, before it goes to the client.  The archive
	-- holds the path as delivered: the same elements with the same attribute values.
	local ARCHIVED_PATH = "archived-path";

	local function compact_path(event)
		local stanza = event.stanza;
		if stanza.name ~= "message" or not modulemanager.is_loaded(host, "mam") then return; end
		for _, child in ipairs(stanza.tags) do
			if child.name == "path" and child.attr.xmlns == NS then
				local compact = core.element(ARCHIVED_PATH, { xmlns = NS_INTERNAL });
				compact[1] = tostring(child);
				markers.replace_child(stanza, child, compact);
				event.trust_path_path, event.trust_path_stanza = child, stanza;
				return;
			end
		end
	end

	-- The <path/> of an archived message, from its <archived-path/> (a result of mod_mam).
	local function expand_path(message)
		for _, child in ipairs(message.tags) do
			if child.name == ARCHIVED_PATH and child.attr.xmlns == NS_INTERNAL then
				-- No token needed: whoever could put one here could as well have put a <path/>,
				-- and the client checks every signature in it.
				local ok, path = pcall(xml.parse, child:get_text());
				if ok and path and path.name == "path" and path.attr.xmlns == NS then
					markers.replace_child(message, child, path);
				else
					module:log("warn", "message %s in the archive has an unreadable path", tostring(message.attr.id));
				end
				return; -- otherwise removed with the markers
			end
		end
	end

	-- Remove the <attestation/> `att` from `path`, and `path` from `message` if it is then empty.
	local function remove_attestation(message, path, att)
		markers.remove_child(path, att);
		if #path.tags == 0 then markers.remove_child(message, path); end
	end

	-- Sign `message` (a clone, changed in place) for its delivery on `session`.  `how` is "live"
	-- (delivered as it arrives, or a carbon copy), "offline" (it waited in offline storage:
	-- 'stored' = arrival time) or "archive" (a MAM result: the archived copy).
	local function attest_delivery(message, session, how)
		expand_path(message);
		local marker = markers.take_markers(message);
		if not marker then return; end
		local presigned_sig = marker.attr["presigned-sig"];
		if presigned_sig then
			-- The attestation for the first resource was signed before mod_mam archived the
			-- message (see presign_for_archive below): that resource gets exactly what the
			-- archive holds; any other delivery gets its own attestation instead.
			local path = message:get_child("path", NS);
			local last = path and path.tags[#path.tags];
			if last and last.attr.sig == presigned_sig then
				if how == "archive" or (how == "live" and session.full_jid == marker.attr["presigned-for"]) then return; end
				remove_attestation(message, path, last);
			end
		end
		local pending = markers.read_marker(marker);
		if not pending then return; end
		local stored = how ~= "live" and pending.arrived or nil;
		local att, why = attest.sign_onto(message, pending, tls.c2s_view(session), stored);
		if not att then
			module:log("debug", "message %s delivered to %s without this server's attestation: %s",
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

	local function attest_deliveries(out, session)
		-- carbons and archive results: attest the forwarded message, for this resource
		for _, wrapper in ipairs(out.tags) do
			local kinds = WRAPPERS[wrapper.attr.xmlns];
			local how = kinds and kinds[wrapper.name];
			if how then
				local forwarded = wrapper:get_child("forwarded", NS_FORWARD);
				for _, inner in ipairs(forwarded and forwarded.tags or {}) do
					-- the forwarded message carries xmlns='jabber:client' explicitly
					if inner.name == "message" then attest_delivery(inner, session, how); end
				end
			end
		end
		if out:get_child("path", NS) or out:get_child("pending", NS_INTERNAL) then
			local delay = out:get_child("delay", NS_DELAY);
			attest_delivery(out, session, (delay ~= nil and delay.attr.from == host) and "offline" or "live");
		end
	end

	local function delivery_filter(stanza, session)
		if stanza.name ~= "message" or not session.full_jid then return stanza; end
		local presigned = presigned_markers[stanza];
		if presigned then
			if session.full_jid == presigned.attr["presigned-for"] and not markers.has_marker(stanza) then return stanza; end
		elseif not markers.has_marker(stanza) then
			return stanza;
		end
		-- the same stanza object goes to every resource and into storage: sign a copy
		local out = st.clone(stanza);
		if presigned then out:add_direct_child(presigned); end
		local ok, err = pcall(attest_deliveries, out, session);
		if not ok then module:log("error", "attesting a delivery to %s failed: %s", tostring(session.full_jid), tostring(err)); end
		markers.take_markers(out); -- whatever happened, no marker reaches a client (archives, other wrappers)
		return out;
	end

	-- The archived copy.  mod_mam archives a message to a local user in message/full and
	-- message/bare at priority 0, before mod_message (-1) delivers it.  So the attestation for
	-- the resource mod_message delivers to first is signed here, just before, onto the stanza
	-- itself: the archive stores it as that resource receives it, and the marker notes which
	-- resource and which signature, so that the filter delivers that very attestation there
	-- and signs afresh for any other resource (carbons, several resources).  The marker is
	-- kept out of the archived copy and put back for delivery right after mod_mam (or, when
	-- that resource is the user's only one, kept aside: the message then goes out untouched).
	-- A message with no resource online keeps its marker in the archive; it is signed when it
	-- is delivered (from offline storage, with 'stored') or read from the archive (with
	-- 'stored' = arrival time and <out/> naming the resource that queries).
	local full_sessions, bare_sessions = prosody.full_sessions, prosody.bare_sessions;

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
		local pending = markers.read_marker(marker);
		if not pending then return; end
		local att = attest.sign_onto(stanza, pending, tls.c2s_view(session), nil);
		if not att then return; end
		marker.attr["presigned-for"], marker.attr["presigned-sig"] = session.full_jid, att.sig;
		markers.remove_child(stanza, marker);
		event.trust_path_marker = marker;
	end

	local function before_archiving(event, to_full)
		if event.stanza.name ~= "message" then return; end
		presign_for_archive(event, to_full); -- the attestation for the first resource
		compact_path(event);
	end

	local function restore_path(stanza, path)
		for _, child in ipairs(stanza.tags) do
			if child.name == ARCHIVED_PATH and child.attr.xmlns == NS_INTERNAL then markers.replace_child(stanza, child, path); return; end
		end
	end

	local function after_archiving(event, from_client)
		local stanza = event.stanza;
		local path = event.trust_path_path;
		if path then
			event.trust_path_path = nil;
			restore_path(stanza, path);
			if from_client and event.trust_path_stanza ~= stanza then
				-- mod_mam replaced event.stanza with a copy, which goes on to a local recipient; a
				-- message to a remote domain is routed as the original stanza object.  Only one of
				-- them goes on (and mod_carbons has made its copies by then), so they share the path.
				restore_path(event.trust_path_stanza, path);
			end
			event.trust_path_stanza = nil;
		end
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

	-- Run last, after other filters have changed the stanza.
	local FILTER_PRIORITY = -100;
	local function add_filter(session)
		if session.type == "c2s" and session.host == host then
			filters.add_filter(session, "stanzas/out", delivery_filter, FILTER_PRIORITY);
		end
	end
	local function remove_filters()
		for _, session in pairs(prosody.full_sessions) do
			if session.host == host then filters.remove_filter(session, "stanzas/out", delivery_filter); end
		end
	end

	return {
		compact_path = compact_path,
		before_archiving = before_archiving,
		after_archiving = after_archiving,
		on_offline_handle = on_offline_handle,
		add_filter = add_filter,
		remove_filters = remove_filters,
	};
end
