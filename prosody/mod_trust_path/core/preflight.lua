-- The server's side of the pre-flight query (XEP "Pre-flight Query";
-- reference/trustpath/core/preflight.py): how it would reach a remote domain now.
local M = ...;
local st = require "util.stanza";
local NS = M.NS;

-- What a server answers about `domain`: `takes_part` true, false or nil (not known), and the
-- <out/> view of its outgoing link, left out when there is none or it is not one a client
-- could read (a server never answers with what a client's decoder would refuse).
function M.preflight_answer(domain, takes_part, out_view)
	if out_view and (out_view.peer ~= domain or out_view.side ~= "client" or M.view_problem(out_view)) then
		out_view = nil;
	end
	return { domain = domain, takes_part = takes_part, out_view = out_view };
end

-- <preflight xmlns='urn:xmpp:trust-path:0' domain=... takes-part=...><out .../></preflight>
function M.preflight_element(answer)
	local attr = { xmlns = NS, domain = answer.domain };
	if answer.takes_part ~= nil then attr["takes-part"] = answer.takes_part and "true" or "false"; end
	local el = st.stanza("preflight", attr);
	if answer.out_view then
		local out = M.view_element("out", answer.out_view);
		out.attr.xmlns = nil; -- inherits the namespace of <preflight/>
		el:add_direct_child(out);
	end
	return el;
end
