"""Client and server roles of the embedded federation.

Each role runs the reference logic exactly as an adapter for a real server or client
would: it reads the facts of its own TLS connections, signs with its own key, and
hands stanzas to the next role as bytes sent through a real TLS connection.  Attacker
roles sit where the brief puts them.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import itertools
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path as FsPath

from lxml import etree
from scramp import ScramClient, ScramMechanism

from ...core.attest import attest
from ...core.delivery import NS_RECEIPTS, DeliveryReport, report_element, report_of_stanza
from ...core.codec import (
    NS_CARBONS,
    NS_DELAY,
    NS_FORWARD,
    NS_MAM,
    add_attestation,
    decode_path,
    find_message,
    message_fields,
    parse_stanza,
    serialize,
)
from ...core.keys import KeySet, PublishedKey, SigningKey, spki_sha256
from ...core.model import (
    DEFAULT_MAX_SKEW,
    MAX_ATTESTATIONS,
    NS,
    Attestation,
    Chain,
    KeySource,
    MessageFields,
    Reason,
    Result,
    Side,
    View,
)
from ...core.timefmt import format_time
from ...core.preflight import PreflightAnswer, decode_preflight, preflight_answer, preflight_element
from ...core.receive import verify_stanza
from ...core.require import requirement_problem
from ...core.server import UnverifiedHop, filter_client_path, receive_chain, received_requirement_problem, \
    unmet_requirement
from ...core.verify import Anchor, Report
from .tls import Authority, Credential, HandshakeFailed, KeyFactory, TlsLink, client_context, new_workdir, \
    server_context

NS_CLIENT = "jabber:client"
NS_SERVER = "jabber:server"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
SCRAM = "SCRAM-SHA-256"


def bare(jid: str) -> str:
    return jid.split("/", 1)[0]


def domain_of(jid: str) -> str:
    return bare(jid).split("@", 1)[-1]


def renamespace(root: etree._Element, old: str, new: str) -> etree._Element:
    """A copy of ``root`` with its stanza namespace changed (jabber:client <-> jabber:server).

    That change happens at every s2s hop; what is signed must not notice it.
    """
    def convert(element: etree._Element, nsmap: dict[str | None, str] | None) -> etree._Element:
        qname = etree.QName(element)
        if qname.namespace != old:
            return copy.deepcopy(element)
        out = etree.Element(f"{{{new}}}{qname.localname}", attrib=dict(element.attrib), nsmap=nsmap)
        out.text, out.tail = element.text, element.tail
        for child in element:
            out.append(convert(child, None) if isinstance(child.tag, str) else copy.deepcopy(child))
        return out

    return convert(root, {None: new})


@dataclass
class Clock:
    now: datetime

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


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


class RequirementNotMet(Exception):
    """The sending client's own first hop cannot meet the <require/> it was asked to send."""


class Federation:
    """The world of one scenario: a clock, a public CA, servers, clients and attackers."""

    def __init__(self, *, seed: bytes | None = None, start: datetime | None = None,
                 max_skew: int = DEFAULT_MAX_SKEW) -> None:
        self.keys = KeyFactory(seed)
        self._workdir = new_workdir()
        self.dir = FsPath(self._workdir.name)
        self.clock = Clock(start or datetime.now(UTC).replace(microsecond=0))
        self.max_skew = max_skew
        self.public_ca = Authority("Public CA", self.keys, self.dir)
        self.servers: dict[str, ServerNode] = {}
        self.interceptors: dict[tuple[str, str], Interceptor] = {}
        self._ids = itertools.count(1)
        self._seeded = seed is not None

    def close(self) -> None:
        self._workdir.cleanup()

    def __enter__(self) -> Federation:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def next_id(self) -> str:
        n = next(self._ids)
        if self._seeded:
            return f"tp-{n:04d}"
        return uuid.uuid4().hex[:16]

    def server(self, domain: str, **options: object) -> ServerNode:
        node = ServerNode(self, domain, **options)  # type: ignore[arg-type]
        self.servers[domain] = node
        return node

    def endpoint(self, origin: str, target: str) -> ServerNode | Interceptor:
        return self.interceptors.get((origin, target)) or self.servers[target]


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


