"""Write the published test vectors (``spec/vectors``): ``python -m trustpath.tools.vectors DIR``.

Everything is fixed (keys derived from a published seed, a fixed clock, fixed message
ids), so the files are the same on every run and another implementation can reproduce
each signature byte for byte: Ed25519 is deterministic.
"""

from __future__ import annotations

import base64
import json
import sys
from dataclasses import replace
from pathlib import Path as FsPath
from typing import Any

from ..core.attest import attest
from ..core.codec import attestation_element, decode_path, find_message, message_fields, parse_stanza, serialize
from ..core.keys import verify_signature
from ..core.model import NS, KeySource, Result
from ..core.signing import signing_input
from ..testbed.scenarios import Outcome, file_stem
from ..testbed.sim.scenarios import VECTOR_SEED, VECTOR_START, run_all
from ..testbed.sim.tls import KeyFactory
from .server_vectors import write_server

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
                      "base64. Each seed is SHA-256(vector seed || '/ed25519/' || label).",
           "vector_seed": VECTOR_SEED.decode(), "keys": []}
    for signer, label in SIGNERS.items():
        key = keys.signing_key(label)
        out["keys"].append({"signer": signer, "label": label, "private_seed_hex": key.seed().hex(),
                            "public": key.public})
    _dump(directory / "keys.json", out)


def _signing_entries(stanza: bytes, anchor: Any) -> list[dict[str, Any]] | None:
    """Each attestation of ``stanza``: its exact signing input, key and signature."""
    keys = {k.public: k for k in (KeyFactory(VECTOR_SEED).signing_key(lbl) for lbl in SIGNERS.values())}
    by_signer = {s: KeyFactory(VECTOR_SEED).signing_key(lbl).public for s, lbl in SIGNERS.items()}
    message = find_message(parse_stanza(stanza)).message
    fields = message_fields(message)
    path = decode_path(message)
    if path is None:
        return None
    entries = []
    atts = path.attestations
    for i, att in enumerate(atts):
        data = signing_input(fields, atts[i - 1].sig if i else "", att)
        vouched = atts[i + 1].prev_key if i + 1 < len(atts) else None
        if vouched is None and att.signer == anchor.server:
            vouched = next((k.key for k in anchor.keys.keys if verify_signature(k.key, att.sig, data)),
                           anchor.keys.keys[0].key)
        # who vouched for the key: the next attestation, the anchor, or nobody (a gap in the path)
        public = vouched or by_signer.get(att.signer)
        resign = keys[public].sign(data) if public in keys else None
        entries.append({"index": i, "signer": att.signer, "signing_input": data.decode("utf-8"),
                        "signing_input_base64": base64.b64encode(data).decode(),
                        "public_key": public, "vouched": vouched is not None, "sig": att.sig,
                        "reproducible": resign == att.sig})
    return entries


def write_signing(directory: FsPath, outcomes: list[Outcome]) -> None:
    """Per delivered scenario: each attestation's exact signing input and its signature."""
    for o in outcomes:
        if not o.delivered or o.stanza is None:
            continue
        entries = _signing_entries(o.stanza, o.anchor)
        if entries is None:
            continue
        _dump(directory / f"{file_stem(o)}.json", {"scenario": o.number, "name": o.name, "attestations": entries})


def write_receipts(directory: FsPath) -> list[str]:
    """Per delivery-report case: the receipt as the sender's client received it, its anchor, what
    the sender may show, and the signing input of each attestation.  Returns the failed cases."""
    from ..core.anchor import anchor_to_json
    from ..testbed.sim.receipts import BOB_BARE, run_receipts

    failed = []
    index = []
    for o in run_receipts(seed=VECTOR_SEED, start=VECTOR_START):
        case = o.case
        if not o.ok or o.stanza is None or o.anchor is None or o.delivery is None:
            failed.append(f"{case.name}: {'; '.join(o.problems) or 'nothing arrived'}")
            continue
        (directory / f"{case.name}.xml").write_bytes(o.stanza + b"\n")
        _dump(directory / f"{case.name}.anchor.json", anchor_to_json(o.anchor))
        _dump(directory / f"{case.name}.expected.json",
              {"name": case.name, "title": case.title, "now": o.now, "sent_to": BOB_BARE, "sent_id": o.sent_id,
               "sent_origin": o.sent_origin, "verdict": case.verdict.value, "reported": case.reported.value,
               "receipt": case.receipt.value, "limited_by": case.limited_by})
        _dump(directory / f"{case.name}.signing.json",
              {"name": case.name, "attestations": _signing_entries(o.stanza, o.anchor)})
        index.append({"name": case.name, "title": case.title, "verdict": case.verdict.value,
                      "limited_by": case.limited_by})
    _dump(directory / "index.json", index)
    return failed


