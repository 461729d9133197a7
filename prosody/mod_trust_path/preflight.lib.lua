-- The pre-flight query (XEP "Pre-flight Query"): a local client asks how this server's outgoing
-- link to a remote domain is verified now (<preflight domain='b.example'/>; the answer's 'link'
-- is the view this server would write as the out-view of that hop), and whether that domain
-- takes part.  The link is set up if needed, for PREFLIGHT_TIMEOUT seconds at most.
local st = require "util.stanza";
local jid_lib = require "util.jid";
local throttle = require "util.throttle";

return function (tp)
	local core, host = tp.core, tp.host;
	local peers, pins, s2s_view = tp.peers, tp.pins, tp.tls.s2s_view;

	local PREFLIGHT_TIMEOUT = 10;

	-- A pre-flight query for a domain this server knows nothing about makes it fetch that
	-- domain's keys (and connect to it): at most trust_path_preflight_fetches such fetches a
	-- minute for the whole host, so that a client asking about ever new domains cannot make it
	-- open connections and keep state without end.  Beyond that a query is answered at once with
	-- what is known (the XEP allows an answer without 'link').
	local fetch_budget = throttle.create(tp.options.limits.preflight_fetches, 60);
	local last_noted = 0;
	local function may_fetch(domain)
		if peers.is_fetching(domain) or fetch_budget:poll(1) then return true; end
		local now = os.time();
		if now - last_noted >= 60 then
			last_noted = now;
			module:log("info", "pre-flight queries ask for more than %d new domains a minute (trust_path_preflight_fetches); "
				.. "answering the rest with what is known", tp.options.limits.preflight_fetches);
		end
		return false;
	end

	-- The established outgoing link to `domain`, as route/remote would use it.
	local function established_link(domain)
		local session = prosody.hosts[host].s2sout[domain];
		if session and (session.type == "s2sout" or session.type == "s2sin") then return session; end
		return nil;
	end

	local function handle_preflight(event)
		local origin, stanza = event.origin, event.stanza;
		if origin.type ~= "c2s" or origin.host ~= host then return; end -- only this host's own clients
		local element = stanza.tags[1];
		local given = element.attr.domain;
		local node, domain, resource;
		if type(given) == "string" and given ~= "" and #given <= core.MAX_DOMAIN_CHARS then node, domain, resource = jid_lib.prepped_split(given, true); end
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
				out_view = failures_before and pins.failed_since(domain, failures_before);
			end
			local result = core.preflight_answer(domain, peers.takes_part_of(domain, now), out_view);
			if out_view and not result.link then
				module:log("info", "pre-flight for %s: leaving out the view of the link (%s)", domain,
					tostring(core.view_problem(out_view)));
			end
			module:log("debug", "pre-flight of %s for %s: takes-part %s, link %s", domain, tostring(origin.full_jid),
				tostring(result.takes_part), result.link and core.view_text(result.link) or "none");
			local reply = st.reply(stanza);
			reply:add_direct_child(core.preflight_element(result));
			local ok, err = pcall(origin.send, reply);
			if not ok then module:log("debug", "pre-flight answer to %s not sent: %s", tostring(origin.full_jid), tostring(err)); end
		end
		local now = os.time();
		if established_link(domain) and (peers.cached_peer_info(domain, now) or peers.is_remembered(domain, now)) then
			answer(nil);
			return true;
		end
		-- Ask for its disco#info: this also makes mod_s2s set up the link if there is none.  The
		-- answer (or its failure: a link that fails its check bounces the query) says when the
		-- link is up or has failed.
		if not may_fetch(domain) then
			answer(nil);
			return true;
		end
		local failures_before = pins.failures();
		peers.fetch_peer_info(domain):next(function () answer(failures_before); end);
		module:add_timer(PREFLIGHT_TIMEOUT, function () answer(failures_before); end);
		return true;
	end

	return { handle_preflight = handle_preflight, established_link = established_link };
end
