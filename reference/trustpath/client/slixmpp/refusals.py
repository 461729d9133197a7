"""A server's refusal of a message this client sent: an error that names the hop which could not
meet the message's ``<require/>`` (``<unverified-hop/>``, XEP: Requiring Verified Hops).

Anyone can send an error with any 'id', 'by' and ``<unverified-hop/>``.  A refusal is believed
only from this client's own server, the one party whose words reach it over its own verified
connection: the error's 'by' is that server's domain, the server takes part (so it removes every
``<unverified-hop/>`` naming it that it did not write itself), and the error answers a message
this client sent to the error's 'from'.  Anything else is an ordinary stanza error: it says
nothing about how, or whether, the message travelled."""

from __future__ import annotations

from slixmpp.stanza import Message

from ...core.model import NS
from .events import UnverifiedHop

NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"


def unverified_hop(message: Message) -> UnverifiedHop | None:
    """The refusal in an error message, or None if the error names no hop."""
    error = message.xml.find(f"{{{message.namespace}}}error")
    if error is None:
        return None
    hop = error.find(f"{{{NS}}}unverified-hop")
    if hop is None:
        return None
    condition = next((c.tag.split("}", 1)[1] for c in error
                      if isinstance(c.tag, str) and c.tag.startswith(f"{{{NS_STANZAS}}}")
                      and not c.tag.endswith("}text")), "undefined-condition")
    return UnverifiedHop(message, condition, dict(hop.attrib))


def refused_by(message: Message) -> str | None:
    """The 'by' of the error: who says it refused the message."""
    error = message.xml.find(f"{{{message.namespace}}}error")
    return error.get("by") if error is not None else None


def why_not_believed(message: Message, *, own_server: str, takes_part: bool | None, sent: bool) -> str | None:
    """None if the refusal in ``message`` is one this client believes (see the module's text), else why not."""
    by = refused_by(message)
    if by != own_server:
        return f"it is not from your server {own_server} (by={by!r})"
    if not takes_part:
        return f"{own_server} does not take part, so it does not remove refusals others forge in its name"
    if not sent:
        return f"it answers no message this client sent to {message['from'].bare} with id {message['id']!r}"
    return None
