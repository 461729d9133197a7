-- The errors a refused message turns into: <policy-violation/> or <remote-server-not-found/>
-- with <unverified-hop/> naming the hop (XEP "Requiring Verified Hops"), sent back to the sender,
-- signed by this server (an attested refusal: its first record is this server's, without 'i='
-- or 'c=', since nothing brought the error here; it covers the refusal payload, h=refusal).
local st = require "util.stanza";
local xml = require "util.xml";
local jid_lib = require "util.jid";

return function (tp)
	local core, host = tp.core, tp.host;
	local NS, NS_STANZAS = core.NS, tp.NS_STANZAS;
	local markers = tp.markers;
	local full_sessions = prosody.full_sessions;

	local function copy(t) local c = {}; for k, v in pairs(t) do c[k] = v; end return c; end

	-- The error for a refused message (`stanza`), echoing nothing of it but its id (like RFC
	-- 8689 section 5's non-delivery reports).  Not signed yet: send() signs it.
	local function error_for(stanza, condition, text, hop)
		local err = st.message({ type = "error", from = stanza.attr.to, to = stanza.attr.from, id = stanza.attr.id })
			:tag("error", { type = "cancel", by = host })
			:tag(condition, { xmlns = NS_STANZAS }):up();
		if hop then err:tag("unverified-hop", { xmlns = NS, peer = hop.peer, method = hop.method, reason = hop.reason,
			required = hop.required }):up(); end
		err:text_tag("text", text, { xmlns = NS_STANZAS });
		return err;
	end

	-- What a marker remembers of a refusal: that it is this server's own, and nothing else (no
	-- in-view, no chain: the refuser originates the error).
	local REFUSAL = { refusal = true };

	-- The bound c2s session of this host that `to` names, or nil.
	local function client_session(to)
		local session = to and full_sessions[to];
		if session and session.type == "c2s" and session.host == host and session.full_jid == to then return session; end
		return nil;
	end

	-- Send this server's refusal `err` to the sender, with a marker saying "this server's
	-- refusal" (no in-view, no chain: the refuser originates the error).  To a client of this
	-- host (`session`, the one the refused stanza came from, or the one its 'to' names): sent to
	-- that session, whose delivery filter signs it when it goes out (delivery.lib.lua), with the
	-- c2s view and p= its full JID, so that a refusal held in a hibernating session's queue
	-- (XEP-0198) or a client-state buffer (XEP-0352) is signed when it is delivered and reads no
	-- clock-skew; not routed, since mod_trust_path.lua removes markers from stanzas of this
	-- module's origin on message/*.  To a remote domain: routed, and signed at route/remote or
	-- s2sout-established with the view of the s2s link it leaves on (sending.lib.lua), as a
	-- message's record is (route/remote for a remote 'to' fires no message/* hook of this host
	-- that would remove the marker; see core/stanza_router.lua).
	local function send(err, session)
		local to = err.attr.to;
		local to_host = jid_lib.host(to);
		local client = session or (to_host == host and client_session(to));
		if client then
			-- (one without an id, which nothing can be bound to, goes unsigned: the filter's
			-- signing finds no id, and the marker is removed before it leaves)
			err:add_direct_child(markers.make_marker(err, REFUSAL, os.time()));
			client.send(err);
			return;
		elseif to_host and not prosody.hosts[to_host] and jid_lib.host(err.attr.from) == host then
			err:add_direct_child(markers.make_marker(err, REFUSAL, os.time()));
		else
			-- a local user without that session (gone, or a bare JID), a local service: nothing
			-- to sign for (a record names the hop it leaves on)
			module:log("debug", "refusal %s to %s goes unsigned: no session or link to sign for", tostring(err.attr.id), tostring(to));
		end
		module:send(err);
	end

	-- Bounce the messages queued on an outgoing link that will not come up, naming the hop.
	local function bounce_queue(session, domain, hop, text)
		local sendq = session.sendq;
		if not sendq then return; end
		for i = #sendq, 1, -1 do
			local data = sendq[i];
			local reply = data[2];
			if reply and reply.name == "message" and not reply.attr.xmlns then
				local original = type(data[1]) == "string" and xml.parse(data[1]);
				local h = copy(hop);
				if original and original.name == "message" then
					local required = original:get_child("require", NS);
					h.required = required and required.attr.verdict or nil;
					original.attr.xmlns = nil;
					send(error_for(original, "remote-server-not-found", text, h));
				end
				table.remove(sendq, i);
			end
		end
	end

	-- Remove <unverified-hop/> from an error this module did not write: from a local client
	-- (clients refuse nothing), or from another server in this host's name (by=host).  This
	-- host's refusals go out signed by it, and a refusal never comes back to it over s2s: one
	-- that claims to is forged.  Every <error/> child is looked at, not only the first: a
	-- stanza error has one, but a forger may add a second, and a reader that takes the refusal
	-- from whichever <error/> holds it (XEP rule 5: "every <unverified-hop/>") would find it
	-- there.  Returns how many were removed.
	local function remove_forged(stanza, from_client)
		if stanza.attr.type ~= "error" then return 0; end
		local removed = 0;
		for _, err in ipairs(stanza.tags) do
			if err.name == "error" and (from_client or err.attr.by == host) then
				err:maptags(function (child)
					if child.name == "unverified-hop" and child.attr.xmlns == NS then removed = removed + 1; return nil; end
					return child;
				end);
			end
		end
		return removed;
	end

	return { error_for = error_for, send = send, bounce_queue = bounce_queue, remove_forged = remove_forged };
end
