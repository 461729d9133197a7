"""A tiny authoritative DNS server for the harness's domains, on loopback.

Prosody resolves ``_xmpp-server._tcp.b.example`` through libunbound configured to forward
here, so the federation never asks the machine's real resolver and /etc/hosts is never
touched.  Unknown names get NXDOMAIN.
"""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass, field

import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset


@dataclass
class Zone:
    """Records by (name, type): A addresses and SRV targets."""

    a: dict[str, str] = field(default_factory=dict)
    srv: dict[str, tuple[str, int]] = field(default_factory=dict)  # '_xmpp-server._tcp.b.example.' -> (target, port)

    def add_domain(self, domain: str, address: str, *, c2s_port: int, s2s_port: int) -> None:
        host = f"xmpp.{domain}."
        self.a[host] = address
        self.a[f"{domain}."] = address
        self.srv[f"_xmpp-client._tcp.{domain}."] = (host, c2s_port)
        self.srv[f"_xmpp-server._tcp.{domain}."] = (host, s2s_port)

    def direct_tls(self, domain: str, address: str, port: int) -> None:
        """Publish direct-TLS s2s (XEP-0368) for ``domain`` at ``address``: where an interceptor sits."""
        host = f"xmpps.{domain}."
        self.a[host] = address
        self.srv[f"_xmpps-server._tcp.{domain}."] = (host, port)


class DnsServer:
    """Answers UDP queries on 127.0.0.1:<port> from a :class:`Zone`, in a background thread."""

    def __init__(self, zone: Zone, host: str = "127.0.0.1", port: int = 0) -> None:
        self.zone = zone
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind((host, port))
        self._sock.settimeout(0.2)
        self.address = self._sock.getsockname()
        self._stop = threading.Event()
        self.queries: list[tuple[str, str]] = []
        self._thread = threading.Thread(target=self._serve, name="trustpath-dns", daemon=True)

    def start(self) -> DnsServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self._sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self._sock.recvfrom(4096)
            except (TimeoutError, OSError):
                continue
            try:
                reply = self.answer(dns.message.from_wire(data))
            except Exception:  # a malformed query gets no answer, like any server under garbage
                continue
            self._sock.sendto(reply.to_wire(), peer)

    def answer(self, query: dns.message.Message) -> dns.message.Message:
        reply = dns.message.make_response(query)
        reply.flags |= dns.flags.AA
        question = query.question[0]
        name = question.name.to_text().lower()
        rdtype = question.rdtype
        self.queries.append((name, dns.rdatatype.to_text(rdtype)))
        known = name in self.zone.a or name in self.zone.srv
        if rdtype == dns.rdatatype.A and name in self.zone.a:
            reply.answer.append(dns.rrset.from_text(name, 60, "IN", "A", self.zone.a[name]))
        elif rdtype == dns.rdatatype.SRV and name in self.zone.srv:
            target, port = self.zone.srv[name]
            reply.answer.append(dns.rrset.from_text(name, 60, "IN", "SRV", f"0 5 {port} {target}"))
        elif not known:
            reply.set_rcode(dns.rcode.NXDOMAIN)
        return reply
