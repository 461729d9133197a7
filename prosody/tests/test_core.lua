-- Unit tests of the Lua core's own code paths that the vectors do not reach: the base64
-- checks against their plain definition, the projection of element payloads and of text split
-- over several nodes, <report/> signing, the path encoder, try(), the key form, the pre-flight
-- element.  Run from anywhere: lua5.4 prosody/tests/test_core.lua
local setup = dofile((debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".") .. "/setup.lua");
local core = setup.core;
local st = require "util.stanza";
local xml = require "util.xml";

local passed, failed = 0, 0;
local function check(name, cond, detail)
	if cond then passed = passed + 1; else failed = failed + 1; print("FAIL: " .. name .. (detail and (" -- " .. detail) or "")); end
end

-- The base64 checks, against the plain definition (XEP: 43 or 86 characters of the alphabet
-- without padding, the last one restricted to the values whose unused bits are zero).
local function plain_b64(text, length, last, pad)
	if type(text) ~= "string" or #text ~= length then return false; end
	local body = length - #pad - 1;
	return text:sub(1, body):find("^[A-Za-z0-9+/]+$") ~= nil and last:find(text:sub(body + 1, body + 1), 1, true) ~= nil
		and text:sub(body + 2) == pad;
end
local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
local OTHER = "=-_ .\0\n";
math.randomseed(42);
local function random_text(n, chars)
	local t = {};
	for i = 1, n do local k = math.random(#chars); t[i] = chars:sub(k, k); end
	return table.concat(t);
end
-- candidates close to valid ones: a base64 body, then a random tail, sometimes a stray character
local function candidate(body, pad)
	local text;
	if math.random() < 0.5 then -- the right shape; the last character decides
		text = random_text(body - 1, B64) .. random_text(1, B64) .. pad;
	else
		text = random_text(body + math.random(-1, 1), B64) .. random_text(math.random(0, 3), B64 .. OTHER);
	end
	if math.random() < 0.2 then
		local i = math.random(#text);
		text = text:sub(1, i - 1) .. random_text(1, OTHER) .. text:sub(i + 1);
	end
	return text;
end
local agree, valid = true, 0;
for _ = 1, 20000 do
	for _, c in ipairs({ { candidate(43, ""), 43, "AEIMQUYcgkosw048", "", core.is_key },
		{ candidate(86, ""), 86, "AQgw", "", core.is_sig } }) do
		local expected = plain_b64(c[1], c[2], c[3], c[4]);
		if expected then valid = valid + 1; end
		if c[5](c[1]) ~= expected then agree = false; print("differs: " .. c[1]); end
	end
end
check("is_key/is_sig agree with the plain definition on 40000 strings", agree);
check("and some of them are valid", valid > 100, tostring(valid));
check("a real key", core.is_key("+UXL5a5lI4zDn624+M0g1KqFKL+Vhqu9elA0yplwo14"));
check("unused bits set", not core.is_key("+UXL5a5lI4zDn624+M0g1KqFKL+Vhqu9elA0yplwo15"));
check("padding is not part of a record's key", not core.is_key("+UXL5a5lI4zDn624+M0g1KqFKL+Vhqu9elA0yplwo14="));
check("not a string", not core.is_key(nil) and not core.is_sig(42));
check("b64_raw round trip", core.unb64_raw(core.b64_raw("\1\2\3\4")) == "\1\2\3\4" and core.b64_raw("\1\2\3\4") == "AQIDBA");



local NS = core.NS;
local function parse(text) return assert(xml.parse(text), "not well-formed: " .. text); end
local function refused(f, ...)
	local ok, err = pcall(f, ...);
	return not ok and type(err) == "table" and err.tp_error == true and err;
end

-- message_fields: text split over several nodes is one text; empty lists are read-only.
local m = st.message({ from = "a@x/r", to = "b@y", id = "i" }):text_tag("body", "x");
local f = core.message_fields(m);
check("one body", #f.bodies == 1 and f.bodies[1].text == "x");
check("no subject", #f.subjects == 0 and #f.threads == 0);
check("empty lists are read-only", not pcall(function () f.subjects[1] = {}; end));
local multi = st.message({ from = "a@x/r", to = "b@y", id = "i" }):tag("body"):text("a"):text("b"):up();
check("text of several nodes", core.message_fields(multi).bodies[1].text == "ab");
check("origin-id when there is no id", core.message_fields(parse(
	"<message xmlns='jabber:client' from='a@x/r' to='b@y'><origin-id xmlns='urn:xmpp:sid:0' id='o1'/></message>")).id == "o1");
check("no id at all: id is empty (cannot be attested)", core.message_fields(st.message({ from = "a", to = "b" })).id == "");
-- issue 11: the id limit counts characters as the Python core does (not bytes), and an id over
-- it is no id (nobody signs what every verifier would refuse)
check("an id of 200 characters in 400 bytes is an id", core.message_fields(st.message({ from = "a", to = "b",
	id = ("é"):rep(200) })).id == ("é"):rep(200));
check("an id of 257 characters is none", core.message_fields(st.message({ from = "a", to = "b",
	id = ("x"):rep(257) })).id == "" and core.message_fields(st.message({ from = "a", to = "b",
	id = ("x"):rep(256) })).id == ("x"):rep(256));
check("attest refuses a message without id", not pcall(core.attest, core.message_fields(st.message({ from = "a", to = "b" })),
	core.signing_key(("\7"):rep(32)), { out_view = { method = "pin", result = "pass", tls = "none" } }));
local with_id = core.message_fields(st.message({ from = "a@x/r", to = "b@y", id = "i1" }));
local pin_view = { method = "pin", result = "pass", tls = "none" };
check("attest refuses 'stored' on a record that does not deliver (rule 28)",
	not pcall(core.attest, with_id, core.signing_key(("\7"):rep(32)), { signer = "x", time = 1, in_view = pin_view,
		chain = "pass", out_view = pin_view, stored = 1 })
	and pcall(core.attest, with_id, core.signing_key(("\7"):rep(32)), { signer = "x", time = 1, in_view = pin_view,
		chain = "pass", out_view = pin_view, out_peer = "b@y/r", stored = 1 }));
check("a body with markup is refused", refused(core.message_fields, parse(
	"<message xmlns='jabber:client' from='a' to='b' id='i'><body>a<b xmlns='x'/></body></message>")));

-- Element payloads: the same projection whether the parser set xmlns on every element
-- (util.xml) or only where it changes (Prosody's stream parser, util.stanza builders).
local omemo_text = "<message xmlns='jabber:client' from='a@x/r' to='b@y' id='i'><encrypted xmlns='urn:xmpp:omemo:2'>"
	.. "<header sid='7'><keys jid='b@y'><key rid='1' kex='true'>AAA=</key></keys></header><payload>QkJC</payload>"
	.. "</encrypted></message>";
local parsed = core.message_fields(parse(omemo_text));
local built = st.message({ from = "a@x/r", to = "b@y", id = "i" }):tag("encrypted", { xmlns = "urn:xmpp:omemo:2" })
	:tag("header", { sid = "7" }):tag("keys", { jid = "b@y" }):tag("key", { rid = "1", kex = "true" }):text("AAA="):up():up():up()
	:tag("payload"):text("QkJC"):up():up();
local from_builder = core.message_fields(built);
check("omemo2 projected", parsed.elements.omemo2 ~= nil and parsed.elements.omemo2 == from_builder.elements.omemo2,
	(tostring(parsed.elements.omemo2):gsub("%z", "|")) .. "\n  vs " .. (tostring(from_builder.elements.omemo2):gsub("%z", "|")));
check("projection: names qualified, attributes sorted", parsed.elements.omemo2:find(
	"<\0{urn:xmpp:omemo:2}key\0@kex\0true\0@rid\0001\0#\0AAA=\0>\0", 1, true) ~= nil);
check("present payloads in the table's order", table.concat(parsed.present, ",") == "omemo2");
check("covered_payloads lists a payload outside the defaults", table.concat(core.covered_payloads(parsed), ",") == "omemo2");
check("covered_payloads: nil for a plain message", core.covered_payloads(f) == nil);
local lang = core.project_element(parse("<x xmlns='jabber:x:oob' xml:lang='en' b='2' a='1'>t<url>u</url>tail</x>"));
check("projection: xml:lang as {xml-ns}lang, text and tails in order", lang ==
	"<\0{jabber:x:oob}x\0@a\0001\0@b\0002\0@{http://www.w3.org/XML/1998/namespace}lang\0en\0#\0t\0"
	.. "<\0{jabber:x:oob}url\0#\0u\0>\0#\0tail\0>\0", (lang:gsub("%z", "|")));
check("two payloads of one kind are refused", refused(core.message_fields, parse(
	"<message xmlns='jabber:client' from='a' to='b' id='i'><x xmlns='jabber:x:oob'/><x xmlns='jabber:x:oob'/></message>")));

-- A delivery <report/> is signed generically: its attributes sorted by name as "report."
-- fields, then per <hop/> a "hop" field with its position and its attributes as "hop." fields.
local function with_report(inner)
	return "<message xmlns='jabber:client' from='a@x/r' to='b@y' id='i'>" .. inner .. "</message>";
end
local rf = core.message_fields(parse(with_report("<report xmlns='" .. NS .. "' for='m1' b='2'><hop peer='p' a='1'/></report>")));
check("report: payload input", core.payload_input(rf, { "report" }) ==
	"report\0report.b\0002\0report.for\0m1\0hop\0001\0hop.a\0001\0hop.peer\0p\0", (core.payload_input(rf, { "report" }):gsub("%z", "|")));
check("report: an empty report is not no report", core.payload_input(core.message_fields(parse(with_report(
	"<report xmlns='" .. NS .. "'/>"))), { "report" }) == "report\0" and core.message_fields(parse(with_report(
	"<report xmlns='" .. NS .. "'/>"))).report ~= nil);
check("report: two refused", refused(core.message_fields, parse(with_report("<report xmlns='" .. NS .. "'/><report xmlns='" .. NS .. "'/>"))));
check("report: xml:lang on <report/> refused", refused(core.message_fields, parse(with_report("<report xmlns='" .. NS .. "' xml:lang='en'/>"))));
check("report: 16 hops accepted", #core.message_fields(parse(with_report("<report xmlns='" .. NS .. "'>"
	.. ("<hop a='1'/>"):rep(16) .. "</report>"))).report == 17);
local seventeen = refused(core.message_fields, parse(with_report("<report xmlns='" .. NS .. "'>" .. ("<hop a='1'/>"):rep(17) .. "</report>")));
check("report: 17 hops refused as a limit", seventeen and seventeen.limit == true);

-- The path encoder: records joined by one space, the limit of 8, and remove_paths' count.
local key = core.signing_key(("\1"):rep(32));
local view = { method = "pin", result = "pass", tls = "1.3", spki = "AAAAAAAAAAAAAAAA" };
local msg = st.message({ from = "a@x/r", to = "b@y", id = "i" }):text_tag("body", "hi");
local fields = core.message_fields(msg);
local previous = "";
for i = 1, 8 do
	local att = core.attest(fields, key, { signer = i > 1 and ("s" .. i) or nil, time = i > 1 and 1000 or nil,
		in_view = i > 1 and view or nil, chain = i > 1 and "pass" or nil, out_view = view, previous = previous });
	core.add_record(msg, att);
	previous = core.previous_records(msg);
end
local path_text = core.text_of(core.find_path_element(msg));
check("eight records, one space apart", #core.decode_path(msg) == 8 and not path_text:find("  ", 1, true));
local full = refused(core.add_record, msg, core.decode_path(msg)[1]);
check("a ninth record is refused as a limit", full and full.limit == true);
check("each record verifies over what came before", (function ()
	local atts, texts = core.decode_path(msg), {};
	for _, a in ipairs(atts) do
		if not core.verify_signature(a.key, a.sig, core.signing_input(fields, table.concat(texts, " "), core.unsigned_text(a), a.covers)) then
			return false;
		end
		texts[#texts + 1] = a.text;
	end
	return true;
end)());
check("serialized and parsed again, the same records", core.text_of(core.find_path_element(parse(tostring(msg)))) == path_text);
check("remove_paths counts records", core.remove_paths(msg) == 8 and core.find_path_element(msg) == nil);
check("an empty <path/> counts once", core.remove_paths(parse(with_report("<path xmlns='" .. NS .. "'/>"))) == 1);
check("a v0 <path/> is removed too", core.remove_paths(parse(with_report("<path xmlns='urn:xmpp:trust-path:0'><a/></path>"))) == 1);
check("removed is capped at 999", core.attest(fields, key, { signer = "s", time = 1, in_view = view, chain = "pass", removed = 5000,
	out_view = view }).text:find(";r=999;", 1, true) ~= nil);

-- Attested refusals (XEP "Requiring Verified Hops"): the refusal payload and the refuser's record.
local NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas";
local function refusal_stanza(hops, extra_error)
	return "<message xmlns='jabber:client' type='error' from='bob@b.example' to='alice@a.example/phone' id='m1'>"
		.. "<error type='cancel' by='a.example'><policy-violation xmlns='" .. NS_STANZAS .. "'/>" .. hops
		.. "<text xmlns='" .. NS_STANZAS .. "'>not covered</text></error>" .. (extra_error or "") .. "</message>";
end
local HOP = "<unverified-hop xmlns='" .. NS .. "' required='trusted' reason='not-verified' peer='b.example' method='none'/>";
local EXPECTED_REFUSAL = "refusal\0type\0cancel\0by\0a.example\0condition\0policy-violation\0hop.method\0none\0hop.peer\0"
	.. "b.example\0hop.reason\0not-verified\0hop.required\0trusted\0";
local rfields = core.message_fields(parse(refusal_stanza(HOP)));
check("refusal: the payload input is the spec's example, byte for byte",
	core.payload_input(rfields, { "refusal" }) == EXPECTED_REFUSAL, (core.payload_input(rfields, { "refusal" }):gsub("%z", "|")));
check("refusal: present, outside the defaults, listed in h=", table.concat(rfields.present, ",") == "refusal"
	and table.concat(core.covered_payloads(rfields), ",") == "refusal" and rfields.type == "error");
-- the same bytes from a stanza built as the module builds it (xmlns only where it changes) with
-- the condition after <unverified-hop/>, and with the text changed: <text/> is not covered
local built_refusal = st.message({ type = "error", from = "bob@b.example", to = "alice@a.example/phone", id = "m1" })
	:tag("error", { type = "cancel", by = "a.example" })
	:tag("unverified-hop", { xmlns = NS, peer = "b.example", method = "none", reason = "not-verified", required = "trusted" }):up()
	:text_tag("text", "other words", { xmlns = NS_STANZAS })
	:tag("policy-violation", { xmlns = NS_STANZAS }):up();
check("refusal: the same projection from util.stanza, whatever <text/> says",
	core.payload_input(core.message_fields(built_refusal), { "refusal" }) == EXPECTED_REFUSAL,
	(core.payload_input(core.message_fields(built_refusal), { "refusal" }):gsub("%z", "|")));
check("refusal: no condition, no type or by: empty values", core.payload_input(core.message_fields(parse(
	"<message xmlns='jabber:client' type='error' from='b@y' to='a@x/r' id='m'><error>" .. HOP .. "</error></message>")),
	{ "refusal" }) == "refusal\0type\0\0by\0\0condition\0\0hop.method\0none\0hop.peer\0b.example\0hop.reason\0not-verified\0"
	.. "hop.required\0trusted\0");
check("refusal: two <unverified-hop/> in one <error/> are refused",
	refused(core.message_fields, parse(refusal_stanza(HOP .. HOP))));
check("refusal: two <unverified-hop/> across two <error/> are refused",
	refused(core.message_fields, parse(refusal_stanza(HOP, "<error type='cancel'>" .. HOP .. "</error>"))));
local second_error = core.message_fields(parse(refusal_stanza("", "<error type='modify' by='c.example'>" .. HOP
	.. "<bad-request xmlns='" .. NS_STANZAS .. "'/></error>")));
check("refusal: read from the <error/> that holds it", core.payload_input(second_error, { "refusal" }):find(
	"^refusal\0type\0modify\0by\0c%.example\0condition\0bad%-request\0") ~= nil);
check("refusal: an <unverified-hop/> outside <error/> is no payload", #core.message_fields(parse(
	"<message xmlns='jabber:client' type='error' from='b@y' to='a@x/r' id='m'>" .. HOP .. "</message>")).present == 0);
check("refusal: an <error/> in another namespace is no payload", #core.message_fields(parse(
	"<message xmlns='jabber:client' type='error' from='b@y' to='a@x/r' id='m'><error xmlns='urn:x'>" .. HOP
	.. "</error></message>")).present == 0);
