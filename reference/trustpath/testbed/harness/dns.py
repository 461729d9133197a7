"""A tiny authoritative DNS server for the harness's domains, on loopback.

Prosody resolves ``_xmpp-server._tcp.b.example`` through libunbound configured to forward
here, so the federation never asks the machine's real resolver and /etc/hosts is never
touched.  Unknown names get NXDOMAIN.

With :meth:`Zone.sign` the zone "example." is DNSSEC-signed (one ECDSA P-256 key, flags
257, that signs every RRset): answers to queries with the DO bit carry their RRSIGs, DNSKEY
is answered, and TLSA records (DANE, RFC 6698/7673) and TXT records (a domain's trust-path keys
at ``_trust-path.<domain>``, XEP "Discovery and Keys") can be published.  Its
:attr:`Zone.trust_anchor` is what libunbound is given (``unbound = { trusted = ... }``), so
validation needs nothing above "example.".
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

APEX = "example."


@dataclass
class Zone:
    """Records by (name, type): A addresses and SRV targets."""

    a: dict[str, str] = field(default_factory=dict)
    srv: dict[str, tuple[str, int]] = field(default_factory=dict)  # '_xmpp-server._tcp.b.example.' -> (target, port)
    tlsa: dict[str, list[str]] = field(default_factory=dict)  # '_15269._tcp.xmpp.b.example.' -> ['3 1 1 <hex>']
    txt: dict[str, list[str]] = field(default_factory=dict)  # '_trust-path.a.example.' -> ['v=tp1; k=ed25519:...']
    _key: object | None = None
    _dnskey: dns.rrset.RRset | None = None

    @property
    def signed(self) -> bool:
        return self._key is not None

    def sign(self) -> Zone:
        """Sign "example." from now on (a new key per run)."""
        import dns.dnssec
        from cryptography.hazmat.primitives.asymmetric import ec

        self._key = ec.generate_private_key(ec.SECP256R1())
        dnskey = dns.dnssec.make_dnskey(self._key.public_key(), dns.dnssec.Algorithm.ECDSAP256SHA256, flags=257)
        self._dnskey = dns.rrset.from_rdata(APEX, 3600, dnskey)
        return self

    @property
    def dnskey(self) -> dns.rrset.RRset:
        """The zone's DNSKEY RRset (one key, flags 257)."""
        assert self._dnskey is not None, "the zone is not signed"
        return self._dnskey

    @property
    def trust_anchor(self) -> str:
        """The zone's DNSKEY as one presentation-format line, for ub_ctx_add_ta."""
        return f"{APEX} IN DNSKEY {self.dnskey[0].to_text()}"

    def add_tlsa(self, host: str, port: int, spki_sha256_hex: str, usage: int = 3) -> None:
        """Publish TLSA ``<usage> 1 1 <SHA-256 of the SPKI>`` for ``_port._tcp.host``."""
        self.tlsa.setdefault(f"_{port}._tcp.{host.rstrip('.')}.", []).append(f"{usage} 1 1 {spki_sha256_hex}")

    def add_txt(self, name: str, texts: list[str]) -> None:
        """Publish TXT records at ``name`` (one character-string each, so at most 255 bytes)."""
        self.txt.setdefault(f"{name.rstrip('.')}.", []).extend(texts)

    def rrsig(self, rrset: dns.rrset.RRset) -> dns.rrset.RRset:
        import dns.dnssec

        now = int(time.time())
        sig = dns.dnssec.sign(rrset, self._key, dns.name.from_text(APEX), self._dnskey[0],
                              inception=now - 3600, expiration=now + 86400)
        return dns.rrset.from_rdata(rrset.name, rrset.ttl, sig)

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


def _quoted(text: str) -> str:
    """``text`` as one TXT character-string in presentation format."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class DnsServer:
    """Answers UDP queries on 127.0.0.1:<port> from a :class:`Zone`, in a background thread."""

    def __init__(self, zone: Zone, host: str = "127.0.0.1", port: int = 0) -> None:
        self.zone = zone
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind((host, port))
        self._sock.settimeout(0.2)
        self.address = self._sock.getsockname()
        self._stop = threading.Event()
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
        zone = self.zone
        known = name in zone.a or name in zone.srv or name in zone.tlsa or name in zone.txt or (zone.signed and name == APEX)
        rrset = None
        if rdtype == dns.rdatatype.A and name in zone.a:
            rrset = dns.rrset.from_text(name, 60, "IN", "A", zone.a[name])
        elif rdtype == dns.rdatatype.SRV and name in zone.srv:
            target, port = zone.srv[name]
            rrset = dns.rrset.from_text(name, 60, "IN", "SRV", f"0 5 {port} {target}")
        elif rdtype == dns.rdatatype.TLSA and name in zone.tlsa:
            rrset = dns.rrset.from_text_list(name, 60, "IN", "TLSA", zone.tlsa[name])
        elif rdtype == dns.rdatatype.TXT and name in zone.txt:
            rrset = dns.rrset.from_text_list(name, 60, "IN", "TXT", [_quoted(t) for t in zone.txt[name]])
        elif rdtype == dns.rdatatype.DNSKEY and zone.signed and name == APEX:
            rrset = zone.dnskey
        elif not known:
            reply.set_rcode(dns.rcode.NXDOMAIN)
        if rrset is not None:
            reply.answer.append(rrset)
            if zone.signed and query.ednsflags & dns.flags.DO:
                reply.answer.append(zone.rrsig(rrset))
        if zone.signed and query.edns >= 0:
            reply.use_edns(0, query.ednsflags & dns.flags.DO, 1232)
        return reply
