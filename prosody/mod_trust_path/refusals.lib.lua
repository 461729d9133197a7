-- The errors a refused message turns into: <policy-violation/> or <remote-server-not-found/>
-- with <unverified-hop/> naming the hop (XEP "Requiring Verified Hops"), sent back to the sender.
local st = require "util.stanza";
local xml = require "util.xml";

return function (tp)
	local core, host = tp.core, tp.host;
	local NS, NS_STANZAS = core.NS, tp.NS_STANZAS;

	local function copy(t) local c = {}; for k, v in pairs(t) do c[k] = v; end return c; end

	-- Send an error for a queued or routed message back to its local sender.
	local function error_for(stanza, condition, text, hop)
		local err = st.message({ type = "error", from = stanza.attr.to, to = stanza.attr.from, id = stanza.attr.id })
			:tag("error", { type = "cancel", by = host })
			:tag(condition, { xmlns = NS_STANZAS }):up();
		if hop then err:tag("unverified-hop", { xmlns = NS, peer = hop.peer, method = hop.method, reason = hop.reason,
			required = hop.required }):up(); end
		err:text_tag("text", text, { xmlns = NS_STANZAS });
		return err;
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
					module:send(error_for(original, "remote-server-not-found", text, h));
				end
				table.remove(sendq, i);
			end
		end
	end

	-- Remove <unverified-hop/> from an error this module did not write: from a local client
	-- (clients refuse nothing), or from another server in this host's name (by=host).  A sending
	-- client believes a refusal only with by= its own server (XEP "Requiring Verified Hops"), so
	-- nothing but this module may put one there.  Returns how many were removed.
	local function remove_forged(stanza, from_client)
		local err = stanza.attr.type == "error" and stanza:get_child("error");
		if not err or not (from_client or err.attr.by == host) then return 0; end
		local removed = 0;
		err:maptags(function (child)
			if child.name == "unverified-hop" and child.attr.xmlns == NS then removed = removed + 1; return nil; end
			return child;
		end);
		return removed;
	end

	return { error_for = error_for, bounce_queue = bounce_queue, remove_forged = remove_forged };
end
