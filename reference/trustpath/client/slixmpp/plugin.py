"""The client side of trust-path as a slixmpp plugin (``trust_path``).

What a participating client does (XEP: Protocol; ``sim/federation.py``'s ``ClientNode``
does the same in process), with the reference core doing every protocol step:

* TLS: on ``ssl_cert`` (synchronous, before the stream header and any credential) it
  hashes the server's SubjectPublicKeyInfo, checks it against the pin store and records
  its own view of the c2s hop.  A key that matches no pin of a pinned domain closes the
  connection and emits ``trust_path_pin_mismatch``.
* Session: after resource binding it makes a fresh Ed25519 key, announces it with
  ``<client-key/>`` and reads its server's keys from disco#info: that and its own TLS view
  are the anchor.
* Sending: in the last outgoing filter (``out_sce``) it signs one attestation for each
  message with a body (:func:`trustpath.core.attest`), adds ``<require/>`` when asked, and
  refuses a requirement its own hop cannot meet.
* Receiving: every message with a body or a path (also carbons and archive results) is
  checked with :func:`trustpath.verify_stanza`; the report is emitted as
  ``trust_path_verdict``, a path that cannot be read as ``trust_path_invalid``.  Nothing
  raises into slixmpp.
* Pre-flight: :meth:`TrustPath.preflight` asks the client's own server how the path to a remote
  domain would be verified now (``<preflight/>``) and turns the answer into a forecast.
"""

from __future__ import annotations

import asyncio
import logging
import math
import ssl
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import partial
from typing import Any, ClassVar, NamedTuple

from slixmpp.exceptions import IqError, IqTimeout
from slixmpp.plugins import BasePlugin
from slixmpp.stanza import Iq, Message
from slixmpp.xmlstream import ET, register_stanza_plugin
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath
from slixmpp.xmlstream.tostring import tostring

from ...core.attest import attest
from ...core.delivery import Delivery, DeliveryReport, delivery_of, report_element, report_of_stanza, \
    sent_by_another_device
from ...core.codec import NS_CARBONS, NS_FORWARD, NS_MAM, add_attestation, find_path_element, \
    message_fields, parse_stanza, remove_paths, serialize
from ...core.disco import NS_DISCO_INFO, read_disco_info
from ...core.errors import InvalidInput, MalformedStanza, TrustPathError, UsageError
from ...core.keys import KeySet, SigningKey, spki_sha256
from ...core.model import CIPHER_CODES, DEFAULT_MAX_SKEW, NS, NS_PREFIX, Result, Side, View
from ...core.preflight import decode_preflight, forecast
from ...core.receive import verify_stanza
from ...core.require import requirement_problem
from ...core.verify import Anchor, Report
from . import stanza
from .pins import PinStore

log = logging.getLogger(__name__)

NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
NS_RECEIPTS = "urn:xmpp:receipts"
TLS_VERSIONS = {"TLSv1.3": "1.3", "TLSv1.2": "1.2"}


@dataclass(frozen=True, slots=True)
class ServerPolicy:
    """What this client's server said in disco#info (read by :func:`trustpath.core.disco.read_disco_info`)."""

    domain: str
    takes_part: bool  # the feature is announced
    keys: KeySet  # empty when nothing usable was published
    max_skew: int | None = None  # None: not known (the server does not take part, or did not answer)
    problem: str | None = None  # why the answer could not be used, if it could not


# --- event payloads ----------------------------------------------------------------------

class TrustPathVerdict(NamedTuple):
    """``trust_path_verdict``: the message (as slixmpp delivered it) and its report."""

    stanza: Message
    report: Report


class DeliveryVerdict(NamedTuple):
    """``trust_path_delivery``: a delivery receipt (``stanza``) carried the recipient's report on a
    message this account sent (``delivery.reported.for_id``), and what may be shown for it."""

    stanza: Message
    delivery: Delivery


class InvalidPath(NamedTuple):
    """``trust_path_invalid``: a message whose path could not be read (no report)."""

    stanza: Message
    error: Exception


class PinMismatch(NamedTuple):
    """``trust_path_pin_mismatch``: ``domain`` presented ``spki``, which matches none of its pins
    (``plugin.pin_store.pins(domain)``).  The connection is already closed."""

    domain: str
    spki: str


class RequireRefused(NamedTuple):
    """``trust_path_require_refused``: a message was not sent, because this client's own hop
    cannot meet its ``<require/>`` (XEP rule 44)."""

    stanza: Message
    verdict: str
    reason: str


class UnverifiedHop(NamedTuple):
    """``trust_path_unverified_hop``: a server refused a message and named the hop
    (``<unverified-hop/>`` attributes: peer, method, reason, required)."""

    stanza: Message
    condition: str
    hop: dict[str, str]


