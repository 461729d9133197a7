"""What a verdict covers (XEP: Covered Payloads).

A record signs the message's addressing and the payloads its ``h=`` lists; the core's report
gives them as ``Report.covers`` and notes the payloads it knows that the message carries beyond
them.  An extension this version has no token for is not signed by anyone, so a person must not
read the verdict as being about it: :func:`not_covered` names such elements, and
:func:`with_coverage_note` adds them to the report's notes.
"""

from __future__ import annotations

from dataclasses import replace

from slixmpp.xmlstream import ET

from ...core import constants
from ...core.codec import NS_CARBONS, NS_DELAY, NS_MUC_USER, NS_SID
from ...core.delivery import NS_RECEIPTS
from ...core.model import NS_PREFIX
from ...core.verify import Report

NOT_COVERED_NOTE = "not covered by any signature (shown as not covered): "

#: element payloads by qualified name -> token
_TOKENS = {f"{{{spec['ns']}}}{spec['name']}": token for token, spec in constants.PAYLOADS.items()
           if spec["kind"] == "element"}

#: namespaces of elements that say how a message travels or is handled, not what it says: they
#: are not content a verdict could be mistaken to cover
_ROUTING = frozenset({
    NS_SID, NS_DELAY, NS_CARBONS, NS_RECEIPTS, NS_MUC_USER,
    "http://jabber.org/protocol/chatstates", "urn:xmpp:chat-markers:0", "urn:xmpp:hints",
    "urn:xmpp:eme:0", "urn:xmpp:forward:0", "urn:xmpp:mam:2", "urn:xmpp:receipts",
    "jabber:x:delay", "http://jabber.org/protocol/address", "urn:xmpp:sce:1", "urn:xmpp:styling:0",
    # XEP-0172: the nickname poezio and others send with the first message of a conversation; a
    # display hint shown beside the JID (which is signed), not something the message says
    "http://jabber.org/protocol/nick",
})


def _namespace(tag: str) -> str:
    return tag[1:].split("}", 1)[0] if tag.startswith("{") else ""


def not_covered(message: ET.Element, stanza_ns: str, covers: tuple[str, ...]) -> tuple[str, ...]:
    """The content elements of ``message`` that no covered payload token signs: element payloads
    not listed in ``covers``, and extensions this version has no token for (as ``{ns}name``).
    Text children (body, subject, thread) and trust-path's own elements are left to the core."""
    found: list[str] = []
    for child in message:
        tag = child.tag if isinstance(child.tag, str) else ""
        ns = _namespace(tag)
        if not tag or ns in (stanza_ns, "jabber:client", "jabber:server") or ns.startswith(NS_PREFIX) \
                or ns in _ROUTING:
            continue
        token = _TOKENS.get(tag)
        if token is not None:
            continue  # the core names a known payload outside the covered ones in its own note
        if tag not in covers and tag not in found:
            found.append(tag)
    return tuple(found)


def with_coverage_note(report: Report, message: ET.Element, stanza_ns: str) -> Report:
    """``report`` with a note naming the unknown extensions of ``message`` that nothing signs;
    unchanged when nothing the sender signed verified (then nothing is covered at all)."""
    if not report.covers:
        return report
    missing = not_covered(message, stanza_ns, report.covers)
    if not missing:
        return report
    return replace(report, notes=report.notes + (NOT_COVERED_NOTE + ", ".join(missing),))
