-- mod_trust_path_test_silent: a TEST-ONLY fault for the trust-path harness.
--
-- NEVER load this on a real server.  While the file named by trust_path_test_silent_file
-- exists, this host does not answer the disco#info queries remote servers send it: their
-- fetch of its record keys times out, as it would with the host overloaded or a broken link,
-- while its messages still flow.  Removing the file ends the fault.

local lfs = require "lfs";

local flag = module:get_option_path("trust_path_test_silent_file", nil, "data");
if not flag then
	module:log("error", "trust_path_test_silent_file is not set; doing nothing");
	return;
end
module:log("warn", "TEST-ONLY fault loaded: disco#info from remote servers goes unanswered while %s exists", flag);

module:hook("iq-get/host/http://jabber.org/protocol/disco#info:query", function (event)
	if event.origin.type == "s2sin" and lfs.attributes(flag, "mode") then
		module:log("info", "test fault: not answering disco#info from %s", tostring(event.stanza.attr.from));
		return true;
	end
end, 1000);