class Interceptor:
    """A TLS-terminating man in the middle on an s2s hop, holding CA-valid certificates for
    both domains (the 2023 jabber.ru case): it relays what it receives, unchanged."""

    def __init__(self, fed: Federation, origin: str, target: str) -> None:
        self.fed = fed
        self.origin = origin
        self.target = target
        self.credentials = {name: fed.public_ca.issue(name, f"mitm-{name}") for name in (origin, target)}
        self._upstream: S2SLink | None = None

    def inbound_context(self):  # type: ignore[no-untyped-def]
        return server_context(self.credentials[self.target], client_ca_files=(self.fed.public_ca.ca_file,))

    def credential_for(self, name: str) -> Credential:
        return self.credentials[name]

    def accept_s2s(self, origin: str, tls: TlsLink) -> View:
        facts = tls.facts(side="server")
        return View(peer=origin, side=Side.SERVER, tls=facts.version, cipher=facts.cipher, spki=facts.server_spki,
                    method="pkix", result=Result.PASS)

    def from_server(self, link: S2SLink, data: bytes) -> None:
        target = self.fed.servers[self.target]
        if self._upstream is None:
            ctx = client_context((self.fed.public_ca.ca_file,), verify=True, credential=self.credentials[self.origin])
            tls = TlsLink(ctx, target.inbound_context(), self.target, target.credential)
            facts = tls.facts(side="client")
            out_view = View(peer=self.target, side=Side.CLIENT, tls=facts.version, cipher=facts.cipher,
                            spki=facts.server_spki, method="pkix", result=Result.PASS)
            self._upstream = S2SLink(self.origin, self.target, tls, out_view,
                                     target.accept_s2s(self.origin, tls), target)
        self._upstream.receiver.from_server(self._upstream, self._upstream.tls.client_to_server(data))


@dataclass
class Inbox:
    stanza: bytes
    report: Report | None
    error: bool = False
    wrapper: str | None = None


