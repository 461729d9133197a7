"""The Lua side without a server: every script in prosody/tests runs here, so that `make test`
and `pytest -m "not live"` cover the Lua core the Prosody module ships (the binding's RFC 8032
vectors, the core's fast paths, the published vectors, the server-rule vectors, and the module's
internal markers, its attested refusals)."""

from __future__ import annotations

import re
import subprocess

import pytest
from conftest import ROOT, require_lua

SCRIPTS = {"test_crypto.lua": 19, "test_core.lua": 84, "test_markers.lua": 21, "verify_vectors.lua": 569,
           "server_vectors.lua": 345, "test_limits.lua": 8, "test_refusals.lua": 17}


def test_every_lua_test_script_is_run_here():
    found = {p.name for p in (ROOT / "prosody" / "tests").glob("*.lua")} - {"setup.lua", "differential.lua"}
    assert found == set(SCRIPTS)


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_lua_script(script):
    require_lua()
    result = subprocess.run(["lua5.4", str(ROOT / "prosody" / "tests" / script)], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    passed, failed = map(int, re.search(r"(\d+) passed, (\d+) failed\s*\Z", result.stdout).groups())
    assert failed == 0 and passed >= SCRIPTS[script], result.stdout[-500:]
