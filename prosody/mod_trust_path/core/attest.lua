-- Creating an attestation: the signer's side (reference/trustpath/core/attest.py).
local M = ...;

-- Sign one attestation for the message `fields`.  opts: signer, time (epoch seconds), seed
-- (32 raw bytes), previous (the last attestation already in the path, or nil), prev_key,
-- in_view, out_view, stored (epoch seconds or nil).
function M.attest(fields, opts)
	assert(opts.in_view or opts.out_view, "an attestation describes at least one hop");
	assert(opts.previous or opts.prev_sig or not opts.prev_key, "prev_key vouches for a previous attestation, but none was given");
	assert(not opts.in_view or opts.in_view.chain, "an in_view must state chain");
	local att = { signer = opts.signer, time = M.format_time(opts.time), for_id = fields.id,
		prev_key = opts.prev_key, stored = opts.stored and M.format_time(opts.stored) or nil,
		in_view = opts.in_view, out_view = opts.out_view };
	local prev_sig = opts.prev_sig or (opts.previous and opts.previous.sig) or "";
	local data = M.fields_input(M.message_prefix(fields), prev_sig, att);
	att.sig = M.sign(opts.seed, data);
	return att;
end
