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
    stack = [(root, 1)]
    while stack:
        element, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise LimitExceeded(f"stanza nests deeper than {MAX_DEPTH} elements")
        for child in element:
            if isinstance(child, (etree._Entity, etree._ProcessingInstruction)):
                raise MalformedStanza("XMPP forbids entity references and processing instructions")
            if isinstance(child, etree._Comment):
                raise MalformedStanza("XMPP forbids comments in stanzas (RFC 6120, 11.1)")
            stack.append((child, depth + 1))


def _local(element: etree._Element) -> tuple[str, str]:
    qname = etree.QName(element)
    return qname.namespace or "", qname.localname


@dataclass(frozen=True, slots=True)
class Received:
    """A message found in a stanza, with how it was wrapped."""

    message: etree._Element
    wrapper: str | None = None  # 'carbon-sent', 'carbon-received', 'archive'
    delay: str | None = None


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
        delay = forwarded.find(f"{{{NS_DELAY}}}delay")
        return Received(inner[0], wrapper, delay.get("stamp") if delay is not None else None)
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
    require = None
    for child in message:
        if not isinstance(child.tag, str):
            continue
        cns, name = _local(child)
        if cns == ns and name in groups:
            if len(child):
                raise MalformedStanza(f"<{name}/> must contain text only")
            groups[name].append((child.get(XML_LANG), child.text or ""))
        elif cns == NS and name == "require":
            if require is not None:
                raise MalformedStanza("more than one <require/>")
            require = child.get("verdict")
            if require not in ("trusted", "weak") or set(child.attrib) != {"verdict"}:
                raise MalformedStanza("<require/> takes verdict='trusted' or verdict='weak'")
    return MessageFields(sender=sender, to=to, id=ident, type=message.get("type") or "normal",
                         bodies=tuple(groups["body"]), subjects=tuple(groups["subject"]),
                         threads=tuple(groups["thread"]), require=require)


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


def _need(element: etree._Element, name: str) -> str:
    value = element.get(name)
    if value is None:
        raise MalformedStanza(f"<{etree.QName(element).localname}/> lacks '{name}'")
    return value


def decode_attestation(element: etree._Element) -> Attestation:
    ns, name = _local(element)
    if ns != NS or name != "attestation":
        raise MalformedStanza(f"<path/> may contain only <attestation/>, not <{name}/>")
    extra = set(element.attrib) - _ATTESTATION_ATTRS
    if extra:
        raise MalformedStanza(f"<attestation/> has unknown attribute(s) {sorted(extra)}")
    alg = element.get("alg")
    if alg is not None and alg != "ed25519":
        raise UnsupportedAlgorithm(f"attestation by {element.get('signer')!r} uses algorithm {alg!r}; "
                                   "only ed25519 is defined")
    signer = _need(element, "signer")
    time = _need(element, "time")
    for_id = _need(element, "for")
    sig = _need(element, "sig")
    prev_key = element.get("prev-key")
    stored = element.get("stored")
    if not signer or len(signer) > 3071:
        raise MalformedStanza("'signer' must be a JID")
    if not for_id or len(for_id) > 256:
        raise MalformedStanza("'for' must be a message id of 1 to 256 characters")
    for label, value in (("time", time), ("stored", stored)):
        if value is not None and not _TIME.match(value):
            raise MalformedStanza(f"'{label}' must look like 2026-11-25T09:00:00Z, got {value!r}")
    if not _B64_64.match(sig):
        raise MalformedStanza("'sig' must be a base64 Ed25519 signature (88 characters)")
    if prev_key is not None and not _B64_32.match(prev_key):
        raise MalformedStanza("'prev-key' must be a base64 Ed25519 key (44 characters)")
    if (element.text or "").strip():
        raise MalformedStanza("<attestation/> contains text")
    in_view = out_view = None
    seen: list[str] = []
    for child in element:
        if not isinstance(child.tag, str):
            continue
        cns, cname = _local(child)
        if cns != NS or cname not in ("in", "out"):
            raise MalformedStanza(f"<attestation/> may contain only <in/> and <out/>, not <{cname}/>")
        if (child.tail or "").strip() or (child.text or "").strip() or len(child):
            raise MalformedStanza(f"<{cname}/> must be empty")
        seen.append(cname)
        if cname == "in":
            in_view = decode_view(child, inbound=True)
        else:
            out_view = decode_view(child, inbound=False)
    if seen not in (["in"], ["out"], ["in", "out"]):
        raise MalformedStanza("<attestation/> holds <in/>, <out/> or both, once each, in that order")
    return Attestation(signer=signer, time=time, for_id=for_id, sig=sig, in_view=in_view, out_view=out_view,
                       prev_key=prev_key, stored=stored, alg=alg)


def decode_view(element: etree._Element, *, inbound: bool) -> View:
    name = "in" if inbound else "out"
    extra = set(element.attrib) - (_IN_ATTRS if inbound else _VIEW_ATTRS)
    if extra:
        raise MalformedStanza(f"<{name}/> has unknown attribute(s) {sorted(extra)}")
    peer = _need(element, "peer")
    if not peer or len(peer) > 3071:
        raise MalformedStanza(f"<{name}/> 'peer' must be a JID")
    try:
        side = Side(_need(element, "side"))
        result = Result(_need(element, "result"))
        chain = Chain(element.get("chain")) if element.get("chain") is not None else None
        key_source = KeySource(element.get("key-source")) if element.get("key-source") is not None else None
    except ValueError as exc:
        raise MalformedStanza(f"<{name}/>: {exc}") from None
    tls = _need(element, "tls")
    if tls not in _TLS:
        raise MalformedStanza(f"<{name}/> 'tls' must be one of {_TLS}")
    method = _need(element, "method")
    if not _METHOD.match(method):
        raise MalformedStanza(f"<{name}/> 'method' {method!r} is not a method name")
    spki = element.get("spki")
    if spki is not None and not _B64_32.match(spki):
        raise MalformedStanza(f"<{name}/> 'spki' must be a base64 SHA-256 (44 characters)")
    if spki is None and tls != "none":
        raise MalformedStanza(f"<{name}/> over TLS must state 'spki'")
    cipher = element.get("cipher")
    if cipher is not None and not _CIPHER.match(cipher):
        raise MalformedStanza(f"<{name}/> 'cipher' must be 4 upper-case hex digits")
    cb = element.get("cb")
    if cb is not None and cb not in _CB:
        raise MalformedStanza(f"<{name}/> 'cb' must be one of {_CB}")
    reasons = {}
    for attr in ("reason", "chain-reason"):
        value = element.get(attr)
        if value is not None and not _REASON.match(value):
            raise MalformedStanza(f"<{name}/> '{attr}' must be a reason code")
        reasons[attr] = value
    if result is Result.FAIL and reasons["reason"] is None:
        raise MalformedStanza(f"<{name}/> with result='fail' must give a 'reason'")
    removed = element.get("removed")
    removed_n = None
    if removed is not None:
        if not removed.isdigit() or int(removed) < 1 or len(removed) > 3:
            raise MalformedStanza(f"<{name}/> 'removed' must be a positive integer")
        removed_n = int(removed)
    if inbound and chain is None:
        raise MalformedStanza("<in/> must state 'chain'")
    return View(peer=peer, side=side, tls=tls, method=method, result=result, spki=spki, cipher=cipher, cb=cb,
                reason=reasons["reason"], chain=chain, chain_reason=reasons["chain-reason"],
                key_source=key_source, removed=removed_n)


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


def serialize(element: etree._Element) -> bytes:
    return etree.tostring(element, encoding="utf-8")
