"""The test bed: the embedded federation (:mod:`.sim`, in-process clients and servers over real
in-memory TLS) and the live harness (:mod:`.harness`, two Prosody servers and slixmpp clients),
both driven by one table of scenarios (:mod:`.scenarios`)."""
