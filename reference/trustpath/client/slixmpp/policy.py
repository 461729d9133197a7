"""What a server says about trust-path in its disco#info: whether it takes part, its keys and its
``max-skew`` (read by :func:`trustpath.core.disco.read_disco_info`)."""

from __future__ import annotations

from dataclasses import dataclass

from slixmpp import BaseXMPP
from slixmpp.exceptions import IqError, IqTimeout
from slixmpp.stanza import Iq

from ...core.codec import parse_stanza
from ...core.disco import NS_DISCO_INFO, read_disco_info
from ...core.errors import InvalidInput, TrustPathError
from ...core.keys import KeySet
from .wire import xml_text


@dataclass(frozen=True, slots=True)
class ServerPolicy:
    """What this client's server said in disco#info (read by :func:`trustpath.core.disco.read_disco_info`)."""

    domain: str
    takes_part: bool  # the feature is announced
    keys: KeySet  # empty when nothing usable was published
    max_skew: int | None = None  # None: not known (the server does not take part, or did not answer)
    problem: str | None = None  # why the answer could not be used, if it could not


class DiscoveryFailed(TrustPathError):
    """disco#info was answered with an error, or not at all; ``str()`` says which."""


def unanswered(domain: str, problem: str) -> ServerPolicy:
    """The policy of a server whose disco#info could not be had: it does not take part, as far as
    this client can tell."""
    return ServerPolicy(domain, False, KeySet(domain, ()), problem=problem)


def read_policy(domain: str, iq: Iq) -> ServerPolicy:
    """The policy in a disco#info result; keys that cannot be used are a policy with a ``problem``."""
    query = iq.xml.find(f"{{{NS_DISCO_INFO}}}query")
    if query is None:
        return unanswered(domain, "disco#info result without <query/>")
    try:
        published = read_disco_info(parse_stanza(xml_text(query).encode("utf-8")), domain)
    except InvalidInput as exc:
        # the feature is announced, but its keys cannot be used: nothing will verify,
        # and a message is never shown as more than its missing keys allow
        return ServerPolicy(domain, True, KeySet(domain, ()), problem=str(exc))
    if not published.takes_part or published.keys is None:
        return ServerPolicy(domain, False, KeySet(domain, ()))
    return ServerPolicy(domain, True, published.keys, published.max_skew)


async def ask_policy(xmpp: BaseXMPP, domain: str, timeout: float) -> ServerPolicy:
    """Ask ``domain`` for its disco#info (over this client's server) and read its policy.

    Raises :class:`DiscoveryFailed` when there is no answer to read.
    """
    try:
        iq = await xmpp.plugin["xep_0030"].get_info(jid=domain, local=False, cached=False, timeout=timeout)
    except IqError as exc:
        raise DiscoveryFailed(f"disco#info error: {exc.condition}") from None
    except IqTimeout:
        raise DiscoveryFailed("no answer to disco#info") from None
    return read_policy(domain, iq)
