"""A server of the embedded federation: c2s sessions with SCRAM, s2s links with their configured
check (pin, PKIX, dialback), and the reference core's server rules on every message it routes,
receives and delivers (anti-forgery, the chain check, <require/>, its own records)."""

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
from scramp import ScramMechanism

from ...core.attest import sign_record
from ...core.codec import NS_CARBONS, NS_DELAY, NS_FORWARD, NS_MAM, add_record, decode_view, find_path_element, \
    message_fields, parse_stanza, path_records, serialize
from ...core.disco import parse_key
from ...core.errors import UsageError
from ...core.keys import KeySet, PublishedKey, SigningKey, spki_sha256
from ...core.constants import DEFAULT_CACHE_FOR
from ...core.model import MAX_RECORDS, NS, Chain, KeySource, MessageFields, Reason, Result, View
from ...core.preflight import preflight_answer, preflight_element
from ...core.server import (
    ChainDecision,
    FetchedKeys,
    UnverifiedHop,
    delivery_requirement_problem,
    filter_client_path,
    receive_chain,
    received_requirement_problem,
    sending_requirement_problem,
    unmet_requirement,
)
from ...core.timefmt import format_time
from .stanzas import NS_CLIENT, NS_SERVER, NS_STANZAS, SCRAM, SCRAM_PLUS, bare, domain_of, renamespace
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
    """A server refused to route a message; ``error`` is the error stanza it returned, over
    ``link`` (its own s2s link back to the sender's server) when it is a remote server's."""

    def __init__(self, error: bytes, link: S2SLink | None = None) -> None:
        super().__init__("message refused")
        self.error = error
        self.link = link


@dataclass
class Session:
    """A client's authenticated stream on its server."""

    jid: str
    link: TlsLink
    client: ClientNode
    view: View  # the server's view of this hop (server side): method = how SASL was bound
    session_key: str | None = None  # announced with <session-key/> (XEP: Session Key Announcement)
    #: the client's own view of this hop, announced with its session key: what the last hop of a
    #: message with <require/> is judged by (XEP: Requiring Verified Hops)
    announced_view: View | None = None
    carbons: bool = True


