"""Delivery receipts (XEP-0184) and the reports in them (XEP: Delivery Reports), both ways.

Sending a receipt: this client's report of the acknowledged message's path goes into it.  A
receipt for a message that is still being checked (it waits for the server's keys) is held
until the check is done, for at most ``receipt_wait`` seconds, and goes without a report after
that or when the session ends; either way it is sent exactly once.

Receiving one: its report on a message this account sent is judged against what was sent
(:func:`trustpath.core.delivery.delivery_of`) and emitted as ``trust_path_delivery``.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, TypeVar

from slixmpp import BaseXMPP
from slixmpp.stanza import Message
from slixmpp.xmlstream import ET

from ...core.codec import serialize
from ...core.delivery import DeliveryReport, delivery_of, report_element, report_of_stanza
from ...core.errors import InvalidInput
from ...core.model import NS
from ...core.verify import Report
from .events import DeliveryVerdict, InvalidPath
from .wire import NS_RECEIPTS

log = logging.getLogger(__name__)

#: messages remembered for delivery reports: sent (id -> own sig) and received (-> report)
REMEMBERED = 1000

#: (a JID as text, a message id): for a received message its sender's full JID, for a sent one
#: its recipient's bare JID
MessageKey = tuple[str, str]

K = TypeVar("K")
V = TypeVar("V")


def remember(store: OrderedDict[K, V], key: K, value: V, limit: int = REMEMBERED) -> None:
    """Keep ``key`` as the newest entry of ``store``, forgetting the oldest beyond ``limit``."""
    store[key] = value
    store.move_to_end(key)
    while len(store) > limit:
        store.popitem(last=False)


class Receipts:
    """What this client knows for delivery reports.

    ``sent``: (recipient's bare JID, id) -> the sig of this client's record (None: sent
    without one).  ``received``: (sender's full JID, id) -> this client's report.  ``unchecked``:
    received messages a receipt will be asked for, still to be checked.  ``held``: receipts
    waiting for such a check, with the timer that ends the wait.  ``released``: receipts whose
    wait ended before the check, let through the outgoing filter once without a report.
    """

    def __init__(self, xmpp: BaseXMPP, config: Mapping[str, Any]) -> None:
        self.xmpp = xmpp
        self.sent: OrderedDict[MessageKey, str | None] = OrderedDict()
        #: the <require/> verdict of each sent message that carried one: a refusal of it is believed
        #: only when its own path meets it (XEP: Requiring Verified Hops)
        self.required: OrderedDict[MessageKey, str] = OrderedDict()
        self.received: OrderedDict[MessageKey, DeliveryReport] = OrderedDict()
        self.unchecked: set[MessageKey] = set()
        self.held: dict[MessageKey, tuple[Message, asyncio.TimerHandle]] = {}
        self.released: set[MessageKey] = set()
        self._config = config

    # --- received messages a receipt will be asked for ----------------------------------------------
    def expect(self, key: MessageKey) -> None:
        """A receipt will be asked for this message: it waits for the message's check."""
        self.unchecked.add(key)

    def not_checked(self, key: MessageKey) -> None:
        """The message will not be checked (it was dropped while waiting): nothing to wait for."""
        self.unchecked.discard(key)

    def unreadable(self, key: MessageKey) -> None:
        """The message's path could not be read: its receipt goes without a report."""
        self.unchecked.discard(key)
        self.release(key)

    def checked(self, key: MessageKey, data: bytes, report: Report) -> None:
        """The message ``data`` was checked: its report is kept for its receipt, which may go now."""
        if key not in self.unchecked:
            return
        self.unchecked.discard(key)
        try:
            remember(self.received, key, report_of_stanza(data, report))
        except InvalidInput as exc:
            log.warning("trust_path: no delivery report for message %s: %s", key[1], exc)
        self.release(key)

    # --- receipts this client sends ---------------------------------------------------------------
    def add_report(self, message: Message) -> bool:
        """Put this client's report into a delivery receipt (XEP: Delivery Reports).  False when the
        receipt must wait: the message it acknowledges is still being checked."""
        xml = message.xml
        received = xml.find(f"{{{NS_RECEIPTS}}}received")
        if received is None or not received.get("id") or xml.find(f"{{{NS}}}report") is not None:
            return True
        key = (str(message["to"]), received.get("id"))
        report = self.received.get(key)
        if report is not None:
            xml.append(ET.fromstring(serialize(report_element(report))))
            return True
        if key in self.released:
            self.released.discard(key)
            return True
        if key not in self.unchecked or key in self.held:
            return True  # nothing was checked for it: a receipt without a report
        timer = self.xmpp.loop.call_later(float(self._config["receipt_wait"]), self.release, key)
        self.held[key] = (message, timer)
        return False

    def release(self, key: MessageKey) -> None:
        """Send the receipt held for ``key``, if there is one (through the outgoing filter again,
        which adds the report if the message was checked by now)."""
        held = self.held.pop(key, None)
        if held is None:
            return
        message, timer = held
        timer.cancel()
        if key not in self.received:
            log.info("trust_path: message %s from %s was not checked in time; its receipt goes without a report",
                     key[1], key[0])
            self.released.add(key)
        message.send()

    # --- messages this account sent, and the reports that come back --------------------------------
    def was_sent(self, key: MessageKey) -> bool:
        """Whether this client sent (to the bare JID, with the id) the message ``key`` names (among
        the last it remembers)."""
        return key in self.sent

    def remember_sent(self, key: MessageKey, sig: str | None) -> None:
        remember(self.sent, key, sig)

    def remember_required(self, key: MessageKey, verdict: str) -> None:
        remember(self.required, key, verdict)

    def required_of(self, key: MessageKey) -> str | None:
        """The verdict the sent message ``key`` required, or None."""
        return self.required.get(key)

    def judge(self, message: Message, data: bytes, report: Report) -> None:
        """A receipt's report on a message this account sent: judged, then ``trust_path_delivery``."""
        if next(message.xml.iter(f"{{{NS}}}report"), None) is None:
            return  # most messages: no need to parse them once more
        try:
            delivery = delivery_of(data, report, self.sent, account=self.xmpp.boundjid.bare)
        except InvalidInput as exc:
            log.warning("trust_path: the delivery report in %s cannot be used: %s", message["id"], exc)
            self.xmpp.event("trust_path_invalid", InvalidPath(message, exc))
            return
        if delivery is not None:
            self.xmpp.event("trust_path_delivery", DeliveryVerdict(message, delivery))

    # --- life cycle --------------------------------------------------------------------------------
    def end_session(self) -> None:
        """Every held receipt goes now, without a report (or is dropped with the stream, as slixmpp
        decides); nothing waits for a check across sessions."""
        for key in list(self.held):
            self.release(key)
        self.unchecked.clear()
        self.released.clear()

    def close(self) -> None:
        """The plugin is unloaded: held receipts are not sent."""
        for _, timer in self.held.values():
            timer.cancel()
        self.held.clear()
        self.released.clear()
