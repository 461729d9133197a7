-- The module's options, read once when it is loaded on a host; a malformed value stops the
-- module from loading with an error in the log that names the option.  See README.md.  The
-- key options (trust_path_key_file, trust_path_next_key_file, trust_path_retired_keys,
-- trust_path_revoked_keys) are read again when the configuration is reloaded (keys.lib.lua),
-- so that a key rotation needs no restart.
return function (tp)
	local core = tp.core;

	local max_skew = module:get_option_number("trust_path_max_skew", core.DEFAULT_MAX_SKEW);
	local cache_for = module:get_option_number("trust_path_cache_for", core.DEFAULT_CACHE_FOR);
	local remember_seconds = module:get_option_number("trust_path_remember_days", 7) * 86400;
	local pins_option = module:get_option("trust_path_s2s_pins", {});
	local peer_keys_option = module:get_option("trust_path_peer_keys", {});
	local device_keys = module:get_option_boolean("trust_path_device_keys", true);
	-- look up _trust-path.<domain> TXT records; used only when the resolver validated them
	local dnssec_keys = module:get_option_boolean("trust_path_dnssec_keys", true);
	-- fetch https://<domain>/.well-known/posh/trust-path.json (key source "posh")
	local posh_keys = module:get_option_boolean("trust_path_posh_keys", true);

	local function config_error(fmt, ...)
		local text = fmt:format(...);
		module:log("error", "%s", text);
		error(text, 0);
	end

	if max_skew < 0 or max_skew % 1 ~= 0 or max_skew > core.MAX_SKEW_LIMIT then
		config_error("trust_path_max_skew must be a whole number of seconds from 0 to %d", core.MAX_SKEW_LIMIT);
	end
	if cache_for < 0 or cache_for % 1 ~= 0 then config_error("trust_path_cache_for must be a whole number of seconds"); end

	-- Bounded resources (README "Limits", where each default is explained): what remote domains
	-- and pre-flight queries can make this server hold or do.
	local limits = {
		held_messages = module:get_option_number("trust_path_held_messages", 200),
		held_bytes = module:get_option_number("trust_path_held_bytes", 1024 * 1024),
		held_total_bytes = module:get_option_number("trust_path_held_total_bytes", 8 * 1024 * 1024),
		held_seconds = module:get_option_number("trust_path_held_seconds", 15),
		peer_domains = module:get_option_number("trust_path_peer_domains", 1000),
		preflight_fetches = module:get_option_number("trust_path_preflight_fetches", 60),
	};
	for name, value in pairs(limits) do
		if value < 1 or value % 1 ~= 0 then config_error("trust_path_%s must be a whole number from 1", name); end
	end

	-- An Ed25519 public key as records write it (base64 without padding); "ed25519:" and padding
	-- are accepted in the configuration.
	local function public_key(text)
		if type(text) ~= "string" then return nil; end
		text = text:gsub("^ed25519:", ""):gsub("=+$", "");
		return core.is_key(text) and text or nil;
	end

	-- The key options, as they stand in the configuration now: { key_file, next_key_file,
	-- retired_keys, revoked_keys }; raises (through config_error) for a malformed value.
	local function read_key_options()
		local key_file = module:get_option_path("trust_path_key_file", nil, "config");
		local next_key_file = module:get_option_path("trust_path_next_key_file", nil, "config");
		local retired_option = module:get_option("trust_path_retired_keys", {});
		local revoked_option = module:get_option("trust_path_revoked_keys", {});
		local retired_keys = {};
		if type(retired_option) ~= "table" then config_error("trust_path_retired_keys must be a list of { key = ..., not_after = ... }"); end
		for i, entry in ipairs(retired_option) do
			local key = type(entry) == "table" and public_key(entry.key);
			if not key or not core.parse_time(entry.not_after) then
				config_error("trust_path_retired_keys[%d] needs key = <base64 Ed25519 public key> and not_after = YYYY-MM-DDThh:mm:ssZ", i);
			end
			retired_keys[#retired_keys + 1] = { key = key, not_after = entry.not_after };
		end
		-- A revoked key is listed with the time from which it may have been compromised (messages
		-- archived before then stay valid); a key given alone is compromised since ever.
		local revoked_keys = {};
		if type(revoked_option) ~= "table" then config_error("trust_path_revoked_keys must be a list of { key = ..., since = ... }"); end
		for i, entry in ipairs(revoked_option) do
			if type(entry) ~= "table" then entry = { key = entry, since = "1970-01-01T00:00:00Z" }; end
			local key = public_key(entry.key);
			if not key or not core.parse_time(entry.since) then
				config_error("trust_path_revoked_keys[%d] needs key = <base64 Ed25519 public key> and since = YYYY-MM-DDThh:mm:ssZ", i);
			end
			revoked_keys[#revoked_keys + 1] = { key = key, since = entry.since };
		end
		if next_key_file and next_key_file == key_file then
			config_error("trust_path_next_key_file names the same file as trust_path_key_file");
		end
		-- a larger set is malformed to every reader (XEP "Discovery and Keys"): publishing it would break this host
		local count = 1 + (next_key_file and 1 or 0) + #retired_keys + #revoked_keys;
		if count > core.MAX_PUBLISHED_KEYS then
			config_error("trust_path_retired_keys and trust_path_revoked_keys list %d keys; with the current key%s at most %d may be published "
				.. "(drop the oldest retired or revoked keys)", #retired_keys + #revoked_keys, next_key_file and " and the next one" or "",
				core.MAX_PUBLISHED_KEYS);
		end
		return { key_file = key_file, next_key_file = next_key_file, retired_keys = retired_keys, revoked_keys = revoked_keys };
	end
	local key_options = read_key_options();
	local pins = {};
	if type(pins_option) ~= "table" then config_error("trust_path_s2s_pins must be a table of domain = { pins }"); end
	for domain, list in pairs(pins_option) do
		if type(list) == "string" then list = { list }; end
		if type(domain) ~= "string" or type(list) ~= "table" or #list == 0 then
			config_error("trust_path_s2s_pins: %s must map to a list of base64 SHA-256 SPKI pins", tostring(domain));
		end
		pins[domain] = {};
		for _, pin in ipairs(list) do
			-- a pin is base64 SHA-256 with its padding: 43 characters and "="
			if type(pin) ~= "string" or not pin:find("=$") or not core.is_key(pin:sub(1, -2)) then
				config_error("trust_path_s2s_pins[%q]: %q is not a base64 SHA-256 value", domain, tostring(pin));
			end
			pins[domain][pin] = true;
		end
	end
	-- Keys of remote domains the operator lists (key source "config"): they are used instead of
	-- fetching the domain's disco#info, and the domain counts as taking part.
	local peer_keys = {};
	if type(peer_keys_option) ~= "table" then config_error("trust_path_peer_keys must be a table of domain = { keys }"); end
	for domain, list in pairs(peer_keys_option) do
		if type(list) == "string" then list = { list }; end
		if type(domain) ~= "string" or type(list) ~= "table" or #list == 0 then
			config_error("trust_path_peer_keys: %s must map to a list of Ed25519 public keys", tostring(domain));
		end
		peer_keys[domain] = {};
		for _, text in ipairs(list) do
			local key = public_key(text);
			if not key then config_error("trust_path_peer_keys[%q]: %q is not an Ed25519 public key", domain, tostring(text)); end
			peer_keys[domain][#peer_keys[domain] + 1] = { key = key, status = "current", alg = "ed25519" };
		end
	end

	return {
		config_error = config_error,
		max_skew = max_skew,
		cache_for = cache_for,
		remember_seconds = remember_seconds,
		key_file = key_options.key_file,
		next_key_file = key_options.next_key_file,
		retired_keys = key_options.retired_keys,
		revoked_keys = key_options.revoked_keys,
		read_key_options = read_key_options,
		pins = pins,
		peer_keys = peer_keys,
		device_keys = device_keys,
		dnssec_keys = dnssec_keys,
		limits = limits,
		posh_keys = posh_keys,
	};
end
