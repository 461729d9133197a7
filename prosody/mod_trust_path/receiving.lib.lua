-- From a remote domain (XEP "At the Receiving Server"): decide what arrived (chain pass, absent,
-- stripped or fail) from the domain's published keys — a lookup, no signature check: the
-- recipient client checks every signature — refuse what does not meet its <require/>, and leave
-- a marker with the in-view and the decision for the delivery record.  A message from a domain
-- whose keys are not known yet waits for them without blocking its stream.  An error that
-- carries a <path/> (an attested refusal: XEP "Requiring Verified Hops") is handled like a
-- message, except that nothing refuses it: it carries nothing to protect but its id, and its
-- path lets the sender judge it.
local jid_lib = require "util.jid";

return function (tp)
	local core = tp.core;
	local tls, markers, peers, held = tp.tls, tp.markers, tp.peers, tp.held;

	local reposting = {}; -- held stanzas being delivered now: already handled here

	-- Decide about one message; nil to let it go on, true when it was refused (and answered),
	-- "refetch" when the origin's record names a key not among those cached.
	local function handle_remote(origin, stanza, domain, info, retried)
		local fields = core.try(core.message_fields, stanza);
		if not fields or fields.id == "" then return nil; end -- cannot be attested (the path stays as it came)
		local now = os.time();
		local takes_part = info.takes_part or peers.is_remembered(domain, now);
		local decision = core.receive_chain(stanza, { origin = domain, takes_part = takes_part, keys = info.keys,
			key_source = info.key_source, keys_unavailable = info.unavailable });
		if decision.refetch and not retried and peers.may_refetch(info, now) then
			return "refetch"; -- a key not in the cached set: ask once more (XEP "Discovery and Keys")
		end
		if decision.chain ~= "pass" then
			module:log("info", "message %s from %s: chain %s%s%s", fields.id, fields.sender, decision.chain,
				decision.chain_reason and (" (" .. decision.chain_reason .. ")") or "",
				decision.error and (": " .. decision.error) or "");
		end
		local in_view = tls.s2s_view(origin, domain);
		-- never an error in answer to an error (RFC 6120 8.3.1), even one that echoes a <require/>
		if core.REQUIRED_STRENGTH[fields.require] and stanza.attr.type ~= "error" then
			local hop = core.received_requirement_problem(fields.require, domain, in_view, decision);
			if hop then
				module:log("info", "refusing message %s from %s: the hop from %s does not meet '%s' (%s)", fields.id, fields.sender,
					domain, fields.require, hop.reason);
				local reply = tp.refusals.error_for(stanza, "policy-violation",
					("the hop from %s does not meet '%s' (%s)"):format(domain, fields.require, hop.reason), hop);
				tp.refusals.send(reply); -- signed when it leaves for the sender's domain
				return true;
			end
		end
		stanza:add_direct_child(markers.make_marker(stanza, { in_view = in_view, chain = decision.chain,
			chain_reason = decision.chain_reason, vouch = decision.vouch,
			prev_sig = decision.chain == "pass" and decision.sig or nil }, now));
		return nil;
	end

	local function on_remote_message(event)
		local origin, stanza = event.origin, event.stanza;
		if origin.type ~= "s2sin" or reposting[stanza] then return; end
		markers.take_markers(stanza); -- a remote server cannot bring a marker either
		if stanza.attr.type == "error" then
			if tp.refusals.remove_forged(stanza, false) > 0 then
				module:log("info", "removed a refusal in this host's name from an error %s sent (id %s)",
					tostring(stanza.attr.from), tostring(stanza.attr.id));
			end
			-- An error without a path goes on as it came.  One with a path (an attested refusal,
			-- or any error its sender chose to sign) is judged like a message from that domain:
			-- the chain decision, a malformed path removed, the delivery record.
			local path, unreadable = core.try(core.find_path_element, stanza);
			if not (path or unreadable) then return; end
		end
		local domain = jid_lib.host(stanza.attr.from);
		if not domain then return; end
		local now = os.time();
		local info = not peers.is_fetching(domain) and not held.is_holding(domain) and peers.cached_peer_info(domain, now);
		if info then
			local handled = handle_remote(origin, stanza, domain, info);
			if handled ~= "refetch" then return handled; end
			peers.forget(domain);
		end
		-- Hold the message until the domain's disco#info arrives (within the bounds of held.lib).
		-- Waiting here would block the stream it came on, and the disco#info answer may come back
		-- on that same stream.
		held.hold(domain, event, function () return peers.fetch_peer_info(domain); end, function (waiting, fetched)
			for _, e in ipairs(waiting) do
				local ok, err = pcall(function ()
					if handle_remote(e.origin, e.stanza, domain, fetched, true) == nil then
						reposting[e.stanza] = true;
						local posted, post_err = pcall(prosody.core_post_stanza, e.origin, e.stanza); -- deliver as if it had just arrived
						reposting[e.stanza] = nil;
						if not posted then error(post_err, 0); end
					end
				end);
				if not ok then module:log("error", "while delivering a held message from %s: %s", domain, tostring(err)); end
			end
		end, peers.unavailable_info);
		return true;
	end
	-- message/host from a remote server: for the server itself, never delivered to a client.
	local function on_remote_host_message(event)
		if event.origin.type == "s2sin" then markers.take_markers(event.stanza); end
	end

	-- Learn a new peer's keys as soon as it connects, so its first message need not wait.
	local function on_s2sin_established(event)
		local session = event.session;
		for domain in pairs(session.hosts or {}) do
			if not peers.cached_peer_info(domain, os.time()) then peers.fetch_peer_info(domain); end
		end
	end

	return {
		on_remote_message = on_remote_message,
		on_remote_host_message = on_remote_host_message,
		on_s2sin_established = on_s2sin_established,
	};
end
