"""A client of the embedded federation with the trust-path plugin's behaviour: it pins its server,
signs what it sends, verifies what it gets, and acknowledges with delivery reports."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from lxml import etree

from scramp import ScramClient

from ...core.attest import attest
from ...core.codec import add_record, decode_path, find_message, find_path_element, message_fields, \
    parse_stanza, serialize
from ...core.delivery import NS_RECEIPTS, DeliveryReport, report_element, report_of_stanza
from ...core.keys import KeySet, SigningKey
from ...core.model import NS, Chain, KeySource, MessageFields, Result, Status, View
from ...core.preflight import PreflightAnswer, decode_preflight
from ...core.errors import InvalidInput
from ...core.receive import refuser_of, verify_refusal_stanza, verify_stanza
from ...core.require import requirement_problem
from ...core.verify import Anchor, Report
from .server import Refused
from .stanzas import NS_CLIENT, SCRAM_PLUS, bare
from .tls import HandshakeFailed, TlsLink, client_context, server_context

if TYPE_CHECKING:
    from .federation import Federation
    from .server import ServerNode, Session


class RequirementNotMet(Exception):
    """The sending client's own first hop cannot meet the <require/> it was asked to send."""


@dataclass
class Inbox:
    stanza: bytes
    report: Report | None
    error: bool = False
    wrapper: str | None = None
    refusal: Report | None = None  # an error naming a hop: the report on the refusal's own path


