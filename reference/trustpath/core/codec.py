"""XML encoding and decoding of trust-path elements, with the XEP's limits.

Parsing is hardened: no DTD, no entities, no network, bounded size, depth and
number of records.  Decoding is strict: a record field this version defines with a value of
the wrong form is an error.  Fields it does not define are kept (they are signed like the rest)
and otherwise ignored, so that an addition is not a flag day.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from lxml import etree

from . import constants
from .errors import LimitExceeded, MalformedStanza, UnsupportedAlgorithm, UnsupportedVersion
from .model import (
    MAX_RECORDS,
    MAX_DEPTH,
    MAX_REPORT_HOPS,
    MAX_STANZA_BYTES,
    NS,
    NS_PREFIX,
    Record,
    Chain,
    KeySource,
    MessageFields,
    Path,
    Result,
    View,
)

STANZA_NS = ("jabber:client", "jabber:server")
NS_CARBONS = "urn:xmpp:carbons:2"
NS_FORWARD = "urn:xmpp:forward:0"
NS_MAM = "urn:xmpp:mam:2"
NS_DELAY = "urn:xmpp:delay"
NS_SID = "urn:xmpp:sid:0"
NS_MUC_USER = "http://jabber.org/protocol/muc#user"
XML_NS = "http://www.w3.org/XML/1998/namespace"
XML_LANG = f"{{{XML_NS}}}lang"

_B64_KEY = re.compile(r"[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]\Z")  # 32 bytes, no padding
SIG_PATTERN = _B64_SIG = re.compile(r"[A-Za-z0-9+/]{85}[AQgw]\Z")  # 64 bytes, no padding
_B64_SPKI = re.compile(r"[A-Za-z0-9+/]{16}\Z")  # 12 bytes
_DECIMAL = re.compile(r"(0|[1-9][0-9]{0,10})\Z", re.ASCII)
_REMOVED = re.compile(r"[1-9][0-9]{0,2}\Z", re.ASCII)
METHOD_PATTERN = _METHOD = re.compile(r"[a-z0-9][a-z0-9-]{0,31}\Z")
REASON_PATTERN = _REASON = re.compile(r"[a-z0-9][a-z0-9-]{0,63}\Z")
_KEY = re.compile(r"[a-z][a-z0-9-]{0,15}\Z")
_TOKEN = re.compile(r"([a-z0-9][a-z0-9-]{0,31}|\{[^{}\s;,=]{1,256}\}[A-Za-z_][A-Za-z0-9_.-]{0,63})\Z")
_RECORD = re.compile(r"[\x21-\x7e]+\Z")
_SPACE = re.compile(r"[ \t\r\n]+")
_TLS = frozenset(constants.TLS_VERSIONS)
_CHAINS = {c.value: c for c in Chain}
_FIELDS = frozenset(constants.RECORD_FIELDS)
_RESULTS = {"pass": Result.PASS, "none": Result.NONE}
_KEY_SOURCES = {k.value: k for k in KeySource}
_PATH_TAG = f"{{{NS}}}path"
_OTHER_PATH_PREFIX = "{" + NS_PREFIX
_ORIGIN_ID_TAG = f"{{{NS_SID}}}origin-id"
#: body, subject and thread in the two stanza namespaces, by Clark name
_TEXT_TAGS = {ns: {f"{{{ns}}}{name}": name for name in ("body", "subject", "thread")} for ns in STANZA_NS}
#: the payloads projected from elements, by Clark name ({ns}name)
_ELEMENT_PAYLOADS = {f"{{{spec['ns']}}}{spec['name']}": token for token, spec in constants.PAYLOADS.items()
                     if spec["kind"] == "element"}

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


def message_fields(message: etree._Element, extra: tuple[str, ...] = ()) -> MessageFields:
    """The fields of ``message`` that records can be bound to (XEP: Signing Input).

    The message's identity is its 'id', else its XEP-0359 ``<origin-id/>``; it is "" when it has
    neither, and such a message cannot be attested (XEP: no-id).  Element payloads are projected
    for the tokens of the constants table, and for the qualified names ``{ns}name`` in ``extra``
    (payloads a record covers that this version has no token for).
    """
    tag = message.tag
    ns = tag[1:tag.index("}")] if tag[:1] == "{" else None
    sender = message.get("from")
    to = message.get("to")
    if not sender or not to:
        raise MalformedStanza("the message needs 'from' and 'to' to be attested")
    ident = message.get("id") or ""
    groups: dict[str, list[tuple[str | None, str]]] = {"body": [], "subject": [], "thread": []}
    wanted = _TEXT_TAGS.get(ns) or {f"{{{ns}}}{name}": name for name in groups}
    require_tag = f"{{{NS}}}require"
    report_tag = f"{{{NS}}}report"
    error_tag = f"{{{ns}}}error"
    require = None
    report = None
    projections: list[tuple[str, str]] = []
    for child in message:
        tag = child.tag
        if not isinstance(tag, str):
            continue
        name = wanted.get(tag)
        if name is not None:
            if len(child):
                raise MalformedStanza(f"<{name}/> must contain text only")
            groups[name].append((child.get(XML_LANG), child.text or ""))
        elif tag == require_tag:
            if require is not None:
                raise MalformedStanza("more than one <require/>")
            require = child.get("verdict")
            if require not in constants.REQUIRED_STRENGTH or set(child.attrib) != {"verdict"}:
                raise MalformedStanza("<require/> takes verdict='trusted' or verdict='weak'")
        elif tag == report_tag:
            if report is not None:
                raise MalformedStanza("more than one <report/>")
            report = report_fields(child)
        elif tag == _ORIGIN_ID_TAG and not ident:
            ident = child.get("id") or ""
        elif tag == error_tag:
            refusal = project_refusal(child)
            if refusal is not None:
                if any(t == "refusal" for t, _ in projections):
                    raise MalformedStanza("more than one <unverified-hop/>: a refusal names one hop")
                projections.append(("refusal", refusal))
        else:
            token = _ELEMENT_PAYLOADS.get(tag) or (tag if tag in extra else None)
            if token is not None:
                if any(t == token for t, _ in projections):
                    raise MalformedStanza(f"more than one {token} payload")
                projections.append((token, project_element(child)))
    if len(ident) > constants.MAX_ID_CHARS:
        # an identity no verifier accepts is none (XEP rule 3): nobody signs the message and every
        # verifier reports it as no-id, the same on every node (characters, not bytes)
        ident = ""
    return MessageFields(sender=sender, to=to, id=ident, type=message.get("type") or "normal",
                         bodies=tuple(groups["body"]), subjects=tuple(groups["subject"]),
                         threads=tuple(groups["thread"]), require=require, report=report,
                         elements=tuple(projections))


_UNVERIFIED_HOP_TAG = f"{{{NS}}}unverified-hop"
_STANZA_ERROR_PREFIX = "{urn:ietf:params:xml:ns:xmpp-stanzas}"


def error_condition(error: etree._Element) -> str:
    """The defined condition of a stanza ``<error/>`` (RFC 6120, 8.3): the local name of its first
    child in the stanzas namespace other than ``<text/>``, or "" when it has none.  Works on lxml
    and on ElementTree elements."""
    return next((child.tag[len(_STANZA_ERROR_PREFIX):] for child in error
                 if isinstance(child.tag, str) and child.tag.startswith(_STANZA_ERROR_PREFIX)
                 and child.tag != _STANZA_ERROR_PREFIX + "text"), "")


def project_refusal(error: etree._Element) -> str | None:
    """The payload ``refusal`` of a message's ``<error/>`` (XEP: Covered Payloads), or None when it
    names no hop: its 'type', 'by', defined condition and the ``<unverified-hop/>``'s attributes.
    Its ``<text/>`` is not covered: a client shows the covered attributes, in its own words."""
    hops = [child for child in error if child.tag == _UNVERIFIED_HOP_TAG]
    if not hops:
        return None
    if len(hops) > 1:
        raise MalformedStanza("more than one <unverified-hop/>: a refusal names one hop")
    parts = ["type\x00", error.get("type") or "", "\x00by\x00", error.get("by") or "",
             "\x00condition\x00", error_condition(error), "\x00"]
    for name, value in _signed_attributes(hops[0], "unverified-hop"):
        parts += ["hop.", name, "\x00", value, "\x00"]
    return "".join(parts)


def project_element(element: etree._Element) -> str:
    """An element payload as the signing input covers it (XEP: Covered Payloads): for the element
    and its descendants in document order, ``<`` and its ``{ns}name``, its attributes sorted by
    name (``@name`` and value), its text nodes (``#`` and text) and ``>`` at its end."""
    parts: list[str] = []

    def walk(el: etree._Element, depth: int) -> None:
        if depth > MAX_DEPTH:
            raise LimitExceeded(f"a payload nests deeper than {MAX_DEPTH} elements")
        parts.extend(("<", "\x00", el.tag, "\x00"))
        for name, value in sorted(el.attrib.items()):
            parts.extend(("@" + name, "\x00", value, "\x00"))  # lxml writes a namespaced name {ns}name
        if el.text:
            parts.extend(("#", "\x00", el.text, "\x00"))
        for child in el:
            if isinstance(child.tag, str):
                walk(child, depth + 1)
            if child.tail:
                parts.extend(("#", "\x00", child.tail, "\x00"))
        parts.extend((">", "\x00"))

    walk(element, 1)
    return "".join(parts)


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
    """The message's ``<path/>``, or None; a path of another version is refused."""
    found = None
    for child in message:
        tag = child.tag
        if not isinstance(tag, str) or not tag.endswith("}path"):
            continue
        if tag == _PATH_TAG:
            if found is not None:
                raise MalformedStanza("more than one <path/> in a message")
            found = child
        elif tag.startswith(_OTHER_PATH_PREFIX):
            ns = tag[1:-len("}path")]
            raise UnsupportedVersion(f"trust-path namespace {ns!r} is not supported; this implementation speaks {NS}")
    return found


def path_records(element: etree._Element) -> list[str]:
    """The record texts of a ``<path/>`` element, oldest first, checked for shape only."""
    if element.attrib:
        raise MalformedStanza("<path/> takes no attributes")
    if len(element):
        raise MalformedStanza("<path/> contains text only: its records")
    records = _SPACE.split((element.text or "").strip(" \t\r\n"))
    if records == [""]:
        raise MalformedStanza("<path/> is empty")
    if len(records) > MAX_RECORDS:
        raise LimitExceeded(f"{len(records)} records; the limit is {MAX_RECORDS}")
    return records


def decode_path(message: etree._Element) -> Path | None:
    """The path carried by ``message``, or None when it carries none."""
    element = find_path_element(message)
    if element is None:
        return None
    records = tuple(decode_record(text) for text in path_records(element))
    sigs = [a.sig for a in records]
    if len(set(sigs)) != len(sigs):
        raise MalformedStanza("the same record appears twice in <path/>")
    return Path(records)


@dataclass(frozen=True, slots=True)
class LastRecord:
    """What a receiving server reads of a path (XEP: At the Receiving Server): the last record's
    signer ('s'; None without), key ('k'), time ('t') and signature ('z'), and how many records
    the path holds.  Nothing else is read: the recipient decodes every record strictly."""

    signer: str | None
    key: str
    time: int | None
    sig: str
    count: int
    stored: bool  # some record of the path has a field 'st=' (only the delivering server may)


_LAST_RECORD_FIELDS = ("s", "t", "k")


def read_last_record(message: etree._Element) -> LastRecord | None:
    """The path's last record as a receiving server reads it, or None when there is no path.

    The path's shape is checked as :func:`path_records` does, and whether any record has a field
    'st='; of the last record only 's', 't', 'k' (each at most once, 'k' required) and that its
    last field is 'z' are read.  A server that cannot read them refuses the path as malformed;
    what else is in the path is the recipient's to check."""
    element = find_path_element(message)
    if element is None:
        return None
    records = path_records(element)
    text = records[-1]
    if len(text) > constants.MAX_RECORD_CHARS:
        raise LimitExceeded(f"a record is {len(text)} characters; the limit is {constants.MAX_RECORD_CHARS}")
    fields: dict[str, str] = {}
    items = text.split(";")
    for item in items:
        name, sep, value = item.partition("=")
        if name in _LAST_RECORD_FIELDS:
            if not sep:
                raise MalformedStanza(f"a record field must be key=value, got {item[:40]!r}")
            if name in fields:
                raise MalformedStanza(f"a record gives '{name}=' twice")
            fields[name] = value
    name, sep, sig = items[-1].partition("=")
    if name != "z" or not sep:
        raise MalformedStanza("'z=' (the signature) must be a record's last field")
    key = _need(fields, "k")
    if not _B64_KEY.match(key):
        raise MalformedStanza("'k=' must be a base64 Ed25519 key without padding (43 characters)")
    signer = _jid(fields["s"], "s") if "s" in fields else None
    time = _decimal(fields["t"], "t") if "t" in fields else None
    stored = any(text.startswith("st=") or ";st=" in text for text in records)
    return LastRecord(signer=signer, key=key, time=time, sig=sig, count=len(records), stored=stored)


def _need(fields: dict[str, str], name: str) -> str:
    value = fields.get(name)
    if value is None:
        raise MalformedStanza(f"a record lacks '{name}='")
    return value


def _decimal(value: str, name: str) -> int:
    if not _DECIMAL.match(value):
        raise MalformedStanza(f"'{name}=' must be whole seconds since 1970 (decimal), got {value[:40]!r}")
    return int(value)


def _jid(value: str, name: str) -> str:
    if not value or len(value) > constants.MAX_JID_CHARS:
        raise MalformedStanza(f"'{name}=' must be a JID")
    return value


def decode_record(text: str) -> Record:
    """One record, read strictly (XEP: The path Element)."""
    if len(text) > constants.MAX_RECORD_CHARS:
        raise LimitExceeded(f"a record is {len(text)} characters; the limit is {constants.MAX_RECORD_CHARS}")
    if not _RECORD.match(text):
        raise MalformedStanza("a record is printable ASCII without spaces")
    fields: dict[str, str] = {}
    extra: list[tuple[str, str]] = []
    items = text.split(";")
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or "=" in value:
            raise MalformedStanza(f"a record field must be key=value, got {item[:40]!r}")
        if key in _FIELDS:
            if key in fields:
                raise MalformedStanza(f"a record gives '{key}=' twice")
            fields[key] = value
        elif not _KEY.match(key):
            raise MalformedStanza(f"a record field must be key=value, got {item[:40]!r}")
        elif any(k == key for k, _ in extra):
            raise MalformedStanza(f"a record gives '{key}=' twice")
        else:
            extra.append((key, value))
    if items[-1][:2] != "z=":
        raise MalformedStanza("'z=' (the signature) must be a record's last field")
    get = fields.get
    alg = get("a")
    if alg is not None and alg not in constants.ALGORITHMS:
        raise UnsupportedAlgorithm(f"a record by {get('s', 'the sending client')!r} uses algorithm {alg!r}; "
                                   "only ed25519 is defined")
    key, sig = _need(fields, "k"), _need(fields, "z")
    if not _B64_KEY.match(key):
        raise MalformedStanza("'k=' must be a base64 Ed25519 key without padding (43 characters)")
    if not _B64_SIG.match(sig):
        raise MalformedStanza("'z=' must be a base64 Ed25519 signature without padding (86 characters)")
    signer = get("s")
    out_view = decode_view(_need(fields, "o"), "o")
    i, c, v, t = get("i"), get("c"), get("v"), get("t")
    in_view = decode_view(i, "i") if i is not None else None
    if signer is None:
        if in_view is not None or c is not None or v is not None or "st" in fields:
            raise MalformedStanza("the sending client's record (no 's=') has only an out-view")
    else:
        _jid(signer, "s")
        if t is None:
            raise MalformedStanza("a server's record needs 't='")
        if (in_view is None) != (c is None):
            raise MalformedStanza("a server's record has 'i=' and 'c=' both, or neither (a refusal's first record)")
        if in_view is None and (v is not None or "r" in fields or "st" in fields):
            raise MalformedStanza("a record without 'i=' (a refusal's first record) states no 'c=', 'v=', 'r=' or 'st='")
    chain = chain_reason = None
    if c is not None:
        chain = _CHAINS.get(c)
        if chain is None or chain is Chain.FAIL:  # the common words are looked up whole; fail.<reason> here
            word, _, reason = c.partition(".")
            chain = _CHAINS.get(word)
            if chain is None or (chain is Chain.FAIL) != bool(reason) or (reason and not _REASON.match(reason)):
                raise MalformedStanza(f"'c=' must be pass, absent, stripped or fail.<reason>, got {c[:40]!r}")
            chain_reason = reason or None
    vouch = None
    if v is not None:
        vouch = _KEY_SOURCES.get(v)
        if vouch is None:
            raise MalformedStanza(f"'v=' must be a key source, got {v[:40]!r}")
    covers = None
    h = get("h")
    if h is not None:
        covers = tuple(h.split(","))
        if not all(_TOKEN.match(token) for token in covers) or len(set(covers)) != len(covers):
            raise MalformedStanza("'h=' must list payload tokens, each once")
    removed, stored, f, p = get("r"), get("st"), get("f"), get("p")
    if removed is not None and not _REMOVED.match(removed):
        raise MalformedStanza("'r=' must be a count from 1 to 999")
    return Record(
        key=key, out_view=out_view, sig=sig, text=text, signer=signer,
        time=_decimal(t, "t") if t is not None else None, alg=alg, in_view=in_view,
        in_peer=_jid(f, "f") if f is not None else None,
        out_peer=_jid(p, "p") if p is not None else None, chain=chain, chain_reason=chain_reason,
        vouch=vouch, removed=int(removed) if removed is not None else None,
        stored=_decimal(stored, "st") if stored is not None else None, covers=covers, extra=tuple(extra))


@functools.lru_cache(maxsize=1024)
def decode_view(text: str, name: str = "o") -> View:
    """``method,result,tls,spki`` (XEP: The path Element).  Cached: a connection's view is the same text on
    every message it carries, and a View is immutable."""
    parts = text.split(",")
    if len(parts) != 4:
        raise MalformedStanza(f"'{name}=' must be method,result,tls,spki, got {text[:60]!r}")
    method, result, tls, spki = parts
    if not _METHOD.match(method):
        raise MalformedStanza(f"'{name}=' method {method!r} is not a method name")
    if tls not in _TLS:
        raise MalformedStanza(f"'{name}=' tls must be one of {sorted(_TLS)}, got {tls!r}")
    if spki == "-":
        if tls != "none":
            raise MalformedStanza(f"'{name}=' over TLS must give the server's key (spki)")
        spki_value = None
    elif _B64_SPKI.match(spki):
        spki_value = spki
    else:
        raise MalformedStanza(f"'{name}=' spki must be 16 base64 characters (12 bytes) or -")
    known = _RESULTS.get(result)
    if known is not None:
        return View(method, known, tls, spki_value)
    if not _REASON.match(result):
        raise MalformedStanza(f"'{name}=' result must be pass, none or a reason code, got {result!r}")
    return View(method, Result.FAIL, tls, spki_value, result)


def view_problem(view: View) -> str | None:
    """None if ``view`` is one a verifier accepts, else why not (the rules of :func:`decode_view`)."""
    try:
        decode_view(view.text())
    except MalformedStanza as exc:
        return str(exc)
    return None


# --- encoding -------------------------------------------------------------------------

def add_record(message: etree._Element, record: Record | str) -> None:
    """Append ``record`` (a Record, or a record's text as :func:`~trustpath.core.attest.sign_record`
    makes it) to the message's ``<path/>``, creating it if needed."""
    text = record if isinstance(record, str) else record.text
    path = find_path_element(message)
    if path is None:
        path = etree.SubElement(message, f"{{{NS}}}path", nsmap={None: NS})
        path.text = text
        return
    records = path_records(path)
    if len(records) >= MAX_RECORDS:
        raise LimitExceeded(f"a path holds at most {MAX_RECORDS} records")
    path.text = " ".join((*records, text))


def remove_paths(message: etree._Element) -> int:
    """Remove every trust-path ``<path/>`` (any version); return how many records went."""
    removed = 0
    for child in list(message):
        if not isinstance(child.tag, str):
            continue
        ns, name = _local(child)
        if name == "path" and ns.startswith(NS_PREFIX):
            text = (child.text or "").strip(" \t\r\n")
            removed += max(1, len(_SPACE.split(text)) if text else 0)  # an empty or broken <path/> counts once
            message.remove(child)
    return removed


def serialize(element: etree._Element) -> bytes:
    return etree.tostring(element, encoding="utf-8")
