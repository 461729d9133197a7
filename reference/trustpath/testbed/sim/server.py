"""A server of the embedded federation: c2s sessions with SCRAM, s2s links with their configured
check (pin, PKIX, dialback), and the reference core's server rules on every message it routes,
receives and delivers (anti-forgery, the chain check, <require/>, its own attestations)."""

from __future__ import annotations

import copy
import hashlib
import hmac
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from lxml import etree
from scramp import ScramClient, ScramMechanism

from ...core.attest import attest
from ...core.codec import (
    NS_CARBONS,
    NS_DELAY,
    NS_FORWARD,
    NS_MAM,
    add_attestation,
    decode_path,
    message_fields,
    parse_stanza,
    serialize,
)
from ...core.keys import KeySet, PublishedKey, spki_sha256
from ...core.model import (
    MAX_ATTESTATIONS,
    NS,
    Attestation,
    MessageFields,
    Reason,
    Result,
    Side,
    View,
)
from ...core.preflight import preflight_answer, preflight_element
from ...core.server import (
    UnverifiedHop,
    filter_client_path,
    receive_chain,
    received_requirement_problem,
    unmet_requirement,
)
from ...core.timefmt import format_time
from .stanzas import NS_CLIENT, NS_SERVER, NS_STANZAS, SCRAM, bare, domain_of, renamespace
from .tls import Credential, HandshakeFailed, TlsLink, client_context, server_context

if TYPE_CHECKING:
    from .client import ClientNode
    from .federation import Federation
    from .interceptor import Interceptor


@dataclass(frozen=True)
class Outbound:
    """How a server verifies a remote server it connects to: 'pin' (with pins), 'pkix' or 'none'."""

    method: str = "pkix"
    pins: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Inbound:
    """How a server authenticates a remote server that connects to it: 'pin', 'pkix' or 'dialback'."""

    method: str = "pkix"
    pins: frozenset[str] = frozenset()


class Refused(Exception):
    """A server refused to route a message; ``error`` is the error stanza it returned."""

    def __init__(self, error: bytes) -> None:
        super().__init__("message refused")
        self.error = error


@dataclass
class Session:
    """A client's authenticated stream on its server."""

    jid: str
    link: TlsLink
    client: ClientNode
    view: View  # the server's view of this hop (server side)
    client_key: str | None = None
    carbons: bool = True


@dataclass
class S2SLink:
    origin: str
    target: str
    tls: TlsLink
    out_view: View  # the origin's view (TLS client side)
    in_view: View  # the receiving end's view (TLS server side)
    receiver: ServerNode | Interceptor


