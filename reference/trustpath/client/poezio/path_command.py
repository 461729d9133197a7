"""``/path``: the path of a message with a badge in the current conversation, hop by hop (hop,
role, from → to, method, result, reason, key source, time).  ``/path 3``: the third last such
message; ``/path some words``: the last one containing them."""

from __future__ import annotations

from typing import Any

from poezio import tabs
from poezio.ui.types import Message as ShownMessage

from ...core.delivery import Delivery
from ...core.verify import Report
from .badges import Prefix, ShownReports, message_key, plain_text
from .screen import Screen
from .text import delivery_lines, path_lines


class PathCommand:
    def __init__(self, api: Any, reports: ShownReports, screen: Screen) -> None:
        self._api = api
        self._reports = reports
        self._screen = screen

    def run(self, args: str) -> None:
        tab = self._api.current_tab()
        if not isinstance(tab, (tabs.ConversationTab, tabs.MucTab)):
            self._screen.info("/path works in a conversation or room tab", "Error")
            return
        badged = self._badged(tab)
        arg = args.strip()
        if not arg:
            chosen = badged[0] if badged else None
        elif arg.isdigit():
            n = int(arg)
            chosen = badged[n - 1] if 1 <= n <= len(badged) else None
        else:
            chosen = next((item for item in badged if arg.lower() in plain_text(item[0], self._reports).lower()),
                          None)
        if chosen is None:
            if not badged:
                what = "no message in this conversation has a trust report yet"
            elif arg.isdigit():
                what = f"only {len(badged)} message(s) in this conversation have a trust report"
            else:
                what = f"no message with a trust report in this conversation contains {arg!r}"
            self._screen.in_tab(tab, f"/path: {what}")
            return
        shown, (report, prefix) = chosen
        self._screen.in_tab(tab, "\n".join(self._lines(tab, shown, report, prefix)))

    def _badged(self, tab: Any) -> list[tuple[ShownMessage, tuple[Report | Delivery, Prefix]]]:
        """The messages of ``tab`` that have a report, newest first."""
        found = []
        for shown in reversed(tab.get_conversation_messages()):
            if isinstance(shown, ShownMessage):
                report = self._reports.reports.get(message_key(tab, shown))
                if report is not None:
                    found.append((shown, report))
        return found

    def _lines(self, tab: Any, shown: ShownMessage, report: Report | Delivery, prefix: Prefix) -> list[str]:
        peer = tab.jid.bare
        text = plain_text(shown, self._reports)
        if len(text) > 40:
            text = text[:39] + "…"
        who = shown.nickname or (shown.jid.bare if shown.jid else peer)
        if isinstance(report, Delivery):
            header = (f"delivery of “{text}” (sent at {shown.time:%H:%M:%S}) to {peer}, as its receipt "
                      "reported it:")
            return [header, *delivery_lines(report)]
        if prefix == "receipt path":
            header = (f"trust path of the delivery receipt for “{text}” (sent at {shown.time:%H:%M:%S}), "
                      f"from {peer} back to you:")
            return [header, *path_lines(report)]
        return [f"trust path of “{text}” from {who} at {shown.time:%H:%M:%S}:", *path_lines(report)]
