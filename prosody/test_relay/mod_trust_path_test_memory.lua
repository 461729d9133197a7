-- mod_trust_path_test_memory: TEST-ONLY, for the harness's resource measurements
-- (python -m trustpath.tools.resources).  NEVER load this on a real server: it lets any local
-- client make the server run a full garbage collection.
--
-- A local client's <iq type='get'><memory xmlns='urn:xmpp:trust-path:test:memory'/></iq> is
-- answered with the Lua heap in KB after a full collection: what the server still keeps, as
-- opposed to its resident memory, which includes what the allocator has not returned yet.
local st = require "util.stanza";

local NS = "urn:xmpp:trust-path:test:memory";
module:log("warn", "TEST-ONLY memory probe loaded");

module:hook("iq-get/host/" .. NS .. ":memory", function (event)
	if event.origin.type ~= "c2s" then return; end
	collectgarbage("collect");
	collectgarbage("collect"); -- a second cycle for what the first one's finalizers released
	event.origin.send(st.reply(event.stanza):tag("memory", { xmlns = NS, kb = ("%d"):format(math.floor(collectgarbage("count"))) }));
	return true;
end);