check("refusal: a namespaced attribute on <unverified-hop/> is refused", refused(core.message_fields, parse(refusal_stanza(
	"<unverified-hop xmlns='" .. NS .. "' xmlns:x='urn:x' x:peer='b.example'/>"))));

-- The refuser's record: a server's record without 'i=' and 'c=' (it originates the error).
local rkey = core.signing_key(("\5"):rep(32));
local client_view = { method = "tls-unique", result = "pass", tls = "1.2", spki = "AAAAAAAAAAAAAAAA" };
local refuser = core.attest(rfields, rkey, { signer = "a.example", time = 1795597200, out_view = client_view,
	out_peer = "alice@a.example/phone" });
check("refusal: the refuser's record has no i, c, v, r, st and covers the refusal", refuser.text ==
	"s=a.example;t=1795597200;k=" .. rkey.public .. ";o=tls-unique,pass,1.2,AAAAAAAAAAAAAAAA;p=alice@a.example/phone;h=refusal;z="
	.. refuser.sig, refuser.text);
local read_back = core.decode_record(refuser.text);
check("refusal: a server's record without 'i=' and 'c=' decodes", read_back.signer == "a.example" and read_back.in_view == nil
	and read_back.chain == nil and read_back.out_peer == "alice@a.example/phone" and table.concat(read_back.covers, ",") == "refusal");
