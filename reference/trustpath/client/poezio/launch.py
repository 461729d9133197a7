"""poezio with the trust_path plugin loaded before its first connection.

``trustpath poezio [poezio's options]`` (or ``python -m trustpath.client.poezio``) starts poezio exactly
as the ``poezio`` command does, with one difference. poezio loads plugins, autoloaded ones too,
only once it is logged in, so a plugin loaded the usual way first sees a session whose password
was already sent, without a pin check (it then reconnects once). Here the plugin is loaded as soon
as poezio has built its screen and before it connects, so the slixmpp plugin checks the server's
key against the pins on the very first TLS handshake, before any credential is sent.
"""

from __future__ import annotations

import sys
from typing import Any

PLUGIN = "trust_path"


def main(argv: list[str] | None = None) -> int:
    """Run poezio with ``argv`` (its own options, e.g. ``-f poezio.cfg``); poezio's exit status."""
    try:
        from poezio import config
        from poezio.__main__ import run
    except ImportError as exc:
        print(f"trustpath poezio: poezio is not installed here ({exc}); pip install 'poezio==0.18'",
              file=sys.stderr)
        return 2
    create_global_config = config.create_global_config

    def then_patch_core(*args: Any, **kwargs: Any) -> Any:
        # poezio's modules read the configuration when imported: Core only once it is loaded
        result = create_global_config(*args, **kwargs)
        from poezio.core.core import Core

        start = Core.start

        def start_with_trust_path(core: Any) -> None:
            start(core)
            # before poezio's main runs xmpp.start(): the plugin's ssl_cert handler sees the first handshake
            core.plugin_manager.load(PLUGIN, unload_first=False)

        Core.start = start_with_trust_path
        return result

    config.create_global_config = then_patch_core
    sys.argv = ["poezio", *(sys.argv[1:] if argv is None else argv)]
    try:
        return run()
    finally:
        config.create_global_config = create_global_config
