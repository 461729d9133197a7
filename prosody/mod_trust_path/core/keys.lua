-- Ed25519 keys and signatures, base64 values of fixed length, and published key sets
-- (reference/trustpath/core/keys.py).
local M, here = ...;
local base64 = require "util.encodings".base64;

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

-- Prosody 13's util.crypto when present, else trust_path_crypto.so next to mod_trust_path.lua.
local function load_backend()
	local ok, uc = pcall(require, "util.crypto");
	if ok and type(uc) == "table" and uc.ed25519_sign and uc.import_private_pem then
		return util_crypto_backend(uc, require "util.random");
	end
	local dir = here:match("^(.*)/core$") or (here .. "/..");
	local open, err = package.loadlib(dir .. "/trust_path_crypto.so", "luaopen_trust_path_crypto");
	if not open then
		error(("trust-path needs Ed25519: build %s/trust_path_crypto.so with `make -C %s` (Prosody 0.12, "
			.. "gcc, liblua5.4-dev, libsodium-dev or libssl-dev), or run Prosody 13 (util.crypto): %s"):format(dir, dir, tostring(err)), 0);
	end
	return c_backend(open());
end

local backend;
function M.crypto()
	if not backend then backend = load_backend(); end
	return backend;
end
function M.set_crypto(b) backend = b; end

-- Base64 without padding (RFC 4648 section 3.2), as records write keys and signatures, checked
-- exactly: the last character may only carry the bits the length leaves.
local B64_KEY = "^" .. ("[A-Za-z0-9+/]"):rep(42) .. "[AEIMQUYcgkosw048]$";
local B64_SIG = "^" .. ("[A-Za-z0-9+/]"):rep(85) .. "[AQgw]$";
function M.is_key(text) return type(text) == "string" and #text == 43 and text:find(B64_KEY) ~= nil; end
function M.is_sig(text) return type(text) == "string" and #text == 86 and text:find(B64_SIG) ~= nil; end

-- base64 without padding, and back (util.encodings wants the padding)
local PADDING = { [0] = 0, 2, 1 }; -- '=' characters base64 adds for a length mod 3
function M.b64_raw(raw)
	local text = base64.encode(raw);
	local pad = PADDING[#raw % 3];
	if pad == 0 then return text; end
	return text:sub(1, -1 - pad);
end
function M.unb64_raw(text)
	return base64.decode(text .. ("="):rep(-#text % 4));
end

-- True when `sig` (base64, no padding) is `public`'s signature over `data`; false for
-- anything malformed.
local raw_keys = {}; -- base64 public key -> raw bytes (keys repeat: every message of a domain)
local raw_key_count = 0;
local function raw_key(public)
	local pub = raw_keys[public];
	if pub == nil then
		pub = M.unb64_raw(public);
		if raw_key_count >= 256 then raw_keys, raw_key_count = {}, 0; end
		raw_keys[public], raw_key_count = pub, raw_key_count + 1;
	end
	return pub;
end
function M.verify_signature(public, sig, data)
	if not M.is_key(public) or not M.is_sig(sig) then return false; end
	local pub, raw_sig = raw_key(public), M.unb64_raw(sig);
	if not pub or #pub ~= 32 or not raw_sig or #raw_sig ~= 64 then return false; end
	return M.crypto().verify(pub, raw_sig, data);
end

-- A signing key (reference: keys.SigningKey): { seed = 32 raw bytes, public = base64 without
-- padding, as records write it in 'k=' }.
function M.signing_key(seed)
	assert(type(seed) == "string" and #seed == 32, "an Ed25519 seed is 32 bytes");
	return { seed = seed, public = M.b64_raw(M.crypto().public_from_seed(seed)) };
end
function M.sign(key, data) return M.b64_raw(M.crypto().sign(key.seed, data)); end

-- A published key set is a list of { key, status = current|next|retired|revoked, not_after,
-- since, alg }.  The entry that names `key`, or nil (KeySet.status_of).
function M.status_of(keys, key)
	if not keys then return nil; end
	for _, entry in ipairs(keys) do
		if entry.key == key then return entry; end
	end
	return nil;
end

-- Why `key` cannot have made a valid signature at `signed_at` (KeySet.problem): nil when it
-- can, else key-unknown, key-retired or key-revoked (an archived copy from before the
-- compromise, `archived_at` < since, is still valid).
function M.key_problem(keys, key, signed_at, archived_at)
	local entry = M.status_of(keys, key);
	if not entry then return "key-unknown"; end
	-- a next key is published before its first signature, so that a rotation has no gap
	if entry.status == "current" or entry.status == "next" then return nil; end
	if entry.status == "retired" then
		local limit = entry.not_after and M.parse_time(entry.not_after);
		if limit and signed_at <= limit then return nil; end
		return "key-retired";
	end
	local since = entry.since and M.parse_time(entry.since);
	if archived_at and since and archived_at < since then return nil; end
	return "key-revoked";
end
