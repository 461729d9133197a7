-- Whether one hop can meet a sender's <require verdict='trusted|weak'/> (XEP "Requiring Verified
-- Hops"; reference/trustpath/core/require.py): the rules that clients and servers apply before
-- sending or delivering.
local M = ...;

local function needed(verdict)
	local need = M.REQUIRED_STRENGTH[verdict];
	assert(need, "<require/> takes verdict 'trusted' or 'weak'");
	return need;
end

-- The reason code why the hop `view` describes cannot meet `verdict`, or nil if it can: a
-- failed view gives its own reason, a hop without TLS starttls-not-supported, a hop checked too
-- weakly the reason its method caps a hop with.
function M.requirement_problem(view, verdict)
	if M.view_strength(view) >= needed(verdict) then return nil; end
	if view.result == "fail" then return view.reason or "validation-failure"; end
	if view.tls == "none" then return "starttls-not-supported"; end
	return M.method_reason(view.method);
end

-- Whether a client's hop (H1 at the sending server, the last hop at the recipient's server) can
-- meet `verdict`, judged by the server end: returns the method and reason of the view that
-- keeps it from it, or nil.  `server_view` is the server's own view (its method says how the
-- client authenticated); `client_view` what the client stated about the same connection (its
-- record's out-view, or the view it announced), nil if it stated nothing: then the hop is
-- described by one end only and meets nothing (`missing`, by default not-participating).  Both
-- views must name the same server key.  The client's statement came over this very hop, so it
-- counts as strong only when the server's method binds the login to the channel, else at most
-- ca (unbound), as the verifier caps H1.
function M.client_hop_problem(verdict, server_view, client_view, missing)
	local need = needed(verdict);
	if client_view == nil then return server_view.method, missing or "not-participating"; end
	for _, view in ipairs { client_view, server_view } do
		if view.result == "fail" then return view.method, view.reason or "validation-failure"; end
	end
	for _, view in ipairs { client_view, server_view } do
		if view.tls == "none" then return view.method, "starttls-not-supported"; end
	end
	if client_view.spki ~= server_view.spki then return client_view.method, "key-mismatch"; end
	if server_view.result ~= "pass" then return server_view.method, "not-verified"; end
	local strength, method, reason = M.view_strength(client_view), client_view.method, M.method_reason(client_view.method);
	if strength > M.CA and not M.binds_client(server_view.method) then
		strength, method, reason = M.CA, server_view.method, "unbound";
	end
	if strength >= need then return nil; end
	return method, reason;
end
