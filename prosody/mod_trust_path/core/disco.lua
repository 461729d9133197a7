-- A domain's published record keys in its disco#info (XEP "Discovery and Keys"; the disco part of
-- reference/trustpath/core/disco.py): the XEP-0128 form this server publishes and the reading
-- of a peer's, and the two other published formats: DNSSEC TXT records at _trust-path.<domain>
-- and the POSH document (the caller checks DNSSEC validation and fetches the document).
local M = ...;
local st = require "util.stanza";
local NS = M.NS;
local NS_DISCO_INFO, NS_DATA = "http://jabber.org/protocol/disco#info", "jabber:x:data";
M.NS_DISCO_INFO, M.NS_DATA = NS_DISCO_INFO, NS_DATA;

-- "ed25519:<base64>" to alg, key (without padding); raises "malformed".
function M.parse_key(text)
	local alg, key = text:match("^([^:]*):(.*)$");
	if not alg then M.fail("malformed", "a published key is alg:key, e.g. ed25519:<base64>, got %q", text:sub(1, 60)); end
	if not M.ALGORITHMS[alg] then M.fail("malformed", "key algorithm %q is not supported; only ed25519", alg); end
	key = key:gsub("=+$", "");
	if not M.is_key(key) then M.fail("malformed", "a published key must be 32 bytes of base64"); end
	return alg, key;
end

local function key_entry(text, status)
	local token, when = text:match("^(%S+) (.*)$");
	token = token or text;
	local alg, key = M.parse_key(token);
	if status == "current" or status == "next" then
		if when then M.fail("malformed", "a %s key is given alone", status); end
		return { key = key, status = status, alg = alg };
	end
	local ok, why = M.parse_time(when or "");
	if not ok then M.fail("malformed", "%s", why); end
	if status == "retired" then return { key = key, status = status, not_after = when, alg = alg }; end
	return { key = key, status = status, since = when, alg = alg };
end

-- Refuse a key set of more than MAX_PUBLISHED_KEYS keys (the Python check_key_count), before
-- any is parsed: a domain that publishes thousands would make every reader parse and search them.
function M.check_key_count(count, domain, where)
	if count > M.MAX_PUBLISHED_KEYS then
		M.fail("malformed", "%s publishes %d keys in its %s; at most %d are read", domain, count, where, M.MAX_PUBLISHED_KEYS);
	end
end

local function seconds(values, name, domain, default)
	local v = values[1];
	if v == nil then return default; end
	if not v:find("^%d+$") or tonumber(v) > M.MAX_SKEW_LIMIT * 365 then
		M.fail("malformed", "%s's %s must be whole seconds", domain, name);
	end
	return math.tointeger(tonumber(v));
end

