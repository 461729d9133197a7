-- The module's internal markers (mod_trust_path/markers.lib.lua) without a server: a marker is
-- honoured only on the message it was made for, unchanged; anything else is removed unread.
-- Run: lua5.4 prosody/tests/test_markers.lua (tests/test_lua.py runs it).
local setup = dofile((debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".") .. "/setup.lua");
local core = setup.core;
local st = require "util.stanza";

local passed, failed = 0, 0;
local function check(name, cond, detail)
	if cond then passed = passed + 1; else
		failed = failed + 1;
		print("FAIL " .. name .. (detail and (": " .. tostring(detail)) or ""));
	end
end

local NS_INTERNAL = "urn:xmpp:trust-path:internal:0";
local function load_markers(key)
	return assert(loadfile(setup.module_dir .. "/markers.lib.lua"))()({
		core = core, NS_INTERNAL = NS_INTERNAL, keys = { marker_key = key } });
end
local markers = load_markers(("k"):rep(32));

local IN_VIEW = core.decode_view("tls-unique,pass,1.2,djSWh7FpINkrW5Hd", "in");
local ARRIVAL = { in_view = IN_VIEW, chain = "pass", vouch = "link",
	prev_sig = "rUDRYoCTukrTTpkGzAyyzU0k6Of8t4PIolLGuDtzP1m2gH/wPzGOuitAYtjnnETCecEnO+1JsEHo5/7cOuQ9BQ" };

local function message(from, to, id)
	return st.message({ from = from, to = to, id = id, type = "chat" }):text_tag("body", "hello");
end
local function marked(from, to, id)
	local m = message(from, to, id);
	m:add_direct_child(markers.make_marker(m, ARRIVAL, 1796623957));
	return m;
end
local function the_marker(m)
	for _, child in ipairs(m.tags) do if child.attr.xmlns == NS_INTERNAL then return child; end end
end

-- the message it was made for: read back as made
do
	local m = marked("bob@b.example/desk", "dave@b.example", "m1");
	local copy = st.clone(m); -- carbons and storage copy the stanza
	local marker = markers.take_markers(copy);
	check("a marker on its own message is honoured", marker ~= nil);
	local pending = marker and markers.read_marker(marker);
	check("and read as made", pending and pending.chain == "pass" and pending.vouch == "link"
		and pending.arrived == 1796623957 and core.view_text(pending.in_view) == core.view_text(IN_VIEW));
	check("and removed", not markers.has_marker(copy));
	check("direct_marker finds it", markers.direct_marker(m) ~= nil);
	-- set later, on the server's own copy (delivery.lib.lua): not covered
	the_marker(m).attr["presigned-for"] = "bob@b.example/desk";
	check("presigned attributes do not invalidate it", markers.direct_marker(m) ~= nil);
	local parsed = require "util.xml".parse(tostring(m)); -- stored and read back (offline, archive)
	parsed.attr.xmlns = nil;
	check("a stored copy is still honoured", markers.take_markers(parsed) ~= nil);
end

-- a leaked marker replayed onto another message: removed, never honoured
for _, case in ipairs {
	{ "another sender (a room relaying it)", "room@rooms.b.example/alice", "bob@b.example/desk", "m1" },
	{ "another recipient", "bob@b.example/desk", "eve@b.example", "m1" },
	{ "another id", "bob@b.example/desk", "dave@b.example", "m2" },
} do
	local leaked = the_marker(marked("bob@b.example/desk", "dave@b.example", "m1"));
	local m = message(case[2], case[3], case[4]);
	m:add_direct_child(st.clone(leaked));
	check("a marker replayed onto " .. case[1] .. " is not honoured", markers.take_markers(m) == nil);
	check("and removed (" .. case[1] .. ")", not markers.has_marker(m));
	m:add_direct_child(st.clone(leaked));
	check("direct_marker ignores it (" .. case[1] .. ")", markers.direct_marker(m) == nil);
end

-- a marker changed after it was made, or made without the secret
do
	local m = marked("alice@a.example/phone", "bob@b.example", "m3");
	the_marker(m).attr.chain = "absent";
	check("a changed attribute invalidates it", markers.take_markers(m) == nil);
	m = marked("alice@a.example/phone", "bob@b.example", "m3");
	the_marker(m).attr["chain-reason"] = "added";
	check("an added attribute invalidates it", markers.take_markers(m) == nil);
	m = marked("alice@a.example/phone", "bob@b.example", "m3");
	the_marker(m).attr.token = nil;
	check("no token, no marker", markers.take_markers(m) == nil);
	local other = load_markers(("o"):rep(32)); -- another server's secret
	m = message("alice@a.example/phone", "bob@b.example", "m3");
	m:add_direct_child(other.make_marker(m, ARRIVAL, 1796623957));
	check("a marker made with another secret is not honoured", markers.take_markers(m) == nil);
end

-- a marker deeper down (in a forwarded message) belongs to another message: it goes too
do
	local inner = marked("alice@a.example/phone", "bob@b.example", "m4");
	local outer = st.message({ from = "bob@b.example", to = "bob@b.example/desk" })
		:tag("received", { xmlns = "urn:xmpp:carbons:2" }):tag("forwarded", { xmlns = "urn:xmpp:forward:0" })
		:add_child(inner):up():up();
	check("the outer stanza has no marker of its own", markers.take_markers(outer) == nil);
	check("the inner one is removed with it", not markers.has_marker(outer));
end

print(("%d passed, %d failed"):format(passed, failed));
os.exit(failed == 0 and 0 or 1);
