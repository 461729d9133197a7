"""trust-path in poezio, the console XMPP client: a poezio plugin (:mod:`.trust_path`, which
connects the parts: :mod:`.badges`, :mod:`.path_command`, :mod:`.pins_command`,
:mod:`.server_key`, :mod:`.require`, :mod:`.preflight`, :mod:`.screen`) and the plain-text
rendering it uses (:mod:`.text`, without poezio).

Load it in poezio with ``/load trust_path`` once this directory is on poezio's ``plugins_dir``
(or add ``plugins_autoload = trust_path`` to poezio.cfg).  Every protocol step is done by the
slixmpp plugin ``trust_path`` (:mod:`trustpath.client.slixmpp`); this package only shows what it reports.
"""

from __future__ import annotations

from pathlib import Path

#: the directory to put on poezio's ``plugins_dir`` so that ``/load trust_path`` finds the plugin
PLUGIN_DIR = Path(__file__).resolve().parent

__all__ = ["PLUGIN_DIR"]
