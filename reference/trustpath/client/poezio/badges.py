"""Trust badges on the messages poezio shows: a received message gets its report's badge, a sent
one the recipient's report from its delivery receipt (or the verdict on the receipt's own path).

A report can arrive before poezio shows its message (poezio shows it in a later task) or after:
a badge waits for its message a little (:data:`RETRIES`).  The reports and the badges are kept
per poezio core (:func:`kept_reports`), so that ``/unload`` and ``/load`` keep ``/path`` for
messages shown before.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar
from weakref import WeakKeyDictionary

from poezio import tabs
from poezio.ui.types import Message as ShownMessage
from poezio.xhtml import clean_text
from slixmpp import JID

from ...core.codec import NS_CARBONS, NS_MAM
from ...core.delivery import Delivery
from ...core.model import NS, Verdict
from ...core.verify import Report
from ..slixmpp.events import DeliveryVerdict, InvalidPath, TrustPathVerdict
from ..slixmpp.wire import NS_RECEIPTS
from .screen import Screen
from .text import badge, delivery_badge, room_badge

#: poezio colour codes (fg,bg) that repeat what the word and symbol already say
COLOURS = {Verdict.TRUSTED: "2,-1", Verdict.WEAK: "3,-1", Verdict.UNTRUSTED: "1,-1", Verdict.UNKNOWN: "5,-1"}
#: seconds after a verdict at which its message is looked for again, if poezio has not shown it yet
RETRIES = (0.05, 0.2, 1.0, 3.0, 10.0)
KEEP = 2000  # reports remembered for /path

#: a shown message: (the peer's bare JID, or in a room the occupant's room JID; the message id)
ShownKey = tuple[str, str]
#: what a badge says whose report it is: '' (the message's own), 'receipt path', 'delivered', 'room'
Prefix = str

K = TypeVar("K")
V = TypeVar("V")


def remember(store: OrderedDict[K, V], key: K, value: V) -> None:
    store[key] = value
    store.move_to_end(key)
    while len(store) > KEEP:
        store.popitem(last=False)


@dataclass
class ShownReports:
    """The reports of shown messages (for ``/path``) and the badge text put on each."""

    reports: OrderedDict[ShownKey, tuple[Report | Delivery, Prefix]] = field(default_factory=OrderedDict)
    badged: OrderedDict[ShownKey, tuple[ShownMessage, str]] = field(default_factory=OrderedDict)


_kept: WeakKeyDictionary[Any, ShownReports] = WeakKeyDictionary()


def kept_reports(core: Any) -> ShownReports:
    """The reports of ``core``'s shown messages, the same for every load of the plugin."""
    return _kept.setdefault(core, ShownReports())


# --- which shown message a stanza is about ---------------------------------------------------------

def inner_message(stanza: Any) -> Any:
    """The message a carbon copy or an archive result forwards (history from the archive is
    shown with the forwarded message's id), or ``stanza`` itself."""
    for tag in ("received", "sent"):
        if stanza.xml.find(f"{{{NS_CARBONS}}}{tag}") is not None:
            return stanza[f"carbon_{tag}"]
    if stanza.xml.find(f"{{{NS_MAM}}}result") is not None:
        return stanza["mam_result"]["forwarded"]["stanza"]
    return stanza


def carries_report(stanza: Any) -> bool:
    """Whether the (forwarded) message carries a delivery report."""
    return inner_message(stanza).xml.find(f"{{{NS}}}report") is not None


def shown_key(stanza: Any, account: str) -> tuple[ShownKey, Prefix] | None:
    """Which message poezio shows for ``stanza``, received by ``account`` (a bare JID): its key and
    the prefix of its badge.

    A message with a body is shown itself (prefix ``''``); a delivery receipt's report goes on
    the sent message it acknowledges (prefix ``'receipt path'``: it is the receipt's own path
    back).  An archive result is shown as the history line poezio makes of it (the forwarded
    message's id).  None for what poezio does not show (a chat state, a room message) and for
    this account's own messages read back from the archive.
    """
    inner = inner_message(stanza)
    if inner is not stanza and stanza.xml.find(f"{{{NS_MAM}}}result") is not None and inner["from"].bare == account:
        return None  # this account's own sent message: its archived path ends at its own server
    if inner["type"] == "groupchat":
        if inner is not stanza or not inner["body"] or not inner["id"]:
            return None  # a room's history or a copy: poezio shows it from its own archive query
        # in a room, ids are only unique per occupant: the key is the occupant's room JID
        return (str(inner["from"]), inner["id"]), "room"
    peer = inner["to"] if inner["from"].bare == account else inner["from"]
    if inner["body"] and inner["id"]:
        return (peer.bare, inner["id"]), ""
    receipt = inner.xml.find(f"{{{NS_RECEIPTS}}}received")
    if receipt is not None and receipt.get("id"):
        return (peer.bare, receipt.get("id")), "receipt path"
    return None


