"""Your server and its key, as the person is told at login: whether the server takes part, the
question to pin an unpinned server's key, and the warning when a key matches none of its pins
(never a silent re-pin, and no reconnection on poezio's own to that key).

Nothing is pinned without the person (``first_use`` is off by default): an unpinned server's key
is shown in each form a person can compare, with where the real one is published, and a pin
taken with ``/pins accept`` stays a first-use pin (``tofu``, at best weak) until ``/pins confirm``."""

from __future__ import annotations

from typing import Any

from poezio import tabs

from ...core.keys import short_spki, unb64
from ...core.model import Verdict
from ..slixmpp.events import PinMismatch
from ..slixmpp.plugin import ServerPolicy, TrustPath
from .screen import Screen
from .text import verdict_words


class ServerKey:
    """``reconnecting``: the plugin reconnects once after a late load; the session before that was
    set up unseen, and nothing is said about it."""

    def __init__(self, core: Any, tp: TrustPath, screen: Screen) -> None:
        self.core = core
        self.reconnecting = False
        self._tp = tp
        self._screen = screen
        self._warned: set[tuple[str, str]] = set()

    def on_ready(self, policy: ServerPolicy) -> None:
        if self.reconnecting and self._tp.view is None:
            return  # the session this plugin did not see being set up; the reconnection follows
        self.reconnecting = False
        if policy.takes_part:
            self._screen.info(f"trust_path: {policy.domain} takes part in trust-path "
                              f"({len(policy.keys.keys)} key(s) published); received messages get a trust badge",
                              "Info")
        else:
            why = f" ({policy.problem})" if policy.problem else ""
            self._screen.info(f"trust_path: {policy.domain} does not take part in trust-path{why}; "
                              f"messages will be shown as {verdict_words(Verdict.UNKNOWN)}", "Warning")
        view = self._tp.view
        store = self._tp.pin_store
        spki = self._tp.own_hop.server_pin  # the full SHA-256 (the view carries only its first 12 bytes)
        if view is None or spki is None or store is None:
            return
        pin = store.check(policy.domain, spki)
        if pin is not None and view.method == "tofu":
            self._screen.info(
                f"trust_path: {policy.domain}'s key was pinned on first use ({pin.added}) and nobody confirmed it, "
                f"so messages are at best {verdict_words(Verdict.WEAK)} (first-use-pin).\n"
                + "\n".join(compare_key(policy.domain, spki, self._port()))
                + "\nIf they match: /pins confirm",
                "Warning")
            return
        if store.is_pinned(policy.domain):
            return
        self._screen.info(
            f"trust_path: {policy.domain} is not pinned, and nothing was pinned for you. This connection checked "
            f"its certificate by '{view.method}' only, so messages are at best {verdict_words(Verdict.WEAK)}.\n"
            + "\n".join(compare_key(policy.domain, spki, self._port()))
            + f"\nIf they match: /pins accept then /pins confirm, and keep a backup pin of its next key with "
            f"/pins add {policy.domain} <key> backup.",
            "Warning")

    def _port(self) -> int:
        return connection_port(self.core.xmpp)

    def on_pin_mismatch(self, event: PinMismatch) -> None:
        domain, spki = event.domain, event.spki
        # the connection is closed; poezio must not reconnect to the same key on its own
        self.core.legitimate_disconnect = True
        if (domain, spki) in self._warned:
            self._screen.info(f"trust_path: {domain} again presented the unpinned key {spki}; "
                              "not connected (see the warning above)", "Error")
            return
        self._warned.add((domain, spki))
        store = self._tp.pin_store
        pins = store.pins(domain) if store is not None else ()
        pinned = "\n".join(f"    {pin.spki} ({pin.source.value}, added {pin.added}{', backup' if pin.backup else ''})"
                           for pin in pins) or "    (none)"
        warning = (
            f"✘ trust_path: WARNING: {domain} presented a key that matches none of your pins.\n"
            f"The connection was closed before your password was sent, and nothing was re-pinned.\n"
            f"  presented key: {spki}\n"
            f"  your pins for {domain}:\n{pinned}\n"
            f"What to check: ask the administrator of {domain}, over another channel (in person, by phone, "
            f"their website over HTTPS), which key the server uses now. If it is the presented key, the key "
            f"changed on purpose: /pins add {domain} {spki} then /reconnect. If it is not, someone may be "
            f"intercepting your connection: do not add it, and do not reconnect from this network.")
        self._screen.info(warning, "Error")
        # and where the person is looking: every open conversation
        for tab in self.core.get_tabs(tabs.ConversationTab):
            self._screen.in_tab(tab, warning)


def connection_port(xmpp: Any) -> int:
    """The server port of ``xmpp``'s connection (its DANE record is named after it); 5222 if unknown."""
    transport = getattr(xmpp, "transport", None)
    peer = transport.get_extra_info("peername") if transport is not None else None
    return int(peer[1]) if isinstance(peer, tuple) and len(peer) >= 2 else 5222


def compare_key(domain: str, pin: str, port: int = 5222) -> list[str]:
    """The key ``domain`` presented (``pin``: base64 SHA-256 of its SubjectPublicKeyInfo) in each
    form a person meets it, and where the real one can be read over another channel than this
    connection (whoever sits on this connection chose what it shows)."""
    digest = unb64(pin, 32, "an SPKI pin")
    return [
        f"  the key it presented (SHA-256 of its SubjectPublicKeyInfo): {pin}",
        f"    the same in hex: {digest.hex()}",
        f"    as trust-path records and /path name it (SPKI hash): {short_spki(pin)}",
        f"  compare it with the real one, read over another channel than this connection:",
        f"    its DANE record (RFC 7673): TLSA 3 1 1 at _{port}._tcp.<its server's host name> holds the hex above",
        f"    its POSH file (RFC 7711): https://{domain}/.well-known/posh/xmpp-client.json",
        f"    or its administrator: in person, by phone, or a page of theirs you already trust",
    ]
