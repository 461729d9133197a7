"""The recipient's whole check of one received stanza: bytes in, report out."""

from __future__ import annotations

from collections.abc import Container
from datetime import datetime

from .codec import decode_path, find_message, message_fields, parse_stanza
from .model import DEFAULT_MAX_SKEW
from .verify import Anchor, Report, verify


def verify_stanza(data: bytes, anchor: Anchor, now: datetime, *, max_skew: int = DEFAULT_MAX_SKEW,
                  seen: Container[str] = ()) -> Report:
    """Parse ``data`` (a message, or a carbon or archive result carrying one) and verify its path.

    Raises :class:`~trustpath.errors.InvalidInput` (a subclass of it) for input that is
    not an acceptable stanza; every other finding is in the report.
    """
    received = find_message(parse_stanza(data))
    report = verify(message_fields(received.message), decode_path(received.message), anchor, now,
                    max_skew=max_skew, seen=seen)
    if received.wrapper is not None:
        where = {"carbon-sent": "a carbon copy of a message sent from another device",
                 "carbon-received": "a carbon copy of a message received on another device",
                 "archive": f"read from the archive (archived {received.delay or 'at an unknown time'})"}
        return Report(report.verdict, report.hops, report.weakest, report.attestations,
                      report.notes + (where[received.wrapper],), report.anchor_key)
    return report