class ServerNode:
    """A server that takes part (or, with ``takes_part=False``, one that does not)."""

    def __init__(self, fed: Federation, domain: str, *, takes_part: bool = True, clock_offset: float = 0,
                 credential: Credential | None = None, client_certificate: bool = True) -> None:
        self.fed = fed
        self.domain = domain
        self.takes_part = takes_part
        self.clock_offset = clock_offset
        self.credential = credential or fed.public_ca.issue(domain, f"server-{domain}")
        self.client_certificate = client_certificate
        self._generation = 1
        self.signing = fed.keys.signing_key(f"server/{domain}/1")
        self.keyset = KeySet(domain, (PublishedKey(self.signing.public),))
        self.outbound: dict[str, Outbound] = {}
        self.inbound: dict[str, Inbound] = {}
        #: domains seen taking part, and until when that is remembered (like MTA-STS max_age)
        self.remembered: dict[str, datetime] = {}
        self.remember_for = timedelta(days=7)
        self.sessions: dict[str, Session] = {}
        self.links: dict[str, S2SLink] = {}
        self.offline: dict[str, list[tuple[bytes, datetime, View, str | None]]] = {}
        self.archive: dict[str, list[tuple[bytes, datetime]]] = {}
        self.replay_cache: set[str] = set()
        self.users: dict[str, tuple[bytes, bytes, bytes, int]] = {}
        self.dialback_secret = fed.keys.signing_key(f"dialback/{domain}").seed()
        #: an on-path attacker between this server's signing and the wire (strip, tamper, replay)
        self.outbound_filter: Callable[[bytes], bytes] | None = None
        self.log: list[str] = []

    # --- time and keys ------------------------------------------------------------------
    def now(self) -> datetime:
        return self.fed.clock.now + timedelta(seconds=self.clock_offset)

    def rotate_key(self) -> None:
        """Publish a new attestation key; the old one stays verifiable as retired."""
        self._generation += 1
        new = self.fed.keys.signing_key(f"server/{self.domain}/{self._generation}")
        self.keyset = self.keyset.rotated(new.public, self.now(), self.fed.max_skew)
        self.signing = new

    def disco(self) -> tuple[bool, KeySet | None]:
        """What service discovery on this server answers: the feature, and the published keys."""
        return (True, self.keyset) if self.takes_part else (False, None)

    # --- c2s ---------------------------------------------------------------------------
    def add_user(self, node: str, password: str) -> None:
        mech = ScramMechanism(SCRAM)
        self.users[node] = mech.make_auth_info(password, iteration_count=4096)

    def accept_c2s(self, client: ClientNode, link: TlsLink) -> Session:
        """SASL SCRAM-SHA-256 through the TLS link, then resource binding."""
        mech = ScramMechanism(SCRAM)
        server = mech.make_server(lambda username: self.users[username])
        scram = ScramClient([SCRAM], client.jid.split("@")[0], client.password)
        server.set_client_first(link.client_to_server(scram.get_client_first().encode()).decode())
        scram.set_server_first(link.server_to_client(server.get_server_first().encode()).decode())
        server.set_client_final(link.client_to_server(scram.get_client_final().encode()).decode())
        scram.set_server_final(link.server_to_client(server.get_server_final().encode()).decode())
        facts = link.facts(side="server")
        view = View(peer=client.jid, side=Side.SERVER, tls=facts.version, cipher=facts.cipher,
                    spki=facts.server_spki, method=SCRAM, result=Result.PASS)
        session = Session(client.jid, link, client, view)
        self.sessions[client.jid] = session
        return session

    def client_key_announced(self, session: Session, data: bytes) -> None:
        iq = parse_stanza(data)
        element = iq.find(f"{{{NS}}}client-key")
        if element is not None and self.takes_part:
            session.client_key = element.get("key")

    def from_client(self, session: Session, data: bytes) -> None:
        """A message from a local client: anti-forgery, then route it."""
        root = parse_stanza(data)
        root.set("from", session.jid)
        fields = message_fields(root)
        if not self.takes_part:
            self._route_remote(session, root, fields, None, None, None)
            return
        decision = filter_client_path(root, fields, session.jid, domain=self.domain, client_key=session.client_key,
                                      now=self.now(), max_skew=self.fed.max_skew)
        in_view = decision.in_view(session.view)
        prev_key = session.client_key if decision.kept is not None else None
        if decision.removed:
            self.log.append(f"{self.domain}: removed {decision.removed} forged attestation(s) from {session.jid}")
        if domain_of(fields.to) != self.domain:
            self._route_remote(session, copy.deepcopy(root), fields, decision.kept, prev_key, in_view)
        for other in self.sessions.values():
            if bare(other.jid) == bare(session.jid) and other.jid != session.jid and other.carbons:
                self._carbon(other, root, fields, decision.kept, prev_key, in_view)

    def _error(self, fields: MessageFields, condition: str, text: str, hop: UnverifiedHop | None) -> etree._Element:
        """The error a refused message turns into, addressed to its sender."""
        error = etree.Element(f"{{{NS_CLIENT}}}message", nsmap={None: NS_CLIENT})
        error.set("type", "error")
        error.set("from", fields.to)
        error.set("to", fields.sender)
        error.set("id", fields.id)
        err = etree.SubElement(error, f"{{{NS_CLIENT}}}error")
        err.set("type", "cancel")
        err.set("by", self.domain)
        etree.SubElement(err, f"{{{NS_STANZAS}}}{condition}", nsmap={None: NS_STANZAS})
        if hop is not None:
            detail = etree.SubElement(err, f"{{{NS}}}unverified-hop", nsmap={None: NS})
            for key, value in hop.attributes().items():
                detail.set(key, value)
        txt = etree.SubElement(err, f"{{{NS_STANZAS}}}text", nsmap={None: NS_STANZAS})
        txt.text = text
        self.log.append(f"{self.domain}: refused {fields.id}: {text}")
        return error

    def _refuse(self, session: Session, fields: MessageFields, condition: str, text: str,
                hop: UnverifiedHop | None) -> None:
        raise Refused(session.link.server_to_client(serialize(self._error(fields, condition, text, hop))))

    def _route_remote(self, session: Session, root: etree._Element, fields: MessageFields,
                      previous: Attestation | None, prev_key: str | None, in_view: View | None) -> None:
        remote = domain_of(fields.to)
        try:
            link = self.link_to(remote)
        except HandshakeFailed as exc:
            method = self.outbound.get(remote, Outbound()).method
            self._refuse(session, fields, "remote-server-not-found", f"{self.domain} did not connect to {remote}: {exc}",
                         UnverifiedHop(remote, method, exc.reason, fields.require) if self.takes_part else None)
            return
        if self.takes_part and fields.require and not self.fed.servers[remote].disco()[0]:
            self._refuse(session, fields, "policy-violation",
                         f"{remote} does not take part in trust-path, so its hops cannot be verified",
                         UnverifiedHop(remote, link.out_view.method, Reason.NOT_PARTICIPATING, fields.require))
        if self.takes_part and fields.require:
            hop = unmet_requirement(fields.require, (link.out_view, previous.out_view if previous else None))
            if hop is not None:
                self._refuse(session, fields, "policy-violation",
                             f"the hop to {hop.peer} is verified by '{hop.method}' only, "
                             f"and the sender required '{fields.require}'", hop)
        if self.takes_part and not _path_full(root):
            assert in_view is not None
            att = attest(fields, self.signing, signer=self.domain, time=self.now(), previous=previous,
                         prev_key=prev_key, in_view=in_view, out_view=link.out_view)
            add_attestation(root, att)
        data = serialize(renamespace(root, NS_CLIENT, NS_SERVER))
        if self.outbound_filter is not None:
            data = self.outbound_filter(data)
        try:
            link.receiver.from_server(link, link.tls.client_to_server(data))
        except Refused as refused:  # the remote refused it: the error comes back to the sender
            self.log.append(f"{self.domain}: {remote} refused {fields.id}")
            raise Refused(session.link.server_to_client(link.tls.server_to_client(refused.error))) from None

    def link_to(self, remote: str) -> S2SLink:
        """The outbound s2s link to ``remote``, set up on first use with the configured check."""
        link = self.links.get(remote)
        if link is not None:
            return link
        policy = self.outbound.get(remote, Outbound())
        receiver = self.fed.endpoint(self.domain, remote)
        ctx = client_context((self.fed.public_ca.ca_file,), verify=policy.method == "pkix",
                             credential=self.credential if self.client_certificate else None)
        tls = TlsLink(ctx, receiver.inbound_context(), remote, receiver.credential_for(remote))
        facts = tls.facts(side="client")
        if policy.method == "pin" and facts.server_spki not in policy.pins:
            raise HandshakeFailed("pin-mismatch", f"{remote} presented a key that matches none of its pins", facts)
        out_view = View(peer=remote, side=Side.CLIENT, tls=facts.version, cipher=facts.cipher,
                        spki=facts.server_spki, method=policy.method,
                        result=Result.PASS if policy.method != "none" else Result.NONE)
        in_view = receiver.accept_s2s(self.domain, tls)
        link = S2SLink(self.domain, remote, tls, out_view, in_view, receiver)
        self.links[remote] = link
        return link

    def preflight(self, session: Session, data: bytes) -> bytes:
        """Answer a client's pre-flight query with the <out/> view it would attest now."""
        iq = parse_stanza(data)
        query = iq.find(f"{{{NS}}}preflight")
        domain = query.get("domain") if query is not None else None
        answer = etree.Element(f"{{{NS_CLIENT}}}iq", nsmap={None: NS_CLIENT})
        answer.set("type", "result")
        answer.set("id", iq.get("id", ""))
        answer.set("to", session.jid)
        policy = self.outbound.get(domain or "", Outbound())
        try:
            view = self.link_to(domain).out_view if domain in self.fed.servers else None
        except HandshakeFailed as exc:
            facts = exc.facts
            view = None if facts is None else View(peer=domain, side=Side.CLIENT, tls=facts.version,
                                                   cipher=facts.cipher, spki=facts.server_spki,
                                                   method=policy.method, result=Result.FAIL, reason=exc.reason)
        takes_part = self.fed.servers[domain].disco()[0] if domain in self.fed.servers else None
        answer.append(preflight_element(preflight_answer(domain or "", takes_part, view)))
        return session.link.server_to_client(serialize(answer))

    # --- s2s inbound ---------------------------------------------------------------------
    def inbound_context(self):  # type: ignore[no-untyped-def]
        return server_context(self.credential, client_ca_files=(self.fed.public_ca.ca_file,))

    def credential_for(self, name: str) -> Credential:
        return self.credential

    def accept_s2s(self, origin: str, tls: TlsLink) -> View:
        """Authenticate a connecting server: its certificate (pin or PKIX), else dialback."""
        facts = tls.facts(side="server")
        policy = self.inbound.get(origin, Inbound())
        method = "dialback"
        if facts.peer_der is not None and policy.method == "pin" and spki_sha256(facts.peer_der) in policy.pins:
            method = "pin"
        elif facts.peer_der is not None and policy.method in ("pkix", "pin") and _names(facts.peer_der, origin):
            method = "pkix"  # the TLS layer already checked the chain to a trusted CA
        if method == "dialback" and not self.fed.servers[origin].dialback_verify(
                origin, self.domain, stream_id := uuid.uuid4().hex,
                self.fed.servers[origin].dialback_key(origin, self.domain, stream_id)):
            return View(peer=origin, side=Side.SERVER, tls=facts.version, cipher=facts.cipher,
                        spki=facts.server_spki, method="dialback", result=Result.FAIL, reason="validation-failure")
        return View(peer=origin, side=Side.SERVER, tls=facts.version, cipher=facts.cipher, spki=facts.server_spki,
                    method=method, result=Result.PASS)

    def dialback_key(self, sender: str, receiver: str, stream_id: str) -> str:
        """XEP-0185: HMAC-SHA256 keyed with the hex SHA-256 of a secret."""
        secret = hashlib.sha256(self.dialback_secret).hexdigest().encode()
        return hmac.new(secret, f"{receiver} {sender} {stream_id}".encode(), hashlib.sha256).hexdigest()

    def dialback_verify(self, sender: str, receiver: str, stream_id: str, key: str) -> bool:
        return hmac.compare_digest(self.dialback_key(sender, receiver, stream_id), key)

    def upstream_takes_part(self, origin: str) -> bool:
        """Discovery over the link, and the remembered policy (like MTA-STS)."""
        feature, _ = self.fed.servers[origin].disco()
        if feature:
            self.remembered[origin] = self.now() + self.remember_for
        until = self.remembered.get(origin)
        return feature or (until is not None and self.now() <= until)

    def from_server(self, link: S2SLink, data: bytes) -> None:
        """A message from a remote server: check its chain, then deliver with our attestation."""
        root = parse_stanza(data)
        if not self.takes_part:
            self._deliver_all(renamespace(root, NS_SERVER, NS_CLIENT), None, None, None)
            return
        fields = message_fields(root)
        origin = link.origin
        takes_part = self.upstream_takes_part(origin)
        decision = receive_chain(root, fields, origin=origin, domain=self.domain, takes_part=takes_part,
                                 keys=self.fed.servers[origin].disco()[1], in_view=link.in_view, now=self.now(),
                                 max_skew=self.fed.max_skew, seen=self.replay_cache)
        if decision.error is not None:
            self.log.append(f"{self.domain}: removed an invalid path from {origin}: {decision.error}")
        self.replay_cache.update(decision.accepted)
        view = decision.in_view(link.in_view)
        if fields.require:
            hop = received_requirement_problem(fields.require, view, decision)
            if hop is not None:
                raise Refused(serialize(self._error(fields, "policy-violation", f"the hop from {origin} does not "
                                                    f"meet '{fields.require}' ({hop.reason})", hop)))
        self._deliver_all(renamespace(root, NS_SERVER, NS_CLIENT), decision.previous, decision.prev_key, view)

    def _deliver_all(self, root: etree._Element, previous: Attestation | None, prev_key: str | None,
                     in_view: View | None) -> None:
        to = root.get("to")
        targets = [s for s in self.sessions.values() if bare(s.jid) == bare(to)]
        if "/" in to:
            targets = [s for s in targets if s.jid == to] or targets
        if not targets:
            self.offline.setdefault(bare(to), []).append((serialize(root), self.now(), in_view, prev_key))
            return
        for session in targets:
            self._deliver(session, copy.deepcopy(root), previous, prev_key, in_view)

    def _deliver(self, session: Session, root: etree._Element, previous: Attestation | None,
                 prev_key: str | None, in_view: View | None, stored: datetime | None = None) -> None:
        if self.takes_part and in_view is not None and not _path_full(root):
            fields = message_fields(root)
            att = attest(fields, self.signing, signer=self.domain, time=self.now(), previous=previous,
                         prev_key=prev_key, in_view=in_view, out_view=session.view, stored=stored)
            add_attestation(root, att)
        data = serialize(root)
        self.archive.setdefault(bare(session.jid), []).append((data, self.now()))
        session.client.receive(session.link.server_to_client(data))

    def deliver_offline(self, session: Session) -> None:
        """Deliver what was stored while the client was offline, signed now, with 'stored'."""
        for data, arrived, in_view, prev_key in self.offline.pop(bare(session.jid), []):
            root = parse_stanza(data)
            path = decode_path(root)
            previous = path.attestations[-1] if path else None
            self._deliver(session, root, previous, prev_key, in_view, stored=arrived)

    def _carbon(self, other: Session, root: etree._Element, fields: MessageFields, previous: Attestation | None,
                prev_key: str | None, in_view: View | None) -> None:
        inner = copy.deepcopy(root)
        if self.takes_part and in_view is not None:
            att = attest(fields, self.signing, signer=self.domain, time=self.now(), previous=previous,
                         prev_key=prev_key, in_view=in_view, out_view=other.view)
            add_attestation(inner, att)
        outer = etree.Element(f"{{{NS_CLIENT}}}message", nsmap={None: NS_CLIENT})
        outer.set("from", bare(other.jid))
        outer.set("to", other.jid)
        outer.set("type", fields.type)
        outer.set("id", self.fed.next_id())
        sent = etree.SubElement(outer, f"{{{NS_CARBONS}}}sent", nsmap={None: NS_CARBONS})
        forwarded = etree.SubElement(sent, f"{{{NS_FORWARD}}}forwarded", nsmap={None: NS_FORWARD})
        forwarded.append(inner)
        other.client.receive(other.link.server_to_client(serialize(outer)))

    def archive_query(self, session: Session) -> list[bytes]:
        """MAM: each archived message as a <result/> with its <delay/>."""
        out = []
        for data, stamp in self.archive.get(bare(session.jid), []):
            message = parse_stanza(data)
            outer = etree.Element(f"{{{NS_CLIENT}}}message", nsmap={None: NS_CLIENT})
            outer.set("to", session.jid)
            outer.set("id", self.fed.next_id())
            result = etree.SubElement(outer, f"{{{NS_MAM}}}result", nsmap={None: NS_MAM})
            result.set("id", hashlib.sha256(data).hexdigest()[:12])
            forwarded = etree.SubElement(result, f"{{{NS_FORWARD}}}forwarded", nsmap={None: NS_FORWARD})
            delay = etree.SubElement(forwarded, f"{{{NS_DELAY}}}delay", nsmap={None: NS_DELAY})
            delay.set("stamp", format_time(stamp))
            forwarded.append(message)
            out.append(session.link.server_to_client(serialize(outer)))
        return out


def _path_full(root: etree._Element) -> bool:
    """At the limit, a server forwards the path unchanged rather than break it."""
    path = root.find(f"{{{NS}}}path")
    return path is not None and len(path) >= MAX_ATTESTATIONS


def _names(der: bytes, domain: str) -> bool:
    from cryptography import x509

    cert = x509.load_der_x509_certificate(der)
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    return domain in names.get_values_for_type(x509.DNSName)
