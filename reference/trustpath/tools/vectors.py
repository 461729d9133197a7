"""Write the published test vectors (``spec/vectors``): ``python -m trustpath.tools.vectors DIR``.

Everything is fixed (keys derived from a published seed, a fixed clock, fixed message
ids), so the files are the same on every run and another implementation can reproduce
each signature byte for byte: Ed25519 is deterministic.
"""

from __future__ import annotations

import base64
import json
import re
import sys
from dataclasses import replace
from pathlib import Path as FsPath
from typing import Any

from ..core.attest import attest
from ..core.codec import NS_SID, add_record, decode_path, find_message, message_fields, parse_stanza, \
    remove_paths, serialize
from ..core.keys import verify_signature
from ..core.model import NS, Chain, KeySource, Result, View
from ..core.signing import signing_input
from ..testbed.scenarios import Outcome, file_stem
from ..testbed.sim.scenarios import VECTOR_SEED, VECTOR_START, run_all
from ..testbed.sim.tls import KeyFactory
from .server_vectors import write_server

#: the fixed clock as records write it
T0 = int(VECTOR_START.timestamp())

#: every signer of the fixed world, with the label its key is derived from
SIGNERS = {
    "alice@a.example/phone": "client/alice@a.example/phone",
    "alice@a.example/laptop": "client/alice@a.example/laptop",
    "bob@b.example/desk": "client/bob@b.example/desk",
    "a.example": "server/a.example/1",
    "a.example (after rotation)": "server/a.example/2",
    "b.example": "server/b.example/1",
    "b.example (after rotation)": "server/b.example/2",
}


