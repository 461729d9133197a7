"""Whether one hop can meet a sender's ``<require verdict='trusted|weak'/>`` (XEP: Requiring
Verified Hops): the rules that clients and servers apply before sending or delivering."""

from __future__ import annotations

from . import constants
from .errors import UsageError
from .model import Reason, Result, Strength, Verdict, View, binds_client, method_reason, view_strength

REQUIRE_VERDICTS = tuple(constants.REQUIRED_STRENGTH)


def _needed(verdict: str) -> Strength:
    if verdict not in constants.REQUIRED_STRENGTH:
        raise UsageError(f"<require/> takes verdict 'trusted' or 'weak', not {verdict!r}")
    return Strength.named(constants.REQUIRED_STRENGTH[verdict])


def requirement_problem(view: View, verdict: str) -> Reason | str | None:
    """The reason code why the hop ``view`` describes cannot meet ``verdict``, or None if it can.

    A failed view gives its own reason (``pin-mismatch``, ...); a hop without TLS
    ``starttls-not-supported``; a hop checked too weakly the reason its method caps a hop with
    (``ca-only``, ``dialback-only``, ``not-verified``)."""
    if view_strength(view) >= _needed(verdict):
        return None
    if view.result is Result.FAIL:
        return view.reason or Reason.VALIDATION_FAILURE
    if view.tls == "none":
        return Reason.STARTTLS_NOT_SUPPORTED
    return method_reason(view.method)


def client_hop_problem(verdict: str, server_view: View, client_view: View | None,
                       missing: Reason | str | None = None) -> tuple[str, Reason | str] | None:
    """Whether a client's hop (H1 at the sending server, the last hop at the recipient's server) can
    meet ``verdict``, judged by the server end: ``(method, reason)`` of the view that keeps it
    from it, or None.

    ``server_view`` is the server's own view (its method says how the client authenticated);
    ``client_view`` what the client stated about the same connection (its record's out-view, or
    the view it announced), None if it stated nothing: then the hop is described by one end only
    and meets nothing (``missing``, by default ``not-participating``).  Both views must name the
    same server key (``key-mismatch`` otherwise).  The client's statement came over this very hop,
    so it counts as strong only when the server's method binds the login to the channel (a channel
    binding it checked, or a device key it knew before), else at most ca (``unbound``), as the
    verifier caps H1."""
    need = _needed(verdict)
    if client_view is None:
        return server_view.method, missing or Reason.NOT_PARTICIPATING
    for view in (client_view, server_view):
        if view.result is Result.FAIL:
            return view.method, view.reason or Reason.VALIDATION_FAILURE
    for view in (client_view, server_view):
        if view.tls == "none":
            return view.method, Reason.STARTTLS_NOT_SUPPORTED
    if client_view.spki != server_view.spki:
        return client_view.method, Reason.KEY_MISMATCH
    if server_view.result is not Result.PASS:
        return server_view.method, Reason.NOT_VERIFIED
    strength, method, reason = view_strength(client_view), client_view.method, method_reason(client_view.method)
    if strength > Strength.CA and not binds_client(server_view.method):
        strength, method, reason = Strength.CA, server_view.method, Reason.UNBOUND
    return None if strength >= need else (method, reason)


def refusal_believed(refusal_verdict: Verdict, required: str | None, *, by_own_server: bool) -> bool:
    """Whether a sender believes a refusal whose own path has ``refusal_verdict`` (XEP: Requiring
    Verified Hops): at least the verdict the refused message required.  A message that required
    nothing is refused only by the sender's own server (a bounce for a pin mismatch), so only
    that one is believed then, at least weak: with a CA-only H2, a man in the middle who fed the
    sender's server his own keys for the remote domain could sign a weak "refused" for a message
    he delivers.  Like a REQUIRETLS non-delivery report (RFC 8689, section 5), a refusal is
    protected as the message was; it carries no payload, so the sender judges it rather than a
    server dropping it."""
    if required is None and not by_own_server:
        return False
    need = _needed(required) if required is not None else Strength.CA
    return _VERDICT_STRENGTH[refusal_verdict] >= need


#: the least strength of each verdict (untrusted covers failed and unverified)
_VERDICT_STRENGTH = {Verdict.TRUSTED: Strength.STRONG, Verdict.WEAK: Strength.CA, Verdict.UNKNOWN: Strength.UNKNOWN,
                     Verdict.UNTRUSTED: Strength.FAILED}