class ClientNode:
    """A client with the trust-path plugin: pins its server, signs what it sends, verifies what it gets."""

    def __init__(self, fed: Federation, jid: str, server: ServerNode, *, password: str = "pencil",
                 verify: str = "pin", takes_part: bool = True, clock_offset: float = 0) -> None:
        self.fed = fed
        self.jid = jid
        self.server = server
        self.password = password
        self.verify_method = verify
        self.takes_part = takes_part
        self.clock_offset = clock_offset
        self.pins = frozenset({server.credential.spki})  # pinned at first use, before this scenario
        self.sessions_opened = 0
        self.key = fed.keys.signing_key(f"client/{jid}")
        self.view: View | None = None
        self.session: Session | None = None
        self.anchor_keys: KeySet | None = None
        self.inbox: list[Inbox] = []
        #: the sig of this client's attestation on each message it sent, by (recipient's bare JID, id),
        #: None when it sent it without one (for delivery reports)
        self.sent: dict[tuple[str, str], str | None] = {}
        server.add_user(jid.split("@")[0], password)

    def now(self) -> datetime:
        return self.fed.clock.now + timedelta(seconds=self.clock_offset)

    def connect(self) -> None:
        server = self.server
        ctx = client_context((self.fed.public_ca.ca_file,), verify=self.verify_method == "pkix")
        link = TlsLink(ctx, server_context(server.credential), server.domain, server.credential)
        facts = link.facts(side="client")
        if self.verify_method == "pin" and facts.server_spki not in self.pins:
            # abort before any credential is sent
            raise HandshakeFailed("pin-mismatch", f"{server.domain} presented an unpinned key")
        self.view = View(peer=server.domain, side=Side.CLIENT, tls=facts.version, cipher=facts.cipher,
                         spki=facts.server_spki, method=self.verify_method,
                         result=Result.PASS if self.verify_method != "none" else Result.NONE)
        self.session = server.accept_c2s(self, link)
        self.sessions_opened += 1
        if self.sessions_opened > 1:  # a new attestation key for every session
            self.key = self.fed.keys.signing_key(f"client/{self.jid}/{self.sessions_opened}")
        if self.takes_part:
            iq = etree.Element(f"{{{NS_CLIENT}}}iq", nsmap={None: NS_CLIENT})
            iq.set("type", "set")
            iq.set("id", self.fed.next_id())
            key = etree.SubElement(iq, f"{{{NS}}}client-key", nsmap={None: NS})
            key.set("key", self.key.public)
            server.client_key_announced(self.session, link.client_to_server(serialize(iq)))
            _, self.anchor_keys = server.disco()  # learned over this verified link
        server.deliver_offline(self.session)

    def preflight(self, domain: str) -> PreflightAnswer:
        """Ask this client's server how it would reach ``domain`` now."""
        assert self.session is not None
        iq = etree.Element(f"{{{NS_CLIENT}}}iq", nsmap={None: NS_CLIENT})
        iq.set("type", "get")
        iq.set("id", self.fed.next_id())
        etree.SubElement(iq, f"{{{NS}}}preflight", nsmap={None: NS}).set("domain", domain)
        answer = self.server.preflight(self.session, self.session.link.client_to_server(serialize(iq)))
        return decode_preflight(parse_stanza(answer).find(f"{{{NS}}}preflight"))

    def refresh_keys(self) -> None:
        _, self.anchor_keys = self.server.disco()

    def anchor(self) -> Anchor:
        assert self.view is not None
        return Anchor(server=self.server.domain, keys=self.anchor_keys or KeySet(self.server.domain, ()),
                      me=self.jid, view=self.view, takes_part=self.server.takes_part)

    def message(self, to: str, body: str, *, require: str | None = None) -> tuple[etree._Element, MessageFields]:
        mid = self.fed.next_id()
        root = etree.Element(f"{{{NS_CLIENT}}}message", nsmap={None: NS_CLIENT})
        root.set("to", to)
        root.set("id", mid)
        root.set("type", "chat")
        etree.SubElement(root, f"{{{NS_CLIENT}}}body").text = body
        if require:
            etree.SubElement(root, f"{{{NS}}}require", nsmap={None: NS}).set("verdict", require)
        fields = MessageFields(sender=self.jid, to=to, id=mid, type="chat", bodies=((None, body),), require=require)
        if self.takes_part and self.view is not None:
            att = attest(fields, self.key, signer=self.jid, time=self.now(), out_view=self.view)
            add_attestation(root, att)
            self.sent[(bare(to), mid)] = att.sig
        else:
            self.sent[(bare(to), mid)] = None
        return root, fields

    def acknowledge(self, received: Inbox, *,
                    edit: Callable[[DeliveryReport], DeliveryReport] | None = None) -> str:
        """Send a delivery receipt (XEP-0184) for ``received``, with this client's report of its
        path (XEP: Delivery Reports); ``edit`` changes the report first (a buggy or lying client)."""
        assert self.session is not None and self.view is not None and received.report is not None
        message = find_message(parse_stanza(received.stanza)).message
        report = report_of_stanza(received.stanza, received.report)
        if edit is not None:
            report = edit(report)
        root = etree.Element(f"{{{NS_CLIENT}}}message", nsmap={None: NS_CLIENT})
        root.set("to", message.get("from"))
        root.set("id", self.fed.next_id())
        root.set("type", message.get("type") or "normal")
        etree.SubElement(root, f"{{{NS_RECEIPTS}}}received", nsmap={None: NS_RECEIPTS}).set("id", report.for_id)
        root.append(report_element(report))
        root.set("from", self.jid)
        fields = message_fields(root)
        del root.attrib["from"]  # the server stamps it
        if self.takes_part:
            add_attestation(root, attest(fields, self.key, signer=self.jid, time=self.now(), out_view=self.view))
        self.server.from_client(self.session, self.session.link.client_to_server(serialize(root)))
        return fields.id

    def send(self, to: str, body: str, *, require: str | None = None,
             extra: Callable[[etree._Element, MessageFields], None] | None = None) -> str:
        assert self.session is not None and self.view is not None
        if require is not None:
            if requirement_problem(self.view, require) is not None:
                raise RequirementNotMet(f"this client verified {self.server.domain} by '{self.view.method}', "
                                        f"which cannot meet require='{require}'")
        root, fields = self.message(to, body, require=require)
        if extra is not None:
            extra(root, fields)
        try:
            self.server.from_client(self.session, self.session.link.client_to_server(serialize(root)))
        except Refused as refused:
            self.inbox.append(Inbox(refused.error, None, error=True))
        return fields.id

    def receive(self, data: bytes) -> None:
        received = find_message(parse_stanza(data))
        report = verify_stanza(data, self.anchor(), self.now(), max_skew=self.fed.max_skew)
        self.inbox.append(Inbox(data, report, wrapper=received.wrapper))

    def forge_server_attestation(self, root: etree._Element, fields: MessageFields) -> None:
        """A malicious client: add an attestation that claims to be its server's."""
        fake = SigningKey.generate() if not self.fed._seeded else self.fed.keys.signing_key("forger")
        path = decode_path(root)
        previous = path.attestations[-1] if path else None
        view = View(peer=self.jid, side=Side.SERVER, tls="1.3", cipher="1302", spki=self.view.spki if self.view
                    else None, method=SCRAM, result=Result.PASS, chain=Chain.PASS, key_source=KeySource.LINK)
        out = View(peer=domain_of(fields.to), side=Side.CLIENT, tls="1.3", cipher="1302",
                   spki=self.view.spki if self.view else None, method="pin", result=Result.PASS)
        add_attestation(root, attest(fields, fake, signer=self.server.domain, time=self.now(), previous=previous,
                                     prev_key=self.key.public if previous else None, in_view=view, out_view=out))
