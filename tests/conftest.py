from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
VECTORS = ROOT / "spec" / "vectors"


def load_json(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def pinned_vector():
    """The stanza, anchor and time of scenario 1 from the published vectors."""
    from trustpath.core.anchor import load_anchor
    from trustpath.core.timefmt import parse_time

    stem = VECTORS / "scenarios" / "01-all-pinned"
    anchor, skew = load_anchor(f"{stem}.anchor.json")
    now = parse_time(load_json(Path(f"{stem}.expected.json"))["now"])
    return Path(f"{stem}.xml").read_bytes(), anchor, now