class RequirementNotMet(TrustPathError):
    """This client's verification of its own server cannot meet the requested ``<require/>``."""


class PreflightFailed(TrustPathError):
    """The server answered a pre-flight query with an error, or not at all; ``str()`` says why in
    words a person can read.  ``condition`` is the stanza error condition (``'timeout'`` when
    there was no answer)."""

    def __init__(self, domain: str, condition: str, text: str = "") -> None:
        self.domain, self.condition, self.text = domain, condition, text
        why = PREFLIGHT_ERRORS.get(condition, "the server refused it")
        detail = f": {text}" if text else ""
        super().__init__(f"pre-flight to {domain}: {condition} ({why}){detail}")


PREFLIGHT_ERRORS = {
    "bad-request": "the server did not accept the domain",
    "item-not-found": "it is your own server's domain or a local service",
    "service-unavailable": "your server does not offer the pre-flight query (it does not take part)",
    "feature-not-implemented": "your server does not offer the pre-flight query",
    "timeout": "your server did not answer",
}


@dataclass(frozen=True, slots=True)
class Preflight:
    """What this client's server said about the path to ``domain`` before anything is sent.

    ``takes_part``: whether ``domain`` takes part in trust-path (None: the server could not find
    out).  ``out_view``: the server's view of H2 (its outgoing s2s connection to ``domain``,
    client side) as it would attest it now, None if it did not connect.  ``own_view``: this
    client's view of H1.  ``forecast``: a sentence in plain words; never "trusted" from a
    pre-flight alone (the remote's inbound check and the recipient's hop are not known yet).
    """

    domain: str
    takes_part: bool | None
    out_view: View | None
    forecast: str
    own_view: View | None


def read_preflight(iq_xml: ET.Element, domain: str) -> tuple[bool | None, View | None]:
    """``(takes_part, out_view)`` from a pre-flight result; :class:`MalformedStanza` if the answer
    is not exactly what the pre-flight query defines (read by :func:`trustpath.core.codec.decode_preflight`)."""
    found = [c for c in iq_xml if isinstance(c.tag, str) and c.tag == f"{{{NS}}}preflight"]
    if len(found) != 1:
        raise MalformedStanza(f"a pre-flight result must carry exactly one <preflight/>, not {len(found)}")
    answer = decode_preflight(parse_stanza(_serialize(found[0]).encode("utf-8")))
    if answer.domain.lower() != domain.lower():
        raise MalformedStanza(f"<preflight/> answers for {answer.domain!r}, not {domain!r}")
    return answer.takes_part, answer.out_view


# --- helpers -------------------------------------------------------------------------------

def _serialize(xml: ET.Element) -> str:
    """``xml`` with its own namespace declared and without the stream text that follows it."""
    tail, xml.tail = xml.tail, None  # white space between stanzas, once the stream parser has seen it
    try:
        return tostring(xml, top_level=True)
    finally:
        xml.tail = tail


def wire_bytes(xml: ET.Element) -> bytes:
    """A received stanza serialized for the core, with exactly the text that was received.

    slixmpp's ``str(stanza)`` leaves out the stanza namespace (the stream's default),
    and XML parsers normalize line ends and, in attributes, all white space: writing
    those characters as references keeps them as they were.
    """
    text = _serialize(xml)
    return text.replace("\r", "&#13;").replace("\n", "&#10;").replace("\t", "&#9;").encode("utf-8")


