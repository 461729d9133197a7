-- mod_trust_path: Trust Path (urn:xmpp:trust-path:0) for Prosody 0.12 and later.
--
-- Every message a local client sends to a remote domain leaves with this server's signed
-- attestation of the two hops it saw (the client's c2s stream and the s2s stream), and
-- every message delivered to a local client carries this server's attestation of the hop
-- it arrived on and the c2s stream it is delivered on.  See xep/trust-path.xml.
--
-- Options (read once, when the module is loaded on a host; the host "takes part" iff this
-- module is loaded on it):
--
--   trust_path_key_file       file with the Ed25519 attestation key: 64 hex characters (the
--                             RFC 8032 seed) on one line.  Default: <data_path>/trust_path/<host>.key,
--                             generated on first start.  Relative paths are relative to the
--                             config file's directory.
--   trust_path_retired_keys   { { key = "<base64 public>", not_after = "2026-12-25T09:05:00Z" }, ... }
--                             keys no longer used for signing, published so that archived
--                             messages stay verifiable until not_after.
--   trust_path_revoked_keys   { "<base64 public>", ... }  keys that are never valid.
--   trust_path_max_skew       seconds, default 300.
--   trust_path_remember_days  default 7: how long a remote domain that announced the feature
--                             is remembered as taking part (a missing attestation from it
--                             is then "stripped", not "absent").
--   trust_path_s2s_pins       { ["b.example"] = { "<base64 SHA-256 of the SPKI>", ... } }
--                             for both directions: the certificate b.example presents when
--                             we connect to it, and the one it presents when it connects to
--                             us.  A pinned domain whose certificate matches no pin is refused:
--                             the connection is closed and queued messages bounce with
--                             <remote-server-not-found/> and <unverified-hop reason='pin-mismatch'/>.
--
-- Ed25519 comes from Prosody 13's util.crypto if present, else from trust_path_crypto.so
-- (build it with `make` in this directory) next to this file.
--
-- How it hooks into Prosody (0.12):
--   pre-message/*        message from a local client: anti-forgery (keep at most the
--                        client's own valid attestation), then an internal marker holding
--                        this server's <in/> view of the client's hop.
--   route/remote         sign (in view from the marker, out view of the s2s link) before
--                        mod_s2s sends; stanzas queued while the link comes up are signed in
--                        s2sout-established, so their <out/> describes the link they use.
--   message/* (s2sin)    verify the received chain with the sending domain's published keys
--                        (disco#info over s2s, cached), decide chain pass/absent/stripped/
--                        fail, and leave a marker with the <in/> view for delivery.
--   message/* (0.5, -0.25) around mod_mam (0), which archives a message for a local user:
--                        sign the delivery attestation for the resource mod_message hands
--                        the message to first, so that the archive stores the path as
--                        delivered (XEP rule 40); while mod_mam runs, the <path/> is held
--                        as one text element (<archived-path/>), which is cheap to store.
--   stanzas/out filter   on c2s sessions: sign per delivered resource (also carbons,
--                        offline messages with 'stored', and archive results still
--                        carrying a marker), restore archived paths, remove every marker.
--   iq-get <preflight/>  a local client's pre-flight query: the <out/> view of the outgoing
--                        link to a domain (set up if needed, 10 s at most) and 'takes-part'.
--   s2s-check-certificate  pins, and the record of why each s2s link is trusted: an
--                        outgoing link is 'pin', 'dane-ee'/'dane-ta' (use_dane = true, with
--                        DNSSEC-secure TLSA records of the target that match its certificate),
--                        'pkix' or 'none'.
--
-- The internal marker (<pending xmlns='urn:xmpp:trust-path:internal:0'/>) rides in the
-- stanza so that it survives cloning (carbons) and storage (mod_offline, mod_mam).  It
-- carries a token derived from a secret of this server (<data_path>/trust_path/
-- <host>.marker-secret), so a marker this server did not make is ignored, and every
-- marker is removed before a stanza leaves for a client or a server.
--
-- Per message, this runs in the path of every stanza, so it avoids work it can: views are
-- made once per session and encoded for the signing input once, elements are built without
-- util.stanza's per-attribute checks, and nothing is cloned or rebuilt that is not changed.

local st = require "util.stanza";
local jid_lib = require "util.jid";
local async = require "util.async";
local filters = require "util.filters";
local hashes = require "util.hashes";
local hex = require "util.hex";
local base64 = require "util.encodings".base64;
local cache = require "util.cache";
local new_id = require "util.id".medium;
local xml = require "util.xml";

local host = module.host;
local here = (module.path or ""):match("^(.*)/[^/]*$") or ".";

---------------------------------------------------------------------------------------------
-- The protocol library and the Ed25519 backend
---------------------------------------------------------------------------------------------

local core = assert(loadfile(here .. "/trust_path_core.lua"))();
do
	local ok, uc = pcall(require, "util.crypto");
	if ok and type(uc) == "table" and uc.ed25519_sign and uc.import_private_pem then
		core.set_crypto(core.util_crypto_backend(uc, require "util.random"));
	else
		local open, err = package.loadlib(here .. "/trust_path_crypto.so", "luaopen_trust_path_crypto");
		if not open then
			error(("mod_trust_path needs Ed25519: build %s/trust_path_crypto.so with `make -C %s` "
				.. "(Prosody 0.12), or run Prosody 13 (util.crypto): %s"):format(here, here, tostring(err)));
		end
		core.set_crypto(core.c_backend(open()));
	end
end
local NS = core.NS;
local NS_INTERNAL = "urn:xmpp:trust-path:internal:0";
local NS_DISCO_INFO = "http://jabber.org/protocol/disco#info";
local NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas";
local NS_CARBONS, NS_FORWARD, NS_DELAY = core.NS_CARBONS, core.NS_FORWARD, core.NS_DELAY;
local NS_MAM = "urn:xmpp:mam:2";

---------------------------------------------------------------------------------------------
-- Options
---------------------------------------------------------------------------------------------

local max_skew = module:get_option_number("trust_path_max_skew", core.DEFAULT_MAX_SKEW);
local remember_seconds = module:get_option_number("trust_path_remember_days", 7) * 86400;
local key_file = module:get_option_path("trust_path_key_file", nil, "config");
local retired_option = module:get_option("trust_path_retired_keys", {});
local revoked_option = module:get_option_array("trust_path_revoked_keys", {});
local pins_option = module:get_option("trust_path_s2s_pins", {});

local function config_error(fmt, ...)
	local text = fmt:format(...);
	module:log("error", "%s", text);
	error(text, 0);
end

if max_skew < 0 or max_skew % 1 ~= 0 then config_error("trust_path_max_skew must be a whole number of seconds"); end

local retired_keys = {};
if type(retired_option) ~= "table" then config_error("trust_path_retired_keys must be a list of { key = ..., not_after = ... }"); end
for i, entry in ipairs(retired_option) do
	if type(entry) ~= "table" or not core.is_b64_32(entry.key) or not core.parse_time(entry.not_after) then
		config_error("trust_path_retired_keys[%d] needs key = <base64 Ed25519 public key> and not_after = YYYY-MM-DDThh:mm:ssZ", i);
	end
	retired_keys[#retired_keys + 1] = { key = entry.key, not_after = entry.not_after };
end
local revoked_keys = {};
for i, key in ipairs(revoked_option) do
	if not core.is_b64_32(key) then config_error("trust_path_revoked_keys[%d] is not a base64 Ed25519 public key", i); end
	revoked_keys[#revoked_keys + 1] = key;
end
local pins = {};
if type(pins_option) ~= "table" then config_error("trust_path_s2s_pins must be a table of domain = { pins }"); end
for domain, list in pairs(pins_option) do
	if type(list) == "string" then list = { list }; end
	if type(domain) ~= "string" or type(list) ~= "table" or #list == 0 then
		config_error("trust_path_s2s_pins: %s must map to a list of base64 SHA-256 SPKI pins", tostring(domain));
	end
	pins[domain] = {};
	for _, pin in ipairs(list) do
		if not core.is_b64_32(pin) then config_error("trust_path_s2s_pins[%q]: %q is not a base64 SHA-256 value", domain, tostring(pin)); end
		pins[domain][pin] = true;
	end
end

---------------------------------------------------------------------------------------------
-- The attestation key
---------------------------------------------------------------------------------------------

-- 32 secret bytes kept as 64 hex characters on one line in `path`; generated (mode 0600)
-- when `generate` and the file does not exist yet.
local function read_or_create_secret(path, what, generate)
	local f = io.open(path, "r");
	if f then f:close(); elseif generate then
		local lfs = require "lfs";
		local dir = path:match("^(.*)/[^/]*$");
		if dir and not lfs.attributes(dir, "mode") then
			local ok, err = lfs.mkdir(dir);
			if not ok then config_error("cannot create %s for the %s: %s", dir, what, tostring(err)); end
		end
		-- the file holds a secret: nobody else may read it
		local ok_posix, pposix = pcall(require, "util.pposix");
		local old_umask = ok_posix and pposix.umask and pposix.umask("077");
		local out, err = io.open(path, "w");
		if out then
			out:write(hex.encode(core.crypto().generate_seed()), "\n");
			out:close();
		end
		if old_umask then pposix.umask(old_umask); end
		if not out then config_error("cannot write the %s to %s: %s", what, path, tostring(err)); end
		module:log("info", "generated a new %s in %s", what, path);
	end
	local err;
	f, err = io.open(path, "r");
	if not f then config_error("cannot read the %s in %s: %s", what, path, tostring(err)); end
	local text = (f:read("a") or ""):gsub("%s+$", ""):gsub("^%s+", "");
	f:close();
	if not text:find("^%x+$") or #text ~= 64 then
		config_error("%s must hold the %s as 64 hexadecimal characters on one line", path, what);
	end
	return hex.decode(text:lower());
end

local function data_file(suffix)
	if host:find("[/\\]") or host:find("^%.") then config_error("cannot derive a file name from host %q", host); end
	return (prosody.paths.data or ".") .. "/trust_path/" .. host .. suffix;
end

local function load_or_create_key()
	if key_file then return read_or_create_secret(key_file, "attestation key (trust_path_key_file)", false), key_file; end
	local path = data_file(".key");
	return read_or_create_secret(path, "attestation key", true), path;
end

local seed, key_path = load_or_create_key();
local public_key = core.public_b64(seed);
for _, key in ipairs(revoked_keys) do
	if key == public_key then config_error("the key in %s is listed in trust_path_revoked_keys; refusing to sign with it", key_path); end
end
for _, entry in ipairs(retired_keys) do
	if entry.key == public_key then config_error("the key in %s is listed in trust_path_retired_keys; a retired key no longer signs", key_path); end
end
-- Markers are honoured only with this token, which only this server can compute.  It comes
-- from a secret of its own, not from the attestation key, so that messages stored (offline,
-- archive) before a key rotation are still signed when they are delivered.
local marker_token = base64.encode(hashes.hmac_sha256(read_or_create_secret(data_file(".marker-secret"), "marker secret", true),
	"urn:xmpp:trust-path:internal:0 marker"));
module:log("info", "attestation key %s (from %s), max skew %ds", public_key, key_path, max_skew);

---------------------------------------------------------------------------------------------
-- Discovery: the feature and the XEP-0128 form (XEP "Discovery")
---------------------------------------------------------------------------------------------

module:add_feature(NS);
do
	local form = st.stanza("x", { xmlns = "jabber:x:data", type = "result" })
		:tag("field", { var = "FORM_TYPE", type = "hidden" }):text_tag("value", NS):up()
		:tag("field", { var = "key", type = "text-multi" }):text_tag("value", public_key):up()
		:tag("field", { var = "retired-key", type = "text-multi" });
	for _, entry in ipairs(retired_keys) do form:text_tag("value", entry.key .. " " .. entry.not_after); end
	form:up():tag("field", { var = "revoked-key", type = "text-multi" });
	for _, key in ipairs(revoked_keys) do form:text_tag("value", key); end
	form:up():tag("field", { var = "max-skew", type = "text-single" }):text_tag("value", tostring(max_skew)):up();
	module:add_extension(form);
end

---------------------------------------------------------------------------------------------
-- TLS facts of a session (XEP "Where the TLS Facts Come From")
---------------------------------------------------------------------------------------------

-- OpenSSL cipher suite names (what LuaSec's info() reports) to IANA values.
local CIPHER_CODES = {
	TLS_AES_128_GCM_SHA256 = "1301", TLS_AES_256_GCM_SHA384 = "1302", TLS_CHACHA20_POLY1305_SHA256 = "1303",
	TLS_AES_128_CCM_SHA256 = "1304", TLS_AES_128_CCM_8_SHA256 = "1305",
	["ECDHE-ECDSA-AES128-GCM-SHA256"] = "C02B", ["ECDHE-ECDSA-AES256-GCM-SHA384"] = "C02C",
	["ECDHE-RSA-AES128-GCM-SHA256"] = "C02F", ["ECDHE-RSA-AES256-GCM-SHA384"] = "C030",
	["ECDHE-ECDSA-CHACHA20-POLY1305"] = "CCA9", ["ECDHE-RSA-CHACHA20-POLY1305"] = "CCA8",
	["ECDHE-ECDSA-AES128-SHA256"] = "C023", ["ECDHE-ECDSA-AES256-SHA384"] = "C024",
	["ECDHE-RSA-AES128-SHA256"] = "C027", ["ECDHE-RSA-AES256-SHA384"] = "C028",
	["DHE-RSA-AES128-GCM-SHA256"] = "009E", ["DHE-RSA-AES256-GCM-SHA384"] = "009F",
	["DHE-RSA-CHACHA20-POLY1305"] = "CCAA",
};
local TLS_VERSIONS = { ["TLSv1.3"] = "1.3", ["TLSv1.2"] = "1.2" };

-- The DER of a PEM block labelled `label` in `pem`.
local function pem_der(pem, label)
	local body = type(pem) == "string" and pem:match("%-%-%-%-%-BEGIN " .. label .. "%-%-%-%-%-(.-)%-%-%-%-%-END");
	return body and base64.decode((body:gsub("%s", ""))) or nil;
end

-- The pin of a certificate: base64 SHA-256 of its DER SubjectPublicKeyInfo.
local function spki_of(cert)
	if not cert or not cert.pubkey then return nil; end
	local der = pem_der(cert:pubkey(), "PUBLIC KEY");
	return der and base64.encode(hashes.sha256(der)) or nil;
end

-- Does `cert` match one TLSA record (RFC 6698: selector 0 the certificate, 1 the SPKI;
-- matching type 0 exact, 1 SHA-256, 2 SHA-512)?
local function tlsa_matches(record, cert)
	local der;
	if record.select == 0 then der = cert.pem and pem_der(cert:pem(), "CERTIFICATE");
	elseif record.select == 1 then der = cert.pubkey and pem_der(cert:pubkey(), "PUBLIC KEY"); end
	if not der then return false; end
	if record.match == 0 then return der == record.data; end
	if record.match == 1 then return hashes.sha256(der) == record.data; end
	if record.match == 2 then return hashes.sha512(der) == record.data; end
	return false;
end

-- Whether an outgoing link's certificate was verified by DANE: Prosody (use_dane) passed the
-- TLSA records of the target to OpenSSL only when every lookup was DNSSEC-secure
-- (net.resolvers.basic sets extra.tlsa), and OpenSSL then accepts the chain only on a TLSA
-- match.  LuaSec does not say which record matched, so this checks again: "dane-ee" when a
-- usage 3 record matches the peer's certificate, "dane-ta" when a usage 2 record matches a
-- certificate of the peer's chain above it; nil otherwise (no TLSA, or only PKIX-TA/EE).
local function dane_method(session, cert)
	local conn = session.conn;
	local extra = type(conn) == "table" and rawget(conn, "extra");
	local tlsa = type(extra) == "table" and rawget(extra, "tlsa");
	if type(tlsa) ~= "table" or not tlsa[1] or not cert then return nil; end
	if session.cert_chain_status ~= "valid" then return nil; end -- OpenSSL's DANE check failed
	for _, record in ipairs(tlsa) do
		if record.use == 3 and tlsa_matches(record, cert) then return "dane-ee"; end
	end
	local sock = conn.socket and conn:socket();
	local chain = sock and sock.getpeerchain and sock:getpeerchain();
	if type(chain) == "table" and session.cert_identity_status == "valid" then
		for _, record in ipairs(tlsa) do
			if record.use == 2 then
				for i = 2, #chain do
					if tlsa_matches(record, chain[i]) then return "dane-ta"; end
				end
			end
		end
	end
	return nil;
end

-- The certificate this server presents on a session.  LuaSec (1.2) cannot report the local
-- certificate of a connection, so it comes from the TLS configuration mod_tls used for the
-- session's STARTTLS (session.ssl_cfg), else from the host's own `ssl` option.  Its spki is
-- cached per file and modification time (certificates are renewed in place).
local spki_files = {};
local function local_certificate_spki(session)
	local cfg = session.ssl_cfg;
	local path = type(cfg) == "table" and cfg.certificate;
	if not path then
		local host_ssl = module:get_option("ssl");
		path = type(host_ssl) == "table" and host_ssl.certificate or nil;
	end
	if type(path) ~= "string" then return nil; end
	local lfs = require "lfs";
	local mtime = lfs.attributes(path, "modification");
	local known = spki_files[path];
	if known and known.mtime == mtime then return known.spki; end
	local f = io.open(path, "r");
	if not f then return nil; end
	local pem = f:read("a");
	f:close();
	local ok, cert = pcall(require "ssl.x509".load, pem); -- the first certificate: the leaf
	local spki = ok and spki_of(cert) or nil;
	spki_files[path] = { mtime = mtime, spki = spki };
	if not spki then module:log("warn", "cannot read the certificate in %s; views will lack 'spki'", path); end
	return spki;
end

-- { tls, cipher, local_spki, peer_spki } of a session's stream, computed once per session
-- (a TLS session's facts do not change).
local function tls_facts(session)
	local facts = session.trust_path_tls;
	if facts then return facts; end
	local conn = session.conn;
	local sock = session.secure and conn and conn.socket and conn:socket();
	local info = sock and sock.info and sock:info();
	if type(info) ~= "table" then
		facts = { tls = "none" };
	else
		-- TLS older than 1.2 is not a value the XEP defines; report it as no usable TLS
		facts = { tls = TLS_VERSIONS[info.protocol] or "none", cipher = CIPHER_CODES[info.cipher] };
		if sock.getlocalcertificate then facts.local_spki = spki_of(sock:getlocalcertificate()); end
		facts.local_spki = facts.local_spki or local_certificate_spki(session);
		if sock.getpeercertificate then facts.peer_spki = spki_of(sock:getpeercertificate()); end
		if facts.tls == "none" then facts.cipher = nil; end
	end
	session.trust_path_tls = facts;
	return facts;
end

local function copy(t) local c = {}; for k, v in pairs(t) do c[k] = v; end return c; end

-- Views are plain tables that are never changed once made: the same table serves every
-- message of a session, and trust_path_core encodes it for the signing input only once.

-- This server's view of a local client's c2s stream (TLS server side): H1 or H3.
local function c2s_view(session)
	local view = session.trust_path_view;
	if view and view.peer == session.full_jid then return view; end
	local facts = tls_facts(session);
	view = core.reuse_view({
		peer = session.full_jid, side = "server", tls = facts.tls, cipher = facts.cipher,
		spki = facts.tls ~= "none" and facts.local_spki or nil, method = session.trust_path_sasl or "UNKNOWN",
		cb = session.trust_path_cb, result = "pass",
	});
	if session.full_jid then session.trust_path_view = view; end -- its facts do not change once bound
	return view;
end

-- This server's view of an s2s link to/from `domain`.  On a stream we opened we are the TLS
-- client: the spki is the certificate we saw, the method how we checked it.  On a stream
-- the peer opened we are the TLS server: the spki is our own certificate, the method how
-- the peer authenticated (recorded in s2s-check-certificate and s2s-authenticated, which
-- also forget the views made so far).
local function s2s_view(session, domain)
	local views = session.trust_path_views;
	if not views then views = {}; session.trust_path_views = views; end
	local view = views[domain];
	if view then return view; end
	local facts = tls_facts(session);
	if session.direction == "outgoing" then
		local decided = session.trust_path_out;
		if not decided then -- link set up before this module was loaded: use Prosody's own checks
			local valid = session.cert_chain_status == "valid" and session.cert_identity_status == "valid";
			decided = valid and { method = "pkix", result = "pass" } or { method = "none", result = "none" };
		end
		view = { peer = domain, side = "client", tls = facts.tls, cipher = facts.cipher,
			spki = facts.tls ~= "none" and facts.peer_spki or nil, method = decided.method, result = decided.result,
			reason = decided.reason };
	else
		local auth = session.trust_path_in and session.trust_path_in[domain];
		view = { peer = domain, side = "server", tls = facts.tls, cipher = facts.cipher,
			spki = facts.tls ~= "none" and facts.local_spki or nil, method = auth and auth.method or "dialback", result = "pass" };
	end
	views[domain] = core.reuse_view(view);
	return view;
end

-- `base` (an <in/> view) with what this server found about the path before it: also one
-- table per combination, made once.
local derived_views = setmetatable({}, { __mode = "k" });
local function in_view_of(base, chain, chain_reason, key_source, removed)
	local per_base = derived_views[base];
	if not per_base then per_base = {}; derived_views[base] = per_base; end
	local key = chain .. " " .. (chain_reason or "") .. " " .. (key_source or "") .. " " .. (removed or "");
	local view = per_base[key];
	if not view then
		view = copy(base);
		view.chain, view["chain-reason"], view["key-source"], view.removed = chain, chain_reason, key_source, removed;
		per_base[key] = core.reuse_view(view);
	end
	return view;
end

---------------------------------------------------------------------------------------------
-- Internal markers
---------------------------------------------------------------------------------------------

local function has_marker(stanza)
	local tags = stanza.tags;
	for i = 1, #tags do
		local child = tags[i];
		if child.attr.xmlns == NS_INTERNAL then return true; end
		if child.tags[1] and has_marker(child) then return true; end
	end
	return false;
end

-- Remove the child element `child` from `parent`.
local function remove_child(parent, child)
	for i = #parent, 1, -1 do if parent[i] == child then table.remove(parent, i); break; end end
	local tags = parent.tags;
	for i = #tags, 1, -1 do if tags[i] == child then table.remove(tags, i); break; end end
end

-- Remove every internal marker from `stanza` and its descendants; return the last valid one
-- among its own children (a marker deeper down belongs to another message: it goes too).
local function remove_markers(stanza)
	local found;
	local tags = stanza.tags;
	local i = 1;
	while i <= #tags do
		local child = tags[i];
		if child.attr.xmlns == NS_INTERNAL then
			if child.name == "pending" and child.attr.token == marker_token then found = child; end
			remove_child(stanza, child);
		else
			if child.tags[1] and has_marker(child) then remove_markers(child); end
			i = i + 1;
		end
	end
	return found;
end
local function take_markers(stanza)
	if not has_marker(stanza) then return nil; end -- the usual case: look, but change nothing
	return remove_markers(stanza);
end

-- A marker remembers what this server knew when the message reached it, for the signature
-- it adds when the message leaves: its <in/> view, the key it vouches for and when it came.
-- It is one element, and the view one attribute ("name=value ...", values %-escaped): it
-- is stored with the message (offline storage, archives), and that storage serializes every
-- element and attribute.
local function escape_value(v)
	v = tostring(v);
	if not v:find("[%%%s]") then return v; end
	return (v:gsub("[%%%s]", function (c) return ("%%%02X"):format(c:byte()); end));
end
local view_codes = setmetatable({}, { __mode = "k" });
local function encode_view(view)
	local code = view_codes[view];
	if code then return code; end
	local parts = {};
	for k, v in pairs(view) do parts[#parts + 1] = k .. "=" .. escape_value(v); end
	table.sort(parts);
	code = table.concat(parts, " ");
	view_codes[view] = code;
	return code;
end
local decoded_views = cache.new(256);
local function decode_view(code)
	local view = decoded_views:get(code);
	if view then return view; end
	view = {};
	for k, v in code:gmatch("([^%s=]+)=(%S*)") do
		if v:find("%", 1, true) then v = v:gsub("%%(%x%x)", function (h) return string.char(tonumber(h, 16)); end); end
		view[k] = v;
	end
	if not view.chain then return nil; end
	decoded_views:set(code, core.reuse_view(view));
	view_codes[view] = code;
	return view;
end

local function make_marker(in_view, prev_key, prev_sig, arrived)
	return core.element("pending", { xmlns = NS_INTERNAL, token = marker_token, arrived = core.format_time(arrived),
		["prev-key"] = prev_key, ["prev-sig"] = prev_sig, ["in"] = encode_view(in_view) });
end

local function read_marker(marker)
	local attr = marker.attr;
	local in_view = attr["in"] and decode_view(attr["in"]);
	if not in_view then return nil; end
	return { in_view = in_view, prev_key = attr["prev-key"], prev_sig = attr["prev-sig"],
		arrived = core.parse_time(attr.arrived),
		-- set when the delivery attestation for the first resource was signed before archiving
		presigned_for = attr["presigned-for"], presigned_sig = attr["presigned-sig"] };
end

local without_key_source = setmetatable({}, { __mode = "k" });

-- Sign this server's attestation onto `message` (changed in place) with `pending` (a read
-- marker) as <in/> and `out_view` as <out/>.  Returns the attestation, or nil and why not.
local function sign_onto(message, pending, out_view, stored)
	local fields, err = core.try(core.message_fields, message);
	if not fields then return nil, err.text; end
	local path, path_err = core.try(core.find_path_element, message);
	if path_err then return nil, path_err.text; end
	local n = path and #path.tags or 0;
	if n >= core.MAX_ATTESTATIONS then return nil, "the path already holds 8 attestations"; end
	local prev = n > 0 and path.tags[n].attr.sig or nil;
	local prev_key = pending.prev_key;
	if prev_key and prev ~= pending.prev_sig then
		-- the path changed since this server checked it: it cannot vouch for what is there now
		module:log("warn", "path of message %s from %s changed after it was checked; not vouching for it", fields.id, fields.sender);
		prev_key = nil;
	end
	local in_view = pending.in_view;
	if not prev_key and in_view["key-source"] then
		local plain = without_key_source[in_view];
		if not plain then
			plain = copy(in_view);
			plain["key-source"] = nil;
			without_key_source[in_view] = core.reuse_view(plain);
		end
		in_view = plain;
	end
	local att = core.attest(fields, { signer = host, time = os.time(), seed = seed,
		prev_sig = prev, prev_key = prev_key, in_view = in_view,
		out_view = out_view, stored = stored });
	if not path then
		path = core.element("path", { xmlns = NS });
		message:add_direct_child(path);
	end
	path:add_direct_child(core.attestation_element(att));
	return att;
end

---------------------------------------------------------------------------------------------
-- Remote domains: participation and keys (disco#info over s2s, cached), remembered policy
---------------------------------------------------------------------------------------------

local INFO_TTL, FAILED_INFO_TTL, REFETCH_AFTER = 3600, 60, 60;
local peer_infos = {};      -- domain -> { takes_part, keys, max_skew, fetched, error }
local fetching = {};        -- domain -> promise of peer info
local remembered_store = module:open_store("trust_path_peers");
local remembered = {};      -- domain -> until (epoch seconds), mirror of remembered_store

local function parse_disco(result)
	local query = result:get_child("query", NS_DISCO_INFO);
	local info = { takes_part = false, keys = {} };
	if not query then return info; end
	for feature in query:childtags("feature") do
		if feature.attr.var == NS then info.takes_part = true; end
	end
	for form in query:childtags("x", "jabber:x:data") do
		local fields = {};
		for field in form:childtags("field") do
			local values = {};
			for value in field:childtags("value") do values[#values + 1] = value:get_text() or ""; end
			fields[field.attr.var or ""] = values;
		end
		if fields.FORM_TYPE and fields.FORM_TYPE[1] == NS then
			for _, key in ipairs(fields.key or {}) do
				if core.is_b64_32(key) then info.keys[#info.keys + 1] = { key = key, status = "current" }; end
			end
			for _, line in ipairs(fields["retired-key"] or {}) do
				local key, not_after = line:match("^(%S+) (%S+)$");
				if core.is_b64_32(key) and core.parse_time(not_after) then
					info.keys[#info.keys + 1] = { key = key, status = "retired", not_after = not_after };
				end
			end
			for _, key in ipairs(fields["revoked-key"] or {}) do
				if core.is_b64_32(key) then info.keys[#info.keys + 1] = { key = key, status = "revoked" }; end
			end
			info.max_skew = tonumber(fields["max-skew"] and fields["max-skew"][1]);
		end
	end
	return info;
end

local function remember(domain, now)
	local until_time = now + remember_seconds;
	-- write through at most once an hour per domain
	if (remembered[domain] or 0) < until_time - 3600 then
		remembered[domain] = until_time;
		remembered_store:set(domain, { until_time = until_time });
	end
end

local function is_remembered(domain, now)
	local until_time = remembered[domain];
	if until_time == nil then
		local data = remembered_store:get(domain);
		until_time = data and data.until_time or 0;
		remembered[domain] = until_time;
	end
	return now <= until_time;
end

-- A promise of the peer info of `domain` (fetched once at a time per domain).
local function fetch_peer_info(domain)
	if fetching[domain] then return fetching[domain]; end
	local iq = st.iq({ type = "get", to = domain, from = host, id = "tp-disco-" .. new_id() })
		:tag("query", { xmlns = NS_DISCO_INFO });
	local p = module:send_iq(iq, nil, 10):next(function (event)
		local info = parse_disco(event.stanza);
		info.fetched = os.time();
		if info.takes_part then remember(domain, info.fetched); end
		module:log("debug", "%s %s: %d key(s)", domain, info.takes_part and "takes part" or "does not take part", #info.keys);
		return info;
	end, function (err)
		module:log("info", "disco#info of %s failed (%s); treating it as not announcing trust-path", domain, tostring(err and err.text or err));
		return { takes_part = false, keys = {}, fetched = os.time(), error = true };
	end):next(function (info)
		peer_infos[domain] = info;
		fetching[domain] = nil;
		return info;
	end);
	fetching[domain] = p;
	return p;
end

local function cached_peer_info(domain, now)
	local info = peer_infos[domain];
	if info and now - info.fetched < (info.error and FAILED_INFO_TTL or INFO_TTL) then return info; end
	return nil;
end

---------------------------------------------------------------------------------------------
-- Session facts: SASL mechanism, client key, s2s authentication
---------------------------------------------------------------------------------------------

module:hook("authentication-success", function (event)
	local session = event.session;
	local handler = session.sasl_handler;
	if handler and type(handler.selected) == "string" then
		session.trust_path_sasl = handler.selected:upper();
		local cb = handler.state and handler.state.gs2_cbind_name;
		if cb == "tls-unique" or cb == "tls-exporter" or cb == "tls-server-end-point" then session.trust_path_cb = cb; end
	end
end, 10);

local function handle_client_key(event)
	local origin, stanza = event.origin, event.stanza;
	local element = stanza.tags[1];
	if element.attr.alg and element.attr.alg ~= "ed25519" then
		origin.send(st.error_reply(stanza, "cancel", "feature-not-implemented", "only ed25519 is supported"));
		return true;
	end
	if not core.is_b64_32(element.attr.key) then
		origin.send(st.error_reply(stanza, "modify", "bad-request", "the key must be a base64 encoding of 32 bytes"));
		return true;
	end
	origin.trust_path_client_key = element.attr.key;
	module:log("debug", "%s announced client key %s", origin.full_jid, element.attr.key);
	origin.send(st.reply(stanza));
	return true;
end
module:hook("iq-set/self/" .. NS .. ":client-key", handle_client_key);
module:hook("iq-set/host/" .. NS .. ":client-key", function (event)
	if event.origin.type == "c2s" then return handle_client_key(event); end
end);

-- Which local host a session belongs to (s2s-check-certificate is a global event).
local function local_host_of(session)
	if session.direction == "outgoing" then return session.from_host; end
	return session.to_host;
end

-- Send an error for a queued or routed message back to its local sender.
local function error_for(stanza, condition, text, hop)
	local err = st.message({ type = "error", from = stanza.attr.to, to = stanza.attr.from, id = stanza.attr.id })
		:tag("error", { type = "cancel", by = host })
		:tag(condition, { xmlns = NS_STANZAS }):up();
	if hop then err:tag("unverified-hop", { xmlns = NS, peer = hop.peer, method = hop.method, reason = hop.reason,
		required = hop.required }):up(); end
	err:text_tag("text", text, { xmlns = NS_STANZAS });
	return err;
end

-- Bounce the messages queued on an outgoing link that will not come up, naming the hop.
local function bounce_queue(session, domain, hop, text)
	local sendq = session.sendq;
	if not sendq then return; end
	local xml = require "util.xml";
	for i = #sendq, 1, -1 do
		local data = sendq[i];
		local reply = data[2];
		if reply and reply.name == "message" and not reply.attr.xmlns then
			local original = type(data[1]) == "string" and xml.parse(data[1]);
			local h = copy(hop);
			if original and original.name == "message" then
				local required = original:get_child("require", NS);
				h.required = required and required.attr.verdict or nil;
				original.attr.xmlns = nil;
				module:send(error_for(original, "remote-server-not-found", text, h));
			end
			table.remove(sendq, i);
		end
	end
end

-- The last outgoing link to each domain that failed its certificate check: its <out/> view
-- (result='fail') and a sequence number, for pre-flight queries waiting for that link.
local failed_links = {}; -- domain -> { seq, view }
local failure_seq = 0;

module:hook_global("s2s-check-certificate", function (event)
	local session, domain, cert = event.session, event.host, event.cert;
	if local_host_of(session) ~= host or not domain then return; end
	session.trust_path_views = nil; -- what this decides changes the session's views
	local spki = spki_of(cert);
	local domain_pins = pins[domain];
	if session.direction == "outgoing" then
		if domain_pins then
			if spki and domain_pins[spki] then
				session.trust_path_out = { method = "pin", result = "pass" };
				-- a matching pin authenticates the peer even without a CA chain (like mod_s2s_auth_fingerprint)
				session.cert_chain_status, session.cert_identity_status = "valid", "valid";
				module:log("info", "%s presented a pinned key (%s)", domain, spki);
				return true;
			end
			module:log("warn", "refusing %s: its certificate key %s matches none of its pins", domain, tostring(spki));
			session.trust_path_out = { method = "pin", result = "fail", reason = "pin-mismatch" };
			failure_seq = failure_seq + 1;
			failed_links[domain] = { seq = failure_seq, view = s2s_view(session, domain) };
			bounce_queue(session, domain, { peer = domain, method = "pin", reason = "pin-mismatch" },
				("%s did not connect to %s: its certificate matches none of the pinned keys"):format(host, domain));
			session:close({ condition = "policy-violation", text = "certificate does not match the pinned key" },
				nil, "certificate does not match the pinned key");
			return false;
		end
		local dane = dane_method(session, cert);
		if dane then
			session.trust_path_out = { method = dane, result = "pass" };
		elseif session.cert_chain_status == "valid" and session.cert_identity_status == "valid" then
			session.trust_path_out = { method = "pkix", result = "pass" };
		else
			-- TLS without a verified certificate: whatever authenticates the link later
			-- (dialback), this server did not verify the peer's certificate
			session.trust_path_out = { method = "none", result = "none" };
		end
		module:log("debug", "outgoing link to %s verified by %s", domain, session.trust_path_out.method);
		return;
	end
	-- incoming: the remote server's client certificate
	session.trust_path_in = session.trust_path_in or {};
	if domain_pins then
		if spki and domain_pins[spki] then
			session.trust_path_in[domain] = { method = "pin", cert = true };
			session.cert_chain_status, session.cert_identity_status = "valid", "valid";
			module:log("info", "%s connected with a pinned key (%s)", domain, spki);
			return true;
		end
		module:log("warn", "refusing connection from %s: its certificate key %s matches none of its pins", domain, tostring(spki));
		session:close({ condition = "not-authorized", text = "certificate does not match the pinned key" });
		return false;
	end
	if session.cert_chain_status == "valid" and session.cert_identity_status == "valid" then
		session.trust_path_in[domain] = { method = "pkix", cert = true };
	end
end, 0);

-- How the remote server authenticated an incoming stream: a certificate checked by pin or
-- PKIX (whether it then used SASL EXTERNAL or dialback), else dialback alone.
module:hook("s2s-authenticated", function (event)
	local session, domain = event.session, event.host;
	if session.direction ~= "incoming" or not domain then return; end
	session.trust_path_views = nil;
	session.trust_path_in = session.trust_path_in or {};
	local known = session.trust_path_in[domain];
	if not (known and known.cert) then
		if pins[domain] then
			-- a pinned domain must present its pinned key; dialback alone is not enough
			module:log("warn", "refusing %s: pinned, but authenticated by %s without its pinned certificate", domain, tostring(event.mechanism));
			session:close({ condition = "not-authorized", text = "certificate does not match the pinned key" });
			return false;
		end
		session.trust_path_in[domain] = { method = "dialback" };
	end
	module:log("debug", "incoming link from %s authenticated by %s (%s)", domain, session.trust_path_in[domain].method, tostring(event.mechanism));
end, 10);

---------------------------------------------------------------------------------------------
-- Pre-flight query: how the path to a remote domain would be verified now
-- (<preflight xmlns='urn:xmpp:trust-path:0' domain='b.example'/>, from a local client)
---------------------------------------------------------------------------------------------

local PREFLIGHT_TIMEOUT = 10;

-- The established outgoing link to `domain`, as route/remote would use it.
local function established_link(domain)
	local session = prosody.hosts[host].s2sout[domain];
	if session and (session.type == "s2sout" or session.type == "s2sin") then return session; end
	return nil;
end

-- 'takes-part': true, false, or nil when it could not be found out.
local function takes_part_of(domain, now)
	if is_remembered(domain, now) then return true; end
	local info = cached_peer_info(domain, now);
	if not info or info.error then return nil; end
	return info.takes_part;
end

local function handle_preflight(event)
	local origin, stanza = event.origin, event.stanza;
	if origin.type ~= "c2s" or origin.host ~= host then return; end -- only this host's own clients
	local element = stanza.tags[1];
	local given = element.attr.domain;
	local node, domain, resource;
	if type(given) == "string" and given ~= "" and #given <= 1023 then node, domain, resource = jid_lib.prepped_split(given, true); end
	if not domain or node or resource or domain == "" or domain:find("[%s%c:%[%]<>\"'&]") or domain:find("%.%.") or domain:find("^%.") then
		origin.send(st.error_reply(stanza, "modify", "bad-request", "'domain' must be a domain name"));
		return true;
	end
	if prosody.hosts[domain] then
		origin.send(st.error_reply(stanza, "cancel", "item-not-found", domain .. " is served here, not a remote domain"));
		return true;
	end
	local answered = false;
	local function answer(failures_before)
		if answered then return; end
		answered = true;
		local now = os.time();
		local session, out_view = established_link(domain), nil;
		if session then
			out_view = s2s_view(session, domain);
		else
			local failed = failures_before and failed_links[domain];
			if failed and failed.seq > failures_before then out_view = failed.view; end
		end
		if out_view then
			local problem = core.view_problem(out_view);
			if problem then
				module:log("info", "pre-flight for %s: leaving out the view of the link (%s)", domain, problem);
				out_view = nil;
			end
		end
		local takes_part = takes_part_of(domain, now);
		module:log("debug", "pre-flight of %s for %s: takes-part %s, link %s", domain, tostring(origin.full_jid),
			tostring(takes_part), out_view and (out_view.method .. " " .. out_view.result) or "none");
		local reply = st.reply(stanza);
		reply:add_direct_child(core.preflight_element(domain, takes_part, out_view));
		local ok, err = pcall(origin.send, reply);
		if not ok then module:log("debug", "pre-flight answer to %s not sent: %s", tostring(origin.full_jid), tostring(err)); end
	end
	local now = os.time();
	if established_link(domain) and (cached_peer_info(domain, now) or is_remembered(domain, now)) then
		answer(nil);
		return true;
	end
	-- Ask for its disco#info: this also makes mod_s2s set up the link if there is none.  The
	-- answer (or its failure: a link that fails its check bounces the query) says when the
	-- link is up or has failed.
	local failures_before = failure_seq;
	fetch_peer_info(domain):next(function () answer(failures_before); end);
	module:add_timer(PREFLIGHT_TIMEOUT, function () answer(failures_before); end);
	return true;
end
module:hook("iq-get/self/" .. NS .. ":preflight", handle_preflight);
module:hook("iq-get/host/" .. NS .. ":preflight", handle_preflight);

---------------------------------------------------------------------------------------------
-- <require/>: the strength a hop needs
---------------------------------------------------------------------------------------------

local NEED = { trusted = core.STRONG, weak = core.CA };

-- The hop that does not meet `required`, among `views`, or nil.
local function unmet(required, views)
	local need = NEED[required];
	for _, view in ipairs(views) do
		if view and core.view_strength(view) < need then
			return { peer = view.peer, method = view.method,
				reason = view.result == "fail" and view.reason or core.method_reason(view.method), required = required };
		end
	end
	return nil;
end

---------------------------------------------------------------------------------------------
-- From a local client: anti-forgery, then the marker (XEP "At the Sending Server")
---------------------------------------------------------------------------------------------

local function on_client_message(event)
	local origin, stanza = event.origin, event.stanza;
	if origin.type ~= "c2s" then return; end
	take_markers(stanza); -- a client cannot bring its own marker
	if stanza.attr.type == "error" then
		core.remove_paths(stanza);
		return;
	end
	local fields = core.try(core.message_fields, stanza);
	if not fields then
		-- no 'id' (or no 'to'): nothing may be attested, and nothing the client claims stays
		local removed = core.remove_paths(stanza);
		if removed > 0 then module:log("info", "removed %d attestation(s) from %s: the message cannot be attested", removed, origin.full_jid); end
		return;
	end
	local now = os.time();
	local result = core.filter_client_path(stanza, fields, origin.full_jid,
		{ domain = host, client_key = origin.trust_path_client_key, now = now, max_skew = max_skew });
	if result.removed > 0 then
		module:log("info", "removed %d forged attestation(s) from message %s of %s", result.removed, fields.id, origin.full_jid);
	end
	if result.chain == "fail" then
		module:log("info", "the attestation of %s on message %s was dropped: %s", origin.full_jid, fields.id, result.chain_reason);
	end
	local in_view = in_view_of(c2s_view(origin), result.chain, result.chain_reason, result.kept and "link" or nil,
		result.removed > 0 and tostring(result.removed) or nil);
	-- Rooms and other local services do not take part (XEP "Storage, Copies, Archives and
	-- Rooms"): only messages to a remote domain or to a user of this host get a marker.
	local to_host = jid_lib.host(fields.to);
	if stanza.attr.type == "groupchat" or (to_host ~= host and prosody.hosts[to_host]) then return; end
	stanza:add_direct_child(make_marker(in_view, result.kept and origin.trust_path_client_key or nil,
		result.kept and result.kept.sig or nil, now));
end
-- before mod_carbons (-0.5) and mod_mam (0) copy the stanza
module:hook("pre-message/full", on_client_message, 100);
module:hook("pre-message/bare", on_client_message, 100);
module:hook("pre-message/host", on_client_message, 100);

---------------------------------------------------------------------------------------------
-- To a remote domain: sign with the s2s link's view (route/remote, s2sout-established)
---------------------------------------------------------------------------------------------

-- Sign a message that leaves over `session` (an authenticated s2s stream to `domain`).
-- Returns true to send it, or false and an error stanza when <require/> cannot be met.
local function sign_for_link(stanza, pending, session, domain)
	local out_view = s2s_view(session, domain);
	local required = stanza:get_child("require", NS);
	required = required and required.attr.verdict;
	if NEED[required] then
		local client_out;
		local atts = core.try(core.decode_path, stanza);
		if atts and atts[1] then client_out = atts[1].out_view; end
		local hop = unmet(required, { out_view, client_out });
		if hop then
			module:log("info", "refusing message %s of %s: the hop to %s is verified by '%s' only, and the sender required '%s'",
				tostring(stanza.attr.id), tostring(stanza.attr.from), hop.peer, hop.method, required);
			return false, error_for(stanza, "policy-violation",
				("the hop to %s is verified by '%s' only, and the sender required '%s'"):format(hop.peer, hop.method, required), hop);
		end
	end
	local att, why = sign_onto(stanza, pending, out_view);
	if not att then
		module:log("info", "message %s to %s leaves without this server's attestation: %s", tostring(stanza.attr.id), domain, why);
	end
	return true;
end

module:hook("route/remote", function (event)
	local stanza, origin, to_host = event.stanza, event.origin, event.to_host;
	if stanza.name ~= "message" then return; end
	local marker = take_markers(stanza);
	if not marker then return; end
	local pending = read_marker(marker);
	if not pending then return; end
	local required = stanza:get_child("require", NS);
	required = required and required.attr.verdict;
	local function refuse(err)
		if origin and origin.type == "c2s" and origin.send then origin.send(err); else module:send(err); end
		return true;
	end
	if NEED[required] then
		-- A message that requires verified hops goes only to a domain that takes part.
		local now = os.time();
		local info = cached_peer_info(to_host, now);
		if not info and async.ready() then info = async.wait_for(fetch_peer_info(to_host)); end
		if not (info and info.takes_part) and not is_remembered(to_host, now) then
			module:log("info", "refusing message %s of %s: %s does not take part in trust-path and the sender required '%s'",
				tostring(stanza.attr.id), tostring(stanza.attr.from), to_host, required);
			local session = prosody.hosts[host].s2sout[to_host];
			local method = session and session.type == "s2sout" and s2s_view(session, to_host).method or "none";
			return refuse(error_for(stanza, "policy-violation",
				("%s does not take part in trust-path, so its hops cannot be verified"):format(to_host),
				{ peer = to_host, method = method, reason = "not-participating", required = required }));
		end
	end
	local session = prosody.hosts[host].s2sout[to_host];
	if session and (session.type == "s2sout" or session.type == "s2sin") then
		local ok, err = sign_for_link(stanza, pending, session, to_host);
		if not ok then return refuse(err); end
		return; -- mod_s2s sends it
	end
	-- The link is still being set up: mod_s2s queues a serialized copy.  Keep the marker in
	-- it, and sign in s2sout-established, when the link and its <out/> view exist (rule 43).
	stanza:add_direct_child(marker);
end, 1);

module:hook("s2sout-established", function (event)
	local session = event.session;
	local sendq = session.sendq;
	if not sendq then return; end
	local xml = require "util.xml";
	local domain = session.to_host;
	local i = 1;
	while i <= #sendq do
		local data = sendq[i];
		local keep = true;
		if type(data[1]) == "string" and data[1]:find(NS_INTERNAL, 1, true) then
			local ok, result = pcall(function ()
				local stanza = assert(xml.parse(data[1]));
				stanza.attr.xmlns = nil;
				local marker = take_markers(stanza);
				local pending = marker and read_marker(marker);
				if pending then
					local sent, err = sign_for_link(stanza, pending, session, domain);
					if not sent then module:send(err); return false; end
					module:log("debug", "signed message %s, queued while the link to %s came up", tostring(stanza.attr.id), domain);
				end
				data[1] = tostring(stanza);
				return true;
			end);
			if not ok then
				module:log("error", "could not sign a message queued for %s: %s; dropping it", domain, tostring(result));
				keep = false;
			else
				keep = result;
			end
		end
		if keep then i = i + 1; else table.remove(sendq, i); end
	end
end, 10);

---------------------------------------------------------------------------------------------
-- From a remote domain: verify the chain, leave a marker for delivery
-- (XEP "At a Receiving Server")
---------------------------------------------------------------------------------------------

local seen_sigs = cache.new(20000); -- signatures of accepted paths: a replay cache
local seen_view = setmetatable({}, { __index = function (_, sig)
	local t = seen_sigs:get(sig);
	return t ~= nil and os.time() - t <= 2 * max_skew or nil;
end });
local reposting = {}; -- held stanzas being delivered now: already handled here
local held = {};     -- domain -> events waiting for that domain's disco#info

local function handle_remote(origin, stanza, domain, info, retried)
	local fields = core.try(core.message_fields, stanza);
	if not fields then return nil; end -- no id: cannot be attested (the path stays as it came)
	local now = os.time();
	local takes_part = info.takes_part or is_remembered(domain, now);
	local link_view = s2s_view(origin, domain);
	local decision = core.receive_chain(stanza, fields, { origin = domain, domain = host, takes_part = takes_part,
		keys = info.keys, in_view = link_view, now = now, max_skew = max_skew, seen = seen_view });
	local anchor_status = decision.report and decision.report.statuses[#decision.report.statuses].status;
	if not retried and (anchor_status == "tampered" or anchor_status == "key-unknown") and now - info.fetched > REFETCH_AFTER then
		-- a verifier that fails with a cached key queries once more (XEP "Keys and Discovery Caching")
		return "refetch";
	end
	if decision.chain == "pass" then
		for _, att in ipairs(decision.atts) do seen_sigs:set(att.sig, now); end
	else
		module:log("info", "message %s from %s: chain %s%s%s", fields.id, fields.sender, decision.chain,
			decision.chain_reason and (" (" .. decision.chain_reason .. ")") or "",
			decision.error and (": " .. decision.error.text) or "");
	end
	local in_view = in_view_of(link_view, decision.chain, decision.chain == "fail" and decision.chain_reason or nil,
		decision.prev_key and decision.key_source or nil);
	if NEED[fields.require] then
		local hop = unmet(fields.require, { in_view });
		if not hop and decision.chain ~= "pass" then
			hop = { peer = domain, method = in_view.method, reason = decision.chain == "fail" and decision.chain_reason
				or (decision.chain == "absent" and "not-participating" or decision.chain), required = fields.require };
		end
		if hop then
			module:log("info", "refusing message %s from %s: the hop from %s does not meet '%s' (%s)", fields.id, fields.sender,
				domain, fields.require, hop.reason);
			local reply = st.error_reply(stanza, "cancel", "policy-violation",
				("the hop from %s does not meet '%s' (%s)"):format(domain, fields.require, hop.reason), host);
			reply:get_child("error"):tag("unverified-hop", { xmlns = NS, peer = hop.peer, method = hop.method,
				reason = hop.reason, required = hop.required }):up();
			module:send(reply);
			return true;
		end
	end
	stanza:add_direct_child(make_marker(in_view, decision.prev_key, decision.prev_key and decision.previous.sig or nil, now));
	return nil;
end

local function on_remote_message(event)
	local origin, stanza = event.origin, event.stanza;
	if origin.type ~= "s2sin" or reposting[stanza] then return; end
	take_markers(stanza); -- a remote server cannot bring a marker either
	if stanza.attr.type == "error" or not stanza.attr.id then return; end
	local domain = jid_lib.host(stanza.attr.from);
	if not domain then return; end
	local now = os.time();
	local info = not fetching[domain] and not held[domain] and cached_peer_info(domain, now);
	if info then
		local handled = handle_remote(origin, stanza, domain, info);
		if handled ~= "refetch" then return handled; end
		peer_infos[domain] = nil;
		event.retried = true;
	end
	-- Hold the message until the domain's disco#info arrives.  Waiting here would block the
	-- stream it came on, and the disco#info answer may come back on that same stream.
	local queue = held[domain];
	if queue then queue[#queue + 1] = event; return true; end
	held[domain] = { event };
	fetch_peer_info(domain):next(function (fetched)
		local waiting = held[domain];
		held[domain] = nil;
		for _, e in ipairs(waiting) do
			local ok, err = pcall(function ()
				if handle_remote(e.origin, e.stanza, domain, fetched, true) == nil then
					reposting[e.stanza] = true;
					local posted, err = pcall(prosody.core_post_stanza, e.origin, e.stanza); -- deliver as if it had just arrived
					reposting[e.stanza] = nil;
					if not posted then error(err, 0); end
				end
			end);
			if not ok then module:log("error", "while delivering a held message from %s: %s", domain, tostring(err)); end
		end
	end);
	return true;
end
module:hook("message/full", on_remote_message, 100);
module:hook("message/bare", on_remote_message, 100);
module:hook("message/host", function (event) -- for the server itself: never delivered to a client
	if event.origin.type == "s2sin" then take_markers(event.stanza); end
end, 100);

-- Learn a new peer's keys as soon as it connects, so its first message need not wait.
module:hook("s2sin-established", function (event)
	local session = event.session;
	for domain in pairs(session.hosts or {}) do
		if not cached_peer_info(domain, os.time()) then fetch_peer_info(domain); end
	end
end);

---------------------------------------------------------------------------------------------
-- To a local client: one attestation per delivered resource (stanzas/out filter), and the
-- archived copy as delivered (XEP "Storage, Copies, Archives and Rooms", rule 40)
---------------------------------------------------------------------------------------------

-- Replace `old` (a child element of `parent`) by `new`.
local function replace_child(parent, old, new)
	for i = 1, #parent do if parent[i] == old then parent[i] = new; break; end end
	local tags = parent.tags;
	for i = 1, #tags do if tags[i] == old then tags[i] = new; break; end end
end

-- How the archive stores the path.  mod_mam clones the message twice and mod_storage_internal
-- turns every element and attribute of the stored copy into Lua source; for a <path/>
-- (dozens of attributes) that was most of the cost of archiving a message.  So while
-- mod_mam runs, the <path/> is replaced by its XML text in one internal element
-- (<archived-path/>), and put back right after (after_archiving below); an archive result
-- gets the <path/> back, parsed from that text, before it goes to the client.  The archive
-- holds the path as delivered: the same elements with the same attribute values.
local modulemanager = require "core.modulemanager";
local ARCHIVED_PATH = "archived-path";

local function compact_path(event)
	local stanza = event.stanza;
	if stanza.name ~= "message" or not modulemanager.is_loaded(host, "mam") then return; end
	for _, child in ipairs(stanza.tags) do
		if child.name == "path" and child.attr.xmlns == NS then
			local compact = core.element(ARCHIVED_PATH, { xmlns = NS_INTERNAL });
			compact[1] = tostring(child);
			replace_child(stanza, child, compact);
			event.trust_path_path, event.trust_path_stanza = child, stanza;
			return;
		end
	end
end

-- The <path/> of an archived message, from its <archived-path/> (a result of mod_mam).
local function expand_path(message)
	for _, child in ipairs(message.tags) do
		if child.name == ARCHIVED_PATH and child.attr.xmlns == NS_INTERNAL then
			-- No token needed: whoever could put one here could as well have put a <path/>,
			-- and the client checks every signature in it.
			local ok, path = pcall(xml.parse, child:get_text());
			if ok and path and path.name == "path" and path.attr.xmlns == NS then
				replace_child(message, child, path);
			else
				module:log("warn", "message %s in the archive has an unreadable path", tostring(message.attr.id));
			end
			return; -- otherwise removed with the markers
		end
	end
end

-- Remove the <attestation/> `att` from `path`, and `path` from `message` if it is then empty.
local function remove_attestation(message, path, att)
	remove_child(path, att);
	if #path.tags == 0 then remove_child(message, path); end
end

-- Sign `message` (a clone, changed in place) for its delivery on `session`.  `how` is "live"
-- (delivered as it arrives, or a carbon copy), "offline" (it waited in offline storage:
-- 'stored' = arrival time) or "archive" (a MAM result: the archived copy).
local function attest_delivery(message, session, how)
	expand_path(message);
	local marker = take_markers(message);
	if not marker then return; end
	local presigned_sig = marker.attr["presigned-sig"];
	if presigned_sig then
		-- The attestation for the first resource was signed before mod_mam archived the
		-- message (see presign_for_archive below): that resource gets exactly what the
		-- archive holds; any other delivery gets its own attestation instead.
		local path = message:get_child("path", NS);
		local last = path and path.tags[#path.tags];
		if last and last.attr.sig == presigned_sig then
			if how == "archive" or (how == "live" and session.full_jid == marker.attr["presigned-for"]) then return; end
			remove_attestation(message, path, last);
		end
	end
	local pending = read_marker(marker);
	if not pending then return; end
	local stored = how ~= "live" and pending.arrived or nil;
	local att, why = sign_onto(message, pending, c2s_view(session), stored);
	if not att then
		module:log("debug", "message %s delivered to %s without this server's attestation: %s",
			tostring(message.attr.id), tostring(session.full_jid), why);
	end
end

-- The message inside a carbon copy or an archive result, and how it is delivered.
local WRAPPERS = {
	[NS_CARBONS] = { sent = "live", received = "live" },
	[NS_MAM] = { result = "archive" },
};

-- Messages signed before archiving for their only resource (see after_archiving below),
-- with their markers, which they then do not carry.
local presigned_markers = setmetatable({}, { __mode = "k" });

local function attest_deliveries(out, session)
	-- carbons and archive results: attest the forwarded message, for this resource
	for _, wrapper in ipairs(out.tags) do
		local kinds = WRAPPERS[wrapper.attr.xmlns];
		local how = kinds and kinds[wrapper.name];
		if how then
			local forwarded = wrapper:get_child("forwarded", NS_FORWARD);
			for _, inner in ipairs(forwarded and forwarded.tags or {}) do
				-- the forwarded message carries xmlns='jabber:client' explicitly
				if inner.name == "message" then attest_delivery(inner, session, how); end
			end
		end
	end
	if out:get_child("path", NS) or out:get_child("pending", NS_INTERNAL) then
		local delay = out:get_child("delay", NS_DELAY);
		attest_delivery(out, session, (delay ~= nil and delay.attr.from == host) and "offline" or "live");
	end
end

local function delivery_filter(stanza, session)
	if stanza.name ~= "message" or not session.full_jid then return stanza; end
	local presigned = presigned_markers[stanza];
	if presigned then
		if session.full_jid == presigned.attr["presigned-for"] and not has_marker(stanza) then return stanza; end
	elseif not has_marker(stanza) then
		return stanza;
	end
	-- the same stanza object goes to every resource and into storage: sign a copy
	local out = st.clone(stanza);
	if presigned then out:add_direct_child(presigned); end
	local ok, err = pcall(attest_deliveries, out, session);
	if not ok then module:log("error", "attesting a delivery to %s failed: %s", tostring(session.full_jid), tostring(err)); end
	take_markers(out); -- whatever happened, no marker reaches a client (archives, other wrappers)
	return out;
end

-- The archived copy.  mod_mam archives a message to a local user in message/full and
-- message/bare at priority 0, before mod_message (-1) delivers it.  So the attestation for
-- the resource mod_message delivers to first is signed here, just before, onto the stanza
-- itself: the archive stores it as that resource receives it, and the marker notes which
-- resource and which signature, so that the filter delivers that very attestation there
-- and signs afresh for any other resource (carbons, several resources).  The marker is
-- kept out of the archived copy and put back for delivery right after mod_mam (or, when
-- that resource is the user's only one, kept aside: the message then goes out untouched).
-- A message with no resource online keeps its marker in the archive; it is signed when it
-- is delivered (from offline storage, with 'stored') or read from the archive (with
-- 'stored' = arrival time and <out/> naming the resource that queries).
local full_sessions, bare_sessions = prosody.full_sessions, prosody.bare_sessions;

-- The session mod_message hands the message to first (mod_message's process_to_bare).
local function first_recipient(stanza, to_full)
	local to = stanza.attr.to;
	if not to then return nil; end
	if to_full then
		local session = full_sessions[to];
		if session then return session; end
	end
	local t = stanza.attr.type;
	if t ~= nil and t ~= "chat" and t ~= "normal" then return nil; end
	local user = bare_sessions[to_full and jid_lib.bare(to) or to];
	local top = user and user.top_resources;
	return top and top[1] or nil;
end

local function direct_marker(stanza)
	local marker;
	for _, child in ipairs(stanza.tags) do
		if child.name == "pending" and child.attr.xmlns == NS_INTERNAL and child.attr.token == marker_token then
			marker = child;
		end
	end
	return marker;
end

local function presign_for_archive(event, to_full)
	local stanza = event.stanza;
	local marker = direct_marker(stanza);
	if not marker or marker.attr["presigned-sig"] then return; end
	local session = first_recipient(stanza, to_full);
	if not (session and session.type == "c2s" and session.host == host and session.full_jid) then return; end
	local pending = read_marker(marker);
	if not pending then return; end
	local att = sign_onto(stanza, pending, c2s_view(session), nil);
	if not att then return; end
	marker.attr["presigned-for"], marker.attr["presigned-sig"] = session.full_jid, att.sig;
	remove_child(stanza, marker);
	event.trust_path_marker = marker;
end

local function before_archiving(event, to_full)
	if event.stanza.name ~= "message" then return; end
	presign_for_archive(event, to_full); -- the attestation for the first resource
	compact_path(event);
end

local function restore_path(stanza, path)
	for _, child in ipairs(stanza.tags) do
		if child.name == ARCHIVED_PATH and child.attr.xmlns == NS_INTERNAL then replace_child(stanza, child, path); return; end
	end
end

local function after_archiving(event, from_client)
	local stanza = event.stanza;
	local path = event.trust_path_path;
	if path then
		event.trust_path_path = nil;
		restore_path(stanza, path);
		if from_client and event.trust_path_stanza ~= stanza then
			-- mod_mam replaced event.stanza with a copy, which goes on to a local recipient; a
			-- message to a remote domain is routed as the original stanza object.  Only one of
			-- them goes on (and mod_carbons has made its copies by then), so they share the path.
			restore_path(event.trust_path_stanza, path);
		end
		event.trust_path_stanza = nil;
	end
	local marker = event.trust_path_marker;
	if marker then
		event.trust_path_marker = nil;
		local presigned_for = marker.attr["presigned-for"];
		local user = bare_sessions[jid_lib.bare(presigned_for)];
		local sessions = user and user.sessions;
		local only = sessions and next(sessions);
		if only and next(sessions, only) == nil and sessions[only].full_jid == presigned_for then
			-- the only resource, which gets the message as archived: nothing to sign, nothing to
			-- copy (no carbons), no marker to remove
			presigned_markers[stanza] = marker;
		else
			stanza:add_direct_child(marker);
		end
	end
end

-- A message kept in offline storage (delivery failed after all) takes its marker along.
module:hook("message/offline/handle", function (event)
	local marker = presigned_markers[event.stanza];
	if marker then
		presigned_markers[event.stanza] = nil;
		event.stanza:add_direct_child(marker);
	end
end, 100);

-- mod_mam archives at priority 0: before it (0.5) and right after it (-0.25), before mod_carbons
-- (-0.5) and mod_message (-1).
module:hook("message/full", function (event) before_archiving(event, true); end, 0.5);
module:hook("message/bare", function (event) before_archiving(event, false); end, 0.5);
module:hook("pre-message/full", compact_path, 0.5);
module:hook("pre-message/bare", compact_path, 0.5);
module:hook("message/full", function (event) after_archiving(event, false); end, -0.25);
module:hook("message/bare", function (event) after_archiving(event, false); end, -0.25);
module:hook("pre-message/full", function (event) after_archiving(event, true); end, -0.25);
module:hook("pre-message/bare", function (event) after_archiving(event, true); end, -0.25);

-- Run last, after other filters have changed the stanza.
local FILTER_PRIORITY = -100;
local function add_filter(session)
	if session.type == "c2s" and session.host == host then
		filters.add_filter(session, "stanzas/out", delivery_filter, FILTER_PRIORITY);
	end
end
module:hook("resource-bind", function (event) add_filter(event.session); end, 100);
for _, session in pairs(prosody.full_sessions) do add_filter(session); end
function module.unload()
	for _, session in pairs(prosody.full_sessions) do
		if session.host == host then filters.remove_filter(session, "stanzas/out", delivery_filter); end
	end
end

-- Never let a marker leave over s2s (a message that got one here and is routed on).
module:hook("route/remote", function (event)
	local stanza = event.stanza;
	if stanza.name == "message" and has_marker(stanza) then
		-- route/remote at priority 1 keeps a marker only for a link that is still coming up;
		-- mod_s2s then queues it and s2sout-established removes it.  Anything else goes here.
		local session = prosody.hosts[host].s2sout[event.to_host];
		if session and (session.type == "s2sout" or session.type == "s2sin") then take_markers(stanza); end
	end
end, 0.5);
