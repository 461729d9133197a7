"""``trustpath harness``: the live federation, for the scenarios or for a person."""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from .prosody import ProsodyMissing
from .world import ADDRESSES, PASSWORD, build_world


def keep(args: argparse.Namespace) -> int:
    """Bring the federation up and leave it running until Ctrl-C."""
    try:
        world = build_world(keep_files=True, intercept=args.intercept)
    except ProsodyMissing as exc:
        print(f"trustpath harness: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with world:
        print("The federation is running. Connect with any XMPP client:")
        for domain, address in ADDRESSES.items():
            print(f"  {domain}: c2s {address}:15222 (STARTTLS), s2s {address}:15269")
        print(f"  accounts: alice@a.example and bob@b.example, password {PASSWORD!r}")
        print(f"  certificates are issued by {world.ca.ca_file} (trust it, or pin the server key)")
        print(f"  DNS for the two domains: 127.0.0.1 port {world.dns.address[1]} (A and SRV records)")
        print(f"  logs and configs: {world.workdir}")
        print("Press Ctrl-C to stop every process the harness started.")
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass
    print(f"stopped every process the harness started; logs and configs remain in {world.workdir}")
    return 0
