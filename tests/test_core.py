"""Unit tests of the sans-I/O core: signing input, keys, codec, verification rules."""

from __future__ import annotations

import copy
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from lxml import etree

from trustpath import (
    Anchor,
    Chain,
    InvalidAnchor,
    KeySet,
    KeySource,
    MessageFields,
    PublishedKey,
    Result,
    Side,
    SigningKey,
    Strength,
    UsageError,
    Verdict,
    View,
    anchor_from_json,
    attest,
    signing_input,
    verify_stanza,
)
from trustpath.core.errors import MalformedStanza
from trustpath.core.verify import verify
from trustpath.core.codec import add_attestation, decode_path, message_fields, parse_stanza, serialize
from trustpath.core.keys import KeyStatus
from trustpath.core.model import Path
from trustpath.testbed.sim.federation import renamespace
from trustpath.core.timefmt import format_time, parse_time

T0 = datetime(2026, 11, 25, 9, 0, 0, tzinfo=UTC)
SPKI = "n4bQgYhMfWWaL+qgxVrQFaO/TxsrC4Is0V1sFbDwCgg="


def seed_key(n: int) -> SigningKey:
    return SigningKey.from_seed(bytes([n]) * 32)


def client_view(peer: str, method: str = "pin", spki: str = SPKI) -> View:
    return View(peer=peer, side=Side.CLIENT, tls="1.3", cipher="1302", spki=spki, method=method, result=Result.PASS)


def server_view(peer: str, method: str, spki: str = SPKI, **extra) -> View:
    return View(peer=peer, side=Side.SERVER, tls="1.3", cipher="1302", spki=spki, method=method, result=Result.PASS,
                **extra)


MSG = MessageFields(sender="alice@a.example/phone", to="bob@b.example", id="m1", type="chat",
                    bodies=((None, "Hi"),))


def test_signing_input_is_the_documented_byte_string():
    att = attest(MSG, seed_key(1), signer="alice@a.example/phone", time=T0, out_view=client_view("a.example"))
    data = signing_input(MSG, "", att)
    expected = ("urn:xmpp:trust-path:0\0from\0alice@a.example/phone\0to\0bob@b.example\0type\0chat\0body\0Hi\0"
                "prev\0\0attestation.for\0m1\0attestation.signer\0alice@a.example/phone\0"
                "attestation.time\x002026-11-25T09:00:00Z\0out.cipher\x001302\0out.method\0pin\0out.peer\0a.example\0"
                "out.result\0pass\0out.side\0client\0out.spki\0" + SPKI + "\0out.tls\x001.3\0")
    assert data == expected.encode()


def test_signing_input_covers_lang_subject_thread_and_require():
    msg = MessageFields(sender="a@x/r", to="b@y", id="i", bodies=((None, "x"), ("de", "y")),
                        subjects=((None, "s"),), threads=((None, "t"),), require="trusted")
    att = attest(msg, seed_key(1), signer="a@x/r", time=T0, out_view=client_view("x"))
    data = signing_input(msg, "", att)
    assert b"\0body\0x\0body@de\0y\0subject\0s\0thread\0t\0require\0trusted\0" in data
    assert b"\0type\0normal\0" in data


def test_signing_input_covers_every_view_attribute_in_name_order():
    view = server_view("alice@a.example/phone", "SCRAM-SHA-256-PLUS", chain=Chain.FAIL, chain_reason="tampered",
                       key_source=KeySource.LINK, removed=2)
    view = replace(view, cb="tls-exporter", result=Result.FAIL, reason="validation-failure")
    att = attest(MSG, seed_key(2), signer="a.example", time=T0, in_view=view, out_view=client_view("b.example"),
                 stored=T0)
    data = signing_input(MSG, "", att)
    names = [part.decode() for part in data.split(b"\0")[1::2] if part.startswith((b"in.", b"attestation."))]
    assert names == ["attestation.for", "attestation.signer", "attestation.stored", "attestation.time", "in.cb",
                     "in.chain", "in.chain-reason", "in.cipher", "in.key-source", "in.method", "in.peer",
                     "in.reason", "in.removed", "in.result", "in.side", "in.spki", "in.tls"]
    assert b"\0in.cb\0tls-exporter\0" in data and b"\0in.removed\x002\0" in data


