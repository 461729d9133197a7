"""The server-rule vectors (``spec/vectors/server/``): what a participating server decides, as
data that the Python core and the Lua core the Prosody module ships both run.

Each case is a stanza as the server received it, the facts of its session, and what the server
must decide: which records it keeps of a local client's path (XEP: At the Sending Server), what it
states about what arrived from a remote domain and whether it refuses the message (XEP: At a
Receiving Server, Requiring Verified Hops), which hop a ``<require/>`` names, and what a pre-flight
answer holds.  Servers decide without checking signatures.  The intended result of every case is
written here by hand; :func:`write_server` checks that the Python core gives it before it writes.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path as FsPath
from typing import Any

from ..core.attest import attest
from ..core.codec import add_record, decode_path, find_message, find_path_element, message_fields, parse_stanza, \
    path_records, remove_paths, serialize
from ..core.keys import KeySet, KeyStatus, PublishedKey
from ..core.model import NS, Chain, KeySource, Result, View
from ..core.preflight import preflight_answer
from ..core.server import delivery_requirement_problem, filter_client_path, receive_chain, \
    received_requirement_problem, sending_requirement_problem, unmet_requirement
from ..testbed.sim.scenarios import VECTOR_SEED, VECTOR_START
from ..testbed.sim.tls import KeyFactory

ALICE = "alice@a.example/phone"


def _sigs(message: Any) -> list[str]:
    """The signatures in the path, read from the record texts: a receiving server passes on
    records it did not read, which a strict decoder would refuse."""
    path = find_path_element(message)
    return [] if path is None else [text.rsplit(";z=", 1)[-1] for text in path_records(path)]


def _scenario_message(directory: FsPath, stem: str) -> Any:
    return find_message(parse_stanza((directory.parent / "scenarios" / f"{stem}.xml").read_bytes())).message


def _arrived_at_b(directory: FsPath, stem: str) -> tuple[bytes, Any]:
    """What arrived at b.example in a scenario: its message without b.example's record, in
    jabber:server, and the record b.example then signed."""
    message = _scenario_message(directory, stem)
    path = decode_path(message)
    assert path is not None and path.records[-1].signer == "b.example"
    own = path.records[-1]
    remove_paths(message)
    for att in path.records[:-1]:
        add_record(message, att)
    data = serialize(message).replace(b'xmlns="jabber:client"', b'xmlns="jabber:server"', 1)
    return data, own


def write_server(directory: FsPath) -> list[dict[str, Any]]:
    """Write ``index.json`` and one stanza file per case into ``directory``; return the cases."""
    keys = KeyFactory(VECTOR_SEED)
    alice_key = keys.signing_key("client/alice@a.example/phone")
    a_keys = KeySet("a.example", (PublishedKey(keys.signing_key("server/a.example/1").public),))
    cases: list[dict[str, Any]] = []

    def write(name: str, data: bytes) -> str:
        (directory / f"{name}.xml").write_bytes(data.rstrip(b"\n") + b"\n")
        return f"{name}.xml"

    pinned = decode_path(_scenario_message(directory, "01-all-pinned"))
    assert pinned is not None
    client_view, h2_view = pinned.records[0].out_view, pinned.records[1].out_view

    # --- At the Sending Server -------------------------------------------------------------
    def from_alice(body: str = "Hello from the phone.", *, key: Any = alice_key, extra: tuple[Any, ...] = (),
                   server_record: bool = False, require: str | None = None, own_view: View | None = None,
                   unsigned: bool = False) -> bytes:
        required = f"<require xmlns='{NS}' verdict='{require}'/>" if require else ""
        message = parse_stanza(f"<message xmlns='jabber:client' to='bob@b.example' id='tp-s1' type='chat' "
                               f"from='{ALICE}'><body>{body}</body>{required}</message>".encode())
        fields = message_fields(message)
        texts = []
        if not server_record and not unsigned:
            own = attest(fields, key, out_view=own_view or client_view)
            add_record(message, own)
            texts.append(own.text)
        for signer_key in extra:
            forged = attest(fields, signer_key, previous=" ".join(texts), signer="a.example", time=VECTOR_START,
                            in_view=View("tls-unique", Result.PASS, "1.3", client_view.spki), chain=Chain.PASS,
                            out_view=h2_view)
            add_record(message, forged)
            texts.append(forged.text)
        return serialize(message)

    def sending(name: str, description: str, data: bytes, *, kept: bool, removed: int, chain: str,
                reason: str | None = None, session_key: str | None = alice_key.public,
                in_view: View | None = None, refusal: dict[str, str] | None = None) -> None:
        """With ``in_view`` (the server's view of the client's hop), also what a ``<require/>`` in
        the message meets at the sending server: the refusal it gets, or None."""
        message = parse_stanza(data)
        fields = message_fields(message)
        decision = filter_client_path(message, session_key)
        got = (decision.kept is not None, decision.removed, decision.chain.value,
               None if decision.chain_reason is None else str(decision.chain_reason))
        assert got == (kept, removed, chain, reason), (name, got)
        facts: dict[str, Any] = {"role": "sending", "session_key": session_key}
        expected: dict[str, Any] = {"kept": decision.kept.sig if decision.kept else None, "removed": removed,
                                    "chain": chain, "chain_reason": reason,
                                    "vouch": decision.vouch.value if decision.vouch else None, "path": _sigs(message)}
        if in_view is not None:
            assert fields.require is not None, name
            hop = sending_requirement_problem(fields.require, fields.sender, in_view, decision)
            assert (hop.attributes() if hop else None) == refusal, (name, hop)
            facts["view"] = in_view.text()
            expected["refusal"] = refusal
        cases.append({"name": name, "rule": "At the Sending Server", "description": description,
                      "stanza": write(name, data), "facts": facts, "expected": expected})

    forger = keys.signing_key("forger")
    sending("own-record-kept", "the client's own record, under the key its session announced, is kept; the server "
            "vouches for the key (v=link)", from_alice(), kept=True, removed=0, chain="pass")
    sending("forged-server-record-removed", "a record that claims to be the server's own is removed and counted; "
            "the client's own one is kept", from_alice(extra=(forger,)), kept=True, removed=1, chain="pass")
    sending("another-key", "the client's record names a key its session did not announce",
            from_alice(key=forger), kept=False, removed=0, chain="fail", reason="key-unknown")
    sending("no-key-announced", "the session announced no <client-key/>: no client record can be kept",
            from_alice(), kept=False, removed=0, chain="fail", reason="key-unknown", session_key=None)
    sending("only-a-server-record", "the client sent a server's record and none of its own",
            from_alice(extra=(forger,), server_record=True), kept=False, removed=1, chain="absent")
    two = parse_stanza(from_alice())
    second = attest(message_fields(two), alice_key, previous=decode_path(two).records[0].text,  # type: ignore[union-attr]
                    out_view=client_view)
    add_record(two, second)
    sending("two-client-records", "only the client's first record is kept", serialize(two), kept=True, removed=1,
            chain="pass")
    plain = b"<message xmlns='jabber:client' to='bob@b.example' id='tp-s1' type='chat' from='" + ALICE.encode() + \
        b"'><body>No path at all.</body></message>"
    sending("no-path", "a message without a path: nothing to keep", plain, kept=False, removed=0, chain="absent")
    unreadable = plain.replace(b"</message>", b"<path xmlns='" + NS.encode() + b"'>k=AAAA</path></message>")
    sending("unreadable-path-removed", "a path that cannot be decoded is removed, counted as one", unreadable,
            kept=False, removed=1, chain="absent")

    # --- Requiring Verified Hops at the sending server: the sender's hop (H1) ----------------
    bound = View("tls-unique", Result.PASS, "1.3", client_view.spki)
    unbound = replace(bound, method="sasl")
    device = replace(bound, method="device")
    for name, description, data, in_view, kept, chain, reason, refusal in (
            ("require-trusted-from-a-bound-login", "a pinned client on a login bound to its channel meets trusted",
             from_alice(require="trusted"), bound, True, "pass", None, None),
            ("require-trusted-from-a-device-key", "a key registered on an earlier connection binds the login too",
             from_alice(require="trusted"), device, True, "pass", None, None),
            ("require-trusted-from-an-unbound-login", "without channel binding the client's pin counts as ca only "
             "(unbound), as the verifier caps H1", from_alice(require="trusted"), unbound, True, "pass", None,
             {"peer": ALICE, "method": "sasl", "reason": "unbound", "required": "trusted"}),
            ("require-weak-from-an-unbound-login", "an unbound login meets weak",
             from_alice(require="weak"), unbound, True, "pass", None, None),
            ("require-trusted-from-a-ca-only-client", "the client checks its server against a CA only",
             from_alice(require="trusted", own_view=replace(client_view, method="pkix")), bound, True, "pass", None,
             {"peer": ALICE, "method": "pkix", "reason": "ca-only", "required": "trusted"}),
            ("require-weak-key-mismatch-on-h1", "the client saw another server key than the server presented: "
             "a man in the middle on H1", from_alice(require="weak", own_view=replace(client_view, spki="A" * 16)),
             bound, True, "pass", None, {"peer": ALICE, "method": "pin", "reason": "key-mismatch", "required": "weak"}),
            ("require-weak-without-a-client-record", "the client did not attest: H1 is described by one end only",
             from_alice(require="weak", unsigned=True), bound, False, "absent", None,
             {"peer": ALICE, "method": "tls-unique", "reason": "not-participating", "required": "weak"}),
            ("require-weak-client-record-under-another-key", "the client's record was dropped (a key its session "
             "did not announce)", from_alice(require="weak", key=forger), bound, False, "fail", "key-unknown",
             {"peer": ALICE, "method": "tls-unique", "reason": "key-unknown", "required": "weak"})):
        sending(name, description, data, kept=kept, removed=0, chain=chain, reason=reason, in_view=in_view,
                refusal=refusal)

    # --- At the Receiving Server ---------------------------------------------------------------
    def receiving(name: str, description: str, data: bytes, *, chain: str, reason: str | None = None,
                  vouch: str | None, takes_part: bool = True, keyset: KeySet | None = a_keys,
                  source: str = "s2s-pin", in_view: View = h2_view, signed: Any = None,
                  refusal: dict[str, str] | None = None, unavailable: bool = False) -> None:
        message = parse_stanza(data)
        fields = message_fields(message)
        decision = receive_chain(message, origin="a.example", takes_part=takes_part, keys=keyset,
                                 key_source=KeySource(source), keys_unavailable=unavailable)
        got = (decision.chain.value, None if decision.chain_reason is None else str(decision.chain_reason),
               decision.vouch.value if decision.vouch else None)
        assert got == (chain, reason, vouch), (name, got)
        if signed is not None:  # what b.example signed in the scenario
            assert (signed.chain, signed.chain_reason, signed.vouch) == (decision.chain, decision.chain_reason,
                                                                         decision.vouch), (name, signed.text)
        hop = received_requirement_problem(fields.require, "a.example", in_view, decision) if fields.require \
            else None
        assert (hop.attributes() if hop else None) == refusal, (name, hop)
        cases.append({
            "name": name, "rule": "At the Receiving Server", "description": description, "stanza": write(name, data),
            "facts": {"role": "receiving", "origin": "a.example", "takes_part": takes_part,
                      "keys": [k.to_json() for k in keyset.keys] if keyset is not None else [],
                      "keys_unavailable": unavailable, "key_source": source, "view": in_view.text()},
            "expected": {"chain": chain, "chain_reason": reason, "vouch": vouch, "refetch": decision.refetch,
                         "path": _sigs(message), "refusal": refusal},
        })

    for stem, chain, reason, vouch, takes_part, source, text in (
            ("01-all-pinned", "pass", None, "s2s-pin", True, "s2s-pin", "a.example's record names its published key"),
            ("02-h2-ca-only", "pass", None, "s2s-pkix", True, "s2s-pkix",
             "the keys were fetched over a link checked by a CA only: the vouching says so"),
            ("05-ss-not-participating", "absent", None, None, False, "s2s-pkix",
             "a.example does not take part and sent no record"),
            ("06-ss-stripped", "stripped", None, None, True, "s2s-pin",
             "a.example takes part, but its record is not there"),
            ("07-body-tampered", "pass", None, "s2s-pin", True, "s2s-pin",
             "the body changed after a.example signed: the server does not check signatures, the recipient does"),
            ("14-clock-skew", "pass", None, "s2s-pin", True, "s2s-pin",
             "a.example's clock is three hours slow: the recipient compares the times")):
        data, own = _arrived_at_b(directory, stem)
        receiving(f"arrived-{stem[3:]}", f"scenario {int(stem[:2])}: {text}", data, chain=chain, reason=reason,
                  vouch=vouch, takes_part=takes_part, source=source, signed=own)
    poisoned = KeySet("a.example", (PublishedKey(keys.signing_key("mitm/a.example").public),))
    data, own = _arrived_at_b(directory, "20-key-fetch-poisoned")
    receiving("arrived-key-fetch-poisoned", "scenario 20: the keys b.example fetched are a man in the middle's: "
              "a.example's record names a key not among them, even after fetching again", data, chain="fail",
              reason="key-unknown", vouch=None, keyset=poisoned, source="s2s-pkix", signed=own)
    data, _ = _arrived_at_b(directory, "01-all-pinned")
    only_alice = parse_stanza(data)
    records = decode_path(only_alice)
    assert records is not None
    remove_paths(only_alice)
    add_record(only_alice, records.records[0])
    receiving("origin-not-last-signer", "the last record is not a.example's: it takes part, so it was stripped",
              serialize(only_alice), chain="stripped", vouch=None)
    receiving("unreadable-path", "the last record's 's' cannot be read: the path is removed; what arrived fails as "
              "malformed", data.replace(b"s=a.example;", b"s=;", 1), chain="fail", reason="malformed", vouch=None)
    # The server reads only the last record's s, t, k and z: a record it does not read goes on
    # unchanged, and the recipient, which decodes every record, refuses the stanza.
    receiving("earlier-record-not-read", "the client's record breaks the record format: the receiving server reads "
              "only the last record's 's', 't', 'k' and 'z', and passes the path on for the recipient to refuse",
              data.replace(b";o=pin,pass,", b";o=pin,pass,,", 1), chain="pass", vouch="s2s-pin")
    receiving("last-record-view-not-read", "a.example's record has an unreadable 'o': the receiving server does not "
              "read it; the recipient refuses the stanza", data.replace(b";o=pin,pass,1.3,5PxfJwOFRGv/usd9;", b";o=pin;", 1),
              chain="pass", vouch="s2s-pin")
    a_record = data.index(b"s=a.example;")
    stored = data[:a_record] + data[a_record:].replace(b";o=", b";st=1795424400;o=", 1)
    receiving("stored-on-the-sending-servers-record", "a.example's record states 'st=' (held for two days): only the "
              "server that delivers may, so the path is removed and what arrived fails as malformed",
              stored, chain="fail", reason="malformed", vouch=None)
    rotated = KeySet("a.example", (PublishedKey(keys.signing_key("server/a.example/2").public),
                                   PublishedKey(a_keys.keys[0].key, KeyStatus.RETIRED, "2026-11-25T09:05:00Z")))
    receiving("key-still-published", "a.example rotated its key after signing, and still publishes the old one",
              data, chain="pass", vouch="s2s-pin", keyset=rotated)
    ahead = KeySet("a.example", (PublishedKey(keys.signing_key("server/a.example/2").public),
                                 PublishedKey(a_keys.keys[0].key, KeyStatus.NEXT)))
    receiving("signed-with-the-next-key", "a.example signs with the key it published as its next one (a "
              "rotation in progress): the key is published, so what arrived passes", data, chain="pass",
              vouch="s2s-pin", keyset=ahead)
    receiving("keys-unavailable", "fetching a.example's keys failed (no answer): nothing is known against the "
              "key its record names, so the chain says the keys were unavailable, not that the key is unknown",
              data, chain="fail", reason="keys-unavailable", vouch=None, keyset=None, unavailable=True)
    revoked = KeySet("a.example", (PublishedKey(keys.signing_key("server/a.example/2").public),
                                   PublishedKey(a_keys.keys[0].key, KeyStatus.REVOKED, since="2026-11-20T00:00:00Z")))
    receiving("key-revoked", "a.example revoked the key its record names: what arrived fails, whatever the key's "
              "signatures say", data, chain="fail", reason="key-revoked", vouch=None, keyset=revoked)
    required = _with_require(_arrived_at_b(directory, "02-h2-ca-only")[0], "trusted", keys)
    ca_view = decode_path(_scenario_message(directory, "02-h2-ca-only")).records[2].in_view  # type: ignore[union-attr]
    receiving("require-trusted-over-a-ca-link", "the sender required trusted hops; H2 is checked by a CA only",
              required, chain="pass", vouch="s2s-pkix", source="s2s-pkix", in_view=ca_view,
              refusal={"peer": "a.example", "method": "pkix", "reason": "ca-only", "required": "trusted"})
    receiving("require-trusted-keys-learned-over-a-ca-link", "H2 is pinned, but b.example learned a.example's keys "
              "over a link checked by a CA only: the key source caps the hop at ca", required, chain="pass",
              vouch="s2s-pkix", source="s2s-pkix",
              refusal={"peer": "a.example", "method": "pin", "reason": "weak-key-source", "required": "trusted"})
    stripped = parse_stanza(_with_require(data, "weak", keys))
    records = decode_path(stripped)
    assert records is not None
    remove_paths(stripped)
    add_record(stripped, records.records[0])
    receiving("require-weak-but-stripped", "the sender required weak; a.example's record is missing",
              serialize(stripped), chain="stripped", vouch=None,
              refusal={"peer": "a.example", "method": "pin", "reason": "stripped", "required": "weak"})

    # --- Requiring Verified Hops: the hop a refusal names -------------------------------------
    for name, required, views, expected in (
            ("require-trusted-pinned", "trusted", [h2_view], None),
            ("require-trusted-ca-only", "trusted", [replace(h2_view, method="pkix")], "ca-only"),
            ("require-trusted-first-use-pin", "trusted", [replace(h2_view, method="tofu")], "first-use-pin"),
            ("require-weak-ca-only", "weak", [replace(h2_view, method="pkix")], None),
            ("require-weak-dialback", "weak", [replace(h2_view, method="dialback")], "dialback-only"),
            ("require-weak-without-tls", "weak", [replace(h2_view, tls="none", spki=None)], "starttls-not-supported"),
            ("require-weak-pin-mismatch", "weak", [replace(h2_view, result=Result.FAIL, reason="pin-mismatch")],
             "pin-mismatch"),
            ("require-weak-not-verified", "weak", [replace(h2_view, method="none", result=Result.NONE)],
             "not-verified"),
            ("require-trusted-second-hop", "trusted", [h2_view, replace(client_view, method="pkix")], "ca-only")):
        peers = ["b.example", "a.example"]
        hop = unmet_requirement(required, zip(peers, views))
        assert (hop.reason if hop else None) == expected, (name, hop)
        cases.append({"name": name, "rule": "Requiring Verified Hops",
                      "description": f"<require verdict='{required}'/> over {', '.join(v.method for v in views)}",
                      "facts": {"role": "require", "required": required,
                                "hops": [{"peer": p, "view": v.text()} for p, v in zip(peers, views)]},
                      "expected": {"hop": hop.attributes() if hop else None}})

    # --- Requiring Verified Hops at the recipient's server: the last hop ---------------------
    bob = "bob@b.example/desk"
    last_server = View("tls-unique", Result.PASS, "1.3", h2_view.spki)
    last_client = replace(last_server, method="pin")
    for name, required, server_view, announced, expected in (
            ("last-hop-trusted-pinned-and-bound", "trusted", last_server, last_client, None),
            ("last-hop-trusted-device-key", "trusted", replace(last_server, method="device"), last_client, None),
            ("last-hop-trusted-ca-only-client", "trusted", last_server, replace(last_client, method="pkix"), "ca-only"),
            ("last-hop-weak-ca-only-client", "weak", last_server, replace(last_client, method="pkix"), None),
            ("last-hop-trusted-unbound-login", "trusted", replace(last_server, method="sasl"), last_client, "unbound"),
            ("last-hop-weak-unbound-login", "weak", replace(last_server, method="sasl"), last_client, None),
            ("last-hop-weak-no-view-announced", "weak", last_server, None, "not-participating"),
            ("last-hop-trusted-first-use-pin", "trusted", last_server, replace(last_client, method="tofu"),
             "first-use-pin"),
            ("last-hop-weak-key-mismatch", "weak", last_server, replace(last_client, spki="A" * 16), "key-mismatch"),
            ("last-hop-weak-client-saw-no-tls", "weak", last_server,
             View("none", Result.NONE, "none"), "starttls-not-supported")):
        hop = delivery_requirement_problem(required, bob, server_view, announced)
        assert (hop.reason if hop else None) == expected, (name, hop)
        cases.append({"name": name, "rule": "Requiring Verified Hops",
                      "description": f"<require verdict='{required}'/> on the last hop to {bob}: this server's view "
                                     f"{server_view.text()}, the client's "
                                     + (announced.text() if announced else "not announced"),
                      "facts": {"role": "delivery", "required": required, "recipient": bob,
                                "server_view": server_view.text(),
                                "client_view": announced.text() if announced else None},
                      "expected": {"hop": hop.attributes() if hop else None}})

    # --- Pre-flight Query: what a server answers ---------------------------------------------
    for name, takes_part, view, keeps in (
            ("preflight-pinned-link", True, h2_view, True),
            ("preflight-not-known", None, h2_view, True),
            ("preflight-failed-link", False, replace(h2_view, result=Result.FAIL, reason="pin-mismatch"), True),
            ("preflight-view-without-spki", True, replace(h2_view, spki=None), False),
            ("preflight-no-link", True, None, False)):
        answer = preflight_answer("b.example", takes_part, view)
        assert (answer.link is not None) == keeps, name
        cases.append({"name": name, "rule": "Pre-flight Query", "description": "what a.example's pre-flight answer holds",
                      "facts": {"role": "preflight", "domain": "b.example", "takes_part": takes_part,
                                "view": _raw_view(view)},
                      "expected": {"domain": "b.example", "takes_part": takes_part,
                                   "link": answer.link.text() if answer.link else None}})
    (directory / "index.json").write_text(json.dumps({"comment": __doc__.split("\n\n")[1].replace("\n", " "),
                                                      "cases": cases}, indent=2, ensure_ascii=False) + "\n",
                                          encoding="utf-8")
    return cases


def _raw_view(view: View | None) -> dict[str, str | None] | None:
    """A view as its parts, so that even one a server must not answer with can be written down."""
    if view is None:
        return None
    return {"method": view.method, "result": view.reason or view.result.value, "tls": view.tls, "spki": view.spki}


def _with_require(data: bytes, verdict: str, keys: KeyFactory) -> bytes:
    """What arrived at b.example, with ``<require verdict=.../>`` added and signed again by alice and a.example."""
    message = parse_stanza(data)
    path = decode_path(message)
    assert path is not None
    remove_paths(message)
    message.append(parse_stanza(f"<require xmlns='{NS}' verdict='{verdict}'/>".encode()))
    fields = message_fields(message)
    labels = {None: "client/alice@a.example/phone", "a.example": "server/a.example/1"}
    texts: list[str] = []
    for att in path.records:
        signed = attest(fields, keys.signing_key(labels[att.signer]), previous=" ".join(texts), signer=att.signer,
                        time=att.time, in_view=att.in_view, chain=att.chain, chain_reason=att.chain_reason,
                        vouch=att.vouch, removed=att.removed, out_view=att.out_view, out_peer=att.out_peer)
        texts.append(signed.text)
        add_record(message, signed)
    return serialize(message)


__all__ = ["write_server"]
