"""Reading and writing a server's published attestation keys (XEP: Discovery).

The keys travel in a XEP-0128 data form inside the server's disco#info result; this
module turns that form into a :class:`~trustpath.core.keys.KeySet` and back.
"""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from .errors import InvalidInput, MalformedStanza
from .keys import KeySet, KeyStatus, PublishedKey, unb64
from .model import DEFAULT_MAX_SKEW, NS
from .timefmt import parse_time

NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"
NS_DATA = "jabber:x:data"


@dataclass(frozen=True, slots=True)
class Published:
    """What a server's disco#info says about trust-path."""

    takes_part: bool
    keys: KeySet | None
    max_skew: int = DEFAULT_MAX_SKEW


def read_disco_info(query: etree._Element, domain: str) -> Published:
    """Read the feature and the urn:xmpp:trust-path:0 form from a disco#info ``<query/>``."""
    if query.tag != f"{{{NS_DISCO_INFO}}}query":
        raise MalformedStanza("expected a disco#info <query/>")
    features = {f.get("var") for f in query.iter(f"{{{NS_DISCO_INFO}}}feature")}
    form = None
    for x in query.iter(f"{{{NS_DATA}}}x"):
        fields = {f.get("var"): f for f in x.iter(f"{{{NS_DATA}}}field")}
        form_type = fields.get("FORM_TYPE")
        if form_type is not None and form_type.findtext(f"{{{NS_DATA}}}value") == NS:
            form = fields
    if NS not in features:
        return Published(False, None)
    if form is None:
        raise MalformedStanza(f"{domain} announces {NS} but publishes no key form")

    def values(name: str) -> list[str]:
        field = form.get(name)
        return [] if field is None else [(v.text or "").strip() for v in field.iter(f"{{{NS_DATA}}}value")]

    keys: list[PublishedKey] = []
    try:
        for key in values("key"):
            unb64(key, 32, "a published key")
            keys.append(PublishedKey(key))
        for entry in values("retired-key"):
            key, _, not_after = entry.partition(" ")
            unb64(key, 32, "a retired key")
            parse_time(not_after)
            keys.append(PublishedKey(key, KeyStatus.RETIRED, not_after))
        for key in values("revoked-key"):
            unb64(key, 32, "a revoked key")
            keys.append(PublishedKey(key, KeyStatus.REVOKED))
    except InvalidInput as exc:
        raise MalformedStanza(f"{domain}'s key form: {exc}") from None
    if not any(k.status is KeyStatus.CURRENT for k in keys):
        raise MalformedStanza(f"{domain} publishes no current key")
    skew_values = values("max-skew")
    max_skew = DEFAULT_MAX_SKEW
    if skew_values:
        if not skew_values[0].isascii() or not skew_values[0].isdigit() or int(skew_values[0]) > 86_400:
            raise MalformedStanza(f"{domain}'s max-skew must be whole seconds from 0 to 86400")
        max_skew = int(skew_values[0])
    return Published(True, KeySet(domain, tuple(keys)), max_skew)


def key_form(keys: KeySet, max_skew: int = DEFAULT_MAX_SKEW) -> etree._Element:
    """The XEP-0128 form a participating server puts into its disco#info result."""
    x = etree.Element(f"{{{NS_DATA}}}x", nsmap={None: NS_DATA}, type="result")

    def field(var: str, kind: str, values: list[str]) -> None:
        element = etree.SubElement(x, f"{{{NS_DATA}}}field", var=var, type=kind)
        for value in values:
            etree.SubElement(element, f"{{{NS_DATA}}}value").text = value

    field("FORM_TYPE", "hidden", [NS])
    field("key", "text-multi", [k.key for k in keys.keys if k.status is KeyStatus.CURRENT])
    field("retired-key", "text-multi", [f"{k.key} {k.not_after}" for k in keys.keys
                                        if k.status is KeyStatus.RETIRED])
    field("revoked-key", "text-multi", [k.key for k in keys.keys if k.status is KeyStatus.REVOKED])
    field("max-skew", "text-single", [str(max_skew)])
    return x