check("refusal: the refuser's record verifies over the refusal", core.verify_signature(rkey.public, refuser.sig,
	core.signing_input(rfields, "", core.unsigned_text(read_back), read_back.covers)));
local function record_refused(text, why)
	local ok, e = core.try(core.decode_record, text);
	return ok == nil and e.reason == "malformed" and (why == nil or e.text == why), e and e.text;
end
local base_fields = "s=a.example;t=1795597200;k=" .. rkey.public .. ";";
local tail = ";o=tls-unique,pass,1.2,AAAAAAAAAAAAAAAA;z=" .. refuser.sig;
local BOTH = "a server's record has 'i=' and 'c=' both, or neither (a refusal's first record)";
local NONE_WITHOUT_I = "a record without 'i=' (a refusal's first record) states no 'c=', 'v=', 'r=' or 'st='";
check("refusal: a server's record with 'i=' but no 'c=' is malformed", record_refused(base_fields .. "i=pin,pass,1.3,AAAAAAAAAAAAAAAA" .. tail, BOTH));
check("refusal: a server's record with 'c=' but no 'i=' is malformed", record_refused(base_fields .. "c=pass" .. tail, BOTH));
check("refusal: a record without 'i=' but with 'v=' is malformed", record_refused(base_fields .. "v=s2s-pin" .. tail, NONE_WITHOUT_I));
check("refusal: a record without 'i=' but with 'r=' is malformed", record_refused(base_fields .. "r=1" .. tail, NONE_WITHOUT_I));
check("refusal: a record without 'i=' but with 'st=' is malformed", record_refused(base_fields .. "st=1795597100" .. tail, NONE_WITHOUT_I));
check("refusal: a server's record still needs 't='", record_refused("s=a.example;k=" .. rkey.public .. tail));
check("refusal: attest writes no record without an in-view that vouches, removed or stored",
	not pcall(core.attest, rfields, rkey, { signer = "a.example", time = 1, out_view = client_view, vouch = "link" })
	and not pcall(core.attest, rfields, rkey, { signer = "a.example", time = 1, out_view = client_view, removed = 1 })
	and not pcall(core.attest, rfields, rkey, { signer = "a.example", time = 1, out_view = client_view, out_peer = "a@x/r", stored = 1 })
	and not pcall(core.attest, rfields, rkey, { signer = "a.example", time = 1, out_view = client_view, chain = "pass" })
	and not pcall(core.attest, rfields, rkey, { signer = "a.example", time = 1, out_view = client_view, in_view = client_view }));

