-- Strengths of methods and views, and JIDs (reference/trustpath/core/model.py).
local M = ...;

local METHOD_STRENGTH, METHOD_REASON = M.METHOD_STRENGTH, M.METHOD_REASON;

-- A client is addressed by a full JID (user@domain/resource); a server by a domain.
function M.is_client_jid(jid) return jid:find("[@/]") ~= nil; end
function M.bare(jid) return (jid:gsub("/.*$", "")); end

-- The strength a verification method gives a view that passed (an unknown method: unverified).
function M.method_strength(method)
	return METHOD_STRENGTH[method] or M.OTHER_METHOD_STRENGTH;
end

-- The reason code of a hop whose strength this method caps: ca-only, dialback-only, ...
function M.method_reason(method)
	return METHOD_REASON[method] or M.OTHER_METHOD_REASON;
end

-- How strong one end's view makes its hop: failed, unverified (no TLS, nothing checked) or
-- its method's.
function M.view_strength(view)
	if view.result == "fail" then return M.FAILED; end
	if view.tls == "none" or view.result ~= "pass" then return M.UNVERIFIED; end
	return M.method_strength(view.method);
end
