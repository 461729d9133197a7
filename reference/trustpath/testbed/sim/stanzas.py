"""What the embedded federation's roles share about stanzas: the stream namespaces, JIDs, and the
namespace change at every s2s hop."""

from __future__ import annotations

import copy

from lxml import etree

NS_CLIENT = "jabber:client"
NS_SERVER = "jabber:server"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
SCRAM = "SCRAM-SHA-256"
SCRAM_PLUS = "SCRAM-SHA-256-PLUS"


def bare(jid: str) -> str:
    return jid.split("/", 1)[0]


def domain_of(jid: str) -> str:
    return bare(jid).split("@", 1)[-1]


def renamespace(root: etree._Element, old: str, new: str) -> etree._Element:
    """A copy of ``root`` with its stanza namespace changed (jabber:client <-> jabber:server).

    That change happens at every s2s hop; what is signed must not notice it.
    """
    def convert(element: etree._Element, nsmap: dict[str | None, str] | None) -> etree._Element:
        qname = etree.QName(element)
        if qname.namespace != old:
            return copy.deepcopy(element)
        out = etree.Element(f"{{{new}}}{qname.localname}", attrib=dict(element.attrib), nsmap=nsmap)
        out.text, out.tail = element.text, element.tail
        for child in element:
            out.append(convert(child, None) if isinstance(child.tag, str) else copy.deepcopy(child))
        return out

    return convert(root, {None: new})
