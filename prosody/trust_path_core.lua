-- trust_path_core: the protocol logic of urn:xmpp:trust-path:0 in plain Lua.
--
-- Used by mod_trust_path and by the standalone tests; it needs only Prosody's
-- util.stanza, util.encodings and an Ed25519 backend (Prosody 13's util.crypto, or
-- trust_path_crypto.so built from trust_path_crypto.c for Prosody 0.12).
--
-- It follows the Python reference (reference/trustpath: signing.py, codec.py,
-- verify.py) function by function, so that both give the same bytes and verdicts:
--
--   message_fields(stanza)            the signed fields of a <message/> (XEP "Signing Input")
--   signing_input(fields, prev_sig, att)  the exact bytes an attestation signs
--   decode_path(stanza)               the strict decoder of <path/> (XEP "The Path ...")
--   attest(...)                       sign a new attestation
--   verify(fields, atts, anchor, now) the verifier (XEP "Verification", "Hop Strength and Verdict")
--   client_attestation_problem(...)   the sending server's anti-forgery check
--   receive_chain(...)                a receiving server's 'chain' decision
--
-- Views and attestations are plain tables.  A view is keyed by its wire attribute names
-- ({ peer = "a.example", side = "client", ["key-source"] = "link", ... }); an attestation is
-- { signer, time, for_id, sig, prev_key, stored, alg, in_view, out_view }.
-- Times are integers (seconds since the epoch, UTC).

local st = require "util.stanza";
local base64 = require "util.encodings".base64;

local M = {};

M.NS = "urn:xmpp:trust-path:0";
local NS = M.NS;
local NS_PREFIX = "urn:xmpp:trust-path:";
M.MAX_STANZA_BYTES = 262144;
M.MAX_DEPTH = 16;
M.MAX_ATTESTATIONS = 8;
M.DEFAULT_MAX_SKEW = 300;

---------------------------------------------------------------------------------------------
-- Errors: decoding raises { tp_error = true, reason = <reason code>, text = ... } so that a
-- caller can pcall() and still know which reason code applies (malformed, unsupported-...).
---------------------------------------------------------------------------------------------

local error_mt = { __tostring = function (e) return e.reason .. ": " .. e.text end };
local function fail(reason, text, ...)
	error(setmetatable({ tp_error = true, reason = reason, text = text:format(...) }, error_mt), 2);
end
M.fail = fail;

-- pcall(f, ...) that turns a trust-path error into (nil, err) and re-raises anything else
-- (a bug must not be mistaken for a malformed stanza).
local function try_result(ok, ...)
	if ok then return ...; end
	local err = ...;
	if type(err) == "table" and err.tp_error then return nil, err; end
	error(err, 0);
end
function M.try(f, ...)
	return try_result(pcall(f, ...));
end

---------------------------------------------------------------------------------------------
-- Ed25519 backend
---------------------------------------------------------------------------------------------

