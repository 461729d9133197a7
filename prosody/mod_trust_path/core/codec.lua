-- Reading and writing trust-path elements (reference/trustpath/core/codec.py): the fields of a
-- <message/> a record is bound to (with its covered payloads), the strict decoder of <path/>
-- and its records (XEP "The path Element"), unwrapping carbons and archive results, and the
-- encoder.  Stanzas are util.stanza trees, as Prosody hands them to the module.
local M = ...;
local st = require "util.stanza";
local NS, NS_PREFIX = M.NS, M.NS_PREFIX;
local fail, bare = M.fail, M.bare;

local STANZA_NS = { ["jabber:client"] = true, ["jabber:server"] = true };
local XML_LANG = "xml:lang";
local XML_NS = "http://www.w3.org/XML/1998/namespace";
M.NS_CARBONS, M.NS_FORWARD, M.NS_MAM, M.NS_DELAY = "urn:xmpp:carbons:2", "urn:xmpp:forward:0", "urn:xmpp:mam:2", "urn:xmpp:delay";
M.NS_SID, M.NS_MUC_USER = "urn:xmpp:sid:0", "http://jabber.org/protocol/muc#user";
local NS_SID = M.NS_SID;

-- A limit of the XEP was exceeded (Python: LimitExceeded, a kind of malformed input).
local function fail_limit(text, ...)
	local ok, err = pcall(fail, "malformed", text, ...);
	assert(not ok);
	err.limit = true;
	error(err, 2);
end
M.fail_limit = fail_limit;

-- Is `child` in the same namespace as the stanza?  Prosody leaves xmlns unset on elements in
-- the stream's default namespace (jabber:client or jabber:server); util.xml sets it.
local function in_stanza_ns(stanza, child)
	local ns, cns = stanza.attr.xmlns, child.attr.xmlns;
	if cns == nil or cns == ns then return true; end
	return ns == nil and STANZA_NS[cns] == true;
end

-- The namespace of `element` whose parent is in `parent_ns`: Prosody's stream parser sets
-- xmlns only where it differs from the stream's, util.xml on every element.
local function ns_of(element, parent_ns)
	return element.attr.xmlns or parent_ns;
end

