"""A server's refusal of a message this client sent: an error that names the hop which could not
meet the message's ``<require/>`` (``<unverified-hop/>``, XEP: Requiring Verified Hops)."""

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
