"""The one time format on the wire: ``YYYY-MM-DDThh:mm:ssZ`` (XEP-0082, UTC, no fractions)."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

from .errors import MalformedStanza, UsageError

#: the one time format of forms, anchors and reports
WIRE_TIME = _WIRE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z\Z")


def format_time(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise UsageError("times must be timezone-aware (use datetime.now(UTC))")
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="seconds") + "Z"


def parse_time(text: str) -> datetime:
    if not _WIRE.match(text):
        raise MalformedStanza(f"time {text!r} is not of the form 2026-11-25T09:00:00Z")
    try:
        return datetime.fromisoformat(text)
    except ValueError as exc:
        raise MalformedStanza(f"time {text!r} is not a valid date and time") from exc


def require_aware(moment: datetime, name: str = "now") -> datetime:
    if moment.tzinfo is None:
        raise UsageError(f"{name} must be timezone-aware (use datetime.now(UTC))")
    return moment


def epoch(moment: datetime | int) -> int:
    """Whole seconds since 1970-01-01T00:00:00Z, as records write times (a datetime is rounded down)."""
    if isinstance(moment, int):
        return moment
    return int(require_aware(moment, "a time").timestamp())


def from_epoch(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def format_epoch(seconds: int) -> str:
    """A record's time (seconds since the epoch) in the wire format of forms and reports."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def parse_stamp(text: str) -> datetime:
    """A XEP-0082 DateTime as servers write it in ``<delay stamp=.../>`` (fractions and offsets allowed)."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise MalformedStanza(f"stamp {text[:40]!r} is not a XEP-0082 date and time") from None
    if moment.tzinfo is None:
        raise MalformedStanza(f"stamp {text[:40]!r} has no time zone")
    return moment
