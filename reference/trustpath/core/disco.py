"""Reading and writing a domain's published record keys (XEP: Discovery and Keys): the XEP-0128 form in
its disco#info result, its DNSSEC-signed TXT records and its POSH document.
"""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from . import constants
from .constants import DEFAULT_CACHE_FOR
from .errors import InvalidInput, MalformedStanza
from .keys import KeySet, KeyStatus, PublishedKey, unb64_raw
from .model import DEFAULT_MAX_SKEW, NS
from .timefmt import parse_time

NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"
NS_DATA = "jabber:x:data"


@dataclass(frozen=True, slots=True)
class Published:
    """What a server's disco#info says about trust-path: whether it takes part, its keys, its
    maximum skew and how long its keys may be cached (XEP: Discovery and Keys)."""

    takes_part: bool
    keys: KeySet | None
    max_skew: int = DEFAULT_MAX_SKEW
    cache_for: int = DEFAULT_CACHE_FOR


def parse_key(text: str) -> tuple[str, str]:
    """``ed25519:<base64>`` to ``(alg, key)``; the key without padding."""
    alg, sep, key = text.partition(":")
    if not sep:
        raise InvalidInput(f"a published key is alg:key, e.g. ed25519:<base64>, got {text[:60]!r}")
    if alg not in constants.ALGORITHMS:
        raise InvalidInput(f"key algorithm {alg!r} is not supported; only {', '.join(constants.ALGORITHMS)}")
    unb64_raw(key.rstrip("="), 32, "a published key")
    return alg, key.rstrip("=")


def _key_entry(text: str, status: KeyStatus) -> PublishedKey:
    """One value of the key, next-key, retired-key or revoked-key field."""
    token, _, when = text.partition(" ")
    alg, key = parse_key(token)
    if status in (KeyStatus.CURRENT, KeyStatus.NEXT):
        if when:
            raise InvalidInput(f"a {status.value} key is given alone")
        return PublishedKey(key, status, alg=alg)
    if status is KeyStatus.REVOKED and not when:
        return PublishedKey(key, status, alg=alg)  # no compromise time known: nothing it signed stays valid
    parse_time(when)
    if status is KeyStatus.RETIRED:
        return PublishedKey(key, status, not_after=when, alg=alg)
    return PublishedKey(key, status, since=when, alg=alg)


def check_key_count(count: int, domain: str, where: str) -> None:
    """Refuse a key set of more than MAX_PUBLISHED_KEYS keys (XEP: Discovery and Keys), before any is parsed:
    a domain that publishes thousands would make every reader parse and search them."""
    if count > constants.MAX_PUBLISHED_KEYS:
        raise MalformedStanza(f"{domain} publishes {count} keys in its {where}; "
                              f"at most {constants.MAX_PUBLISHED_KEYS} are read")


def _seconds(values: list[str], name: str, domain: str, default: int) -> int:
    if not values:
        return default
    if not values[0].isascii() or not values[0].isdigit() or int(values[0]) > constants.MAX_SKEW_LIMIT * 365:
        raise MalformedStanza(f"{domain}'s {name} must be whole seconds")
    return int(values[0])


def read_disco_info(query: etree._Element, domain: str) -> Published:
    """Read the feature and the urn:xmpp:trust-path:1 form from a disco#info ``<query/>``."""
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

    check_key_count(sum(len(values(name)) for name in ("key", "next-key", "retired-key", "revoked-key")), domain,
                    "key form")
    try:
        keys = [_key_entry(value, status) for name, status in (("key", KeyStatus.CURRENT),
                                                               ("next-key", KeyStatus.NEXT),
                                                               ("retired-key", KeyStatus.RETIRED),
                                                               ("revoked-key", KeyStatus.REVOKED))
                for value in values(name)]
    except InvalidInput as exc:
        raise MalformedStanza(f"{domain}'s key form: {exc}") from None
    if not any(k.status is KeyStatus.CURRENT for k in keys):
        raise MalformedStanza(f"{domain} publishes no current key")
    max_skew = _seconds(values("max-skew"), "max-skew", domain, DEFAULT_MAX_SKEW)
    if max_skew > constants.MAX_SKEW_LIMIT:
        raise MalformedStanza(f"{domain}'s max-skew must be whole seconds from 0 to {constants.MAX_SKEW_LIMIT}")
    return Published(True, KeySet(domain, tuple(keys)), max_skew,
                      _seconds(values("cache-for"), "cache-for", domain, DEFAULT_CACHE_FOR))


def key_values(keys: KeySet) -> dict[str, list[str]]:
    """The key, next-key, retired-key and revoked-key values, as the form writes them (next-key only
    when there is a next key, so that a form without one is the same as before the field existed)."""
    values = {"key": [f"{k.alg}:{k.key}" for k in keys.keys if k.status is KeyStatus.CURRENT],
              "next-key": [f"{k.alg}:{k.key}" for k in keys.keys if k.status is KeyStatus.NEXT],
              "retired-key": [f"{k.alg}:{k.key} {k.not_after}" for k in keys.keys if k.status is KeyStatus.RETIRED],
              "revoked-key": [f"{k.alg}:{k.key}" + (f" {k.since}" if k.since else "") for k in keys.keys
                              if k.status is KeyStatus.REVOKED]}
    if not values["next-key"]:
        del values["next-key"]
    return values


