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
``trust_path`` (:mod:`trustpath.client.slixmpp`).  This package only shows what it reports, one
module per part: :mod:`~trustpath.client.poezio.badges` (badges on shown messages),
:mod:`~trustpath.client.poezio.path_command` (``/path``), :mod:`~trustpath.client.poezio.pins_command`
(``/pins``), :mod:`~trustpath.client.poezio.server_key` (your server's key at login and the
pin-mismatch warning), :mod:`~trustpath.client.poezio.require` (``/require`` and refusals),
:mod:`~trustpath.client.poezio.preflight` (``/preflight``), :mod:`~trustpath.client.poezio.screen`
(where the words go) and :mod:`~trustpath.client.poezio.text` (the words).  This module is the
plugin poezio loads, and connects them.

Configuration (``plugins_conf_dir/trust_path.cfg``, section ``[trust_path]``):

``pins_file``          the pin store (default ``$XDG_DATA_HOME/poezio/trust_path/pins.json``)
``first_use``          pin an unpinned server's key silently on first use (false: ask instead); such a pin
                       counts as ``tofu`` (like a CA check) until ``/pins confirm``
``bind_channel``       cap TLS to your server at 1.2 so that the login uses SCRAM-*-PLUS channel binding
                       (false); without it, recipients rate the first hop at most weak (``unbound``)
``reconnect_on_load``  reconnect once when loaded on a live connection, so that the server's key
                       is checked before any credential is sent (true)
``colour``             colour the badge as well; the words and symbol are always there (true)
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, ClassVar

from poezio import tabs, xdg
from poezio.core.structs import Completion
from poezio.plugin import BasePlugin, SafetyMetaclass

# poezio loads this file from its plugins_dir as a top-level module: the package by its full name
import trustpath.client.slixmpp
from trustpath.client.poezio.badges import Badges, kept_reports
from trustpath.client.poezio.path_command import PathCommand
from trustpath.client.poezio.pins_command import PinsCommand
from trustpath.client.poezio.preflight import Preflights
from trustpath.client.poezio.require import VERDICTS, RequireSetting
from trustpath.client.poezio.screen import Screen
from trustpath.client.poezio.server_key import ServerKey
from trustpath.client.slixmpp.pins import PinStore

PATH_HELP = ("Show the trust path of the last message with a trust badge in this conversation, hop by hop: hop, "
             "role, from → to, method, result, reason, key source and time. /path N: the N-th last such message. "
             "/path words: the last such message containing these words.")
PINS_HELP = ("Pins are SHA-256 hashes of a server's SubjectPublicKeyInfo (base64), kept in a readable, versioned "
             "file. /pins list: every pin (the default). /pins accept: pin the key your server presented on this "
             "connection (a first-use pin). /pins confirm [domain] [key]: you compared the key out of band; the pin "
             "counts as a pin from now on (before, like a CA check). /pins add <domain> <key> [backup]: pin a key, or keep a backup key for the day the "
             "server changes its key. /pins remove <domain> [key]: remove one pin, or all pins of a domain.")
REQUIRE_HELP = ("/require trusted: messages in this conversation may travel only over hops verified by a pin or "
                "DANE; a server that cannot meet it refuses the message instead of delivering it, and you are told "
                "which hop. /require weak: a CA is enough. /require off: no requirement. /require: show the "
                "setting.")
PREFLIGHT_HELP = ("Ask your server, before sending, how the path to a domain would be verified now: your own "
                  "connection (H1), your server's connection to that domain (H2) and whether the domain takes "
                  "part. Without a domain: the domain of the current conversation. A forecast is never 'trusted': "
                  "the other server's check and its hop to the recipient are only known once a message arrives. "
                  "The first message to a domain in a session asks on its own.")


