-- The server's side of the pre-flight query (XEP "Pre-flight Query";
-- reference/trustpath/core/preflight.py): how it would reach a remote domain now.
local M = ...;
local st = require "util.stanza";
local NS = M.NS;

-- What a server answers about `domain`: `takes_part` true, false or nil (not known), and the
-- view of its outgoing link (`link`), left out when there is none or it is not one a client
-- could read (a server never answers with what a client's decoder would refuse).
function M.preflight_answer(domain, takes_part, link)
	if link and M.view_problem(link) then link = nil; end
	return { domain = domain, takes_part = takes_part, link = link };
end

-- <preflight xmlns='urn:xmpp:trust-path:1' domain=... takes-part=... link='method,result,tls,spki'/>
function M.preflight_element(answer)
	local attr = { xmlns = NS, domain = answer.domain };
	if answer.takes_part ~= nil then attr["takes-part"] = answer.takes_part and "true" or "false"; end
	if answer.link then attr.link = M.view_text(answer.link); end
	return st.stanza("preflight", attr);
end
