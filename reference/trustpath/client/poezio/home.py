"""A poezio home for one account of a federation: its config file and its pin store.

Used by ``trustpath harness --keep`` (so that a person can open poezio as alice and as bob with
one command each) and by the tmux tests, which run exactly what that person runs.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from . import PLUGIN_DIR


@dataclass(frozen=True, slots=True)
class PoezioHome:
    """Where one account's poezio keeps everything: run it with :attr:`environment` set."""

    home: Path
    config_file: Path
    data_dir: Path
    config_dir: Path

    @property
    def pins_file(self) -> Path:
        return self.data_dir / "poezio" / "trust_path" / "pins.json"

    @property
    def environment(self) -> dict[str, str]:
        """The variables that keep poezio's data, config and cache inside :attr:`home`."""
        return {"HOME": str(self.home), "XDG_CONFIG_HOME": str(self.config_dir),
                "XDG_DATA_HOME": str(self.data_dir), "XDG_CACHE_HOME": str(self.home / ".cache")}


def write_poezio_home(home: Path, *, jid: str, password: str, address: str, ca_file: str, port: int = 15222,
                      pin: str | None = None) -> PoezioHome:
    """Create ``home`` with a poezio.cfg that logs in as ``jid`` at ``address`` and loads the
    trust_path plugin; with ``pin``, the server's key is pinned already (as read from its operator)."""
    config_dir, data_dir = home / ".config", home / ".local" / "share"
    (data_dir / "poezio" / "trust_path").mkdir(parents=True, exist_ok=True)
    config_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(ca_file, home / "ca.pem")
    made = PoezioHome(home, home / "poezio.cfg", data_dir, config_dir)
    if pin is not None:
        from ..slixmpp.pins import PinStore

        PinStore.open(made.pins_file).add(jid.split("@")[1], pin)
    made.config_file.write_text("\n".join([
        "[Poezio]",
        f"jid = {jid}",
        f"password = {password}",
        f"custom_host = {address}",
        f"custom_port = {port}",
        f"ca_cert_path = {home / 'ca.pem'}",
        "ignore_certificate = true",  # poezio's own key check: the trust_path pin store does it
        f"plugins_dir = {PLUGIN_DIR}",
        "plugins_autoload = trust_path",
        "enable_user_nick = false",
        "enable_avatars = false",
        "use_log = false",  # history from the server's archive, where each message keeps its path
        "enable_vertical_tab_list = false",
        "",
    ]))
    # the plugin's own file (poezio reads plugins/<name>.cfg): Prosody 0.12 binds a login to the
    # connection only with tls-unique, which needs TLS 1.2; without it the sender's first hop can
    # never show more than weak (XEP: unbound)
    plugins = config_dir / "poezio" / "plugins"
    plugins.mkdir(parents=True, exist_ok=True)
    (plugins / "trust_path.cfg").write_text("[trust_path]\nbind_channel = true\n")
    return made
