"""Whether one hop can meet a sender's ``<require verdict='trusted|weak'/>`` (XEP: Requiring
Verified Hops): the one rule that clients and servers apply before sending."""

from __future__ import annotations

from .errors import UsageError
from .model import METHOD_STRENGTH, Result, Strength, View

REQUIRE_VERDICTS = ("trusted", "weak")


def requirement_problem(view: View, verdict: str) -> str | None:
    """The reason code why the hop ``view`` describes cannot meet ``verdict``, or None if it can."""
    if verdict not in REQUIRE_VERDICTS:
        raise UsageError(f"<require/> takes verdict 'trusted' or 'weak', not {verdict!r}")
    if view.tls == "none":
        return "starttls-not-supported"
    need = Strength.STRONG if verdict == "trusted" else Strength.CA
    strength = METHOD_STRENGTH.get(view.method, Strength.UNVERIFIED) if view.result is Result.PASS \
        else Strength.UNVERIFIED
    if strength >= need:
        return None
    return {"pkix": "ca-only", "dialback-dnssec": "ca-only", "dialback": "dialback-only"}.get(view.method,
                                                                                                "not-verified")