def write_rejections(directory: FsPath) -> list[dict[str, Any]]:
    """Inputs every verifier must refuse (exit status 2 from `trustpath verify`), with why."""
    base = (directory.parent / "scenarios" / "01-all-pinned.xml").read_bytes().rstrip(b"\n")
    message = find_message(parse_stanza(base)).message
    path_start = base.index(b"<path")
    path_end = base.index(b"</path>") + len(b"</path>")
    path_xml = base[path_start:path_end]
    first_att = path_xml[path_xml.index(b"<attestation"):path_xml.index(b"</attestation>") + len(b"</attestation>")]
    cases: list[tuple[str, bytes, str, str]] = [
        ("dtd", b"<?xml version='1.0'?><!DOCTYPE message [<!ENTITY x 'y'>]>" + base, "MalformedStanza",
         "DTD"),
        ("entity-expansion", b"<!DOCTYPE m [<!ENTITY a 'aaaaaaaaaa'><!ENTITY b '&a;&a;&a;&a;&a;'>]>" + base,
         "MalformedStanza", "DTD"),
        ("not-xml", base[:-20], "MalformedStanza", "well-formed"),
        ("not-a-message", base.replace(b"<message ", b"<presence ", 1).replace(b"</message>", b"</presence>"),
         "MalformedStanza", "message"),
        ("huge-1MB", base.replace(b"<body>", b"<body>" + b"x" * 1_048_576, 1), "LimitExceeded", "bytes"),
        ("deep-nesting", base.replace(b"</body>", b"</body>" + b"<x>" * 40 + b"</x>" * 40, 1), "LimitExceeded",
         "deeper"),
        ("too-many-attestations", base.replace(b"</path>", first_att * 9 + b"</path>"), "LimitExceeded",
         "attestations"),
        ("thousand-attestations", base.replace(b"</path>", first_att * 1000 + b"</path>"), "LimitExceeded", ""),
        ("unknown-algorithm", base.replace(b"<attestation signer", b"<attestation alg=\"ml-dsa-44\" signer", 1),
         "UnsupportedAlgorithm", "ml-dsa-44"),
        ("unknown-version", base.replace(NS.encode(), b"urn:xmpp:trust-path:1"), "UnsupportedVersion",
         "urn:xmpp:trust-path:1"),
        ("duplicated-attestation", base.replace(b"</path>", first_att + b"</path>"), "MalformedStanza",
         "twice"),
        ("unknown-attribute", base.replace(b"<attestation signer", b"<attestation extra=\"1\" signer", 1),
         "MalformedStanza", "unknown attribute"),
        ("bad-signature-encoding", base.replace(b'sig="', b'sig="!', 1), "MalformedStanza", "sig"),
        ("bad-time", base.replace(b'time="2026-11-25T09:00:00Z"', b'time="2026-11-25 09:00"', 1),
         "MalformedStanza", "time"),
        ("comment", base.replace(b"<body>", b"<!-- hi --><body>", 1), "MalformedStanza", "comments"),
        ("two-paths", base.replace(b"</message>", path_xml + b"</message>"), "MalformedStanza",
         "more than one"),
        ("two-requires", base.replace(b"<body>", b"<require xmlns='urn:xmpp:trust-path:0' verdict='weak'/>" * 2
                                      + b"<body>", 1), "MalformedStanza", "more than one <require/>"),
        ("require-unknown-verdict", base.replace(b"<body>", b"<require xmlns='urn:xmpp:trust-path:0' "
                                                 b"verdict='perfect'/><body>", 1), "MalformedStanza", "require"),
        ("in-without-chain", base.replace(b' chain="pass"', b"", 1), "MalformedStanza", "chain"),
        ("same-signer-twice", base.replace(b'signer="b.example"', b'signer="a.example"', 1), "MalformedStanza",
         "duplicated"),
        ("empty-path", base[:path_start] + b"<path xmlns='urn:xmpp:trust-path:0'/>" + base[path_end:],
         "MalformedStanza", "empty"),
        ("bad-stored", base.replace(b'<attestation signer="b.example"', b'<attestation stored="yesterday" '
                                    b'signer="b.example"', 1), "MalformedStanza", "stored"),
        ("bad-prev-key", base.replace(b'prev-key="', b'prev-key="AAAA', 1), "MalformedStanza", "prev-key"),
        ("removed-with-leading-zero", base.replace(b' chain="pass"', b' chain="pass" removed="01"', 1),
         "MalformedStanza", "removed"),
        ("removed-not-ascii", base.replace(b' chain="pass"', ' chain="pass" removed="²"'.encode(), 1),
         "MalformedStanza", "removed"),
        ("body-with-markup", base.replace(b"<body>", b"<body><b>bold</b>", 1), "MalformedStanza", "text only"),
        ("forged-carbon", b"<message xmlns='jabber:client' from='mallory@evil.example/x' to='bob@b.example/desk'>"
                          b"<received xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'>" + base
                          + b"</forwarded></received></message>", "ForgedWrapper", "mallory@evil.example"),
        ("carbon-with-own-body", b"<message xmlns='jabber:client' from='bob@b.example' to='bob@b.example/desk'>"
                                 b"<body>Send the money</body><received xmlns='urn:xmpp:carbons:2'>"
                                 b"<forwarded xmlns='urn:xmpp:forward:0'>" + base
                                 + b"</forwarded></received></message>", "MalformedStanza", "own <body/>"),
    ]
    del message
    out = []
    for name, data, error, fragment in cases:
        (directory / f"{name}.xml").write_bytes(data)
        out.append({"file": f"{name}.xml", "error": error, "message_contains": fragment})
    _dump(directory / "index.json", {"anchor": "../scenarios/01-all-pinned.anchor.json",
                                     "now": "2026-11-25T09:00:05Z", "cases": out})
    return out


