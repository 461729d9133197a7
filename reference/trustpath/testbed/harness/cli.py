"""``trustpath harness``: the live federation, for the scenarios or for a person."""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
import threading

from ...client.poezio.home import write_poezio_home
from .prosody import ProsodyMissing
from .world import ADDRESSES, PASSWORD, build_world

ROOMS = "rooms.b.example"


def keep(args: argparse.Namespace) -> int:
    """Bring the federation up and leave it running until Ctrl-C."""
    try:
        world = build_world(keep_files=True, intercept=args.intercept, users=("alice", "bob", "carol"),
                            components={"b.example": {ROOMS: "muc"}})
    except ProsodyMissing as exc:
        print(f"trustpath harness: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with world:
        print("The federation is running. Connect with any XMPP client:")
        for domain, address in ADDRESSES.items():
            print(f"  {domain}: c2s {address}:15222 (STARTTLS), s2s {address}:15269")
        print(f"  accounts: alice, bob and carol on each domain (alice@a.example, bob@b.example, ...), "
              f"password {PASSWORD!r}")
        print(f"  certificates are issued by {world.ca.ca_file} (trust it, or pin the server key)")
        print(f"  DNS for the two domains: 127.0.0.1 port {world.dns.address[1]} (A and SRV records)")
        print("  server keys (SHA-256 of the SubjectPublicKeyInfo, to compare before you pin): "
              + ", ".join(f"{domain} {spki}" for domain, spki in world.spki.items()))
        print(f"  a room service for b.example's users: {ROOMS} (rooms do not take part in this version)")
        print(f"  logs and configs: {world.workdir}")
        print("poezio with the trust_path plugin, one terminal each (not as root: poezio refuses it):")
        for account in ("alice@a.example", "bob@b.example"):
            made = write_poezio_home(world.workdir / "poezio" / account.split("@")[0], jid=account,
                                     password=PASSWORD, address=ADDRESSES[account.split("@")[1]],
                                     ca_file=world.ca.ca_file)
            made.home.chmod(0o755)
            script = made.home / "poezio.sh"
            exports = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in made.environment.items())
            script.write_text(f"#!/bin/sh\n# {account} in poezio, with its own config and pins (trustpath harness)\n"
                              f"{exports}exec {shlex.quote(sys.executable)} -m trustpath.client.poezio "
                              f"-f {shlex.quote(str(made.config_file))} \"$@\"\n")
            script.chmod(0o755)
            print(f"  {account}: sh {shlex.quote(str(script))}")
        print("Press Ctrl-C to stop every process the harness started.", flush=True)
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass
    print(f"stopped every process the harness started; logs and configs remain in {world.workdir}")
    return 0
