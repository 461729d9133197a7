-- How the core says that input is not acceptable: decoding raises
-- { tp_error = true, reason = <reason code>, text = ... } so that a caller can pcall() and still
-- know which reason code applies (malformed, unsupported-version, unsupported-algorithm).
local M = ...;

local error_mt = { __tostring = function (e) return e.reason .. ": " .. e.text end };
function M.fail(reason, text, ...)
	error(setmetatable({ tp_error = true, reason = reason, text = text:format(...) }, error_mt), 2);
end

-- pcall(f, ...) that turns a trust-path error into (nil, err) and re-raises anything else
-- (a bug must not be mistaken for a malformed stanza).
local function try_result(ok, ...)
	if ok then return ...; end
	local err = ...;
	if type(err) == "table" and err.tp_error then return nil, err; end
	error(err, 0);
end
function M.try(f, ...)
	return try_result(pcall(f, ...));
end
