from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
VECTORS = ROOT / "spec" / "vectors"
#: the Ed25519 binding of the Prosody module, which `make test` builds (`make -C prosody`)
BINDING = ROOT / "prosody" / "mod_trust_path" / "trust_path_crypto.so"

#: test modules that start Prosody, tmux or poezio, or need lua5.4 and the built C binding:
#: every test in them is marked ``live``, so that ``pytest -m "not live"`` is the offline suite
LIVE_MODULES = frozenset({"test_live", "test_live_archive", "test_live_faults", "test_live_key_sources",
                          "test_live_resumption", "test_live_rotation", "test_live_sessions", "test_live_words",
                          "test_poezio_tmux",
                          "test_live_require"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.stem in LIVE_MODULES:
            item.add_marker(pytest.mark.live)


def _missing(problem: str | None) -> None:
    """Skip for a missing tool, except in CI, where that is a failure."""
    if problem is None:
        return
    if os.environ.get("CI"):
        pytest.fail(problem)
    pytest.skip(problem)


def _binding_problem() -> str | None:
    if not BINDING.exists():
        return ("prosody/mod_trust_path/trust_path_crypto.so is not built (make test builds it with `make -C prosody`: "
                "gcc, liblua5.4-dev and libsodium-dev, or libssl-dev with `make -C prosody CRYPTO=openssl`)")
    return None


def require_prosody() -> None:
    """Skip without Prosody or the built binding, except in CI, where that is a failure."""
    _missing("Prosody is not installed (make test installs it on Debian/Ubuntu as root)"
             if shutil.which("prosody") is None else _binding_problem())


def require_lua() -> None:
    """Skip without lua5.4 (and Prosody's libraries) or the built binding, except in CI."""
    _missing("lua5.4 and Prosody's libraries are needed (make test installs them on Debian/Ubuntu as root)"
             if shutil.which("lua5.4") is None or not Path("/usr/lib/prosody/util/json.lua").exists()
             else _binding_problem())


def load_json(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def pinned_vector():
    """The stanza, anchor and time of scenario 1 from the published vectors."""
    from trustpath.core.anchor import load_anchor
    from trustpath.core.timefmt import parse_time

    stem = VECTORS / "scenarios" / "01-all-pinned"
    anchor, _ = load_anchor(f"{stem}.anchor.json")
    now = parse_time(load_json(Path(f"{stem}.expected.json"))["now"])
    return Path(f"{stem}.xml").read_bytes(), anchor, now
