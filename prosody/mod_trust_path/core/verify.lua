-- Checking a received path and computing the verdict (XEP "At the Recipient Client", steps 3
-- to 6, and "Hop Strength and Verdict"; reference/trustpath/core/verify.py, with the same step
-- names: check_replay, check_anchor, walk_backwards, reconstruct_hops, check_clock_skew,
-- evaluate_hop, overall_verdict).
local M = ...;

local FAILED, UNVERIFIED, UNKNOWN, CA, STRONG = M.FAILED, M.UNVERIFIED, M.UNKNOWN, M.CA, M.STRONG;
local KEY_SOURCE_STRENGTH = M.KEY_SOURCE_STRENGTH;
local ATTESTATION_FAILURES, CHAIN_FAILURES = M.ATTESTATION_FAILURES, M.CHAIN_FAILURES;
local is_client_jid, bare = M.is_client_jid, M.bare;

local function missing_reason(in_view)
	if in_view.chain == "absent" then return "not-participating"; end
	if in_view.chain == "stripped" then return "stripped"; end
	if in_view.chain == "fail" then return in_view["chain-reason"] or "chain-broken"; end
	return "stripped"; -- the signer checked a chain that is no longer here
end

local function hop(t) return t; end

local function described_hops(atts, anchor, anchored, archived, room)
	local hops = {};
	local n = #atts;
	if n == 0 then
		hops[1] = hop { sender = anchor.server, receiver = anchor.me, down = anchor.view,
			missing = (anchor.takes_part and not room) and "stripped" or "not-participating" };
		return hops;
	end
	local first = atts[1];
	if first.in_view then
		-- a first attestation with 'prev-key' vouched for one that is no longer there
		local missing = first.prev_key and "stripped" or missing_reason(first.in_view);
		hops[#hops + 1] = hop { sender = first.in_view.peer, receiver = first.signer, down = first.in_view,
			down_index = 1, missing = missing };
	end
	for i = 1, n - 1 do
		local a, b = atts[i], atts[i + 1];
		if not b.in_view then
			hops[#hops + 1] = hop { sender = a.signer, receiver = b.signer, up = a.out_view, up_index = i, missing = "chain-broken" };
		elseif a.out_view and a.out_view.peer == b.signer and b.in_view.peer == a.signer then
			hops[#hops + 1] = hop { sender = a.signer, receiver = b.signer, up = a.out_view, down = b.in_view,
				up_index = i, down_index = i + 1 };
		elseif a.out_view and b.in_view.peer == a.out_view.peer then
			local gap = b.in_view.peer;
			local missing = missing_reason(b.in_view);
			hops[#hops + 1] = hop { sender = a.signer, receiver = gap, up = a.out_view, up_index = i, missing = missing };
			hops[#hops + 1] = hop { sender = gap, receiver = b.signer, down = b.in_view, down_index = i + 1, missing = missing };
		else
			hops[#hops + 1] = hop { sender = b.in_view.peer, receiver = b.signer, down = b.in_view, down_index = i + 1,
				missing = "chain-broken" };
		end
	end
	local last = atts[n];
	if anchored then
		-- delivered to this very resource, or (read from the archive) to another of the account
		local delivered_here = last.out_view ~= nil and (last.out_view.peer == anchor.me
			or (archived and bare(last.out_view.peer) == bare(anchor.me)));
		local broken = not delivered_here;
		hops[#hops + 1] = hop { sender = anchor.server, receiver = anchor.me, up = last.out_view, down = anchor.view,
			up_index = n, missing = broken and "chain-broken" or nil };
	else
		local missing = anchor.takes_part and "stripped" or "not-participating";
		if last.out_view and last.out_view.peer == anchor.server then
			hops[#hops + 1] = hop { sender = last.signer, receiver = anchor.server, up = last.out_view, up_index = n, missing = missing };
		end
		hops[#hops + 1] = hop { sender = anchor.server, receiver = anchor.me, down = anchor.view, missing = missing };
	end
	return hops;
end

-- Step 5: rebuild the hops from the views' peers; a node that did not sign leaves a gap.  The
-- path always starts at the message's sender: hops before the first described one are added as
-- not participating, so H1 is always the sender's hop.
function M.reconstruct_hops(atts, anchor, anchored, origin, archived, room)
	local hops = described_hops(atts, anchor, anchored, archived, room);
	local first = hops[1].sender;
	if first ~= origin then
		local origin_domain = bare(origin):gsub("^.*@", "");
		local before = {};
		if origin_domain ~= origin then
			before[1] = hop { sender = origin, receiver = origin_domain, missing = "not-participating" };
		end
		if origin_domain ~= first then
			before[#before + 1] = hop { sender = #before > 0 and origin_domain or origin, receiver = first, missing = "not-participating" };
		end
		for i = #before, 1, -1 do table.insert(hops, 1, before[i]); end
	end
	return hops;
end

local function role(h, index)
	if is_client_jid(h.sender) and index == 1 then return "sender-c2s"; end
	if is_client_jid(h.receiver) then return "recipient-c2s"; end
	if is_client_jid(h.sender) then return "c2s"; end
	return "s2s";
end


-- Step 6 for one hop: the first failure that applies, in the XEP's order (an attestation that
-- cannot be believed, a time, a view's own failure, the signer's chain check, a missing view,
-- end-point binding), else the weakest of its views' methods, capped by one view alone and by
-- the key source.
function M.evaluate_hop(k, h, atts, status)
	local label = "H" .. k;
	local up_ok = h.up ~= nil and h.up_index ~= nil and status[h.up_index] == "ok";
	local down_is_own = h.down ~= nil and h.down_index == nil;
	local down_ok = h.down ~= nil and (down_is_own or status[h.down_index] == "ok");
	local up = up_ok and h.up or nil;
	local down = down_ok and h.down or nil;
	local views = {};
	if up then views[#views + 1] = up; end
	if down then views[#views + 1] = down; end
	local client, server;
	for _, v in ipairs(views) do
		if v.side == "client" and not client then client = v; end
		if v.side == "server" and not server then server = v; end
	end
	local s2s = not is_client_jid(h.sender) and not is_client_jid(h.receiver);
	local key_source;
	if h.down_index and h.down and h.down["key-source"] then
		key_source = h.down["key-source"];
	elseif h.down_index and atts[h.down_index].prev_key and h.up_index then
		key_source = "none"; -- vouched without saying where the key came from
	elseif down_is_own and h.up_index then
		key_source = "anchor";
	end
	local method = (client and server) and (client.method .. " / " .. server.method)
		or (client and client.method) or (server and server.method) or "unknown";
	local function report(result, reason, strength)
		return { label = label, role = role(h, k), sender = h.sender, receiver = h.receiver, client_view = client,
			server_view = server, method = method, result = result, reason = reason, strength = strength,
			key_source = key_source };
	end

	if h.up_index and ATTESTATION_FAILURES[status[h.up_index] or ""] then
		return report("fail", status[h.up_index], FAILED);
	end
	if h.up_index and status[h.up_index] == "key-unknown" then return report("unknown", "key-unknown", UNKNOWN); end
	if h.problem then return report("fail", h.problem, FAILED); end
	for _, v in ipairs(views) do
		if v.result == "fail" then return report("fail", v.reason or "validation-failure", FAILED); end
	end
	if down and down.chain == "fail" and h.down_index and not h.missing then
		return report("fail", down["chain-reason"] or "chain-broken", FAILED);
	end
	if h.missing and h.missing ~= "not-participating" then return report("fail", h.missing, FAILED); end
	if #views == 2 then
		if not client or not server then return report("fail", "chain-broken", FAILED); end
		if client.spki ~= server.spki then return report("fail", "key-mismatch", FAILED); end
	end

	local strength, reason = STRONG, nil;
	for _, v in ipairs(views) do
		if v.tls == "none" then strength, reason = UNVERIFIED, "starttls-not-supported"; break; end
		if v.side == "server" and not s2s then
			-- a SASL mechanism: the client's check of the server decides
			if v.result ~= "pass" then strength, reason = math.min(strength, UNVERIFIED), "not-verified"; end
		else
			local value = v.result == "pass" and M.method_strength(v.method) or UNVERIFIED;
			if value < strength then
				strength, reason = value, M.method_reason(v.method);
			end
		end
	end
	if #views < 2 and strength > UNKNOWN then
		-- one end's statement alone cannot show a man in the middle
		strength = UNKNOWN;
		reason = h.missing == "not-participating" and "not-participating" or "unvouched";
	end
	if key_source and key_source ~= "anchor" and strength > UNVERIFIED then
		local cap = KEY_SOURCE_STRENGTH[key_source];
		if cap and cap < strength then strength, reason = cap, "weak-key-source"; end
	end
	return report(M.HOP_RESULT[strength], reason, strength);
end

-- A groupchat message a room reflected to a recipient client (XEP rule 57): rooms do not take
-- part in this version and rewrite 'from' and 'to', so its path cannot be checked.  Only a
-- recipient client concludes that (a server keeps checking what it vouches for), and not for a
-- message its 'from' signed itself, which no room reflected: that is a retyped chat message.
function M.is_reflected_by_room(fields, atts, anchor)
	if fields.type ~= "groupchat" or not is_client_jid(anchor.me) then return false; end
	for _, a in ipairs(atts) do
		if a.signer == fields.sender then return false; end
	end
	return true;
end

-- Step 4's 'for' rule, and the caller's replay cache: "replayed" where an attestation was made
-- for another message or already accepted; nil (not yet known) for the others.
function M.check_replay(fields, atts, seen)
	local status = {};
	for i, a in ipairs(atts) do
		if a.for_id ~= fields.id or seen[a.sig] then status[i] = "replayed"; end
	end
	return status;
end

-- Step 3: the last attestation, signed by the verifier's own server, must verify with one of
-- its keys valid at its 'time'.  Sets its status; returns the key that verified it.
function M.check_anchor(atts, anchor, now, skew, status, data)
	local n = #atts;
	if status[n] ~= nil then return nil; end
	local signed_at = assert(M.parse_time(atts[n].time));
	-- A live attestation must verify with a current key (a retired key stays listed for the skew
	-- after a rotation), so failing is tampering; only an older one may have been signed with a
	-- key withdrawn since.
	status[n] = (now - signed_at > skew) and "key-unknown" or "tampered";
	for _, c in ipairs(M.candidates(anchor.keys or {}, signed_at)) do
		if M.verify_signature(c[1], atts[n].sig, data(n)) then
			status[n] = c[2] or "ok";
			return c[1];
		end
	end
	return nil;
end

-- Step 4: attestation i-1 is checked with the key attestation i vouched for, from the last one
-- back, while every later one verified; the rest are unvouched.
function M.walk_backwards(atts, status, data)
	for i = #atts, 2, -1 do
		if status[i] ~= "ok" then
			for j = i - 1, 1, -1 do status[j] = status[j] or "unvouched"; end
			return;
		end
		local before, here = atts[i - 1], atts[i];
		if not here.in_view then
			status[i - 1] = status[i - 1] or "chain-broken";
		elseif not (before.out_view and before.out_view.peer == here.signer) or here.in_view.peer ~= before.signer then
			-- a node between them did not sign: nobody vouched for the earlier key
			status[i - 1] = status[i - 1] or "unvouched";
		elseif not here.prev_key then
			status[i - 1] = status[i - 1] or "chain-broken";
		elseif status[i - 1] == nil then
			status[i - 1] = M.verify_signature(here.prev_key, before.sig, data(i - 1)) and "ok" or "tampered";
		end
	end
end

-- Step 4's time rules, charged to hops: consecutive signers at most the skew apart (by arrival
-- time), no time further in the future than the skew, and a live last attestation no older
-- than the skew.
function M.check_clock_skew(atts, hops, status, now, skew, anchored, archived)
	local n = #atts;
	local times, arrivals = {}, {};
	for i, a in ipairs(atts) do
		times[i] = assert(M.parse_time(a.time));
		arrivals[i] = a.stored and assert(M.parse_time(a.stored)) or times[i];
	end
	if anchored and not archived and now - times[n] > skew and status[n] == "ok" then
		-- the recipient's own server signs at delivery: a live stanza this old is a replay
		hops[#hops].problem = "clock-skew";
	end
	for _, h in ipairs(hops) do
		if h.up_index and h.down_index and math.abs(arrivals[h.down_index] - times[h.up_index]) > skew then
			h.problem = "clock-skew";
		end
	end
	for i, t in ipairs(times) do
		if t > now + skew and status[i] == "ok" then
			for _, h in ipairs(hops) do
				if h.up_index == i then h.problem = h.problem or "clock-skew"; end
			end
		end
	end
end

local function path_notes(atts, anchor, anchored, status, notes, anchor_key)
	local n = #atts;
	if anchor_key and status[n] == "ok" then
		for _, entry in ipairs(anchor.keys or {}) do
			if entry.key == anchor_key and entry.not_after then
				notes[#notes + 1] = ("%s signed with a key retired since (valid for signatures until %s)"):format(
					anchor.server, entry.not_after);
			end
		end
	end
	local last_out = anchored and atts[n].out_view;
	if last_out and last_out.peer ~= anchor.me and bare(last_out.peer) == bare(anchor.me) then
		notes[#notes + 1] = ("delivered to %s, read here as %s"):format(last_out.peer, anchor.me);
	end
	for i, a in ipairs(atts) do
		if a.stored and status[i] == "ok" then
			notes[#notes + 1] = ("stored by %s from %s until delivery at %s"):format(a.signer, a.stored, a.time);
		end
		if a.in_view and a.in_view.removed and status[i] == "ok" then
			notes[#notes + 1] = ("forgery-removed: %s removed %s forged attestation(s) sent by %s"):format(a.signer, a.in_view.removed, a.in_view.peer);
		end
	end
end

-- Step 6 for the path: the weakest hop decides, never more than unknown when the verifier's own
-- server does not take part; the weakest hops are named unless the path is trusted.
function M.overall_verdict(reports, anchor, notes)
	local overall;
	for _, r in ipairs(reports) do
		if overall == nil or r.strength < overall then overall = r.strength; end
	end
	overall = overall or UNKNOWN;
	if not anchor.takes_part and overall > UNKNOWN then
		-- the verifier's own server does not announce the feature: nothing it signs is an anchor
		overall = UNKNOWN;
		notes[#notes + 1] = ("not-participating: %s does not announce trust-path, so no path is trusted"):format(anchor.server);
		local last = reports[#reports];
		last.result, last.reason, last.strength = "unknown", "not-participating", UNKNOWN;
	end
	local verdict = M.VERDICT[overall];
	local weakest = {};
	if verdict ~= "trusted" then
		for _, r in ipairs(reports) do
			if r.strength == overall then weakest[#weakest + 1] = r.label; end
		end
	end
	return verdict, weakest;
end

-- What a server writes into 'chain-reason' of its <in/> view, or nil (XEP "At a Receiving
-- Server"): the first attestation that failed, else the first hop that failed for a reason
-- about the chain.
local function chain_problem(statuses, reports)
	for _, s in ipairs(statuses) do
		if s.status ~= "ok" and s.status ~= "unvouched" then return s.status; end
	end
	for _, r in ipairs(reports) do
		if r.result == "fail" and CHAIN_FAILURES[r.reason] then return r.reason; end
	end
	return nil;
end

-- Check the attestations `atts` received with the message `fields` and return a report:
-- { verdict, hops, weakest, statuses, notes, anchor_key, chain_problem, chain_ok }.
-- anchor = { server, keys (a keyset), me, view, takes_part }; now in epoch seconds;
-- opts.max_skew (default 300), opts.seen (set of sigs already accepted: a replay cache),
-- opts.archived (read from an archive: may be old, may name another resource of the account).
function M.verify(fields, atts, anchor, now, opts)
	opts = opts or {};
	atts = atts or {};
	local room = M.is_reflected_by_room(fields, atts, anchor);
	if room then atts = {}; end
	local n = #atts;
	local skew = opts.max_skew or M.DEFAULT_MAX_SKEW;
	local prefix = M.message_prefix(fields);
	local function data(i) return M.fields_input(prefix, i > 1 and atts[i - 1].sig or "", atts[i]); end

	local notes = {};
	local status = M.check_replay(fields, atts, opts.seen or {});
	local anchored = n > 0 and atts[n].signer == anchor.server;
	local anchor_key;
	if anchored then
		anchor_key = M.check_anchor(atts, anchor, now, skew, status, data);
	else
		for i = 1, n do status[i] = status[i] or "unvouched"; end
	end
	M.walk_backwards(atts, status, data);
	local hops = M.reconstruct_hops(atts, anchor, anchored, fields.sender, opts.archived, room);
	if room then
		notes[#notes + 1] = "not-participating: a groupchat message came through a room, and rooms do not take part "
			.. "in this version of trust-path, so its path is not checked";
	end
	if n > 0 then M.check_clock_skew(atts, hops, status, now, skew, anchored, opts.archived); end
	path_notes(atts, anchor, anchored, status, notes, anchor_key);
	local reports = {};
	for k, h in ipairs(hops) do reports[k] = M.evaluate_hop(k, h, atts, status); end
	local verdict, weakest = M.overall_verdict(reports, anchor, notes);
	local statuses = {};
	for i, a in ipairs(atts) do statuses[i] = { signer = a.signer, status = status[i] or "unvouched" }; end
	local problem = chain_problem(statuses, reports);
	return { verdict = verdict, hops = reports, weakest = weakest, statuses = statuses, notes = notes,
		anchor_key = anchor_key, chain_problem = problem, chain_ok = problem == nil };
end
