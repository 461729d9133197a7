"""Whether one hop can meet a sender's ``<require verdict='trusted|weak'/>`` (XEP: Requiring
Verified Hops): the one rule that clients and servers apply before sending."""

from __future__ import annotations

from . import constants
from .errors import UsageError
from .model import Reason, Result, Strength, View, method_reason, view_strength

REQUIRE_VERDICTS = tuple(constants.REQUIRED_STRENGTH)


def requirement_problem(view: View, verdict: str) -> Reason | str | None:
    """The reason code why the hop ``view`` describes cannot meet ``verdict``, or None if it can.

    A failed view gives its own reason (``pin-mismatch``, ...); a hop without TLS
    ``starttls-not-supported``; a hop checked too weakly the reason its method caps a hop with
    (``ca-only``, ``dialback-only``, ``not-verified``)."""
    if verdict not in constants.REQUIRED_STRENGTH:
        raise UsageError(f"<require/> takes verdict 'trusted' or 'weak', not {verdict!r}")
    if view_strength(view) >= Strength.named(constants.REQUIRED_STRENGTH[verdict]):
        return None
    if view.result is Result.FAIL:
        return view.reason or Reason.VALIDATION_FAILURE
    if view.tls == "none":
        return Reason.STARTTLS_NOT_SUPPORTED
    return method_reason(view.method)
