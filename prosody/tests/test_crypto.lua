-- Unit test of trust_path_crypto.so: RFC 8032 section 7.1 test 1 and 2, error handling.
-- Run from anywhere: lua5.4 prosody/tests/test_crypto.lua
local setup = dofile((debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".") .. "/setup.lua");
local crypto = assert(package.loadlib(setup.module_dir .. "/trust_path_crypto.so", "luaopen_trust_path_crypto"))();

local function unhex(s) return (s:gsub("..", function(h) return string.char(tonumber(h, 16)) end)) end
local function hex(s) return (s:gsub(".", function(c) return ("%02x"):format(c:byte()) end)) end

local passed, failed = 0, 0
local function check(name, cond)
	if cond then passed = passed + 1 else failed = failed + 1; print("FAIL: " .. name) end
end

local vectors = {
	{ seed = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
	  pub = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", msg = "",
	  sig = "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b" },
	{ seed = "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
	  pub = "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", msg = "72",
	  sig = "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00" },
}
for i, v in ipairs(vectors) do
	local seed, msg = unhex(v.seed), unhex(v.msg)
	check("public " .. i, hex(crypto.public_from_seed(seed)) == v.pub)
	local sig = crypto.sign(seed, msg)
	check("sign " .. i, hex(sig) == v.sig)
	check("verify " .. i, crypto.verify(unhex(v.pub), sig, msg) == true)
	check("verify altered " .. i, crypto.verify(unhex(v.pub), sig, msg .. "x") == false)
end

local seed = crypto.generate_seed()
check("seed length", #seed == 32)
check("seeds differ", crypto.generate_seed() ~= seed)
local pub = crypto.public_from_seed(seed)
check("round trip", crypto.verify(pub, crypto.sign(seed, "hello\0world"), "hello\0world"))
check("not a point", crypto.verify(("\255"):rep(32), ("\0"):rep(64), "x") == false)

local function raises(name, pattern, f, ...)
	local ok, err = pcall(f, ...)
	check(name .. " raises", not ok and tostring(err):find(pattern, 1, true) ~= nil)
end
-- the libsodium build keeps the last expanded key: switching keys must not reuse it
do
	local a, b = vectors[1], vectors[2]
	crypto.sign(unhex(b.seed), unhex(b.msg))
	check("sign after another key", hex(crypto.sign(unhex(a.seed), unhex(a.msg))) == a.sig)
	check("public after another key", hex(crypto.public_from_seed(unhex(b.seed))) == b.pub
		and hex(crypto.public_from_seed(unhex(a.seed))) == a.pub)
end
check("backend named", crypto._BACKEND == "libsodium" or crypto._BACKEND == "openssl")
raises("short seed", "seed (private key) must be 32 bytes, got 31", crypto.sign, ("x"):rep(31), "m")
raises("short pub", "public key must be 32 bytes, got 3", crypto.verify, "abc", ("\0"):rep(64), "m")
raises("long sig", "signature must be 64 bytes, got 65", crypto.verify, pub, ("\0"):rep(65), "m")
raises("no message", "bad argument #2", crypto.sign, seed)

print(("%d passed, %d failed"):format(passed, failed))
os.exit(failed == 0 and 0 or 1)
