-- What every standalone Lua test needs: Prosody's libraries on the path, the Lua core of
-- mod_trust_path loaded from its folder, and a few helpers for reading the vector files.
-- dofile() it: returns { core, module_dir, repo, read, read_json, value, map }.
local tests = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".";
local prosody_dir = tests:match("^(.*)/tests$") or (tests .. "/..");
package.path = "/usr/lib/prosody/?.lua;" .. package.path;
package.cpath = "/usr/lib/prosody/?.so;" .. package.cpath;
local json = require "util.json";
local module_dir = prosody_dir .. "/mod_trust_path";

local function read(path)
	local f = assert(io.open(path, "rb"));
	local data = f:read("a");
	f:close();
	return data;
end

-- JSON null is json.null in Lua; the core uses nil.
local function value(v) if v == json.null then return nil; end return v; end

-- A view or another map of strings from JSON, with its nulls dropped (nil for null itself).
local function map(t)
	if value(t) == nil then return nil; end
	local out = {};
	for k, v in pairs(t) do if value(v) ~= nil then out[k] = v; end end
	return out;
end

return {
	core = dofile(module_dir .. "/core/init.lua"),
	module_dir = module_dir,
	repo = prosody_dir .. "/..",
	read = read,
	read_json = function (path) return assert(json.decode(read(path)), "bad JSON in " .. path); end,
	value = value,
	map = map,
};