def test_attest_rejects_misuse():
    with pytest.raises(UsageError):
        attest(MSG, seed_key(1), signer="a", time=datetime(2026, 1, 1))
    with pytest.raises(UsageError):
        attest(MSG, seed_key(1), signer="a", time=T0)
    with pytest.raises(UsageError):
        attest(MSG, seed_key(1), signer="a", time=T0, prev_key=seed_key(2).public, out_view=client_view("x"))
    with pytest.raises(UsageError):
        attest(MSG, seed_key(1), signer="a", time=T0, in_view=server_view("x", "pin"))


def test_time_format_round_trips_and_rejects_other_forms():
    assert format_time(T0) == "2026-11-25T09:00:00Z"
    assert parse_time("2026-11-25T09:00:00Z") == T0
    for bad in ("2026-11-25T09:00:00.5Z", "2026-11-25T09:00:00+00:00", "2026-13-25T09:00:00Z", ""):
        with pytest.raises(MalformedStanza, match="time"):
            parse_time(bad)


def test_key_set_orders_usable_keys_first_and_marks_retired_and_revoked():
    a, b, c = seed_key(1).public, seed_key(2).public, seed_key(3).public
    keys = KeySet("b.example", (PublishedKey(a, KeyStatus.REVOKED), PublishedKey(b, KeyStatus.RETIRED,
                                                                                  "2026-11-25T10:00:00Z"),
                                PublishedKey(c)))
    assert keys.candidates(T0) == ((b, None), (c, None), (a, "key-revoked"))
    assert dict(keys.candidates(T0 + timedelta(hours=2)))[b] == "key-retired"


def test_rotation_keeps_the_old_key_verifiable_until_not_after():
    keys = KeySet("b.example", (PublishedKey(seed_key(1).public),))
    rotated = keys.rotated(seed_key(2).public, T0, 300)
    assert rotated.keys[0] == PublishedKey(seed_key(2).public)
    assert rotated.keys[1] == PublishedKey(seed_key(1).public, KeyStatus.RETIRED, "2026-11-25T09:05:00Z")
    assert rotated.revoked(seed_key(1).public).keys[1].status is KeyStatus.REVOKED


def _one_hop_path(now_key: SigningKey, *, spki_seen: str = SPKI):
    """A server's attestation for a client delivery, and the client's anchor."""
    in_view = server_view("a.example", "pin", chain=Chain.ABSENT)
    att = attest(MSG, now_key, signer="b.example", time=T0, in_view=in_view,
                 out_view=server_view("bob@b.example/desk", "SCRAM-SHA-256"))
    anchor = Anchor("b.example", KeySet("b.example", (PublishedKey(now_key.public),)), "bob@b.example/desk",
                    client_view("b.example", spki=spki_seen))
    return Path((att,)), anchor


def test_a_path_whose_earlier_hops_do_not_take_part_is_unknown_never_trusted():
    path, anchor = _one_hop_path(seed_key(5))
    report = verify(MSG, path, anchor, T0)
    assert report.verdict is Verdict.UNKNOWN
    assert [h.reason for h in report.hops][:1] == ["not-participating"]


def test_missing_attestation_of_a_participating_own_server_is_stripped():
    _, anchor = _one_hop_path(seed_key(5))
    report = verify(MSG, None, anchor, T0)
    assert report.verdict is Verdict.UNTRUSTED
    assert report.hops[-1].reason == "stripped"
    report = verify(MSG, None, replace(anchor, takes_part=False), T0)
    assert report.verdict is Verdict.UNKNOWN


def test_end_point_binding_catches_a_different_server_key():
    path, anchor = _one_hop_path(seed_key(5), spki_seen="AAAAgYhMfWWaL+qgxVrQFaO/TxsrC4Is0V1sFbDwCgg=")
    report = verify(MSG, path, anchor, T0)
    assert report.verdict is Verdict.UNTRUSTED
    assert report.hops[-1].reason == "key-mismatch"