-- try() passes results through and turns only trust-path errors into (nil, err).
local a, b, c = core.try(function () return 1, nil, 3; end);
check("try: results", a == 1 and b == nil and c == 3);
local none, err = core.try(core.decode_record, "k=x");
check("try: malformed", none == nil and err.reason == "malformed");
check("try: other errors propagate", not pcall(core.try, function () error("bug"); end));

-- The key form, read back.
local keys = { { key = key.public, status = "current" }, { key = core.signing_key(("\2"):rep(32)).public, status = "retired",
	not_after = "2026-11-25T09:05:00Z" }, { key = core.signing_key(("\3"):rep(32)).public, status = "revoked",
	since = "2026-11-20T00:00:00Z" } };
local query = st.stanza("query", { xmlns = core.NS_DISCO_INFO }):tag("feature", { var = NS }):up()
	:add_child(core.key_form(keys, 120, 600));
local published = core.read_disco_info(parse(tostring(query)), "a.example");
check("key form: read back", published.takes_part and #published.keys == 3 and published.max_skew == 120
	and published.cache_for == 600 and published.keys[2].not_after == "2026-11-25T09:05:00Z"
	and published.keys[3].since == "2026-11-20T00:00:00Z" and published.keys[1].key == key.public);
check("key form: values are alg:key", tostring(query):find("ed25519:" .. key.public, 1, true) ~= nil);
check("key form: no feature, no keys", core.read_disco_info(st.stanza("query", { xmlns = core.NS_DISCO_INFO }), "a").takes_part == false);
check("key form: the feature without a form is refused", refused(core.read_disco_info,
	st.stanza("query", { xmlns = core.NS_DISCO_INFO }):tag("feature", { var = NS }):up(), "a"));
