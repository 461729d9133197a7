-- Reading and writing trust-path elements (reference/trustpath/core/codec.py): the signed fields
-- of a <message/>, the strict decoder of <path/> and its views (XEP "The Path and Its
-- Attestations"), unwrapping carbons and archive results, and the encoder.
local M = ...;
local st = require "util.stanza";
local NS, NS_PREFIX = M.NS, M.NS_PREFIX;
local fail, bare = M.fail, M.bare;
local set = M.set;

local STANZA_NS = { ["jabber:client"] = true, ["jabber:server"] = true };
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

-- Decoding <path/> strictly.

local ATTESTATION_ATTRS = set { "signer", "time", "for", "alg", "prev-key", "stored", "sig" };
local VIEW_ATTRS = set { "peer", "side", "tls", "cipher", "spki", "method", "cb", "result", "reason" };
local IN_ATTRS = set { "peer", "side", "tls", "cipher", "spki", "method", "cb", "result", "reason",
	"chain", "chain-reason", "key-source", "removed" };
local SIDES, RESULTS, CHAINS, KEY_SOURCES = M.SIDES, M.RESULTS, M.CHAINS, M.KEY_SOURCES;
local TLS, CB, METHODS = M.TLS_VERSIONS, M.CHANNEL_BINDINGS, M.METHODS;
local MAX_JID, MAX_ID = M.MAX_JID_CHARS, M.MAX_ID_CHARS;

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
	if attrs.peer == "" or #attrs.peer > MAX_JID then fail("malformed", "<%s/> 'peer' must be a JID", name); end
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
	if attrs.signer == "" or #attrs.signer > MAX_JID then fail("malformed", "'signer' must be a JID"); end
	if attrs["for"] == "" or #attrs["for"] > MAX_ID then fail("malformed", "'for' must be a message id of 1 to %d characters", MAX_ID); end
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

-- Encoding.

-- Elements are built directly (util.stanza's constructor checks every name and value for
-- XML validity; everything here comes from checked views and our own encodings).
local stanza_mt = st.stanza_mt;
local function element(name, attr)
	return setmetatable({ name = name, attr = attr, tags = {} }, stanza_mt);
end
M.element = element;

local function view_element(name, view)
	local attr = { xmlns = NS };
	for _, k in ipairs(M.VIEW_ORDER) do
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
