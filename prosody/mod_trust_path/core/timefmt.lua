-- The one time format on the wire: exactly YYYY-MM-DDThh:mm:ssZ (reference/trustpath/core/timefmt.py).
local M = ...;

local function days_from_civil(y, m, d) -- proleptic Gregorian, days since 1970-01-01
	y = m <= 2 and y - 1 or y;
	local era = (y >= 0 and y or y - 399) // 400;
	local yoe = y - era * 400;
	local doy = (153 * (m + (m > 2 and -3 or 9)) + 2) // 5 + d - 1;
	local doe = yoe * 365 + yoe // 4 - yoe // 100 + doy;
	return era * 146097 + doe - 719468;
end
local month_days = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };

-- Parse a wire time; returns seconds since the epoch, or nil and why.  (The last answer is
-- kept: the same second is parsed and formatted many times in a row.)
local last_parsed_text, last_parsed;
function M.parse_time(text)
	if type(text) ~= "string" then return nil, "not a string"; end
	if text == last_parsed_text then return last_parsed; end
	local y, mo, d, h, mi, s = text:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)T(%d%d):(%d%d):(%d%d)Z$");
	if not y then return nil, ("time %q is not of the form 2026-11-25T09:00:00Z"):format(text); end
	y, mo, d, h, mi, s = tonumber(y), tonumber(mo), tonumber(d), tonumber(h), tonumber(mi), tonumber(s);
	local leap = (y % 4 == 0 and y % 100 ~= 0) or y % 400 == 0;
	local dim = (mo == 2 and leap) and 29 or month_days[mo];
	if y < 1 or not dim or d < 1 or d > dim or h > 23 or mi > 59 or s > 59 then
		return nil, ("time %q is not a valid date and time"):format(text);
	end
	local t = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s;
	last_parsed_text, last_parsed = text, t;
	return t;
end

local last_formatted_time, last_formatted;
function M.format_time(t)
	t = math.floor(t);
	if t ~= last_formatted_time then
		last_formatted_time, last_formatted = t, os.date("!%Y-%m-%dT%H:%M:%SZ", t);
	end
	return last_formatted;
end
