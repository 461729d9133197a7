-- Unit tests of trust_path_core.lua's fast paths: each must give exactly what the plain
-- version gives (the signing input byte for byte, the same base64 checks, elements that
-- serialize and parse like util.stanza's).  Run from anywhere: lua5.4 prosody/tests/test_core.lua
local setup = dofile((debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".") .. "/setup.lua");
local core = setup.core;
local st = require "util.stanza";
local xml = require "util.xml";

local passed, failed = 0, 0;
local function check(name, cond, detail)
	if cond then passed = passed + 1; else failed = failed + 1; print("FAIL: " .. name .. (detail and (" -- " .. detail) or "")); end
end

-- The base64 checks, against the plain definition (XEP schema: 43 or 86 characters of the
-- alphabet, the last one restricted to the values whose unused bits are zero, then padding).
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
	for _, c in ipairs({ { candidate(43, "="), 44, "AEIMQUYcgkosw048", "=", core.is_b64_32 },
		{ candidate(86, "=="), 88, "AQgw", "==", core.is_b64_64 } }) do
		local expected = plain_b64(c[1], c[2], c[3], c[4]);
		if expected then valid = valid + 1; end
		if c[5](c[1]) ~= expected then agree = false; print("differs: " .. c[1]); end
	end
end
check("is_b64_32/64 agree with the plain definition on 40000 strings", agree);
check("and some of them are valid", valid > 100, tostring(valid));
check("a real key", core.is_b64_32("+UXL5a5lI4zDn624+M0g1KqFKL+Vhqu9elA0yplwo14="));
check("unused bits set", not core.is_b64_32("+UXL5a5lI4zDn624+M0g1KqFKL+Vhqu9elA0yplwo15="));
check("not a string", not core.is_b64_32(nil) and not core.is_b64_64(42));

-- The signing input: a view marked for reuse is encoded once and gives the same bytes.
local fields = { sender = "alice@a.example/phone", to = "bob@b.example", id = "x1", type = "chat",
	bodies = { { text = "hi" }, { lang = "de", text = "hallo" } }, subjects = {}, threads = { { text = "t" } },
	require = "trusted" };
local function view() return { peer = "a.example", side = "server", tls = "1.3", cipher = "1301",
	spki = "yCNcipaTusUs2cWP0cnTltwKS03ddEHWqKSiXPHwcLg=", method = "pin", result = "pass", chain = "pass",
	["key-source"] = "link", removed = 2 }; end
local att = { signer = "b.example", time = "2026-11-25T09:00:00Z", for_id = "x1", prev_key = "k", in_view = view(),
	out_view = { peer = "bob@b.example/desk", side = "server", tls = "1.3", method = "SCRAM-SHA-1", result = "pass",
		spki = "yCNcipaTusUs2cWP0cnTltwKS03ddEHWqKSiXPHwcLg=" } };
local plain = core.signing_input(fields, "prev", att);
local reused = { signer = att.signer, time = att.time, for_id = att.for_id, prev_key = att.prev_key,
	in_view = core.reuse_view(view()), out_view = core.reuse_view(att.out_view) };
check("reused views: same signing input (first)", core.signing_input(fields, "prev", reused) == plain);
check("reused views: same signing input (cached)", core.signing_input(fields, "prev", reused) == plain);
local expected_prefix = table.concat({ core.NS, "from", "alice@a.example/phone", "to", "bob@b.example", "type", "chat",
	"body", "hi", "body@de", "hallo", "thread", "t", "require", "trusted", "" }, "\0");
check("message prefix", core.message_prefix(fields) == expected_prefix, (core.message_prefix(fields):gsub("%z", "|")));
check("view input", core.view_input("in.", view()) == core.view_input("in.", reused.in_view));

-- message_fields: a message without subject or thread gets read-only empty lists.
local m = st.message({ from = "a@a.example/r", to = "b@b.example", id = "i", type = "chat" }):text_tag("body", "x");
local f = core.message_fields(m);
check("one body", #f.bodies == 1 and f.bodies[1].text == "x");
check("no subject", #f.subjects == 0 and #f.threads == 0);
check("empty lists are read-only", not pcall(function () f.subjects[1] = {}; end));
local multi = st.message({ from = "a@a.example/r", to = "b@b.example", id = "i" }):tag("body"):text("a"):text("b"):up();
check("text of several nodes", core.message_fields(multi).bodies[1].text == "ab");
check("empty body", core.message_fields(st.message({ from = "a", to = "b", id = "i" }):tag("body"):up()).bodies[1].text == "");

-- A delivery <report/> is signed generically: its attributes sorted by name as "report."
-- fields, then per <hop/> a "hop" field with its position and its attributes as "hop." fields.
local REPORT = [[<message xmlns='jabber:client' from='b@b.example/r' to='a@a.example/p' id='r1'>]]
	.. [[<received xmlns='urn:xmpp:receipts' id='m1'/>]]
	.. [[<report xmlns='urn:xmpp:trust-path:0' xmlns:x='urn:example:x' verdict='weak' for='m1' origin='O'>]]
	.. [[<hop to='a.example' from='a@a.example/p' strength='strong'/>text<other/>]]
	.. [[<hop xmlns='urn:example:other' from='ignored'/>]]
	.. [[<hop from='a.example' to='b.example' strength='weak' Z='upper' key-source='link'><ignored/></hop>]]
	.. [[</report><body>ok</body></message>]];
local report_msg = assert(xml.parse(REPORT));
local report_fields = core.message_fields(report_msg);
local expected_report_prefix = table.concat({ core.NS, "from", "b@b.example/r", "to", "a@a.example/p", "type", "normal",
	"body", "ok",
	"report.for", "m1", "report.origin", "O", "report.verdict", "weak",
	"hop", "1", "hop.from", "a@a.example/p", "hop.strength", "strong", "hop.to", "a.example",
	"hop", "2", "hop.Z", "upper", "hop.from", "a.example", "hop.key-source", "link", "hop.strength", "weak", "hop.to", "b.example",
	"" }, "\0");
check("report: message prefix", core.message_prefix(report_fields) == expected_report_prefix,
	(core.message_prefix(report_fields):gsub("%z", "|")));
check("no report: fields.report is nil", core.message_fields(m).report == nil);
local function refused(text)
	local ok, why = core.try(core.message_fields, assert(xml.parse(text)));
	return ok == nil and why.reason == "malformed", why and tostring(why);
end
local function with_report(inner)
	return "<message xmlns='jabber:client' from='b@b.example/r' to='a@a.example/p' id='r1'>" .. inner .. "</message>";
end
check("report: two <report/> refused", refused(with_report("<report xmlns='urn:xmpp:trust-path:0' for='a'/>"
	.. "<report xmlns='urn:xmpp:trust-path:0' for='b'/>")));
check("report: a namespaced attribute on <hop/> refused", refused(with_report("<report xmlns='urn:xmpp:trust-path:0' for='a'>"
	.. "<hop xmlns:x='urn:example:x' from='a' x:to='b'/></report>")));
check("report: xml:lang on <report/> refused", refused(with_report("<report xmlns='urn:xmpp:trust-path:0' xml:lang='en'/>")));
check("report: 16 hops accepted", #core.message_fields(assert(xml.parse(with_report("<report xmlns='urn:xmpp:trust-path:0'>"
	.. ("<hop n='x'/>"):rep(16) .. "</report>")))).report == 17);
