"""Unit tests of the sans-I/O core: signing input, keys, codec, verification rules."""

from __future__ import annotations

import base64
import copy
import hashlib
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
from trustpath.core.attest import sign_record
from trustpath.core.codec import add_record, decode_path, decode_record, message_fields, parse_stanza, serialize
from trustpath.core.errors import MalformedStanza
from trustpath.core.keys import KeyStatus, short_spki
from trustpath.core.model import Path
from trustpath.core.timefmt import epoch, format_time, parse_time
from trustpath.core.verify import verify
from trustpath.testbed.sim.federation import renamespace

T0 = datetime(2026, 11, 25, 9, 0, 0, tzinfo=UTC)
SPKI = "n4bQgYhMfWWaL+qg"  # 16 characters: the first 12 bytes of an SPKI's SHA-256


def seed_key(n: int) -> SigningKey:
    return SigningKey.from_seed(bytes([n]) * 32)


def view(method: str, spki: str | None = SPKI, tls: str = "1.3") -> View:
    return View(method, Result.PASS, tls, spki if tls != "none" else None)


MSG = MessageFields(sender="alice@a.example/phone", to="bob@b.example", id="m1", type="chat",
                    bodies=((None, "Hi"),))


def test_signing_input_is_the_documented_byte_string():
    att = attest(MSG, seed_key(1), out_view=view("pin"))
    assert att.text == f"k={seed_key(1).public};o=pin,pass,1.3,{SPKI};z={att.sig}"
    data = signing_input(MSG, "", att.unsigned)
    expected = ("urn:xmpp:trust-path:1\0from\0alice@a.example/phone\0to\0bob@b.example\0id\0m1\0type\0chat\0"
                "body\0Hi\0prev\0\0rec\0" + att.unsigned + "\0")
    assert data == expected.encode()


def test_signing_input_covers_lang_subject_thread_and_require_and_the_records_before():
    msg = MessageFields(sender="a@x/r", to="b@y", id="i", bodies=((None, "x"), ("de", "y")),
                        subjects=((None, "s"),), threads=((None, "t"),), require="trusted")
    data = signing_input(msg, "k=A;o=B;z=C", "s=x;k=D")
    assert b"\0type\0normal\0" in data
    assert b"\0body\0x\0body@de\0y\0subject\0s\0thread\0t\0require\0trusted\0" in data
    assert data.endswith(b"\0prev\0k=A;o=B;z=C\0rec\0s=x;k=D\0")


def test_a_record_is_written_in_field_order_with_the_signature_last():
    att = attest(MSG, seed_key(2), signer="a.example", time=T0, in_view=view("tls-unique", tls="1.2"),
                 chain=Chain.FAIL, chain_reason="key-unknown", removed=2, out_view=view("dane-ee"),
                 vouch=KeySource.LINK, out_peer="bob@b.example/desk", stored=T0)
    fields = [field.split("=", 1)[0] for field in att.text.split(";")]
    assert fields == ["s", "t", "k", "i", "c", "v", "r", "o", "p", "st", "z"]
    assert f";t={epoch(T0)};" in att.text and ";c=fail.key-unknown;" in att.text and ";r=2;" in att.text


def test_the_record_attest_returns_is_the_record_a_verifier_decodes_from_its_text():
    # attest() builds its Record from its arguments and sign_record() writes the text: they must agree
    omemo = replace(MSG, elements=(("omemo", "<\0{eu.siacs.conversations.axolotl}encrypted\0>\0"),))
    records = [
        attest(MSG, seed_key(1), out_view=view("pin")),
        attest(omemo, seed_key(1), out_view=view("pin"), extra=(("x-later", "1"),)),
        attest(MSG, seed_key(2), signer="a.example", time=T0, in_view=view("tls-unique", tls="1.2"),
               chain=Chain.FAIL, chain_reason="key-unknown", removed=2, out_view=view("dane-ee"),
               vouch=KeySource.LINK, stored=T0 + timedelta(seconds=3), in_peer="alice@a.example/phone",
               out_peer="b.example", alg="ed25519"),
        attest(MSG, seed_key(3), signer="b.example", time=epoch(T0), in_view=view("pin"), chain=Chain.PASS,
               out_view=view("pin", tls="none")),
    ]
    for record in records:
        assert decode_record(record.text) == record
    assert sign_record(MSG, seed_key(1), out_view=view("pin")) == records[0].text  # Ed25519 is deterministic


def test_a_message_carrying_a_payload_beyond_the_defaults_lists_every_payload_it_carries():
    omemo = replace(MSG, elements=(("omemo", "<\0{eu.siacs.conversations.axolotl}encrypted\0>\0"),))
    att = attest(omemo, seed_key(1), out_view=view("pin"))
    assert ";h=body,omemo;" in att.text
    assert att.covers == ("body", "omemo")
    assert b"\0omemo\0<\0{eu.siacs" in signing_input(omemo, "", att.unsigned, att.covers)
    assert ";h=" not in attest(MSG, seed_key(1), out_view=view("pin")).text