def test_replay_cache_rejects_a_signature_seen_before():
    path, anchor = _one_hop_path(seed_key(5))
    report = verify(MSG, path, anchor, T0, seen={path.attestations[0].sig})
    assert report.verdict is Verdict.UNTRUSTED
    assert report.hops[-1].reason == "replayed"


def test_verify_needs_an_aware_time():
    path, anchor = _one_hop_path(seed_key(5))
    with pytest.raises(UsageError):
        verify(MSG, path, anchor, datetime(2026, 11, 25))


def test_strength_maps_to_the_four_verdicts():
    assert [s.verdict for s in Strength] == [Verdict.UNTRUSTED, Verdict.UNTRUSTED, Verdict.UNKNOWN, Verdict.WEAK,
                                             Verdict.TRUSTED]


def test_key_source_caps_a_pinned_hop_to_weak():
    """A key learned by first use cannot make a path trusted, even over pinned hops."""
    ss_key, rs_key = seed_key(2), seed_key(3)
    ss = attest(MSG, ss_key, signer="a.example", time=T0,
                in_view=server_view("alice@a.example/phone", "SCRAM-SHA-256", chain=Chain.ABSENT),
                out_view=client_view("b.example"))
    rs = attest(MSG, rs_key, signer="b.example", time=T0, previous=ss, prev_key=ss_key.public,
                in_view=server_view("a.example", "pin", chain=Chain.PASS, key_source=KeySource.TOFU),
                out_view=server_view("bob@b.example/desk", "SCRAM-SHA-256"))
    anchor = Anchor("b.example", KeySet("b.example", (PublishedKey(rs_key.public),)), "bob@b.example/desk",
                    client_view("b.example"))
    report = verify(MSG, Path((ss, rs)), anchor, T0)
    h2 = report.hops[1]
    assert (h2.label, h2.strength, h2.reason) == ("H2", Strength.CA, "weak-key-source")


def _stanza(fields: MessageFields, ns: str = "jabber:client") -> etree._Element:
    root = etree.Element(f"{{{ns}}}message", nsmap={None: ns})
    for k, v in (("from", fields.sender), ("to", fields.to), ("id", fields.id), ("type", fields.type)):
        root.set(k, v)
    etree.SubElement(root, f"{{{ns}}}body").text = fields.bodies[0][1]
    return root


def test_signature_survives_namespace_change_and_server_added_elements():
    path, anchor = _one_hop_path(seed_key(5))
    root = _stanza(MSG)
    add_attestation(root, path.attestations[0])
    server = renamespace(root, "jabber:client", "jabber:server")
    etree.SubElement(server, "{urn:xmpp:sid:0}stanza-id", nsmap={None: "urn:xmpp:sid:0"}).set("id", "x")
    etree.SubElement(server, "{urn:xmpp:delay}delay", nsmap={None: "urn:xmpp:delay"}).set("stamp", "2026")
    data = serialize(renamespace(server, "jabber:server", "jabber:client"))
    assert b"stanza-id" in data
    assert verify_stanza(data, anchor, T0).attestations[0].status == "ok"
    assert message_fields(server) == MSG


def test_codec_round_trip_of_a_real_path(pinned_vector):
    data, _, _ = pinned_vector
    root = parse_stanza(data)
    path = decode_path(root)
    copy_root = copy.deepcopy(root)
    for child in list(copy_root):
        if child.tag.endswith("path"):
            copy_root.remove(child)
    for att in path.attestations:
        add_attestation(copy_root, att)
    assert decode_path(copy_root) == path


def test_anchor_json_errors_are_specific():
    with pytest.raises(InvalidAnchor, match="version"):
        anchor_from_json({"version": 9})
    with pytest.raises(InvalidAnchor, match="keys"):
        anchor_from_json({"version": 0, "server": "b.example", "keys": [], "me": "x", "view": {}})
    with pytest.raises(InvalidAnchor, match="base64"):
        anchor_from_json({"version": 0, "server": "b.example", "keys": [{"key": "!!"}], "me": "x", "view": {}})
    with pytest.raises(InvalidAnchor, match="retired"):
        anchor_from_json({"version": 0, "server": "b", "keys": [{"key": seed_key(1).public, "status": "retired"}],
                          "me": "x", "view": {}})
