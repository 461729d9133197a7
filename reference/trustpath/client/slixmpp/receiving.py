"""Receiving: every message with a body, a covered payload or a path (also carbons and archive
results) is checked with :func:`trustpath.core.receive.verify_stanza` and its report emitted as
``trust_path_verdict``; a path that cannot be read is ``trust_path_invalid``.  Messages that
arrive before the server's keys are known wait for them (at most ``pending_limit``), each with
this client's view of the connection that carried it: a message is judged on that connection,
even when it is checked after a reconnection or an XEP-0198 resumption on another one.

The replay cache (XEP: At the Recipient Client, step 4) holds the signatures of the records this
client accepted (at most ``replay_cache`` of them, the oldest forgotten first): the same record
arriving again is ``replayed``.  Archive results are exempt: an archive holds what was accepted
before.  Extensions that no signature covers are named in a note (:mod:`.coverage`)."""

from __future__ import annotations

import logging
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from slixmpp import BaseXMPP
from slixmpp.stanza import Message
from slixmpp.xmlstream import ET

from ...core.codec import NS_CARBONS, NS_FORWARD, NS_MAM, decode_path, find_message, parse_stanza
from ...core.delivery import sent_by_another_device
from ...core.errors import InvalidInput
from ...core.model import Status, View
from ...core.receive import verify_refusal_stanza, verify_stanza
from ...core.verify import Report
from .coverage import with_coverage_note
from .events import InvalidPath, TrustPathVerdict
from .receipts import Receipts, remember
from .refusals import unverified_hop, why_not_believed
from .session import Session
from .wire import NS_RECEIPTS, carries_content, wire_bytes

log = logging.getLogger(__name__)

WRAPPERS = (f"{{{NS_CARBONS}}}sent", f"{{{NS_CARBONS}}}received", f"{{{NS_MAM}}}result")