def test_attest_rejects_misuse():
    with pytest.raises(UsageError, match="no-id"):
        attest(replace(MSG, id=""), seed_key(1), out_view=view("pin"))
    # issue 11, item 5: 'st' on a record that does not deliver is refused by every verifier: not signed
    with pytest.raises(UsageError, match="stored"):
        attest(MSG, seed_key(2), signer="a.example", time=T0, in_view=view("tls-unique", tls="1.2"),
               chain=Chain.PASS, vouch=KeySource.LINK, out_view=view("pin"), stored=T0)
    with pytest.raises(UsageError, match="stored"):
        attest(MSG, seed_key(1), out_view=view("pin"), stored=T0)
    with pytest.raises(UsageError, match="in-view"):
        attest(MSG, seed_key(1), signer="a.example", time=T0, in_view=view("pin"), out_view=view("pin"))
    with pytest.raises(UsageError, match="in-view"):
        attest(MSG, seed_key(1), signer="a.example", time=T0, chain=Chain.ABSENT, out_view=view("pin"))
    # a refusal's first record (no in-view): nothing brought the refusal, so nothing is vouched or removed
    for misuse in ({"vouch": KeySource.LINK}, {"removed": 1}, {"stored": T0, "out_peer": "alice@a.example/phone"}):
        with pytest.raises(UsageError, match="refusal"):
            attest(MSG, seed_key(1), signer="a.example", time=T0, out_view=view("pin"), **misuse)
    with pytest.raises(UsageError, match="out-view only"):
        attest(MSG, seed_key(1), in_view=view("pin"), out_view=view("pin"))
    with pytest.raises(UsageError, match="chain_reason"):
        attest(MSG, seed_key(1), signer="a", time=T0, in_view=view("sasl"), chain=Chain.FAIL, out_view=view("pin"))


def test_time_format_round_trips_and_rejects_other_forms():
    assert format_time(T0) == "2026-11-25T09:00:00Z"
    assert parse_time("2026-11-25T09:00:00Z") == T0
    for bad in ("2026-11-25T09:00:00.5Z", "2026-11-25T09:00:00+00:00", "2026-13-25T09:00:00Z", ""):
        with pytest.raises(MalformedStanza, match="time"):
            parse_time(bad)


def test_a_views_spki_is_the_first_twelve_bytes_of_the_pin():
    digest = hashlib.sha256(b"a SubjectPublicKeyInfo").digest()
    spki = short_spki(base64.b64encode(digest).decode())
    assert len(spki) == 16 and "=" not in spki
    assert base64.b64decode(spki) == digest[:12]


def test_a_key_is_judged_by_its_status_at_the_signing_time():
    a, b, c = seed_key(1).public, seed_key(2).public, seed_key(3).public
    keys = KeySet("b.example", (PublishedKey(a, KeyStatus.REVOKED, since="2026-11-20T00:00:00Z"),
                                PublishedKey(b, KeyStatus.RETIRED, "2026-11-25T10:00:00Z"), PublishedKey(c)))
    assert keys.problem(c, T0) is None
    assert keys.problem(b, T0) is None
    assert keys.problem(b, T0 + timedelta(hours=2)) == "key-retired"
    assert keys.problem(a, T0) == "key-revoked"
    assert keys.problem(seed_key(4).public, T0) == "key-unknown"
    # revocation names when the compromise began: an archive holds what arrived before it
    assert keys.problem(a, T0, archived_at=datetime(2026, 11, 19, tzinfo=UTC)) is None
    assert keys.problem(a, T0, archived_at=datetime(2026, 11, 21, tzinfo=UTC)) == "key-revoked"


