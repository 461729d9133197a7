-- What this server knows about a session's TLS connection and authentication (implementation report,
-- "Where the TLS facts come from"), and the views it states about a session (XEP "The path Element":
-- method,result,tls,spki): its c2s view of a local client's stream (H1 or H3) and its s2s view
-- of a link to or from a remote domain.  Also records, at authentication, the SASL channel
-- binding the server checked.  Views are plain tables never changed once made: the same table
-- serves every message of a session, and its text is computed once.
local hashes = require "util.hashes";
local base64 = require "util.encodings".base64;

return function (tp)
	local core = tp.core;

	local TLS_VERSIONS = { ["TLSv1.3"] = "1.3", ["TLSv1.2"] = "1.2" };

	-- The DER of a PEM block labelled `label` in `pem`.
	local function pem_der(pem, label)
		local body = type(pem) == "string" and pem:match("%-%-%-%-%-BEGIN " .. label .. "%-%-%-%-%-(.-)%-%-%-%-%-END");
		return body and base64.decode((body:gsub("%s", ""))) or nil;
	end

	-- The pin of a certificate: base64 SHA-256 of its DER SubjectPublicKeyInfo.
	local function spki_of(cert)
		if not cert or not cert.pubkey then return nil; end
		local der = pem_der(cert:pubkey(), "PUBLIC KEY");
		return der and base64.encode(hashes.sha256(der)) or nil;
	end

	-- A view's spki: the first 12 bytes of a pin's SHA-256, base64 without padding (16 characters).
	local function short_spki(pin)
		local raw = pin and base64.decode(pin);
		if not raw or #raw ~= 32 then return nil; end
		return core.b64_raw(raw:sub(1, core.SPKI_BYTES));
	end

	-- Does `cert` match one TLSA record (RFC 6698: selector 0 the certificate, 1 the SPKI;
	-- matching type 0 exact, 1 SHA-256, 2 SHA-512)?
	local function tlsa_matches(record, cert)
		local der;
		if record.select == 0 then der = cert.pem and pem_der(cert:pem(), "CERTIFICATE");
		elseif record.select == 1 then der = cert.pubkey and pem_der(cert:pubkey(), "PUBLIC KEY"); end
		if not der then return false; end
		if record.match == 0 then return der == record.data; end
		if record.match == 1 then return hashes.sha256(der) == record.data; end
		if record.match == 2 then return hashes.sha512(der) == record.data; end
		return false;
	end

	-- Whether an outgoing link's certificate was verified by DANE: Prosody (use_dane) passed the
	-- TLSA records of the target to OpenSSL only when every lookup was DNSSEC-secure
	-- (net.resolvers.basic sets extra.tlsa), and OpenSSL then accepts the chain only on a TLSA
	-- match.  LuaSec does not say which record matched, so this checks again: "dane-ee" when a
	-- usage 3 record matches the peer's certificate, "dane-ta" when a usage 2 record matches a
	-- certificate of the peer's chain above it; nil otherwise (no TLSA, or only PKIX-TA/EE).
	local function dane_method(session, cert)
		local conn = session.conn;
		local extra = type(conn) == "table" and rawget(conn, "extra");
		local tlsa = type(extra) == "table" and rawget(extra, "tlsa");
		if type(tlsa) ~= "table" or not tlsa[1] or not cert then return nil; end
		if session.cert_chain_status ~= "valid" then return nil; end -- OpenSSL's DANE check failed
		for _, record in ipairs(tlsa) do
			if record.use == 3 and tlsa_matches(record, cert) then return "dane-ee"; end
		end
		local sock = conn.socket and conn:socket();
		local chain = sock and sock.getpeerchain and sock:getpeerchain();
		if type(chain) == "table" and session.cert_identity_status == "valid" then
			for _, record in ipairs(tlsa) do
				if record.use == 2 then
					for i = 2, #chain do
						if tlsa_matches(record, chain[i]) then return "dane-ta"; end
					end
				end
			end
		end
		return nil;
	end

	-- The certificate this server presents on a session.  LuaSec (1.2) cannot report the local
	-- certificate of a connection, so it comes from the TLS configuration mod_tls used for the
	-- session's STARTTLS (session.ssl_cfg), else from the host's own `ssl` option.  Its spki is
	-- cached per file and modification time (certificates are renewed in place).
	local spki_files = {};
	local function local_certificate_spki(session)
		local cfg = session.ssl_cfg;
		local path = type(cfg) == "table" and cfg.certificate;
		if not path then
			local host_ssl = module:get_option("ssl");
			path = type(host_ssl) == "table" and host_ssl.certificate or nil;
		end
		if type(path) ~= "string" then return nil; end
		local lfs = require "lfs";
		local mtime = lfs.attributes(path, "modification");
		local known = spki_files[path];
		if known and known.mtime == mtime then return known.spki; end
		local f = io.open(path, "r");
		if not f then return nil; end
		local pem = f:read("a");
		f:close();
		local ok, cert = pcall(require "ssl.x509".load, pem); -- the first certificate: the leaf
		local spki = ok and spki_of(cert) or nil;
		spki_files[path] = { mtime = mtime, spki = spki };
		if not spki then module:log("warn", "cannot read the certificate in %s; views will lack 'spki'", path); end
		return spki;
	end

	-- { tls, local_spki, peer_spki } of a session's stream (spki as a view writes it), computed
	-- once per session (a TLS session's facts do not change; a resumed one gets them anew).
	local function tls_facts(session)
		local facts = session.trust_path_tls;
		if facts and session.trust_path_tls_conn == session.conn then return facts; end
		local conn = session.conn;
		local sock = session.secure and conn and conn.socket and conn:socket();
		local info = sock and sock.info and sock:info();
		if type(info) ~= "table" then
			facts = { tls = "none" };
		else
			-- TLS older than 1.2 is not a value the XEP defines; report it as no usable TLS
			facts = { tls = TLS_VERSIONS[info.protocol] or "none" };
			local local_pin;
			if sock.getlocalcertificate then local_pin = spki_of(sock:getlocalcertificate()); end
			facts.local_spki = short_spki(local_pin or local_certificate_spki(session));
			if sock.getpeercertificate then facts.peer_spki = short_spki(spki_of(sock:getpeercertificate())); end
		end
		session.trust_path_tls, session.trust_path_tls_conn = facts, session.conn;
		return facts;
	end


	-- Views are plain tables that are never changed once made: the same table serves every
	-- message of a session, and trust_path_core encodes it for the signing input only once.

	-- This server's view of a local client's c2s stream (TLS server side): H1 or H3.  Its
	-- method says what binds the client's own statements to this channel: the SASL channel
	-- binding this server checked (tls-unique in Prosody 0.12, SCRAM-*-PLUS over TLS 1.2), else
	-- "device" (the key the client announced was registered on an earlier connection), else
	-- "sasl" (authenticated without binding).
	-- What each c2s connection authenticated with (SASL mechanism, the channel binding checked),
	-- by connection: a session resumed (XEP-0198) over a new connection takes the new one's.
	local auth_by_conn = setmetatable({}, { __mode = "k" });

	local function c2s_view(session)
		local view = session.trust_path_view;
		if view and session.trust_path_view_conn == session.conn then return view; end
		-- the session goes on over another connection (resumed, before smacks-hibernation-end
		-- told us, e.g. while mod_smacks resends its queue): that connection's authentication
		local auth = session.conn and session.trust_path_auth_conn ~= session.conn and auth_by_conn[session.conn];
		if auth then
			session.trust_path_cb, session.trust_path_sasl, session.trust_path_auth_conn = auth.cb, auth.sasl, session.conn;
		end
		local facts = tls_facts(session);
		local method = session.trust_path_cb or (session.trust_path_device and "device") or "sasl";
		view = { method = method, result = "pass", tls = facts.tls, spki = facts.tls ~= "none" and facts.local_spki or nil };
		if facts.tls ~= "none" and not view.spki then
			view.result = "none"; -- no spki to state: the view cannot bind the hop's end point
			view.tls, view.spki = "none", nil;
		end
		if session.full_jid then -- its facts do not change once bound, until the connection does
			session.trust_path_view, session.trust_path_view_conn = view, session.conn;
		end
		return view;
	end

	-- This server's view of an s2s link to/from `domain`.  On a stream we opened we are the TLS
	-- client: the spki is the certificate we saw, the method how we checked it.  On a stream
	-- the peer opened we are the TLS server: the spki is our own certificate, the method how
	-- the peer authenticated (recorded in s2s-check-certificate and s2s-authenticated, which
	-- also forget the views made so far).
	local function s2s_view(session, domain)
		local views = session.trust_path_views;
		if not views then views = {}; session.trust_path_views = views; end
		local view = views[domain];
		if view then return view; end
		local facts = tls_facts(session);
		if session.direction == "outgoing" then
			local decided = session.trust_path_out;
			if not decided then -- link set up before this module was loaded: use Prosody's own checks
				local valid = session.cert_chain_status == "valid" and session.cert_identity_status == "valid";
				decided = valid and { method = "pkix", result = "pass" } or { method = "none", result = "none" };
			end
			view = { tls = facts.tls, spki = facts.tls ~= "none" and facts.peer_spki or nil, method = decided.method,
				result = decided.result, reason = decided.reason };
		else
			local auth = session.trust_path_in and session.trust_path_in[domain];
			view = { tls = facts.tls, spki = facts.tls ~= "none" and facts.local_spki or nil,
				method = auth and auth.method or "dialback", result = "pass" };
		end
		if view.tls ~= "none" and not view.spki then view.tls = "none"; end -- a view over TLS states the key
		views[domain] = view;
		return view;
	end

	-- At authentication (authentication-success, which mod_saslauth fires while the session
	-- still holds its SASL handler): the mechanism, and the channel binding type util.sasl.scram
	-- checked.  Prosody 0.12's SCRAM keeps the type the client asked for ('p=tls-unique') in
	-- handler.state.gs2_cbind_name, and fails the authentication when the binding data differs,
	-- so after success that name is a binding this server checked.
	local function record_authentication(session)
		local handler = session.sasl_handler;
		session.trust_path_cb, session.trust_path_view = nil, nil;
		if handler and type(handler.selected) == "string" then
			session.trust_path_sasl = handler.selected:upper();
			local cb = type(handler.state) == "table" and handler.state.gs2_cbind_name;
			if core.CHANNEL_BINDINGS[cb] then session.trust_path_cb = cb; end
		end
		if session.conn then
			auth_by_conn[session.conn] = { cb = session.trust_path_cb, sasl = session.trust_path_sasl };
			session.trust_path_auth_conn = session.conn;
		end
	end

	-- Stream resumption (XEP-0198, smacks-hibernation-end): the hibernated session goes on over
	-- the new connection, which authenticated afresh: its TLS facts and channel binding are the
	-- new connection's.
	local function on_resumed(new_session, original)
		original.trust_path_tls, original.trust_path_view, original.trust_path_tls_conn, original.trust_path_view_conn = nil, nil, nil, nil;
		original.trust_path_cb, original.trust_path_sasl = new_session.trust_path_cb, new_session.trust_path_sasl;
		original.trust_path_auth_conn = original.conn;
	end

	return {
		spki_of = spki_of,
		dane_method = dane_method,
		short_spki = short_spki,
		tls_facts = tls_facts,
		c2s_view = c2s_view,
		s2s_view = s2s_view,
		record_authentication = record_authentication,
		on_resumed = on_resumed,
	};
end
