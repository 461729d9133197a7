"""A malicious sending client for scenario 8: it adds a record that claims to be its server's."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from lxml import etree
from slixmpp.xmlstream import ET

from ...core.attest import attest
from ...core.codec import add_record, find_path_element, message_fields
from ...core.keys import SigningKey
from ...core.model import NS, Chain, KeySource, Result, View


def forged_record_filter(server: str, jid: str) -> Any:
    """An ``out_sce`` filter, registered after the trust_path plugin's, that appends to the path a
    record signed with a key of its own, claiming to be ``server``'s (``jid`` is the sender's own JID)."""
    key = SigningKey.generate()

    def forge(stanza: Any) -> Any:
        if stanza.name != "message" or not stanza["body"]:
            return stanza
        root = etree.fromstring(ET.tostring(stanza.xml))
        root.set("from", jid)
        fields = message_fields(root)
        path = find_path_element(root)
        previous = (path.text or "").strip() if path is not None else ""
        claim = View("tls-unique", Result.PASS, "1.2", "A" * 16)
        forged = attest(fields, key, previous=previous, signer=server, time=datetime.now(UTC), in_view=claim,
                        chain=Chain.PASS, vouch=KeySource.LINK, out_view=View("pin", Result.PASS, "1.3", "A" * 16))
        add_record(root, forged)
        text = find_path_element(root).text
        element = stanza.xml.find(f"{{{NS}}}path")
        if element is None:
            element = ET.SubElement(stanza.xml, f"{{{NS}}}path")
        element.text = text
        return stanza

    return forge
