-- The protocol's constants, from the one table both cores load: spec/constants.json (linked
-- as constants.json next to mod_trust_path.lua).  Strengths are numbers here, in the table's
-- order from worst (failed = 0) to best (strong = 4), so that math.min gives the weakest.
local M, here = ...;
local json = require "util.json";

local path = here .. "/../constants.json";
local f = assert(io.open(path, "r"), "trust-path: cannot read " .. path .. " (a link to spec/constants.json)");
local text = f:read("a");
f:close();
local table_ = assert(json.decode(text), "trust-path: " .. path .. " is not valid JSON");
M.TABLE = table_;

local function set(list) local s = {}; for _, v in ipairs(list) do s[v] = true; end return s; end
local function keys_of(map) local s = {}; for k in pairs(map) do s[k] = true; end return s; end
M.set = set;

-- The names of a JSON object's members in the order the file lists them: util.json gives a Lua
-- table, which has no order, and the payload tokens' order is the order 'h=' lists them in.
local function member_order(source, name)
	local start = select(2, source:find('"' .. name .. '"%s*:%s*{'));
	assert(start, "trust-path: constants.json has no object " .. name);
	local depth, names, i = 1, {}, start + 1;
	while depth > 0 do
		local c = source:sub(i, i);
		assert(c ~= "", "trust-path: constants.json ends inside " .. name);
		if c == "{" then depth = depth + 1;
		elseif c == "}" then depth = depth - 1;
		elseif c == '"' then
			local close = assert(source:find('"', i + 1, true));
			if depth == 1 and source:find("^%s*:", close + 1) then names[#names + 1] = source:sub(i + 1, close - 1); end
			i = close;
		end
		i = i + 1;
	end
	return names;
end

M.NS = table_.namespace;
M.NS_PREFIX = table_.namespace_prefix;
local limits = table_.limits;
M.MAX_STANZA_BYTES = limits.stanza_bytes;
M.MAX_DEPTH = limits.depth;
M.MAX_RECORDS = limits.records;
M.MAX_RECORD_CHARS = limits.record_chars;
M.SPKI_BYTES = limits.spki_bytes;
M.DEFAULT_CACHE_FOR = limits.default_cache_for;
M.MAX_REPORT_HOPS = limits.report_hops;
M.MAX_ID_CHARS = limits.id_chars;
M.MAX_JID_CHARS = limits.jid_chars;
M.MAX_DOMAIN_CHARS = limits.domain_chars;
M.MAX_REMOVED = limits.removed;
M.DEFAULT_MAX_SKEW = limits.default_max_skew;
M.MAX_SKEW_LIMIT = limits.max_skew;
M.MAX_PUBLISHED_KEYS = limits.published_keys; -- a larger key set is malformed (XEP "Discovery and Keys")
M.KEY_FETCH_INTERVAL = limits.key_fetch_interval; -- one domain's keys are fetched at most this often

-- strength name <-> number
M.STRENGTH = {};
M.strength_names = {};
for i, name in ipairs(table_.strengths) do
	M.STRENGTH[name] = i - 1;
	M.strength_names[i - 1] = name;
end
M.FAILED, M.UNVERIFIED, M.UNKNOWN, M.CA, M.STRONG = M.STRENGTH.failed, M.STRENGTH.unverified,
	M.STRENGTH.unknown, M.STRENGTH.ca, M.STRENGTH.strong;
M.REQUIRED_STRENGTH = {}; -- <require verdict=...> -> the strength every hop needs
for verdict, name in pairs(table_.required_verdicts) do M.REQUIRED_STRENGTH[verdict] = M.STRENGTH[name]; end

M.METHOD_STRENGTH, M.METHOD_REASON = {}, {};
for method, entry in pairs(table_.methods) do
	M.METHOD_STRENGTH[method] = M.STRENGTH[entry.strength];
	if entry.reason ~= json.null then M.METHOD_REASON[method] = entry.reason; end
end
M.OTHER_METHOD_STRENGTH = M.STRENGTH[table_.other_method.strength];
M.OTHER_METHOD_REASON = table_.other_method.reason;
-- key source -> strength number; "link" is absent: as strong as the hop it was learned over
M.KEY_SOURCE_STRENGTH = {};
for source, name in pairs(table_.key_sources) do
	if name ~= json.null then M.KEY_SOURCE_STRENGTH[source] = M.STRENGTH[name]; end
end

M.CHAINS = set(table_.chains);
M.KEY_SOURCES = keys_of(table_.key_sources);
M.KEY_STATUSES = set(table_.key_statuses);
M.TLS_VERSIONS = set(table_.tls_versions);
M.CHANNEL_BINDINGS = set(table_.channel_bindings);
-- c2s server-side view methods -> whether they bind the client's view of H1 to the channel
M.CLIENT_BINDINGS = table_.client_bindings;
M.ALGORITHMS = set(table_.algorithms);
M.REASONS = keys_of(table_.reasons);
M.RECORD_FIELDS = set(table_.record_fields);
-- covered payload token -> { kind = text|require|report|element, ns, name }; PAYLOAD_ORDER
-- is the table's order (the order a signer lists present payloads in)
M.PAYLOADS = table_.payloads;
M.PAYLOAD_ORDER = member_order(text, "payloads");
M.DEFAULT_PAYLOADS = table_.default_payloads;
M.IS_DEFAULT_PAYLOAD = set(table_.default_payloads);
for _, token in ipairs(M.PAYLOAD_ORDER) do assert(M.PAYLOADS[token], "trust-path: payload order misread"); end