check("key problems", core.key_problem(keys, keys[1].key, 0) == nil and core.key_problem(keys, keys[2].key, 1795597500) == nil
	and core.key_problem(keys, keys[2].key, 1795597501) == "key-retired" and core.key_problem(keys, keys[3].key, 0) == "key-revoked"
	and core.key_problem(keys, "nope", 0) == "key-unknown");

-- The DNSSEC TXT records and the POSH document, written and read back (the Python txt_records,
-- read_txt_records, posh_document, read_posh_document).
local texts = core.txt_records(keys);
check("txt: one record per key", #texts == 3 and texts[1] == "v=tp1; k=ed25519:" .. key.public
	and texts[2] == "v=tp1; k=ed25519:" .. keys[2].key .. "; s=retired; until=2026-11-25T09:05:00Z"
	and texts[3] == "v=tp1; k=ed25519:" .. keys[3].key .. "; s=revoked; since=2026-11-20T00:00:00Z");
local from_dns = core.read_txt_records({ "v=spf1 -all", texts[1], texts[2], texts[3] }, "a.example");
check("txt: read back, other records ignored", #from_dns == 3 and from_dns[1].key == key.public and from_dns[1].status == "current"
	and from_dns[2].status == "retired" and from_dns[2].not_after == "2026-11-25T09:05:00Z" and from_dns[3].status == "revoked"
	and from_dns[3].since == "2026-11-20T00:00:00Z");