check("report: 17 hops refused", refused(with_report("<report xmlns='urn:xmpp:trust-path:0'>"
	.. ("<hop n='x'/>"):rep(17) .. "</report>")));
check("report: a <report/> in another namespace is not signed", core.message_fields(assert(xml.parse(
	with_report("<report xmlns='urn:example:other' for='a'/>")))).report == nil);

-- Elements built without util.stanza's checks serialize and parse like util.stanza's.
local SIG = ("A"):rep(86) .. "==";
local with_quotes = { signer = "b.example", time = "2026-11-25T09:00:00Z", for_id = "it's \"quoted\" & <ok>", sig = SIG,
	in_view = att.in_view, out_view = att.out_view };
local el = core.attestation_element(with_quotes);
local reference = st.stanza("attestation", { xmlns = core.NS, signer = "b.example", time = "2026-11-25T09:00:00Z",
	["for"] = "it's \"quoted\" & <ok>", sig = SIG });
local parsed = xml.parse(tostring(el));
check("attestation element parses back", parsed and parsed.attr["for"] == with_quotes.for_id and #parsed.tags == 2);
check("views in order", parsed.tags[1].name == "in" and parsed.tags[2].name == "out" and parsed.tags[1].attr.removed == "2");
check("same top attributes as util.stanza", xml.parse(tostring(reference)).attr["for"] == parsed.attr["for"]);
local decoded = core.decode_attestation(parsed);
check("decodes strictly", decoded.in_view.chain == "pass" and decoded.out_view.method == "SCRAM-SHA-1");

-- try() passes results through and turns only trust-path errors into (nil, err).
local a, b, c = core.try(function (x) return x, nil, 3; end, 1);
check("try: results", a == 1 and b == nil and c == 3);
local none, err = core.try(core.message_fields, st.message({ to = "b" }));
check("try: malformed", none == nil and err.reason == "malformed");
check("try: other errors propagate", not pcall(core.try, function () error("bug"); end));

-- The pre-flight answer: <preflight/> with 'takes-part' and the <out/> view, which is left out
-- unless it is well-formed by the same rules as an attestation's <out/>.
local SPKI = "FokyVHZlU152vi+vktLOnPtR4RnrCR+Z0jAC3o/hlKw=";
local pin_fail = { peer = "b.example", side = "client", tls = "1.3", cipher = "1302", spki = SPKI, method = "pin",
	result = "fail", reason = "pin-mismatch" };
check("view_problem: a failed pin view is well-formed", core.view_problem(pin_fail) == nil);
check("view_problem: spki is required over TLS", core.view_problem({ peer = "b.example", side = "client", tls = "1.3",
	method = "pin", result = "fail", reason = "pin-mismatch" }) ~= nil);
check("view_problem: a failure needs a reason", core.view_problem({ peer = "b.example", side = "client", tls = "none",
	method = "none", result = "fail" }) ~= nil);
local pf = xml.parse(tostring(core.preflight_element(core.preflight_answer("b.example", true, pin_fail))));
local pf_out = pf and pf:get_child("out", core.NS);
check("preflight: parses back", pf and pf.name == "preflight" and pf.attr.xmlns == core.NS and pf.attr.domain == "b.example"
	and pf.attr["takes-part"] == "true");
check("preflight: <out/> in the namespace, decodes like an attestation's", pf_out ~= nil
	and core.try(core.decode_attestation, xml.parse(tostring(core.attestation_element({ signer = "a.example",
		time = "2026-11-25T09:00:00Z", for_id = "x", sig = SIG, out_view = pf_out.attr })))) ~= nil
	and pf_out.attr.reason == "pin-mismatch" and pf_out.attr.spki == SPKI);
local pf_false = xml.parse(tostring(core.preflight_element(core.preflight_answer("b.example", false, nil))));
check("preflight: takes-part false, no <out/>", pf_false.attr["takes-part"] == "false" and #pf_false.tags == 0);
local pf_unknown = xml.parse(tostring(core.preflight_element(core.preflight_answer("b.example", nil, { peer = "b.example", side = "client",
	tls = "1.3", method = "pin", result = "fail", reason = "pin-mismatch" }))));
check("preflight: unknown participation, a view without spki left out", pf_unknown.attr["takes-part"] == nil
	and #pf_unknown.tags == 0);

print(("%d passed, %d failed"):format(passed, failed));
os.exit(failed == 0 and 0 or 1);
