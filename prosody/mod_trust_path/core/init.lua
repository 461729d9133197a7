-- The protocol core of trust-path in plain Lua: one table of functions, built from one file
-- per step of the XEP, named like the Python core's modules (reference/trustpath/core) and
-- with the same function names, so that a differential test can hold the two equal.
--
--   constants  the one table both cores share (spec/constants.json, linked beside the module)
--   errors     fail() and try(): how a decoder says "malformed" and a caller catches only that
--   model      strengths, the strength of a method and of a view, JIDs
--   timefmt    the wire time format
--   keys       Ed25519 (Prosody 13's util.crypto, else trust_path_crypto.so), published key sets
--   signing    the signing input (XEP "Signing Input")
--   codec      the strict decoder and the encoder of <path/> and its views (XEP "The Path ...")
--   attest     signing one attestation
--   preflight  the answer to a pre-flight query (XEP "Pre-flight Query")
--   require    whether a hop meets <require/> (XEP "Requiring Verified Hops")
--   verify     the verifier, step by step (XEP "At the Recipient Client", "Hop Strength and Verdict")
--   server     what a server decides (XEP "At the Sending Server", "At a Receiving Server")
--
-- It needs Prosody's util.stanza, util.encodings and util.json, and nothing of a running
-- server: the standalone tests load it with dofile(".../core/init.lua").
--
-- Views and attestations are plain tables.  A view is keyed by its wire attribute names
-- ({ peer = "a.example", side = "client", ["key-source"] = "link", ... }); an attestation is
-- { signer, time, for_id, sig, prev_key, stored, alg, in_view, out_view }.
-- Times are integers (seconds since the epoch, UTC).

local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".";
local M = {};
for _, part in ipairs { "constants", "errors", "model", "timefmt", "keys", "signing", "codec", "attest",
		"preflight", "require", "verify", "server" } do
	assert(loadfile(here .. "/" .. part .. ".lua"))(M, here);
end
return M;