def test_a_next_key_is_valid_like_a_current_one():
    from trustpath.core.disco import key_form, posh_document, read_disco_info, read_posh_document, \
        read_txt_records, txt_records
    from trustpath.core.disco import NS_DISCO_INFO
    current, upcoming = seed_key(1).public, seed_key(2).public
    keys = KeySet("b.example", (PublishedKey(current),)).with_next(upcoming)
    assert keys.problem(upcoming, T0) is None and keys.current == (current,)
    # published in every place a server publishes its keys, and read back as next
    query = etree.Element(f"{{{NS_DISCO_INFO}}}query")
    etree.SubElement(query, f"{{{NS_DISCO_INFO}}}feature", var="urn:xmpp:trust-path:1")
    form = key_form(keys)
    assert [f.get("var") for f in form][:3] == ["FORM_TYPE", "key", "next-key"]
    query.append(form)
    assert read_disco_info(query, "b.example").keys == keys
    assert txt_records(keys)[1] == f"v=tp1; k=ed25519:{upcoming}; s=next"
    assert read_txt_records(txt_records(keys), "b.example") == keys
    assert read_posh_document(posh_document(keys), "b.example")[0] == keys
    # a form without a next key has no next-key field (as before the field existed)
    assert "next-key" not in [f.get("var") for f in key_form(KeySet("b.example", (PublishedKey(current),)))]
    # switching to it: it becomes the current key, the old one retired
    switched = keys.rotated(upcoming, T0, 300)
    assert switched.keys[0] == PublishedKey(upcoming) and [k.status for k in switched.keys] == \
        [KeyStatus.CURRENT, KeyStatus.RETIRED]
    with pytest.raises(MalformedStanza, match="next key is given alone"):
        form[2][0].text = f"ed25519:{upcoming} 2026-11-25T09:05:00Z"
        read_disco_info(query, "b.example")


def test_rotation_keeps_the_old_key_verifiable_until_not_after():
    keys = KeySet("b.example", (PublishedKey(seed_key(1).public),))
    rotated = keys.rotated(seed_key(2).public, T0, 300)
    assert rotated.keys[0] == PublishedKey(seed_key(2).public)
    assert rotated.keys[1] == PublishedKey(seed_key(1).public, KeyStatus.RETIRED, "2026-11-25T09:05:00Z")
    revoked = rotated.revoked(seed_key(1).public, T0)
    assert revoked.keys[1].status is KeyStatus.REVOKED and revoked.keys[1].since == "2026-11-25T09:00:00Z"


def _delivery_only(key: SigningKey, *, spki_seen: str = SPKI, takes_part_before: bool = False):
    """Only the recipient's server signed (the sender's domain does not take part)."""
    att = attest(MSG, key, signer="b.example", time=T0, in_view=view("pkix"), chain=Chain.ABSENT,
                 out_view=view("tls-unique", tls="1.3"), out_peer="bob@b.example/desk")
    anchor = Anchor("b.example", KeySet("b.example", (PublishedKey(key.public),)), "bob@b.example/desk",
                    view("pin", spki=spki_seen))
    return Path((att,)), anchor


def test_a_path_whose_earlier_hops_do_not_take_part_is_unknown_never_trusted():
    path, anchor = _delivery_only(seed_key(5))
    report = verify(MSG, path, anchor, T0)
    assert report.verdict is Verdict.UNKNOWN
    assert report.hops[0].reason == "not-participating"


def test_missing_record_of_a_participating_own_server_is_stripped():
    _, anchor = _delivery_only(seed_key(5))
    report = verify(MSG, None, anchor, T0)
    assert report.verdict is Verdict.UNTRUSTED
    assert report.hops[-1].reason == "stripped"
    assert verify(MSG, None, replace(anchor, takes_part=False), T0).verdict is Verdict.UNKNOWN


def test_end_point_binding_catches_a_different_server_key():
    path, anchor = _delivery_only(seed_key(5), spki_seen="AAAAgYhMfWWaL+qg")
    report = verify(MSG, path, anchor, T0)
    assert report.verdict is Verdict.UNTRUSTED
    assert report.hops[-1].reason == "key-mismatch"


def test_replay_cache_rejects_a_signature_seen_before():
    path, anchor = _delivery_only(seed_key(5))
    report = verify(MSG, path, anchor, T0, seen={path.records[0].sig})
    assert report.verdict is Verdict.UNTRUSTED
    assert report.hops[-1].reason == "replayed"


def test_a_record_copied_onto_another_message_is_tampered():
    path, anchor = _delivery_only(seed_key(5))
    report = verify(replace(MSG, id="m2"), path, anchor, T0)
    assert report.verdict is Verdict.UNTRUSTED
    assert report.records[-1].status == "tampered"


def test_verify_needs_an_aware_time():
    path, anchor = _delivery_only(seed_key(5))
    with pytest.raises(UsageError):
        verify(MSG, path, anchor, datetime(2026, 11, 25))


def test_strength_maps_to_the_four_verdicts():
    assert [s.verdict for s in Strength] == [Verdict.UNTRUSTED, Verdict.UNTRUSTED, Verdict.UNKNOWN, Verdict.WEAK,
                                             Verdict.TRUSTED]


