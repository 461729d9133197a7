"""Receiving: every message with a body or a path (also carbons and archive results) is checked
with :func:`trustpath.core.receive.verify_stanza` and its report emitted as
``trust_path_verdict``; a path that cannot be read is ``trust_path_invalid``.  Messages that
arrive before the server's keys are known wait for them (at most ``pending_limit``)."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from slixmpp import BaseXMPP
from slixmpp.stanza import Message
from slixmpp.xmlstream import ET

from ...core.codec import NS_CARBONS, NS_FORWARD, NS_MAM
from ...core.delivery import sent_by_another_device
from ...core.errors import InvalidInput
from ...core.receive import verify_stanza
from .events import InvalidPath, TrustPathVerdict
from .receipts import Receipts
from .refusals import unverified_hop
from .session import Session
from .wire import NS_RECEIPTS, carries_content, wire_bytes

log = logging.getLogger(__name__)

WRAPPERS = (f"{{{NS_CARBONS}}}sent", f"{{{NS_CARBONS}}}received", f"{{{NS_MAM}}}result")


class Receiver:
    """Checks received messages against the session's anchor; ``pending`` holds the messages (and
    when they arrived) that wait for it."""

    def __init__(self, xmpp: BaseXMPP, config: Mapping[str, Any], session: Session, receipts: Receipts,
                 clock: Callable[[], datetime]) -> None:
        self.xmpp = xmpp
        self.pending: deque[tuple[Message, datetime]] = deque()
        self._config = config
        self._session = session
        self._receipts = receipts
        self._clock = clock

    def on_message(self, message: Message) -> None:
        """slixmpp's handler for every message."""
        if message["type"] == "error":
            refusal = unverified_hop(message)
            if refusal is not None:
                self.xmpp.event("trust_path_unverified_hop", refusal)
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
        if inner is xml and message["id"] and xml.find(f"{{{NS_RECEIPTS}}}request") is not None:
            # a receipt will be asked for: it waits for this check, to carry its report
            self._receipts.expect((str(message["from"]), message["id"]))
        if self._session.anchor is None:
            if len(self.pending) >= int(self._config["pending_limit"]):
                dropped, _ = self.pending.popleft()
                self._receipts.not_checked((str(dropped["from"]), dropped["id"]))
                log.warning("trust_path: too many messages wait for the server's keys; %s is not checked",
                            dropped["id"])
            self.pending.append((message, now))
            return
        self.check(message, now, may_refresh=True)

    def check(self, message: Message, now: datetime, *, may_refresh: bool) -> None:
        """Verify ``message`` as received at ``now``; with ``may_refresh``, an unknown key of this
        client's server makes it wait for the server's keys once more instead."""
        anchor = self._session.anchor
        assert anchor is not None
        key = (str(message["from"]), message["id"])
        data = wire_bytes(message.xml)
        try:
            report = verify_stanza(data, anchor, now, max_skew=self._session.max_skew(int(self._config["max_skew"])))
        except InvalidInput as exc:
            self._receipts.unreadable(key)
            self.xmpp.event("trust_path_invalid", InvalidPath(message, exc))
            return
        if may_refresh and self._session.keys_may_be_stale(report):
            # XEP, Keys and Discovery Caching: ask once more before reporting an unknown key
            self.pending.append((message, now))
            self._session.refresh()
            return
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

    def flush(self) -> None:
        """Check every message that waited for the anchor, if there is one now."""
        if self._session.anchor is None:
            return
        waiting, self.pending = self.pending, deque()
        for message, received in waiting:
            self.check(message, received, may_refresh=False)

    def close(self) -> None:
        self.pending.clear()
