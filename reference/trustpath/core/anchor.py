"""Reading and writing a verifier's trust anchor as JSON (the ``--anchor`` file).

The anchor is what the recipient client already trusts: its own server's published
record keys, learned over its own verified connection, and its own view of the
last hop (how it verified the server, which key it saw).
"""

from __future__ import annotations

import json
from pathlib import Path as FsPath
from typing import Any

from .codec import decode_view
from .errors import InvalidAnchor, InvalidInput, MalformedStanza
from .keys import KeySet
from .model import DEFAULT_MAX_SKEW, View
from .verify import Anchor

ANCHOR_VERSION = 1


def view_to_json(view: View) -> str:
    """A view as the anchor file writes it: as a record does, ``method,result,tls,spki``."""
    return view.text()


def view_from_json(data: Any) -> View:
    if not isinstance(data, str):
        raise InvalidAnchor("'view' must be a view as records write it: method,result,tls,spki")
    try:
        return decode_view(data, "view")
    except MalformedStanza as exc:
        raise InvalidAnchor(str(exc)) from None


def _str(data: dict[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value:
        raise InvalidAnchor(f"'{name}' must be a non-empty string")
    return value


def anchor_to_json(anchor: Anchor, *, max_skew: int = DEFAULT_MAX_SKEW) -> dict[str, Any]:
    return {"version": ANCHOR_VERSION, "me": anchor.me, "server": anchor.server, "takes_part": anchor.takes_part,
            "keys": [k.to_json() for k in anchor.keys.keys], "view": view_to_json(anchor.view),
            "max_skew": max_skew}


def anchor_from_json(data: Any) -> tuple[Anchor, int]:
    """Return the anchor and its ``max_skew`` in seconds."""
    if not isinstance(data, dict):
        raise InvalidAnchor("an anchor file holds one JSON object")
    if data.get("version") != ANCHOR_VERSION:
        raise InvalidAnchor(f"anchor version {data.get('version')!r} is not supported (expected {ANCHOR_VERSION})")
    server = _str(data, "server")
    try:
        keys = KeySet.from_json({"domain": server, "keys": data.get("keys")})
    except InvalidInput as exc:
        raise InvalidAnchor(str(exc)) from None
    max_skew = data.get("max_skew", DEFAULT_MAX_SKEW)
    if not isinstance(max_skew, int) or isinstance(max_skew, bool) or not 0 <= max_skew <= 86_400:
        raise InvalidAnchor("'max_skew' must be a whole number of seconds from 0 to 86400")
    takes_part = data.get("takes_part", True)
    if not isinstance(takes_part, bool):
        raise InvalidAnchor("'takes_part' must be true or false")
    return Anchor(server=server, keys=keys, me=_str(data, "me"), view=view_from_json(data.get("view")),
                  takes_part=takes_part), max_skew


def load_anchor(path: str | FsPath) -> tuple[Anchor, int]:
    try:
        text = FsPath(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidAnchor(f"cannot read {path}: {exc.strerror}") from None
    if len(text) > 1_000_000:
        raise InvalidAnchor(f"{path} is larger than an anchor can be")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidAnchor(f"{path} is not valid JSON: {exc}") from None
    return anchor_from_json(data)
