"""trust_path: trust-path badges, path details and pins in poezio.

Load it with ``/load trust_path`` (this file's directory on poezio's ``plugins_dir``), or for
every start add to poezio.cfg::

    plugins_dir = /path/to/trustpath/poezio
    plugins_autoload = trust_path

poezio loads plugins after login; ``trustpath poezio [poezio's options]`` starts poezio with this
plugin loaded before the first connection (:mod:`trustpath.client.poezio.launch`), so that the first
login of a start is pin-checked too.

What a person sees:

* every received message in a conversation, and every one poezio fetches from the archive as
  history (MAM, with ``use_log = false``), ends with its trust badge, the verdict in words and
  a symbol, naming the weakest hop by its two ends and its reason in words: ``[✔ trusted]``,
  ``[◐ weak: H2 a.example → b.example, checked by a CA only]``,
  ``[✘ untrusted: H2 a.example → b.example, the two ends saw different keys]``,
  ``[? unknown: H1 ... → a.example, does not take part; ...]``;
* in a room, every message ends with ``[? unknown: the room does not take part]``: rooms do not
  take part in this version of the XEP, which reports every groupchat message as unknown;
* ``/path`` shows the path of the last message with a badge in the current conversation hop by
  hop (hop, role, from → to, method, result, reason, key source, time); ``/path 3`` the third
  last, ``/path some words`` the last one containing them;
* ``/pins`` lists, adds and removes the pins of servers' keys; a key that matches none of them
  is a warning (in the info buffer and in every conversation) that says what to check, never a
  silent re-pin, and poezio does not reconnect to that key on its own;
* on a connection to an unpinned server it shows the key and asks to pin it (``/pins accept``);
* a sent message gets the recipient side's report back with its delivery receipt (XEP: Delivery
  Reports), bounded by the receipt's own path: ``[delivered ✔ trusted]``,
  ``[delivered ◐ weak: H2 a.example → b.example, checked by a CA only]``; a receipt from a client
  that sends no report shows the verdict on the receipt's own path (``[receipt path ✔ trusted]``);
* ``/require trusted`` (or ``weak``, ``off``) in a conversation sends its messages over verified
  hops only; a refusal says which hop and why;
* ``/preflight [domain]`` asks your server how the path to a domain (default: the conversation's)
  would be verified now, and shows the forecast and your server's view of H2; the first message to
  a domain in a session starts the same query on its own (shown once per domain as an information
  line; it never holds the message back).

Every protocol step (pin check, signing, verifying, the verdict) is done by the slixmpp plugin
``trust_path`` (:mod:`trustpath.client.slixmpp`).  This module only shows what it reports.

Configuration (``plugins_conf_dir/trust_path.cfg``, section ``[trust_path]``):

``pins_file``          the pin store (default ``$XDG_DATA_HOME/poezio/trust_path/pins.json``)
``first_use``          pin an unpinned server's key silently on first use (false: ask instead)
``reconnect_on_load``  reconnect once when loaded on a live connection, so that the server's key
                       is checked before any credential is sent (true)
``colour``             colour the badge as well; the words and symbol are always there (true)
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from pathlib import Path
from typing import Any, ClassVar

from poezio import tabs, xdg
from poezio.plugin import BasePlugin
from poezio.ui.types import InfoMessage
from poezio.ui.types import Message as ShownMessage
from poezio.xhtml import clean_text
from slixmpp import JID

import trustpath.client.slixmpp
from trustpath.core.codec import NS_CARBONS, NS_MAM
from trustpath.core.errors import TrustPathError
from trustpath.core.model import NS, Verdict
from trustpath.core.delivery import Delivery
from trustpath.client.poezio.text import badge, delivery_badge, delivery_lines, path_lines, preflight_error, \
    preflight_line, preflight_lines, reason_words, room_badge, verdict_words
from trustpath.client.slixmpp.pins import PinSource, PinStore
from trustpath.client.slixmpp.plugin import NS_RECEIPTS

#: poezio colour codes (fg,bg) that repeat what the word and symbol already say
COLOURS = {Verdict.TRUSTED: "2,-1", Verdict.WEAK: "3,-1", Verdict.UNTRUSTED: "1,-1", Verdict.UNKNOWN: "5,-1"}
#: seconds after a verdict at which its message is looked for again, if poezio has not shown it yet
RETRIES = (0.05, 0.2, 1.0, 3.0, 10.0)
KEEP = 2000  # reports remembered for /path


class Plugin(BasePlugin):
    default_config: ClassVar[dict[str, dict[str, Any]]] = {
        "trust_path": {"pins_file": "", "first_use": False, "reconnect_on_load": True, "colour": True}}

    def init(self) -> None:
        xmpp = self.core.xmpp
        # kept on poezio's core, so that /unload and /load (or /reload) keep /path for shown messages
        kept = self.core.__dict__.setdefault("trust_path_reports", (OrderedDict(), OrderedDict()))
        self._reports: OrderedDict[tuple[str, str], Any] = kept[0]  # (peer bare JID, id) -> (report, prefix)
        self._badged: OrderedDict[tuple[str, str], tuple[ShownMessage, str]] = kept[1]
        self._waiting: set[tuple[str, str]] = set()
        self._warned: set[tuple[str, str]] = set()
        self._reconnecting = False
        self._require: dict[str, str] = {}  # peer's bare JID -> 'trusted' | 'weak'
        self._preflighted: set[str] = set()  # domains asked about automatically in this session
        self._tasks: set[asyncio.Future[Any]] = set()
        trustpath.client.slixmpp.register()
        if "trust_path" in xmpp.plugin:
            # another component registered it already: use its store and settings
            self._owner = False
        else:
            self._owner = True
            store = PinStore.open(self._pins_path())
            xmpp.register_plugin("trust_path", {"pins": store, "first_use": self._flag("first_use")})
        self.tp = xmpp.plugin["trust_path"]
        self._handlers = (
            ("trust_path_verdict", self.on_verdict),
            ("trust_path_delivery", self.on_delivery),
            ("trust_path_invalid", self.on_invalid),
            ("trust_path_pin_mismatch", self.on_pin_mismatch),
            ("trust_path_unverified_hop", self.on_unverified_hop),
            ("trust_path_require_refused", self.on_require_refused),
            ("trust_path_ready", self.on_ready),
            ("session_end", self.on_session_end),
        )
        for event, handler in self._handlers:
            xmpp.add_event_handler(event, handler)
        self.api.add_command(
            "path", self.command_path, usage="[N | words]",
            short="Show a message's trust path hop by hop",
            help="Show the trust path of the last message with a trust badge in this conversation, hop by "
                 "hop: hop, role, from → to, method, result, reason, key source and time. /path N: the N-th "
                 "last such message. /path words: the last such message containing these words.")
        self.api.add_command(
            "pins", self.command_pins, usage="[list | accept | add <domain> <key> [backup] | remove <domain> [key]]",
            short="List, add and remove pinned server keys",
            help="Pins are SHA-256 hashes of a server's SubjectPublicKeyInfo (base64), kept in a readable, "
                 "versioned file. /pins list: every pin (the default). /pins accept: pin the key your server "
                 "presented on this connection. /pins add <domain> <key> [backup]: pin a key, or keep a backup "
                 "key for the day the server changes its key. /pins remove <domain> [key]: remove one pin, or "
                 "all pins of a domain.",
            completion=self.completion_pins)
        for tab_type in (tabs.ConversationTab, tabs.DynamicConversationTab, tabs.StaticConversationTab):
            # poezio keeps tab commands per class, not per class hierarchy
            self.api.add_tab_command(
                tab_type, "require", self.command_require, usage="[trusted | weak | off]",
                short="Send in this conversation over verified hops only",
                help="/require trusted: messages in this conversation may travel only over hops verified by a "
                     "pin or DANE; a server that cannot meet it refuses the message instead of delivering it, and "
                     "you are told which hop. /require weak: a CA is enough. /require off: no requirement. "
                     "/require: show the setting.",
                completion=lambda the_input: self._complete(the_input, ["trusted", "weak", "off"]))
        self.api.add_command(
            "preflight", self.command_preflight, usage="[domain]",
            short="Forecast how the path to a domain would be verified",
            help="Ask your server, before sending, how the path to a domain would be verified now: your own "
                 "connection (H1), your server's connection to that domain (H2) and whether the domain takes "
                 "part. Without a domain: the domain of the current conversation. A forecast is never "
                 "'trusted': the other server's check and its hop to the recipient are only known once a "
                 "message arrives. The first message to a domain in a session asks on its own.")
        self.api.add_event_handler("conversation_say_after", self.on_say)
        if self._flag("reconnect_on_load") and xmpp.is_connected() and self.tp.view is None:
            # loaded on a connection set up before this plugin watched it: the server's key was not
            # checked against the pins, and this session's own hop cannot be described
            self.api.information(f"trust_path: reconnecting once, so that the key of {xmpp.boundjid.domain} is "
                                 "checked against your pins before any credential is sent", "Info")
            self._reconnecting = True
            asyncio.get_event_loop().call_soon(self.core.disconnect, "trust_path loaded", True)

    def cleanup(self) -> None:
        xmpp = self.core.xmpp
        for task in list(self._tasks):
            task.cancel()
        for event, handler in self._handlers:
            xmpp.del_event_handler(event, handler)
        if self._owner and "trust_path" in xmpp.plugin:
            xmpp.plugin.disable("trust_path")

    # --- configuration -----------------------------------------------------------------------
    def _flag(self, name: str) -> bool:
        value = self.config.get(name, self.default_config["trust_path"][name])
        return value if isinstance(value, bool) else str(value).strip().lower() in ("true", "1", "yes", "on")

    def _pins_path(self) -> Path:
        configured = str(self.config.get("pins_file", "") or "").strip()
        return Path(configured).expanduser() if configured else xdg.DATA_HOME / "trust_path" / "pins.json"

    @property
    def store(self) -> PinStore | None:
        return self.tp.pin_store

    # --- badges --------------------------------------------------------------------------------
    def _shown(self, stanza: Any) -> tuple[tuple[str, str], str] | None:
        """Which message poezio shows for ``stanza``: ((peer's bare JID, message id), prefix).

        A message with a body is shown itself (prefix ``''``); a delivery receipt's report goes on
        the sent message it acknowledges (prefix ``'receipt path'``: it is the receipt's own path
        back).  An archive result is shown as the history line poezio makes of it (the forwarded
        message's id).  None for what poezio does not show (a chat state, a room message) and for
        this account's own messages read back from the archive.
        """
        inner = self._inner(stanza)
        own = self.core.xmpp.boundjid.bare
        if inner is not stanza and stanza.xml.find(f"{{{NS_MAM}}}result") is not None and inner["from"].bare == own:
            return None  # this account's own sent message: its archived path ends at its own server
        if inner["type"] == "groupchat":
            if inner is not stanza or not inner["body"] or not inner["id"]:
                return None  # a room's history or a copy: poezio shows it from its own archive query
            # in a room, ids are only unique per occupant: the key is the occupant's room JID
            return (str(inner["from"]), inner["id"]), "room"
        peer = inner["to"] if inner["from"].bare == own else inner["from"]
        if inner["body"] and inner["id"]:
            return (peer.bare, inner["id"]), ""
        receipt = inner.xml.find(f"{{{NS_RECEIPTS}}}received")
        if receipt is not None and receipt.get("id"):
            return (peer.bare, receipt.get("id")), "receipt path"
        return None

    def on_verdict(self, event: Any) -> None:
        shown = self._shown(event.stanza)
        if shown is None:
            return
        key, prefix = shown
        if prefix and key in self._reports and self._reports[key][1] != prefix:
            return  # never replace a message's own report, or the recipient's, by the receipt's path
        if prefix and self._carries_report(event.stanza):
            return  # trust_path_delivery follows with the recipient's report
        self._show(key, event.report, prefix)

    @staticmethod
    def _inner(stanza: Any) -> Any:
        """The message a carbon copy or an archive result forwards (history from the archive is
        shown with the forwarded message's id), or ``stanza`` itself."""
        for tag in ("received", "sent"):
            if stanza.xml.find(f"{{{NS_CARBONS}}}{tag}") is not None:
                return stanza[f"carbon_{tag}"]
        if stanza.xml.find(f"{{{NS_MAM}}}result") is not None:
            return stanza["mam_result"]["forwarded"]["stanza"]
        return stanza

    @classmethod
    def _carries_report(cls, stanza: Any) -> bool:
        return cls._inner(stanza).xml.find(f"{{{NS}}}report") is not None

    def on_delivery(self, event: Any) -> None:
        shown = self._shown(event.stanza)
        if shown is None:
            return
        key, _ = shown
        if key in self._reports and not self._reports[key][1]:
            return  # a message's own report stays (a receipt cannot claim a received message)
        self._show(key, event.delivery, "delivered")

    def _show(self, key: tuple[str, str], report: Any, prefix: str) -> None:
        self._remember(self._reports, key, (report, prefix))
        self._waiting.add(key)
        if not self._apply(key):
            loop = asyncio.get_event_loop()
            for delay in RETRIES:  # poezio shows the message in its own (later) task
                loop.call_later(delay, self._apply, key)
            loop.call_later(RETRIES[-1] + 1, self._waiting.discard, key)  # never shown: /path still has it

    @staticmethod
    def _remember(store: OrderedDict[Any, Any], key: Any, value: Any) -> None:
        store[key] = value
        store.move_to_end(key)
        while len(store) > KEEP:
            store.popitem(last=False)

    def _suffix(self, report: Any, prefix: str) -> str:
        if isinstance(report, Delivery):
            text = delivery_badge(report)
        elif prefix == "room":
            text = room_badge(report)
        else:
            text = badge(report, prefix)
        if self._flag("colour"):
            return f" \x19{COLOURS[report.verdict]}}}\x19b{text}\x19o"
        return f" \x19b{text}\x19o"

    def _find(self, peer: str, message_id: str) -> tuple[Any, ShownMessage] | None:
        jid = JID(peer)
        # a room message's key is the occupant's room JID; a conversation's is a bare JID
        room = self.core.tabs.by_name_and_class(jid.bare, tabs.MucTab) if jid.resource else None
        tab = room if jid.resource else self.core.get_conversation_by_jid(jid, create=False)
        if tab is None:
            return None
        for shown in reversed(tab._text_buffer.messages):
            if isinstance(shown, ShownMessage) and shown.identifier == message_id and \
                    (room is None or shown.nickname == jid.resource):
                return tab, shown
        return None

    @staticmethod
    def _key(tab: Any, shown: ShownMessage) -> tuple[str, str]:
        """The key of a shown message in :attr:`_reports`: (peer's bare JID, or in a room the
        occupant's room JID, message id)."""
        if isinstance(tab, tabs.MucTab):
            return f"{tab.jid.bare}/{shown.nickname}", shown.identifier
        return tab.jid.bare, shown.identifier

    def _apply(self, key: tuple[str, str]) -> bool:
        """Put the badge of ``key``'s report on its message, if poezio shows it yet."""
        if key not in self._waiting or key not in self._reports:
            return True
        found = self._find(*key)
        if found is None:
            return False
        tab, shown = found
        self._waiting.discard(key)
        suffix = self._suffix(*self._reports[key])
        previous = self._badged.get(key)
        if previous is not None and previous[0] is shown and shown.txt.endswith(previous[1]):
            shown.txt = shown.txt[:-len(previous[1])]
        shown.txt += suffix
        self._remember(self._badged, key, (shown, suffix))
        # as poezio does for a receipt (TextBuffer._edit_ack): redraw this message only
        for window in tab._text_buffer._windows:
            window.modify_message(shown.identifier, shown)
        if tab is self.core.tabs.current_tab:
            self.core.refresh_window()
        return True

    def on_invalid(self, event: Any) -> None:
        key = self._shown(event.stanza)
        if key is None:
            return
        tab = self.core.get_conversation_by_jid(JID(key[0]), create=False)
        if tab is not None:
            self._tab_says(tab, f"✘ trust path of message {key[1]} cannot be read: {event.error}")

    # --- the sender's side ------------------------------------------------------------------------
    def on_unverified_hop(self, event: Any) -> None:
        hop = event.hop
        reason = hop.get("reason")
        why = f"{reason}: {reason_words(reason)}" if reason else "no reason given"
        text = (f"✘ not delivered ({event.condition}): the hop to {hop.get('peer', '?')} is verified by "
                f"'{hop.get('method', '?')}' ({why})")
        if hop.get("required"):
            text += f", and you required {hop['required']}"
        self._say_about(event.stanza["from"], text)

    def on_require_refused(self, event: Any) -> None:
        view = self.tp.view
        how = f"'{view.method}'" if view is not None else "nothing"
        text = (f"✘ not sent: your own connection to {self.core.xmpp.boundjid.domain} is verified by {how} "
                f"({event.reason}), which cannot meet require={event.verdict}")
        self._say_about(event.stanza["to"], text)

    def _say_about(self, jid: Any, text: str) -> None:
        """``text`` in the conversation with ``jid`` if one is open, else in the info buffer as an error."""
        tab = self.core.get_conversation_by_jid(jid, create=False)
        if tab is not None:
            self._tab_says(tab, text)
        else:
            self.api.information(f"trust_path: {text}", "Error")

    # --- the server's key and pins ------------------------------------------------------------------
    def on_ready(self, policy: Any) -> None:
        if self._reconnecting and self.tp.view is None:
            return  # the session this plugin did not see being set up; the reconnection follows
        self._reconnecting = False
        if policy.takes_part:
            self.api.information(f"trust_path: {policy.domain} takes part in trust-path "
                                 f"({len(policy.keys.keys)} key(s) published); received messages get a trust badge",
                                 "Info")
        else:
            why = f" ({policy.problem})" if policy.problem else ""
            self.api.information(f"trust_path: {policy.domain} does not take part in trust-path{why}; "
                                 f"messages will be shown as {verdict_words(Verdict.UNKNOWN)}", "Warning")
        view = self.tp.view
        store = self.store
        if view is None or not view.spki or store is None or store.is_pinned(policy.domain):
            return
        self.api.information(
            f"trust_path: {policy.domain} is not pinned. This connection checked its certificate by "
            f"'{view.method}' only, so messages are at best {verdict_words(Verdict.WEAK)}.\n"
            f"  its key (SHA-256 of the SubjectPublicKeyInfo): {view.spki}\n"
            f"If the administrator of {policy.domain} confirms this key (over another channel), pin it with "
            f"/pins accept, and keep a backup pin of its next key with /pins add {policy.domain} <key> backup.",
            "Warning")

    def on_pin_mismatch(self, event: Any) -> None:
        domain, spki = event.domain, event.spki
        # the connection is closed; poezio must not reconnect to the same key on its own
        self.core.legitimate_disconnect = True
        if (domain, spki) in self._warned:
            self.api.information(f"trust_path: {domain} again presented the unpinned key {spki}; "
                                 "not connected (see the warning above)", "Error")
            return
        self._warned.add((domain, spki))
        pins = self.store.pins(domain) if self.store is not None else ()
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
        self.api.information(warning, "Error")
        # and where the person is looking: every open conversation
        for tab in self.core.get_tabs(tabs.ConversationTab):
            self._tab_says(tab, warning)

    # --- commands -------------------------------------------------------------------------------------
    def command_path(self, args: str) -> None:
        tab = self.api.current_tab()
        if not isinstance(tab, (tabs.ConversationTab, tabs.MucTab)):
            self.api.information("/path works in a conversation or room tab", "Error")
            return
        peer = tab.jid.bare
        badged = [(shown, self._reports[self._key(tab, shown)]) for shown in reversed(tab._text_buffer.messages)
                  if isinstance(shown, ShownMessage) and self._key(tab, shown) in self._reports]
        arg = args.strip()
        chosen = None
        if not arg:
            chosen = badged[0] if badged else None
        elif arg.isdigit():
            n = int(arg)
            chosen = badged[n - 1] if 1 <= n <= len(badged) else None
        else:
            chosen = next((item for item in badged if arg.lower() in self._plain(item[0]).lower()), None)
        if chosen is None:
            if not badged:
                what = "no message in this conversation has a trust report yet"
            elif arg.isdigit():
                what = f"only {len(badged)} message(s) in this conversation have a trust report"
            else:
                what = f"no message with a trust report in this conversation contains {arg!r}"
            self._tab_says(tab, f"/path: {what}")
            return
        shown, (report, prefix) = chosen
        text = self._plain(shown)
        if len(text) > 40:
            text = text[:39] + "…"
        who = shown.nickname or (shown.jid.bare if shown.jid else peer)
        if isinstance(report, Delivery):
            header = (f"delivery of “{text}” (sent at {shown.time:%H:%M:%S}) to {peer}, as its receipt "
                      "reported it:")
            lines = delivery_lines(report)
        elif prefix == "receipt path":
            header = (f"trust path of the delivery receipt for “{text}” (sent at {shown.time:%H:%M:%S}), "
                      f"from {peer} back to you:")
            lines = path_lines(report)
        else:
            header = f"trust path of “{text}” from {who} at {shown.time:%H:%M:%S}:"
            lines = path_lines(report)
        self._tab_says(tab, "\n".join([header, *lines]))

    def _plain(self, shown: ShownMessage) -> str:
        """The text of a shown message without its badge and formatting."""
        text = shown.txt
        for message, suffix in self._badged.values():
            if message is shown and text.endswith(suffix):
                text = text[:-len(suffix)]
                break
        return clean_text(text).strip()

    def command_pins(self, args: str) -> None:
        store = self.store
        if store is None:
            self.api.information("trust_path: no pin store is in use", "Error")
            return
        words = args.split()
        action = words[0].lower() if words else "list"
        try:
            if action == "list" and len(words) <= 1:
                self._say(self._pin_list(store))
            elif action == "accept" and len(words) == 1:
                self._accept(store)
            elif action == "add" and len(words) in (3, 4) and (len(words) == 3 or words[3].lower() == "backup"):
                backup = len(words) == 4
                pin = store.add(words[1], words[2], source=PinSource.CONFIGURED, backup=backup)
                self._say([f"trust_path: pinned {words[1]}: {pin.spki}{' (backup)' if pin.backup else ''} in "
                           + str(store.path)])
            elif action == "remove" and len(words) in (2, 3):
                gone = store.remove(words[1], words[2] if len(words) == 3 else None)
                left = len(store.pins(words[1]))
                note = "" if left else f"; {words[1]} is not pinned any more"
                self._say([f"trust_path: removed {gone} pin(s) of {words[1]}{note}"])
            else:
                self._say(["usage: /pins [list | accept | add <domain> <key> [backup] | remove <domain> [key]]"],
                          "Error")
        except (TrustPathError, OSError) as exc:
            self._say([f"trust_path: /pins {action}: {exc}"], "Error")

    def _pin_list(self, store: PinStore) -> list[str]:
        view = self.tp.view
        lines = [f"trust_path: pins in {store.path}" if store.path else "trust_path: pins (not saved to a file)"]
        pins = store.list()
        if not pins:
            lines.append("  no server is pinned")
        for domain, entries in pins.items():
            lines.append(f"  {domain}:")
            for pin in entries:
                used = view is not None and view.peer == domain and view.spki == pin.spki
                lines.append(f"    {pin.spki}  {pin.source.value}, added {pin.added}"
                             f"{', backup' if pin.backup else ''}{'  ← this connection' if used else ''}")
        return lines

    def _accept(self, store: PinStore) -> None:
        view = self.tp.view
        domain = self.core.xmpp.boundjid.domain
        if view is None or not view.spki:
            self._say(["trust_path: /pins accept: this connection has no server key to pin"], "Error")
            return
        if store.is_pinned(domain):
            self._say([f"trust_path: {domain} is already pinned; use /pins add {domain} <key> to add another key"],
                      "Error")
            return
        store.add(domain, view.spki, source=PinSource.FIRST_USE)
        self._say([f"trust_path: pinned {domain}: {view.spki} in {store.path}.",
                   f"From the next connection on, {domain} must present this key (/reconnect to use it now)."])

    def command_require(self, args: str) -> None:
        tab = self.api.current_tab()
        peer = tab.jid.bare
        arg = args.strip().lower()
        if arg in ("trusted", "weak"):
            self._require[peer] = arg
        elif arg in ("off", "none"):
            self._require.pop(peer, None)
        elif arg:
            self._tab_says(tab, "usage: /require [trusted | weak | off]")
            return
        verdict = self._require.get(peer)
        if verdict is None:
            self._tab_says(tab, f"verified hops only: off (messages to {peer} are delivered however they travel)")
        else:
            how = ("verified by a pin or DANE (✔ trusted)" if verdict == "trusted"
                   else "verified, a CA being enough (◐ weak or better)")
            self._tab_says(tab, f"verified hops only: {verdict} — messages to {peer} may travel only over hops "
                                f"{how}; a server that cannot meet it refuses the message instead of delivering it")

    def on_say(self, message: Any, tab: Any) -> None:
        verdict = self._require.get(tab.jid.bare)
        if verdict is not None and message["body"]:
            message["trust_path_require"] = verdict  # the slixmpp plugin signs it and checks its own hop
        if message["body"]:
            try:
                self._auto_preflight(tab)
            except Exception as exc:  # noqa: BLE001 (never in the way of the message)
                self.api.information(f"trust_path: pre-flight not started: {exc}", "Warning")

    # --- the pre-flight query ----------------------------------------------------------------------
    def _auto_preflight(self, tab: Any) -> None:
        """Before the first message to a domain in this session: ask once, in the background."""
        domain = tab.jid.domain
        if not domain or domain in self._preflighted or domain == self.core.xmpp.boundjid.domain:
            return
        policy = self.tp.policy
        if policy is not None and not policy.takes_part:
            return  # your server does not take part: it was said once, at login
        self._preflighted.add(domain)
        self._start(self._preflight(domain, tab, full=False))

    def _start(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _preflight(self, domain: str, tab: Any, *, full: bool) -> None:
        try:
            result = await self.tp.preflight(domain)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 (shown as a failure, never raised into poezio)
            self._preflight_says(tab, preflight_error(domain, exc), "Warning")
            return
        text = "\n".join(preflight_lines(result)) if full else preflight_line(result)
        self._preflight_says(tab, text, "Info")

    def _preflight_says(self, tab: Any, text: str, level: str) -> None:
        if tab is not None and tab in self.core.tabs:
            self._tab_says(tab, text)
        else:
            self.api.information(text, level)

    def command_preflight(self, args: str) -> None:
        tab = self.api.current_tab()
        arg = args.strip()
        if arg:
            try:
                domain = JID(arg).domain  # a JID names its domain
            except Exception:  # noqa: BLE001 (slixmpp's InvalidJID, or anything else it cannot read)
                self.api.information(f"/preflight: {arg!r} is not a domain", "Error")
                return
        elif isinstance(tab, tabs.ConversationTab):
            domain = tab.jid.domain
        else:
            self.api.information("usage: /preflight <domain> (or /preflight in a conversation)", "Error")
            return
        if not isinstance(tab, tabs.ChatTab):
            tab = None
        self._start(self._preflight(domain, tab, full=True))

    def on_session_end(self, _: Any) -> None:
        self._preflighted.clear()  # a new session asks again

    @staticmethod
    def _complete(the_input: Any, words: list[str]) -> Any:
        from poezio.core.structs import Completion

        return Completion(the_input.new_completion, words, 1)

    def completion_pins(self, the_input: Any) -> Any:
        from poezio.core.structs import Completion

        if the_input.get_argument_position() == 1:
            return Completion(the_input.new_completion, ["list", "accept", "add", "remove"], 1)
        if the_input.get_argument_position() == 2 and self.store is not None:
            domains = list(self.store.domains()) + [self.core.xmpp.boundjid.domain]
            return Completion(the_input.new_completion, sorted(set(domains)), 2)
        return None

    # --- output -------------------------------------------------------------------------------------
    def _tab_says(self, tab: Any, text: str) -> None:
        tab.add_message(InfoMessage(text))
        if tab is self.core.tabs.current_tab:
            self.core.refresh_window()

    def _say(self, lines: list[str], level: str = "Info") -> None:
        """Command output: in the current conversation if there is one, else in the info buffer."""
        tab = self.api.current_tab()
        if isinstance(tab, tabs.ChatTab):
            self._tab_says(tab, "\n".join(lines))
        else:
            self.api.information("\n".join(lines), level)
