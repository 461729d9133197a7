-- Creating a record: the signer's side of the protocol (XEP "The path Element", "Signing Input";
-- reference/trustpath/core/attest.py).
local M = ...;

-- What a signer lists in 'h=': nil (the default payloads) unless the message carries one
-- outside them, then every payload it carries, in the table's order.
function M.covered_payloads(fields)
	for _, token in ipairs(fields.present) do
		if not M.IS_DEFAULT_PAYLOAD[token] then return fields.present; end
	end
	return nil;
end

-- A record's text without 'z' when fields a later version defines (`opts.extra`) are written:
-- field by field, checked against those this version defines.
local function text_with_extra(signer, key, opts, covers)
	local parts, n = {}, 0;
	if signer then n = n + 1; parts[n] = "s=" .. signer; end
	if opts.time then n = n + 1; parts[n] = ("t=%d"):format(opts.time); end
	if opts.alg then n = n + 1; parts[n] = "a=" .. opts.alg; end
	n = n + 1; parts[n] = "k=" .. key.public;
	if opts.in_view then n = n + 1; parts[n] = "i=" .. M.view_text(opts.in_view); end
	if opts.in_peer then n = n + 1; parts[n] = "f=" .. opts.in_peer; end
	if opts.chain then n = n + 1; parts[n] = opts.chain_reason and ("c=" .. opts.chain .. "." .. opts.chain_reason) or ("c=" .. opts.chain); end
	if opts.vouch then n = n + 1; parts[n] = "v=" .. opts.vouch; end
	if opts.removed and opts.removed > 0 then n = n + 1; parts[n] = ("r=%d"):format(math.min(opts.removed, M.MAX_REMOVED)); end
	n = n + 1; parts[n] = "o=" .. M.view_text(opts.out_view);
	if opts.out_peer then n = n + 1; parts[n] = "p=" .. opts.out_peer; end
	if opts.stored then n = n + 1; parts[n] = ("st=%d"):format(opts.stored); end
	if covers then n = n + 1; parts[n] = "h=" .. table.concat(covers, ","); end
	local written = {};
	for i = 1, n do written[parts[i]:match("^[^=]*")] = true; end
	for _, pair in ipairs(opts.extra) do
		assert(not written[pair[1]] and not M.RECORD_FIELDS[pair[1]], "extra field " .. tostring(pair[1]) .. " is a field this version defines");
		n = n + 1; parts[n] = pair[1] .. "=" .. pair[2];
	end
	return table.concat(parts, ";");
end

-- Seconds as a record writes them; the last one is kept (a busy server writes the same second
-- into many records).
local last_seconds, last_seconds_text;
local function decimal_text(seconds)
	if seconds ~= last_seconds then last_seconds, last_seconds_text = seconds, ("%d"):format(seconds); end
	return last_seconds_text;
end

-- Sign one record for the message `fields` with `key` (signing_key()).  opts: out_view
-- (required), previous (the records already in the path, joined by one space; "" or nil for
-- the first), signer (nil for the sending client: its JID is the message's 'from'), time,
-- in_view, in_peer, out_peer, chain, chain_reason, vouch, removed, stored (epoch seconds), alg
-- (written only when given: absent means ed25519), extra ({ name, value } pairs a later version
-- defines, written before the signature and signed) and prefix (a precomputed message_prefix).  Returns the record as decode_record() reads it.
function M.attest(fields, key, opts)
	assert(fields.id ~= "", "a message with neither an 'id' nor an <origin-id/> cannot be attested (XEP: no-id)");
	local signer = opts.signer;
	assert(signer == nil or opts.time, "a server's record states when it was signed (time)");
	assert(signer == nil or (opts.in_view == nil) == (opts.chain == nil),
		"a server's record states its in-view and what arrived (chain), or neither (a refusal's first record)");
	assert(signer == nil or opts.in_view ~= nil or not (opts.vouch or (opts.removed and opts.removed > 0) or opts.stored),
		"a refusal's first record (no in-view) vouches for nothing, removes nothing, stores nothing");
	assert(signer ~= nil or not (opts.in_view or opts.chain or opts.vouch), "the sending client's record has an out-view only");
	assert((opts.chain == "fail") == (opts.chain_reason ~= nil), "chain 'fail' and only it takes a chain_reason");
	-- rule 28: 'st' is the delivering server's; every verifier refuses it on any other record
	assert(opts.stored == nil or (signer ~= nil and opts.out_peer ~= nil),
		"only a server's record that delivers to a client (out_peer) states 'stored'");
	local alg = opts.alg;
	if alg then assert(M.ALGORITHMS[alg], "algorithm " .. tostring(alg) .. " is not one this version signs with"); end
	local covers = M.covered_payloads(fields);
	-- a count beyond the field's 999 is written as 999 (r= allows three digits)
	local removed = opts.removed and opts.removed > 0 and math.min(opts.removed, M.MAX_REMOVED) or nil;
	local unsigned;
	if opts.extra and opts.extra[1] then
		unsigned = text_with_extra(signer, key, opts, covers);
	else
		-- One concatenation expression, which Lua makes in one allocation (every message pays
		-- for this): an optional field is its "name=" and its value, or two empty strings.
		-- 'k' is always there, so the fields before it end in ';' and those after start with one.
		local time, in_view, in_peer, chain, reason = opts.time, opts.in_view, opts.in_peer, opts.chain, opts.chain_reason;
		local vouch, out_peer, stored = opts.vouch, opts.out_peer, opts.stored;
		unsigned = (signer and "s=" or "") .. (signer or "") .. (signer and ";" or "")
			.. (time and "t=" or "") .. (time and decimal_text(time) or "") .. (time and ";" or "")
			.. (alg and "a=" or "") .. (alg or "") .. (alg and ";" or "")
			.. "k=" .. key.public
			.. (in_view and ";i=" or "") .. (in_view and M.view_text(in_view) or "")
			.. (in_peer and ";f=" or "") .. (in_peer or "")
			.. (chain and ";c=" or "") .. (chain or "") .. (reason and "." or "") .. (reason or "")
			.. (vouch and ";v=" or "") .. (vouch or "")
			.. (removed and ";r=" or "") .. (removed and ("%d"):format(removed) or "")
			.. ";o=" .. M.view_text(opts.out_view)
			.. (out_peer and ";p=" or "") .. (out_peer or "")
			.. (stored and ";st=" or "") .. (stored and ("%d"):format(stored) or "")
			.. (covers and ";h=" or "") .. (covers and table.concat(covers, ",") or "");
	end
	local sig = M.sign(key, M.signing_input(fields, opts.previous or "", unsigned, covers, opts.prefix));
	return { key = key.public, out_view = opts.out_view, sig = sig, text = unsigned .. ";z=" .. sig, signer = signer,
		time = opts.time, in_view = opts.in_view, in_peer = opts.in_peer, out_peer = opts.out_peer, chain = opts.chain,
		chain_reason = opts.chain_reason, vouch = opts.vouch, removed = removed, stored = opts.stored,
		covers = covers, alg = alg, extra = opts.extra or {} };
end