class ClientNode:
    """A client with the trust-path plugin: pins its server, signs what it sends, verifies what it gets."""

    def __init__(self, fed: Federation, jid: str, server: ServerNode, *, password: str = "pencil",
                 verify: str = "pin", takes_part: bool = True, clock_offset: float = 0,
                 channel_binding: bool = True) -> None:
        self.fed = fed
        self.jid = jid
        self.server = server
        self.password = password
        self.verify_method = verify
        self.takes_part = takes_part
        self.clock_offset = clock_offset
        #: pinned by the user before this scenario ('pin'), or taken on first use and not confirmed
        #: ('tofu': then the pin is of whatever key the first connection saw)
        self.pins = frozenset({server.credential.spki})
        self.channel_binding = channel_binding
        #: signatures of records already accepted: the replay cache
        self.seen: set[str] = set()
        self.sessions_opened = 0
        self.key = fed.keys.signing_key(f"client/{jid}")
        self.view: View | None = None
        self.session: Session | None = None
        self.anchor_keys: KeySet | None = None
        self.inbox: list[Inbox] = []
        #: the sig of this client's record on each message it sent, by (recipient's bare JID, id),
        #: None when it sent it without one (for delivery reports)
        self.sent: dict[tuple[str, str], str | None] = {}
        server.add_user(jid.split("@")[0], password)

    def now(self) -> datetime:
        return self.fed.clock.now + timedelta(seconds=self.clock_offset)

    def scram(self, mechanism: str, link: TlsLink) -> ScramClient:
        """This client's side of SASL on ``link``: with tls-server-end-point channel binding to the
        certificate it saw, for the -PLUS mechanism."""
        binding = ("tls-server-end-point", link.facts(side="client").end_point) if mechanism == SCRAM_PLUS else None
        return ScramClient([mechanism], self.jid.split("@")[0], self.password, channel_binding=binding)

    def connect(self) -> None:
        server = self.server
        interceptor = self.fed.c2s_interceptors.get(self.jid)
        credential = interceptor.credential if interceptor is not None else server.credential
        ctx = client_context((self.fed.public_ca.ca_file,), verify=self.verify_method == "pkix")
        link = TlsLink(ctx, server_context(credential), server.domain, credential)
        facts = link.facts(side="client")
        if self.verify_method in ("pin", "tofu") and facts.server_spki not in self.pins:
            # abort before any credential is sent
            raise HandshakeFailed("pin-mismatch", f"{server.domain} presented an unpinned key")
        self.view = View(self.verify_method, Result.PASS if self.verify_method != "none" else Result.NONE,
                         facts.version, facts.spki)
        if interceptor is not None:
            self.session = interceptor.accept(self, link)
        else:
            self.session = server.accept_c2s(self, link)
        self.sessions_opened += 1
        if self.sessions_opened > 1:  # a new record key for every session
            self.key = self.fed.keys.signing_key(f"client/{self.jid}/{self.sessions_opened}")
        if self.takes_part:
            iq = etree.Element(f"{{{NS_CLIENT}}}iq", nsmap={None: NS_CLIENT})
            iq.set("type", "set")
            iq.set("id", self.fed.next_id())
            key = etree.SubElement(iq, f"{{{NS}}}session-key", nsmap={None: NS})
            key.set("key", f"ed25519:{self.key.public}")
            key.set("view", self.view.text())  # how this client verified its server: the last hop's client end
            server.session_key_announced(self.session, self.session.link.client_to_server(serialize(iq)))
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

    def message(self, to: str, body: str, *, require: str | None = None,
                payload: Callable[[etree._Element], None] | None = None
                ) -> tuple[etree._Element, MessageFields]:
        mid = self.fed.next_id()
        root = etree.Element(f"{{{NS_CLIENT}}}message", nsmap={None: NS_CLIENT})
        root.set("to", to)
        root.set("id", mid)
        root.set("type", "chat")
        etree.SubElement(root, f"{{{NS_CLIENT}}}body").text = body
        if require:
            etree.SubElement(root, f"{{{NS}}}require", nsmap={None: NS}).set("verdict", require)
        if payload is not None:
            payload(root)
        root.set("from", self.jid)
        fields = message_fields(root)
        del root.attrib["from"]  # the server stamps it
        if self.takes_part and self.view is not None:
            att = attest(fields, self.key, out_view=self.view)
            add_record(root, att)
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
            add_record(root, attest(fields, self.key, out_view=self.view))
        self.server.from_client(self.session, self.session.link.client_to_server(serialize(root)))
        return fields.id

    def send(self, to: str, body: str, *, require: str | None = None,
             extra: Callable[[etree._Element, MessageFields], None] | None = None,
             payload: Callable[[etree._Element], None] | None = None) -> str:
        """Send ``body`` to ``to``, signed; ``payload`` adds elements before signing (e.g. an OMEMO
        payload), ``extra`` changes the message after (a malicious client)."""
        assert self.session is not None and self.view is not None
        if require is not None:
            if requirement_problem(self.view, require) is not None:
                raise RequirementNotMet(f"this client verified {self.server.domain} by '{self.view.method}', "
                                        f"which cannot meet require='{require}'")
        root, fields = self.message(to, body, require=require, payload=payload)
        if extra is not None:
            extra(root, fields)
        try:
            self.server.from_client(self.session, self.session.link.client_to_server(serialize(root)))
        except Refused as refused:
            self.inbox.append(Inbox(refused.error, None, error=True, refusal=self.check_refusal(refused.error)))
        return fields.id

    def check_refusal(self, data: bytes) -> Report | None:
        """The report on a refusal's own path (XEP: Requiring Verified Hops), or None for an error
        that names no hop or cannot be read as a refusal."""
        try:
            if refuser_of(find_message(parse_stanza(data)).message) is None:
                return None
            return verify_refusal_stanza(data, self.anchor(), self.now(), max_skew=self.fed.max_skew, seen=self.seen)
        except InvalidInput:
            return None

    def receive(self, data: bytes) -> None:
        received = find_message(parse_stanza(data))
        report = verify_stanza(data, self.anchor(), self.now(), max_skew=self.fed.max_skew, seen=self.seen)
        path = decode_path(received.message)
        if received.wrapper != "archive":
            for att, check in zip(path.records if path else (), report.records):
                if check.status is Status.OK:
                    self.seen.add(att.sig)
        self.inbox.append(Inbox(data, report, wrapper=received.wrapper))

    def forge_server_record(self, root: etree._Element, fields: MessageFields) -> None:
        """A malicious client: add a record that claims to be its server's."""
        fake = SigningKey.generate() if not self.fed.seeded else self.fed.keys.signing_key("forger")
        element = find_path_element(root)
        previous = (element.text or "").strip() if element is not None else ""
        view = self.view or View("pin", Result.PASS, "1.3")
        add_record(root, attest(fields, fake, previous=previous, signer=self.server.domain, time=self.now(),
                                     in_view=View("tls-server-end-point", Result.PASS, view.tls, view.spki),
                                     chain=Chain.PASS, vouch=KeySource.LINK, out_view=View("pin", Result.PASS,
                                                                                           view.tls, view.spki)))
