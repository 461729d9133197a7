-- Certificate pins of remote servers (trust_path_s2s_pins), in both directions, and the record
-- of how each s2s link was verified: pin, DANE (dane-ee / dane-ta, from Prosody's use_dane),
-- PKIX or nothing on an outgoing link; pin, PKIX or dialback on an incoming one.  A pinned
-- domain whose certificate matches no pin is refused, and what was queued for it bounces.
return function (tp)
	local host, pins = tp.host, tp.options.pins;
	local tls, refusals = tp.tls, tp.refusals;
	local spki_of, dane_method, s2s_view = tls.spki_of, tls.dane_method, tls.s2s_view;
	local bounce_queue = refusals.bounce_queue;

	-- Which local host a session belongs to (s2s-check-certificate is a global event).
	local function local_host_of(session)
		if session.direction == "outgoing" then return session.from_host; end
		return session.to_host;
	end

	-- The last outgoing link to each domain that failed its certificate check: its <out/> view
	-- (result='fail') and a sequence number, for pre-flight queries waiting for that link.
	local failed_links = {}; -- domain -> { seq, view }
	local failure_seq = 0;

	-- s2s-check-certificate (a global event): pins, and the record of why each s2s link of this
	-- host is trusted.  Returns true (accept), false (refuse) or nil (Prosody decides).
	local function check_certificate(event)
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
	end

	-- How the remote server authenticated an incoming stream: a certificate checked by pin or
	-- PKIX (whether it then used SASL EXTERNAL or dialback), else dialback alone.
	local function record_s2s_authentication(event)
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
	end

	-- The <out/> view of the last failed outgoing link to `domain` if it failed after `seq`.
	local function failed_since(domain, seq)
		local failed = failed_links[domain];
		return failed and failed.seq > seq and failed.view or nil;
	end
	local function failures() return failure_seq; end

	return {
		check_certificate = check_certificate,
		record_s2s_authentication = record_s2s_authentication,
		failed_since = failed_since,
		failures = failures,
	};
end
