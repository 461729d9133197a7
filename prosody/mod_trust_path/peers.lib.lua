-- Remote domains: whether each takes part and its published keys (disco#info over s2s, cached),
-- and the remembered policy (a domain seen taking part is remembered for trust_path_remember_days,
-- so that a message from it without its attestation is "stripped", not "absent").
local st = require "util.stanza";
local new_id = require "util.id".medium;

return function (tp)
	local core, host = tp.core, tp.host;
	local remember_seconds = tp.options.remember_seconds;
	local NS, NS_DISCO_INFO = core.NS, tp.NS_DISCO_INFO;

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

	-- 'takes-part': true, false, or nil when it could not be found out.
	local function takes_part_of(domain, now)
		if is_remembered(domain, now) then return true; end
		local info = cached_peer_info(domain, now);
		if not info or info.error then return nil; end
		return info.takes_part;
	end

	-- Is a fetch of `domain`'s disco#info under way?
	local function is_fetching(domain) return fetching[domain] ~= nil; end

	-- Forget what is cached about `domain` (its keys failed to verify: fetch them again).
	local function forget(domain) peer_infos[domain] = nil; end

	return {
		fetch_peer_info = fetch_peer_info,
		cached_peer_info = cached_peer_info,
		is_remembered = is_remembered,
		takes_part_of = takes_part_of,
		is_fetching = is_fetching,
		forget = forget,
		REFETCH_AFTER = REFETCH_AFTER,
	};
end
