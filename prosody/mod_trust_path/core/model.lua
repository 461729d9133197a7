-- Strengths of methods and views, and JIDs (reference/trustpath/core/model.py).  A view is a
-- plain table { method, result = "pass"|"none"|"fail", tls, spki (nil when tls is none),
-- reason (with "fail") }; view_text() writes it as a record does: method,result,tls,spki.
local M = ...;

local METHOD_STRENGTH, METHOD_REASON = M.METHOD_STRENGTH, M.METHOD_REASON;

-- A client is addressed by a full JID (user@domain/resource); a server by a domain.
function M.is_client_jid(jid) return jid:find("[@/]") ~= nil; end
function M.bare(jid) return (jid:gsub("/.*$", "")); end
function M.domain_of(jid) return (M.bare(jid):gsub("^.*@", "")); end

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

-- Whether a server's view of its client's hop (H1) binds the client's own statements to that
-- channel: SASL channel binding the server checked, or a key it knew before.
function M.binds_client(method)
	return M.CLIENT_BINDINGS[method] == true;
end

-- The view as a record writes it.  Views are made once per session and reused for every
-- message, so the text is cached in the table itself (a view never changes once made).
function M.view_text(view)
	local text = view._text;
	if text then return text; end
	local result = view.result == "fail" and view.reason or view.result;
	text = view.method .. "," .. result .. "," .. view.tls .. "," .. (view.spki or "-");
	view._text = text;
	return text;
end
