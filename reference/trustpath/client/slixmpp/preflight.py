"""The pre-flight query: before anything is sent, ask this client's own server how the path to a
remote domain would be verified now (``<preflight/>``), and turn the answer into a forecast
(:func:`trustpath.core.preflight.forecast`)."""

from __future__ import annotations

from dataclasses import dataclass

from slixmpp import BaseXMPP
from slixmpp.exceptions import IqError, IqTimeout
from slixmpp.xmlstream import ET

from ...core.codec import parse_stanza
from ...core.errors import MalformedStanza, TrustPathError, UsageError
from ...core.model import NS, View
from ...core.preflight import decode_preflight, forecast
from .wire import xml_text

PREFLIGHT_ERRORS = {
    "bad-request": "the server did not accept the domain",
    "item-not-found": "it is your own server's domain or a local service",
    "service-unavailable": "your server does not offer the pre-flight query (it does not take part)",
    "feature-not-implemented": "your server does not offer the pre-flight query",
    "timeout": "your server did not answer",
}


class PreflightFailed(TrustPathError):
    """The server answered a pre-flight query with an error, or not at all; ``str()`` says why in
    words a person can read.  ``condition`` is the stanza error condition (``'timeout'`` when
    there was no answer)."""

    def __init__(self, domain: str, condition: str, text: str = "") -> None:
        self.domain, self.condition, self.text = domain, condition, text
        why = PREFLIGHT_ERRORS.get(condition, "the server refused it")
        detail = f": {text}" if text else ""
        super().__init__(f"pre-flight to {domain}: {condition} ({why}){detail}")


@dataclass(frozen=True, slots=True)
class Preflight:
    """What this client's server said about the path to ``domain`` before anything is sent.

    ``takes_part``: whether ``domain`` takes part in trust-path (None: the server could not find
    out).  ``out_view``: the server's view of H2 (its outgoing s2s connection to ``domain``,
    client side) as it would attest it now, None if it did not connect.  ``own_view``: this
    client's view of H1.  ``forecast``: a sentence in plain words; never "trusted" from a
    pre-flight alone (the remote's inbound check and the recipient's hop are not known yet).
    """

    domain: str
    takes_part: bool | None
    out_view: View | None
    forecast: str
    own_view: View | None


def preflight_of(domain: str, takes_part: bool | None, out_view: View | None, own_view: View, own_server: str, *,
                 bound: bool) -> Preflight:
    """The pre-flight result with its forecast; ``bound``: this session's login used channel
    binding (without it, recipients rate H1 at most weak)."""
    return Preflight(domain=domain, takes_part=takes_part, out_view=out_view, own_view=own_view,
                     forecast=forecast(domain, takes_part, out_view, own_view, own_server, bound=bound))


def preflight_domain(domain: str) -> str:
    """``domain`` as a pre-flight takes it; :class:`UsageError` for a JID or nothing."""
    domain = str(domain).strip()
    if not domain or "@" in domain or "/" in domain:
        raise UsageError(f"a pre-flight is for a domain (b.example), not {domain!r}")
    return domain


def read_preflight(iq_xml: ET.Element, domain: str) -> tuple[bool | None, View | None]:
    """``(takes_part, out_view)`` from a pre-flight result; :class:`MalformedStanza` if the answer
    is not exactly what the pre-flight query defines (read by :func:`trustpath.core.preflight.decode_preflight`)."""
    found = [c for c in iq_xml if isinstance(c.tag, str) and c.tag == f"{{{NS}}}preflight"]
    if len(found) != 1:
        raise MalformedStanza(f"a pre-flight result must carry exactly one <preflight/>, not {len(found)}")
    answer = decode_preflight(parse_stanza(xml_text(found[0]).encode("utf-8")))
    if answer.domain.lower() != domain.lower():
        raise MalformedStanza(f"<preflight/> answers for {answer.domain!r}, not {domain!r}")
    return answer.takes_part, answer.link


async def ask_preflight(xmpp: BaseXMPP, domain: str, timeout: float) -> tuple[bool | None, View | None]:
    """Send ``<preflight domain=.../>`` to this client's server and read its answer.

    Raises :class:`PreflightFailed` for an error or no answer, :class:`MalformedStanza` for an
    answer that is not a valid pre-flight result.
    """
    iq = xmpp.Iq()
    iq["type"] = "get"
    iq["trust_path_preflight"]["domain"] = domain
    try:
        result = await iq.send(timeout=timeout)
    except IqError as exc:
        raise PreflightFailed(domain, exc.condition or "undefined-condition", exc.text or "") from None
    except IqTimeout:
        raise PreflightFailed(domain, "timeout") from None
    return read_preflight(result.xml, domain)
