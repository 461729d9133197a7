-- Whether one hop can meet a sender's <require verdict='trusted|weak'/> (XEP "Requiring Verified
-- Hops"; reference/trustpath/core/require.py).
local M = ...;

-- The reason code why the hop `view` describes cannot meet `verdict`, or nil if it can: a
-- failed view gives its own reason, a hop without TLS starttls-not-supported, a hop checked too
-- weakly the reason its method caps a hop with.
function M.requirement_problem(view, verdict)
	local need = M.REQUIRED_STRENGTH[verdict];
	assert(need, "<require/> takes verdict 'trusted' or 'weak'");
	if M.view_strength(view) >= need then return nil; end
	if view.result == "fail" then return view.reason or "validation-failure"; end
	if view.tls == "none" then return "starttls-not-supported"; end
	return M.method_reason(view.method);
end
