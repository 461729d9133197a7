-- The protocol's constants, from the one table both cores load: spec/constants.json (linked
-- as constants.json next to mod_trust_path.lua).  Strengths are numbers here, in the table's
-- order from worst (failed = 0) to best (strong = 4), so that math.min gives the weakest.
local M, here = ...;
local json = require "util.json";

local path = here .. "/../constants.json";
local f = assert(io.open(path, "r"), "trust-path: cannot read " .. path .. " (a link to spec/constants.json)");
local table_ = assert(json.decode(f:read("a")), "trust-path: " .. path .. " is not valid JSON");
f:close();
M.TABLE = table_;

local function set(list) local s = {}; for _, v in ipairs(list) do s[v] = true; end return s; end
local function keys_of(map) local s = {}; for k in pairs(map) do s[k] = true; end return s; end
M.set = set;

M.NS = table_.namespace;
M.NS_PREFIX = table_.namespace_prefix;
local limits = table_.limits;
M.MAX_STANZA_BYTES = limits.stanza_bytes;
M.MAX_DEPTH = limits.depth;
M.MAX_ATTESTATIONS = limits.attestations;
M.MAX_REPORT_HOPS = limits.report_hops;
M.MAX_ID_CHARS = limits.id_chars;
M.MAX_JID_CHARS = limits.jid_chars;
M.MAX_DOMAIN_CHARS = limits.domain_chars;
M.MAX_REMOVED = limits.removed;
M.DEFAULT_MAX_SKEW = limits.default_max_skew;
M.MAX_SKEW_LIMIT = limits.max_skew;

-- strength name <-> number
M.STRENGTH = {};
M.strength_names = {};
for i, name in ipairs(table_.strengths) do
	M.STRENGTH[name] = i - 1;
	M.strength_names[i - 1] = name;
end
M.FAILED, M.UNVERIFIED, M.UNKNOWN, M.CA, M.STRONG = M.STRENGTH.failed, M.STRENGTH.unverified,
	M.STRENGTH.unknown, M.STRENGTH.ca, M.STRENGTH.strong;
M.VERDICT = {};      -- strength number -> verdict
M.HOP_RESULT = {};   -- strength number -> a hop's result
for name, n in pairs(M.STRENGTH) do
	M.VERDICT[n] = table_.verdict_of_strength[name];
	M.HOP_RESULT[n] = table_.hop_result_of_strength[name];
end
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

M.SIDES = set(table_.sides);
M.RESULTS = set(table_.results);
M.CHAINS = set(table_.chains);
M.KEY_SOURCES = keys_of(table_.key_sources);
M.TLS_VERSIONS = set(table_.tls_versions);
M.CHANNEL_BINDINGS = set(table_.channel_bindings);
M.METHODS = keys_of(table_.methods);
M.REASONS = keys_of(table_.reasons);
M.ATTESTATION_FAILURES = set(table_.attestation_failures);
M.CHAIN_FAILURES = set(table_.chain_failures);
M.CIPHER_SUITES = table_.cipher_suites;