-- Prosody 13's util.crypto takes keys as OpenSSL key objects imported from PEM.  A raw
-- Ed25519 seed or public key becomes PEM by prefixing the fixed DER header of RFC 8410
-- (PKCS#8 PrivateKeyInfo / SubjectPublicKeyInfo with OID 1.3.101.112): encoding only.
local function util_crypto_backend(uc, random)
	local function unhex(s) return (s:gsub("..", function (h) return string.char(tonumber(h, 16)); end)); end
	local PKCS8 = unhex("302e020100300506032b657004220420");
	local SPKI = unhex("302a300506032b6570032100");
	local function pem(label, der)
		return ("-----BEGIN %s-----\n%s\n-----END %s-----\n"):format(label, base64.encode(der), label);
	end
	local private_cache, public_cache = {}, {};
	local function private_key(seed)
		assert(type(seed) == "string" and #seed == 32, "an Ed25519 seed must be 32 bytes");
		local key = private_cache[seed];
		if not key then
			key = assert(uc.import_private_pem(pem("PRIVATE KEY", PKCS8 .. seed)), "util.crypto rejected the Ed25519 seed");
			private_cache[seed] = key;
		end
		return key;
	end
	return {
		name = "util.crypto";
		generate_seed = function () return random.bytes(32); end;
		public_from_seed = function (seed)
			local text = private_key(seed):public_pem();
			local der = base64.decode((text:match("%-%-%-%-%-BEGIN PUBLIC KEY%-%-%-%-%-(.-)%-%-%-%-%-END") or ""):gsub("%s", ""));
			assert(der and #der == 44 and der:sub(1, 12) == SPKI, "unexpected Ed25519 public key encoding");
			return der:sub(13);
		end;
		sign = function (seed, msg)
			return assert(uc.ed25519_sign(private_key(seed), msg), "Ed25519 signing failed");
		end;
		verify = function (pub, sig, msg)
			assert(#pub == 32, "an Ed25519 public key must be 32 bytes");
			assert(#sig == 64, "an Ed25519 signature must be 64 bytes");
			local key = public_cache[pub];
			if key == nil then
				key = uc.import_public_pem(pem("PUBLIC KEY", SPKI .. pub)) or false;
				public_cache[pub] = key;
			end
			return key and uc.ed25519_verify(key, msg, sig) == true or false;
		end;
	};
end

-- trust_path_crypto.so (trust_path_crypto.c) for Prosody 0.12.
local function c_backend(c)
	return {
		name = "trust_path_crypto";
		generate_seed = c.generate_seed;
		public_from_seed = c.public_from_seed;
		sign = c.sign;
		verify = c.verify;
	};
end
M.c_backend = c_backend;
M.util_crypto_backend = util_crypto_backend;

-- Prosody 13's util.crypto when present, else the C binding found by require().
local function load_backend()
	local ok, uc = pcall(require, "util.crypto");
	if ok and type(uc) == "table" and uc.ed25519_sign and uc.import_private_pem then
		return util_crypto_backend(uc, require "util.random");
	end
	return c_backend(require "trust_path_crypto");
end

local backend;
function M.crypto()
	if not backend then backend = load_backend(); end
	return backend;
end
function M.set_crypto(b) backend = b; end

---------------------------------------------------------------------------------------------
-- Base64 values of fixed length, checked exactly as the XEP's schema does
---------------------------------------------------------------------------------------------

-- The whole value in one anchored pattern (no substrings to allocate).
local B64_32 = "^" .. ("[A-Za-z0-9+/]"):rep(42) .. "[AEIMQUYcgkosw048]=$";
local B64_64 = "^" .. ("[A-Za-z0-9+/]"):rep(85) .. "[AQgw]==$";
function M.is_b64_32(text) return type(text) == "string" and #text == 44 and text:find(B64_32) ~= nil; end
function M.is_b64_64(text) return type(text) == "string" and #text == 88 and text:find(B64_64) ~= nil; end

function M.b64(raw) return base64.encode(raw); end

-- True when `sig_b64` is `pub_b64`'s signature over `data`; false for anything malformed.
local raw_keys = {}; -- base64 public key -> raw bytes (keys repeat: every message of a domain)
local raw_key_count = 0;
local function raw_key(pub_b64)
	local pub = raw_keys[pub_b64];
	if pub == nil then
		pub = base64.decode(pub_b64);
		if raw_key_count >= 256 then raw_keys, raw_key_count = {}, 0; end
		raw_keys[pub_b64], raw_key_count = pub, raw_key_count + 1;
	end
	return pub;
end
function M.verify_signature(pub_b64, sig_b64, data)
	if not M.is_b64_32(pub_b64) or not M.is_b64_64(sig_b64) then return false; end
	local pub, sig = raw_key(pub_b64), base64.decode(sig_b64);
	if not pub or #pub ~= 32 or not sig or #sig ~= 64 then return false; end
	return M.crypto().verify(pub, sig, data);
end

function M.sign(seed, data) return base64.encode(M.crypto().sign(seed, data)); end
function M.public_b64(seed) return base64.encode(M.crypto().public_from_seed(seed)); end

---------------------------------------------------------------------------------------------
-- Time: exactly YYYY-MM-DDThh:mm:ssZ
---------------------------------------------------------------------------------------------

local function days_from_civil(y, m, d) -- proleptic Gregorian, days since 1970-01-01
	y = m <= 2 and y - 1 or y;
	local era = (y >= 0 and y or y - 399) // 400;
	local yoe = y - era * 400;
	local doy = (153 * (m + (m > 2 and -3 or 9)) + 2) // 5 + d - 1;
	local doe = yoe * 365 + yoe // 4 - yoe // 100 + doy;
	return era * 146097 + doe - 719468;
end
local month_days = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };

-- Parse a wire time; returns seconds since the epoch, or nil and why.  (The last answer is
-- kept: the same second is parsed and formatted many times in a row.)
local last_parsed_text, last_parsed;
function M.parse_time(text)
	if type(text) ~= "string" then return nil, "not a string"; end
	if text == last_parsed_text then return last_parsed; end
	local y, mo, d, h, mi, s = text:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)T(%d%d):(%d%d):(%d%d)Z$");
	if not y then return nil, ("time %q is not of the form 2026-11-25T09:00:00Z"):format(text); end
	y, mo, d, h, mi, s = tonumber(y), tonumber(mo), tonumber(d), tonumber(h), tonumber(mi), tonumber(s);
	local leap = (y % 4 == 0 and y % 100 ~= 0) or y % 400 == 0;
	local dim = (mo == 2 and leap) and 29 or month_days[mo];
	if y < 1 or not dim or d < 1 or d > dim or h > 23 or mi > 59 or s > 59 then
		return nil, ("time %q is not a valid date and time"):format(text);
	end
	local t = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s;
	last_parsed_text, last_parsed = text, t;
	return t;
end

local last_formatted_time, last_formatted;
function M.format_time(t)
	t = math.floor(t);
	if t ~= last_formatted_time then
		last_formatted_time, last_formatted = t, os.date("!%Y-%m-%dT%H:%M:%SZ", t);
	end
	return last_formatted;
end

---------------------------------------------------------------------------------------------
-- Signing input (XEP "Signing Input")
---------------------------------------------------------------------------------------------

local NUL = "\0";
-- The attributes the XEP defines, in Unicode code point order.  Decoding rejects any
-- other attribute, so sorting the present ones is the same as walking these lists.
local ATTESTATION_ORDER = { "alg", "for", "prev-key", "signer", "stored", "time" };
local VIEW_ORDER = { "cb", "chain", "chain-reason", "cipher", "key-source", "method", "peer",
	"reason", "removed", "result", "side", "spki", "tls" };
local ATTESTATION_FIELD = { alg = "alg", ["for"] = "for_id", ["prev-key"] = "prev_key", signer = "signer",
	stored = "stored", time = "time" };

local STANZA_NS = { ["jabber:client"] = true, ["jabber:server"] = true };
local function bare(jid) return (jid:gsub("/.*$", "")); end
M.bare = bare;
local XML_LANG = "xml:lang";

-- Is `child` in the same namespace as the stanza?  Prosody leaves xmlns unset on elements in
-- the stream's default namespace (jabber:client or jabber:server); util.xml sets it.
local function in_stanza_ns(stanza, child)
	local ns, cns = stanza.attr.xmlns, child.attr.xmlns;
	if cns == nil or cns == ns then return true; end
	return ns == nil and STANZA_NS[cns] == true;
end

-- A delivery report (<report/> with its <hop/> children) is signed generically: every
-- attribute, whatever it says (the client that reads the report checks it strictly).
M.MAX_REPORT_HOPS = 16;

-- a < b in code point order (UTF-8 byte order), whatever the C locale's collation says.
local function code_point_less(a, b)
	for i = 1, math.min(#a, #b) do
		local x, y = a:byte(i), b:byte(i);
		if x ~= y then return x < y; end
	end
	return #a < #b;
end

-- The attributes of `element` as signed: { name1, value1, name2, value2, ... } sorted by
-- name.  Namespace declarations are not attributes; a namespaced attribute (util.xml keys it
-- "namespace\1name", or "xml:lang" and the like) would not be signed, so it is refused.
local function signed_attributes(element, what)
	local attr = element.attr;
	local names = {};
	for k in pairs(attr) do
		if k ~= "xmlns" and not k:find("^xmlns:") then
			if k:find("[:\1]") then
				fail("malformed", "<%s/> must not carry namespaced attributes: they are not signed", what);
			end
			names[#names + 1] = k;
		end
	end
	table.sort(names, code_point_less);
	local out = {};
	for i, k in ipairs(names) do out[2 * i - 1], out[2 * i] = k, attr[k]; end
	return out;
end

-- A <report/> as the signing input covers it: { report's attributes, hop 1's, hop 2's, ... }.
local function report_fields(report)
	local out = { signed_attributes(report, "report") };
	for _, child in ipairs(report.tags) do
		if child.name == "hop" and child.attr.xmlns == NS then
			if #out > M.MAX_REPORT_HOPS then
				fail("malformed", "more than %d hops in a <report/>", M.MAX_REPORT_HOPS);
			end
			out[#out + 1] = signed_attributes(child, "hop");
		end
	end
	return out;
end
M.report_fields = report_fields;

local TEXT_FIELD = { body = true, subject = true, thread = true };
local NONE = setmetatable({}, { __newindex = function () error("read-only", 2); end }); -- no such children

-- The fields of a <message/> that attestations are bound to.  Raises "malformed" if the
-- message cannot be attested (no from/to/id, a body with child elements, a bad <require/>,
-- two <report/>s, a namespaced attribute on <report/> or <hop/>, more than 16 hops).
-- `report` is nil without a <report/>, else what report_fields() gives.
function M.message_fields(stanza)
	local a = stanza.attr;
	if not a.from or a.from == "" or not a.to or a.to == "" then
		fail("malformed", "the message needs 'from' and 'to' to be attested");
	end
	if not a.id or a.id == "" then fail("malformed", "the message needs an 'id' to be attested"); end
	local groups; -- made only when the message has such children (most have one body)
	local require_verdict, report;
	for _, child in ipairs(stanza.tags) do
		local name = child.name;
		if TEXT_FIELD[name] and in_stanza_ns(stanza, child) then
			if #child.tags > 0 then fail("malformed", "<%s/> must contain text only", name); end
			if not groups then groups = {}; end
			local group = groups[name];
			if not group then group = {}; groups[name] = group; end
			group[#group + 1] = { lang = child.attr[XML_LANG], text = child[2] == nil and (child[1] or "") or table.concat(child) };
		elseif child.name == "require" and child.attr.xmlns == NS then
			if require_verdict then fail("malformed", "more than one <require/>"); end
			require_verdict = child.attr.verdict;
			local extra = false;
			for k in pairs(child.attr) do
				if k ~= "verdict" and k ~= "xmlns" then extra = true; end
			end
			if (require_verdict ~= "trusted" and require_verdict ~= "weak") or extra then
				fail("malformed", "<require/> takes verdict='trusted' or verdict='weak'");
			end
		elseif name == "report" and child.attr.xmlns == NS then
			if report then fail("malformed", "more than one <report/>"); end
			report = report_fields(child);
		end
	end
	return { sender = a.from, to = a.to, id = a.id, type = a.type or "normal",
		bodies = groups and groups.body or NONE, subjects = groups and groups.subject or NONE,
		threads = groups and groups.thread or NONE, require = require_verdict, report = report };
end

-- The signing input is built in one scratch buffer (Lua is single-threaded and nothing here
-- yields) and concatenated once: a server builds several per message, and every temporary
-- string or table is work for the garbage collector.
local buf = {};
local t_concat = table.concat;

local TEXT_GROUPS = { { "body", "bodies" }, { "subject", "subjects" }, { "thread", "threads" } };

-- The message part of the signing input; the same for every attestation of a message.
function M.message_prefix(fields)
	buf[1], buf[2], buf[3], buf[4], buf[5], buf[6], buf[7] = NS, NUL, "from", NUL, fields.sender, NUL, "to";
	buf[8], buf[9], buf[10], buf[11], buf[12], buf[13], buf[14] = NUL, fields.to, NUL, "type", NUL, fields.type, NUL;
	local n = 14;
	for _, group in ipairs(TEXT_GROUPS) do
		for _, item in ipairs(fields[group[2]]) do
			buf[n + 1] = group[1];
			if item.lang then buf[n + 2], buf[n + 3] = "@", item.lang; else buf[n + 2], buf[n + 3] = "", ""; end
			buf[n + 4], buf[n + 5], buf[n + 6] = NUL, item.text, NUL;
			n = n + 6;
		end
	end
	if fields.require then
		buf[n + 1], buf[n + 2], buf[n + 3], buf[n + 4] = "require", NUL, fields.require, NUL;
		n = n + 4;
	end
	local report = fields.report;
	if report then
		for p = 1, #report do
			local prefix, attrs = "hop.", report[p];
			if p == 1 then
				prefix = "report.";
			else
				buf[n + 1], buf[n + 2], buf[n + 3], buf[n + 4] = "hop", NUL, tostring(p - 1), NUL;
				n = n + 4;
			end
			for i = 1, #attrs, 2 do
				buf[n + 1], buf[n + 2], buf[n + 3], buf[n + 4], buf[n + 5] = prefix, attrs[i], NUL, attrs[i + 1], NUL;
				n = n + 5;
			end
		end
	end
	return t_concat(buf, "", 1, n);
end

-- The signing input part of a view ("in." or "out." fields) is appended to buf after
-- position n; returns the new end.  A server signs the same view tables for every message of
-- a session: M.reuse_view() marks such a table (which must not change afterwards), and its
-- encoding is then computed once.
local view_encodings = { ["in."] = setmetatable({}, { __mode = "k" }), ["out."] = setmetatable({}, { __mode = "k" }) };
local reusable = setmetatable({}, { __mode = "k" });
function M.reuse_view(view) reusable[view] = true; return view; end
local function append_view(n, prefix, view)
	local cache = view_encodings[prefix];
	local encoded = cache[view];
	if encoded then buf[n + 1] = encoded; return n + 1; end
	local start = n;
	for _, name in ipairs(VIEW_ORDER) do
		local value = view[name];
		if value ~= nil then
			buf[n + 1], buf[n + 2], buf[n + 3], buf[n + 4], buf[n + 5] = prefix, name, NUL, tostring(value), NUL;
			n = n + 5;
		end
	end
	if reusable[view] then
		encoded = t_concat(buf, "", start + 1, n);
		cache[view] = encoded;
		buf[start + 1] = encoded;
		return start + 1;
	end
	return n;
end
function M.view_input(prefix, view)
	return t_concat(buf, "", 1, append_view(0, prefix, view));
end

-- The bytes `att` signs, given the message prefix and the previous attestation's sig ("" for
-- the first).  `att.sig` is ignored.
function M.fields_input(prefix, prev_sig, att)
	buf[1], buf[2], buf[3], buf[4], buf[5] = prefix, "prev", NUL, prev_sig, NUL;
	local n = 5;
	for _, name in ipairs(ATTESTATION_ORDER) do
		local value = att[ATTESTATION_FIELD[name]];
		if value ~= nil then
			buf[n + 1], buf[n + 2], buf[n + 3], buf[n + 4], buf[n + 5] = "attestation.", name, NUL, value, NUL;
			n = n + 5;
		end
	end
	if att.in_view then n = append_view(n, "in.", att.in_view); end
	if att.out_view then n = append_view(n, "out.", att.out_view); end
	return t_concat(buf, "", 1, n);
end

function M.signing_input(fields, prev_sig, att, prefix)
	return M.fields_input(prefix or M.message_prefix(fields), prev_sig, att);
end

---------------------------------------------------------------------------------------------
-- Decoding <path/> strictly (codec.py)
---------------------------------------------------------------------------------------------

local function set(list) local s = {}; for _, v in ipairs(list) do s[v] = true; end return s; end
local ATTESTATION_ATTRS = set { "signer", "time", "for", "alg", "prev-key", "stored", "sig" };
local VIEW_ATTRS = set { "peer", "side", "tls", "cipher", "spki", "method", "cb", "result", "reason" };
local IN_ATTRS = set { "peer", "side", "tls", "cipher", "spki", "method", "cb", "result", "reason",
	"chain", "chain-reason", "key-source", "removed" };
local SIDES = set { "client", "server" };
local RESULTS = set { "pass", "fail", "none" };
local CHAINS = set { "pass", "absent", "stripped", "fail" };
local KEY_SOURCES = set { "link", "dnssec", "config", "posh", "tofu", "none" };
local TLS = set { "1.2", "1.3", "none" };
local CB = set { "tls-unique", "tls-exporter", "tls-server-end-point" };
local METHODS = set { "pin", "dane-ee", "dane-ta", "pkix", "dialback", "dialback-dnssec", "none" };

-- Attributes of an element without namespace declarations (they are not attributes).
local function attributes(element)
	local out = {};
	for k, v in pairs(element.attr) do
		if k ~= "xmlns" and not k:find("^xmlns:") then out[k] = v; end
	end
	return out;
end

local function has_text(element)
	for _, node in ipairs(element) do
		if type(node) == "string" and node:find("%S") then return true; end
	end
	return false;
end

local function is_method(m)
	return METHODS[m] or (#m >= 1 and #m <= 20 and m:find("^[A-Z0-9%-_]+$") ~= nil);
end
local function is_reason(r) return #r >= 1 and #r <= 64 and r:find("^[a-z0-9%-]+$") ~= nil; end

local VIEW_REQUIRED = { "peer", "side", "tls", "method", "result" };
local VIEW_REASONS = { "reason", "chain-reason" };
local ATTESTATION_REQUIRED = { "signer", "time", "for", "sig" };

local function decode_view(element, inbound)
	local name = inbound and "in" or "out";
	local attrs = attributes(element);
	local allowed = inbound and IN_ATTRS or VIEW_ATTRS;
	for k in pairs(attrs) do
		if not allowed[k] then fail("malformed", "<%s/> has unknown attribute '%s'", name, k); end
	end
	for _, required in ipairs(VIEW_REQUIRED) do
		if attrs[required] == nil then fail("malformed", "<%s/> lacks '%s'", name, required); end
	end
	if attrs.peer == "" or #attrs.peer > 3071 then fail("malformed", "<%s/> 'peer' must be a JID", name); end
	if not SIDES[attrs.side] then fail("malformed", "<%s/> 'side' must be client or server", name); end
	if not RESULTS[attrs.result] then fail("malformed", "<%s/> 'result' must be pass, fail or none", name); end
	if attrs.chain ~= nil and not CHAINS[attrs.chain] then fail("malformed", "<%s/> 'chain' is not a chain value", name); end
	if attrs["key-source"] ~= nil and not KEY_SOURCES[attrs["key-source"]] then
		fail("malformed", "<%s/> 'key-source' is not a key source", name);
	end
	if not TLS[attrs.tls] then fail("malformed", "<%s/> 'tls' must be 1.2, 1.3 or none", name); end
	if not is_method(attrs.method) then fail("malformed", "<%s/> 'method' %q is not a method name", name, attrs.method); end
	if attrs.spki ~= nil and not M.is_b64_32(attrs.spki) then
		fail("malformed", "<%s/> 'spki' must be a base64 SHA-256 (44 characters)", name);
	end
	if attrs.spki == nil and attrs.tls ~= "none" then fail("malformed", "<%s/> over TLS must state 'spki'", name); end
	if attrs.cipher ~= nil and not attrs.cipher:find("^[0-9A-F][0-9A-F][0-9A-F][0-9A-F]$") then
		fail("malformed", "<%s/> 'cipher' must be 4 upper-case hex digits", name);
	end
	if attrs.cb ~= nil and not CB[attrs.cb] then fail("malformed", "<%s/> 'cb' is not a channel binding type", name); end
	for _, attr in ipairs(VIEW_REASONS) do
		if attrs[attr] ~= nil and not is_reason(attrs[attr]) then
			fail("malformed", "<%s/> '%s' must be a reason code", name, attr);
		end
	end
	if attrs.result == "fail" and attrs.reason == nil then
		fail("malformed", "<%s/> with result='fail' must give a 'reason'", name);
	end
	if attrs.removed ~= nil then
		-- signed as written, so exactly one spelling: 1 to 999, no leading zero
		if not attrs.removed:find("^[1-9][0-9]?[0-9]?$") then
			fail("malformed", "<%s/> 'removed' must be a positive integer", name);
		end
	end
	if inbound and attrs.chain == nil then fail("malformed", "<in/> must state 'chain'"); end
	return attrs;
end

local function decode_attestation(element)
	if element.name ~= "attestation" or element.attr.xmlns ~= NS then
		fail("malformed", "<path/> may contain only <attestation/>, not <%s/>", element.name);
	end
	local attrs = attributes(element);
	for k in pairs(attrs) do
		if not ATTESTATION_ATTRS[k] then fail("malformed", "<attestation/> has unknown attribute '%s'", k); end
	end
	if attrs.alg ~= nil and attrs.alg ~= "ed25519" then
		fail("unsupported-algorithm", "attestation by %s uses algorithm %q; only ed25519 is defined",
			tostring(attrs.signer), attrs.alg);
	end
	for _, required in ipairs(ATTESTATION_REQUIRED) do
		if attrs[required] == nil then fail("malformed", "<attestation/> lacks '%s'", required); end
	end
	if attrs.signer == "" or #attrs.signer > 3071 then fail("malformed", "'signer' must be a JID"); end
	if attrs["for"] == "" or #attrs["for"] > 256 then fail("malformed", "'for' must be a message id of 1 to 256 characters"); end
	local ok, why = M.parse_time(attrs.time);
	if not ok then fail("malformed", "'time': %s", why); end
	if attrs.stored ~= nil then
		ok, why = M.parse_time(attrs.stored);
		if not ok then fail("malformed", "'stored': %s", why); end
	end
	if not M.is_b64_64(attrs.sig) then fail("malformed", "'sig' must be a base64 Ed25519 signature (88 characters)"); end
	if attrs["prev-key"] ~= nil and not M.is_b64_32(attrs["prev-key"]) then
		fail("malformed", "'prev-key' must be a base64 Ed25519 key (44 characters)");
	end
	if has_text(element) then fail("malformed", "<attestation/> contains text"); end
	local in_view, out_view;
	local order = {};
	for _, child in ipairs(element.tags) do
		if child.attr.xmlns ~= NS or (child.name ~= "in" and child.name ~= "out") then
			fail("malformed", "<attestation/> may contain only <in/> and <out/>, not <%s/>", child.name);
		end
		if #child.tags > 0 or has_text(child) then fail("malformed", "<%s/> must be empty", child.name); end
		order[#order + 1] = child.name;
		if child.name == "in" then in_view = decode_view(child, true); else out_view = decode_view(child, false); end
	end
	local shape = table.concat(order, ",");
	if shape ~= "in" and shape ~= "out" and shape ~= "in,out" then
		fail("malformed", "<attestation/> holds <in/>, <out/> or both, once each, in that order");
	end
	return { signer = attrs.signer, time = attrs.time, for_id = attrs["for"], sig = attrs.sig, alg = attrs.alg,
		prev_key = attrs["prev-key"], stored = attrs.stored, in_view = in_view, out_view = out_view };
end
M.decode_attestation = decode_attestation;

-- The <path/> child of `message`, or nil.  Raises on a second path or another version.
function M.find_path_element(message)
	local found;
	for _, child in ipairs(message.tags) do
		local ns = child.attr.xmlns;
		if child.name == "path" and ns and ns:sub(1, #NS_PREFIX) == NS_PREFIX and ns ~= NS then
			fail("unsupported-version", "trust-path namespace %q is not supported; this implementation speaks %s", ns, NS);
		end
		if child.name == "path" and ns == NS then
			if found then fail("malformed", "more than one <path/> in a message"); end
			found = child;
		end
	end
	return found;
end

-- The attestations carried by `message` (oldest first), or nil when it carries no path.
function M.decode_path(message)
	local element = M.find_path_element(message);
	if not element then return nil; end
	if next(attributes(element)) then fail("malformed", "<path/> takes no attributes"); end
	if has_text(element) then fail("malformed", "<path/> contains text"); end
	local children = element.tags;
	if #children == 0 then fail("malformed", "<path/> is empty"); end
	if #children > M.MAX_ATTESTATIONS then
		fail("malformed", "%d attestations; the limit is %d", #children, M.MAX_ATTESTATIONS);
	end
	local atts, sigs = {}, {};
	for i, child in ipairs(children) do
		local att = decode_attestation(child);
		if sigs[att.sig] then fail("malformed", "the same attestation appears twice in <path/>"); end
		sigs[att.sig] = true;
		if i > 1 and atts[i - 1].signer == att.signer then
			fail("malformed", "two consecutive attestations by %s: a hop is duplicated", att.signer);
		end
		atts[i] = att;
	end
	return atts;
end

local NS_CARBONS, NS_FORWARD, NS_MAM, NS_DELAY = "urn:xmpp:carbons:2", "urn:xmpp:forward:0", "urn:xmpp:mam:2", "urn:xmpp:delay";
M.NS_CARBONS, M.NS_FORWARD, M.NS_DELAY = NS_CARBONS, NS_FORWARD, NS_DELAY;

-- The message to verify in a received stanza: the stanza itself, or the one a carbon
-- (<sent/>/<received/>) or archive result (<result/>) forwards.  Returns the message, the
-- wrapper name ("carbon-sent", "carbon-received", "archive" or nil), the <delay/> stamp and
-- the wrapper's 'from'.
function M.find_message(root)
	if root.name ~= "message" or not in_stanza_ns({ attr = {} }, root) then
		fail("malformed", "expected a <message/> in jabber:client or jabber:server, got <%s/> in %s",
			root.name, tostring(root.attr.xmlns));
	end
	for _, child in ipairs(root.tags) do
		local wrapper;
		if child.attr.xmlns == NS_CARBONS and (child.name == "sent" or child.name == "received") then
			wrapper = "carbon-" .. child.name;
		elseif child.attr.xmlns == NS_MAM and child.name == "result" then
			wrapper = "archive";
		end
		if wrapper then
			local forwarded = child:get_child("forwarded", NS_FORWARD);
			if not forwarded then fail("malformed", "<%s/> without <forwarded/>", child.name); end
			local inner = {};
			for _, m in ipairs(forwarded.tags) do
				if m.name == "message" and (m.attr.xmlns == nil or STANZA_NS[m.attr.xmlns]) then inner[#inner + 1] = m; end
			end
			if #inner ~= 1 then fail("malformed", "<forwarded/> must carry exactly one <message/>"); end
			for _, other in ipairs(root.tags) do
				local own_content = ((other.name == "body" or other.name == "subject") and in_stanza_ns(root, other))
					or (other.name == "path" and other.attr.xmlns and other.attr.xmlns:sub(1, #NS_PREFIX) == NS_PREFIX);
				if own_content then
					fail("malformed", "a <%s/> wrapper must not carry its own <%s/>: only the forwarded message is checked",
						child.name, other.name);
				end
			end
			local delay = forwarded:get_child("delay", NS_DELAY);
			return inner[1], wrapper, delay and delay.attr.stamp, root.attr.from;
		end
	end
	return root;
end

-- XEP-0280 / XEP-0313: only the account itself may hand a forwarded message to its own
-- client (an archive result may also come from no one); anyone else could wrap a stanza it
-- once saw around its own words.  Raises "malformed" for a wrapper from someone else.
function M.check_wrapper(wrapper, outer_from, me)
	if not wrapper then return; end
	local own = bare(me);
	if outer_from == own or (wrapper == "archive" and outer_from == nil) then return; end
	fail("malformed", "a %s wrapper from %s; only %s may send one to %s", wrapper, tostring(outer_from or "nobody"), own, me);
end

-- Depth of an element tree (the message itself is 1).
function M.depth(element, limit)
	local max = 0;
	for _, child in ipairs(element.tags) do
		local d = M.depth(child, limit);
		if d > max then max = d; end
		if limit and max >= limit then break; end
	end
	return max + 1;
end

---------------------------------------------------------------------------------------------
-- Encoding
---------------------------------------------------------------------------------------------

-- Elements are built directly (util.stanza's constructor checks every name and value for
-- XML validity; everything here comes from checked views and our own encodings).
local stanza_mt = st.stanza_mt;
local function element(name, attr)
	return setmetatable({ name = name, attr = attr, tags = {} }, stanza_mt);
end
M.element = element;

local function view_element(name, view)
	local attr = { xmlns = NS };
	for _, k in ipairs(VIEW_ORDER) do
		local v = view[k];
		if v ~= nil then attr[k] = tostring(v); end
	end
	return element(name, attr);
end

M.view_element = view_element;

-- nil if `view` is a well-formed <out/> view (<in/> if `inbound`), else why not: the same
-- rules as for a received view (e.g. 'spki' whenever 'tls' is not none, 'reason' with 'fail').
function M.view_problem(view, inbound)
	local ok, err = M.try(decode_view, view_element(inbound and "in" or "out", view), inbound);
	if ok then return nil; end
	return err.text;
end

-- The result of a pre-flight query (urn:xmpp:trust-path:0 <preflight/>): `takes_part` true,
-- false or nil (unknown: the attribute is left out), `out_view` the view of the outgoing s2s
-- link (left out when nil or not well-formed).
function M.preflight_element(domain, takes_part, out_view)
	local attr = { xmlns = NS, domain = domain };
	if takes_part ~= nil then attr["takes-part"] = takes_part and "true" or "false"; end
	local el = st.stanza("preflight", attr);
	if out_view and not M.view_problem(out_view) then
		local out = view_element("out", out_view);
		out.attr.xmlns = nil; -- inherits the namespace of <preflight/>
		el:add_direct_child(out);
	end
	return el;
end

function M.attestation_element(att)
	local el = element("attestation", { xmlns = NS, signer = att.signer, time = att.time, ["for"] = att.for_id,
		sig = att.sig, alg = att.alg, ["prev-key"] = att.prev_key, stored = att.stored });
	local n = 0;
	if att.in_view then n = n + 1; local v = view_element("in", att.in_view); el[n], el.tags[n] = v, v; end
	if att.out_view then n = n + 1; local v = view_element("out", att.out_view); el[n], el.tags[n] = v, v; end
	return el;
end

-- Append `att` to the message's <path/>, creating it if needed.
function M.add_attestation(message, att)
	local path = M.find_path_element(message);
	if not path then
		path = st.stanza("path", { xmlns = NS });
		message:add_direct_child(path);
	end
	if #path.tags >= M.MAX_ATTESTATIONS then fail("malformed", "a path holds at most %d attestations", M.MAX_ATTESTATIONS); end
	path:add_direct_child(M.attestation_element(att));
end

-- Remove every trust-path <path/> (any version); return how many attestations went.
local function is_path(child)
	local ns = child.attr.xmlns;
	return child.name == "path" and ns ~= nil and ns:sub(1, #NS_PREFIX) == NS_PREFIX;
end
function M.remove_paths(message)
	local removed, any = 0, false;
	for _, child in ipairs(message.tags) do
		if is_path(child) then any = true; break; end
	end
	if not any then return 0; end
	message:maptags(function (child)
		local ns = child.attr.xmlns;
		if child.name == "path" and ns and ns:sub(1, #NS_PREFIX) == NS_PREFIX then
			removed = removed + #child.tags;
			return nil;
		end
		return child;
	end);
	return removed;
end

-- True when the message's path is at the limit: a server then forwards it unchanged.
function M.path_full(message)
	local ok, path = pcall(M.find_path_element, message);
	return ok and path ~= nil and #path.tags >= M.MAX_ATTESTATIONS;
end

---------------------------------------------------------------------------------------------
-- Signing (attest.py)
---------------------------------------------------------------------------------------------

-- Sign one attestation for the message `fields`.  opts: signer, time (epoch seconds), seed
-- (32 raw bytes), previous (the last attestation already in the path, or nil), prev_key,
-- in_view, out_view, stored (epoch seconds or nil), prefix (precomputed message prefix).
function M.attest(fields, opts)
	assert(opts.in_view or opts.out_view, "an attestation describes at least one hop");
	assert(opts.previous or opts.prev_sig or not opts.prev_key, "prev_key vouches for a previous attestation, but none was given");
	assert(not opts.in_view or opts.in_view.chain, "an in_view must state chain");
	local att = { signer = opts.signer, time = M.format_time(opts.time), for_id = fields.id,
		prev_key = opts.prev_key, stored = opts.stored and M.format_time(opts.stored) or nil,
		in_view = opts.in_view, out_view = opts.out_view };
	local prev_sig = opts.prev_sig or (opts.previous and opts.previous.sig) or "";
	local data = M.fields_input(opts.prefix or M.message_prefix(fields), prev_sig, att);
	att.sig = M.sign(opts.seed, data);
	return att;
end

---------------------------------------------------------------------------------------------
-- Verification (verify.py)
---------------------------------------------------------------------------------------------

local FAILED, UNVERIFIED, UNKNOWN, CA, STRONG = 0, 1, 2, 3, 4;
M.strength_names = { [0] = "failed", "unverified", "unknown", "ca", "strong" };
local VERDICT = { [0] = "untrusted", "untrusted", "unknown", "weak", "trusted" };
M.STRONG, M.CA, M.UNVERIFIED = STRONG, CA, UNVERIFIED;

M.METHOD_STRENGTH = { pin = STRONG, ["dane-ee"] = STRONG, ["dane-ta"] = STRONG, pkix = CA,
	["dialback-dnssec"] = CA, dialback = UNVERIFIED, none = UNVERIFIED };
local METHOD_STRENGTH = M.METHOD_STRENGTH;
-- link: as strong as the hop the key was learned over (nil here)
local KEY_SOURCE_STRENGTH = { config = STRONG, dnssec = STRONG, posh = CA, tofu = CA, none = UNVERIFIED };
local ATTESTATION_FAILURES = set { "tampered", "replayed", "key-revoked", "key-retired", "chain-broken" };
local CHAIN_FAILURES = set { "tampered", "replayed", "key-revoked", "key-retired", "chain-broken", "stripped", "clock-skew" };

local function is_client_jid(jid) return jid:find("[@/]") ~= nil; end

-- Keys that may have made a signature at `signed_at`: { key, problem } pairs, usable first.
-- keyset = { { key = <b64>, status = "current"|"retired"|"revoked", not_after = <wire time> }, ... }
function M.candidates(keyset, signed_at)
	local usable, others = {}, {};
	for _, entry in ipairs(keyset) do
		if entry.status == "retired" then
			local limit = entry.not_after and M.parse_time(entry.not_after);
			if limit and signed_at <= limit then usable[#usable + 1] = { entry.key };
			else others[#others + 1] = { entry.key, "key-retired" }; end
		elseif entry.status == "revoked" then
			others[#others + 1] = { entry.key, "key-revoked" };
		else
			usable[#usable + 1] = { entry.key };
		end
	end
	for _, c in ipairs(others) do usable[#usable + 1] = c; end
	return usable;
end

local function missing_reason(in_view)
	if in_view.chain == "absent" then return "not-participating"; end
	if in_view.chain == "stripped" then return "stripped"; end
	if in_view.chain == "fail" then return in_view["chain-reason"] or "chain-broken"; end
	return "stripped"; -- the signer checked a chain that is no longer here
end

local function hop(t) return t; end

local function reconstruct_described(atts, anchor, anchored, archived, room)
	local hops = {};
	local n = #atts;
	if n == 0 then
		hops[1] = hop { sender = anchor.server, receiver = anchor.me, down = anchor.view,
			missing = (anchor.takes_part and not room) and "stripped" or "not-participating" };
		return hops;
	end
	local first = atts[1];
	if first.in_view then
		-- a first attestation with 'prev-key' vouched for one that is no longer there
		local missing = first.prev_key and "stripped" or missing_reason(first.in_view);
		hops[#hops + 1] = hop { sender = first.in_view.peer, receiver = first.signer, down = first.in_view,
			down_index = 1, missing = missing };
	end
	for i = 1, n - 1 do
		local a, b = atts[i], atts[i + 1];
		if not b.in_view then
			hops[#hops + 1] = hop { sender = a.signer, receiver = b.signer, up = a.out_view, up_index = i, missing = "chain-broken" };
		elseif a.out_view and a.out_view.peer == b.signer and b.in_view.peer == a.signer then
			hops[#hops + 1] = hop { sender = a.signer, receiver = b.signer, up = a.out_view, down = b.in_view,
				up_index = i, down_index = i + 1 };
		elseif a.out_view and b.in_view.peer == a.out_view.peer then
			local gap = b.in_view.peer;
			local missing = missing_reason(b.in_view);
			hops[#hops + 1] = hop { sender = a.signer, receiver = gap, up = a.out_view, up_index = i, missing = missing };
			hops[#hops + 1] = hop { sender = gap, receiver = b.signer, down = b.in_view, down_index = i + 1, missing = missing };
		else
			hops[#hops + 1] = hop { sender = b.in_view.peer, receiver = b.signer, down = b.in_view, down_index = i + 1,
				missing = "chain-broken" };
		end
	end
	local last = atts[n];
	if anchored then
		-- delivered to this very resource, or (read from the archive) to another of the account
		local delivered_here = last.out_view ~= nil and (last.out_view.peer == anchor.me
			or (archived and bare(last.out_view.peer) == bare(anchor.me)));
		local broken = not delivered_here;
		hops[#hops + 1] = hop { sender = anchor.server, receiver = anchor.me, up = last.out_view, down = anchor.view,
			up_index = n, missing = broken and "chain-broken" or nil };
	else
		local missing = anchor.takes_part and "stripped" or "not-participating";
		if last.out_view and last.out_view.peer == anchor.server then
			hops[#hops + 1] = hop { sender = last.signer, receiver = anchor.server, up = last.out_view, up_index = n, missing = missing };
		end
		hops[#hops + 1] = hop { sender = anchor.server, receiver = anchor.me, down = anchor.view, missing = missing };
	end
	return hops;
end

-- The path always starts at the message's sender: hops before the first described one are
-- added as not participating, so H1 is always the sender's hop.
local function reconstruct(atts, anchor, anchored, origin, archived, room)
	local hops = reconstruct_described(atts, anchor, anchored, archived, room);
	local first = hops[1].sender;
	if first ~= origin then
		local origin_domain = bare(origin):gsub("^.*@", "");
		local before = {};
		if origin_domain ~= origin then
			before[1] = hop { sender = origin, receiver = origin_domain, missing = "not-participating" };
		end
		if origin_domain ~= first then
			before[#before + 1] = hop { sender = #before > 0 and origin_domain or origin, receiver = first, missing = "not-participating" };
		end
		for i = #before, 1, -1 do table.insert(hops, 1, before[i]); end
	end
	return hops;
end

local function role(h, index)
	if is_client_jid(h.sender) and index == 1 then return "sender-c2s"; end
	if is_client_jid(h.receiver) then return "recipient-c2s"; end
	if is_client_jid(h.sender) then return "c2s"; end
	return "s2s";
end

local STRENGTH_RESULT = { [STRONG] = "pass", [CA] = "pass", [UNKNOWN] = "unknown", [UNVERIFIED] = "none", [FAILED] = "fail" };
local CAPPED_REASON = { pkix = "ca-only", ["dialback-dnssec"] = "ca-only", dialback = "dialback-only" };

local function evaluate(k, h, atts, status)
	local label = "H" .. k;
	local up_ok = h.up ~= nil and h.up_index ~= nil and status[h.up_index] == "ok";
	local down_is_own = h.down ~= nil and h.down_index == nil;
	local down_ok = h.down ~= nil and (down_is_own or status[h.down_index] == "ok");
	local up = up_ok and h.up or nil;
	local down = down_ok and h.down or nil;
	local views = {};
	if up then views[#views + 1] = up; end
	if down then views[#views + 1] = down; end
	local client, server;
	for _, v in ipairs(views) do
		if v.side == "client" and not client then client = v; end
		if v.side == "server" and not server then server = v; end
	end
	local s2s = not is_client_jid(h.sender) and not is_client_jid(h.receiver);
	local key_source;
	if h.down_index and h.down and h.down["key-source"] then
		key_source = h.down["key-source"];
	elseif h.down_index and atts[h.down_index].prev_key and h.up_index then
		key_source = "none"; -- vouched without saying where the key came from
	elseif down_is_own and h.up_index then
		key_source = "anchor";
	end
	local method = (client and server) and (client.method .. " / " .. server.method)
		or (client and client.method) or (server and server.method) or "unknown";
	local function report(result, reason, strength)
		return { label = label, role = role(h, k), sender = h.sender, receiver = h.receiver, client_view = client,
			server_view = server, method = method, result = result, reason = reason, strength = strength,
			key_source = key_source };
	end

	if h.up_index and ATTESTATION_FAILURES[status[h.up_index] or ""] then
		return report("fail", status[h.up_index], FAILED);
	end
	if h.up_index and status[h.up_index] == "key-unknown" then return report("unknown", "key-unknown", UNKNOWN); end
	if h.problem then return report("fail", h.problem, FAILED); end
	for _, v in ipairs(views) do
		if v.result == "fail" then return report("fail", v.reason or "validation-failure", FAILED); end
	end
	if down and down.chain == "fail" and h.down_index and not h.missing then
		return report("fail", down["chain-reason"] or "chain-broken", FAILED);
	end
	if h.missing and h.missing ~= "not-participating" then return report("fail", h.missing, FAILED); end
	if #views == 2 then
		if not client or not server then return report("fail", "chain-broken", FAILED); end
		if client.spki ~= server.spki then return report("fail", "key-mismatch", FAILED); end
	end

	local strength, reason = STRONG, nil;
	for _, v in ipairs(views) do
		if v.tls == "none" then strength, reason = UNVERIFIED, "starttls-not-supported"; break; end
		if v.side == "server" and not s2s then
			-- a SASL mechanism: the client's check of the server decides
			if v.result ~= "pass" then strength, reason = math.min(strength, UNVERIFIED), "not-verified"; end
		else
			local value = METHOD_STRENGTH[v.method] or UNVERIFIED;
			if v.result ~= "pass" then value = UNVERIFIED; end
			if value < strength then
				strength = value;
				reason = CAPPED_REASON[v.method] or "not-verified";
			end
		end
	end
	if #views < 2 and strength > UNKNOWN then
		-- one end's statement alone cannot show a man in the middle
		strength = UNKNOWN;
		reason = h.missing == "not-participating" and "not-participating" or "unvouched";
	end
	if key_source and key_source ~= "anchor" and strength > UNVERIFIED then
		local cap = KEY_SOURCE_STRENGTH[key_source];
		if cap and cap < strength then strength, reason = cap, "weak-key-source"; end
	end
	local result = STRENGTH_RESULT[strength];
	return report(result, reason, strength);
end

-- Check the attestations `atts` received with the message `fields` and return a report:
-- { verdict, hops, weakest, statuses, notes, anchor_key, chain_problem }.
-- anchor = { server, keys (a keyset), me, view, takes_part }; now in epoch seconds;
-- opts.max_skew (default 300), opts.seen (set of sigs already accepted: a replay cache),
-- opts.archived (read from an archive: may be old, may name another resource of the account).
function M.verify(fields, atts, anchor, now, opts)
	opts = opts or {};
	-- Rooms do not take part in this version and rewrite 'from' and 'to': a groupchat
	-- message's path cannot be checked over the reflected stanza (XEP rule 57).  Only a
	-- recipient client concludes that (a server keeps checking what it vouches for), and not
	-- for a message its 'from' signed itself, which no room reflected.
	atts = atts or {};
	local room = fields.type == "groupchat" and anchor.me:find("[@/]") ~= nil;
	if room then
		for _, a in ipairs(atts) do
			if a.signer == fields.sender then room = false; break; end
		end
	end
	if room then atts = {}; end
	local n = #atts;
	local skew = opts.max_skew or M.DEFAULT_MAX_SKEW;
	local seen = opts.seen or {};
	local times, arrivals = {}, {};
	for i, a in ipairs(atts) do
		times[i] = assert(M.parse_time(a.time));
		arrivals[i] = a.stored and assert(M.parse_time(a.stored)) or times[i];
	end
	local notes, status = {}, {};
	local anchored = n > 0 and atts[n].signer == anchor.server;
	local anchor_key;
	local prefix = M.message_prefix(fields);
	local function data(i) return M.fields_input(prefix, i > 1 and atts[i - 1].sig or "", atts[i]); end

	for i, a in ipairs(atts) do
		if a.for_id ~= fields.id or seen[a.sig] then status[i] = "replayed"; end
	end

	if anchored then
		if status[n] == nil then
			-- A live attestation must verify with a current key (a retired key stays listed for
			-- the skew after a rotation), so failing is tampering; only an older one may have
			-- been signed with a key withdrawn since.
			status[n] = (now - times[n] > skew) and "key-unknown" or "tampered";
			for _, c in ipairs(M.candidates(anchor.keys or {}, times[n])) do
				if M.verify_signature(c[1], atts[n].sig, data(n)) then
					status[n] = c[2] or "ok";
					anchor_key = c[1];
					break;
				end
			end
		end
	else
		for i = 1, n do status[i] = status[i] or "unvouched"; end
	end

	-- Walk back along the vouching: attestation i-1 is checked with the key i vouched for.
	for i = n, 2, -1 do
		if status[i] ~= "ok" then
			for j = i - 1, 1, -1 do status[j] = status[j] or "unvouched"; end
			break;
		end
		local before, here = atts[i - 1], atts[i];
		if not here.in_view then
			status[i - 1] = status[i - 1] or "chain-broken";
		elseif not (before.out_view and before.out_view.peer == here.signer) or here.in_view.peer ~= before.signer then
			-- a node between them did not sign: nobody vouched for the earlier key
			status[i - 1] = status[i - 1] or "unvouched";
		elseif not here.prev_key then
			status[i - 1] = status[i - 1] or "chain-broken";
		elseif status[i - 1] == nil then
			status[i - 1] = M.verify_signature(here.prev_key, before.sig, data(i - 1)) and "ok" or "tampered";
		end
	end

	local hops = reconstruct(atts, anchor, anchored, fields.sender, opts.archived, room);
	if room then
		notes[#notes + 1] = "not-participating: a groupchat message came through a room, and rooms do not take part "
			.. "in this version of trust-path, so its path is not checked";
	end
	if anchored and not opts.archived and now - times[n] > skew and status[n] == "ok" then
		-- the recipient's own server signs at delivery: a live stanza this old is a replay
		hops[#hops].problem = "clock-skew";
	end

	for _, h in ipairs(hops) do
		if h.up_index and h.down_index and math.abs(arrivals[h.down_index] - times[h.up_index]) > skew then
			h.problem = "clock-skew";
		end
	end
	for i, t in ipairs(times) do
		if t > now + skew and status[i] == "ok" then
			for _, h in ipairs(hops) do
				if h.up_index == i then h.problem = h.problem or "clock-skew"; end
			end
		end
	end

	for i, a in ipairs(atts) do
		if a.stored and status[i] == "ok" then
			notes[#notes + 1] = ("stored by %s from %s until delivery at %s"):format(a.signer, a.stored, a.time);
		end
		if a.in_view and a.in_view.removed and status[i] == "ok" then
			notes[#notes + 1] = ("forgery-removed: %s removed %s forged attestation(s) sent by %s"):format(a.signer, a.in_view.removed, a.in_view.peer);
		end
	end

	local reports, overall = {}, nil;
	for k, h in ipairs(hops) do
		reports[k] = evaluate(k, h, atts, status);
		if overall == nil or reports[k].strength < overall then overall = reports[k].strength; end
	end
	overall = overall or UNKNOWN;
	if not anchor.takes_part and overall > UNKNOWN then
		-- the verifier's own server does not announce the feature: nothing it signs is an anchor
		overall = UNKNOWN;
		notes[#notes + 1] = ("not-participating: %s does not announce trust-path, so no path is trusted"):format(anchor.server);
		local last = reports[#reports];
		last.result, last.reason, last.strength = "unknown", "not-participating", UNKNOWN;
	end
	local verdict = VERDICT[overall];
	local weakest = {};
	if verdict ~= "trusted" then
		for _, r in ipairs(reports) do
			if r.strength == overall then weakest[#weakest + 1] = r.label; end
		end
	end
	local statuses = {};
	for i, a in ipairs(atts) do statuses[i] = { signer = a.signer, status = status[i] or "unvouched" }; end

	-- What a server writes into 'chain' / 'chain-reason' of its <in/> view.
	local chain_problem;
	for _, s in ipairs(statuses) do
		if s.status ~= "ok" and s.status ~= "unvouched" then chain_problem = s.status; break; end
	end
	if not chain_problem then
		for _, r in ipairs(reports) do
			if r.result == "fail" and CHAIN_FAILURES[r.reason] then chain_problem = r.reason; break; end
		end
	end
	return { verdict = verdict, hops = reports, weakest = weakest, statuses = statuses, notes = notes,
		anchor_key = anchor_key, chain_problem = chain_problem, chain_ok = chain_problem == nil };
end

---------------------------------------------------------------------------------------------
-- Server rules
---------------------------------------------------------------------------------------------

-- Why the client's own attestation cannot be kept by its server (XEP "At the Sending
-- Server"), or nil.  ctx = { domain, client_key (b64 or nil), now, max_skew }.
function M.client_attestation_problem(fields, att, ctx)
	if att.in_view or att.prev_key or not att.out_view or att.out_view.peer ~= ctx.domain then
		return "chain-broken";
	end
	if att.for_id ~= fields.id then return "replayed"; end
	if math.abs(assert(M.parse_time(att.time)) - ctx.now) > (ctx.max_skew or M.DEFAULT_MAX_SKEW) then
		return "clock-skew";
	end
	if not ctx.client_key or not M.verify_signature(ctx.client_key, att.sig, M.signing_input(fields, "", att)) then
		return "tampered";
	end
	return nil;
end

-- Anti-forgery at the sending server: keep at most the session's own valid attestation in
-- `message` (a util.stanza, changed in place), remove everything else.  Returns
-- { kept = att|nil, removed = n, chain = "pass"|"absent"|"fail", chain_reason = ... }.
function M.filter_client_path(message, fields, session_jid, ctx)
	local kept, removed, own_problem = nil, 0, nil;
	local atts, err = M.try(M.decode_path, message);
	if err then atts, removed = nil, 1; end
	for _, att in ipairs(atts or {}) do
		if att.signer ~= session_jid or kept then
			removed = removed + 1;
		else
			local problem = M.client_attestation_problem(fields, att, ctx);
			if problem == nil then kept = att; else own_problem = problem; end
		end
	end
	M.remove_paths(message);
	if kept then M.add_attestation(message, kept); end
	local chain = kept and "pass" or (own_problem and "fail" or "absent");
	return { kept = kept, removed = removed, chain = chain, chain_reason = chain == "fail" and own_problem or nil,
		decode_error = err };
end

-- A receiving server's decision about what arrived from domain `origin` (XEP "At a
-- Receiving Server"; sim/federation.py ServerNode.from_server).  ctx = { origin, domain,
-- takes_part (does origin participate, by disco or remembered), keys (origin's keyset or
-- nil), in_view (this server's view of the s2s hop), now, max_skew, seen }.
-- Returns { chain, chain_reason, previous, prev_key, key_source, report }.
function M.receive_chain(message, fields, ctx)
	local atts, err = M.try(M.decode_path, message);
	if err then
		M.remove_paths(message);
		return { chain = "fail", chain_reason = "malformed", error = err };
	end
	if atts == nil then
		return { chain = ctx.takes_part and "stripped" or "absent" };
	end
	local previous = atts[#atts];
	if previous.signer ~= ctx.origin or not ctx.takes_part then
		return { chain = ctx.takes_part and "stripped" or "absent", previous = previous };
	end
	local keys = ctx.keys or {};
	local report = M.verify(fields, atts, { server = ctx.origin, keys = keys, me = ctx.domain, view = ctx.in_view,
		takes_part = true }, ctx.now, { max_skew = ctx.max_skew, seen = ctx.seen });
	local current;
	for _, entry in ipairs(keys) do
		if (entry.status or "current") == "current" then current = entry.key; break; end
	end
	return { chain = report.chain_ok and "pass" or "fail", chain_reason = report.chain_problem, previous = previous,
		prev_key = report.anchor_key or current, key_source = "link", report = report, atts = atts };
end

-- The strength of a single view, as the <require/> check at a server sees it.
function M.view_strength(view)
	if view.tls == "none" or view.result ~= "pass" then return UNVERIFIED; end
	return METHOD_STRENGTH[view.method] or UNVERIFIED;
end

function M.method_reason(method)
	return CAPPED_REASON[method] or "not-verified";
end

return M;
