-- What a participating server decides (XEP "At the Sending Server", "At the Receiving Server",
-- "Requiring Verified Hops"; reference/trustpath/core/server.py), sans-I/O.
--
-- A server signs, but does not verify signatures: the recipient client verifies every record.
-- What a server decides from a message is structural (which records to keep, whether the
-- previous domain's record is there and names one of its published keys) and cheap, so that a
-- busy server can afford it on every message.  spec/vectors/server/ holds cases both cores run.
local M = ...;

-- Anti-forgery at the sending server: keep at most the session's own record in `message`
-- (changed in place): the first record, if it has no signer (it speaks for the message's
-- 'from') and names the key the session announced (`session_key`, base64 without padding, or
-- nil).  Everything else goes, counted.  Returns { kept (record or nil), removed, chain,
-- chain_reason, vouch ("link" when kept: the key was announced on this very session) }.
function M.filter_client_path(message, session_key)
	local atts, err = M.try(M.decode_path, message);
	if err then
		M.remove_paths(message);
		return { removed = 1, chain = "absent" }; -- an unreadable path counts as one removed record
	end
	if atts == nil then return { removed = 0, chain = "absent" }; end
	M.remove_paths(message);
	if #atts == 0 then return { removed = 0, chain = "absent" }; end
	local first = atts[1];
	local own = first.signer == nil;
	if own and session_key ~= nil and first.key == session_key then
		M.add_record(message, first);
		return { kept = first, removed = #atts - 1, chain = "pass", vouch = "link" };
	end
	if own then
		-- the client's own record, under a key this session did not announce
		return { removed = #atts - 1, chain = "fail", chain_reason = "key-unknown" };
	end
	return { removed = #atts, chain = "absent" };
end

-- A receiving server's decision about a message from domain `origin` (XEP "At a Receiving
-- Server").  opts: origin, takes_part (announced or remembered), keys (its published key set
-- as last fetched, or nil; the last record's key must be one valid at its time), key_source (where they were learned: s2s-pin when fetched over this
-- server's own outgoing link to `origin` checked by a pin, ...), keys_unavailable (there is no
-- usable key set because fetching it failed).  Only what this needs is read
-- (read_last_record): the path's shape, whether a record states 'st' (only the delivering server
-- may), and the last record's 's', 't', 'k' and 'z'; the recipient decodes every record.  A path
-- that cannot be read so, or that states 'st', is removed from `message`; nothing else is
-- changed.  Returns { chain, chain_reason, vouch, error (why a path was removed), refetch
-- (`origin`'s record names a key not in the cached set: fetch again before deciding), sig (the
-- last record's signature: what a pass vouches for) }.
function M.receive_chain(message, opts)
	local last, err = M.try(M.read_last_record, message);
	if err then
		M.remove_paths(message);
		return { chain = "fail", chain_reason = "malformed", error = err.text, refetch = false };
	end
	local stripped_or_absent = opts.takes_part and "stripped" or "absent";
	if last == nil then return { chain = stripped_or_absent, refetch = false }; end
	if last.stored then
		-- only the server that delivers states 'st' (rule 28): a sending server that does
		-- would explain away the age of what it sends as storage
		M.remove_paths(message);
		return { chain = "fail", chain_reason = "malformed", refetch = false,
			error = "a record that arrived from another server states 'st=', which only the delivering server may" };
	end
	local sig = last.sig;
	if last.signer ~= opts.origin or not opts.takes_part then return { chain = stripped_or_absent, refetch = false, sig = sig }; end
	-- the key must be one `origin` published as valid at the record's time: not revoked, not
	-- retired before it (a lookup, not a signature check)
	local problem = "key-unknown";
	if opts.keys then problem = M.key_problem(opts.keys, last.key, last.time or 0); end
	if problem == "key-unknown" then
		-- keys_unavailable: fetching them failed (no answer, unreachable); nothing is known
		-- against the key, so this is not key-unknown
		return { chain = "fail", chain_reason = opts.keys_unavailable and "keys-unavailable" or "key-unknown", refetch = true, sig = sig };
	end
	if problem then return { chain = "fail", chain_reason = problem, refetch = false, sig = sig }; end -- the origin withdrew it
	return { chain = "pass", vouch = opts.key_source, refetch = false, sig = sig };
end

-- The first of `hops` ({ peer, view } of each hop a server checks before it forwards or
-- delivers; a nil view is skipped) that cannot meet <require verdict=required/>, as the
-- refusal names it: { peer, method, reason, required }, or nil.
function M.unmet_requirement(required, hops)
	for _, hop in ipairs(hops) do
		local view = hop.view or hop[2];
		local peer = hop.peer or hop[1];
		if view then
			local reason = M.requirement_problem(view, required);
			if reason then return { peer = peer, method = view.method, reason = reason, required = required }; end
		end
	end
	return nil;
end

-- At a receiving server: the s2s hop a message arrived on must meet `required`, and so must
-- what arrived on it (a record that is not there, or names an unknown key, cannot be vouched
-- for) and the source of the key it vouches with (a key learned over a CA-checked link caps the
-- hop at ca, as the recipient's verifier caps it).  `decision` is receive_chain()'s.
function M.received_requirement_problem(required, origin, in_view, decision)
	local hop = M.unmet_requirement(required, { { peer = origin, view = in_view } });
	if hop then return hop; end
	if decision.chain ~= "pass" then
		local reason;
		if decision.chain == "fail" then reason = decision.chain_reason or "chain-broken";
		elseif decision.chain == "absent" then reason = "not-participating";
		else reason = "stripped"; end
		return { peer = origin, method = in_view.method, reason = reason, required = required };
	end
	local cap = decision.vouch and M.KEY_SOURCE_STRENGTH[decision.vouch];
	if cap and cap < M.REQUIRED_STRENGTH[required] then
		return { peer = origin, method = in_view.method, reason = "weak-key-source", required = required };
	end
	return nil;
end

-- At the sending server, before it routes a message anywhere (to a remote domain, to a user of
-- its own, to a room): the hop from the sending client `sender` (H1), described by this
-- server's `in_view` and by the client's own record it kept (`decision`, filter_client_path()'s),
-- must meet `required`.  Without the client's record the hop is described by one end only,
-- which meets nothing.  Returns { peer, method, reason, required } or nil.
function M.sending_requirement_problem(required, sender, in_view, decision)
	local missing;
	if decision.chain == "fail" then missing = decision.chain_reason or "chain-broken";
	elseif decision.chain ~= "pass" then missing = "not-participating"; end
	local client_view = decision.kept and decision.kept.out_view or nil;
	local method, reason = M.client_hop_problem(required, in_view, client_view, missing);
	if not method then return nil; end
	return { peer = sender, method = method, reason = reason, required = required };
end

-- At the recipient's server, before it delivers to one resource `recipient` (live, a carbon
-- copy, from offline storage, an archive result): the hop to that resource's client, described
-- by this server's `server_view` and by the view the client announced for its connection
-- (<session-key view=.../>; nil if it announced none), must meet `required`.  A view the client
-- announced counts as strong only on a login bound to its channel, as H1's does.
function M.delivery_requirement_problem(required, recipient, server_view, client_view)
	local method, reason = M.client_hop_problem(required, server_view, client_view, "not-participating");
	if not method then return nil; end
	return { peer = recipient, method = method, reason = reason, required = required };
end
