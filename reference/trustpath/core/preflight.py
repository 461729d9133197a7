"""The pre-flight query (XEP: Pre-flight Query): before sending, a client asks its own server how
it would reach a remote domain now.

The server's side is :func:`preflight_answer` and :func:`preflight_element`; the client reads the
answer strictly with :func:`decode_preflight` and puts it into words with :func:`forecast`.
"""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from .codec import decode_view, view_problem
from .constants import MAX_DOMAIN_CHARS, NS
from .errors import MalformedStanza
from .model import Result, Strength, View, view_strength

_TAG_PREFLIGHT = f"{{{NS}}}preflight"


@dataclass(frozen=True, slots=True)
class PreflightAnswer:
    """A server's answer to a pre-flight query: how it would reach ``domain`` now (XEP: Pre-flight
    Query).  ``link`` is the view it would write as the out-view of that hop."""

    domain: str
    takes_part: bool | None = None
    link: View | None = None


def preflight_element(answer: PreflightAnswer) -> etree._Element:
    """``<preflight domain='...' takes-part='true|false' link='method,result,tls,spki'/>``"""
    element = etree.Element(_TAG_PREFLIGHT, nsmap={None: NS})
    element.set("domain", answer.domain)
    if answer.takes_part is not None:
        element.set("takes-part", "true" if answer.takes_part else "false")
    if answer.link is not None:
        element.set("link", answer.link.text())
    return element


def decode_preflight(element: etree._Element) -> PreflightAnswer:
    """Read a ``<preflight/>`` result strictly."""
    if element.tag != _TAG_PREFLIGHT:
        raise MalformedStanza(f"expected <preflight xmlns='{NS}'/>")
    extra = set(element.attrib) - {"domain", "takes-part", "link"}
    if extra:
        raise MalformedStanza(f"<preflight/> has unknown attribute(s) {sorted(extra)}")
    domain = element.get("domain")
    if not domain or len(domain) > MAX_DOMAIN_CHARS or "@" in domain or "/" in domain:
        raise MalformedStanza("<preflight/> needs 'domain', a domain name")
    takes_part = {"true": True, "1": True, "false": False, "0": False, None: None}.get(element.get("takes-part"), ...)
    if takes_part is ...:
        raise MalformedStanza("<preflight/> 'takes-part' must be true or false")
    if len(element) or (element.text or "").strip():
        raise MalformedStanza("<preflight/> is empty: its answer is in its attributes")
    link = element.get("link")
    return PreflightAnswer(domain, takes_part, decode_view(link, "link") if link is not None else None)


def preflight_answer(domain: str, takes_part: bool | None, link: View | None) -> PreflightAnswer:
    """What a server answers about ``domain``: whether it takes part (None: not known) and the view
    of its outgoing link, left out when there is no link or the view is not one a client could
    read (a server never answers with what :func:`decode_preflight` would refuse)."""
    if link is not None and view_problem(link) is not None:
        link = None
    return PreflightAnswer(domain, takes_part, link)


_METHOD_WORDS = {
    "pin": "verified by its pin",
    "tofu": "verified by a pin taken on first use, not yet confirmed",
    "dane-ee": "verified by DANE",
    "dane-ta": "verified by DANE",
    "pkix": "checked by a CA only",
    "dialback-dnssec": "checked by dialback with DNSSEC only",
    "dialback": "dialback only (not verified)",
    "none": "not verified",
}


def view_words(view: View) -> str:
    """One end's view of a hop in words: ``'verified by its pin'``, ``'checked by a CA only'``,
    ``'failed (pin-mismatch)'``, ``'without TLS'``, ..."""
    if view.result is Result.FAIL:
        return f"failed ({view.reason})" if view.reason else "failed"
    if view.tls == "none":
        return "without TLS (not verified)"
    if view.result is not Result.PASS:
        return "not verified"
    return _METHOD_WORDS.get(view.method, f"verified by '{view.method}' (not a known method)")


def forecast(domain: str, takes_part: bool | None, out_view: View | None, own_view: View | None,
             own_server: str, *, bound: bool = True) -> str:
    """The forecast sentence of a pre-flight: H1 (this client's view of ``own_server``), H2 (its
    server's outgoing view) and whether ``domain`` takes part, then what that allows at best.
    ``bound``: this session's login used channel binding, without which H1 is at most weak.
    Never "trusted": the remote's inbound check and the recipient's hop are only known once a
    message arrives.
    """
    h1 = f"H1 {own_server} {view_words(own_view)}" if own_view is not None else "H1 not known"
    if own_view is not None and not bound and view_strength(own_view) > Strength.CA:
        h1 += " but not bound to your login (no channel binding), so weak at best"
        own_view = View("pkix", own_view.result, own_view.tls, own_view.spki)
    if out_view is not None:
        h2 = f"H2 {domain} {view_words(out_view)}"
    else:
        h2 = f"H2 {domain} not known (your server did not connect to it)"
    part = {True: f"{domain} takes part", False: f"{domain} does not take part",
            None: f"not known whether {domain} takes part"}[takes_part]
    strengths = [view_strength(v) for v in (own_view, out_view) if v is not None]
    best = min(strengths, default=Strength.STRONG)
    if out_view is not None and out_view.result is Result.FAIL:
        outcome = "a message would not be delivered"
    elif best <= Strength.UNVERIFIED:
        outcome = "the path would be untrusted"
    elif takes_part is False:
        outcome = "the path would be unknown"
    elif out_view is None or own_view is None:
        outcome = "the path cannot be forecast"
    elif best == Strength.CA:
        outcome = "at best weak"
    elif takes_part:
        outcome = f"the path can be trusted if {domain}'s side is verified too"
    else:
        outcome = f"the path can be trusted only if {domain} takes part and its side is verified too"
    return f"{h1}; {h2}; {part}: {outcome}"
