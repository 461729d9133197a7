"""``/require trusted | weak | off``: verified hops only, per conversation.  The requirement goes
on each message as ``<require/>`` (the slixmpp plugin signs it and checks this client's own hop);
a refusal, by this client or by a server on the way, is said in the conversation with the hop
and the reason."""

from __future__ import annotations

from typing import Any

from ..slixmpp.events import RequireRefused, UnverifiedHop
from ..slixmpp.plugin import TrustPath
from .screen import Screen
from .text import reason_words

VERDICTS = ["trusted", "weak", "off"]


class RequireSetting:
    """``required``: a peer's bare JID -> ``'trusted'`` or ``'weak'``."""

    def __init__(self, core: Any, tp: TrustPath, screen: Screen) -> None:
        self.core = core
        self.required: dict[str, str] = {}
        self._tp = tp
        self._screen = screen

    def command(self, tab: Any, args: str) -> None:
        peer = tab.jid.bare
        arg = args.strip().lower()
        if arg in ("trusted", "weak"):
            self.required[peer] = arg
        elif arg in ("off", "none"):
            self.required.pop(peer, None)
        elif arg:
            self._screen.in_tab(tab, "usage: /require [trusted | weak | off]")
            return
        verdict = self.required.get(peer)
        if verdict is None:
            self._screen.in_tab(tab, f"verified hops only: off (messages to {peer} are delivered however they travel)")
        else:
            how = ("verified by a pin or DANE (✔ trusted)" if verdict == "trusted"
                   else "verified, a CA being enough (◐ weak or better)")
            self._screen.in_tab(tab, f"verified hops only: {verdict} — messages to {peer} may travel only over hops "
                                     f"{how}; a server that cannot meet it refuses the message instead of delivering it")

    def on_say(self, message: Any, tab: Any) -> None:
        """A message about to be sent in ``tab``: it carries the conversation's requirement."""
        verdict = self.required.get(tab.jid.bare)
        if verdict is not None and message["body"]:
            message["trust_path_require"] = verdict  # the slixmpp plugin signs it and checks its own hop

    def on_unverified_hop(self, event: UnverifiedHop) -> None:
        hop = event.hop
        reason = hop.get("reason")
        why = f"{reason}: {reason_words(reason)}" if reason else "no reason given"
        text = (f"✘ not delivered ({event.condition}): the hop to {hop.get('peer', '?')} is verified by "
                f"'{hop.get('method', '?')}' ({why})")
        if hop.get("required"):
            text += f", and you required {hop['required']}"
        if event.report is not None and event.report.records:
            # the plugin believed it: its path verified from the server that refused
            text += f" (refused by {event.report.records[0].signer}, over a {event.report.verdict.value} path)"
        self._screen.about(event.stanza["from"], text)

    def on_require_refused(self, event: RequireRefused) -> None:
        view = self._tp.view
        how = f"'{view.method}'" if view is not None else "nothing"
        text = (f"✘ not sent: your own connection to {self.core.xmpp.boundjid.domain} is verified by {how} "
                f"({event.reason}), which cannot meet require={event.verdict}")
        self._screen.about(event.stanza["to"], text)