class TrustPath(BasePlugin):
    """Trust Path (urn:xmpp:trust-path:0), client side.

    Configuration:

    ``pins``          a :class:`~trustpath.client.slixmpp.pins.PinStore`, or the path of its file, or None
    ``first_use``     pin the server's key on the first connection to an unpinned domain (True)
    ``require``       None, ``'trusted'`` or ``'weak'``: add ``<require/>`` to every message
    ``max_skew``      seconds; used unless the server publishes ``max-skew`` (300)
    ``now``           a callable returning an aware datetime (default: ``datetime.now(UTC)``)
    ``attest``        sign outgoing messages (True)
    ``disco_timeout`` seconds to wait for the server's answers (30)
    ``pending_limit`` messages kept while the server's keys are not known yet (1000)
    ``key_refresh_interval`` seconds: keys older than this are asked for again when a message's
                      last attestation verifies with none of them (60)
    ``delivery_reports`` add this client's report of a message's path to the delivery receipt
                      (XEP-0184) it sends for it (True); the receipt waits for the check, at most
                      ``receipt_wait`` seconds (10)

    Events (each payload a named tuple, or the policy):

    ``trust_path_verdict``         (stanza, report): a received message and its :class:`~trustpath.Report`
    ``trust_path_delivery``        (stanza, delivery): a receipt's report on a sent message, judged
                                   (:class:`~trustpath.core.delivery.Delivery`)
    ``trust_path_invalid``         (stanza, error): a message whose path cannot be read; no report
    ``trust_path_pin_mismatch``    (domain, spki): the server's key matches no pin; the connection is closed
    ``trust_path_require_refused`` (stanza, verdict, reason): not sent, this client's own hop is too weak
    ``trust_path_unverified_hop``  (stanza, condition, hop): a server refused a message, naming the hop
    ``trust_path_ready``           :class:`ServerPolicy`: the server's keys are known
    """

    name = "trust_path"
    description = "Trust Path: signed per-hop attestations (urn:xmpp:trust-path:0)"
    dependencies = {"xep_0030"}
    stanza = stanza
    default_config: ClassVar[dict[str, Any]] = {
        "pins": None,
        "first_use": True,
        "require": None,
        "max_skew": DEFAULT_MAX_SKEW,
        "now": None,
        "attest": True,
        "disco_timeout": 30,
        "pending_limit": 1000,
        "key_refresh_interval": 60,
        "delivery_reports": True,
        "receipt_wait": 10,
    }

    #: messages remembered for delivery reports: sent (id -> own sig) and received (-> report)
    REMEMBERED: ClassVar[int] = 1000

    _users: ClassVar[int] = 0  # live instances sharing the class-level stanza registrations

    # --- life cycle ----------------------------------------------------------------------
    def plugin_init(self) -> None:
        if self.require is not None and self.require not in stanza.REQUIRE_VERDICTS:
            raise UsageError(f"require is None, 'trusted' or 'weak', not {self.require!r}")
        if self.pins is None or isinstance(self.pins, PinStore):
            self._store: PinStore | None = self.pins
        else:
            self._store = PinStore.open(self.pins)
        self._view: View | None = None
        self._key: SigningKey | None = None
        self._key_refused = False
        self._policy: ServerPolicy | None = None
        self._override: tuple[Anchor, int | None] | None = None
        self._pending: deque[tuple[Message, datetime]] = deque()
        self._discovery: asyncio.Future[Any] | None = None
        self._refreshing = False  # a new disco#info query after an unknown key: messages wait for it
        self._last_refresh = -math.inf
        # (recipient's bare JID, id) -> sig of this client's attestation (None: sent without one)
        self._sent: OrderedDict[tuple[str, str], str | None] = OrderedDict()
        self._received: OrderedDict[tuple[str, str], DeliveryReport] = OrderedDict()  # (from, id) -> report
        self._unchecked: set[tuple[str, str]] = set()  # (from, id) of messages waiting to be checked
        self._held: dict[tuple[str, str], tuple[Message, asyncio.TimerHandle]] = {}  # receipts waiting
        self._released: set[tuple[str, str]] = set()  # receipts that waited long enough

        register_stanza_plugin(Iq, stanza.ClientKey)
        register_stanza_plugin(Iq, stanza.Preflight)
        register_stanza_plugin(Message, stanza.Require)
        type(self)._users += 1
        self._events: tuple[tuple[str, Callable[[Any], None]], ...] = (
            ("ssl_cert", self._on_ssl_cert),
            ("connecting", self._on_connecting),
            ("auth_success", self._on_auth_success),
            ("session_end", self._on_session_end),
        )
        for event, handler in self._events:
            self.xmpp.add_event_handler(event, handler)
        self.xmpp.add_filter("out_sce", self._sign_outgoing)
        sasl = self.xmpp.plugin.get("feature_mechanisms", None)
        self._security_callback = sasl.security_callback if sasl is not None else None
        if sasl is not None:
            sasl.security_callback = self._security
        self._handler_name = f"Trust Path {id(self):x}"
        self.xmpp.register_handler(Callback(self._handler_name, MatchXPath(f"{{{self.xmpp.default_ns}}}message"),
                                            self._on_message))
        self._initialized = True
        if getattr(self, "_bind_pending", False):
            # slixmpp calls session_bind before plugin_init when the session is already bound
            self._bind_pending = False
            self._bind()

    def plugin_end(self) -> None:
        self.xmpp.del_filter("out_sce", self._sign_outgoing)
        sasl = self.xmpp.plugin.get("feature_mechanisms", None)
        if sasl is not None and sasl.security_callback == self._security:
            sasl.security_callback = self._security_callback
        self.xmpp.remove_handler(self._handler_name)
        for event, handler in self._events:
            self.xmpp.del_event_handler(event, handler)
        if "xep_0030" in self.xmpp.plugin:
            self.xmpp.plugin["xep_0030"].del_feature(feature=NS)
        if self._discovery is not None:
            self._discovery.cancel()
            self._discovery = None
        self._pending.clear()
        for _, timer in self._held.values():
            timer.cancel()
        self._held.clear()
        self._released.clear()
        self._key = None
        self._initialized = False
        type(self)._users -= 1
        if type(self)._users == 0:
            # the stanza registrations are class-wide: undo them with the last instance
            for parent, plugin in ((Iq, stanza.ClientKey), (Iq, stanza.Preflight), (Message, stanza.Require)):
                tag = f"{{{plugin.namespace}}}{plugin.name}"
                if parent.plugin_attrib_map.get(plugin.plugin_attrib) is plugin:
                    del parent.plugin_attrib_map[plugin.plugin_attrib]
                if parent.plugin_tag_map.get(tag) is plugin:
                    del parent.plugin_tag_map[tag]

    def session_bind(self, jid: Any) -> None:
        if not getattr(self, "_initialized", False):
            self._bind_pending = True
            return
        self._bind()

    def _bind(self) -> None:
        """A new session: a new key, announced; the server's keys, queried; our filter, last."""
        self.xmpp.plugin["xep_0030"].add_feature(NS)
        self._key = SigningKey.generate()
        self._key_refused = False
        self._policy = None
        self._refreshing = False
        self.xmpp.del_filter("out_sce", self._sign_outgoing)
        self.xmpp.add_filter("out_sce", self._sign_outgoing)
        self._announce_key()
        self._start_discovery()

    # --- public API ----------------------------------------------------------------------
    @property
    def pin_store(self) -> PinStore | None:
        return self._store

    @property
    def view(self) -> View | None:
        """This client's view of its c2s hop (None before TLS, or without TLS)."""
        return self._view

    @property
    def session_key(self) -> str | None:
        """The public attestation key of this session (base64), once bound."""
        return self._key.public if self._key is not None else None

    @property
    def policy(self) -> ServerPolicy | None:
        """The server's trust-path policy from its disco#info (None until it answered)."""
        return self._policy

    @property
    def anchor(self) -> Anchor | None:
        """The anchor messages are verified with; None until the server has answered."""
        if self._override is not None:
            return self._override[0]
        if self._policy is None or self._refreshing:
            return None
        return Anchor(server=self._policy.domain, keys=self._policy.keys, me=self.xmpp.boundjid.full,
                      view=self._own_view(), takes_part=self._policy.takes_part)

    @property
    def effective_max_skew(self) -> int:
        """The skew in use: an injected anchor's, else the server's 'max-skew' (default 300), else ``max_skew``."""
        if self._override is not None and self._override[1] is not None:
            return self._override[1]
        if self._policy is not None and self._policy.max_skew is not None:
            return self._policy.max_skew
        return int(self.max_skew)

    def set_anchor(self, anchor: Anchor | None, max_skew: int | None = None) -> None:
        """Verify with ``anchor`` instead of the discovered one (``set_anchor(*trustpath.load_anchor(path))``).

        ``None`` goes back to the discovered anchor.  Messages waiting for an anchor are
        verified at once.
        """
        self._override = None if anchor is None else (anchor, max_skew)
        self._flush_pending()

    def verify(self, message: Message, now: datetime | None = None) -> Report:
        """Verify one message now and return the report (raises :class:`~trustpath.core.errors.InvalidInput`)."""
        anchor = self.anchor
        if anchor is None:
            raise UsageError("no anchor yet: the server has not answered disco#info")
        return verify_stanza(wire_bytes(message.xml), anchor, now or self._now(), max_skew=self.effective_max_skew)

    def requirement_problem(self, verdict: str) -> str | None:
        """Why this client cannot send ``<require verdict=.../>`` (a reason code), or None if it can."""
        return requirement_problem(self._own_view(), verdict)

    def send_message_with_requirement(self, mto: Any, mbody: str, verdict: str = "trusted", *,
                                      mtype: str = "chat", **kwargs: Any) -> Message:
        """Send a message that may travel only over hops that meet ``verdict`` (XEP: Requiring Verified Hops).

        Raises :class:`RequirementNotMet` if this client's own hop cannot meet it.
        """
        problem = self.requirement_problem(verdict)
        if problem is not None:
            view = self._own_view()
            raise RequirementNotMet(f"this client verified {view.peer} by '{view.method}' ({problem}), "
                                    f"which cannot meet require='{verdict}'")
        message = self.xmpp.make_message(mto, mbody=mbody, mtype=mtype, **kwargs)
        message["trust_path_require"] = verdict
        message.send()
        return message

    async def remote_policy(self, domain: str) -> ServerPolicy:
        """Whether a remote domain takes part, and its keys: its disco#info, asked over this
        client's server (a forecast, not a guarantee; XEP: Sender Asks How It Was Delivered)."""
        try:
            iq = await self.xmpp.plugin["xep_0030"].get_info(jid=domain, local=False, cached=False,
                                                             timeout=self.disco_timeout)
        except IqError as exc:
            return ServerPolicy(domain, False, KeySet(domain, ()), problem=f"disco#info error: {exc.condition}")
        except IqTimeout:
            return ServerPolicy(domain, False, KeySet(domain, ()), problem="no answer to disco#info")
        return self._read_policy(domain, iq)

    async def preflight(self, domain: str) -> Preflight:
        """Ask this client's own server how the path to ``domain`` would be verified now (the
        pre-flight query) and forecast the verdict a message would get at best.

        Raises :class:`PreflightFailed` if the server answers with an error or not at all, and
        :class:`~trustpath.core.errors.MalformedStanza` if its answer is not a valid pre-flight result.
        """
        domain = str(domain).strip()
        if not domain or "@" in domain or "/" in domain:
            raise UsageError(f"a pre-flight is for a domain (b.example), not {domain!r}")
        iq = self.xmpp.Iq()
        iq["type"] = "get"
        iq["trust_path_preflight"]["domain"] = domain
        try:
            result = await iq.send(timeout=self.disco_timeout)
        except IqError as exc:
            raise PreflightFailed(domain, exc.condition or "undefined-condition", exc.text or "") from None
        except IqTimeout:
            raise PreflightFailed(domain, "timeout") from None
        takes_part, out_view = read_preflight(result.xml, domain)
        own_view = self._own_view()
        return Preflight(domain=domain, takes_part=takes_part, out_view=out_view, own_view=own_view,
                         forecast=forecast(domain, takes_part, out_view, own_view))

    async def refresh_keys(self) -> ServerPolicy:
        """Ask the server for its keys again (e.g. after a rotation) and return its policy."""
        return await self._discover()

    # --- TLS -----------------------------------------------------------------------------
    def _now(self) -> datetime:
        return self.now() if self.now is not None else datetime.now(UTC)

    def _own_view(self) -> View:
        if self._view is not None:
            return self._view
        return View(peer=self.xmpp.boundjid.domain, side=Side.CLIENT, tls="none", method="none", result=Result.NONE)

    def _on_connecting(self, _: Any) -> None:
        self._view = None

    def _on_ssl_cert(self, pem: str) -> None:
        try:
            self._check_tls(pem)
        except Exception:  # fail closed: an unchecked server gets no credentials
            log.exception("trust_path: checking the server's certificate failed; closing the connection")
            self._view = None
            self._abort()

    def _ca_verified(self) -> bool:
        ctx = getattr(self.xmpp, "ssl_context", None)
        return ctx is not None and ctx.verify_mode == ssl.CERT_REQUIRED and bool(ctx.check_hostname)

    def _check_tls(self, pem: str) -> None:
        transport = self.xmpp.transport
        ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
        der = ssl_object.getpeercert(True) if ssl_object is not None else None
        if not der:
            der = ssl.PEM_cert_to_DER_cert(pem)
        spki = spki_sha256(der)
        domain = self.xmpp.boundjid.domain
        tls = TLS_VERSIONS.get(ssl_object.version() or "") if ssl_object is not None else None
        cipher_info = ssl_object.cipher() if ssl_object is not None else None
        cipher = CIPHER_CODES.get(cipher_info[0]) if cipher_info else None
        if self._ca_verified():
            method, result = "pkix", Result.PASS
        else:
            method, result = "none", Result.NONE
        store = self._store
        if store is not None and store.is_pinned(domain):
            if store.check(domain, spki) is None:
                self._view = None
                log.error("trust_path: %s presented the key %s, which matches none of its pins; "
                          "closing the connection before any credential is sent", domain, spki)
                self._abort()
                self.xmpp.event("trust_path_pin_mismatch", PinMismatch(domain, spki))
                return
            method, result = "pin", Result.PASS
        elif store is not None and self.first_use:
            # this session stays as verified as it was: the pin protects the next ones
            try:
                store.pin_first_use(domain, spki, now=self._now())
                log.info("trust_path: pinned %s to %s on first use", domain, spki)
            except (OSError, TrustPathError) as exc:
                log.error("trust_path: could not pin %s on first use: %s", domain, exc)
        if tls is None:
            # older than TLS 1.2: not a version the XEP can state; describe it as unprotected
            log.warning("trust_path: %s negotiated %s; the hop is reported as unverified", domain,
                        ssl_object.version() if ssl_object is not None else "?")
            self._view = View(peer=domain, side=Side.CLIENT, tls="none", method="none", result=Result.NONE)
            return
        self._view = View(peer=domain, side=Side.CLIENT, tls=tls, cipher=cipher, spki=spki, method=method,
                          result=result)

    def _security(self, values: Any) -> dict[str, Any]:
        """SASL's view of the connection: a pinned server's stream without TLS counts as unencrypted,
        whatever the application allows, so that no mechanism sends credentials over it."""
        result = dict(self._security_callback(values))
        domain = self.xmpp.boundjid.domain
        if self._store is not None and self._store.is_pinned(domain) and self._view is None:
            log.error("trust_path: %s is pinned but this stream has no TLS; no credentials are sent", domain)
            for name in values:
                if name == "encrypted" or name.startswith("unencrypted_"):
                    result[name] = False
        return result

    def _abort(self) -> None:
        if self.xmpp.transport is not None:
            self.xmpp.abort()
        else:
            self.xmpp.cancel_connection_attempt()

    def _on_auth_success(self, _: Any) -> None:
        try:
            mech = self.xmpp.plugin["feature_mechanisms"].mech
        except Exception:
            return
        if self._view is not None and getattr(mech, "use_channel_binding", False):
            # slixmpp's SCRAM-PLUS binds with tls-unique (TLS 1.2 only)
            self._view = replace(self._view, cb="tls-unique")

    # --- session: key and discovery --------------------------------------------------------
    def _announce_key(self) -> None:
        assert self._key is not None
        iq = self.xmpp.Iq()
        iq["type"] = "set"
        iq["trust_path_client_key"]["key"] = self._key.public
        future = iq.send(timeout=self.disco_timeout)
        future.add_done_callback(partial(self._key_answered, key=self._key.public))

    def _key_answered(self, future: asyncio.Future[Any], *, key: str) -> None:
        if future.cancelled():
            return
        exc = future.exception()
        if exc is None:
            log.debug("trust_path: the server accepted the session key %s", key)
        elif isinstance(exc, IqError) and self._key is not None and self._key.public == key:
            # the server cannot check our attestations: adding them would only show hop details
            self._key_refused = True
            log.warning("trust_path: the server refused the session key (%s); messages are sent without "
                        "a client attestation", exc.condition)
        elif isinstance(exc, IqTimeout):
            log.warning("trust_path: the server did not answer the client-key announcement")

    def _start_discovery(self) -> None:
        if self._discovery is not None and not self._discovery.done():
            self._discovery.cancel()
        self._discovery = asyncio.ensure_future(self._discover(), loop=self.xmpp.loop)

    async def _discover(self) -> ServerPolicy:
        domain = self.xmpp.boundjid.domain
        failed = None
        try:
            iq = await self.xmpp.plugin["xep_0030"].get_info(jid=domain, local=False, cached=False,
                                                             timeout=self.disco_timeout)
            policy = self._read_policy(domain, iq)
        except IqError as exc:
            failed = f"disco#info error: {exc.condition}"
        except IqTimeout:
            failed = "no answer to disco#info"
        finally:
            self._last_refresh = time.monotonic()
            self._refreshing = False
        if failed is not None:
            if self._policy is not None and self._policy.domain == domain:
                # a failed refresh keeps what the server said before: it must not turn
                # "this server takes part" into "it does not"
                log.warning("trust_path: %s: %s; keeping the keys learned before", domain, failed)
                self._flush_pending()
                return self._policy
            policy = ServerPolicy(domain, False, KeySet(domain, ()), problem=failed)
        if policy.problem:
            log.warning("trust_path: %s: %s", domain, policy.problem)
        self._policy = policy
        self.xmpp.event("trust_path_ready", policy)
        self._flush_pending()
        return policy

    @staticmethod
    def _read_policy(domain: str, iq: Iq) -> ServerPolicy:
        query = iq.xml.find(f"{{{NS_DISCO_INFO}}}query")
        if query is None:
            return ServerPolicy(domain, False, KeySet(domain, ()), problem="disco#info result without <query/>")
        try:
            published = read_disco_info(parse_stanza(_serialize(query).encode("utf-8")), domain)
        except InvalidInput as exc:
            # the feature is announced, but its keys cannot be used: nothing will verify,
            # and a message is never shown as more than its missing keys allow
            return ServerPolicy(domain, True, KeySet(domain, ()), problem=str(exc))
        if not published.takes_part or published.keys is None:
            return ServerPolicy(domain, False, KeySet(domain, ()))
        return ServerPolicy(domain, True, published.keys, published.max_skew)

    # --- sending -------------------------------------------------------------------------
    def _sign_outgoing(self, message: Any) -> Any:
        if not isinstance(message, Message) or message["type"] in ("error", "groupchat"):
            return message  # a room rewrites a groupchat message: nothing signed before it verifies after
        try:
            return self._sign(message)
        except Exception:  # never lose a message to a bug here: unsigned is shown as unverified
            log.exception("trust_path: could not attest message %s; sending it without", message["id"])
            return message

    def _sign(self, message: Message) -> Message | None:
        xml = message.xml
        ns = message.namespace
        if not self._carries_content(xml, ns, with_path=False):
            return message
        element = xml.find(f"{{{NS}}}require")
        if element is None and self.require:
            message["trust_path_require"] = self.require
            element = xml.find(f"{{{NS}}}require")
        if element is not None:
            verdict = element.get("verdict", "")
            problem = requirement_problem(self._own_view(), verdict) if verdict in stanza.REQUIRE_VERDICTS \
                else "malformed"
            if problem is not None:
                log.warning("trust_path: not sending message %s: require=%r cannot be met (%s)", message["id"],
                            verdict, problem)
                self.xmpp.event("trust_path_require_refused", RequireRefused(message, verdict, problem))
                return None
        if not self.attest or self._key is None or self._key_refused or not self.xmpp.boundjid.resource:
            if message["id"] and message["to"]:
                self._remember(self._sent, (message["to"].bare, message["id"]), None)
            return message
        if not message["id"]:
            message["id"] = self.xmpp.new_id()
        if self.delivery_reports and not self._add_report(message):
            return None  # held until the acknowledged message is checked
        for child in list(xml):
            if isinstance(child.tag, str) and child.tag.startswith(f"{{{NS_PREFIX}") and child.tag.endswith("}path"):
                xml.remove(child)  # this client's attestation is the first; anything else is not ours
        # what the server will parse: the bytes slixmpp writes (line ends normalized by the parser)
        root = parse_stanza(_serialize(xml).encode("utf-8"))
        remove_paths(root)
        root.set("from", self.xmpp.boundjid.full)
        if not root.get("to"):
            return message  # addressed to the account itself; nothing to attest across hops
        fields = message_fields(root)
        attestation = attest(fields, self._key, signer=self.xmpp.boundjid.full, time=self._now(),
                             out_view=self._own_view())
        add_attestation(root, attestation)
        path = find_path_element(root)
        assert path is not None
        xml.append(ET.fromstring(serialize(path)))
        self._remember(self._sent, (fields.to.split("/", 1)[0], fields.id), attestation.sig)
        return message

    def _add_report(self, message: Message) -> bool:
        """Put this client's report into a delivery receipt (XEP: Delivery Reports).  False when the
        receipt must wait: the message it acknowledges is still being checked."""
        xml = message.xml
        received = xml.find(f"{{{NS_RECEIPTS}}}received")
        if received is None or not received.get("id") or xml.find(f"{{{NS}}}report") is not None:
            return True
        key = (str(message["to"]), received.get("id"))
        report = self._received.get(key)
        if report is not None:
            xml.append(ET.fromstring(serialize(report_element(report))))
            return True
        if key in self._released:
            self._released.discard(key)
            return True
        if key not in self._unchecked or key in self._held:
            return True  # nothing was checked for it: a receipt without a report
        timer = self.xmpp.loop.call_later(float(self.receipt_wait), self._release, key)
        self._held[key] = (message, timer)
        return False

    def _release(self, key: tuple[str, str]) -> None:
        held = self._held.pop(key, None)
        if held is None:
            return
        message, timer = held
        timer.cancel()
        if key not in self._received:
            log.info("trust_path: message %s from %s was not checked in time; its receipt goes without a report",
                     key[1], key[0])
            self._released.add(key)
        message.send()

    @staticmethod
    def _remember(store: OrderedDict[Any, Any], key: Any, value: Any) -> None:
        store[key] = value
        store.move_to_end(key)
        while len(store) > TrustPath.REMEMBERED:
            store.popitem(last=False)

    # --- receiving -----------------------------------------------------------------------
    def _on_message(self, message: Message) -> None:
        try:
            self._receive(message)
        except Exception as exc:  # never into slixmpp
            log.exception("trust_path: could not check message %s", message["id"])
            self.xmpp.event("trust_path_invalid", InvalidPath(message, exc))

    def _receive(self, message: Message) -> None:
        xml = message.xml
        ns = message.namespace
        if message["type"] == "error":
            self._refused(message)
            return
        inner: ET.Element | None = xml
        for child in xml:
            if child.tag in (f"{{{NS_CARBONS}}}sent", f"{{{NS_CARBONS}}}received", f"{{{NS_MAM}}}result"):
                # a carbon copy or an archive result: the core checks who sent the wrapper and
                # verifies the forwarded message
                forwarded = child.find(f"{{{NS_FORWARD}}}forwarded")
                inner = forwarded.find(f"{{{ns}}}message") if forwarded is not None else None
                break
        if inner is not None and not self._carries_content(inner, ns):
            return  # a chat state, a receipt, ...: nothing was attested
        now = self._now()
        if inner is xml and message["id"] and xml.find(f"{{{NS_RECEIPTS}}}request") is not None:
            # a receipt will be asked for: it waits for this check, to carry its report
            self._unchecked.add((str(message["from"]), message["id"]))
        if self.anchor is None:
            if len(self._pending) >= int(self.pending_limit):
                dropped, _ = self._pending.popleft()
                self._unchecked.discard((str(dropped["from"]), dropped["id"]))
                log.warning("trust_path: too many messages wait for the server's keys; %s is not checked",
                            dropped["id"])
            self._pending.append((message, now))
            return
        self._check(message, now, may_refresh=True)

    @staticmethod
    def _carries_content(message: ET.Element, ns: str, *, with_path: bool = True) -> bool:
        """Whether a message is attested: it has a body or subject, or is a delivery receipt
        (XEP: Sender Asks How It Was Delivered); received, also whether it has a path at all.
        Chat states and other notifications are not."""
        for child in message:
            tag = child.tag if isinstance(child.tag, str) else ""
            if tag in (f"{{{ns}}}body", f"{{{ns}}}subject", f"{{{NS_RECEIPTS}}}received"):
                return True
            if with_path and tag.startswith(f"{{{NS_PREFIX}") and tag.endswith("}path"):
                return True
        return False

    def _check(self, message: Message, now: datetime, *, may_refresh: bool) -> None:
        anchor = self.anchor
        assert anchor is not None
        key = (str(message["from"]), message["id"])
        data = wire_bytes(message.xml)
        try:
            report = verify_stanza(data, anchor, now, max_skew=self.effective_max_skew)
        except InvalidInput as exc:
            self._unchecked.discard(key)
            self._release(key)
            self.xmpp.event("trust_path_invalid", InvalidPath(message, exc))
            return
        last = report.attestations[-1] if report.attestations else None
        if may_refresh and self._override is None and last is not None and last.signer == anchor.server \
                and last.status in ("key-unknown", "tampered") \
                and time.monotonic() - self._last_refresh >= float(self.key_refresh_interval):
            # XEP, Keys and Discovery Caching: ask once more before reporting an unknown key
            self._pending.append((message, now))
            self._refreshing = True
            self._start_discovery()
            return
        if key in self._unchecked:
            self._unchecked.discard(key)
            try:
                self._remember(self._received, key, report_of_stanza(data, report))
            except InvalidInput as exc:
                log.warning("trust_path: no delivery report for message %s: %s", message["id"], exc)
            self._release(key)
        if message.xml.find(f"{{{NS_CARBONS}}}sent") is not None:
            # another device of this account sent it: its recipient's report can be bound here too
            try:
                sent = sent_by_another_device(data, self.xmpp.boundjid.bare)
            except InvalidInput:
                sent = None
            if sent is not None:
                self._remember(self._sent, *sent)
        self.xmpp.event("trust_path_verdict", TrustPathVerdict(message, report))
        self._delivery(message, data, report)

    def _delivery(self, message: Message, data: bytes, report: Report) -> None:
        """A receipt's report on a message this account sent: judged, then ``trust_path_delivery``."""
        if next(message.xml.iter(f"{{{NS}}}report"), None) is None:
            return  # most messages: no need to parse them once more
        try:
            delivery = delivery_of(data, report, self._sent, account=self.xmpp.boundjid.bare)
        except InvalidInput as exc:
            log.warning("trust_path: the delivery report in %s cannot be used: %s", message["id"], exc)
            self.xmpp.event("trust_path_invalid", InvalidPath(message, exc))
            return
        if delivery is not None:
            self.xmpp.event("trust_path_delivery", DeliveryVerdict(message, delivery))

    def _flush_pending(self) -> None:
        if self.anchor is None:
            return
        waiting, self._pending = self._pending, deque()
        for message, received in waiting:
            try:
                self._check(message, received, may_refresh=False)
            except Exception as exc:
                log.exception("trust_path: could not check message %s", message["id"])
                self.xmpp.event("trust_path_invalid", InvalidPath(message, exc))

    def _refused(self, message: Message) -> None:
        error = message.xml.find(f"{{{message.namespace}}}error")
        if error is None:
            return
        hop = error.find(f"{{{NS}}}unverified-hop")
        if hop is None:
            return
        condition = next((c.tag.split("}", 1)[1] for c in error
                          if isinstance(c.tag, str) and c.tag.startswith(f"{{{NS_STANZAS}}}")
                          and not c.tag.endswith("}text")), "undefined-condition")
        self.xmpp.event("trust_path_unverified_hop", UnverifiedHop(message, condition, dict(hop.attrib)))

    def _on_session_end(self, _: Any) -> None:
        for key in list(self._held):
            self._release(key)  # sent without a report, or dropped with the stream as slixmpp decides
        self._unchecked.clear()
        self._released.clear()
        self._key = None
        self._policy = None
        self._refreshing = False
        if self._discovery is not None:
            self._discovery.cancel()
            self._discovery = None


trust_path = TrustPath  # for ``xmpp.register_plugin('trust_path', module='trustpath.client.slixmpp.plugin')``
