"""A malicious sending client for scenario 8: it adds an attestation that claims to be its server's."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from lxml import etree
from slixmpp.xmlstream import ET

from ...core.attest import attest
from ...core.codec import attestation_element
from ...core.keys import SigningKey
from ...core.model import NS, Chain, KeySource, MessageFields, Result, Side, View


def forged_attestation_filter(server: str) -> Any:
    """An ``out_sce`` filter, registered after the trust_path plugin's, that appends a forgery."""
    key = SigningKey.generate()

    def forge(stanza: Any) -> Any:
        if stanza.name != "message" or not stanza["body"]:
            return stanza
        fields = MessageFields(sender=str(stanza["from"]) or "x@y/z", to=str(stanza["to"]), id=stanza["id"] or "x",
                               type=stanza["type"] or "normal", bodies=((None, stanza["body"]),))
        spki = "A" * 43 + "="
        fake = attest(fields, key, signer=server, time=datetime.now(UTC),
                      in_view=View(peer=fields.sender, side=Side.SERVER, tls="1.3", spki=spki, method="SCRAM-SHA-256",
                                   result=Result.PASS, chain=Chain.PASS, key_source=KeySource.LINK),
                      out_view=View(peer=fields.to.split("@")[-1].split("/")[0], side=Side.CLIENT, tls="1.3",
                                    spki=spki, method="pin", result=Result.PASS))
        element = ET.fromstring(etree.tostring(attestation_element(fake)))
        path = stanza.xml.find(f"{{{NS}}}path")
        if path is None:
            path = ET.SubElement(stanza.xml, f"{{{NS}}}path")
        path.append(element)
        return stanza

    return forge
