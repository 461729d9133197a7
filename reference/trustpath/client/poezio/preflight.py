"""The pre-flight query in poezio: ``/preflight [domain]`` asks your server how the path to a
domain (default: the conversation's) would be verified now, and shows the forecast and your
server's view of H2; the first message to a domain in a session starts the same query on its own,
shown once per domain as an information line.  It never holds a message back."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from poezio import tabs
from slixmpp import JID
from slixmpp.jid import InvalidJID

from ...core.errors import TrustPathError
from ..slixmpp.plugin import TrustPath
from .screen import Screen
from .text import preflight_error, preflight_line, preflight_lines

USAGE = "usage: /preflight <domain> (or /preflight in a conversation)"


class Preflights:
    """``asked``: the domains asked about on their own in this session."""

    def __init__(self, core: Any, tp: TrustPath, screen: Screen) -> None:
        self.core = core
        self.asked: set[str] = set()
        self._tp = tp
        self._screen = screen
        self._tasks: set[asyncio.Future[None]] = set()

    def before_sending(self, tab: Any) -> None:
        """Before the first message to a domain in this session: ask once, in the background."""
        domain = tab.jid.domain
        if not domain or domain in self.asked or domain == self.core.xmpp.boundjid.domain:
            return
        policy = self._tp.policy
        if policy is not None and not policy.takes_part:
            return  # your server does not take part: it was said once, at login
        self.asked.add(domain)
        self._start(self._ask(domain, tab, full=False))

    def command(self, tab: Any, args: str) -> None:
        arg = args.strip()
        if arg:
            try:
                domain = JID(arg).domain  # a JID names its domain
            except InvalidJID:
                self._screen.info(f"/preflight: {arg!r} is not a domain", "Error")
                return
        elif isinstance(tab, tabs.ConversationTab):
            domain = tab.jid.domain
        else:
            self._screen.info(USAGE, "Error")
            return
        self._start(self._ask(domain, tab if isinstance(tab, tabs.ChatTab) else None, full=True))

    def on_session_end(self) -> None:
        self.asked.clear()  # a new session asks again

    def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()

    def _start(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Future[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled():
            task.result()  # a bug in the query goes on to the event loop's exception handler

    async def _ask(self, domain: str, tab: Any, *, full: bool) -> None:
        try:
            result = await self._tp.preflight(domain)
        except TrustPathError as exc:
            # the server's error, no answer, or an answer that cannot be read: each said in words
            self._says(tab, preflight_error(domain, exc), "Warning")
            return
        self._says(tab, "\n".join(preflight_lines(result, self.core.xmpp.boundjid.domain)) if full else preflight_line(result), "Info")

    def _says(self, tab: Any, text: str, level: str) -> None:
        if tab is not None and tab in self.core.tabs:
            self._screen.in_tab(tab, text)
        else:
            self._screen.info(text, level)