def _dump(path: FsPath, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def write_keys(directory: FsPath) -> None:
    keys = KeyFactory(VECTOR_SEED)
    out = {"comment": "TEST KEYS ONLY. Ed25519 private keys are the 32-byte RFC 8032 seeds, hex; public keys "
                      "base64 without padding, as records write them. Each seed is SHA-256(vector seed || "
                      "'/ed25519/' || label).",
           "vector_seed": VECTOR_SEED.decode(), "keys": []}
    for signer, label in SIGNERS.items():
        key = keys.signing_key(label)
        out["keys"].append({"signer": signer, "label": label, "private_seed_hex": key.seed().hex(),
                            "public": key.public})
    _dump(directory / "keys.json", out)


def _signing_entries(stanza: bytes) -> list[dict[str, Any]] | None:
    """Each record of ``stanza``: its exact signing input, its key and signature, and whether
    signing that input again with the test key gives the same signature."""
    keys = {k.public: k for k in (KeyFactory(VECTOR_SEED).signing_key(lbl) for lbl in SIGNERS.values())}
    message = find_message(parse_stanza(stanza)).message
    path = decode_path(message)
    if path is None:
        return None
    extra = tuple({token for a in path.records for token in (a.covers or ()) if token.startswith("{")})
    fields = message_fields(message, extra)
    entries = []
    atts = path.records
    for i, att in enumerate(atts):
        data = signing_input(fields, " ".join(a.text for a in atts[:i]), att.unsigned, att.covers)
        resign = keys[att.key].sign(data) if att.key in keys else None
        entries.append({"index": i, "signer": att.signer or message.get("from"), "record": att.text,
                        "signing_input": data.decode("utf-8"), "signing_input_base64": base64.b64encode(data).decode(),
                        "public_key": att.key, "sig": att.sig, "verifies": verify_signature(att.key, att.sig, data),
                        "reproducible": resign == att.sig})
    return entries


def write_signing(directory: FsPath, outcomes: list[Outcome]) -> None:
    """Per delivered scenario: each record's exact signing input and its signature."""
    for o in outcomes:
        if not o.delivered or o.stanza is None:
            continue
        entries = _signing_entries(o.stanza)
        if entries is None:
            continue
        _dump(directory / f"{file_stem(o)}.json", {"scenario": o.number, "name": o.name, "records": entries})


def _write_case(directory: FsPath, name: str, stanza: bytes, anchor: Any, expected: dict[str, Any]) -> None:
    """One case of a directory of cases: the stanza as the client received it, its anchor, and
    what it must show."""
    from ..core.anchor import anchor_to_json

    (directory / f"{name}.xml").write_bytes(stanza + b"\n")
    _dump(directory / f"{name}.anchor.json", anchor_to_json(anchor))
    _dump(directory / f"{name}.expected.json", expected)


def write_receipts(directory: FsPath) -> list[str]:
    """Per delivery-report case: the receipt as the sender's client received it, its anchor, what
    the sender may show, and the signing input of each record.  Returns the failed cases."""
    from ..testbed.sim.receipts import BOB_BARE, run_receipts

    failed = []
    index = []
    for o in run_receipts(seed=VECTOR_SEED, start=VECTOR_START):
        case = o.case
        if not o.ok or o.stanza is None or o.anchor is None or o.delivery is None:
            failed.append(f"{case.name}: {'; '.join(o.problems) or 'nothing arrived'}")
            continue
        _write_case(directory, case.name, o.stanza, o.anchor,
                    {"name": case.name, "title": case.title, "now": o.now, "sent_to": BOB_BARE, "sent_id": o.sent_id,
                     "sent_origin": o.sent_origin, "verdict": case.verdict.value, "reported": case.reported.value,
                     "receipt": case.receipt.value, "limited_by": case.limited_by})
        _dump(directory / f"{case.name}.signing.json", {"name": case.name, "records": _signing_entries(o.stanza)})
        index.append({"name": case.name, "title": case.title, "verdict": case.verdict.value,
                      "limited_by": case.limited_by})
    _dump(directory / "index.json", index)
    return failed


def write_refusals(directory: FsPath) -> list[str]:
    """Per refusal case: the refusal as the sender's client received it, its anchor, and the
    verdict on its own path and whether the sender believes it.  Returns the failed cases."""
    from ..testbed.sim.refusals import run_refusals

    failed = []
    index = []
    for o in run_refusals(seed=VECTOR_SEED, start=VECTOR_START):
        case = o.case
        if not o.ok or o.stanza is None or o.anchor is None or o.report is None:
            failed.append(f"{case.name}: {'; '.join(o.problems) or 'no refusal came back'}")
            continue
        _write_case(directory, case.name, o.stanza, o.anchor,
                    {"name": case.name, "title": case.title, "now": o.now, "by": case.by, "required": case.required,
                     "verdict": case.verdict.value, "weakest": list(o.report.weakest), "believed": case.believed})
        index.append({"name": case.name, "title": case.title, "by": case.by, "verdict": case.verdict.value,
                      "required": case.required, "believed": case.believed})
    _dump(directory / "index.json", index)
    return failed


def _records(stanza: bytes) -> list[bytes]:
    path = stanza[stanza.index(b"<path"):stanza.index(b"</path>")]
    return path[path.index(b">") + 1:].split()


def write_rejections(directory: FsPath) -> list[dict[str, Any]]:
    """Inputs every verifier must refuse (exit status 2 from `trustpath verify`), with why."""
    base = (directory.parent / "scenarios" / "01-all-pinned.xml").read_bytes().rstrip(b"\n")
    path_start = base.index(b"<path")
    path_end = base.index(b"</path>") + len(b"</path>")
    path_xml = base[path_start:path_end]
    client, server_a, server_b = _records(base)

    def with_records(*records: bytes) -> bytes:
        return base[:path_start] + b"<path xmlns='" + NS.encode() + b"'>" + b" ".join(records) + b"</path>" + \
            base[path_end:]

    def edit_a(old: bytes, new: bytes) -> bytes:
        assert old in server_a, old
        return with_records(client, server_a.replace(old, new, 1), server_b)

    v0 = NS.removesuffix("1") + "0"
    cases: list[tuple[str, bytes, str, str]] = [
        ("dtd", b"<?xml version='1.0'?><!DOCTYPE message [<!ENTITY x 'y'>]>" + base, "MalformedStanza", "DTD"),
        ("entity-expansion", b"<!DOCTYPE m [<!ENTITY a 'aaaaaaaaaa'><!ENTITY b '&a;&a;&a;&a;&a;'>]>" + base,
         "MalformedStanza", "DTD"),
        ("not-xml", base[:-20], "MalformedStanza", "well-formed"),
        ("not-a-message", base.replace(b"<message ", b"<presence ", 1).replace(b"</message>", b"</presence>"),
         "MalformedStanza", "message"),
        ("huge-1MB", base.replace(b"<body>", b"<body>" + b"x" * 1_048_576, 1), "LimitExceeded", "bytes"),
        ("deep-nesting", base.replace(b"</body>", b"</body>" + b"<x>" * 40 + b"</x>" * 40, 1), "LimitExceeded",
         "deeper"),
        ("too-many-records", with_records(client, *([server_a] * 8)), "LimitExceeded", "records"),
        ("thousand-records", with_records(*([server_a] * 1000)), "LimitExceeded", "records"),
        ("long-record", with_records(client, server_a.replace(b";z=", b";x=" + b"y" * 2000 + b";z=", 1), server_b),
         "LimitExceeded", "characters"),
        ("unknown-algorithm", edit_a(b";t=", b";a=ml-dsa-44;t="), "UnsupportedAlgorithm", "ml-dsa-44"),
        ("unknown-version", base.replace(NS.encode(), b"urn:xmpp:trust-path:2"), "UnsupportedVersion",
         "urn:xmpp:trust-path:2"),
        ("version-0-path", base.replace(NS.encode(), v0.encode()), "UnsupportedVersion", v0),
        ("duplicated-record", with_records(client, server_a, server_b, server_b), "MalformedStanza", "twice"),
        ("field-twice", edit_a(b";t=", b";c=pass;t="), "MalformedStanza", "twice"),
        ("field-without-value", edit_a(b";t=", b";novalue;t="), "MalformedStanza", "key=value"),
        ("signature-not-last", with_records(client, server_a + b";x=1", server_b), "MalformedStanza", "z="),
        ("bad-signature-encoding", edit_a(b";z=", b";z=!"), "MalformedStanza", "z="),
        ("bad-key", edit_a(b";k=", b";k=AAAA"), "MalformedStanza", "k="),
        ("bad-time", edit_a(b";t=", b";t=2026-11-25;x="), "MalformedStanza", "t="),
        ("bad-stored", with_records(client, server_a, server_b.replace(b";o=", b";st=yesterday;o=", 1)),
         "MalformedStanza", "st="),
        # only the server that delivers held the message (rule 28): the sending server's 'st'
        # would explain away the age of what it sends (issue 11)
        ("stored-on-the-sending-servers-record", edit_a(b";o=", b";st=1795424400;o="), "MalformedStanza", "st="),
        ("server-record-without-chain", edit_a(b";c=pass", b""), "MalformedStanza", "c="),
        ("bad-chain", edit_a(b";c=pass", b";c=passed"), "MalformedStanza", "c="),
        ("bad-key-source", edit_a(b";v=link", b";v=whatever"), "MalformedStanza", "v="),
        ("view-wrong-shape", edit_a(b";o=pin,pass,", b";o=pin,"), "MalformedStanza", "method,result,tls,spki"),
        ("view-spki-wrong-length", edit_a(b";o=pin,pass,1.3,", b";o=pin,pass,1.3,AAAA"), "MalformedStanza", "spki"),
        ("view-tls-unknown", edit_a(b";o=pin,pass,1.3,", b";o=pin,pass,1.1,"), "MalformedStanza", "tls"),
        ("removed-with-leading-zero", edit_a(b";o=", b";r=01;o="), "MalformedStanza", "r="),
        ("client-record-with-in-view", with_records(client.replace(b";o=", b";i=sasl,pass,1.3,AAAAAAAAAAAAAAAA;o=", 1),
                                                    server_a, server_b), "MalformedStanza", "out-view"),
        ("same-signer-twice", with_records(client, server_a, server_b.replace(b"s=b.example;", b"s=a.example;", 1)),
         "MalformedStanza", "out of order"),
        ("signer-not-on-path", with_records(client, server_a.replace(b"s=a.example;", b"s=c.example;", 1), server_b),
         "MalformedStanza", "not on this message's path"),
        ("records-out-of-order", with_records(server_a, client, server_b), "MalformedStanza", "out of order"),
        ("empty-path", base[:path_start] + b"<path xmlns='" + NS.encode() + b"'/>" + base[path_end:],
         "MalformedStanza", "empty"),
        ("path-with-child", base.replace(b"</path>", b"<x/></path>", 1), "MalformedStanza", "text only"),
        ("path-with-attribute", base.replace(b"<path ", b"<path n='1' ", 1), "MalformedStanza", "attributes"),
        ("record-not-ascii", with_records(client, server_a.replace(b"s=a.example", "s=ä.example".encode(), 1),
                                          server_b), "MalformedStanza", "ASCII"),
        ("comment", base.replace(b"<body>", b"<!-- hi --><body>", 1), "MalformedStanza", "comments"),
        ("two-paths", base.replace(b"</message>", path_xml + b"</message>"), "MalformedStanza", "more than one"),
        ("two-requires", base.replace(b"<body>", (b"<require xmlns='" + NS.encode() + b"' verdict='weak'/>") * 2
                                      + b"<body>", 1), "MalformedStanza", "more than one <require/>"),
        ("require-unknown-verdict", base.replace(b"<body>", b"<require xmlns='" + NS.encode()
                                                 + b"' verdict='perfect'/><body>", 1), "MalformedStanza", "require"),
        ("body-with-markup", base.replace(b"<body>", b"<body><b>bold</b>", 1), "MalformedStanza", "text only"),
        ("subject-with-markup", base.replace(b"<body>", b"<subject><b>bold</b></subject><body>", 1),
         "MalformedStanza", "text only"),
        ("two-reports", base.replace(b"<body>", (b"<report xmlns='" + NS.encode() + b"' for='m0'/>") * 2
                                     + b"<body>", 1), "MalformedStanza", "more than one <report/>"),
        ("two-payloads-of-one-token", base.replace(b"<body>", b"<x xmlns='jabber:x:oob'><url>https://a.example/1</url>"
                                                   b"</x><x xmlns='jabber:x:oob'><url>https://a.example/2</url></x>"
                                                   b"<body>", 1), "MalformedStanza", "more than one oob payload"),
        # a refusal's payload (XEP: Covered Payloads, token refusal): one <unverified-hop/>, whose
        # attributes are all signed; and a refusal's first record states nothing that arrived
        ("two-unverified-hops", base.replace(b"<body>", b"<error type='cancel' by='a.example'><policy-violation xmlns="
                                             b"'urn:ietf:params:xml:ns:xmpp-stanzas'/>"
                                             + (b"<unverified-hop xmlns='" + NS.encode() + b"' peer='b.example' "
                                                b"method='none' reason='not-verified'/>") * 2 + b"</error><body>", 1),
         "MalformedStanza", "more than one <unverified-hop/>"),
        ("unverified-hop-namespaced-attribute", base.replace(
            b"<body>", b"<error type='cancel' by='a.example'><policy-violation xmlns="
                       b"'urn:ietf:params:xml:ns:xmpp-stanzas'/><unverified-hop xmlns='" + NS.encode()
                       + b"' xmlns:x='urn:example:x' peer='b.example' method='none' reason='not-verified' "
                         b"x:peer='c.example'/></error><body>", 1), "MalformedStanza", "namespaced"),
        ("record-without-in-view-stating-stored", with_records(client, server_a, re.sub(
            rb";i=[^;]*;c=pass;v=s2s-pin", b";st=1795597200", server_b, count=1)), "MalformedStanza", "st="),
        ("forged-carbon", b"<message xmlns='jabber:client' from='mallory@evil.example/x' to='bob@b.example/desk'>"
                          b"<received xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'>" + base
                          + b"</forwarded></received></message>", "ForgedWrapper", "mallory@evil.example"),
        ("carbon-with-own-body", b"<message xmlns='jabber:client' from='bob@b.example' to='bob@b.example/desk'>"
                                 b"<body>Send the money</body><received xmlns='urn:xmpp:carbons:2'>"
                                 b"<forwarded xmlns='urn:xmpp:forward:0'>" + base
                                 + b"</forwarded></received></message>", "MalformedStanza", "own <body/>"),
    ]
    out = []
    for name, data, error, fragment in cases:
        (directory / f"{name}.xml").write_bytes(data)
        out.append({"file": f"{name}.xml", "error": error, "message_contains": fragment})
    _dump(directory / "index.json", {"anchor": "../scenarios/01-all-pinned.anchor.json",
                                     "now": "2026-11-25T09:00:05Z", "cases": out})
    return out


def write_findings(directory: FsPath) -> None:
    """Well-formed paths with one defect each, signed anew where needed so exactly one reason shows."""
    base_dir = directory.parent / "scenarios"
    stanza = (base_dir / "01-all-pinned.xml").read_bytes().rstrip(b"\n")
    anchor = json.loads((base_dir / "01-all-pinned.anchor.json").read_text())
    keys = KeyFactory(VECTOR_SEED)
    cases = []

    def case(name: str, data: bytes, anchor_data: dict[str, Any], verdict: str, hop: str | None, reason: str | None,
             now: str = "2026-11-25T09:00:05Z", note: str | None = None) -> None:
        (directory / f"{name}.xml").write_bytes(data + b"\n")
        _dump(directory / f"{name}.anchor.json", anchor_data)
        cases.append({"name": name, "stanza": f"{name}.xml", "anchor": f"{name}.anchor.json", "now": now,
                      "verdict": verdict, "hop": hop, "reason": reason, "note": note})

    def resign(edit: dict[int, dict[str, Any]], base: bytes = stanza) -> bytes:
        return resign_pinned(base, edit)

    later = "2026-12-25T09:00:00Z"
    other_key = keys.signing_key("server/b.example/2").public
    # body changed after every signature: the recipient's own server's signature fails
    case("body-changed-after-delivery", stanza.replace(b"pinned end to end", b"pinned end to END"), anchor,
         "untrusted", "H3", "tampered")
    # read a month later, when the anchor no longer lists the key: "key no longer known"
    other = dict(anchor, keys=[{"key": other_key, "alg": "ed25519", "status": "current"}])
    case("anchor-key-unknown-a-month-later", archived(stanza, to="bob@b.example/desk", stamp="2026-11-25T09:00:00Z"),
         other, "unknown", "H3", "key-unknown", now=later)
    case("live-stanza-a-month-old", stanza, anchor, "untrusted", "H3", "clock-skew", now=later)
    case("archived-a-month-later", archived(stanza, to="bob@b.example/desk", stamp="2026-11-25T09:00:00Z"),
         anchor, "trusted", None, None, now=later)
    # the same key set, but the record is fresh: it must name a current key
    case("unknown-key-on-a-live-message", stanza, other, "untrusted", "H3", "tampered")
    revoked = dict(anchor, keys=[dict(anchor["keys"][0], status="revoked", since="2026-11-25T08:00:00Z")])
    case("anchor-key-revoked", stanza, revoked, "untrusted", "H3", "key-revoked")
    # revoked, compromised only since after the message was archived: the archive still verifies
    revoked_later = dict(anchor, keys=[dict(anchor["keys"][0], status="revoked", since="2026-12-01T00:00:00Z"),
                                       {"key": other_key, "alg": "ed25519", "status": "current"}])
    case("anchor-key-revoked-after-archiving", archived(stanza, to="bob@b.example/desk",
                                                        stamp="2026-11-25T09:00:00Z"),
         revoked_later, "trusted", None, None, now=later)
    retired = dict(anchor, keys=[dict(anchor["keys"][0], status="retired", not_after="2026-11-25T08:00:00Z")])
    case("anchor-key-retired-before-signing", stanza, retired, "untrusted", "H3", "key-retired")
    case("record-from-the-future", stanza, anchor, "untrusted", "H3", "clock-skew", now="2026-11-25T07:00:00Z")
    # the recipient's own view of H3 disagrees with the key its server says it presented
    view = anchor["view"].split(",")
    spki = view[3]
    wrong = spki[:-1] + ("A" if spki[-1] != "A" else "B")
    wrong_view = dict(anchor, view=",".join(view[:3] + [wrong]))
    case("h3-key-mismatch", stanza, wrong_view, "untrusted", "H3", "key-mismatch")
    # the server's certificate was renewed since: an archived message is judged by today's connection
    case("h3-renewed-certificate-archive", archived(stanza, to="bob@b.example/desk", stamp="2026-11-25T09:00:00Z"),
         wrong_view, "trusted", None, None, now=later)
    # a room reflects a message with its own 'from': its path is never checked (rule 26)
    room = stanza.replace(b'from="alice@a.example/phone"', b'from="room@rooms.b.example/alice"', 1) \
        .replace(b'type="chat"', b'type="groupchat"', 1)
    case("groupchat-through-a-room", room, anchor, "unknown", "H1", "not-participating")
    private = stanza.replace(b'from="alice@a.example/phone"', b'from="room@rooms.b.example/alice"', 1) \
        .replace(b"</body>", b"</body><x xmlns='http://jabber.org/protocol/muc#user'/>", 1)
    case("private-message-through-a-room", private, anchor, "unknown", "H1", "not-participating")
    case("key-learned-on-first-use", resign({2: {"vouch": KeySource.TOFU}}), anchor, "weak", "H2",
         "weak-key-source")
    case("key-fetched-over-a-ca-link", resign({2: {"vouch": KeySource("s2s-pkix")}}), anchor, "weak", "H2",
         "weak-key-source")
    case("vouching-missing", resign({2: {"vouch": None}}), anchor, "untrusted", "H2", "chain-broken")
    case("delivered-to-another-account", resign({2: {"out_peer": "carol@b.example/desk"}}), anchor,
         "untrusted", "H3", "chain-broken")
    no_tls = {"tls": "none", "spki": None}
    case("h2-without-tls", resign({1: {"out": no_tls}, 2: {"in": no_tls}}), anchor, "untrusted", "H2",
         "starttls-not-supported")
    case("h2-certificate-not-trusted", resign({1: {"out": {"method": "pkix", "result": Result.FAIL,
                                                           "reason": "certificate-not-trusted"}}}), anchor,
         "untrusted", "H2", "certificate-not-trusted")
    case("h2-times-too-far-apart", resign({1: {"time": T0 + 600}}), anchor, "untrusted", "H2",
         "clock-skew")
    case("sender-client-unverified", resign({0: {"out": {"method": "none", "result": Result.NONE}}}), anchor,
         "untrusted", "H1", "not-verified")
    case("h1-without-channel-binding", resign({1: {"in": {"method": "sasl"}}}), anchor, "weak", "H1", "unbound")
    case("h1-pin-taken-on-first-use", resign({0: {"out": {"method": "tofu"}}}), anchor, "weak", "H1",
         "first-use-pin")
    case("sender-clock-a-day-off", resign({0: {"time": T0 - 86400}}), anchor, "trusted", None, None)
    a_key = keys.signing_key("server/a.example/1").public
    case("sending-server-found-an-unknown-client-key", resign({1: {"chain": Chain.FAIL, "chain_reason": "key-unknown",
                                                                   "vouch": None}}), anchor, "untrusted", "H1",
         "key-unknown")
    del a_key
    # b.example could not fetch a.example's keys (no answer): H2 is not described, not failed
    case("receiving-server-could-not-fetch-keys", resign({2: {"chain": Chain.FAIL, "chain_reason": "keys-unavailable",
                                                              "vouch": None}}), anchor, "unknown", "H2",
         "keys-unavailable")
    # the identity of a message without 'id' is its origin-id
    with_origin_id = stanza.replace(b' id="tp-0003"', b"", 1).replace(
        b"</body>", b"</body><origin-id xmlns='" + NS_SID.encode() + b"' id='tp-0003'/>", 1)
    case("origin-id-instead-of-id", resign({}, with_origin_id), anchor, "trusted", None, None)
    without_any = stanza.replace(b' id="tp-0003"', b"", 1)
    message = find_message(parse_stanza(without_any)).message
    remove_paths(message)
    case("message-without-id", serialize(message), anchor, "unknown", "H1", "no-id")
    # an id no verifier accepts is no id: nobody signs it, and it is unknown, not unreadable (rule 3)
    long_id = "tp-" + "x" * 254
    message = find_message(parse_stanza(stanza.replace(b' id="tp-0003"', f' id="{long_id}"'.encode(), 1))).message
    remove_paths(message)
    case("message-id-over-256-characters", serialize(message), anchor, "unknown", "H1", "no-id")
    # the limit counts characters, not bytes: 200 characters in 400 bytes are an id like any other
    wide_id = "é" * 200
    case("message-id-of-200-characters-in-400-bytes",
         resign({}, stanza.replace(b' id="tp-0003"', f' id="{wide_id}"'.encode(), 1)), anchor, "trusted", None, None)
    omemo = resign({}, (base_dir / "21-omemo.xml").read_bytes().rstrip(b"\n"))
    case("omemo-payload-changed", omemo.replace(b"ZW5jcnlwdGVkIHRleHQ=", b"ZW5jcnlwdGVkIHRleHR=", 1), anchor,
         "untrusted", "H3", "tampered")
    _dump(directory / "index.json", {"cases": cases})


def resign_pinned(stanza: bytes, edit: dict[int, dict[str, Any]]) -> bytes:
    """Scenario 1's stanza (or ``stanza``) with some fields of its records changed, every record
    signed anew with the fixed test keys (so that exactly the intended defect shows).

    ``edit`` maps a record's index to changes: ``{"in": {...}, "out": {...}}`` for view fields, and
    ``time``, ``vouch``, ``chain``, ``chain_reason``, ``out_peer`` for the record itself.
    """
    keys = KeyFactory(VECTOR_SEED)
    message = find_message(parse_stanza(stanza)).message
    path = decode_path(message)
    assert path is not None
    remove_paths(message)
    fields = message_fields(message)
    labels = {None: "client/alice@a.example/phone", "a.example": "server/a.example/1",
              "b.example": "server/b.example/1"}
    texts: list[str] = []
    for i, att in enumerate(path.records):
        change = dict(edit.get(i, {}))
        in_view = _view(att.in_view, change.pop("in", {}))
        out_view = _view(att.out_view, change.pop("out", {}))
        record = {"signer": att.signer, "time": att.time, "in_view": in_view, "chain": att.chain,
                  "chain_reason": att.chain_reason, "vouch": att.vouch, "removed": att.removed,
                  "out_view": out_view, "out_peer": att.out_peer, "stored": att.stored, "alg": att.alg, "extra": att.extra}
        record.update(change)
        signed = attest(fields, keys.signing_key(labels[att.signer]), previous=" ".join(texts), **record)
        texts.append(signed.text)
        add_record(message, signed)
    return serialize(message)


def _view(view: View | None, change: dict[str, Any]) -> View | None:
    return replace(view, **change) if view is not None else None


def archived(stanza: bytes, *, to: str, stamp: str) -> bytes:
    """``stanza`` as a MAM result from the recipient's own archive (XEP-0313)."""
    return (f"<message xmlns='jabber:client' to='{to}' id='mam-1'><result xmlns='urn:xmpp:mam:2' id='a1'>"
            f"<forwarded xmlns='urn:xmpp:forward:0'><delay xmlns='urn:xmpp:delay' stamp='{stamp}'/>").encode() \
        + stanza + b"</forwarded></result></message>"


def main(argv: list[str]) -> int:
    root = FsPath(argv[0] if argv else "spec/vectors")
    for sub in ("scenarios", "signing", "rejections", "findings", "receipts", "refusals", "server"):
        (root / sub).mkdir(parents=True, exist_ok=True)
        for old in (root / sub).iterdir():
            old.unlink()
    from ..cli import emit

    outcomes = run_all(seed=VECTOR_SEED, start=VECTOR_START)
    bad = [o for o in outcomes if not o.ok]
    if bad:
        print(f"scenarios not as required: {[o.name for o in bad]}", file=sys.stderr)
        return 1
    emit(outcomes, root / "scenarios")
    write_keys(root)
    write_signing(root / "signing", outcomes)
    write_rejections(root / "rejections")
    write_findings(root / "findings")
    write_server(root / "server")
    failed = write_receipts(root / "receipts")
    if failed:
        print(f"delivery reports not as required: {failed}", file=sys.stderr)
        return 1
    failed = write_refusals(root / "refusals")
    if failed:
        print(f"refusals not as required: {failed}", file=sys.stderr)
        return 1
    print(f"wrote test vectors to {root}/")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

__all__ = ["main", "resign_pinned", "archived"]
