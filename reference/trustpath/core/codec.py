"""XML encoding and decoding of trust-path elements, with the XEP's limits.

Parsing is hardened: no DTD, no entities, no network, bounded size, depth and
number of attestations.  Decoding is strict: an attribute the XEP does not define,
or a value of the wrong form, is an error, because everything in an attestation is
signed and an unknown attribute could not be.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lxml import etree

from .errors import LimitExceeded, MalformedStanza, UnsupportedAlgorithm, UnsupportedVersion
from .model import (
    MAX_ATTESTATIONS,
    MAX_DEPTH,
    MAX_REPORT_HOPS,
    MAX_STANZA_BYTES,
    NS,
    NS_PREFIX,
    Attestation,
    Chain,
    KeySource,
    MessageFields,
    Path,
    Result,
    Side,
    View,
)

STANZA_NS = ("jabber:client", "jabber:server")
NS_CARBONS = "urn:xmpp:carbons:2"
NS_FORWARD = "urn:xmpp:forward:0"
NS_MAM = "urn:xmpp:mam:2"
NS_DELAY = "urn:xmpp:delay"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"

_B64_32 = re.compile(r"[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=\Z")
_B64_64 = re.compile(r"[A-Za-z0-9+/]{85}[AQgw]==\Z")
_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z\Z")
_CIPHER = re.compile(r"[0-9A-F]{4}\Z")
_METHOD = re.compile(r"(pin|dane-ee|dane-ta|pkix|dialback|dialback-dnssec|none|[A-Z0-9\-_]{1,20})\Z")
_REASON = re.compile(r"[a-z0-9\-]{1,64}\Z")
_REMOVED = re.compile(r"[1-9][0-9]{0,2}\Z", re.ASCII)  # signed as written, so exactly one spelling
_TLS = ("1.2", "1.3", "none")
_CB = ("tls-unique", "tls-exporter", "tls-server-end-point")

_ATTESTATION_ATTRS = frozenset({"signer", "time", "for", "alg", "prev-key", "stored", "sig"})
_VIEW_ATTRS = frozenset({"peer", "side", "tls", "cipher", "spki", "method", "cb", "result", "reason"})
_IN_ATTRS = _VIEW_ATTRS | {"chain", "chain-reason", "key-source", "removed"}

_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False,
                          remove_blank_text=False)


def parse_stanza(data: bytes) -> etree._Element:
    """Parse one stanza (or a carbon / archive wrapper of one) from bytes, within limits."""
    if not isinstance(data, (bytes, bytearray)):
        raise MalformedStanza("a stanza is given as bytes")
    if len(data) > MAX_STANZA_BYTES:
        raise LimitExceeded(f"stanza is {len(data)} bytes; the limit is {MAX_STANZA_BYTES}")
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise MalformedStanza("XMPP forbids DTDs and entity declarations (RFC 6120, 11.1)")
    try:
        root = etree.fromstring(bytes(data), _PARSER)
    except etree.XMLSyntaxError as exc:
        raise MalformedStanza(f"not well-formed XML: {exc}") from None
    tree = root.getroottree()
    if tree.docinfo.doctype or tree.docinfo.internalDTD is not None:
        raise MalformedStanza("XMPP forbids DTDs and entity declarations (RFC 6120, 11.1)")
    _check_depth(root)
    return root


def _check_depth(root: etree._Element) -> None:
    depth = 0
    for event, element in etree.iterwalk(root, events=("start", "end", "comment", "pi")):
        if event == "start":
            depth += 1
            if depth > MAX_DEPTH:
                raise LimitExceeded(f"stanza nests deeper than {MAX_DEPTH} elements")
        elif event == "end":
            depth -= 1
        else:
            raise MalformedStanza("XMPP forbids comments and processing instructions in stanzas (RFC 6120, 11.1)")


def _local(element: etree._Element) -> tuple[str, str]:
    qname = etree.QName(element)
    return qname.namespace or "", qname.localname


@dataclass(frozen=True, slots=True)
class Received:
    """A message found in a stanza, with how it was wrapped."""

    message: etree._Element
    wrapper: str | None = None  # 'carbon-sent', 'carbon-received', 'archive'
    delay: str | None = None
    outer_from: str | None = None  # who sent the wrapper: must be the recipient's own account


def find_message(root: etree._Element) -> Received:
    """The message to verify: the stanza itself, or the one a carbon or archive result forwards."""
    ns, name = _local(root)
    if name != "message" or ns not in STANZA_NS:
        raise MalformedStanza(f"expected a <message/> in jabber:client or jabber:server, got <{name}/> in {ns!r}")
    for child in root:
        cns, cname = _local(child)
        wrapper = None
        if cns == NS_CARBONS and cname in ("sent", "received"):
            wrapper = f"carbon-{cname}"
        elif cns == NS_MAM and cname == "result":
            wrapper = "archive"
        if wrapper is None:
            continue
        forwarded = child.find(f"{{{NS_FORWARD}}}forwarded")
        if forwarded is None:
            raise MalformedStanza(f"<{cname}/> without <forwarded/>")
        inner = [m for m in forwarded if _local(m)[1] == "message" and _local(m)[0] in STANZA_NS]
        if len(inner) != 1:
            raise MalformedStanza("<forwarded/> must carry exactly one <message/>")
        for other in root:
            ons, oname = _local(other)
            if (ons == ns and oname in ("body", "subject")) or (ons.startswith(NS_PREFIX) and oname == "path"):
                raise MalformedStanza(f"a <{cname}/> wrapper must not carry its own <{oname}/>: only the forwarded "
                                      "message is checked, so that content would be shown unchecked")
        delay = forwarded.find(f"{{{NS_DELAY}}}delay")
        return Received(inner[0], wrapper, delay.get("stamp") if delay is not None else None, root.get("from"))
    return Received(root)


def message_fields(message: etree._Element) -> MessageFields:
    """The fields of ``message`` that attestations are bound to (XEP: Signing Input)."""
    ns = etree.QName(message).namespace
    sender = message.get("from")
    to = message.get("to")
    ident = message.get("id")
    if not sender or not to:
        raise MalformedStanza("the message needs 'from' and 'to' to be attested")
    if not ident:
        raise MalformedStanza("the message needs an 'id' to be attested")
    groups: dict[str, list[tuple[str | None, str]]] = {"body": [], "subject": [], "thread": []}
    wanted = {f"{{{ns}}}{name}": name for name in groups}
    require_tag = f"{{{NS}}}require"
    report_tag = f"{{{NS}}}report"
    require = None
    report = None
    for child in message:
        tag = child.tag
        name = wanted.get(tag) if isinstance(tag, str) else None
        if name is not None:
            if len(child):
                raise MalformedStanza(f"<{name}/> must contain text only")
            groups[name].append((child.get(XML_LANG), child.text or ""))
        elif tag == require_tag:
            if require is not None:
                raise MalformedStanza("more than one <require/>")
            require = child.get("verdict")
            if require not in ("trusted", "weak") or set(child.attrib) != {"verdict"}:
                raise MalformedStanza("<require/> takes verdict='trusted' or verdict='weak'")
        elif tag == report_tag:
            if report is not None:
                raise MalformedStanza("more than one <report/>")
            report = report_fields(child)
    return MessageFields(sender=sender, to=to, id=ident, type=message.get("type") or "normal",
                         bodies=tuple(groups["body"]), subjects=tuple(groups["subject"]),
                         threads=tuple(groups["thread"]), require=require, report=report)


def _signed_attributes(element: etree._Element, name: str) -> tuple[tuple[str, str], ...]:
    items = element.attrib.items()
    if any(key.startswith("{") for key, _ in items):
        raise MalformedStanza(f"<{name}/> must not carry namespaced attributes: they are not signed")
    return tuple(sorted(items))


def report_fields(report: etree._Element) -> tuple[tuple[tuple[str, str], ...], ...]:
    """A ``<report/>`` as the signing input covers it, whatever its attributes say: servers sign
    it without reading it (XEP: Signing Input); :func:`trustpath.core.delivery.decode_report` is strict."""
    hops = [c for c in report if isinstance(c.tag, str) and c.tag == f"{{{NS}}}hop"]
    if len(hops) > MAX_REPORT_HOPS:
        raise LimitExceeded(f"{len(hops)} hops in a <report/>; the limit is {MAX_REPORT_HOPS}")
    return (_signed_attributes(report, "report"), *(_signed_attributes(h, "hop") for h in hops))


def find_path_element(message: etree._Element) -> etree._Element | None:
    found = None
    for child in message:
        if not isinstance(child.tag, str):
            continue
        ns, name = _local(child)
        if name == "path" and ns.startswith(NS_PREFIX) and ns != NS:
            raise UnsupportedVersion(f"trust-path namespace {ns!r} is not supported; this implementation speaks {NS}")
        if ns == NS and name == "path":
            if found is not None:
                raise MalformedStanza("more than one <path/> in a message")
            found = child
    return found


def decode_path(message: etree._Element) -> Path | None:
    """The path carried by ``message``, or None when it carries none."""
    element = find_path_element(message)
    if element is None:
        return None
    if element.attrib:
        raise MalformedStanza("<path/> takes no attributes")
    children = [c for c in element if isinstance(c.tag, str)]
    if (element.text or "").strip() or any((c.tail or "").strip() for c in children):
        raise MalformedStanza("<path/> contains text")
    if not children:
        raise MalformedStanza("<path/> is empty")
    if len(children) > MAX_ATTESTATIONS:
        raise LimitExceeded(f"{len(children)} attestations; the limit is {MAX_ATTESTATIONS}")
    attestations = tuple(decode_attestation(c) for c in children)
    sigs = [a.sig for a in attestations]
    if len(set(sigs)) != len(sigs):
        raise MalformedStanza("the same attestation appears twice in <path/>")
    for before, after in zip(attestations, attestations[1:]):
        if before.signer == after.signer:
            raise MalformedStanza(f"two consecutive attestations by {before.signer}: a hop is duplicated")
    return Path(attestations)


_TAG_ATTESTATION = f"{{{NS}}}attestation"
_TAG_IN = f"{{{NS}}}in"
_TAG_OUT = f"{{{NS}}}out"
_SIDES = {s.value: s for s in Side}
_RESULTS = {r.value: r for r in Result}
_CHAINS = {c.value: c for c in Chain}
_KEY_SOURCES = {k.value: k for k in KeySource}


def _need(attrs: dict[str, str], name: str, element: str) -> str:
    value = attrs.get(name)
    if value is None:
        raise MalformedStanza(f"<{element}/> lacks '{name}'")
    return value


def _enum(table: dict[str, object], value: str | None, name: str, element: str) -> object:
    try:
        return table[value]  # type: ignore[index]
    except KeyError:
        raise MalformedStanza(f"<{element}/> '{name}' must be one of {sorted(table)}, got {value!r}") from None


def decode_attestation(element: etree._Element) -> Attestation:
    if element.tag != _TAG_ATTESTATION:
        name = etree.QName(element).localname if isinstance(element.tag, str) else "?"
        raise MalformedStanza(f"<path/> may contain only <attestation/>, not <{name}/>")
    attrs = dict(element.attrib)
    if not attrs.keys() <= _ATTESTATION_ATTRS:
        raise MalformedStanza(f"<attestation/> has unknown attribute(s) {sorted(attrs.keys() - _ATTESTATION_ATTRS)}")
    alg = attrs.get("alg")
    if alg is not None and alg != "ed25519":
        raise UnsupportedAlgorithm(f"attestation by {attrs.get('signer')!r} uses algorithm {alg!r}; "
                                   "only ed25519 is defined")
    signer = _need(attrs, "signer", "attestation")
    time = _need(attrs, "time", "attestation")
    for_id = _need(attrs, "for", "attestation")
    sig = _need(attrs, "sig", "attestation")
    prev_key = attrs.get("prev-key")
    stored = attrs.get("stored")
    if not signer or len(signer) > 3071:
        raise MalformedStanza("'signer' must be a JID")
    if not for_id or len(for_id) > 256:
        raise MalformedStanza("'for' must be a message id of 1 to 256 characters")
    if not _TIME.match(time):
        raise MalformedStanza(f"'time' must look like 2026-11-25T09:00:00Z, got {time!r}")
    if stored is not None and not _TIME.match(stored):
        raise MalformedStanza(f"'stored' must look like 2026-11-25T09:00:00Z, got {stored!r}")
    if not _B64_64.match(sig):
        raise MalformedStanza("'sig' must be a base64 Ed25519 signature (88 characters)")
    if prev_key is not None and not _B64_32.match(prev_key):
        raise MalformedStanza("'prev-key' must be a base64 Ed25519 key (44 characters)")
    if element.text is not None and element.text.strip():
        raise MalformedStanza("<attestation/> contains text")
    in_view = out_view = None
    order = []
    for child in element:
        tag = child.tag
        if tag == _TAG_IN:
            order.append("in")
            in_view = decode_view(child, inbound=True)
        elif tag == _TAG_OUT:
            order.append("out")
            out_view = decode_view(child, inbound=False)
        else:
            name = etree.QName(child).localname if isinstance(tag, str) else "a comment or instruction"
            raise MalformedStanza(f"<attestation/> may contain only <in/> and <out/>, not <{name}/>")
        if (child.tail is not None and child.tail.strip()) or (child.text is not None and child.text.strip()) \
                or len(child):
            raise MalformedStanza(f"<{order[-1]}/> must be empty")
    if order not in (["in"], ["out"], ["in", "out"]):
        raise MalformedStanza("<attestation/> holds <in/>, <out/> or both, once each, in that order")
    return Attestation(signer=signer, time=time, for_id=for_id, sig=sig, in_view=in_view, out_view=out_view,
                       prev_key=prev_key, stored=stored, alg=alg)


def decode_view(element: etree._Element, *, inbound: bool) -> View:
    name = "in" if inbound else "out"
    attrs = dict(element.attrib)
    allowed = _IN_ATTRS if inbound else _VIEW_ATTRS
    if not attrs.keys() <= allowed:
        raise MalformedStanza(f"<{name}/> has unknown attribute(s) {sorted(attrs.keys() - allowed)}")
    peer = _need(attrs, "peer", name)
    if not peer or len(peer) > 3071:
        raise MalformedStanza(f"<{name}/> 'peer' must be a JID")
    side = _enum(_SIDES, attrs.get("side"), "side", name)
    result = _enum(_RESULTS, attrs.get("result"), "result", name)
    chain = attrs.get("chain")
    chain = _enum(_CHAINS, chain, "chain", name) if chain is not None else None
    key_source = attrs.get("key-source")
    key_source = _enum(_KEY_SOURCES, key_source, "key-source", name) if key_source is not None else None
    tls = _need(attrs, "tls", name)
    if tls not in _TLS:
        raise MalformedStanza(f"<{name}/> 'tls' must be one of {_TLS}")
    method = _need(attrs, "method", name)
    if not _METHOD.match(method):
        raise MalformedStanza(f"<{name}/> 'method' {method!r} is not a method name")
    spki = attrs.get("spki")
    if spki is not None and not _B64_32.match(spki):
        raise MalformedStanza(f"<{name}/> 'spki' must be a base64 SHA-256 (44 characters)")
    if spki is None and tls != "none":
        raise MalformedStanza(f"<{name}/> over TLS must state 'spki'")
    cipher = attrs.get("cipher")
    if cipher is not None and not _CIPHER.match(cipher):
        raise MalformedStanza(f"<{name}/> 'cipher' must be 4 upper-case hex digits")
    cb = attrs.get("cb")
    if cb is not None and cb not in _CB:
        raise MalformedStanza(f"<{name}/> 'cb' must be one of {_CB}")
    reason = attrs.get("reason")
    chain_reason = attrs.get("chain-reason")
    for attr, value in (("reason", reason), ("chain-reason", chain_reason)):
        if value is not None and not _REASON.match(value):
            raise MalformedStanza(f"<{name}/> '{attr}' must be a reason code")
    if result is Result.FAIL and reason is None:
        raise MalformedStanza(f"<{name}/> with result='fail' must give a 'reason'")
    removed = attrs.get("removed")
    removed_n = None
    if removed is not None:
        if not _REMOVED.match(removed):
            raise MalformedStanza(f"<{name}/> 'removed' must be a positive integer")
        removed_n = int(removed)
    if inbound and chain is None:
        raise MalformedStanza("<in/> must state 'chain'")
    return View(peer=peer, side=side, tls=tls, method=method, result=result, spki=spki,  # type: ignore[arg-type]
                cipher=cipher, cb=cb, reason=reason, chain=chain, chain_reason=chain_reason,  # type: ignore[arg-type]
                key_source=key_source, removed=removed_n)  # type: ignore[arg-type]


# --- encoding -------------------------------------------------------------------------

def attestation_element(attestation: Attestation) -> etree._Element:
    element = etree.Element(f"{{{NS}}}attestation", nsmap={None: NS})
    for name, value in attestation.attributes().items():
        element.set(name, value)
    for tag, view in (("in", attestation.in_view), ("out", attestation.out_view)):
        if view is not None:
            child = etree.SubElement(element, f"{{{NS}}}{tag}")
            for name, value in view.attributes().items():
                child.set(name, value)
    return element


def add_attestation(message: etree._Element, attestation: Attestation) -> None:
    """Append ``attestation`` to the message's ``<path/>``, creating it if needed."""
    path = find_path_element(message)
    if path is None:
        path = etree.SubElement(message, f"{{{NS}}}path", nsmap={None: NS})
    if len([c for c in path if isinstance(c.tag, str)]) >= MAX_ATTESTATIONS:
        raise LimitExceeded(f"a path holds at most {MAX_ATTESTATIONS} attestations")
    path.append(attestation_element(attestation))


def remove_paths(message: etree._Element) -> int:
    """Remove every trust-path ``<path/>`` (any version); return how many attestations went."""
    removed = 0
    for child in list(message):
        if not isinstance(child.tag, str):
            continue
        ns, name = _local(child)
        if name == "path" and ns.startswith(NS_PREFIX):
            removed += len([c for c in child if isinstance(c.tag, str)])
            message.remove(child)
    return removed


def view_element(view: View, *, inbound: bool) -> etree._Element:
    """``<in/>`` or ``<out/>`` with ``view``'s wire attributes."""
    element = etree.Element(_TAG_IN if inbound else _TAG_OUT, nsmap={None: NS})
    for name, value in view.attributes().items():
        element.set(name, value)
    return element


def view_problem(view: View, *, inbound: bool = False) -> str | None:
    """None if ``view`` is one a verifier accepts as an ``<out/>`` (``<in/>`` if ``inbound``), else
    why not: the rules of :func:`decode_view` (e.g. 'spki' whenever 'tls' is not none)."""
    try:
        decode_view(view_element(view, inbound=inbound), inbound=inbound)
    except MalformedStanza as exc:
        return str(exc)
    return None


def serialize(element: etree._Element) -> bytes:
    return etree.tostring(element, encoding="utf-8")
