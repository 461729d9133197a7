"""Stanzas as the core reads them: serialized with exactly the text that was received, and which
messages carry content that records cover."""

from __future__ import annotations

from slixmpp.xmlstream import ET
from slixmpp.xmlstream.tostring import tostring

from ...core import constants
from ...core.delivery import NS_RECEIPTS
from ...core.model import NS_PREFIX

#: the element payloads a record can cover (omemo, oob, ...): a message carrying one is attested
ELEMENT_PAYLOADS = frozenset(f"{{{spec['ns']}}}{spec['name']}" for spec in constants.PAYLOADS.values()
                             if spec["kind"] == "element")

__all__ = ["NS_RECEIPTS", "carries_content", "is_path", "wire_bytes", "xml_text"]


def xml_text(xml: ET.Element) -> str:
    """``xml`` with its own namespace declared and without the stream text that follows it."""
    tail, xml.tail = xml.tail, None  # white space between stanzas, once the stream parser has seen it
    try:
        return tostring(xml, top_level=True)
    finally:
        xml.tail = tail


def wire_bytes(xml: ET.Element) -> bytes:
    """A received stanza serialized for the core, with exactly the text that was received.

    slixmpp's ``str(stanza)`` leaves out the stanza namespace (the stream's default),
    and XML parsers normalize line ends and, in attributes, all white space: writing
    those characters as references keeps them as they were.
    """
    text = xml_text(xml)
    return text.replace("\r", "&#13;").replace("\n", "&#10;").replace("\t", "&#9;").encode("utf-8")


def is_path(tag: str) -> bool:
    """Whether ``tag`` is a ``<path/>`` of any trust-path namespace version."""
    return tag.startswith(f"{{{NS_PREFIX}") and tag.endswith("}path")


def carries_content(message: ET.Element, ns: str, *, with_path: bool = True) -> bool:
    """Whether a message is attested: it has a body or subject, an element payload the XEP can
    cover (an OMEMO message may have no body), or is a delivery receipt (XEP: Sender Learns How It
    Was Delivered); received, also whether it has a path at all.
    Chat states and other notifications are not."""
    for child in message:
        tag = child.tag if isinstance(child.tag, str) else ""
        if tag in (f"{{{ns}}}body", f"{{{ns}}}subject", f"{{{NS_RECEIPTS}}}received") or tag in ELEMENT_PAYLOADS:
            return True
        if with_path and is_path(tag):
            return True
    return False