def write_findings(directory: FsPath) -> None:
    """Well-formed paths with one defect each, re-signed where needed so exactly one reason shows."""
    base_dir = directory.parent / "scenarios"
    stanza = (base_dir / "01-all-pinned.xml").read_bytes().rstrip(b"\n")
    anchor = json.loads((base_dir / "01-all-pinned.anchor.json").read_text())
    keys = KeyFactory(VECTOR_SEED)
    cases = []

    def case(name: str, data: bytes, anchor_data: dict[str, Any], verdict: str, hop: str | None, reason: str | None,
             now: str = "2026-11-25T09:00:05Z") -> None:
        (directory / f"{name}.xml").write_bytes(data + b"\n")
        _dump(directory / f"{name}.anchor.json", anchor_data)
        cases.append({"name": name, "stanza": f"{name}.xml", "anchor": f"{name}.anchor.json", "now": now,
                      "verdict": verdict, "hop": hop, "reason": reason})

    # body changed after every signature: the recipient's own server's signature fails
    case("body-changed-after-delivery", stanza.replace(b"pinned end to end", b"pinned end to END"), anchor,
         "untrusted", "H3", "tampered")
    # read a month later, when the anchor no longer lists the key: "key no longer known"
    other = dict(anchor, keys=[{"key": keys.signing_key("server/b.example/2").public, "status": "current"}])
    case("anchor-key-unknown-a-month-later", archived(stanza, to="bob@b.example/desk", stamp="2026-11-25T09:00:00Z"),
         other, "unknown", "H3", "key-unknown", now="2026-12-25T09:00:00Z")
    case("live-stanza-a-month-old", stanza, anchor, "untrusted", "H3", "clock-skew", now="2026-12-25T09:00:00Z")
    case("archived-a-month-later", archived(stanza, to="bob@b.example/desk", stamp="2026-11-25T09:00:00Z"),
         anchor, "trusted", None, None, now="2026-12-25T09:00:00Z")
    # the same key set, but the attestation is fresh: it must verify with a current key
    case("unknown-key-on-a-live-message", stanza, other, "untrusted", "H3", "tampered")
    revoked = dict(anchor, keys=[dict(anchor["keys"][0], status="revoked")])
    case("anchor-key-revoked", stanza, revoked, "untrusted", "H3", "key-revoked")
    retired = dict(anchor, keys=[dict(anchor["keys"][0], status="retired", not_after="2026-11-25T08:00:00Z")])
    case("anchor-key-retired-before-signing", stanza, retired, "untrusted", "H3", "key-retired")
    # verified in the far future is fine (archive); verified in the past means the attestation is from the future
    case("attestation-from-the-future", stanza, anchor, "untrusted", "H3", "clock-skew", now="2026-11-25T07:00:00Z")
    # the recipient's own view of H3 disagrees with the key its server says it presented
    wrong_view = dict(anchor, view=dict(anchor["view"], spki=anchor["view"]["spki"][:-2] + ("A=" if
                                                                                           anchor["view"]["spki"][-2] != "A" else "E=")))
    case("h3-key-mismatch", stanza, wrong_view, "untrusted", "H3", "key-mismatch")
    # a room reflects a message with its own 'from': a groupchat message's path is never checked (rule 57)
    room = stanza.replace(b'from="alice@a.example/phone"', b'from="room@rooms.b.example/alice"', 1) \
        .replace(b'type="chat"', b'type="groupchat"', 1)
    assert room.count(b"groupchat") == 1 and b"room@rooms.b.example/alice" in room
    case("groupchat-through-a-room", room, anchor, "unknown", "H1", "not-participating")
    # only the type changed: the sender's own attestation shows no room reflected it, so it is checked
    case("chat-retyped-as-groupchat", stanza.replace(b'type="chat"', b'type="groupchat"', 1), anchor,
         "untrusted", "H3", "tampered")
    # the sender server's attestation removed, and the rest re-signed by a server that does not notice
    message = find_message(parse_stanza(stanza)).message
    fields = message_fields(message)
    path = decode_path(message)
    assert path is not None
    sc, ss, rs = path.attestations
    b_key = keys.signing_key("server/b.example/1")
    forged_order = attest(fields, b_key, signer=rs.signer, time=rs.time, previous=ss, prev_key=ss.prev_key,
                          in_view=rs.in_view, out_view=rs.out_view)
    swapped = _with_attestations(message, (ss, sc, forged_order))
    case("attestations-reordered", swapped, anchor, "untrusted", None, None)

    def resign(edit: dict[int, dict[str, Any]]) -> bytes:
        return resign_pinned(stanza, edit)

    case("key-learned-on-first-use", resign({2: {"in": {"key_source": KeySource.TOFU}}}), anchor, "weak", "H2",
         "weak-key-source")
    case("vouching-without-prev-key", resign({2: {"prev_key": None}}), anchor, "untrusted", "H2", "chain-broken")
    case("delivered-to-another-account", resign({2: {"out": {"peer": "carol@b.example/desk"}}}), anchor,
         "untrusted", "H3", "chain-broken")
    case("h2-without-tls", resign({1: {"out": {"tls": "none", "spki": None, "cipher": None}},
                                   2: {"in": {"tls": "none", "spki": None, "cipher": None}}}), anchor,
         "untrusted", "H2", "starttls-not-supported")
    case("h2-certificate-not-trusted", resign({1: {"out": {"method": "pkix", "result": Result.FAIL,
                                                           "reason": "certificate-not-trusted"}}}), anchor,
         "untrusted", "H2", "certificate-not-trusted")
    case("h2-times-too-far-apart", resign({1: {"time": "2026-11-25T09:10:00Z"}}), anchor, "untrusted", "H2",
         "clock-skew")
    case("h1-channel-binding", resign({1: {"in": {"cb": "tls-exporter"}}}), anchor, "trusted", None, None)
    case("sender-client-unverified", resign({0: {"out": {"method": "none", "result": Result.NONE}}}), anchor,
         "untrusted", "H1", "not-verified")
    _dump(directory / "index.json", {"cases": cases})