def message_key(tab: Any, shown: ShownMessage) -> ShownKey:
    """The key of a message shown in ``tab``: (peer's bare JID, or in a room the occupant's room
    JID, message id)."""
    if isinstance(tab, tabs.MucTab):
        return f"{tab.jid.bare}/{shown.nickname}", shown.identifier
    return tab.jid.bare, shown.identifier


def plain_text(shown: ShownMessage, reports: ShownReports) -> str:
    """The text of a shown message without its badge and formatting."""
    text = shown.txt
    for message, suffix in reports.badged.values():
        if message is shown and text.endswith(suffix):
            text = text[:-len(suffix)]
            break
    return clean_text(text).strip()


# --- putting the badges on ------------------------------------------------------------------------

class Badges:
    """Puts each report's badge on its shown message (``colour``: whether colour repeats it)."""

    def __init__(self, core: Any, reports: ShownReports, screen: Screen, colour: Callable[[], bool]) -> None:
        self.core = core
        self.reports = reports
        self._screen = screen
        self._colour = colour
        self._waiting: set[ShownKey] = set()

    def on_verdict(self, event: TrustPathVerdict) -> None:
        shown = shown_key(event.stanza, self.core.xmpp.boundjid.bare)
        if shown is None:
            return
        key, prefix = shown
        known = self.reports.reports.get(key)
        if prefix and known is not None and known[1] != prefix:
            return  # never replace a message's own report, or the recipient's, by the receipt's path
        if prefix and carries_report(event.stanza):
            return  # trust_path_delivery follows with the recipient's report
        self.show(key, event.report, prefix)

    def on_delivery(self, event: DeliveryVerdict) -> None:
        shown = shown_key(event.stanza, self.core.xmpp.boundjid.bare)
        if shown is None:
            return
        key, _ = shown
        known = self.reports.reports.get(key)
        if known is not None and not known[1]:
            return  # a message's own report stays (a receipt cannot claim a received message)
        self.show(key, event.delivery, "delivered")

    def on_invalid(self, event: InvalidPath) -> None:
        shown = shown_key(event.stanza, self.core.xmpp.boundjid.bare)
        if shown is None:
            return
        (peer, message_id), _ = shown
        tab = self._tab(JID(peer))
        if tab is not None:
            self._screen.in_tab(tab, f"✘ trust path of message {message_id} cannot be read: {event.error}")

    def show(self, key: ShownKey, report: Report | Delivery, prefix: Prefix) -> None:
        remember(self.reports.reports, key, (report, prefix))
        self._waiting.add(key)
        if not self.apply(key):
            loop = asyncio.get_event_loop()
            for delay in RETRIES:  # poezio shows the message in its own (later) task
                loop.call_later(delay, self.apply, key)
            loop.call_later(RETRIES[-1] + 1, self._waiting.discard, key)  # never shown: /path still has it

    def apply(self, key: ShownKey) -> bool:
        """Put the badge of ``key``'s report on its message, if poezio shows it yet."""
        if key not in self._waiting or key not in self.reports.reports:
            return True
        found = self._find(*key)
        if found is None:
            return False
        tab, shown = found
        self._waiting.discard(key)
        suffix = self._suffix(*self.reports.reports[key])
        previous = self.reports.badged.get(key)
        if previous is not None and previous[0] is shown and shown.txt.endswith(previous[1]):
            shown.txt = shown.txt[:-len(previous[1])]
        shown.txt += suffix
        remember(self.reports.badged, key, (shown, suffix))
        # as poezio does for a receipt: redraw this message only (a chat tab's buffer has one window)
        tab.text_win.modify_message(shown.identifier, shown)
        if tab is self.core.tabs.current_tab:
            self.core.refresh_window()
        return True

    def _suffix(self, report: Report | Delivery, prefix: Prefix) -> str:
        if isinstance(report, Delivery):
            text = delivery_badge(report)
        elif prefix == "room":
            text = room_badge(report)
        else:
            text = badge(report, prefix)
        if self._colour():
            return f" \x19{COLOURS[report.verdict]}}}\x19b{text}\x19o"
        return f" \x19b{text}\x19o"

    def _tab(self, peer: JID) -> Any:
        """The tab a shown message's key points to: a room's key is the occupant's room JID, a
        conversation's a bare JID.  None if it is not open."""
        if peer.resource:
            return self.core.tabs.by_name_and_class(peer.bare, tabs.MucTab)
        return self.core.get_conversation_by_jid(peer, create=False)

    def _find(self, peer: str, message_id: str) -> tuple[Any, ShownMessage] | None:
        jid = JID(peer)
        tab = self._tab(jid)
        if tab is None:
            return None
        for shown in reversed(tab.get_conversation_messages()):
            if isinstance(shown, ShownMessage) and shown.identifier == message_id and \
                    (not jid.resource or shown.nickname == jid.resource):
                return tab, shown
        return None