class Plugin(BasePlugin):
    """The poezio plugin: connects poezio's commands and events to the parts that handle them.

    Every handler poezio or slixmpp calls is a method of this class or wrapped like one, so that
    poezio's plugin safety net shows a bug in any of them instead of letting it stop poezio.
    """

    default_config: ClassVar[dict[str, dict[str, Any]]] = {
        "trust_path": {"pins_file": "", "first_use": False, "bind_channel": False, "reconnect_on_load": True,
                       "colour": True}}

    def init(self) -> None:
        xmpp = self.core.xmpp
        trustpath.client.slixmpp.register()
        # another component may have registered it already: then its store and settings are used
        self._owner = "trust_path" not in xmpp.plugin
        if self._owner:
            store = PinStore.open(self._pins_path())
            xmpp.register_plugin("trust_path", {"pins": store, "first_use": self._flag("first_use"),
                                                "bind_channel": self._flag("bind_channel")})
        self.tp = xmpp.plugin["trust_path"]
        screen = Screen(self.core, self.api)
        reports = kept_reports(self.core)
        self.badges = Badges(self.core, reports, screen, colour=lambda: self._flag("colour"))
        self.path = PathCommand(self.api, reports, screen)
        self.pins = PinsCommand(self.core, self.tp, screen)
        self.server_key = ServerKey(self.core, self.tp, screen)
        self.require = RequireSetting(self.core, self.tp, screen)
        self.preflights = Preflights(self.core, self.tp, screen)
        # the parts' handlers get poezio's plugin safety net, as this class's own methods do
        safe = SafetyMetaclass.safe_func
        self._handlers = (
            ("trust_path_verdict", safe(self.badges.on_verdict)),
            ("trust_path_delivery", safe(self.badges.on_delivery)),
            ("trust_path_invalid", safe(self.badges.on_invalid)),
            ("trust_path_pin_mismatch", safe(self.server_key.on_pin_mismatch)),
            ("trust_path_unverified_hop", safe(self.require.on_unverified_hop)),
            ("trust_path_require_refused", safe(self.require.on_require_refused)),
            ("trust_path_ready", safe(self.server_key.on_ready)),
            ("session_end", safe(lambda _: self.preflights.on_session_end())),
        )
        for event, handler in self._handlers:
            xmpp.add_event_handler(event, handler)
        self.api.add_command("path", safe(self.path.run), usage="[N | words]",
                             short="Show a message's trust path hop by hop", help=PATH_HELP)
        self.api.add_command("pins", safe(self.pins.run),
                             usage="[list | accept | add <domain> <key> [backup] | remove <domain> [key]]",
                             short="List, add and remove pinned server keys", help=PINS_HELP,
                             completion=safe(self.pins.completion))
        for tab_type in (tabs.ConversationTab, tabs.DynamicConversationTab, tabs.StaticConversationTab):
            # poezio keeps tab commands per class, not per class hierarchy
            self.api.add_tab_command(tab_type, "require", self.command_require, usage="[trusted | weak | off]",
                                     short="Send in this conversation over verified hops only", help=REQUIRE_HELP,
                                     completion=self.completion_require)
        self.api.add_command("preflight", self.command_preflight, usage="[domain]",
                             short="Forecast how the path to a domain would be verified", help=PREFLIGHT_HELP)
        self.api.add_event_handler("conversation_say_after", self.on_say)
        if self._flag("reconnect_on_load") and xmpp.is_connected() and self.tp.view is None:
            # loaded on a connection set up before this plugin watched it: the server's key was not
            # checked against the pins, and this session's own hop cannot be described
            self.api.information(f"trust_path: reconnecting once, so that the key of {xmpp.boundjid.domain} is "
                                 "checked against your pins before any credential is sent", "Info")
            self.server_key.reconnecting = True
            asyncio.get_event_loop().call_soon(self.core.disconnect, "trust_path loaded", True)

    def cleanup(self) -> None:
        xmpp = self.core.xmpp
        self.preflights.close()
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

    # --- poezio's events and commands ----------------------------------------------------------
    def on_say(self, message: Any, tab: Any) -> None:
        self.require.on_say(message, tab)
        if message["body"]:
            self.preflights.before_sending(tab)

    def command_require(self, args: str) -> None:
        self.require.command(self.api.current_tab(), args)

    def completion_require(self, the_input: Any) -> Completion:
        return Completion(the_input.new_completion, VERDICTS, 1)

    def command_preflight(self, args: str) -> None:
        self.preflights.command(self.api.current_tab(), args)
