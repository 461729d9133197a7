"""The protocol core: sans-I/O functions and value types that turn stanzas, keys, TLS facts
and the current time into records, verdicts and server decisions.  Nothing here opens a
socket, reads a clock or keeps global state; the adapters (``trustpath.client``, the
embedded federation and the harness in ``trustpath.testbed``, the command line) do the I/O."""