def _three_records(*, h1_in: str = "tls-unique", client_method: str = "pin", vouch: KeySource = KeySource.S2S_PIN):
    sc, ss, rs_key = seed_key(1), seed_key(2), seed_key(3)
    c = attest(MSG, sc, out_view=view(client_method))
    s = attest(MSG, ss, signer="a.example", time=T0, previous=c.text, in_view=view(h1_in), chain=Chain.PASS,
               vouch=KeySource.LINK, out_view=view("pin"))
    r = attest(MSG, rs_key, signer="b.example", time=T0, previous=f"{c.text} {s.text}", in_view=view("pin"),
               chain=Chain.PASS, vouch=vouch, out_view=view("tls-unique"), out_peer="bob@b.example/desk")
    anchor = Anchor("b.example", KeySet("b.example", (PublishedKey(rs_key.public),)),
                    "bob@b.example/desk", view("pin"))
    return Path((c, s, r)), anchor


def test_a_path_pinned_and_bound_on_every_hop_is_trusted():
    path, anchor = _three_records()
    report = verify(MSG, path, anchor, T0)
    assert report.verdict is Verdict.TRUSTED, report.to_json()
    assert [h.label for h in report.hops] == ["H1", "H2", "H3"]


def test_a_client_view_without_channel_binding_counts_as_ca_at_most():
    """H1's client statement travelled over H1: without a binding the server checked, an attacker
    on H1 could have written it (issue: man in the middle on H1, careful)."""
    path, anchor = _three_records(h1_in="sasl")
    report = verify(MSG, path, anchor, T0)
    h1 = report.hops[0]
    assert (report.verdict, h1.strength, h1.reason) == (Verdict.WEAK, Strength.CA, "unbound")


def test_a_first_use_pin_is_not_a_pin():
    path, anchor = _three_records(client_method="tofu")
    report = verify(MSG, path, anchor, T0)
    h1 = report.hops[0]
    assert (report.verdict, h1.strength, h1.reason) == (Verdict.WEAK, Strength.CA, "first-use-pin")


@pytest.mark.parametrize("source, strength", [(KeySource.S2S_PIN, Strength.STRONG), (KeySource.DNSSEC, Strength.STRONG),
                                              (KeySource.S2S_PKIX, Strength.CA), (KeySource.POSH, Strength.CA),
                                              (KeySource.S2S_NONE, Strength.UNVERIFIED)])
def test_the_key_source_caps_the_hop_its_record_vouches_for(source, strength):
    path, anchor = _three_records(vouch=source)
    h2 = verify(MSG, path, anchor, T0).hops[1]
    assert h2.strength is strength and h2.key_source == source.value


def test_signature_survives_namespace_change_and_server_added_elements():
    path, anchor = _delivery_only(seed_key(5))
    root = etree.Element("{jabber:client}message", nsmap={None: "jabber:client"})
    for k, v in (("from", MSG.sender), ("to", MSG.to), ("id", MSG.id), ("type", MSG.type)):
        root.set(k, v)
    etree.SubElement(root, "{jabber:client}body").text = "Hi"
    add_record(root, path.records[0])
    server = renamespace(root, "jabber:client", "jabber:server")
    etree.SubElement(server, "{urn:xmpp:sid:0}stanza-id", nsmap={None: "urn:xmpp:sid:0"}).set("id", "x")
    etree.SubElement(server, "{urn:xmpp:delay}delay", nsmap={None: "urn:xmpp:delay"}).set("stamp", "2026")
    data = serialize(renamespace(server, "jabber:server", "jabber:client"))
    assert b"stanza-id" in data
    assert verify_stanza(data, anchor, T0).records[0].status == "ok"
    assert message_fields(server) == MSG


def test_codec_round_trip_of_a_real_path(pinned_vector):
    data, _, _ = pinned_vector
    root = parse_stanza(data)
    path = decode_path(root)
    assert len(path.records) == 3
    copy_root = copy.deepcopy(root)
    for child in list(copy_root):
        if child.tag.endswith("path"):
            copy_root.remove(child)
    for att in path.records:
        add_record(copy_root, att)
    assert decode_path(copy_root) == path


def test_anchor_json_errors_are_specific():
    key = seed_key(1).public
    with pytest.raises(InvalidAnchor, match="version"):
        anchor_from_json({"version": 0})
    with pytest.raises(InvalidAnchor, match="keys"):
        anchor_from_json({"version": 1, "server": "b.example", "keys": [], "me": "x", "view": "pin,pass,1.3," + SPKI})
    with pytest.raises(InvalidAnchor, match="Ed25519|base64"):
        anchor_from_json({"version": 1, "server": "b.example", "keys": [{"key": "!!"}], "me": "x",
                          "view": "pin,pass,1.3," + SPKI})
    with pytest.raises(InvalidAnchor, match="retired"):
        anchor_from_json({"version": 1, "server": "b", "keys": [{"key": key, "status": "retired"}],
                          "me": "x", "view": "pin,pass,1.3," + SPKI})
    with pytest.raises(InvalidAnchor, match="view"):
        anchor_from_json({"version": 1, "server": "b", "keys": [{"key": key}], "me": "x",
                          "view": {"method": "pin"}})
