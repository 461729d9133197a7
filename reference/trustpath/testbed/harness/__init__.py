"""The live harness: two real Prosody servers federating over real s2s TLS on loopback,
with name resolution served by a small DNS server of the harness's own."""
