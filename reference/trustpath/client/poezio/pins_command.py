"""``/pins``: list, add and remove the pins of servers' keys (SHA-256 of a SubjectPublicKeyInfo,
base64), kept in the readable pin file of :class:`~trustpath.client.slixmpp.pins.PinStore`;
``/pins accept`` pins the key the server presented on this connection (a first-use pin), and
``/pins confirm [domain] [key]`` confirms a first-use pin once a person compared it out of band.

A pin's provenance decides what it is worth (XEP: a first-use pin is ``tofu``, rated like a CA,
because whoever was on the first connection chose it): ``configured`` and ``confirmed`` pins are
``pin``, ``first-use`` ones ``tofu`` until confirmed."""

from __future__ import annotations

from typing import Any

from poezio.core.structs import Completion

from ...core.errors import TrustPathError
from ..slixmpp.pins import PinSource, PinStore
from ..slixmpp.plugin import TrustPath
from .screen import Screen
from .server_key import compare_key, connection_port

USAGE = "usage: /pins [list | accept | confirm [domain] [key] | add <domain> <key> [backup] | remove <domain> [key]]"
ACTIONS = ["list", "accept", "confirm", "add", "remove"]

#: a pin's provenance in words, with what it is worth
PROVENANCE = {
    PinSource.CONFIGURED: "configured by you: a pin",
    PinSource.CONFIRMED: "taken on first use, confirmed by you: a pin",
    PinSource.FIRST_USE: "taken on first use, not confirmed: counts like a CA check until /pins confirm",
    PinSource.DANE: "from DANE: a pin",
}


class PinsCommand:
    def __init__(self, core: Any, tp: TrustPath, screen: Screen) -> None:
        self.core = core
        self._tp = tp
        self._screen = screen

    def run(self, args: str) -> None:
        store = self._tp.pin_store
        if store is None:
            self._screen.info("trust_path: no pin store is in use", "Error")
            return
        words = args.split()
        action = words[0].lower() if words else "list"
        try:
            if action == "list" and len(words) <= 1:
                self._screen.command_output(self._pin_list(store))
            elif action == "accept" and len(words) == 1:
                self._accept(store)
            elif action == "confirm" and len(words) <= 3:
                confirmed = self._tp.confirm_pin(words[1] if len(words) > 1 else None,
                                                 words[2] if len(words) > 2 else None)
                domain = words[1] if len(words) > 1 else self.core.xmpp.boundjid.domain
                self._screen.command_output([f"trust_path: confirmed the pin of {domain}: {pin.spki}; it counts as a "
                                             "pin from now on" for pin in confirmed])
            elif action == "add" and len(words) in (3, 4) and (len(words) == 3 or words[3].lower() == "backup"):
                pin = store.add(words[1], words[2], source=PinSource.CONFIGURED, backup=len(words) == 4)
                backup = " (backup)" if pin.backup else ""
                self._screen.command_output([f"trust_path: pinned {words[1]}: {pin.spki}{backup} in {store.path}"])
            elif action == "remove" and len(words) in (2, 3):
                gone = store.remove(words[1], words[2] if len(words) == 3 else None)
                left = len(store.pins(words[1]))
                note = "" if left else f"; {words[1]} is not pinned any more"
                self._screen.command_output([f"trust_path: removed {gone} pin(s) of {words[1]}{note}"])
            else:
                self._screen.command_output([USAGE], "Error")
        except (TrustPathError, OSError) as exc:
            # a domain or key the person mistyped, or a pin file that cannot be written: say which
            self._screen.command_output([f"trust_path: /pins {action}: {exc}"], "Error")

    def completion(self, the_input: Any) -> Completion | None:
        if the_input.get_argument_position() == 1:
            return Completion(the_input.new_completion, ACTIONS, 1)
        store = self._tp.pin_store
        if the_input.get_argument_position() == 2 and store is not None:
            domains = [*store.domains(), self.core.xmpp.boundjid.domain]
            return Completion(the_input.new_completion, sorted(set(domains)), 2)
        return None

    def _pin_list(self, store: PinStore) -> list[str]:
        seen = self._tp.own_hop.server_pin  # the full pin of the key this connection's server presented
        here = self.core.xmpp.boundjid.domain
        lines = [f"trust_path: pins in {store.path}" if store.path else "trust_path: pins (not saved to a file)"]
        pins = store.list()
        if not pins:
            lines.append("  no server is pinned")
        for domain, entries in pins.items():
            lines.append(f"  {domain}:")
            for pin in entries:
                used = domain == here and seen == pin.spki
                lines.append(f"    {pin.spki}  {pin.source.value} ({PROVENANCE[pin.source]}), added {pin.added}"
                             f"{', backup' if pin.backup else ''}{'  ← this connection' if used else ''}")
        return lines

    def _accept(self, store: PinStore) -> None:
        spki = self._tp.own_hop.server_pin
        domain = self.core.xmpp.boundjid.domain
        if self._tp.view is None or spki is None:
            self._screen.command_output(["trust_path: /pins accept: this connection has no server key to pin"],
                                        "Error")
            return
        if store.is_pinned(domain):
            self._screen.command_output(
                [f"trust_path: {domain} is already pinned; use /pins add {domain} <key> to add another key"], "Error")
            return
        store.add(domain, spki, source=PinSource.FIRST_USE)
        self._screen.command_output([
            f"trust_path: pinned {domain}: {spki} in {store.path} (first use).",
            f"From the next connection on, {domain} must present this key (/reconnect to use it now).",
            "Until you confirm it, it counts like a CA check, not as a pin:",
            *compare_key(domain, spki, connection_port(self.core.xmpp)),
            f"If they match: /pins confirm"])
