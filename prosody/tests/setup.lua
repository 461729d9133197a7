-- What every standalone Lua test needs: Prosody's libraries on the path and the Lua core of
-- mod_trust_path loaded from its folder.  dofile() it: returns { core, module_dir, repo }.
local tests = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".";
local prosody_dir = tests:match("^(.*)/tests$") or (tests .. "/..");
package.path = "/usr/lib/prosody/?.lua;" .. package.path;
package.cpath = "/usr/lib/prosody/?.so;" .. package.cpath;
local module_dir = prosody_dir .. "/mod_trust_path";
return { core = dofile(module_dir .. "/core/init.lua"), module_dir = module_dir, repo = prosody_dir .. "/.." };
