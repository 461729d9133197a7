"""trust-path for XMPP clients: a slixmpp plugin and a pin store.

Use::

    import trustpath.client.slixmpp
    trustpath.client.slixmpp.register()                      # makes 'trust_path' known to slixmpp
    client.register_plugin("trust_path", {"pins": "~/.config/app/pins.json"})
    client.add_event_handler("trust_path_verdict", lambda ev: print(ev.stanza["body"], ev.report.verdict))

(or ``client.register_plugin("trust_path", pconfig, module="trustpath.client.slixmpp")``).
The pin store (:mod:`trustpath.client.slixmpp.pins`) does not need slixmpp; the plugin does.
"""

from __future__ import annotations

from typing import Any

from .pins import Pin, PinSource, PinStore

__all__ = ["Pin", "PinSource", "PinStore", "TrustPath", "register"]


def register() -> type:
    """Register the ``trust_path`` plugin with slixmpp (idempotent) and return its class."""
    from slixmpp.plugins.base import register_plugin

    from .plugin import TrustPath

    register_plugin(TrustPath)
    return TrustPath


def __getattr__(name: str) -> Any:
    # the plugin imports slixmpp: load it only when asked for
    if name in ("TrustPath", "trust_path"):
        from .plugin import TrustPath

        return TrustPath
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
