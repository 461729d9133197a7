-- This server's record key (generated on first start, or from trust_path_key_file), the
-- secret of its internal markers, and the XEP-0128 form that publishes its keys (XEP "Discovery").
local hex = require "util.hex";
local st = require "util.stanza";

return function (tp)
	local core, host, options = tp.core, tp.host, tp.options;
	local config_error, key_file = options.config_error, options.key_file;
	local retired_keys, revoked_keys, max_skew = options.retired_keys, options.revoked_keys, options.max_skew;
	local cache_for = options.cache_for;
	local NS = core.NS;

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
		if key_file then return read_or_create_secret(key_file, "record key (trust_path_key_file)", false), key_file; end
		local path = data_file(".key");
		return read_or_create_secret(path, "record key", true), path;
	end

	local seed, key_path = load_or_create_key();
	local signing_key = core.signing_key(seed);
	local public_key = signing_key.public;
	for _, entry in ipairs(revoked_keys) do
		if entry.key == public_key then config_error("the key in %s is listed in trust_path_revoked_keys; refusing to sign with it", key_path); end
	end
	for _, entry in ipairs(retired_keys) do
		if entry.key == public_key then config_error("the key in %s is listed in trust_path_retired_keys; a retired key no longer signs", key_path); end
	end
	-- The key of the internal markers' tokens (markers.lib.lua): a secret of its own, not the
	-- record key, so that messages stored (offline, archive) before a key rotation are still
	-- signed when they are delivered.  It never leaves this server: a token is a MAC of one
	-- marker on one message, so a token that leaks is worth nothing on any other message.
	local marker_key = read_or_create_secret(data_file(".marker-secret"), "marker secret", true);
	module:log("info", "record key %s (from %s), max skew %ds", public_key, key_path, max_skew);

	-- The keys this server publishes: the current one, and those the options list as retired
	-- (valid for signatures until their not-after time) or revoked (compromised since).
	local published = { { key = public_key, status = "current", alg = "ed25519" } };
	for _, entry in ipairs(retired_keys) do
		published[#published + 1] = { key = entry.key, status = "retired", not_after = entry.not_after, alg = "ed25519" };
	end
	for _, entry in ipairs(revoked_keys) do
		published[#published + 1] = { key = entry.key, status = "revoked", since = entry.since, alg = "ed25519" };
	end

	-- The form a participating server adds to its disco#info result (XEP "Keys").
	local function disco_form() return core.key_form(published, max_skew, cache_for); end

	return { seed = seed, signing_key = signing_key, public_key = public_key, published = published, key_path = key_path,
		marker_key = marker_key, disco_form = disco_form };
end