def key_form(keys: KeySet, max_skew: int = DEFAULT_MAX_SKEW, cache_for: int = DEFAULT_CACHE_FOR) -> etree._Element:
    """The XEP-0128 form a participating server puts into its disco#info result."""
    x = etree.Element(f"{{{NS_DATA}}}x", nsmap={None: NS_DATA}, type="result")

    def field(var: str, kind: str, values: list[str]) -> None:
        element = etree.SubElement(x, f"{{{NS_DATA}}}field", var=var, type=kind)
        for value in values:
            etree.SubElement(element, f"{{{NS_DATA}}}value").text = value

    field("FORM_TYPE", "hidden", [NS])
    for name, values in key_values(keys).items():
        field(name, "text-multi", values)
    field("max-skew", "text-single", [str(max_skew)])
    field("cache-for", "text-single", [str(cache_for)])
    return x


# --- other key sources: DNSSEC and POSH (XEP: Discovery and Keys) -----------------------------------

DNS_PREFIX = "_trust-path"
POSH_PATH = "/.well-known/posh/trust-path.json"


def dns_name(domain: str) -> str:
    """Where a domain publishes its keys in DNS: TXT records at ``_trust-path.<domain>``."""
    return f"{DNS_PREFIX}.{domain}"


def txt_records(keys: KeySet) -> list[str]:
    """One TXT record per key: ``v=tp1; k=ed25519:<key>``, with ``; s=next``, ``; s=retired;
    until=<time>`` or ``; s=revoked; since=<time>``."""
    out = []
    for k in keys.keys:
        text = f"v=tp1; k={k.alg}:{k.key}"
        if k.status is KeyStatus.NEXT:
            text += "; s=next"
        elif k.status is KeyStatus.RETIRED:
            text += f"; s=retired; until={k.not_after}"
        elif k.status is KeyStatus.REVOKED:
            text += "; s=revoked" + (f"; since={k.since}" if k.since else "")
        out.append(text)
    return out


def read_txt_records(texts: list[str], domain: str) -> KeySet:
    """A domain's keys from its ``_trust-path`` TXT records (the caller checks DNSSEC validation:
    only then is the key source ``dnssec``).  Records that are not ``v=tp1`` are ignored."""
    records = []
    for text in texts:
        tags = {}
        for part in text.split(";"):
            name, sep, value = part.strip().partition("=")
            if sep:
                tags[name.strip()] = value.strip()
        if tags.get("v") == "tp1":
            records.append(tags)
    check_key_count(len(records), domain, "_trust-path TXT records")
    keys = []
    for tags in records:
        try:
            alg, key = parse_key(tags.get("k", ""))
            status = {"next": KeyStatus.NEXT, "retired": KeyStatus.RETIRED,
                      "revoked": KeyStatus.REVOKED}.get(tags.get("s", ""), KeyStatus.CURRENT)
            for name in ("until", "since"):
                if name in tags:
                    parse_time(tags[name])
        except InvalidInput as exc:
            raise MalformedStanza(f"{domain}'s _trust-path TXT record: {exc}") from None
        if status is KeyStatus.RETIRED and "until" not in tags:
            raise MalformedStanza(f"{domain}'s _trust-path TXT record: a retired key needs until=")
        keys.append(PublishedKey(key, status, tags.get("until"), tags.get("since"), alg))
    if not any(k.status is KeyStatus.CURRENT for k in keys):
        raise MalformedStanza(f"{domain} publishes no current key in DNS")
    return KeySet(domain, tuple(keys))


def posh_document(keys: KeySet, expires: int = DEFAULT_CACHE_FOR) -> dict[str, object]:
    """The POSH document (RFC 7711 style) at ``https://<domain>/.well-known/posh/trust-path.json``."""
    return {"keys": [k.to_json() for k in keys.keys], "expires": expires}


def read_posh_document(data: object, domain: str) -> tuple[KeySet, int]:
    """A domain's keys and how long to keep them, from its POSH document."""
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        raise MalformedStanza(f"{domain}'s POSH document needs a 'keys' list")
    expires = data.get("expires") if data.get("expires") is not None else DEFAULT_CACHE_FOR
    if not isinstance(expires, int) or isinstance(expires, bool) or expires < 0:
        raise MalformedStanza(f"{domain}'s POSH document: 'expires' must be whole seconds")
    check_key_count(len(data["keys"]), domain, "POSH document")
    try:
        keys = KeySet.from_json({"domain": domain, "keys": data["keys"]})
    except InvalidInput as exc:
        raise MalformedStanza(f"{domain}'s POSH document: {exc}") from None
    return keys, expires
