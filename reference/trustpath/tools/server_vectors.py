"""The server-rule vectors (``spec/vectors/server/``): what a participating server decides, as
data that the Python core and the Lua core the Prosody module ships both run.

Each case is a stanza as the server received it, the facts of its session, and what the server
must decide: which attestations it keeps and what its ``<in/>`` view states (XEP: At the Sending
Server), what it finds in a chain that arrived from a remote domain and whether it refuses the
message (XEP: At a Receiving Server, Requiring Verified Hops), which hop a ``<require/>`` names,
and what a pre-flight answer holds.  The intended result of every case is written here by hand;
:func:`write_server` checks that the Python core gives it before it writes the files.
"""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from pathlib import Path as FsPath
from typing import Any

from ..core.attest import attest
from ..core.codec import add_attestation, decode_path, find_message, message_fields, parse_stanza, serialize
from ..core.keys import KeySet, KeyStatus, PublishedKey
from ..core.model import NS, Attestation, Chain, Result, View
from ..core.preflight import preflight_answer
from ..core.server import filter_client_path, receive_chain, received_requirement_problem, unmet_requirement
from ..core.timefmt import parse_time
from ..testbed.sim.scenarios import VECTOR_SEED
from ..testbed.sim.tls import KeyFactory

NOW = "2026-11-25T09:00:05Z"
ALICE = "alice@a.example/phone"
#: the view attributes a server states itself; 'chain' and what follows it are its decision
_DECISION = ("chain", "chain_reason", "key_source", "removed")


def _view_json(view: View) -> dict[str, str]:
    return view.attributes()


def _base(view: View) -> View:
    """A server's view of a session before it decides anything about the path."""
    return replace(view, chain=None, chain_reason=None, key_source=None, removed=None)


def _sigs(message: Any) -> list[str]:
    path = decode_path(message)
    return [] if path is None else [a.sig for a in path.attestations]


def _scenario(directory: FsPath, stem: str) -> tuple[Any, Any]:
    """A scenario's stanza as the recipient received it, and the message inside."""
    root = parse_stanza((directory.parent / "scenarios" / f"{stem}.xml").read_bytes())
    return root, find_message(root).message


def _arrived_at_b(directory: FsPath, stem: str) -> tuple[bytes, Attestation, View]:
    """What arrived at b.example in a scenario: its message without b.example's attestation, in
    jabber:server, with the attestation b.example then signed and b.example's own view of H2."""
    _, message = _scenario(directory, stem)
    path = decode_path(message)
    assert path is not None and path.attestations[-1].signer == "b.example"
    own = path.attestations[-1]
    assert own.in_view is not None
    arrived = copy.deepcopy(message)
    element = arrived.find(f"{{{NS}}}path")
    element.remove(element[-1])
    if not len(element):
        arrived.remove(element)
    data = serialize(arrived).replace(b'xmlns="jabber:client"', b'xmlns="jabber:server"', 1)
    return data, own, _base(own.in_view)