-- The feature and the urn:xmpp:trust-path:1 form of a disco#info <query/>:
-- { takes_part, keys (a key set or nil), max_skew, cache_for }; raises "malformed" for a
-- domain that announces the feature with no usable key form.
function M.read_disco_info(query, domain)
	if not query or query.name ~= "query" or query.attr.xmlns ~= NS_DISCO_INFO then
		M.fail("malformed", "expected a disco#info <query/>");
	end
	local takes_part, form = false, nil;
	for feature in query:childtags("feature") do
		if feature.attr.var == NS then takes_part = true; end
	end
	for x in query:childtags("x", NS_DATA) do
		local fields = {};
		for field in x:childtags("field") do
			local values = {};
			for value in field:childtags("value") do values[#values + 1] = (value:get_text() or ""):match("^%s*(.-)%s*$"); end
			fields[field.attr.var or ""] = values;
		end
		if fields.FORM_TYPE and fields.FORM_TYPE[1] == NS then form = fields; end
	end
	if not takes_part then return { takes_part = false, max_skew = M.DEFAULT_MAX_SKEW, cache_for = M.DEFAULT_CACHE_FOR }; end
	if not form then M.fail("malformed", "%s announces %s but publishes no key form", domain, NS); end
	M.check_key_count(#(form.key or {}) + #(form["next-key"] or {}) + #(form["retired-key"] or {}) + #(form["revoked-key"] or {}), domain,
		"key form");
	local keys, current = {}, false;
	for _, pair in ipairs { { "key", "current" }, { "next-key", "next" }, { "retired-key", "retired" }, { "revoked-key", "revoked" } } do
		for _, value in ipairs(form[pair[1]] or {}) do
			local ok, entry = pcall(key_entry, value, pair[2]);
			if not ok then M.fail("malformed", "%s's key form: %s", domain, type(entry) == "table" and entry.text or tostring(entry)); end
			keys[#keys + 1] = entry;
			current = current or entry.status == "current";
		end
	end
	if not current then M.fail("malformed", "%s publishes no current key", domain); end
	local max_skew = seconds(form["max-skew"] or {}, "max-skew", domain, M.DEFAULT_MAX_SKEW);
	if max_skew > M.MAX_SKEW_LIMIT then
		M.fail("malformed", "%s's max-skew must be whole seconds from 0 to %d", domain, M.MAX_SKEW_LIMIT);
	end
	return { takes_part = true, keys = keys, max_skew = max_skew,
		cache_for = seconds(form["cache-for"] or {}, "cache-for", domain, M.DEFAULT_CACHE_FOR) };
end

-- The key, next-key, retired-key and revoked-key values, as the form writes them (next-key
-- only when there is a next key).
function M.key_values(keys)
	local out = { key = {}, ["retired-key"] = {}, ["revoked-key"] = {} };
	for _, k in ipairs(keys) do
		local token = (k.alg or "ed25519") .. ":" .. k.key;
		if k.status == "current" then table.insert(out.key, token);
		elseif k.status == "next" then
			out["next-key"] = out["next-key"] or {};
			table.insert(out["next-key"], token);
		elseif k.status == "retired" then table.insert(out["retired-key"], token .. " " .. k.not_after);
		else table.insert(out["revoked-key"], token .. " " .. k.since); end
	end
	return out;
end

-- The XEP-0128 form a participating server puts into its disco#info result.
function M.key_form(keys, max_skew, cache_for)
	local form = st.stanza("x", { xmlns = NS_DATA, type = "result" })
		:tag("field", { var = "FORM_TYPE", type = "hidden" }):text_tag("value", NS):up();
	local values = M.key_values(keys);
	for _, name in ipairs { "key", "next-key", "retired-key", "revoked-key" } do
		if values[name] then
			form:tag("field", { var = name, type = "text-multi" });
			for _, v in ipairs(values[name]) do form:text_tag("value", v); end
			form:up();
		end
	end
	form:tag("field", { var = "max-skew", type = "text-single" }):text_tag("value", ("%d"):format(max_skew or M.DEFAULT_MAX_SKEW)):up();
	form:tag("field", { var = "cache-for", type = "text-single" }):text_tag("value", ("%d"):format(cache_for or M.DEFAULT_CACHE_FOR)):up();
	return form;
end

-- One TXT record per key: "v=tp1; k=ed25519:<key>", with "; s=next", "; s=retired;
-- until=<time>" or "; s=revoked; since=<time>" (the Python txt_records).
function M.txt_records(keys)
	local out = {};
	for _, k in ipairs(keys) do
		local text = ("v=tp1; k=%s:%s"):format(k.alg or "ed25519", k.key);
		if k.status == "next" then text = text .. "; s=next";
		elseif k.status == "retired" then text = text .. "; s=retired; until=" .. k.not_after;
		elseif k.status == "revoked" then text = text .. "; s=revoked" .. (k.since and ("; since=" .. k.since) or ""); end
		out[#out + 1] = text;
	end
	return out;
end

-- A domain's keys from the texts of its _trust-path TXT records (the Python read_txt_records;
-- the caller checks that the resolver validated them: only then is the key source "dnssec").
-- Records that are not v=tp1 are ignored; raises "malformed" for a bad tp1 record or for no
-- current key.
function M.read_txt_records(texts, domain)
	local records = {};
	for _, text in ipairs(texts) do
		local tags = {};
		for part in (text .. ";"):gmatch("([^;]*);") do
			local name, value = part:match("^%s*([^=]-)%s*=%s*(.-)%s*$");
			if name then tags[name] = value; end
		end
		if tags.v == "tp1" then records[#records + 1] = tags; end
	end
	M.check_key_count(#records, domain, "_trust-path TXT records");
	local keys, current = {}, false;
	for _, tags in ipairs(records) do
		local ok, alg, key = pcall(M.parse_key, tags.k or "");
		if not ok then M.fail("malformed", "%s's _trust-path TXT record: %s", domain, type(alg) == "table" and alg.text or tostring(alg)); end
		local status = ({ next = "next", retired = "retired", revoked = "revoked" })[tags.s or ""] or "current";
		for _, name in ipairs { "until", "since" } do
			if tags[name] then
				local good, why = M.parse_time(tags[name]);
				if not good then M.fail("malformed", "%s's _trust-path TXT record: %s", domain, why); end
			end
		end
		if status == "retired" and not tags["until"] then
			M.fail("malformed", "%s's _trust-path TXT record: a retired key needs until=", domain);
		end
		keys[#keys + 1] = { key = key, status = status, alg = alg, not_after = tags["until"], since = tags.since };
		current = current or status == "current";
	end
	if not current then M.fail("malformed", "%s publishes no current key in DNS", domain); end
	return keys;
end

-- The POSH document (RFC 7711 style) at https://<domain>/.well-known/posh/trust-path.json, as a
-- table for util.json (the Python posh_document).
M.POSH_PATH = "/.well-known/posh/trust-path.json";
function M.posh_document(keys, expires)
	local list = {};
	for _, k in ipairs(keys) do
		list[#list + 1] = { key = k.key, alg = k.alg or "ed25519", status = k.status, not_after = k.not_after, since = k.since };
	end
	return { keys = list, expires = expires or M.DEFAULT_CACHE_FOR };
end

-- A domain's keys and how long to keep them (seconds), from its decoded POSH document (the
-- Python read_posh_document); raises "malformed".  The document comes from the network: any
-- shape is refused cleanly (JSON null is util.json's null, which counts as absent).
function M.read_posh_document(data, domain)
	local null = require "util.json".null;
	local function get(t, name) local v = t[name]; if v == null then return nil; end return v; end
	if type(data) ~= "table" or type(get(data, "keys")) ~= "table" or #data.keys == 0 then
		M.fail("malformed", "%s's POSH document needs a 'keys' list", domain);
	end
	local expires = get(data, "expires");
	if expires == nil then expires = M.DEFAULT_CACHE_FOR; end
	-- whole seconds: a JSON integer (util.json reads 5.0 as a float, as Python's json does)
	if math.type(expires) ~= "integer" or expires < 0 then
		M.fail("malformed", "%s's POSH document: 'expires' must be whole seconds", domain);
	end
	M.check_key_count(#data.keys, domain, "POSH document");
	local keys = {};
	for _, entry in ipairs(data.keys) do
		if type(entry) ~= "table" or type(get(entry, "key")) ~= "string" then
			M.fail("malformed", "%s's POSH document: each key entry needs a 'key' string", domain);
		end
		local alg = get(entry, "alg");
		if alg == nil then alg = "ed25519"; end
		if type(alg) ~= "string" then M.fail("malformed", "%s's POSH document: 'alg' must be a string", domain); end
		local ok, parsed_alg, key = pcall(M.parse_key, alg .. ":" .. entry.key);
		if not ok then M.fail("malformed", "%s's POSH document: %s", domain, type(parsed_alg) == "table" and parsed_alg.text or tostring(parsed_alg)); end
		local status = get(entry, "status");
		if status == nil then status = "current"; end
		if not M.KEY_STATUSES[status] then
			M.fail("malformed", "%s's POSH document: unknown key status %q", domain, tostring(status));
		end
		local times = {};
		for _, name in ipairs { "not_after", "since" } do
			local when = get(entry, name);
			if when ~= nil then
				if type(when) ~= "string" then M.fail("malformed", "%s's POSH document: '%s' must be a time string", domain, name); end
				local good, why = M.parse_time(when);
				if not good then M.fail("malformed", "%s's POSH document: '%s': %s", domain, name, tostring(why)); end
				times[name] = when;
			end
		end
		if status == "retired" and times.not_after == nil then M.fail("malformed", "%s's POSH document: a retired key needs 'not_after'", domain); end
		keys[#keys + 1] = { key = key, alg = parsed_alg, status = status, not_after = times.not_after, since = times.since };
	end
	return keys, expires;
end
