-- This server's own record: signed onto a message when it leaves (for a remote domain or a
-- local client), with what its marker remembers of the message's arrival (XEP "At the Sending
-- Server", "At the Receiving Server").
return function (tp)
	local core, host, keys = tp.core, tp.host, tp.keys; -- keys.signing_key changes when the keys are reloaded
	local NS = core.NS;

	-- The signature of the path's last record, or nil (no path, or one that cannot be read).
	local function last_sig(message)
		local path = core.try(core.find_path_element, message);
		if not path then return nil; end
		return core.text_of(path):match(";z=([^%s;]*)%s*$");
	end

	-- Does `previous` (records joined by one space) end with a record whose signature ('z=', its
	-- last field) is `sig`?  With no `sig`: is there no record?
	local function ends_with_sig(previous, sig)
		if sig == nil then return previous:match(";z=([^%s;]*)$") == nil; end
		if sig:find("[%s;]") then return false; end
		return previous:sub(-(#sig + 3)) == ";z=" .. sig;
	end

	-- Sign this server's record onto `message` (changed in place) with `pending` (a read
	-- marker: in-view, chain, vouching; or { refusal = true } for this server's own refusal,
	-- whose record states none of them, nor 'st') and `out_view` (the hop it leaves on;
	-- `out_peer` the client it is delivered to, `stored` the arrival time of a message that
	-- waited in storage).  Returns the record, or nil and why not.
	local function sign_onto(message, pending, out_view, out_peer, stored)
		if pending.refusal then stored = nil; end
		local fields, err = core.try(core.message_fields, message);
		if not fields then return nil, err.text; end
		if fields.id == "" then return nil, "it has neither an 'id' nor an <origin-id/>"; end
		local previous, count = core.previous_records(message);
		if not previous then return nil, count.text; end
		if count >= core.MAX_RECORDS then return nil, ("the path already holds %d records"):format(count); end
		if pending.refusal and count > 0 then return nil, "a refusal's record is its first"; end
		local vouch = pending.vouch;
		-- the last record's signature, from the records just read (no second walk of the path);
		-- a plain comparison of the end, not a pattern tried at every position of the path
		if vouch and not ends_with_sig(previous, pending.prev_sig) then
			-- the path changed since this server looked at it: it cannot vouch for what is there now
			module:log("warn", "path of message %s from %s changed after it arrived; not vouching for its last record",
				fields.id, fields.sender);
			vouch = nil;
		end
		local att = core.attest(fields, keys.signing_key, { signer = host, time = os.time(), in_view = pending.in_view,
			chain = pending.chain, chain_reason = pending.chain_reason, vouch = vouch, removed = pending.removed,
			out_view = out_view, out_peer = out_peer, stored = stored, previous = previous });
		core.add_record(message, att);
		return att;
	end

	-- Remove the path's last record (the one whose signature is `sig`); the whole <path/> when
	-- it was the only one.  Returns whether it was there.
	local function remove_last(message, sig)
		local path = core.try(core.find_path_element, message);
		if not path then return false; end
		local records = core.try(core.path_records, path);
		if not records or not records[#records]:find(";z=" .. sig, 1, true) then return false; end
		records[#records] = nil;
		if #records == 0 then
			core.remove_paths(message);
		else
			for i = #path, 1, -1 do path[i] = nil; end
			path[1] = table.concat(records, " ");
		end
		return true;
	end

	return { sign_onto = sign_onto, last_sig = last_sig, remove_last = remove_last, NS = NS };
end
