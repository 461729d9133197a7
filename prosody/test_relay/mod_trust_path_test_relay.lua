-- mod_trust_path_test_relay: a TEST-ONLY attacker for the trust-path harness.
--
-- NEVER load this on a real server.  It sits between mod_trust_path's signature and the
-- wire of outgoing s2s messages and breaks them on purpose, so that the receiving server
-- and the recipient client can be shown to detect it:
--
--   trust_path_test_attack = "strip"    remove this server's record (scenario 6)
--                          = "tamper"   replace the body text after signing (scenario 7)
--                          = "replay"   replace this server's record with the one it made
--                                       for the previous message (scenario 9)
--                          = "stored"   sign this server's record again with 'st=' two days
--                                       back, as if it had held the message that long (which
--                                       only the delivering server may say: issue 11)
--                          = "many-keys" answer disco#info queries from other servers with
--                                       trust_path_test_keys (default 7000) revoked keys beside
--                                       this server's own (the key-flood attack of issue 11)
--
-- It handles messages signed in route/remote (link up) and those signed in
-- s2sout-established (queued while the link came up), after mod_trust_path in both.

local xml = require "util.xml";
local st = require "util.stanza";

local NS = "urn:xmpp:trust-path:1";
local attack = module:get_option_string("trust_path_test_attack");
local ATTACKS = { strip = true, tamper = true, replay = true, stored = true, ["many-keys"] = true };
if not ATTACKS[attack] then
	module:log("error", "trust_path_test_attack must be strip, tamper, replay, stored or many-keys (got %s); doing nothing", tostring(attack));
	return;
end
module:log("warn", "TEST-ONLY attacker loaded: outgoing s2s messages will be broken (%s)", attack);

local previous_own; -- replay: this server's record on the previous message

-- stored: mod_trust_path's core and this host's record key, to sign as the module would.  The
-- core's attest() refuses 'st' on a record that does not deliver, so the record is written here.
local core, signing_key;
local here = (module.path or ""):match("^(.*)/[^/]*$") or ".";

local function with_stored(stanza, records)
	if not signing_key then -- read once mod_trust_path has written its key
		core = assert(loadfile(here .. "/../mod_trust_path/core/init.lua"))();
		local f = assert(io.open(prosody.paths.data .. "/trust_path/" .. module.host .. ".key", "r"));
		local seed = require "util.hex".decode((f:read("a"):gsub("%s+", "")));
		f:close();
		signing_key = core.signing_key(seed);
	end
	local fields = core.message_fields(stanza);
	local own = records[#records];
	local unsigned = own:match("^(.*);z=[^;]*$"):gsub(";o=([^;]*)", ";o=%1;st=" .. ("%d"):format(os.time() - 2 * 86400), 1);
	local previous = table.concat(records, " ", 1, #records - 1);
	local covers = core.decode_record(own).covers;
	return unsigned .. ";z=" .. core.sign(signing_key, core.signing_input(fields, previous, unsigned, covers));
end

-- The records of a <path/> (its text, split on whitespace), and a path holding `records`.
local function records_of(path)
	local out = {};
	for record in (path:get_text() or ""):gmatch("%S+") do out[#out + 1] = record; end
	return out;
end
local function set_records(path, records)
	for i = #path, 1, -1 do path[i] = nil; end
	path[1] = table.concat(records, " ");
end

-- Break `stanza` (changed in place) if it carries this server's record as the last one.
local function break_message(stanza)
	local path = stanza:get_child("path", NS);
	local records = path and records_of(path) or {};
	local own = records[#records];
	if not own or not own:find("^s=" .. module.host:gsub("%p", "%%%0") .. ";") then return false; end
	if attack == "strip" then
		records[#records] = nil;
		if #records == 0 then
			stanza:maptags(function (child) if child == path then return nil; end return child; end);
		else
			set_records(path, records);
		end
	elseif attack == "tamper" then
		local body = stanza:get_child("body");
		if body then
			body:maptags(function () return nil; end);
			for i = #body, 1, -1 do body[i] = nil; end
			body:text("Meet at midnight. (changed in transit by the test relay)");
		end
	elseif attack == "stored" then
		records[#records] = with_stored(stanza, records);
		set_records(path, records);
	elseif attack == "replay" then
		local earlier = previous_own;
		previous_own = own;
		if earlier then
			records[#records] = earlier;
			set_records(path, records);
		end
	end
	module:log("info", "test relay: %s message %s to %s", attack, tostring(stanza.attr.id), tostring(stanza.attr.to));
	return true;
end

-- many-keys: the module's key form with `count` random revoked keys added (made once).
local NS_DATA, NS_DISCO_INFO = "jabber:x:data", "http://jabber.org/protocol/disco#info";
local flooded;
local function flooded_form(form, count)
	if flooded then return flooded; end
	local base64, random = require "util.encodings".base64, require "util.random";
	flooded = st.stanza("x", { xmlns = NS_DATA, type = "result" });
	for field in form:childtags("field") do
		flooded:add_child(field);
		if field.attr.var == "revoked-key" then
			local copy = st.clone(field);
			for _ = 1, count do
				copy:text_tag("value", "ed25519:" .. base64.encode(random.bytes(32)):gsub("=+$", "") .. " 2026-01-01T00:00:00Z");
			end
			flooded.tags[#flooded.tags] = copy;
			flooded[#flooded] = copy;
		end
	end
	return flooded;
end
local function flood_keys(stanza)
	local query = stanza.attr.type == "result" and stanza:get_child("query", NS_DISCO_INFO);
	if not query then return; end
	local count = module:get_option_number("trust_path_test_keys", 7000);
	query:maptags(function (child)
		if child.name == "x" and child.attr.xmlns == NS_DATA then
			for field in child:childtags("field") do
				if field.attr.var == "FORM_TYPE" and field:get_child_text("value") == NS then return flooded_form(child, count); end
			end
		end
		return child;
	end);
	module:log("info", "test relay: many-keys disco#info answer to %s", tostring(stanza.attr.to));
end

-- mod_trust_path signs in route/remote at priority 1 and strips markers at 0.5.
module:hook("route/remote", function (event)
	if attack == "many-keys" then
		if event.stanza.name == "iq" then flood_keys(event.stanza); end
	elseif event.stanza.name == "message" then
		break_message(event.stanza);
	end
end, 0.75);

-- mod_trust_path signs queued messages in s2sout-established at priority 10.
module:hook("s2sout-established", function (event)
	if attack == "many-keys" then return; end
	for _, data in ipairs(event.session.sendq or {}) do
		if type(data[1]) == "string" and data[1]:find(NS, 1, true) then
			local stanza = xml.parse(data[1]);
			if stanza and stanza.name == "message" then
				stanza.attr.xmlns = nil;
				if break_message(stanza) then data[1] = tostring(stanza); end
			end
		end
	end
end, 5);
