-- The module's options, read once when it is loaded on a host; a malformed value stops the
-- module from loading with an error in the log that names the option.  See README.md.
return function (tp)
	local core = tp.core;

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

	return {
		config_error = config_error,
		max_skew = max_skew,
		remember_seconds = remember_seconds,
		key_file = key_file,
		retired_keys = retired_keys,
		revoked_keys = revoked_keys,
		pins = pins,
	};
end
