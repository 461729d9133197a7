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
--   codec      the strict decoder and the encoder of <path/> and its records (XEP "The path Element")
--   attest     signing one record
--   disco      the published key form (XEP "Discovery and Keys")
--   preflight  the answer to a pre-flight query (XEP "Pre-flight Query")
--   require    whether a hop meets <require/> (XEP "Requiring Verified Hops")
--   server     what a server decides (XEP "At the Sending Server", "At the Receiving Server")
--
-- There is no verifier here: in urn:xmpp:trust-path:1 servers sign but do not verify
-- signatures (the recipient client verifies every record), so a server needs none.
--
-- It needs Prosody's util.stanza, util.encodings and util.json, and nothing of a running
-- server: the standalone tests load it with dofile(".../core/init.lua").
--
-- Views and records are plain tables: a view { method, result, tls, spki, reason }, a record
-- { key, out_view, sig, text, signer, time, in_view, chain, chain_reason, vouch, ... } (see
-- codec.decode_record).  Times are integers (seconds since the epoch, UTC).

local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".";
local M = {};
for _, part in ipairs { "constants", "errors", "model", "timefmt", "keys", "signing", "codec", "attest",
		"disco", "require", "preflight", "server" } do
	assert(loadfile(here .. "/" .. part .. ".lua"))(M, here);
end
return M;
