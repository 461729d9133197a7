"""The client side of trust-path as a slixmpp plugin (``trust_path``).

What a participating client does (XEP: Protocol; ``testbed/sim/federation.py``'s ``ClientNode``
does the same in process), with the reference core doing every protocol step.  Each part has
its own module; :class:`TrustPath` is what slixmpp registers, and composes them:

* :mod:`.own_hop`: TLS.  On ``ssl_cert`` (synchronous, before the stream header and any
  credential) it hashes the server's SubjectPublicKeyInfo, checks it against the pin store and
  records this client's own view of the c2s hop (``method,result,tls,spki``): ``pin`` for a
  configured or confirmed pin, ``tofu`` for a first-use pin nobody confirmed.  A key that matches
  no pin of a pinned domain closes the connection and emits ``trust_path_pin_mismatch``.  With
  ``bind_channel`` it caps c2s TLS at 1.2, so that slixmpp authenticates with SCRAM-*-PLUS and
  ``tls-unique`` when the server offers it, and the server can state that binding.
* :mod:`.session`: after resource binding, a fresh Ed25519 key announced with
  ``<session-key/>``, and the server's keys from disco#info (:mod:`.policy`): with this client's
  own TLS view they are the anchor; asked again when a message's key is unknown.
* :mod:`.signing`: in the last outgoing filter (``out_sce``) one record for each message
  with a body (:func:`trustpath.core.attest.attest`), ``<require/>`` when asked, and a refusal of
  a requirement this client's own hop cannot meet.
* :mod:`.receiving`: every message with a body, a covered payload or a path (also carbons and
  archive results) is checked with :func:`trustpath.core.receive.verify_stanza` and a replay
  cache; the report is emitted as ``trust_path_verdict`` (``report.covers`` says which payloads
  it covers, its notes name what it does not), a path that cannot be read as ``trust_path_invalid``.
* :mod:`.receipts`: delivery receipts carry this client's report (held until the message they
  acknowledge is checked), and the reports in received receipts become ``trust_path_delivery``.
* :mod:`.refusals`: an ``<unverified-hop/>`` error for a message this client sent becomes
  ``trust_path_unverified_hop`` when its own path (signed by the server that refused, then by
  every server on its way back) verifies and meets what the message required.
* :mod:`.preflight`: :meth:`TrustPath.preflight` asks the client's own server how the path to a
  remote domain would be verified now (``<preflight/>``) and turns the answer into a forecast.

The event payloads are in :mod:`.events`; every name they and the modules above export that an
application uses is importable from here too.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, ClassVar

from slixmpp.plugins import BasePlugin
from slixmpp.stanza import Message
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

from ...core.errors import UsageError
from ...core.model import DEFAULT_MAX_SKEW, NS, View
from ...core.receive import verify_refusal_stanza, verify_stanza
from ...core.require import requirement_problem
from ...core.verify import Anchor, Report
from . import stanza
from .events import DeliveryVerdict, InvalidPath, PinMismatch, RequireRefused, TrustPathVerdict, UnverifiedHop
from .own_hop import TLS_VERSIONS, OwnHop
from .pins import Pin, PinStore
from .policy import DiscoveryFailed, ServerPolicy, ask_policy, unanswered
from .preflight import (
    PREFLIGHT_ERRORS,
    Preflight,
    PreflightFailed,
    ask_preflight,
    preflight_domain,
    preflight_of,
    read_preflight,
)
from .receipts import REMEMBERED, Receipts
from .receiving import Receiver
from .refusals import NS_STANZAS
from .session import Session
from .signing import RequirementNotMet, Signer
from .wire import NS_RECEIPTS, wire_bytes

__all__ = [
    "NS_RECEIPTS", "NS_STANZAS", "PREFLIGHT_ERRORS", "TLS_VERSIONS", "DeliveryVerdict", "InvalidPath", "PinMismatch",
    "Preflight", "PreflightFailed", "RequireRefused", "RequirementNotMet", "ServerPolicy", "TrustPath",
    "TrustPathVerdict", "UnverifiedHop", "read_preflight", "trust_path", "wire_bytes",
]


class TrustPath(BasePlugin):
    """Trust Path (urn:xmpp:trust-path:1), client side.

    Configuration:

    ``pins``          a :class:`~trustpath.client.slixmpp.pins.PinStore`, or the path of its file, or None
    ``first_use``     pin the server's key on the first connection to an unpinned domain (False).  Such a
                      pin is ``tofu`` (rated like a CA) until a person confirms it (:meth:`confirm_pin`)
    ``bind_channel``  cap c2s TLS at 1.2 so that SASL can use SCRAM-*-PLUS with ``tls-unique`` (False);
                      without a binding the server checked, recipients rate this client's H1 at most
                      ``ca`` (reason ``unbound``).  Python's ssl module has no ``tls-exporter``
    ``replay_cache``  record signatures remembered to detect replays (10000)
    ``require``       None, ``'trusted'`` or ``'weak'``: add ``<require/>`` to every message
    ``max_skew``      seconds; used unless the server publishes ``max-skew`` (300)
    ``now``           a callable returning an aware datetime (default: ``datetime.now(UTC)``)
    ``attest``        sign outgoing messages (True)
    ``disco_timeout`` seconds to wait for the server's answers (30)
    ``pending_limit`` messages kept while the server's keys are not known yet (1000)
    ``key_refresh_interval`` seconds: keys older than this are asked for again when a message's
                      last record verifies with none of them (60)
    ``delivery_reports`` add this client's report of a message's path to the delivery receipt
                      (XEP-0184) it sends for it (True); the receipt waits for the check, at most
                      ``receipt_wait`` seconds (10)

    Events (each payload a named tuple from :mod:`.events`, or the policy):

    ``trust_path_verdict``         (stanza, report): a received message and its :class:`~trustpath.Report`
    ``trust_path_delivery``        (stanza, delivery): a receipt's report on a sent message, judged
                                   (:class:`~trustpath.core.delivery.Delivery`)
    ``trust_path_invalid``         (stanza, error): a message whose path cannot be read; no report
    ``trust_path_pin_mismatch``    (domain, spki): the server's key matches no pin; the connection is closed
    ``trust_path_require_refused`` (stanza, verdict, reason): not sent, this client's own hop is too weak
    ``trust_path_unverified_hop``  (stanza, condition, hop, report): a server refused a message this client sent,
                                   naming the hop; ``report`` is the check of the refusal's own path
    ``trust_path_ready``           :class:`ServerPolicy`: the server's keys are known

    Its parts, for diagnostics and tests: ``own_hop`` (:class:`~.own_hop.OwnHop`), ``session``
    (:class:`~.session.Session`), ``receipts`` (:class:`~.receipts.Receipts`), ``receiver``
    (:class:`~.receiving.Receiver`) and ``signer`` (:class:`~.signing.Signer`).
    """

    name = "trust_path"
    description = "Trust Path: signed per-hop records (urn:xmpp:trust-path:1)"
    dependencies: ClassVar[set[str]] = {"xep_0030"}
    stanza = stanza
    default_config: ClassVar[dict[str, Any]] = {
        "pins": None,
        "first_use": False,
        "bind_channel": False,
        "replay_cache": 10000,
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
    REMEMBERED: ClassVar[int] = REMEMBERED

    # slixmpp calls session_bind before plugin_init when the session is already bound
    _initialized = False
    _bind_pending = False

    # --- life cycle ----------------------------------------------------------------------
    def plugin_init(self) -> None:
        if self.require is not None and self.require not in stanza.REQUIRE_VERDICTS:
            raise UsageError(f"require is None, 'trusted' or 'weak', not {self.require!r}")
        store = self.pins if self.pins is None or isinstance(self.pins, PinStore) else PinStore.open(self.pins)
        self.own_hop = OwnHop(self.xmpp, store, self.config, self._now)
        self.own_hop.cap_tls_for_binding()
        self.receipts = Receipts(self.xmpp, self.config)
        self.session = Session(self.xmpp, self.config, self.own_hop, on_keys=self._keys_known)
        self.receiver = Receiver(self.xmpp, self.config, self.session, self.receipts, self._now)
        self.signer = Signer(self.xmpp, self.config, self.own_hop, self.session, self.receipts, self._now)

        stanza.register_stanzas()
        self._events: tuple[tuple[str, Callable[[Any], None]], ...] = (
            ("ssl_cert", self.own_hop.on_ssl_cert),
            ("connecting", self.own_hop.on_connecting),
            ("auth_success", self.own_hop.on_auth_success),
            ("session_end", self._on_session_end),
        )
        for event, handler in self._events:
            self.xmpp.add_event_handler(event, handler)
        self.xmpp.add_filter("out_sce", self.signer.filter)
        self.own_hop.guard_sasl()
        self._handler_name = f"Trust Path {id(self):x}"
        self.xmpp.register_handler(Callback(self._handler_name, MatchXPath(f"{{{self.xmpp.default_ns}}}message"),
                                            self.receiver.on_message))
        self._initialized = True
        if self._bind_pending:
            self._bind_pending = False
            self._bind()

    def plugin_end(self) -> None:
        self.xmpp.del_filter("out_sce", self.signer.filter)
        self.own_hop.unguard_sasl()
        self.xmpp.remove_handler(self._handler_name)
        for event, handler in self._events:
            self.xmpp.del_event_handler(event, handler)
        if "xep_0030" in self.xmpp.plugin:
            self.xmpp.plugin["xep_0030"].del_feature(feature=NS)
        self.session.close()
        self.receiver.close()
        self.receipts.close()
        self._initialized = False
        stanza.unregister_stanzas()

    def session_bind(self, jid: Any) -> None:  # slixmpp's signature; the bound JID is read from xmpp.boundjid
        if not self._initialized:
            self._bind_pending = True
            return
        self._bind()

    def _bind(self) -> None:
        """A new session: our filter, last; a new key, announced; the server's keys, queried."""
        self.xmpp.plugin["xep_0030"].add_feature(NS)
        self.xmpp.del_filter("out_sce", self.signer.filter)
        self.xmpp.add_filter("out_sce", self.signer.filter)
        self.session.start()

    def _on_session_end(self, _: Any) -> None:
        self.receipts.end_session()
        self.session.end()

    def _keys_known(self) -> None:
        self.receiver.flush()

    def _now(self) -> datetime:
        return self.now() if self.now is not None else datetime.now(UTC)

    # --- public API ----------------------------------------------------------------------
    @property
    def pin_store(self) -> PinStore | None:
        return self.own_hop.store

    @property
    def view(self) -> View | None:
        """This client's view of its c2s hop (None before TLS, or without TLS)."""
        return self.own_hop.view

    @property
    def channel_binding(self) -> str | None:
        """The SASL channel binding this session authenticated with (``'tls-unique'``), or None."""
        return self.own_hop.channel_binding

    def confirm_pin(self, domain: str | None = None, spki: str | None = None) -> tuple[Pin, ...]:
        """A person confirmed the first-use pin of ``domain`` (default: this client's server), e.g.
        after comparing ``spki`` out of band: it becomes a ``confirmed`` pin, and this connection's
        view (and every record signed from now on) states ``pin`` instead of ``tofu``.

        Raises :class:`~trustpath.core.errors.UsageError` without a pin store, or when the domain
        has no first-use pin (of ``spki``)."""
        store = self.own_hop.store
        if store is None:
            raise UsageError("no pin store: configure 'pins' to keep pins")
        confirmed = store.confirm(domain or self.xmpp.boundjid.domain, spki)
        self.own_hop.refresh_method()
        return confirmed

    @property
    def session_key(self) -> str | None:
        """The public record key of this session (base64), once bound."""
        key = self.session.key
        return key.public if key is not None else None

    @property
    def policy(self) -> ServerPolicy | None:
        """The server's trust-path policy from its disco#info (None until it answered)."""
        return self.session.policy

    @property
    def anchor(self) -> Anchor | None:
        """The anchor messages are verified with; None until the server has answered."""
        return self.session.anchor

    @property
    def effective_max_skew(self) -> int:
        """The skew in use: an injected anchor's, else the server's 'max-skew' (default 300), else ``max_skew``."""
        return self.session.max_skew(int(self.max_skew))

    def set_anchor(self, anchor: Anchor | None, max_skew: int | None = None) -> None:
        """Verify with ``anchor`` instead of the discovered one (``set_anchor(*trustpath.load_anchor(path))``).

        ``None`` goes back to the discovered anchor.  Messages waiting for an anchor are
        verified at once.
        """
        self.session.override = None if anchor is None else (anchor, max_skew)
        self.receiver.flush()

    def verify(self, message: Message, now: datetime | None = None) -> Report:
        """Verify one message now and return the report (raises :class:`~trustpath.core.errors.InvalidInput`)."""
        anchor = self.anchor
        if anchor is None:
            raise UsageError("no anchor yet: the server has not answered disco#info")
        return verify_stanza(wire_bytes(message.xml), anchor, now or self._now(), max_skew=self.effective_max_skew)

    def verify_refusal(self, message: Message, now: datetime | None = None) -> Report:
        """Check a refusal's own path now, from the server that refused (its 'by'), and return the
        report (raises :class:`~trustpath.core.errors.InvalidInput` for an error that is no refusal)."""
        anchor = self.anchor
        if anchor is None:
            raise UsageError("no anchor yet: the server has not answered disco#info")
        return verify_refusal_stanza(wire_bytes(message.xml), anchor, now or self._now(),
                                     max_skew=self.effective_max_skew)

    def requirement_problem(self, verdict: str) -> str | None:
        """Why this client cannot send ``<require verdict=.../>`` (a reason code), or None if it can."""
        return requirement_problem(self.own_hop.own_view(), verdict)

    def send_message_with_requirement(self, mto: Any, mbody: str, verdict: str = "trusted", *,
                                      mtype: str = "chat", **kwargs: Any) -> Message:
        """Send a message that may travel only over hops that meet ``verdict`` (XEP: Requiring Verified Hops).

        Raises :class:`RequirementNotMet` if this client's own hop cannot meet it.
        """
        problem = self.requirement_problem(verdict)
        if problem is not None:
            view = self.own_hop.own_view()
            raise RequirementNotMet(f"this client verified {self.xmpp.boundjid.domain} by '{view.method}' ({problem}), "
                                    f"which cannot meet require='{verdict}'")
        message = self.xmpp.make_message(mto, mbody=mbody, mtype=mtype, **kwargs)
        message["trust_path_require"] = verdict
        message.send()
        return message

    async def remote_policy(self, domain: str) -> ServerPolicy:
        """Whether a remote domain takes part, and its keys: its disco#info, asked over this
        client's server (a forecast, not a guarantee; XEP: Sender Learns How It Was Delivered)."""
        try:
            return await ask_policy(self.xmpp, domain, self.disco_timeout)
        except DiscoveryFailed as exc:
            return unanswered(domain, str(exc))

    async def preflight(self, domain: str) -> Preflight:
        """Ask this client's own server how the path to ``domain`` would be verified now (the
        pre-flight query) and forecast the verdict a message would get at best.

        Raises :class:`PreflightFailed` if the server answers with an error or not at all,
        :class:`~trustpath.core.errors.MalformedStanza` if its answer is not a valid pre-flight
        result, and :class:`~trustpath.core.errors.UsageError` for a JID instead of a domain.
        """
        domain = preflight_domain(domain)
        takes_part, out_view = await ask_preflight(self.xmpp, domain, self.disco_timeout)
        return preflight_of(domain, takes_part, out_view, self.own_hop.own_view(), self.xmpp.boundjid.domain,
                            bound=self.own_hop.channel_binding is not None)

    async def refresh_keys(self) -> ServerPolicy:
        """Ask the server for its keys again (e.g. after a rotation) and return its policy."""
        return await self.session.query_keys()


trust_path = TrustPath  # for ``xmpp.register_plugin('trust_path', module='trustpath.client.slixmpp.plugin')``
