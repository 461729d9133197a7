"""One test per business rule of the XEP that the scenarios do not already prove.

spec/requirements.json maps every rule to the tests that fail when it is broken.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import timedelta

import pytest
from lxml import etree

from trustpath import (
    UsageError,
    attest,
    MalformedStanza,
    MessageFields,
    SigningKey,
    UnsupportedAlgorithm,
    Verdict,
    verify_stanza,
)
from trustpath.core.codec import decode_path, find_message, message_fields, parse_stanza, serialize
from trustpath.core.model import DEFAULT_MAX_SKEW, NS, Chain, KeySource
from trustpath.core.verify import verify
from trustpath.testbed.sim.federation import ClientNode, Federation, RequirementNotMet
from trustpath.testbed.sim.scenarios import BOB, SCENARIOS, VECTOR_SEED, VECTOR_START, _world, run_scenario

SCHEMA = etree.XMLSchema(etree.parse("schemas/trust-path.xsd"))


def _path(stanza: bytes):
    message = find_message(parse_stanza(stanza)).message
    return message_fields(message), decode_path(message)


@pytest.fixture
def fed():
    with Federation(seed=VECTOR_SEED, start=VECTOR_START) as world:
        yield world


def test_each_participating_node_adds_one_attestation(fed):
    ss, rs, alice, bob = _world(fed)
    alice.send("bob@b.example", "hello")
    fields, path = _path(bob.inbox[-1].stanza)
    sc_att, ss_att, rs_att = path.attestations
    assert (sc_att.signer, sc_att.in_view, sc_att.out_view.peer) == (alice.jid, None, "a.example")
    assert (ss_att.signer, ss_att.in_view.peer, ss_att.out_view.peer) == ("a.example", alice.jid, "b.example")
    assert (rs_att.signer, rs_att.in_view.peer, rs_att.out_view.peer) == ("b.example", "a.example", BOB)
    assert all(a.stored is None for a in path.attestations)  # nothing was held in storage


def test_client_key_announced_per_session_is_bound_to_that_session(fed):
    ss, rs, alice, bob = _world(fed)
    other = ClientNode(fed, "alice@a.example/laptop", ss)
    other.connect()
    assert ss.sessions[alice.jid].client_key == alice.key.public
    assert ss.sessions[other.jid].client_key == other.key.public != alice.key.public
    # an attestation made with the laptop's key but sent on the phone's session is not kept
    root, fields = alice.message("bob@b.example", "spoofed")
    alice.key, saved = other.key, alice.key
    root, fields = alice.message("bob@b.example", "spoofed")
    alice.key = saved
    alice.server.from_client(alice.session, alice.session.link.client_to_server(serialize(root)))
    _, path = _path(bob.inbox[-1].stanza)
    assert path.attestations[1].in_view.chain is Chain.FAIL
    assert path.attestations[1].in_view.chain_reason == "tampered"


def test_client_uses_a_new_key_for_each_session(fed):
    ss, rs, alice, bob = _world(fed)
    first = alice.key.public
    alice.connect()
    assert alice.key.public != first
    assert ss.sessions[alice.jid].client_key == alice.key.public


def test_a_message_without_id_is_not_attested(fed):
    root = etree.fromstring(b"<message xmlns='jabber:client' from='a@x/r' to='b@y'><body>x</body></message>")
    with pytest.raises(MalformedStanza, match="'id'"):
        message_fields(root)
    ss, rs, alice, bob = _world(fed)
    with pytest.raises(UsageError, match="'id'"):
        attest(MessageFields(sender=alice.jid, to="bob@b.example", id=""), alice.key, signer=alice.jid,
               time=VECTOR_START, out_view=alice.view)


def test_recipient_server_attests_each_resource_separately(fed):
    ss, rs, alice, bob = _world(fed)
    phone = ClientNode(fed, "bob@b.example/phone", rs)
    phone.connect()
    alice.send("bob@b.example", "to every resource")
    for client in (bob, phone):
        _, path = _path(client.inbox[-1].stanza)
        assert path.attestations[-1].out_view.peer == client.jid
        assert client.inbox[-1].report.verdict is Verdict.TRUSTED
    desk_sig = _path(bob.inbox[-1].stanza)[1].attestations[-1].sig
    assert desk_sig != _path(phone.inbox[-1].stanza)[1].attestations[-1].sig


def test_for_must_equal_the_message_id():
    outcome = run_scenario(SCENARIOS[0], seed=VECTOR_SEED, start=VECTOR_START)
    fields, path = _path(outcome.stanza)
    report = verify(replace(fields, id="another"), path, outcome.anchor, VECTOR_START)
    assert report.verdict is Verdict.UNTRUSTED
    assert {a.status for a in report.attestations} == {"replayed"}


def test_prev_key_is_present_exactly_when_the_previous_signer_is_the_peer():
    from trustpath.core.keys import verify_signature
    from trustpath.core.signing import signing_input

    pinned = run_scenario(SCENARIOS[0], seed=VECTOR_SEED, start=VECTOR_START)
    fields, path = _path(pinned.stanza)
    sc, ss, rs = path.attestations
    assert sc.prev_key is None
    # each prev-key is the key that verifies the attestation before it
    assert verify_signature(ss.prev_key, sc.sig, signing_input(fields, "", sc))
    assert verify_signature(rs.prev_key, ss.sig, signing_input(fields, sc.sig, ss))
    assert not verify_signature(rs.prev_key, sc.sig, signing_input(fields, "", sc))
    gap = run_scenario(SCENARIOS[4], seed=VECTOR_SEED, start=VECTOR_START)  # a.example does not take part
    sc, rs = _path(gap.stanza)[1].attestations
    assert rs.prev_key is None and rs.in_view.chain is Chain.ABSENT


def test_missing_key_source_counts_as_none():
    outcome = run_scenario(SCENARIOS[0], seed=VECTOR_SEED, start=VECTOR_START)
    fields, path = _path(outcome.stanza)
    sc, ss, rs = path.attestations
    # b.example re-signs its attestation without saying where a.example's key came from
    from trustpath import attest
    from trustpath.testbed.sim.tls import KeyFactory

    key = KeyFactory(VECTOR_SEED).signing_key("server/b.example/1")
    bare = attest(fields, key, signer=rs.signer, time=rs.time, previous=ss, prev_key=rs.prev_key,
                  in_view=replace(rs.in_view, key_source=None), out_view=rs.out_view)
    report = verify(fields, replace(path, attestations=(sc, ss, bare)), outcome.anchor, VECTOR_START)
    h2 = report.hops[1]
    assert (h2.key_source, h2.reason, report.verdict) == ("none", "weak-key-source", Verdict.UNTRUSTED)


def test_alg_ed25519_is_accepted_and_any_other_rejected(pinned_vector):
    data, anchor, now = pinned_vector
    named = data.replace(b"<attestation signer", b"<attestation alg=\"ed25519\" signer", 1)
    assert b'alg="ed25519"' in named
    # the attribute is signed, so naming it after signing breaks the signature, but it is accepted as input
    assert verify_stanza(named, anchor, now).verdict is not Verdict.TRUSTED
    with pytest.raises(UnsupportedAlgorithm):
        verify_stanza(data.replace(b"<attestation signer", b"<attestation alg=\"rsa\" signer", 1), anchor, now)


@pytest.mark.parametrize("edit, message", [
    (lambda d: re.sub(rb' spki="[^"]*"', b"", d, count=1), "spki"),
    (lambda d: d.replace(b'result="pass"', b'result="fail"', 1), "reason"),
    (lambda d: d.replace(b"<out ", b"<out extra='1' ", 1), "unknown attribute"),
    (lambda d: d.replace(b"</attestation>", b"<note/></attestation>", 1), "may contain only"),
    (lambda d: d.replace(b"</path>", b"<attestation/></path>", 1), "lacks"),
])
def test_views_and_attestations_that_break_the_format_are_rejected(pinned_vector, edit, message):
    data, anchor, now = pinned_vector
    with pytest.raises(MalformedStanza, match=message):
        verify_stanza(edit(data), anchor, now)


def test_server_keeps_only_the_clients_own_valid_attestation(fed):
    ss, rs, alice, bob = _world(fed)

    def wrong_peer(root, fields):  # the client's own attestation naming another server
        from trustpath import attest
        from trustpath.core.codec import add_attestation, remove_paths

        remove_paths(root)
        add_attestation(root, attest(fields, alice.key, signer=alice.jid, time=alice.now(),
                                     out_view=replace(alice.view, peer="c.example")))

    alice.send("bob@b.example", "naming another server", extra=wrong_peer)
    _, path = _path(bob.inbox[-1].stanza)
    assert [a.signer for a in path.attestations] == ["a.example", "b.example"]
    assert path.attestations[0].in_view.chain_reason == "chain-broken"
    alice.send("bob@b.example", "with a forgery", extra=alice.forge_server_attestation)
    _, path = _path(bob.inbox[-1].stanza)
    assert [a.signer for a in path.attestations] == [alice.jid, "a.example", "b.example"]
    assert path.attestations[1].in_view.removed == 1


def test_receiving_server_states_its_chain_check():
    expected = {1: (Chain.PASS, None), 5: (Chain.ABSENT, None), 6: (Chain.STRIPPED, None),
                7: (Chain.FAIL, "tampered"), 9: (Chain.FAIL, "replayed"), 14: (Chain.FAIL, "clock-skew")}
    for number, (chain, reason) in expected.items():
        outcome = run_scenario(SCENARIOS[number - 1], seed=VECTOR_SEED, start=VECTOR_START)
        rs = _path(outcome.stanza)[1].attestations[-1]
        assert (rs.in_view.chain, rs.in_view.chain_reason) == (chain, reason), number


def test_chain_pass_requires_a_valid_key_of_the_peer_domain(fed):
    ss, rs, alice, bob = _world(fed)
    ss.keyset = ss.keyset.revoked(ss.signing.public)  # a.example's key is revoked, yet it signs with it
    alice.send("bob@b.example", "signed with a revoked key")
    rs_att = _path(bob.inbox[-1].stanza)[1].attestations[-1]
    assert (rs_att.in_view.chain, rs_att.in_view.chain_reason) == (Chain.FAIL, "key-revoked")
    assert bob.inbox[-1].report.verdict is Verdict.UNTRUSTED


def test_remembered_policy_turns_a_hidden_feature_into_stripped(fed):
    ss, rs, alice, bob = _world(fed)
    alice.send("bob@b.example", "a.example announces the feature")
    ss.takes_part = False  # an attacker now hides the feature and the attestation
    fed.clock.advance(3 * 86400)
    alice.send("bob@b.example", "three days later")
    assert _path(bob.inbox[-1].stanza)[1].attestations[-1].in_view.chain is Chain.STRIPPED
    fed.clock.advance(8 * 86400)
    alice.send("bob@b.example", "after the remembered period")
    assert _path(bob.inbox[-1].stanza)[1].attestations[-1].in_view.chain is Chain.ABSENT
    assert rs.remember_for >= timedelta(days=7)


def test_a_key_carried_in_the_message_is_never_the_anchor(pinned_vector):
    data, anchor, now = pinned_vector
    impostor = SigningKey.from_seed(b"\x07" * 32)
    fields, path = _path(data)
    sc, ss, rs = path.attestations
    from trustpath import attest

    forged = attest(fields, impostor, signer="b.example", time=rs.time, previous=ss, prev_key=rs.prev_key,
                    in_view=rs.in_view, out_view=rs.out_view)
    report = verify(fields, replace(path, attestations=(sc, ss, forged)), anchor, now)
    assert report.verdict is Verdict.UNTRUSTED
    assert report.hops[-1].reason == "tampered"
    later = verify(fields, replace(path, attestations=(sc, ss, forged)), anchor, now + timedelta(days=30))
    assert later.verdict is Verdict.UNKNOWN and later.hops[-1].reason == "key-unknown"


def test_server_forwards_a_full_path_unchanged(fed):
    ss, rs, alice, bob = _world(fed)

    def fill(root, fields):
        from trustpath import attest
        from trustpath.core.codec import add_attestation

        path = decode_path(root)
        previous = path.attestations[-1]
        for n in range(7):
            key = SigningKey.from_seed(bytes([n + 1]) * 32)
            att = attest(fields, key, signer=f"relay{n}.example", time=alice.now(), previous=previous,
                         prev_key=None, out_view=alice.view)
            add_attestation(root, att)
            previous = att

    ss.takes_part = False  # let the 8 attestations reach b.example as they are
    alice.send("bob@b.example", "a full path", extra=fill)
    _, path = _path(bob.inbox[-1].stanza)
    assert len(path.attestations) == 8
    assert all(a.signer != "b.example" for a in path.attestations)


def test_default_skew_is_300_seconds(pinned_vector):
    data, anchor, now = pinned_vector
    assert DEFAULT_MAX_SKEW == 300
    assert verify_stanza(data, anchor, now - timedelta(seconds=300)).verdict is Verdict.TRUSTED
    assert verify_stanza(data, anchor, now - timedelta(seconds=301)).hops[-1].reason == "clock-skew"


def test_carbon_copy_carries_its_own_delivery_attestation():
    outcome = run_scenario(SCENARIOS[12], seed=VECTOR_SEED, start=VECTOR_START)
    root = parse_stanza(outcome.stanza)
    assert root.find("{urn:xmpp:carbons:2}sent") is not None
    _, path = _path(outcome.stanza)
    assert [a.signer for a in path.attestations] == ["alice@a.example/phone", "a.example"]
    assert path.attestations[-1].out_view.peer == "alice@a.example/laptop"
    assert [h.role for h in outcome.report.hops] == ["sender-c2s", "recipient-c2s"]


def test_offline_delivery_is_signed_at_delivery_with_stored_arrival():
    outcome = run_scenario(SCENARIOS[11], seed=VECTOR_SEED, start=VECTOR_START)
    rs = _path(outcome.stanza)[1].attestations[-1]
    assert rs.stored == "2026-11-25T09:00:00Z"
    assert rs.time == "2026-11-25T12:00:00Z"
    assert any("stored by b.example" in note for note in outcome.report.notes)


def test_server_signs_only_with_a_published_key(fed):
    ss, rs, alice, bob = _world(fed)
    rs.rotate_key()
    assert rs.keyset.keys[0].key == rs.signing.public
    bob.refresh_keys()
    alice.send("bob@b.example", "after rotation")
    assert bob.inbox[-1].report.verdict is Verdict.TRUSTED


def test_first_message_is_signed_after_the_link_is_up(fed):
    ss, rs, alice, bob = _world(fed)
    assert "b.example" not in ss.links
    alice.send("bob@b.example", "the first message opens the link")
    ss_att = _path(bob.inbox[-1].stanza)[1].attestations[1]
    assert ss_att.out_view.spki == rs.credential.spki == ss.links["b.example"].out_view.spki


def test_client_does_not_send_a_requirement_its_own_hop_cannot_meet(fed):
    ss, rs, alice, bob = _world(fed)
    alice.view = replace(alice.view, method="pkix")
    with pytest.raises(RequirementNotMet):
        alice.send("bob@b.example", "only trusted", require="trusted")
    alice.send("bob@b.example", "weak is fine", require="weak")
    assert bob.inbox[-1].report is not None


def test_refusal_error_is_schema_valid_and_names_the_hop():
    outcome = run_scenario(SCENARIOS[14], seed=VECTOR_SEED, start=VECTOR_START)
    root = parse_stanza(outcome.stanza)
    hop = root.find(f"{{jabber:client}}error/{{{NS}}}unverified-hop")
    assert SCHEMA.validate(etree.fromstring(etree.tostring(hop)))
    assert root.find("{jabber:client}error/{urn:ietf:params:xml:ns:xmpp-stanzas}policy-violation") is not None
    assert (hop.get("peer"), hop.get("required")) == ("b.example", "trusted")


def test_requirement_towards_a_non_participating_domain_is_refused(fed):
    ss, rs, alice, bob = _world(fed)
    rs.takes_part = False
    alice.send("bob@b.example", "only trusted", require="trusted")
    assert alice.inbox[-1].error
    assert b'reason="not-participating"' in alice.inbox[-1].stanza
    assert bob.inbox == []


def test_removing_require_after_signing_is_tampering(fed):
    ss, rs, alice, bob = _world(fed)
    ss.outbound_filter = lambda data: data.replace(b'<require xmlns="urn:xmpp:trust-path:0" verdict="weak"/>', b"")
    alice.send("bob@b.example", "weak at least", require="weak")
    assert b"require" not in bob.inbox[-1].stanza
    report = bob.inbox[-1].report
    assert report.verdict is Verdict.UNTRUSTED and report.hops[1].reason == "tampered"


def test_a_message_from_a_non_participating_own_server_is_never_trusted(pinned_vector):
    data, anchor, now = pinned_vector
    assert verify_stanza(data, anchor, now).verdict is Verdict.TRUSTED
    report = verify_stanza(data, replace(anchor, takes_part=False), now)
    assert report.verdict is Verdict.UNKNOWN
    assert report.hops[-1].reason == "not-participating"
    fields = MessageFields(sender="alice@a.example/phone", to="bob@b.example", id="1")
    assert verify(fields, None, replace(anchor, takes_part=False), now).verdict is Verdict.UNKNOWN


def test_once_an_attestation_fails_everything_before_it_is_unvouched():
    outcome = run_scenario(SCENARIOS[6], seed=VECTOR_SEED, start=VECTOR_START)  # body tampered after a.example
    statuses = [a.status for a in outcome.report.attestations]
    assert statuses == ["unvouched", "tampered", "ok"]
    assert (outcome.report.hops[0].result, outcome.report.hops[0].reason) == ("unknown", "unvouched")


def test_a_forwarded_message_counts_only_from_the_own_account(pinned_vector):
    from trustpath.core.errors import ForgedWrapper
    from trustpath.tools.vectors import archived

    data, anchor, now = pinned_vector
    carbon = (b"<message xmlns='jabber:client' from='%s' to='bob@b.example/desk'><received "
              b"xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'>%s</forwarded></received></message>")
    assert verify_stanza(carbon % (b"bob@b.example", data), anchor, now).verdict is Verdict.TRUSTED
    for stranger in (b"mallory@evil.example/x", b"bob@b.example/phone", b"b.example"):
        with pytest.raises(ForgedWrapper):
            verify_stanza(carbon % (stranger, data), anchor, now)
    mam = archived(data, to="bob@b.example/desk", stamp="2026-11-25T09:00:00Z")
    assert verify_stanza(mam, anchor, now + timedelta(days=30)).verdict is Verdict.TRUSTED
    with pytest.raises(ForgedWrapper):
        verify_stanza(mam.replace(b"<message xmlns='jabber:client' ", b"<message xmlns='jabber:client' "
                                  b"from='mallory@evil.example' ", 1), anchor, now)


def test_a_live_stanza_must_be_fresh_and_delivered_to_this_resource(pinned_vector):
    from trustpath.tools.vectors import archived, resign_pinned

    data, anchor, now = pinned_vector
    assert verify_stanza(data, anchor, now + timedelta(days=30)).hops[-1].reason == "clock-skew"
    other = resign_pinned(data, {2: {"out": {"peer": "bob@b.example/phone"}}})
    assert verify_stanza(other, anchor, now).hops[-1].reason == "chain-broken"
    from_archive = archived(other, to="bob@b.example/desk", stamp="2026-11-25T09:00:00Z")
    assert verify_stanza(from_archive, anchor, now).verdict is Verdict.TRUSTED


STRENGTH_CASES = [(m, v) for m, v in (("pin", "trusted"), ("dane-ee", "trusted"), ("dane-ta", "trusted"),
                                      ("pkix", "weak"), ("dialback-dnssec", "weak"), ("dialback", "untrusted"),
                                      ("none", "untrusted"))]


@pytest.mark.parametrize("method, verdict", STRENGTH_CASES)
def test_the_method_of_the_receiving_server_sets_the_strength_of_h2(pinned_vector, method, verdict):
    from trustpath.tools.vectors import resign_pinned

    data, anchor, now = pinned_vector
    assert verify_stanza(resign_pinned(data, {2: {"in": {"method": method}}}), anchor, now).verdict.value == verdict


@pytest.mark.parametrize("source, verdict", [("link", "trusted"), ("config", "trusted"), ("dnssec", "trusted"),
                                             ("posh", "weak"), ("tofu", "weak"), ("none", "untrusted")])
def test_the_key_source_caps_the_path(pinned_vector, source, verdict):
    from trustpath.tools.vectors import resign_pinned

    data, anchor, now = pinned_vector
    edited = resign_pinned(data, {2: {"in": {"key_source": KeySource(source)}}})
    assert verify_stanza(edited, anchor, now).verdict.value == verdict


def test_preflight_answers_with_the_view_the_server_would_attest(fed):
    ss, rs, alice, bob = _world(fed)
    answer = alice.preflight("b.example")
    assert (answer.domain, answer.takes_part) == ("b.example", True)
    alice.send("bob@b.example", "after the pre-flight")
    attested = _path(bob.inbox[-1].stanza)[1].attestations[1].out_view
    assert answer.out_view == attested and attested.method == "pin"


def test_preflight_shows_a_failing_pin_and_a_domain_that_does_not_take_part():
    from trustpath.testbed.sim.federation import Interceptor

    with Federation(seed=VECTOR_SEED, start=VECTOR_START) as world:
        world.interceptors[("a.example", "b.example")] = Interceptor(world, "a.example", "b.example")
        ss, rs, alice, bob = _world(world)
        failed = alice.preflight("b.example").out_view
        assert (failed.result.value, failed.reason, failed.method) == ("fail", "pin-mismatch", "pin")
    with Federation(seed=VECTOR_SEED, start=VECTOR_START) as world:
        ss, rs, alice, bob = _world(world, h2="pkix", h2_in="pkix")
        rs.takes_part = False
        answer = alice.preflight("b.example")
        assert answer.takes_part is False and answer.out_view.method == "pkix"


def test_preflight_answers_are_read_strictly():
    from trustpath.core.preflight import PreflightAnswer, decode_preflight, preflight_element

    good = preflight_element(PreflightAnswer("b.example", True, None))
    assert decode_preflight(good) == PreflightAnswer("b.example", True, None)
    for bad in ("<preflight xmlns='urn:xmpp:trust-path:0'/>",
                "<preflight xmlns='urn:xmpp:trust-path:0' domain='b.example' takes-part='maybe'/>",
                "<preflight xmlns='urn:xmpp:trust-path:0' domain='b.example' extra='1'/>",
                "<preflight xmlns='urn:xmpp:trust-path:0' domain='b.example'><in/></preflight>",
                "<preflight xmlns='urn:xmpp:trust-path:0' domain='b.example'><out peer='c.example' side='client' "
                "tls='none' method='none' result='none'/></preflight>"):
        with pytest.raises(MalformedStanza):
            decode_preflight(etree.fromstring(bad))
    assert SCHEMA.validate(good)


@pytest.mark.parametrize("with_path", [True, False], ids=["with-a-path", "without-a-path"])
def test_a_groupchat_message_is_unknown_whatever_its_path(pinned_vector, with_path):
    """Rule 57 (and the exception in rule 25): a room rewrites 'from' and 'to', so a groupchat
    message's path is never checked and every hop is named as not taking part."""
    data, anchor, now = pinned_vector
    room = data.replace(b'from="alice@a.example/phone"', b'from="room@rooms.b.example/alice"', 1) \
        .replace(b'type="chat"', b'type="groupchat"', 1)
    assert room != data
    if not with_path:
        root = parse_stanza(room)
        root.remove(root.find(f"{{{NS}}}path"))
        room = serialize(root)
    report = verify_stanza(room, anchor, now)
    assert report.verdict is Verdict.UNKNOWN
    assert [h.reason for h in report.hops] == ["not-participating"] * 3
    assert report.weakest == ("H1", "H2", "H3") and report.attestations == ()
    assert [(h.sender, h.receiver) for h in report.hops] == [
        ("room@rooms.b.example/alice", "rooms.b.example"), ("rooms.b.example", "b.example"),
        ("b.example", "bob@b.example/desk")]
    # the same message as a chat message without its path is stripped, as rule 25 says
    chat = parse_stanza(data)
    chat.remove(chat.find(f"{{{NS}}}path"))
    assert verify_stanza(serialize(chat), anchor, now).hops[-1].reason == "stripped"


def test_a_retyped_chat_message_is_checked_and_servers_keep_checking_groupchat(pinned_vector, fed):
    """Rule 57's limits: a groupchat message its 'from' signed was reflected by no room and is
    checked as usual (the type is signed: tampered); and a receiving server, which vouches for
    what it passes on, checks the chain of a groupchat message like any other."""
    data, anchor, now = pinned_vector
    retyped = data.replace(b'type="chat"', b'type="groupchat"', 1)
    report = verify_stanza(retyped, anchor, now)
    assert report.verdict is Verdict.UNTRUSTED and report.hops[-1].reason == "tampered"
    # a server's check (me = a domain) of a groupchat message whose signed fields no longer match:
    # the attestations are checked, not dropped, so the chain does not pass
    room = retyped.replace(b'from="alice@a.example/phone"', b'from="room@rooms.b.example/alice"', 1)
    fields, path = _path(room)
    assert path is not None and len(path.attestations) == 3
    assert not verify(fields, path, replace(anchor, me="b.example"), now).chain_ok
    assert verify(fields, path, anchor, now).hops[0].reason == "not-participating"  # the client's view