def write_server(directory: FsPath) -> list[dict[str, Any]]:
    """Write ``index.json`` and one stanza file per case into ``directory``; return the cases."""
    keys = KeyFactory(VECTOR_SEED)
    alice_key = keys.signing_key("client/alice@a.example/phone")
    a_key = keys.signing_key("server/a.example/1")
    a_keys = KeySet("a.example", (PublishedKey(a_key.public),))
    cases: list[dict[str, Any]] = []

    def write(name: str, data: bytes) -> str:
        (directory / f"{name}.xml").write_bytes(data.rstrip(b"\n") + b"\n")
        return f"{name}.xml"

    # --- At the Sending Server -------------------------------------------------------------
    _, pinned = _scenario(directory, "01-all-pinned")
    pinned_path = decode_path(pinned)
    assert pinned_path is not None
    own_view, a_view = pinned_path.attestations[0].out_view, pinned_path.attestations[1].in_view
    assert own_view is not None and a_view is not None
    c2s_base = _base(a_view)

    def from_alice(body: str = "Hello from the phone.", *, mid: str = "tp-s1", time: str = "2026-11-25T09:00:00Z",
                   edit: Any = None, key: Any = alice_key, signer: str = ALICE, extra: tuple[Attestation, ...] = (),
                   out_view: View = own_view, in_view: View | None = None) -> bytes:
        message = parse_stanza(f"<message xmlns='jabber:client' to='bob@b.example' id='{mid}' type='chat' "
                               f"from='{ALICE}'><body>{body}</body></message>".encode())
        fields = message_fields(message)
        signed = attest(fields, key, signer=signer, time=time, out_view=out_view, in_view=in_view)
        if edit is not None:
            signed = edit(signed)
        add_attestation(message, signed)
        for att in extra:
            add_attestation(message, att)
        return serialize(message)

    def sending(name: str, description: str, data: bytes, *, kept: bool, removed: int, chain: str,
                reason: str | None = None, client_key: str | None = alice_key.public,
                now: str = NOW) -> None:
        message = parse_stanza(data)
        fields = message_fields(message)
        decision = filter_client_path(message, fields, ALICE, domain="a.example", client_key=client_key,
                                      now=parse_time(now), max_skew=300)
        got = (decision.kept is not None, decision.removed, decision.chain.value,
               None if decision.chain_reason is None else str(decision.chain_reason))
        assert got == (kept, removed, chain, reason), (name, got)
        cases.append({
            "name": name, "rule": "At the Sending Server", "description": description, "stanza": write(name, data),
            "facts": {"role": "sending", "session": ALICE, "domain": "a.example", "client_key": client_key,
                      "now": now, "max_skew": 300, "view": _view_json(c2s_base)},
            "expected": {"kept": decision.kept.sig if decision.kept else None, "removed": removed, "chain": chain,
                         "chain_reason": reason, "in_view": _view_json(decision.in_view(c2s_base)),
                         "path": _sigs(message)},
        })

    sending("own-attestation-kept", "the client's own valid attestation is kept; the server vouches for its key",
            from_alice(), kept=True, removed=0, chain="pass")
    forged = attest(message_fields(parse_stanza(from_alice())), keys.signing_key("forger"), signer="a.example",
                    time="2026-11-25T09:00:00Z", out_view=replace(own_view, peer="b.example"),
                    in_view=replace(c2s_base, chain=Chain.PASS))
    sending("forged-server-attestation-removed", "an attestation that claims to be the server's own is removed "
            "and counted; the client's own one is kept", from_alice(extra=(forged,)), kept=True, removed=1,
            chain="pass")
    sending("another-signer-removed", "an attestation signed by another JID than the session's is removed; "
            "nothing of the client's own remains", from_alice(signer="alice@a.example/laptop"), kept=False,
            removed=1, chain="absent")
    sending("attestation-for-another-message", "the client's attestation names another message id",
            from_alice(edit=lambda a: a).replace(b'id="tp-s1"', b'id="tp-s2"', 1), kept=False, removed=0,
            chain="fail", reason="replayed")
    sending("client-clock-ten-minutes-slow", "the client's attestation time is outside the server's skew",
            from_alice(time="2026-11-25T08:50:00Z"), kept=False, removed=0, chain="fail", reason="clock-skew")
    sending("body-changed-after-signing", "the body no longer matches the client's signature",
            from_alice().replace(b"Hello from the phone.", b"Hello from the laptop."), kept=False, removed=0,
            chain="fail", reason="tampered")
    sending("no-key-announced", "the session announced no <client-key/>: nothing verifies the attestation",
            from_alice(), kept=False, removed=0, chain="fail", reason="tampered", client_key=None)
    sending("client-attestation-with-in-view", "a client's attestation describes only its <out/> hop",
            from_alice(in_view=replace(c2s_base, chain=Chain.PASS)), kept=False, removed=0, chain="fail",
            reason="chain-broken")
    sending("client-attestation-to-another-server", "the client's <out/> names another server than its own",
            from_alice(out_view=replace(own_view, peer="c.example")), kept=False, removed=0, chain="fail",
            reason="chain-broken")
    second = attest(message_fields(parse_stanza(from_alice())), alice_key, signer=ALICE,
                    time="2026-11-25T09:00:01Z", out_view=own_view)
    sending("two-own-attestations", "two attestations by the same signer in a row cannot be decoded: the path "
            "is removed, counted as one", from_alice(extra=(second,)), kept=False, removed=1, chain="absent")
    plain = b"<message xmlns='jabber:client' to='bob@b.example' id='tp-s1' type='chat' from='" + ALICE.encode() + \
        b"'><body>No path at all.</body></message>"
    sending("no-path", "a message without a path: nothing to keep", plain, kept=False, removed=0, chain="absent")
    unreadable = plain.replace(b"</message>", b"<path xmlns='urn:xmpp:trust-path:0'><attestation signer='x'/>"
                                              b"</path></message>")
    sending("unreadable-path-removed", "a path that cannot be decoded is removed, counted as one", unreadable,
            kept=False, removed=1, chain="absent")

    # --- At a Receiving Server ---------------------------------------------------------------
    def receiving(name: str, description: str, data: bytes, in_view: View, *, chain: str,
                  reason: str | None = None, vouches: bool, takes_part: bool = True,
                  seen: tuple[str, ...] = (), now: str = NOW, keyset: KeySet = a_keys,
                  signed: Attestation | None = None, refusal: dict[str, str] | None = None) -> None:
        message = parse_stanza(data)
        fields = message_fields(message)
        decision = receive_chain(message, fields, origin="a.example", domain="b.example", takes_part=takes_part,
                                 keys=keyset, in_view=in_view, now=parse_time(now), max_skew=300, seen=set(seen))
        got = (decision.chain.value, None if decision.chain_reason is None else str(decision.chain_reason),
               decision.prev_key is not None)
        assert got == (chain, reason, vouches), (name, got)
        view = decision.in_view(in_view)
        if signed is not None:  # what b.example signed in the scenario
            assert signed.in_view == view and signed.prev_key == decision.prev_key, (name, signed.in_view, view)
        hop = received_requirement_problem(fields.require, view, decision) if fields.require else None
        assert (hop.attributes() if hop else None) == refusal, (name, hop)
        cases.append({
            "name": name, "rule": "At a Receiving Server", "description": description, "stanza": write(name, data),
            "facts": {"role": "receiving", "origin": "a.example", "domain": "b.example", "takes_part": takes_part,
                      "keys": [k.to_json() for k in keyset.keys], "view": _view_json(in_view), "now": now,
                      "max_skew": 300, "seen": list(seen)},
            "expected": {"chain": chain, "chain_reason": reason, "prev_key": decision.prev_key,
                         "key_source": view.key_source.value if view.key_source else None,
                         "in_view": _view_json(view), "accepted": list(decision.accepted),
                         "path": _sigs(message), "refusal": refusal},
        })

    for stem, chain, reason, vouches, takes_part, text in (
            ("01-all-pinned", "pass", None, True, True, "every attestation verifies with a.example's key"),
            ("02-h2-ca-only", "pass", None, True, True, "a chain over a CA-checked link passes; the hop is weak"),
            ("03-h2-dialback", "pass", None, True, True, "a chain over a dialback link passes; the hop is not"),
            ("05-ss-not-participating", "absent", None, False, False,
             "a.example does not take part and sent no attestation"),
            ("06-ss-stripped", "stripped", None, False, True,
             "a.example takes part, but its attestation is not there"),
            ("07-body-tampered", "fail", "tampered", True, True, "the body changed after a.example signed"),
            ("09-replayed", "fail", "replayed", True, True, "a.example's attestation was made for another message"),
            ("14-clock-skew", "fail", "clock-skew", True, True, "a.example's clock is three hours slow"),
            ("16-h2-mitm-ca-only", "pass", None, True, True,
             "the chain passes; the key mismatch shows when the hops are evaluated")):
        data, own, in_view = _arrived_at_b(directory, stem)
        now = own.time  # b.example checked the chain when it signed
        receiving(f"arrived-{stem[3:]}", f"scenario {int(stem[:2])}: {text}", data, in_view, chain=chain,
                  reason=reason, vouches=vouches, takes_part=takes_part, now=now, signed=own)
    data, own, in_view = _arrived_at_b(directory, "01-all-pinned")
    first_sig = decode_path(parse_stanza(data)).attestations[-1].sig  # type: ignore[union-attr]
    receiving("seen-before", "a chain whose signatures the replay cache already holds", data, in_view,
              chain="fail", reason="replayed", vouches=True, seen=(first_sig,), now=own.time)
    receiving("origin-not-last-signer", "the last attestation is not a.example's: nothing to vouch for",
              serialize(_only_first(data)), in_view, chain="stripped", vouches=False, now=own.time)
    receiving("unreadable-path", "a path that cannot be decoded is removed; the chain fails as malformed",
              data.replace(b'signer="a.example"', b'signer=""', 1), in_view, chain="fail", reason="malformed",
              vouches=False, now=own.time)
    rotated = KeySet("a.example", (PublishedKey(keys.signing_key("server/a.example/2").public),
                                   PublishedKey(a_key.public, KeyStatus.RETIRED, "2026-11-25T09:05:00Z")))
    receiving("signed-with-a-retired-key", "a.example rotated its key after signing: its retired key still verifies",
              data, in_view, chain="pass", vouches=True, keyset=rotated, now=own.time)
    required = _with_require(_arrived_at_b(directory, "02-h2-ca-only")[0], "trusted", a_key, alice_key)
    _, _, ca_view = _arrived_at_b(directory, "02-h2-ca-only")
    receiving("require-trusted-over-a-ca-link", "the sender required trusted hops; H2 is checked by a CA only",
              required, ca_view, chain="pass", vouches=True, now="2026-11-25T09:00:00Z",
              refusal={"peer": "a.example", "method": "pkix", "reason": "ca-only", "required": "trusted"})
    stripped = serialize(_only_first(_with_require(data, "weak", a_key, alice_key)))
    receiving("require-weak-but-stripped", "the sender required weak; a.example's attestation is missing",
              stripped, in_view, chain="stripped", vouches=False, now="2026-11-25T09:00:00Z",
              refusal={"peer": "a.example", "method": "pin", "reason": "stripped", "required": "weak"})

    # --- Requiring Verified Hops: the hop a refusal names -------------------------------------
    out = replace(_base(pinned_path.attestations[1].out_view))  # type: ignore[arg-type]
    for name, required, views, expected in (
            ("require-trusted-pinned", "trusted", [out], None),
            ("require-trusted-ca-only", "trusted", [replace(out, method="pkix")], "ca-only"),
            ("require-weak-ca-only", "weak", [replace(out, method="pkix")], None),
            ("require-weak-dialback", "weak", [replace(out, method="dialback")], "dialback-only"),
            ("require-weak-without-tls", "weak", [replace(out, tls="none", spki=None, cipher=None)],
             "starttls-not-supported"),
            ("require-weak-pin-mismatch", "weak", [replace(out, result=Result.FAIL, reason="pin-mismatch")],
             "pin-mismatch"),
            ("require-weak-not-verified", "weak", [replace(out, method="none", result=Result.NONE)],
             "not-verified"),
            ("require-trusted-second-hop", "trusted", [out, replace(own_view, method="pkix")], "ca-only")):
        hop = unmet_requirement(required, views)
        assert (hop.reason if hop else None) == expected, (name, hop)
        cases.append({"name": name, "rule": "Requiring Verified Hops",
                      "description": f"<require verdict='{required}'/> over {', '.join(v.method for v in views)}",
                      "facts": {"role": "require", "required": required, "views": [_view_json(v) for v in views]},
                      "expected": {"hop": hop.attributes() if hop else None}})

    # --- Pre-flight Query: what a server answers ---------------------------------------------
    for name, takes_part, view, keeps in (
            ("preflight-pinned-link", True, out, True),
            ("preflight-not-known", None, out, True),
            ("preflight-failed-link", False, replace(out, result=Result.FAIL, reason="pin-mismatch"), True),
            ("preflight-view-of-another-link", True, replace(out, peer="c.example"), False),
            ("preflight-view-without-spki", True, replace(out, spki=None), False),
            ("preflight-no-link", True, None, False)):
        answer = preflight_answer("b.example", takes_part, view)
        assert (answer.out_view is not None) == keeps, name
        cases.append({"name": name, "rule": "Pre-flight Query",
                      "description": "what b.example's pre-flight answer holds",
                      "facts": {"role": "preflight", "domain": "b.example", "takes_part": takes_part,
                                "view": _view_json(view) if view is not None else None},
                      "expected": {"domain": "b.example", "takes_part": takes_part,
                                   "out": _view_json(answer.out_view) if answer.out_view else None}})
    (directory / "index.json").write_text(json.dumps({"comment": __doc__.split("\n\n")[1].replace("\n", " "),
                                                      "cases": cases}, indent=2, ensure_ascii=False) + "\n",
                                          encoding="utf-8")
    return cases


def _only_first(data: bytes) -> Any:
    """``data`` with only its first attestation (the sender's): the others were removed."""
    message = parse_stanza(data)
    element = message.find(f"{{{NS}}}path")
    for child in list(element)[1:]:
        element.remove(child)
    return message


def _with_require(data: bytes, verdict: str, a_key: Any, alice_key: Any) -> bytes:
    """What arrived at b.example, with ``<require verdict=.../>`` added and re-signed by alice and a.example."""
    message = parse_stanza(data)
    path = decode_path(message)
    assert path is not None
    element = message.find(f"{{{NS}}}path")
    message.remove(element)
    req = copy.deepcopy(parse_stanza(f"<require xmlns='{NS}' verdict='{verdict}'/>".encode()))
    message.append(req)
    fields = message_fields(message)
    atts: list[Attestation] = []
    for att, key in zip(path.attestations, (alice_key, a_key)):
        previous = atts[-1] if atts else None
        atts.append(attest(fields, key, signer=att.signer, time=att.time, previous=previous,
                           prev_key=att.prev_key if previous else None, in_view=att.in_view, out_view=att.out_view))
    for att in atts:
        add_attestation(message, att)
    return serialize(message)


__all__ = ["write_server"]
