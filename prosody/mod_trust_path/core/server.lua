-- What a participating server decides (XEP "At the Sending Server", "At a Receiving Server",
-- "Requiring Verified Hops"; reference/trustpath/core/server.py, with the same function names).
-- spec/vectors/server/ holds cases that both cores run.
local M = ...;

-- Why the client's own attestation cannot be kept by its server (XEP "At the Sending Server",
-- step 1), or nil.  ctx = { domain, client_key (b64 or nil), now, max_skew }.
function M.client_attestation_problem(fields, att, ctx)
	if att.in_view or att.prev_key or not att.out_view or att.out_view.peer ~= ctx.domain then
		return "chain-broken";
	end
	if att.for_id ~= fields.id then return "replayed"; end
	if math.abs(assert(M.parse_time(att.time)) - ctx.now) > (ctx.max_skew or M.DEFAULT_MAX_SKEW) then
		return "clock-skew";
	end
	if not ctx.client_key or not M.verify_signature(ctx.client_key, att.sig, M.signing_input(fields, "", att)) then
		return "tampered";
	end
	return nil;
end

-- Anti-forgery at the sending server: keep at most the session's own valid attestation in
-- `message` (a util.stanza, changed in place), remove everything else.  Returns
-- { kept = att|nil, removed = n, chain = "pass"|"absent"|"fail", chain_reason = ..., decode_error = ... }.
function M.filter_client_path(message, fields, session_jid, ctx)
	local kept, removed, own_problem = nil, 0, nil;
	local atts, err = M.try(M.decode_path, message);
	if err then atts, removed = nil, 1; end
	for _, att in ipairs(atts or {}) do
		if att.signer ~= session_jid or kept then
			removed = removed + 1;
		else
			local problem = M.client_attestation_problem(fields, att, ctx);
			if problem == nil then kept = att; else own_problem = problem; end
		end
	end
	M.remove_paths(message);
	if kept then M.add_attestation(message, kept); end
	local chain = kept and "pass" or (own_problem and "fail" or "absent");
	return { kept = kept, removed = removed, chain = chain, chain_reason = chain == "fail" and own_problem or nil,
		decode_error = err };
end

-- The sending server's <in/> view of the client's hop: `base` (its TLS and SASL facts) with what
-- filter_client_path() decided.  A new table: callers that sign many messages cache it.
function M.client_in_view(base, decision)
	local view = {};
	for k, v in pairs(base) do view[k] = v; end
	view.chain, view["chain-reason"] = decision.chain, decision.chain_reason;
	view["key-source"] = decision.kept and "link" or nil;
	view.removed = decision.removed > 0 and tostring(decision.removed) or nil;
	return view;
end

-- A receiving server's decision about what arrived from domain `origin` (XEP "At a Receiving
-- Server").  ctx = { origin, domain, takes_part (does origin take part, by disco or remembered),
-- keys (origin's keyset or nil), in_view (this server's view of the s2s hop), now, max_skew,
-- seen }.  An unreadable path is removed from `message`; nothing else is changed.
-- Returns { chain, chain_reason, previous, prev_key, key_source, report, error, accepted }:
-- prev_key (the key of origin vouched for) only when previous is signed by origin and origin
-- takes part; accepted, the sigs of a path that passed (for the replay cache).
function M.receive_chain(message, fields, ctx)
	local atts, err = M.try(M.decode_path, message);
	if err then
		M.remove_paths(message);
		return { chain = "fail", chain_reason = "malformed", error = err, accepted = {} };
	end
	local stripped_or_absent = ctx.takes_part and "stripped" or "absent";
	if atts == nil then return { chain = stripped_or_absent, accepted = {} }; end
	local previous = atts[#atts];
	if previous.signer ~= ctx.origin or not ctx.takes_part then
		return { chain = stripped_or_absent, previous = previous, accepted = {} };
	end
	local keys = ctx.keys or {};
	local report = M.verify(fields, atts, { server = ctx.origin, keys = keys, me = ctx.domain, view = ctx.in_view,
		takes_part = true }, ctx.now, { max_skew = ctx.max_skew, seen = ctx.seen });
	local current;
	for _, entry in ipairs(keys) do
		if (entry.status or "current") == "current" then current = entry.key; break; end
	end
	local accepted = {};
	if report.chain_ok then
		for i, att in ipairs(atts) do accepted[i] = att.sig; end
	end
	return { chain = report.chain_ok and "pass" or "fail", chain_reason = report.chain_problem, previous = previous,
		prev_key = report.anchor_key or current, key_source = "link", report = report, atts = atts,
		accepted = accepted };
end

-- The receiving server's <in/> view of the s2s hop: `base` with what receive_chain() decided.
function M.received_in_view(base, decision)
	local view = {};
	for k, v in pairs(base) do view[k] = v; end
	view.chain = decision.chain;
	view["chain-reason"] = decision.chain == "fail" and decision.chain_reason or nil;
	view["key-source"] = decision.prev_key and decision.key_source or nil;
	return view;
end

-- The first of `views` (the hops a server checks before it forwards or delivers) that cannot
-- meet <require verdict=required/>, as the <unverified-hop/> of the refusal names it
-- ({ peer, method, reason, required }); nil if all can.  `views` may have holes (nil): pass n.
function M.unmet_requirement(required, views, n)
	for i = 1, n or #views do
		local view = views[i];
		if view then
			local reason = M.requirement_problem(view, required);
			if reason then return { peer = view.peer, method = view.method, reason = reason, required = required }; end
		end
	end
	return nil;
end

-- At a receiving server: the s2s hop a message arrived on must meet `required`, and so must the
-- chain that arrived on it (a chain that did not pass cannot be vouched for).
function M.received_requirement_problem(required, in_view, decision)
	local hop = M.unmet_requirement(required, { in_view });
	if hop or decision.chain == "pass" then return hop; end
	local reason = decision.chain == "fail" and (decision.chain_reason or "chain-broken")
		or (decision.chain == "absent" and "not-participating" or "stripped");
	return { peer = in_view.peer, method = in_view.method, reason = reason, required = required };
end