check("txt: no current key is refused", refused(core.read_txt_records, { texts[2] }, "a.example"));
check("txt: a retired key needs until=", refused(core.read_txt_records, { texts[1], "v=tp1; k=ed25519:" .. keys[2].key .. "; s=retired" }, "a.example"));
check("txt: a bad key is refused", refused(core.read_txt_records, { "v=tp1; k=ed25519:AAAA" }, "a.example"));
check("txt: spaces around tags", core.read_txt_records({ " v = tp1 ;k= ed25519:" .. key.public .. " " }, "a")[1].key == key.public);
local json = require "util.json";
local posh_keys, expires = core.read_posh_document(json.decode(json.encode(core.posh_document(keys, 900))), "a.example");
check("posh: read back", expires == 900 and #posh_keys == 3 and posh_keys[1].key == key.public and posh_keys[2].not_after == "2026-11-25T09:05:00Z"
	and posh_keys[3].status == "revoked");
check("posh: refused without keys or with bad expires", refused(core.read_posh_document, { keys = {} }, "a")
	and refused(core.read_posh_document, { keys = { { key = key.public } }, expires = -1 }, "a")
	and refused(core.read_posh_document, { keys = { { key = key.public, status = "lost" } } }, "a"));

-- A next key (published before the first signature with it): valid like a current key, and
-- written and read back in every place keys are published.
local upcoming = core.signing_key(("\4"):rep(32)).public;
local with_next = { keys[1], { key = upcoming, status = "next", alg = "ed25519" } };
check("next key: valid like a current one", core.key_problem(with_next, upcoming, 0) == nil);
local next_query = st.stanza("query", { xmlns = core.NS_DISCO_INFO }):tag("feature", { var = NS }):up()
	:add_child(core.key_form(with_next, 300, 3600));