class Receiver:
    """Checks received messages against the session's anchor; ``pending`` holds the messages that
    wait for it, with when they arrived and this client's view of the connection they came on."""

    def __init__(self, xmpp: BaseXMPP, config: Mapping[str, Any], session: Session, receipts: Receipts,
                 clock: Callable[[], datetime]) -> None:
        self.xmpp = xmpp
        self.pending: deque[tuple[Message, datetime, View]] = deque()
        #: the replay cache: signatures of records already accepted (oldest first)
        self.seen: OrderedDict[str, None] = OrderedDict()
        self._config = config
        self._session = session
        self._receipts = receipts
        self._clock = clock

    def on_message(self, message: Message) -> None:
        """slixmpp's handler for every message."""
        if message["type"] == "error":
            if unverified_hop(message) is not None:
                self.check_refusal(message)
            return
        xml = message.xml
        inner: ET.Element | None = xml
        for child in xml:
            if child.tag in WRAPPERS:
                # a carbon copy or an archive result: the core checks who sent the wrapper and
                # verifies the forwarded message
                forwarded = child.find(f"{{{NS_FORWARD}}}forwarded")
                inner = forwarded.find(f"{{{message.namespace}}}message") if forwarded is not None else None
                break
        if inner is not None and not carries_content(inner, message.namespace):
            return  # a chat state, a receipt, ...: nothing was attested
        now = self._clock()
        view = self._session.connection_view()  # the connection this message came on
        if inner is xml and message["id"] and xml.find(f"{{{NS_RECEIPTS}}}request") is not None:
            # a receipt will be asked for: it waits for this check, to carry its report
            self._receipts.expect((str(message["from"]), message["id"]))
        if self._session.anchor is None:
            if len(self.pending) >= int(self._config["pending_limit"]):
                dropped, _, _ = self.pending.popleft()
                self._receipts.not_checked((str(dropped["from"]), dropped["id"]))
                log.warning("trust_path: too many messages wait for the server's keys; %s is not checked",
                            dropped["id"])
            self.pending.append((message, now, view))
            return
        self.check(message, now, view, may_refresh=True)

    def check(self, message: Message, now: datetime, view: View, *, may_refresh: bool) -> None:
        """Verify ``message`` as received at ``now`` over a connection this client saw as ``view``;
        with ``may_refresh``, an unknown key of this client's server makes it wait for the
        server's keys once more instead."""
        anchor = self._session.anchor_for(view)
        assert anchor is not None
        key = (str(message["from"]), message["id"])
        data = wire_bytes(message.xml)
        try:
            report = verify_stanza(data, anchor, now, max_skew=self._session.max_skew(int(self._config["max_skew"])),
                                   seen=self.seen)
        except InvalidInput as exc:
            self._receipts.unreadable(key)
            self.xmpp.event("trust_path_invalid", InvalidPath(message, exc))
            return
        if may_refresh and self._session.keys_may_be_stale(report):
            # XEP, Keys and Discovery Caching: ask once more before reporting an unknown key
            self.pending.append((message, now, view))
            self._session.refresh()
            return
        self._remember_accepted(data, report)
        inner = self._inner(message)
        if inner is not None:
            report = with_coverage_note(report, inner, message.namespace)
        self._receipts.checked(key, data, report)
        if message.xml.find(f"{{{NS_CARBONS}}}sent") is not None:
            # another device of this account sent it: its recipient's report can be bound here too
            try:
                sent = sent_by_another_device(data, self.xmpp.boundjid.bare)
            except InvalidInput:
                sent = None  # the carbon's own path was verified above; only the binding is lost
            if sent is not None:
                self._receipts.remember_sent(*sent)
        self.xmpp.event("trust_path_verdict", TrustPathVerdict(message, report))
        self._receipts.judge(message, data, report)

    def check_refusal(self, message: Message) -> None:
        """An error naming the hop that refused a message: ``trust_path_unverified_hop`` when this
        client believes it (:mod:`.refusals`), else it is logged and stays an ordinary error."""
        key = (message["from"].bare, message["id"])
        sent = self._receipts.was_sent(key)
        data = wire_bytes(message.xml)
        report = None
        if sent and self._session.anchor is not None:
            # a refusal answers a message this client just sent: its server's keys are known by now
            # (one that answers nothing it sent is not believed whatever its path: not checked)
            try:
                report = verify_refusal_stanza(data,
                                               self._session.anchor_for(self._session.connection_view()),
                                               self._clock(),
                                               max_skew=self._session.max_skew(int(self._config["max_skew"])),
                                               seen=self.seen)
            except InvalidInput as exc:
                log.info("trust_path: the refusal %s from %s cannot be checked: %s", message["id"], message["from"],
                         exc)
        why = why_not_believed(message, report, sent=sent,
                               required=self._receipts.required_of(key), own_server=self.xmpp.boundjid.domain)
        if why is not None:
            log.info("trust_path: ignoring <unverified-hop/> in an error from %s: %s", message["from"], why)
            return
        assert report is not None
        self._remember_accepted(data, report)
        self.xmpp.event("trust_path_unverified_hop", unverified_hop(message, report))

    def _inner(self, message: Message) -> ET.Element | None:
        """The message the report is about: the stanza, or the one a carbon or archive result forwards."""
        for child in message.xml:
            if child.tag in WRAPPERS:
                forwarded = child.find(f"{{{NS_FORWARD}}}forwarded")
                return forwarded.find(f"{{{message.namespace}}}message") if forwarded is not None else None
        return message.xml

    def _remember_accepted(self, data: bytes, report: Report) -> None:
        """Put the signatures of the records that verified into the replay cache (not for an
        archive result: reading history again is not a replay)."""
        try:
            received = find_message(parse_stanza(data))
            path = decode_path(received.message) if received.wrapper != "archive" else None
        except InvalidInput:
            return
        if path is None:
            return
        limit = int(self._config.get("replay_cache", 10000))
        for att, check in zip(path.records, report.records):
            if check.status is Status.OK:
                remember(self.seen, att.sig, None, limit)

    def flush(self) -> None:
        """Check every message that waited for the anchor, if there is one now."""
        if self._session.anchor is None:
            return
        waiting, self.pending = self.pending, deque()
        for message, received, view in waiting:
            self.check(message, received, view, may_refresh=False)

    def close(self) -> None:
        self.pending.clear()