@dataclass(frozen=True)
class Arrival:
    """What a server found when a message reached it: the fields of its record before its out-view."""

    in_view: View
    chain: Chain
    chain_reason: Reason | None = None
    vouch: KeySource | None = None
    removed: int | None = None


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
        #: other domains' keys the operator configured (key source ``config``): never fetched
        self.configured_keys: dict[str, KeySet] = {}
        #: keys fetched from other domains, used until their cache-for runs out
        self.key_cache: dict[str, FetchedKeys] = {}
        #: how long others may use this server's published key set (disco 'cache-for')
        self.cache_for = DEFAULT_CACHE_FOR
        #: False while this server leaves key queries unanswered (overloaded, a broken link)
        self.answers_key_queries = True
        self._next_signing: SigningKey | None = None
        self.sessions: dict[str, Session] = {}
        self.links: dict[str, S2SLink] = {}
        self.offline: dict[str, list[tuple[bytes, datetime, Arrival | None]]] = {}
        self.archive: dict[str, list[tuple[bytes, datetime]]] = {}
        self.users: dict[str, tuple[bytes, bytes, bytes, int]] = {}
        self.dialback_secret = fed.keys.signing_key(f"dialback/{domain}").seed()
        #: an on-path attacker between this server's signing and the wire (strip, tamper, replay)
        self.outbound_filter: Callable[[bytes], bytes] | None = None
        self.log: list[str] = []

    # --- time and keys ------------------------------------------------------------------
    def now(self) -> datetime:
        return self.fed.clock.now + timedelta(seconds=self.clock_offset)

    def rotate_key(self) -> None:
        """Publish a new record key; the old one stays verifiable as retired."""
        self._generation += 1
        new = self.fed.keys.signing_key(f"server/{self.domain}/{self._generation}")
        self.keyset = self.keyset.rotated(new.public, self.now(), self.fed.max_skew)
        self.signing = new

    def publish_next_key(self) -> None:
        """Publish the key this server will sign with next (XEP: Discovery and Keys, 'next-key'); it keeps
        signing with the current one until :meth:`switch_to_next_key`."""
        self._generation += 1
        self._next_signing = self.fed.keys.signing_key(f"server/{self.domain}/{self._generation}")
        self.keyset = self.keyset.with_next(self._next_signing.public)

    def switch_to_next_key(self) -> None:
        """Sign with the published next key from now on; the old one is retired."""
        if self._next_signing is None:
            raise UsageError(f"{self.domain} has published no next key")
        self.keyset = self.keyset.rotated(self._next_signing.public, self.now(), self.fed.max_skew)
        self.signing, self._next_signing = self._next_signing, None

    def disco(self) -> tuple[bool, KeySet | None]:
        """What service discovery on this server answers: the feature, and the published keys."""
        return (True, self.keyset) if self.takes_part else (False, None)

    # --- c2s ---------------------------------------------------------------------------
    def add_user(self, node: str, password: str) -> None:
        mech = ScramMechanism(SCRAM)
        self.users[node] = mech.make_auth_info(password, iteration_count=4096)

    def accept_c2s(self, client: ClientNode, link: TlsLink, *, offer_plus: bool = True) -> Session:
        """SASL through the TLS link, then resource binding.  The client uses SCRAM-SHA-256-PLUS
        with tls-server-end-point channel binding when the server offers it and the client wants
        it; a man in the middle on the TLS link then fails SASL (the two ends bind different
        certificates), so this server's view of the hop says whether it checked that binding."""
        plus = offer_plus and client.channel_binding
        name = SCRAM_PLUS if plus else SCRAM
        facts = link.facts(side="server")
        server = ScramMechanism(name).make_server(
            lambda username: self.users[username],
            channel_binding=("tls-server-end-point", facts.end_point) if plus else None)
        scram = client.scram(name, link)
        server.set_client_first(link.client_to_server(scram.get_client_first().encode()).decode())
        scram.set_server_first(link.server_to_client(server.get_server_first().encode()).decode())
        server.set_client_final(link.client_to_server(scram.get_client_final().encode()).decode())
        scram.set_server_final(link.server_to_client(server.get_server_final().encode()).decode())
        view = View("tls-server-end-point" if plus else "sasl", Result.PASS, facts.version, facts.spki)
        session = Session(client.jid, link, client, view)
        self.sessions[client.jid] = session
        return session

    def session_key_announced(self, session: Session, data: bytes) -> None:
        iq = parse_stanza(data)
        element = iq.find(f"{{{NS}}}session-key")
        if element is not None and self.takes_part:
            _, session.session_key = parse_key(element.get("key") or "")
            view = element.get("view")
            session.announced_view = decode_view(view, "view") if view is not None else None

    def from_client(self, session: Session, data: bytes) -> None:
        """A message from a local client: anti-forgery, then route it."""
        root = parse_stanza(data)
        root.set("from", session.jid)
        fields = message_fields(root)
        if not self.takes_part:
            self._route_remote(session, root, fields, None)
            return
        decision = filter_client_path(root, session.session_key)
        if fields.require:
            # the sender's own hop, before any route (XEP: Requiring Verified Hops)
            hop = sending_requirement_problem(fields.require, session.jid, session.view, decision)
            if hop is not None:
                self._refuse(session, fields, "policy-violation",
                             f"the hop from {hop.peer} is verified by '{hop.method}' only ({hop.reason}), "
                             f"and the sender required '{fields.require}'", hop)
        arrival = Arrival(session.view, decision.chain, decision.chain_reason, decision.vouch, decision.removed or None)
        if decision.removed:
            self.log.append(f"{self.domain}: removed {decision.removed} forged record(s) from {session.jid}")
        if domain_of(fields.to) != self.domain:
            self._route_remote(session, copy.deepcopy(root), fields, arrival,
                               decision.kept.out_view if decision.kept is not None else None)
        for other in self.sessions.values():
            if bare(other.jid) == bare(session.jid) and other.jid != session.jid and other.carbons:
                self._carbon(other, root, fields, arrival)

    def _sign(self, root: etree._Element, fields: MessageFields, arrival: Arrival, out_view: View, *,
              out_peer: str | None = None, stored: datetime | None = None) -> None:
        """Add this server's record to ``root``'s path (at the limit, the path goes on unchanged)."""
        element = find_path_element(root)
        previous = path_records(element) if element is not None else []
        if len(previous) >= MAX_RECORDS:
            return
        add_record(root, sign_record(fields, self.signing, previous=" ".join(previous), signer=self.domain,
                                     time=self.now(), in_view=arrival.in_view, chain=arrival.chain,
                                     chain_reason=arrival.chain_reason, vouch=arrival.vouch,
                                     removed=arrival.removed, out_view=out_view, out_peer=out_peer, stored=stored))

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

    def _sign_refusal(self, error: etree._Element, out_view: View, out_peer: str | None = None) -> bytes:
        """A refusal this server sends, with its own record (XEP: Requiring Verified Hops): the
        hop it sends the error on, and nothing before it (no in-view: nothing brought the error)."""
        if self.takes_part:
            add_record(error, sign_record(message_fields(error), self.signing, signer=self.domain, time=self.now(),
                                          out_view=out_view, out_peer=out_peer))
        return serialize(error)

    def _refuse(self, session: Session, fields: MessageFields, condition: str, text: str,
                hop: UnverifiedHop | None) -> None:
        error = self._error(fields, condition, text, hop)
        raise Refused(session.link.server_to_client(self._sign_refusal(error, session.view, session.jid)))

    def _refusal_from(self, link: S2SLink, data: bytes, session: Session) -> bytes:
        """A refusal that came over ``link`` (the refusing server's own link to this one):
        received like any message from that domain (what arrived, by a lookup of its keys), and
        delivered to ``session`` with this server's record."""
        root = renamespace(parse_stanza(data), NS_SERVER, NS_CLIENT)
        if not self.takes_part or find_path_element(root) is None:
            return serialize(root)
        decision = self._what_arrived(root, link.origin)
        self._sign(root, message_fields(root), Arrival(link.in_view, decision.chain, decision.chain_reason,
                                                       decision.vouch), session.view, out_peer=session.jid)
        return serialize(root)

    def _what_arrived(self, root: etree._Element, origin: str) -> ChainDecision:
        """What arrived from ``origin`` (XEP: At the Receiving Server): a lookup of its keys, fetched
        once more for a key not in the cached set (XEP: Discovery and Keys)."""
        takes_part = self.upstream_takes_part(origin)
        keys, source, failed = self.fetch_keys(origin) if takes_part else (None, KeySource.NONE, False)
        decision = receive_chain(root, origin=origin, takes_part=takes_part, keys=keys, key_source=source,
                                 keys_unavailable=failed)
        if decision.refetch and not failed:
            keys, source, failed = self.fetch_keys(origin, again=True)
            decision = receive_chain(root, origin=origin, takes_part=takes_part, keys=keys, key_source=source,
                                     keys_unavailable=failed)
        if decision.error is not None:
            self.log.append(f"{self.domain}: removed an invalid path from {origin}: {decision.error}")
        return decision

    def _refuse_remote(self, origin: str, error: etree._Element) -> None:
        """Return a refusal to the sending server ``origin`` over this server's own link to it,
        signed with that link's out-view (or, when it cannot be set up, unsigned: as Prosody does,
        the refusal then waits in a queue that is bounced, and the sender hears nothing)."""
        try:
            back = self.link_to(origin)
        except HandshakeFailed:
            raise Refused(serialize(error)) from None
        data = self._sign_refusal(error, back.out_view)
        raise Refused(back.tls.client_to_server(serialize(renamespace(parse_stanza(data), NS_CLIENT, NS_SERVER))),
                      back)

    def _route_remote(self, session: Session, root: etree._Element, fields: MessageFields,
                      arrival: Arrival | None, client_view: View | None = None) -> None:
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
            hop = unmet_requirement(fields.require, ((remote, link.out_view), (self.domain, client_view)))
            if hop is not None:
                self._refuse(session, fields, "policy-violation",
                             f"the hop to {hop.peer} is verified by '{hop.method}' only, "
                             f"and the sender required '{fields.require}'", hop)
        if self.takes_part and arrival is not None:
            self._sign(root, fields, arrival, link.out_view)
        data = serialize(renamespace(root, NS_CLIENT, NS_SERVER))
        if self.outbound_filter is not None:
            data = self.outbound_filter(data)
        try:
            link.receiver.from_server(link, link.tls.client_to_server(data))
        except Refused as refused:  # the remote refused it: the error comes back to the sender
            self.log.append(f"{self.domain}: {remote} refused {fields.id}")
            back = self._refusal_from(refused.link, refused.error, session) if refused.link is not None else \
                link.tls.server_to_client(refused.error)
            raise Refused(session.link.server_to_client(back)) from None

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
        out_view = View(policy.method, Result.PASS if policy.method != "none" else Result.NONE, facts.version,
                        facts.spki)
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
            view = None if facts is None else View(policy.method, Result.FAIL, facts.version, facts.spki, exc.reason)
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
            return View("dialback", Result.FAIL, facts.version, facts.spki, "validation-failure")
        return View(method, Result.PASS, facts.version, facts.spki)

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

    def fetch_keys(self, origin: str, *, again: bool = False) -> tuple[KeySet | None, KeySource, bool]:
        """``origin``'s published keys, asked for over this server's own outgoing link to it, and
        the key source that link makes them: as strong as this server's check of that link.
        Keys the operator configured are used as they are; fetched ones until their cache-for
        runs out, or until ``again`` (a record named a key not among them).  The third value says
        the fetch failed (no answer): then nothing is cached, so the next message asks again."""
        if origin in self.configured_keys:
            return self.configured_keys[origin], KeySource.CONFIG, False
        cached = self.key_cache.get(origin)
        if cached is not None and not again and cached.usable(self.now()):
            return cached.keys, cached.source, False
        if not self.fed.servers[origin].answers_key_queries:
            self.key_cache.pop(origin, None)
            return None, KeySource.NONE, True
        link = self.link_to(origin)
        answer = self.fed.key_answer(self.domain, origin)
        method = link.out_view.method if link.out_view.result is Result.PASS else "none"
        source = KeySource({"pin": "s2s-pin", "dane-ee": "s2s-dane", "dane-ta": "s2s-dane",
                            "pkix": "s2s-pkix"}.get(method, "s2s-none"))
        self.key_cache[origin] = FetchedKeys(answer, source, self.now(), self.fed.servers[origin].cache_for)
        return answer, source, False

    def from_server(self, link: S2SLink, data: bytes) -> None:
        """A message from a remote server: decide what arrived, then deliver with our record."""
        root = parse_stanza(data)
        if not self.takes_part:
            self._deliver_all(renamespace(root, NS_SERVER, NS_CLIENT), None)
            return
        fields = message_fields(root)
        origin = link.origin
        decision = self._what_arrived(root, origin)
        if fields.require:
            hop = received_requirement_problem(fields.require, origin, link.in_view, decision)
            if hop is not None:
                self._refuse_remote(origin, self._error(fields, "policy-violation", f"the hop from {origin} does "
                                                        f"not meet '{fields.require}' ({hop.reason})", hop))
        arrival = Arrival(link.in_view, decision.chain, decision.chain_reason, decision.vouch)
        self._deliver_all(renamespace(root, NS_SERVER, NS_CLIENT), arrival, fields, link)

    def _deliver_all(self, root: etree._Element, arrival: Arrival | None, fields: MessageFields | None = None,
                     link: S2SLink | None = None) -> None:
        to = root.get("to")
        targets = [s for s in self.sessions.values() if bare(s.jid) == bare(to)]
        if "/" in to:
            targets = [s for s in targets if s.jid == to] or targets
        if targets and self.takes_part and fields is not None and fields.require:
            # the last hop: only to resources whose hop meets it; to none, and the sender hears why
            problems = [delivery_requirement_problem(fields.require, s.jid, s.view, s.announced_view) for s in targets]
            if all(p is not None for p in problems):
                hop = problems[0]
                assert hop is not None and link is not None
                self._refuse_remote(link.origin, self._error(fields, "policy-violation",
                                                             f"the hop to {hop.peer} is verified by '{hop.method}' "
                                                             f"only ({hop.reason}), and the sender required "
                                                             f"'{fields.require}'", hop))
            targets = [s for s, p in zip(targets, problems) if p is None]
        if not targets:
            self.offline.setdefault(bare(to), []).append((serialize(root), self.now(), arrival))
            return
        for session in targets:
            self._deliver(session, copy.deepcopy(root), arrival)

    def _deliver(self, session: Session, root: etree._Element, arrival: Arrival | None,
                 stored: datetime | None = None) -> None:
        if self.takes_part and arrival is not None:
            self._sign(root, message_fields(root), arrival, session.view, out_peer=session.jid, stored=stored)
        data = serialize(root)
        self.archive.setdefault(bare(session.jid), []).append((data, self.now()))
        session.client.receive(session.link.server_to_client(data))

    def deliver_offline(self, session: Session) -> None:
        """Deliver what was stored while the client was offline, signed now, with 'stored'."""
        for data, arrived, arrival in self.offline.pop(bare(session.jid), []):
            root = parse_stanza(data)
            require = message_fields(root).require if self.takes_part else None
            hop = delivery_requirement_problem(require, session.jid, session.view, session.announced_view) \
                if require else None
            if hop is not None:  # the module returns the error to the sender then; here it is noted
                self.log.append(f"{self.domain}: not delivering {root.get('id')} to {session.jid}: {hop.reason}")
                continue
            self._deliver(session, root, arrival, stored=arrived)

    def _carbon(self, other: Session, root: etree._Element, fields: MessageFields, arrival: Arrival) -> None:
        inner = copy.deepcopy(root)
        if self.takes_part:
            self._sign(inner, fields, arrival, other.view, out_peer=other.jid)
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


def _names(der: bytes, domain: str) -> bool:
    from cryptography import x509

    cert = x509.load_der_x509_certificate(der)
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    return domain in names.get_values_for_type(x509.DNSName)
