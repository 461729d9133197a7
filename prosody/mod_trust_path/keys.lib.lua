-- This server's record key (generated on first start, or from trust_path_key_file), the key it
-- will sign with next (trust_path_next_key_file, published before its first signature so that a
-- rotation has no gap), the secret of its internal markers, and the XEP-0128 form that
-- publishes its keys (XEP "Discovery and Keys").  The keys are read again when the
-- configuration is reloaded (prosodyctl reload): a rotation needs no restart.
local hex = require "util.hex";
local st = require "util.stanza";

return function (tp)
	local core, host, options = tp.core, tp.host, tp.options;
	local config_error, max_skew = options.config_error, options.max_skew;
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

	local function load_or_create_key(key_file)
		if key_file then return read_or_create_secret(key_file, "record key (trust_path_key_file)", false), key_file; end
		local path = data_file(".key");
		return read_or_create_secret(path, "record key", true), path;
	end

	-- The record keys as the options `o` (options.read_key_options()) say: the signing key, the
	-- next key, and every key to publish.  `previous` is the key signed with until now (on a
	-- reload): published as retired if the options do not list it, so that what it signed
	-- stays verifiable until the operator lists it.
	local function build(o, previous)
		local seed, key_path = load_or_create_key(o.key_file);
		local signing_key = core.signing_key(seed);
		local public_key = signing_key.public;
		local listed = {};
		for _, entry in ipairs(o.revoked_keys) do
			if entry.key == public_key then config_error("the key in %s is listed in trust_path_revoked_keys; refusing to sign with it", key_path); end
			listed[entry.key] = true;
		end
		for _, entry in ipairs(o.retired_keys) do
			if entry.key == public_key then config_error("the key in %s is listed in trust_path_retired_keys; a retired key no longer signs", key_path); end
			listed[entry.key] = true;
		end
		local published = { { key = public_key, status = "current", alg = "ed25519" } };
		local next_key;
		if o.next_key_file then
			-- generated on first use, like the record key: the operator only names the file
			next_key = core.signing_key(read_or_create_secret(o.next_key_file, "next record key (trust_path_next_key_file)", true)).public;
			if next_key == public_key then config_error("trust_path_next_key_file holds the key this server signs with now"); end
			if listed[next_key] then config_error("the key in %s is retired or revoked; it cannot be the next key", o.next_key_file); end
			published[#published + 1] = { key = next_key, status = "next", alg = "ed25519" };
		end
		for _, entry in ipairs(o.retired_keys) do
			published[#published + 1] = { key = entry.key, status = "retired", not_after = entry.not_after, alg = "ed25519" };
		end
		for _, entry in ipairs(o.revoked_keys) do
			published[#published + 1] = { key = entry.key, status = "revoked", since = entry.since, alg = "ed25519" };
		end
		if previous and previous ~= public_key and not listed[previous] then
			local not_after = os.date("!%Y-%m-%dT%H:%M:%SZ", os.time() + max_skew);
			published[#published + 1] = { key = previous, status = "retired", not_after = not_after, alg = "ed25519" };
			module:log("warn", "the key signed with until now (%s) is not listed in trust_path_retired_keys: published as retired "
				.. "until %s for now; list it (not_after = \"%s\" or later) before the next restart, or what it signed cannot be verified",
				previous, not_after, not_after);
		end
		return { seed = seed, signing_key = signing_key, public_key = public_key, key_path = key_path, published = published,
			next_key = next_key };
	end

	local state = build(options);
	-- The key of the internal markers' tokens (markers.lib.lua): a secret of its own, not the
	-- record key, so that messages stored (offline, archive) before a key rotation are still
	-- signed when they are delivered.  It never leaves this server: a token is a MAC of one
	-- marker on one message, so a token that leaks is worth nothing on any other message.
	local marker_key = read_or_create_secret(data_file(".marker-secret"), "marker secret", true);
	local function log_keys()
		module:log("info", "record key %s (from %s), max skew %ds%s", state.public_key, state.key_path, max_skew,
			state.next_key and (", next key " .. state.next_key .. " published") or "");
	end
	log_keys();

	local K = { marker_key = marker_key };
	local function expose()
		K.seed, K.signing_key, K.public_key, K.key_path = state.seed, state.signing_key, state.public_key, state.key_path;
		K.published, K.next_key = state.published, state.next_key;
	end
	expose();

	-- The form a participating server adds to its disco#info result (XEP "Discovery and Keys"): the current
	-- key, the next one, and those the options list as retired (valid for signatures until
	-- their not-after time) or revoked (compromised since).
	function K.disco_form() return core.key_form(state.published, max_skew, cache_for); end

	-- Read the key options again (the configuration was reloaded).  Returns true when the keys
	-- changed; a malformed option is logged and the keys stay as they were.
	function K.reload()
		local ok, new = pcall(function () return build(options.read_key_options(), state.public_key); end);
		if not ok then
			module:log("error", "keeping the record keys as they were: %s", tostring(new));
			return false;
		end
		local before = core.key_values(state.published);
		local after = core.key_values(new.published);
		local same = state.public_key == new.public_key and #state.published == #new.published;
		for name, values in pairs(after) do same = same and table.concat(values, ",") == table.concat(before[name] or {}, ","); end
		if same then return false; end
		state = new;
		expose();
		log_keys();
		return true;
	end

	return K;
end
