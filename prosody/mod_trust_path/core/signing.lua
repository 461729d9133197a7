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
-- payload_parts() writes them into `parts` after index `n` and returns the new end: the
-- signing input is then one concatenation of one table (every record pays for it).
local function payload_parts(parts, n, fields, tokens)
	for _, token in ipairs(tokens) do
		local group = TEXT_GROUPS[token];
		if group then
			for _, item in ipairs(fields[group]) do
				parts[n + 1] = item.lang and (token .. "@" .. item.lang) or token;
				parts[n + 2], parts[n + 3], parts[n + 4] = NUL, item.text, NUL;
				n = n + 4;
			end
		elseif token == "require" then
			if fields.require then
				parts[n + 1], parts[n + 2], parts[n + 3], parts[n + 4] = "require", NUL, fields.require, NUL;
				n = n + 4;
			end
		elseif token == "report" then
			local report = fields.report;
			if report then
				local own = report[1];
				parts[n + 1], parts[n + 2] = "report", NUL; -- so that an empty <report/> is not signed like no report
				n = n + 2;
				for i = 1, #own, 2 do
					parts[n + 1], parts[n + 2], parts[n + 3], parts[n + 4], parts[n + 5] = "report.", own[i], NUL, own[i + 1], NUL;
					n = n + 5;
				end
				for p = 2, #report do
					parts[n + 1], parts[n + 2], parts[n + 3], parts[n + 4] = "hop", NUL, tostring(p - 1), NUL;
					n = n + 4;
					local attrs = report[p];
					for i = 1, #attrs, 2 do
						parts[n + 1], parts[n + 2], parts[n + 3], parts[n + 4], parts[n + 5] = "hop.", attrs[i], NUL, attrs[i + 1], NUL;
						n = n + 5;
					end
				end
			end
		else
			local projection = fields.elements[token];
			if projection then parts[n + 1], parts[n + 2], parts[n + 3] = token, NUL, projection; n = n + 3; end
		end
	end
	return n;
end

function M.payload_input(fields, tokens)
	local parts = {};
	return t_concat(parts, "", 1, payload_parts(parts, 0, fields, tokens));
end

-- The bytes a record signs: the message (`covers`: its payload tokens, nil for the default
-- ones), `previous` (the records before it, joined by one space; "" for the first) and
-- `unsigned` (the record's own text up to, not including, ";z=").  `prefix` may carry a
-- precomputed message_prefix().
function M.signing_input(fields, previous, unsigned, covers, prefix)
	local payloads = M.payload_input(fields, covers or M.DEFAULT_PAYLOADS);
	-- one concatenation expression: Lua makes the result in one allocation, with no table
	return (prefix or (NS .. NUL .. "from" .. NUL .. fields.sender .. NUL .. "to" .. NUL .. fields.to .. NUL .. "id" .. NUL
		.. fields.id .. NUL .. "type" .. NUL .. fields.type .. NUL)) .. payloads .. "prev" .. NUL .. previous .. NUL .. "rec"
		.. NUL .. unsigned .. NUL;
end
