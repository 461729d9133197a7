"""A server's refusal of a message this client sent: an error that names the hop which could not
meet the message's ``<require/>`` (``<unverified-hop/>``, XEP: Requiring Verified Hops).

Anyone can send an error with any 'id', 'by' and ``<unverified-hop/>``.  A refusal is attested:
the refusing server (its 'by') signs it, and every server on its way back adds its record, as on
a message.  This client believes one only when it answers a message this client sent to the
error's 'from' with that id, its path starts with a record by its 'by' that covers the refusal
(``h=refusal``: the hop it names, the reason and the requirement), and the verdict on that
path meets what the message required (like a REQUIRETLS non-delivery report, RFC 8689 section
5, a refusal is protected as the message was).  A message that required nothing is refused only
by this client's own server (a bounce, for a pin mismatch): that one is believed at least weak,
and no other.
Anything else is an ordinary stanza error: it says nothing about how, or whether, the message
travelled."""

from __future__ import annotations

from slixmpp.stanza import Message

from ...core.codec import error_condition
from ...core.model import NS, Verdict
from ...core.receive import refusal_error, refuser_of
from ...core.require import refusal_believed
from ...core.verify import Report
from .events import UnverifiedHop

NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"


def unverified_hop(message: Message, report: Report | None = None) -> UnverifiedHop | None:
    """The refusal in an error message, or None if the error names no hop; ``report`` is the check
    of the refusal's own path.  Read from the ``<error/>`` whose refusal the records cover
    (:func:`~trustpath.core.receive.refusal_error`), not merely the first."""
    error = refusal_error(message.xml)
    if error is None:
        return None
    hop = error.find(f"{{{NS}}}unverified-hop")
    return UnverifiedHop(message, error_condition(error) or "undefined-condition", dict(hop.attrib), report)


def refused_by(message: Message) -> str | None:
    """The 'by' of the refusal's error: who says it refused the message."""
    return refuser_of(message.xml)


def why_not_believed(message: Message, report: Report | None, *, sent: bool, required: str | None,
                     own_server: str) -> str | None:
    """None if the refusal in ``message``, whose own path was checked as ``report`` (None: it could
    not be), is one this client believes (see the module's text), else why not."""
    if not sent:
        return f"it answers no message this client sent to {message['from'].bare} with id {message['id']!r}"
    if report is None:
        return "its path could not be checked"
    by = refused_by(message)
    if not report.records or report.records[0].signer != by:
        return f"its path does not start with a record by the server it names (by={by!r})"
    if "refusal" not in report.covers:
        # the hop, the reason and the requirement are shown with a refusal this client believes:
        # unsigned, they could say anything (XEP rule 40)
        return "its refusing server's record does not cover the refusal (h=refusal): the hop it names is not signed"
    if not refusal_believed(report.verdict, required, by_own_server=by == own_server):
        if required is None and by != own_server:
            return (f"the message required nothing, and then only this client's own server ({own_server}) refuses "
                    f"it (a bounce), not {by}")
        return f"its path is {report.verdict.value}, and the message required {required or Verdict.WEAK.value}"
    return None