local read_next = core.read_disco_info(parse(tostring(next_query)), "a.example");
local next_field;
for field in next_query:get_child("x", "jabber:x:data"):childtags("field") do
	if field.attr.var == "next-key" then next_field = field; end
end
check("next key: the form's next-key field", next_field and next_field:get_child_text("value") == "ed25519:" .. upcoming
	and read_next.keys[2].status == "next" and read_next.keys[2].key == upcoming);
check("next key: no next-key field without one", not tostring(query):find("next-key", 1, true));
local next_texts = core.txt_records(with_next);
check("next key: TXT s=next", next_texts[2] == "v=tp1; k=ed25519:" .. upcoming .. "; s=next"
	and core.read_txt_records(next_texts, "a.example")[2].status == "next");
check("next key: POSH status next", core.read_posh_document(json.decode(json.encode(core.posh_document(with_next))), "a")[2].status == "next");
check("posh: JSON null counts as absent; other types are refused",
	core.read_posh_document({ keys = { { key = key.public, alg = json.null, status = json.null } }, expires = json.null }, "a")[1].status == "current"
	and refused(core.read_posh_document, { keys = { { key = key.public, alg = 1 } } }, "a")
	and refused(core.read_posh_document, { keys = { { key = key.public } }, expires = true }, "a")
	and refused(core.read_posh_document, { keys = { { key = key.public } }, expires = 1.5 }, "a"));

-- The pre-flight answer leaves out a view a client could not read.
check("preflight: a failed pin view is kept", core.preflight_answer("b.example", true,
	{ method = "pin", result = "fail", reason = "pin-mismatch", tls = "1.3", spki = "AAAAAAAAAAAAAAAA" }).link ~= nil);
check("preflight: spki is required over TLS", core.preflight_answer("b.example", true,
	{ method = "pin", result = "pass", tls = "1.3" }).link == nil);
local pf = parse(tostring(core.preflight_element(core.preflight_answer("b.example", false, view))));
check("preflight: element", pf.name == "preflight" and pf.attr.xmlns == NS and pf.attr["takes-part"] == "false"
	and pf.attr.link == "pin,pass,1.3,AAAAAAAAAAAAAAAA");

print(("%d passed, %d failed"):format(passed, failed));
os.exit(failed == 0 and 0 or 1);
