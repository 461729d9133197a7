"""The recipient's whole check of one received stanza: bytes in, report out."""

from __future__ import annotations

from collections.abc import Container
from datetime import datetime

from .codec import decode_path, find_message, message_fields, parse_stanza
from .errors import ForgedWrapper
from .model import DEFAULT_MAX_SKEW
from .verify import Anchor, Report, verify


def verify_stanza(data: bytes, anchor: Anchor, now: datetime, *, max_skew: int = DEFAULT_MAX_SKEW,
                  seen: Container[str] = ()) -> Report:
    """Parse ``data`` (a message, or a carbon or archive result carrying one) and verify its path.

    Raises :class:`~trustpath.core.errors.InvalidInput` (a subclass of it) for input that is
    not an acceptable stanza; every other finding is in the report.
    """
    received = find_message(parse_stanza(data))
    if received.wrapper is not None:
        # XEP-0280 and XEP-0313: only the account itself may hand a forwarded message to its
        # own client; anyone else could wrap a stanza it once saw around its own words.
        own = anchor.me.split("/", 1)[0]
        allowed = (own,) if received.wrapper.startswith("carbon") else (own, None)
        if received.outer_from not in allowed:
            raise ForgedWrapper(f"a {received.wrapper.replace('-', ' ')} wrapper from "
                                f"{received.outer_from or 'nobody'}; only {own} may send one to {anchor.me}")
    report = verify(message_fields(received.message), decode_path(received.message), anchor, now,
                    max_skew=max_skew, seen=seen, archived=received.wrapper == "archive")
    if received.wrapper is not None:
        where = {"carbon-sent": "a carbon copy of a message sent from another device",
                 "carbon-received": "a carbon copy of a message received on another device",
                 "archive": f"read from the archive (archived {received.delay or 'at an unknown time'})"}
        return Report(report.verdict, report.hops, report.weakest, report.attestations,
                      report.notes + (where[received.wrapper],), report.anchor_key)
    return report
