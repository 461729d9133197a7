"""The embedded federation: client and server roles running the reference logic in one
process, each hop a real TLS 1.3 handshake over in-memory buffers."""
