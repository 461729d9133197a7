-- The exact bytes a record signs (XEP "Signing Input"; reference/trustpath/core/signing.py):
-- not XML canonicalization, but a NUL-separated list of the message's addressing, its covered
-- payloads, the records before this one as received and this record's own text as written.
-- XML 1.0 text cannot contain U+0000, so the separators make the encoding unambiguous, and the
-- signature survives the stanza's namespace changing at the s2s hop and servers adding elements.
local M = ...;
local NS = M.NS;

local NUL = "\0";
local t_concat = table.concat;
local TEXT_GROUPS = { body = "bodies", subject = "subjects", thread = "threads" };

-- The addressing part of the signing input; the same for every record of a message.
function M.message_prefix(fields)
	return t_concat({ NS, "from", fields.sender, "to", fields.to, "id", fields.id, "type", fields.type, "" }, NUL);
end

-- The covered payloads (XEP "Covered Payloads"), in the order a record's 'h=' lists them
-- (`tokens`).  A listed payload the message does not carry adds nothing: covering it covers
-- its absence.
function M.payload_input(fields, tokens)
	local parts, n = {}, 0;
	local function add(...)
		for i = 1, select("#", ...) do n = n + 1; parts[n] = select(i, ...); end
	end
	for _, token in ipairs(tokens) do
		local group = TEXT_GROUPS[token];
		if group then
			for _, item in ipairs(fields[group]) do
				add(item.lang and (token .. "@" .. item.lang) or token, NUL, item.text, NUL);
			end
		elseif token == "require" then
			if fields.require then add("require", NUL, fields.require, NUL); end
		elseif token == "report" then
			local report = fields.report;
			if report then
				local own = report[1];
				add("report", NUL); -- so that an empty <report/> is not signed like no report
				for i = 1, #own, 2 do add("report.", own[i], NUL, own[i + 1], NUL); end
				for p = 2, #report do
					add("hop", NUL, tostring(p - 1), NUL);
					local attrs = report[p];
					for i = 1, #attrs, 2 do add("hop.", attrs[i], NUL, attrs[i + 1], NUL); end
				end
			end
		else
			local projection = fields.elements[token];
			if projection then add(token, NUL, projection); end
		end
	end
	return t_concat(parts, "", 1, n);
end

-- The bytes a record signs: the message (`covers`: its payload tokens, nil for the default
-- ones), `previous` (the records before it, joined by one space; "" for the first) and
-- `unsigned` (the record's own text up to, not including, ";z=").  `prefix` may carry a
-- precomputed message_prefix().
function M.signing_input(fields, previous, unsigned, covers, prefix)
	return t_concat({ prefix or M.message_prefix(fields), M.payload_input(fields, covers or M.DEFAULT_PAYLOADS),
		"prev", NUL, previous, NUL, "rec", NUL, unsigned, NUL });
end