-- a < b in code point order (UTF-8 byte order), whatever the C locale's collation says.
local function code_point_less(a, b)
	for i = 1, math.min(#a, #b) do
		local x, y = a:byte(i), b:byte(i);
		if x ~= y then return x < y; end
	end
	return #a < #b;
end

-- The text of an element as one string (the parser may split it into several nodes).
local function text_of(element)
	if element[2] == nil and type(element[1]) == "string" then return element[1]; end
	local parts = {};
	for _, node in ipairs(element) do
		if type(node) == "string" then parts[#parts + 1] = node; end
	end
	return table.concat(parts);
end
M.text_of = text_of;

-- An attribute name as the reference (lxml) spells it: a namespaced one as {ns}name.
-- util.xml keys a namespaced attribute "ns\1name", and xml:lang "xml:lang".
local function qualified_attribute(name)
	local ns, localname = name:match("^(.-)\1(.*)$");
	if ns then return "{" .. ns .. "}" .. localname; end
	local xml_local = name:match("^xml:(.*)$");
	if xml_local then return "{" .. XML_NS .. "}" .. xml_local; end
	return name;
end

local function is_declaration(name) return name == "xmlns" or name:find("^xmlns:") ~= nil; end

-- The attributes of `element` as signed: { name1, value1, name2, value2, ... } sorted by
-- name.  A namespaced attribute is refused: servers sign <report/> and <hop/> without
-- reading them, and a namespaced attribute has no one spelling across XML libraries.
local function signed_attributes(element, what)
	local attr = element.attr;
	local names = {};
	for k in pairs(attr) do
		if not is_declaration(k) then
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

-- A <report/> as the signing input covers it, whatever its attributes say: { the report's
-- attributes, hop 1's, hop 2's, ... } (codec.report_fields).
function M.report_fields(report, report_ns)
	report_ns = ns_of(report, report_ns);
	local out = { signed_attributes(report, "report") };
	for _, child in ipairs(report.tags) do
		if child.name == "hop" and ns_of(child, report_ns) == NS then
			out[#out + 1] = signed_attributes(child, "hop");
		end
	end
	if #out - 1 > M.MAX_REPORT_HOPS then
		fail_limit("%d hops in a <report/>; the limit is %d", #out - 1, M.MAX_REPORT_HOPS);
	end
	return out;
end

-- An element payload as the signing input covers it (XEP "Covered Payloads"): for the
-- element and its descendants in document order, "<" and its {ns}name, its attributes
-- sorted by name ("@name" and value), its text nodes ("#" and text) and ">" at its end.
function M.project_element(element, parent_ns)
	local parts, n = {}, 0;
	local NUL = "\0";
	local function add(a, b, c, d) parts[n + 1], parts[n + 2], parts[n + 3], parts[n + 4] = a, b, c, d; n = n + 4; end
	local function walk(el, inherited, depth)
		if depth > M.MAX_DEPTH then fail_limit("a payload nests deeper than %d elements", M.MAX_DEPTH); end
		local ns = ns_of(el, inherited);
		n = n + 1; parts[n] = "<"; n = n + 1; parts[n] = NUL;
		n = n + 1; parts[n] = "{" .. ns .. "}" .. el.name; n = n + 1; parts[n] = NUL;
		local names, qualified = {}, {};
		for k in pairs(el.attr) do
			if not is_declaration(k) then
				local q = qualified_attribute(k);
				names[#names + 1], qualified[q] = q, k;
			end
		end
		table.sort(names, code_point_less);
		for _, q in ipairs(names) do add("@" .. q, NUL, el.attr[qualified[q]], NUL); end
		local run; -- adjacent text nodes are one text node
		for _, node in ipairs(el) do
			if type(node) == "string" then
				run = run and (run .. node) or node;
			else
				if run and run ~= "" then add("#", NUL, run, NUL); end
				run = nil;
				walk(node, ns, depth + 1);
			end
		end
		if run and run ~= "" then add("#", NUL, run, NUL); end
		n = n + 1; parts[n] = ">"; n = n + 1; parts[n] = NUL;
	end
	walk(element, parent_ns, 1);
	return table.concat(parts, "", 1, n);
end

-- The refusal payload (XEP "Requiring Verified Hops"): what a refusal's signer covers of the
-- <error/> that holds the <unverified-hop/> `hop` (the hop it names, and why), never its <text/>:
-- "type", "by", "condition" (the first condition element's local name) and each attribute of
-- <unverified-hop/> sorted by name as "hop.<name>", each name and value followed by NUL.
local NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas";
local function project_refusal(err, err_ns, hop)
	local condition = "";
	for _, child in ipairs(err.tags) do
		if child.name ~= "text" and ns_of(child, err_ns) == NS_STANZAS then condition = child.name; break; end
	end
	local NUL = "\0";
	local parts = { "type", NUL, err.attr.type or "", NUL, "by", NUL, err.attr.by or "", NUL, "condition", NUL, condition, NUL };
	local attrs = signed_attributes(hop, "unverified-hop");
	for i = 1, #attrs, 2 do
		parts[#parts + 1], parts[#parts + 2], parts[#parts + 3], parts[#parts + 4], parts[#parts + 5] =
			"hop.", attrs[i], NUL, attrs[i + 1], NUL;
	end
	return table.concat(parts);
end

local TEXT_FIELD = { body = "bodies", subject = "subjects", thread = "threads" };
local NONE = setmetatable({}, { __newindex = function () error("read-only", 2); end }); -- no such children
local ELEMENT_TOKENS = {}; -- ns -> name -> token
for token, spec in pairs(M.PAYLOADS) do
	if spec.kind == "element" then
		ELEMENT_TOKENS[spec.ns] = ELEMENT_TOKENS[spec.ns] or {};
		ELEMENT_TOKENS[spec.ns][spec.name] = token;
	end
end

-- The fields of a <message/> a record can be bound to (codec.message_fields):
-- { sender, to, id, type, bodies, subjects, threads ({ lang, text } in document order),
--   require, report, elements (token -> projection), present (tokens in the table's order) }.
-- The id is the 'id' attribute, else the XEP-0359 <origin-id/>; "" when it has neither (such
-- a message cannot be attested).  `extra` is a set of {ns}name payloads to project too.
-- Raises "malformed" for a message a record cannot be bound to.
function M.message_fields(stanza, extra)
	local a = stanza.attr;
	if not a.from or a.from == "" or not a.to or a.to == "" then
		fail("malformed", "the message needs 'from' and 'to' to be attested");
	end
	local stanza_ns = a.xmlns;
	local ident = a.id or "";
	local groups; -- made only when the message has such children (most have one body)
	local require_verdict, report;
	local elements; -- made only when the message carries an element payload (most carry none)
	for _, child in ipairs(stanza.tags) do
		local name = child.name;
		local cns = ns_of(child, stanza_ns);
		if TEXT_FIELD[name] and in_stanza_ns(stanza, child) then
			if #child.tags > 0 then fail("malformed", "<%s/> must contain text only", name); end
			if not groups then groups = {}; end
			local group = groups[name];
			if not group then group = {}; groups[name] = group; end
			group[#group + 1] = { lang = child.attr[XML_LANG], text = text_of(child) };
		elseif name == "require" and cns == NS then
			if require_verdict then fail("malformed", "more than one <require/>"); end
			require_verdict = child.attr.verdict;
			local extra_attr = false;
			for k in pairs(child.attr) do
				if k ~= "verdict" and not is_declaration(k) then extra_attr = true; end
			end
			if not M.REQUIRED_STRENGTH[require_verdict] or extra_attr then
				fail("malformed", "<require/> takes verdict='trusted' or verdict='weak'");
			end
		elseif name == "report" and cns == NS then
			if report then fail("malformed", "more than one <report/>"); end
			report = M.report_fields(child, cns);
		elseif name == "origin-id" and cns == NS_SID and ident == "" then
			ident = child.attr.id or "";
		elseif name == "error" and in_stanza_ns(stanza, child) then
			-- a refusal: the <unverified-hop/> of any <error/> child, at most one in all
			for _, hop in ipairs(child.tags) do
				if hop.name == "unverified-hop" and ns_of(hop, cns) == NS then
					if not elements then elements = {}; end
					if elements.refusal then fail("malformed", "more than one <unverified-hop/>: a refusal names one hop"); end
					elements.refusal = project_refusal(child, cns, hop);
				end
			end
		else
			local by_name = cns and ELEMENT_TOKENS[cns];
			local token = by_name and by_name[name];
			if not token and extra and cns and extra["{" .. cns .. "}" .. name] then token = "{" .. cns .. "}" .. name; end
			if token then
				if not elements then elements = {}; end
				if elements[token] then fail("malformed", "more than one %s payload", token); end
				elements[token] = M.project_element(child, stanza_ns);
			end
		end
	end
	-- an identity no verifier accepts is none (XEP rule 3): nobody signs the message and every
	-- verifier reports it as no-id; counted in characters, as the Python core counts it
	-- (the bytes that do not continue a UTF-8 sequence: one per character, on any Lua)
	if #ident > M.MAX_ID_CHARS and #(ident:gsub("[\128-\191]", "")) > M.MAX_ID_CHARS then ident = ""; end
	-- the payloads present, in the table's order
	local present = {};
	for _, token in ipairs(M.PAYLOAD_ORDER) do
		local group = TEXT_FIELD[token];
		local here;
		if group then here = groups ~= nil and groups[token] ~= nil;
		elseif token == "require" then here = require_verdict ~= nil;
		elseif token == "report" then here = report ~= nil;
		else here = elements ~= nil and elements[token] ~= nil; end
		if here then present[#present + 1] = token; end
	end
	return { sender = a.from, to = a.to, id = ident, type = a.type or "normal",
		bodies = groups and groups.body or NONE, subjects = groups and groups.subject or NONE,
		threads = groups and groups.thread or NONE, require = require_verdict, report = report,
		elements = elements or NONE, present = present };
end

-- Decoding <path/> strictly.

local function is_path(child)
	local ns = child.attr.xmlns;
	return child.name == "path" and ns ~= nil and ns:sub(1, #NS_PREFIX) == NS_PREFIX;
end

-- The <path/> child of `message`, or nil.  Raises on a second path or another version.
function M.find_path_element(message)
	local found;
	for _, child in ipairs(message.tags) do
		if is_path(child) then
			local ns = child.attr.xmlns;
			if ns ~= NS then
				fail("unsupported-version", "trust-path namespace %q is not supported; this implementation speaks %s", ns, NS);
			end
			if found then fail("malformed", "more than one <path/> in a message"); end
			found = child;
		end
	end
	return found;
end

-- The record texts of a <path/> element, oldest first, checked for shape only.
local function check_path_shape(element)
	for k in pairs(element.attr) do
		if not is_declaration(k) then fail("malformed", "<path/> takes no attributes"); end
	end
	if #element.tags > 0 then fail("malformed", "<path/> contains text only: its records"); end
end

function M.path_records(element)
	check_path_shape(element);
	local records = {};
	for record in text_of(element):gmatch("[^ \t\r\n]+") do
		records[#records + 1] = record;
		if #records > M.MAX_RECORDS then break; end -- a thousand records need not be split
	end
	if #records == 0 then fail("malformed", "<path/> is empty"); end
	if #records > M.MAX_RECORDS then
		local count = 0;
		for _ in text_of(element):gmatch("[^ \t\r\n]+") do count = count + 1; end
		fail_limit("%d records; the limit is %d", count, M.MAX_RECORDS);
	end
	return records;
end

-- The text of a <path/> as path_records() would join it, and how many records it holds, without
-- splitting it, when it is already written that way (records separated by one space, nothing
-- around them: how servers write it); nil otherwise.  Plain searches only: this runs on every
-- message a server signs.
local function joined_records(element)
	local text = text_of(element);
	if text == "" or text:byte(1) == 32 or text:byte(-1) == 32 or text:find("  ", 1, true)
			or text:find("\t", 1, true) or text:find("\n", 1, true) or text:find("\r", 1, true) then
		return nil;
	end
	local count, at = 1, text:find(" ", 1, true);
	while at do
		count = count + 1;
		if count > M.MAX_RECORDS then return nil; end -- path_records() says how many
		at = text:find(" ", at + 1, true);
	end
	return text, count;
end

local DECIMAL = { "^0$", "^[1-9]" .. ("[0-9]?"):rep(10) .. "$" };
local function is_decimal(v) return v:find(DECIMAL[1]) ~= nil or v:find(DECIMAL[2]) ~= nil; end
local function decimal(value, name)
	if not is_decimal(value) then
		fail("malformed", "'%s=' must be whole seconds since 1970 (decimal), got %q", name, value:sub(1, 40));
	end
	return math.tointeger(tonumber(value));
end
local function jid(value, name)
	if value == "" or #value > M.MAX_JID_CHARS then fail("malformed", "'%s=' must be a JID", name); end
	return value;
end
local function is_method(m) return #m <= 32 and m:find("^[a-z0-9][a-z0-9%-]*$") ~= nil; end
local function is_reason(r) return #r <= 64 and r:find("^[a-z0-9][a-z0-9%-]*$") ~= nil; end
local function is_field_key(k) return #k <= 16 and k:find("^[a-z][a-z0-9%-]*$") ~= nil; end
local function is_token(t)
	if #t <= 32 and t:find("^[a-z0-9][a-z0-9%-]*$") then return true; end
	local ns, name = t:match("^{([^{}%s;,=]+)}([A-Za-z_][A-Za-z0-9_.%-]*)$");
	return ns ~= nil and #ns <= 256 and #name <= 64;
end
local SPKI = "^" .. ("[A-Za-z0-9+/]"):rep(16) .. "$";

-- `method,result,tls,spki` (XEP "The path Element") to a view table; raises "malformed".
function M.decode_view(text, name)
	name = name or "o";
	local method, result, tls, spki = text:match("^([^,]*),([^,]*),([^,]*),([^,]*)$");
	if not method then fail("malformed", "'%s=' must be method,result,tls,spki, got %q", name, text:sub(1, 60)); end
	if not is_method(method) then fail("malformed", "'%s=' method %q is not a method name", name, method); end
	if not M.TLS_VERSIONS[tls] then fail("malformed", "'%s=' tls must be 1.2, 1.3 or none, got %q", name, tls); end
	if spki == "-" then
		if tls ~= "none" then fail("malformed", "'%s=' over TLS must give the server's key (spki)", name); end
		spki = nil;
	elseif not spki:find(SPKI) then
		fail("malformed", "'%s=' spki must be 16 base64 characters (12 bytes) or -", name);
	end
	if result == "pass" or result == "none" then
		return { method = method, result = result, tls = tls, spki = spki };
	end
	if not is_reason(result) then
		fail("malformed", "'%s=' result must be pass, none or a reason code, got %q", name, result);
	end
	return { method = method, result = "fail", tls = tls, spki = spki, reason = result };
end

-- nil if `view` is one a verifier accepts, else why not (the rules of decode_view).
function M.view_problem(view)
	local ok, err = M.try(M.decode_view, M.view_text(view));
	if ok then return nil; end
	return err.text;
end

local function need(fields, name)
	local value = fields[name];
	if value == nil then fail("malformed", "a record lacks '%s='", name); end
	return value;
end

-- One record, read strictly (XEP "The path Element"): { key, out_view, sig, text, signer, time, alg,
-- in_view, in_peer, out_peer, chain, chain_reason, vouch, removed, stored, covers, extra }.
-- `covers` is nil for the default payloads; `extra` the fields this version does not define,
-- in order (signed, and otherwise ignored).
function M.decode_record(text)
	if #text > M.MAX_RECORD_CHARS then
		fail_limit("a record is %d characters; the limit is %d", #text, M.MAX_RECORD_CHARS);
	end
	if not text:find("^[\33-\126]+$") then fail("malformed", "a record is printable ASCII without spaces"); end
	local fields, extra, seen = {}, {}, {};
	local last;
	for item in (text .. ";"):gmatch("([^;]*);") do
		local key, value = item:match("^([^=]*)=(.*)$");
		if not key or not is_field_key(key) or value:find("=", 1, true) then
			fail("malformed", "a record field must be key=value, got %q", item:sub(1, 40));
		end
		if seen[key] then fail("malformed", "a record gives '%s=' twice", key); end
		seen[key] = true;
		if M.RECORD_FIELDS[key] then fields[key] = value; else extra[#extra + 1] = { key, value }; end
		last = item;
	end
	if not last:find("^z=") then fail("malformed", "'z=' (the signature) must be a record's last field"); end
	local alg = fields.a;
	if alg ~= nil and not M.ALGORITHMS[alg] then
		fail("unsupported-algorithm", "a record by %s uses algorithm %q; only ed25519 is defined",
			fields.s or "the sending client", alg);
	end
	local key, sig = need(fields, "k"), need(fields, "z");
	if not M.is_key(key) then fail("malformed", "'k=' must be a base64 Ed25519 key without padding (43 characters)"); end
	if not M.is_sig(sig) then fail("malformed", "'z=' must be a base64 Ed25519 signature without padding (86 characters)"); end
	local signer = fields.s;
	local out_view = M.decode_view(need(fields, "o"), "o");
	local in_view = fields.i and M.decode_view(fields.i, "i") or nil;
	if signer == nil then
		if in_view or fields.c or fields.v or fields.st then
			fail("malformed", "the sending client's record (no 's=') has only an out-view");
		end
	else
		jid(signer, "s");
		if not fields.t then fail("malformed", "a server's record needs 't='"); end
		-- a refusal's first record: its signer originates the error, nothing brought it there
		if (in_view == nil) ~= (fields.c == nil) then
			fail("malformed", "a server's record has 'i=' and 'c=' both, or neither (a refusal's first record)");
		end
		if not in_view and (fields.v or fields.r or fields.st) then
			fail("malformed", "a record without 'i=' (a refusal's first record) states no 'c=', 'v=', 'r=' or 'st='");
		end
	end
	local chain, chain_reason;
	if fields.c then
		local word, dot, reason = fields.c:match("^([^.]*)(%.?)(.*)$");
		local is_fail = word == "fail";
		if not M.CHAINS[word] or is_fail ~= (dot == "." and reason ~= "") or (dot == "." and reason == "")
				or (reason ~= "" and not is_reason(reason)) then
			fail("malformed", "'c=' must be pass, absent, stripped or fail.<reason>, got %q", fields.c:sub(1, 40));
		end
		chain, chain_reason = word, reason ~= "" and reason or nil;
	end
	if fields.v and not M.KEY_SOURCES[fields.v] then fail("malformed", "'v=' must be a key source, got %q", fields.v:sub(1, 40)); end
	local covers;
	if fields.h then
		covers = {};
		local listed = {};
		for token in (fields.h .. ","):gmatch("([^,]*),") do
			if not is_token(token) or listed[token] then fail("malformed", "'h=' must list payload tokens, each once"); end
			listed[token] = true;
			covers[#covers + 1] = token;
		end
	end
	local removed = fields.r;
	if removed ~= nil and not removed:find("^[1-9][0-9]?[0-9]?$") then fail("malformed", "'r=' must be a count from 1 to 999"); end
	return { key = key, out_view = out_view, sig = sig, text = text, signer = signer,
		time = fields.t and decimal(fields.t, "t") or nil, alg = alg, in_view = in_view,
		in_peer = fields.f and jid(fields.f, "f") or nil, out_peer = fields.p and jid(fields.p, "p") or nil,
		chain = chain, chain_reason = chain_reason, vouch = fields.v, removed = removed and math.tointeger(tonumber(removed)) or nil,
		stored = fields.st and decimal(fields.st, "st") or nil, covers = covers, extra = extra };
end

-- What a receiving server reads of a path (XEP "At the Receiving Server";
-- codec.read_last_record): nil when there is no path, else { signer ('s', nil without), key
-- ('k'), time ('t'), sig ('z'), count (records in the path), stored (some record has a field
-- 'st=') }.  The path's shape is checked as path_records() does; of the last record only 's',
-- 't', 'k' (each at most once, 'k' required) and that its last field is 'z' are read.  Raises "malformed" when they cannot be read; what
-- else is in the path is the recipient's to check.  Plain searches only: every message from a
-- remote domain goes through this.
local LAST_RECORD_FIELDS = { [("s"):byte()] = "s", [("t"):byte()] = "t", [("k"):byte()] = "k" };
local EQUALS, Z = ("="):byte(), ("z"):byte();
function M.read_last_record(message)
	local element = M.find_path_element(message);
	if not element then return nil; end
	check_path_shape(element);
	local text, count = joined_records(element);
	local last, stored;
	if text then
		local at, from = text:find(" ", 1, true), 1;
		while at do from = at + 1; at = text:find(" ", from, true); end
		last = from == 1 and text or text:sub(from);
		-- a field 'st=' starts a record or follows a ';' (a value holds no ';')
		stored = text:sub(1, 3) == "st=" or text:find(" st=", 1, true) ~= nil or text:find(";st=", 1, true) ~= nil;
	else
		local records = M.path_records(element);
		last, count = records[#records], #records;
		stored = false;
		for _, record in ipairs(records) do
			if record:sub(1, 3) == "st=" or record:find(";st=", 1, true) then stored = true; end
		end
	end
	local len = #last;
	if len > M.MAX_RECORD_CHARS then
		fail_limit("a record is %d characters; the limit is %d", len, M.MAX_RECORD_CHARS);
	end
	-- Each field is name=value, separated by ';'; a field's name is what comes before its first
	-- '=' (the whole field without one).  Only one-letter names are looked at: no substrings
	-- are made except the values read.
	local fields = {};
	local start = 1;
	while true do
		local stop = last:find(";", start, true);
		local item_end = stop and stop - 1 or len;
		local first = last:byte(start);
		local one_letter = item_end == start or (item_end > start and last:byte(start + 1) == EQUALS);
		local name = one_letter and LAST_RECORD_FIELDS[first];
		if name then
			if item_end == start then fail("malformed", "a record field must be key=value, got %q", name); end
			if fields[name] then fail("malformed", "a record gives '%s=' twice", name); end
			fields[name] = last:sub(start + 2, item_end);
		end
		if not stop then
			if not (first == Z and item_end > start and last:byte(start + 1) == EQUALS) then
				fail("malformed", "'z=' (the signature) must be a record's last field");
			end
			fields.z = last:sub(start + 2, item_end);
			break;
		end
		start = stop + 1;
	end
	local key = fields.k;
	if key == nil then fail("malformed", "a record lacks 'k='"); end
	if not M.is_key(key) then fail("malformed", "'k=' must be a base64 Ed25519 key without padding (43 characters)"); end
	local signer = fields.s;
	if signer ~= nil then jid(signer, "s"); end
	return { signer = signer, key = key, time = fields.t and decimal(fields.t, "t") or nil, sig = fields.z, count = count,
		stored = stored };
end

-- The record without its signature: what its signing input ends with.
function M.unsigned_text(att)
	return att.text:match("^(.*);z=[^;]*$");
end

-- The records carried by `message` (oldest first), or nil when it carries no path.
function M.decode_path(message)
	local element = M.find_path_element(message);
	if not element then return nil; end
	local atts, sigs = {}, {};
	for i, text in ipairs(M.path_records(element)) do
		local att = M.decode_record(text);
		if sigs[att.sig] then fail("malformed", "the same record appears twice in <path/>"); end
		sigs[att.sig] = true;
		atts[i] = att;
	end
	return atts;
end

local NS_CARBONS, NS_FORWARD, NS_MAM, NS_DELAY = M.NS_CARBONS, M.NS_FORWARD, M.NS_MAM, M.NS_DELAY;

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


-- Encoding.

-- Elements are built directly (util.stanza's constructor checks every name and value for
-- XML validity; everything here comes from checked records and our own encodings).
local stanza_mt = st.stanza_mt;
local function element(name, attr)
	return setmetatable({ name = name, attr = attr, tags = {} }, stanza_mt);
end
M.element = element;

-- Append `att` (its text) to the message's <path/>, creating it if needed.  Raises when the
-- path already holds the most records a path may.
function M.add_record(message, att)
	local path = M.find_path_element(message);
	if not path then
		path = element("path", { xmlns = NS });
		path[1] = att.text;
		message:add_direct_child(path);
		return path;
	end
	check_path_shape(path);
	local text, count = joined_records(path);
	if not text then
		local records = M.path_records(path);
		text, count = table.concat(records, " "), #records;
	end
	if count >= M.MAX_RECORDS then fail_limit("a path holds at most %d records", M.MAX_RECORDS); end
	for i = #path, 1, -1 do path[i] = nil; end
	path[1] = text .. " " .. att.text;
	return path;
end

-- Remove every trust-path <path/> (any version); return how many records went (an empty or
-- unreadable <path/> counts once).
function M.remove_paths(message)
	local any = false;
	for _, child in ipairs(message.tags) do
		if is_path(child) then any = true; break; end
	end
	if not any then return 0; end
	local removed = 0;
	message:maptags(function (child)
		if is_path(child) then
			local count = 0;
			if #child.tags == 0 then
				for _ in text_of(child):gmatch("[^ \t\r\n]+") do count = count + 1; end
			end
			removed = removed + math.max(1, count);
			return nil;
		end
		return child;
	end);
	return removed;
end

-- The records of the message's path as one string ("" without a path), and how many:
-- what a new record's signing input names as 'prev'.  nil and the error for a path that
-- cannot be read.
function M.previous_records(message)
	local path, err = M.try(M.find_path_element, message);
	if err then return nil, err; end
	if not path then return "", 0; end
	local text, count = M.try(function ()
		check_path_shape(path);
		local joined, n = joined_records(path);
		if joined then return joined, n; end
		local records = M.path_records(path);
		return table.concat(records, " "), #records;
	end);
	if not text then return nil, count; end
	return text, count;
end
