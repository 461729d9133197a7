-- This server's own attestation: signed onto a message when it leaves, with what its marker
-- remembers as the <in/> view and the key vouched for.
return function (tp)
	local core, host, seed = tp.core, tp.host, tp.keys.seed;
	local NS = core.NS;

	local function copy(t) local c = {}; for k, v in pairs(t) do c[k] = v; end return c; end

	local without_key_source = setmetatable({}, { __mode = "k" });

	-- Sign this server's attestation onto `message` (changed in place) with `pending` (a read
	-- marker) as <in/> and `out_view` as <out/>.  Returns the attestation, or nil and why not.
	local function sign_onto(message, pending, out_view, stored)
		local fields, err = core.try(core.message_fields, message);
		if not fields then return nil, err.text; end
		local path, path_err = core.try(core.find_path_element, message);
		if path_err then return nil, path_err.text; end
		local n = path and #path.tags or 0;
		if n >= core.MAX_ATTESTATIONS then return nil, "the path already holds 8 attestations"; end
		local prev = n > 0 and path.tags[n].attr.sig or nil;
		local prev_key = pending.prev_key;
		if prev_key and prev ~= pending.prev_sig then
			-- the path changed since this server checked it: it cannot vouch for what is there now
			module:log("warn", "path of message %s from %s changed after it was checked; not vouching for it", fields.id, fields.sender);
			prev_key = nil;
		end
		local in_view = pending.in_view;
		if not prev_key and in_view["key-source"] then
			local plain = without_key_source[in_view];
			if not plain then
				plain = copy(in_view);
				plain["key-source"] = nil;
				without_key_source[in_view] = core.reuse_view(plain);
			end
			in_view = plain;
		end
		local att = core.attest(fields, { signer = host, time = os.time(), seed = seed,
			prev_sig = prev, prev_key = prev_key, in_view = in_view,
			out_view = out_view, stored = stored });
		if not path then
			path = core.element("path", { xmlns = NS });
			message:add_direct_child(path);
		end
		path:add_direct_child(core.attestation_element(att));
		return att;
	end

	return { sign_onto = sign_onto };
end
