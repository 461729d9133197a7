-- Remote domains: whether each takes part and its published keys, with the key source that
-- says how far they can be trusted (XEP "Discovery and Keys"), and the remembered policy (a domain seen
-- taking part is remembered for trust_path_remember_days, so that a message from it without
-- its record is "stripped", not "absent").
--
-- Keys come from the domain's disco#info, asked for over this server's own outgoing s2s link to
-- it (module:send_iq routes through mod_s2s), so they are as trustworthy as that link: the key
-- source is s2s-pin, s2s-dane or s2s-pkix after how this server checked the link's certificate,
-- s2s-none when it did not.  Keys the operator lists (trust_path_peer_keys) are "config".  They
-- are kept for the domain's cache-for (at most a day), a failed fetch for a minute.
--
-- At the same time the domain's _trust-path TXT records are looked up (trust_path_dnssec_keys,
-- on by default) with Prosody's resolver (net.adns, which is net.unbound when lua-unbound is
-- installed).  Records the resolver validated (answer.secure, the flag Prosody's own DANE code
-- requires of TLSA records) are the domain's keys, with key source "dnssec", and the disco#info
-- form does not add to them: a domain that publishes its keys in DNSSEC names all of them there,
-- so a key announced only over a weaker link is unknown.  Records that are not validated
-- (insecure, bogus, or a resolver without DNSSEC) are ignored.
--
-- And the domain's POSH document (trust_path_posh_keys, on by default) is fetched from
-- https://<domain>/.well-known/posh/trust-path.json with Prosody's HTTPS client, which checks
-- the certificate chain against the configured CAs and that the certificate names the domain
-- (net.http: getpeerverification, util.x509.verify_identity); anything else counts as no
-- document.  Its keys have key source "posh" (as good as a CA).  Of what was found, the domain's
-- keys are: the DNSSEC-validated records, else the disco#info set over a link checked by a pin
-- or DANE, else the POSH document, else the disco#info set (XEP "Discovery and Keys").
--
-- A fetch that fails (no answer, unreachable) is not evidence against a key: the domain's keys
-- are "unavailable" (chain fail.keys-unavailable, which the recipient shows as unknown) and are
-- fetched again, on the next message, once the fetch interval (key_fetch_interval) has passed.
local st = require "util.stanza";
local new_id = require "util.id".medium;
local promise = require "util.promise";
local idna_to_ascii = require "util.encodings".idna.to_ascii;
local cache = require "util.cache";
local json = require "util.json";
local timer = require "util.timer";