def resign_pinned(stanza: bytes, edit: dict[int, dict[str, Any]]) -> bytes:
    """Scenario 1's stanza with some fields of its attestations changed, every one signed anew
    with the fixed test keys (so that exactly the intended defect shows).

    ``edit`` maps an attestation index to changes: ``{"in": {...}, "out": {...}}`` for view
    fields, ``"prev_key"`` and ``"time"`` for the attestation itself.
    """
    keys = KeyFactory(VECTOR_SEED)
    message = find_message(parse_stanza(stanza)).message
    fields = message_fields(message)
    path = decode_path(message)
    assert path is not None
    labels = ["client/alice@a.example/phone", "server/a.example/1", "server/b.example/1"]
    out: list[Any] = []
    for i, (att, label) in enumerate(zip(path.attestations, labels)):
        change = edit.get(i, {})
        in_view = replace(att.in_view, **change.get("in", {})) if att.in_view else None
        out_view = replace(att.out_view, **change.get("out", {})) if att.out_view else None
        previous = out[-1] if out else None
        prev_key = change.get("prev_key", att.prev_key) if previous else None
        out.append(attest(fields, keys.signing_key(label), signer=att.signer, time=change.get("time", att.time),
                          previous=previous, prev_key=prev_key, in_view=in_view, out_view=out_view))
    return _with_attestations(message, tuple(out))


def archived(stanza: bytes, *, to: str, stamp: str) -> bytes:
    """``stanza`` as a MAM result from the recipient's own archive (XEP-0313)."""
    return (f"<message xmlns='jabber:client' to='{to}' id='mam-1'><result xmlns='urn:xmpp:mam:2' id='a1'>"
            f"<forwarded xmlns='urn:xmpp:forward:0'><delay xmlns='urn:xmpp:delay' stamp='{stamp}'/>").encode() \
        + stanza + b"</forwarded></result></message>"


def _with_attestations(message: Any, atts: tuple) -> bytes:  # type: ignore[type-arg]
    import copy

    out = copy.deepcopy(message)
    path = out.find(f"{{{NS}}}path")
    for child in list(path):
        path.remove(child)
    for att in atts:
        path.append(attestation_element(att))
    return serialize(out)


def main(argv: list[str]) -> int:
    root = FsPath(argv[0] if argv else "spec/vectors")
    for sub in ("scenarios", "signing", "rejections", "findings", "receipts", "server"):
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
    print(f"wrote test vectors to {root}/")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

__all__ = ["archived", "main", "resign_pinned"]
