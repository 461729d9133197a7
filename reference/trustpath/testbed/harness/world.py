"""Bringing the live federation up and down: a CA, certificates, DNS, two Prosody servers."""

from __future__ import annotations

import base64
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..sim.tls import Authority, KeyFactory
from .dns import DnsServer, Zone
from .mitm import Interceptor
from .prosody import Instance, prosody_binary, require_module

#: the first three octets of every loopback address the harness listens on: set
#: TRUSTPATH_LOOPBACK=127.0.7 (say) to run a second harness beside the first
LOOPBACK = os.environ.get("TRUSTPATH_LOOPBACK", "127.0.0")


def loopback(last: int) -> str:
    """A loopback address of the harness's: ``127.0.0.<last>`` unless TRUSTPATH_LOOPBACK says otherwise."""
    return f"{LOOPBACK}.{last}"


ADDRESSES = {"a.example": loopback(2), "b.example": loopback(3)}
INTERCEPTOR_ADDRESS = loopback(4)
#: where a man in the middle on a client's own hop (H1) listens
C2S_INTERCEPTOR_ADDRESS = loopback(7)
#: where a man in the middle on b.example's own s2s link to a.example listens
KEY_FETCH_ATTACKER_ADDRESS = loopback(8)
DIRECT_TLS_PORT = 15270
PASSWORD = "pencil"


@dataclass
class World:
    """Everything one harness run started; :meth:`close` stops all of it."""

    workdir: Path
    ca: Authority
    dns: DnsServer
    servers: dict[str, Instance] = field(default_factory=dict)
    spki: dict[str, str] = field(default_factory=dict)  # each server's key: SHA-256 of its SPKI, base64
    interceptor: Interceptor | None = None
    #: further attackers a scenario started (anything with a stop()), stopped with the world
    attackers: list[Any] = field(default_factory=list)
    #: other services a scenario started beside the servers (a POSH web server), stopped with the world
    services: list[Any] = field(default_factory=list)
    keep_files: bool = False

    def address(self, domain: str) -> str:
        return self.servers[domain].address

    def close(self) -> None:
        for server in self.servers.values():
            server.stop()
        if self.interceptor is not None:
            self.interceptor.stop()
        for thing in self.attackers + self.services:
            thing.stop()
        self.dns.stop()
        if not self.keep_files:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> World:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def build_world(*, modules: dict[str, list[str]] | None = None,
                users: tuple[str, ...] = ("alice", "bob"), keep_files: bool = False,
                intercept: bool = False, env: dict[str, dict[str, str]] | None = None,
                addresses: dict[str, str] | None = None,
                configure: Callable[[str, dict[str, str]], dict[str, object]] | None = None,
                distrust: frozenset[str] = frozenset(), interceptor_address: str = INTERCEPTOR_ADDRESS,
                dane: bool = False, components: dict[str, dict[str, str]] | None = None,
                direct_tls: dict[str, tuple[str, int]] | None = None, reloadable: bool = False) -> World:
    """Start DNS and both servers on ``addresses`` (by default the harness's, see :func:`loopback`).

    ``modules`` are extra Prosody modules per domain; ``configure(domain, spki)`` returns extra
    config options for a domain once every server's key (``spki``, by domain) is known.

    With ``intercept``, a man in the middle holding CA-valid certificates for both domains
    sits on the s2s hop from a.example to b.example.

    With ``dane``, the DNS zone is DNSSEC-signed, every server validates with its trust
    anchor and uses DANE (``use_dane``), and each domain publishes TLSA 3 1 1 (DANE-EE, the
    SHA-256 of its certificate's SPKI) for its s2s port.

    ``direct_tls`` publishes direct-TLS s2s (XEP-0368) records pointing at other addresses, e.g.
    ``{"a.example": (address, port)}``: where an attacker listens for connections to a.example.

    With ``reloadable``, every server loads mod_posix, so that :meth:`.Instance.reload` (SIGHUP,
    as ``prosodyctl reload``) makes it read its configuration again.

    ``components`` adds internal components per domain, e.g. ``{"b.example": {"rooms.b.example":
    "muc"}}`` for a room service; DNS names it at its server's address, so that users of the
    other server can join it too.
    """
    prosody_binary()
    if any("trust_path" in names for names in (modules or {}).values()):
        require_module()  # else every server would run without it, and every hop be "not-participating"
    addresses = addresses or ADDRESSES
    workdir = Path(tempfile.mkdtemp(prefix="trustpath-harness-"))
    ca = Authority("Harness CA", KeyFactory(), workdir)
    # a server in ``distrust`` trusts only an unrelated CA, so it cannot verify its peers'
    # certificates: it must fall back to dialback
    other_ca = Authority("Unrelated CA", KeyFactory(), workdir) if distrust else None
    zone = Zone()
    for domain, address in addresses.items():
        zone.add_domain(domain, address, c2s_port=15222, s2s_port=15269)
        for component in (components or {}).get(domain, {}):
            # a component is reached over its server's s2s port (a room that remote users join)
            zone.add_domain(component, address, c2s_port=15222, s2s_port=15269)
    if dane:
        zone.sign()
    if intercept:
        zone.direct_tls("b.example", interceptor_address, DIRECT_TLS_PORT)
    for domain, (address, port) in (direct_tls or {}).items():
        zone.direct_tls(domain, address, port)
    dns = DnsServer(zone).start()
    world = World(workdir, ca, dns, keep_files=keep_files)
    try:
        if intercept:
            world.interceptor = Interceptor((interceptor_address, DIRECT_TLS_PORT),
                                            (addresses["b.example"], DIRECT_TLS_PORT), "b.example",
                                            ca.issue("b.example", "mitm-b.example"),
                                            ca.issue("a.example", "mitm-a.example"), ca.ca_file).start()
        creds = {domain: ca.issue(domain, f"prosody-{domain}", also=tuple((components or {}).get(domain, {})))
                 for domain in addresses}
        world.spki = {domain: cred.spki for domain, cred in creds.items()}
        if dane:
            for domain in addresses:
                zone.add_tlsa(f"xmpp.{domain}", 15269, base64.b64decode(world.spki[domain]).hex())
        for domain, address in addresses.items():
            cred = creds[domain]
            extra = dict(configure(domain, world.spki)) if configure is not None else {}
            if intercept and domain == "b.example":
                extra["s2s_direct_tls_ports"] = [DIRECT_TLS_PORT]
                extra["s2s_direct_tls_ssl"] = {"certificate": cred.cert_file, "key": cred.key_file}
            trusted_ca = other_ca.ca_file if other_ca is not None and domain in distrust else ca.ca_file
            instance = Instance(domain, address, workdir / domain, dns.address[1], cred.cert_file, cred.key_file,
                                trusted_ca, modules=list((modules or {}).get(domain, [])), options=extra,
                                trust_anchor=zone.trust_anchor if dane else None,
                                components=dict((components or {}).get(domain, {})), reloadable=reloadable)
            instance.write_config()
            for user in users:
                instance.register(user, PASSWORD)
            world.servers[domain] = instance
        for domain, instance in world.servers.items():
            instance.start(env=(env or {}).get(domain))
    except BaseException:
        world.close()
        raise
    return world