return function (tp)
	local core, host = tp.core, tp.host;
	local remember_seconds, peer_keys = tp.options.remember_seconds, tp.options.peer_keys;
	local dnssec_enabled, posh_enabled = tp.options.dnssec_keys, tp.options.posh_keys;
	local s2s_view = tp.tls.s2s_view;
	local NS_DISCO_INFO = core.NS_DISCO_INFO;

	-- A domain's keys are fetched at most every KEY_FETCH_INTERVAL seconds, whatever its
	-- cache-for says, and so is a refetch for an unknown key (XEP "Discovery and Keys").
	-- A failed fetch is tried again after the same interval (on the next message): a short outage
	-- must not leave a domain's messages without keys for long.
	local MAX_CACHE, REFETCH_AFTER, POSH_TIMEOUT, POSH_MAX_BYTES = 86400, core.KEY_FETCH_INTERVAL, 10, 65536;
	-- What is kept per remote domain is bounded (trust_path_peer_domains): the least recently used
	-- domain is forgotten first (its keys are fetched again, its remembered policy read again from
	-- the store), so that queries for ever new domains cannot grow this server's memory.
	local peer_domains = tp.options.limits.peer_domains;
	local last_noted = 0;
	local function on_evict(domain)
		local now = os.time();
		if now - last_noted < 60 then return; end -- say it at most once a minute
		last_noted = now;
		module:log("info", "keeping the trust-path state of at most %d remote domains (trust_path_peer_domains): forgetting %s and others "
			.. "used least recently", peer_domains, domain);
	end
	local peer_infos = cache.new(peer_domains, on_evict); -- domain -> { takes_part, keys, key_source, max_skew, cache_for, fetched, error }
	local fetching = {};        -- domain -> promise of peer info (bounded by the fetches under way)
	local remembered_store = module:open_store("trust_path_peers");
	local remembered = cache.new(peer_domains, on_evict); -- domain -> until (epoch seconds), mirror of remembered_store

	local function remember(domain, now)
		local until_time = now + remember_seconds;
		-- write through at most once an hour per domain
		if (remembered:get(domain) or 0) < until_time - 3600 then
			remembered:set(domain, until_time);
			remembered_store:set(domain, { until_time = until_time });
		end
	end

	local function is_remembered(domain, now)
		if peer_keys[domain] then return true; end
		local until_time = remembered:get(domain);
		if until_time == nil then
			local data = remembered_store:get(domain);
			until_time = data and data.until_time or 0;
			remembered:set(domain, until_time);
		end
		return now <= until_time;
	end

	local LINK_SOURCE = { pin = "s2s-pin", ["dane-ee"] = "s2s-dane", ["dane-ta"] = "s2s-dane", pkix = "s2s-pkix" };
	-- The key source of keys fetched from `domain` now: how this server checked the link the
	-- answer came over (its outgoing link; a bidirectional incoming one is rated by how the peer
	-- authenticated on it).
	local function link_key_source(domain)
		local session = prosody.hosts[host].s2sout[domain];
		if not session or (session.type ~= "s2sout" and session.type ~= "s2sin") then return "s2s-none"; end
		local view = s2s_view(session, domain);
		if view.result ~= "pass" or view.tls == "none" then return "s2s-none"; end
		return LINK_SOURCE[view.method] or "s2s-none";
	end

	-- A promise of the keys `domain` publishes in validated _trust-path TXT records, or of nil
	-- (none, not validated, not looked up); never rejected.
	local function dnssec_keys(domain)
		local ascii = dnssec_enabled and idna_to_ascii(domain);
		if not ascii then return promise.resolve(nil); end
		local ok, resolver = pcall(function () return require "net.adns".resolver(); end);
		if not ok or not resolver or not resolver.lookup_promise then return promise.resolve(nil); end
		local qname = "_trust-path." .. ascii;
		return resolver:lookup_promise(qname, "TXT"):next(function (answer)
			if not answer or answer.bogus or not answer.secure then
				if answer and (answer.bogus or #answer > 0) then
					module:log("info", "%s TXT: not DNSSEC-validated (%s); ignored", qname, tostring(answer.bogus or "insecure"));
				end
				return nil;
			end
			local texts, tp1 = {}, false;
			for _, rr in ipairs(answer) do
				local text = type(rr.txt) == "table" and table.concat(rr.txt) or tostring(rr.txt or "");
				texts[#texts + 1] = text;
				tp1 = tp1 or text:find("^%s*v%s*=%s*tp1%s*;") ~= nil or text:find("^%s*v%s*=%s*tp1%s*$") ~= nil;
			end
			if not tp1 then return nil; end
			local keys, err = core.try(core.read_txt_records, texts, domain);
			if not keys then
				module:log("warn", "%s: %s; ignoring its TXT records", domain, err.text);
				return nil;
			end
			module:log("debug", "%s: %d key(s) in DNSSEC-validated TXT records", domain, #keys);
			return keys;
		end, function (err)
			module:log("debug", "%s TXT lookup failed: %s", qname, tostring(err));
			return nil;
		end);
	end

	-- What is known of a domain whose keys could not be fetched (the fetch failed, or did not
	-- answer in time: held.lib decides held messages with it): its keys are unavailable, which
	-- is no evidence against any key (chain fail.keys-unavailable, unknown at the recipient).
	local function unavailable_info() return { takes_part = false, fetched = os.time(), error = true, unavailable = true }; end

	-- A promise of { keys, expires } from `domain`'s POSH document, or of nil (none, not
	-- fetched, not valid); never rejected.  net.http's default client verifies the certificate
	-- (chain to the configured CAs, and that it names the domain) before it sends the request.
	local function posh_keys(domain)
		local ascii = posh_enabled and idna_to_ascii(domain);
		if not ascii then return promise.resolve(nil); end
		local url = "https://" .. ascii .. core.POSH_PATH;
		return promise.new(function (resolve)
			local done = false;
			local function finish(value) if not done then done = true; resolve(value); end end
			timer.add_task(POSH_TIMEOUT, function () finish(nil); end);
			local ok, req = pcall(require "net.http".request, url, { suppress_errors = true, headers = { Accept = "application/json" } },
				function (body, code)
					if code ~= 200 then
						-- 0: no connection, or a certificate that is not valid for the domain (body says which)
						module:log(code == 0 and "info" or "debug", "%s: no POSH document (%s)", domain,
							code == 0 and tostring(body) or ("HTTP " .. tostring(code)));
						return finish(nil);
					end
					local document = json.decode(body or "");
					local keys, expires = core.try(core.read_posh_document, document, domain);
					if not keys then
						module:log("warn", "%s: %s; ignoring its POSH document", domain, expires and expires.text or "not JSON");
						return finish(nil);
					end
					module:log("debug", "%s: %d key(s) in its POSH document", domain, #keys);
					finish({ keys = keys, expires = expires });
				end);
			if not ok then module:log("debug", "%s: POSH fetch failed: %s", domain, tostring(req)); return finish(nil); end
			-- net.http reads the limit from the request when the answer starts (default 10 MB)
			if type(req) == "table" then req.body_size_limit = POSH_MAX_BYTES; end
		end);
	end

	local STRONG_LINK = { ["s2s-pin"] = true, ["s2s-dane"] = true };

	-- A promise of the peer info of `domain` (fetched once at a time per domain).
	local function fetch_peer_info(domain)
		if fetching[domain] then return fetching[domain]; end
		local from_dns = dnssec_keys(domain);
		local from_posh = posh_keys(domain);
		local iq = st.iq({ type = "get", to = domain, from = host, id = "tp-disco-" .. new_id() })
			:tag("query", { xmlns = NS_DISCO_INFO });
		local p = module:send_iq(iq, nil, 10):next(function (event)
			local query = event.stanza:get_child("query", NS_DISCO_INFO);
			local info, err = core.try(core.read_disco_info, query, domain);
			if not info then
				module:log("warn", "%s: %s; treating it as not publishing usable keys", domain, err.text);
				info = { takes_part = true, keys = nil, error = true };
			end
			info.fetched = os.time();
			info.key_source = link_key_source(domain);
			if info.takes_part then remember(domain, info.fetched); end
			module:log("debug", "%s %s: %d key(s) over a link rated %s", domain, info.takes_part and "takes part" or "does not take part",
				info.keys and #info.keys or 0, info.key_source);
			return info;
		end, function (err)
			module:log("info", "disco#info of %s failed (%s); its keys are unavailable, asking again in %ds at the earliest", domain,
				tostring(err and err.text or err), REFETCH_AFTER);
			return unavailable_info();
		end);
		p = promise.all({ from_dns, p, from_posh }):next(function (results)
			local keys, info, posh = results[1], results[2], results[3];
			if keys then
				-- validated DNS records: the domain takes part and these are its keys
				info = { takes_part = true, keys = keys, key_source = "dnssec", fetched = info.fetched,
					max_skew = info.max_skew, cache_for = info.cache_for };
				remember(domain, info.fetched);
			elseif posh and not (info.keys and STRONG_LINK[info.key_source]) then
				-- a POSH document names all the domain's keys; only a pinned or DANE link beats it
				info = { takes_part = true, keys = posh.keys, key_source = "posh", fetched = info.fetched,
					max_skew = info.max_skew, cache_for = posh.expires };
				remember(domain, info.fetched);
			end
			peer_infos:set(domain, info);
			fetching[domain] = nil;
			module:log("info", "fetched the trust-path keys of %s: %s", domain,
				info.keys and ("%d, key source %s"):format(#info.keys, info.key_source) or "none");
			return info;
		end, function (err)
			fetching[domain] = nil;
			module:log("error", "fetching the keys of %s failed: %s", domain, tostring(err));
			return unavailable_info();
		end);
		fetching[domain] = p;
		return p;
	end

	local function cached_peer_info(domain, now)
		local configured = peer_keys[domain];
		if configured then
			return { takes_part = true, keys = configured, key_source = "config", fetched = now, configured = true };
		end
		local info = peer_infos:get(domain);
		if not info then return nil; end
		local ttl = info.error and REFETCH_AFTER or math.min(info.cache_for or core.DEFAULT_CACHE_FOR, MAX_CACHE);
		ttl = math.max(ttl, REFETCH_AFTER); -- a cache-for of 0 must not mean a fetch per message
		if now - info.fetched < ttl then return info; end
		return nil;
	end

	-- 'takes-part': true, false, or nil when it could not be found out.
	local function takes_part_of(domain, now)
		if is_remembered(domain, now) then return true; end
		local info = cached_peer_info(domain, now);
		if not info or (info.error and not info.takes_part) then return nil; end
		return info.takes_part;
	end

	-- Is a fetch of `domain`'s disco#info under way?
	local function is_fetching(domain) return fetching[domain] ~= nil; end

	-- May the keys of `domain` be fetched again (a record named a key not among them)?  Once,
	-- and not more often than every REFETCH_AFTER seconds: a peer cannot make this server fetch
	-- on every message.
	local function may_refetch(info, now)
		return not info.configured and now - info.fetched >= REFETCH_AFTER;
	end

	-- Forget what is cached about `domain` (fetch its keys again).
	local function forget(domain) peer_infos:set(domain, nil); end

	return {
		fetch_peer_info = fetch_peer_info,
		cached_peer_info = cached_peer_info,
		is_remembered = is_remembered,
		takes_part_of = takes_part_of,
		is_fetching = is_fetching,
		may_refetch = may_refetch,
		forget = forget,
		unavailable_info = unavailable_info,
	};
end
