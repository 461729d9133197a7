"""Maintenance tools: the published test vectors (:mod:`.vectors`), the XEP's examples kept in
step with them (:mod:`.sync_xep`), and the benchmarks (:mod:`.bench`, :mod:`.livebench`)."""
