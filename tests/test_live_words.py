"""Issue 11, item 5, "wrong words", live: two Prosody servers with mod_trust_path and slixmpp
clients with the trust_path plugin, as the attack found them.

* A third party's error carrying ``<unverified-hop/>`` for a delivered message made alice's plugin
  say "not delivered".  Only a refusal of a message she sent, signed by the server that refused
  and by every server on its way back, is believed; her server removes every
  ``<unverified-hop/>`` a client sent or that claims to be its own and is not, in any ``<error/>``.
* A sending server put 'st' (stored) on its own record and passed a message off as held for two
  days.  Only the server that delivers states 'st': b.example removes such a path and writes
  ``c=fail.malformed``.
* A message id over 256 characters was signed by both servers and then refused by every
  verifier.  Such an id is no id on every node: nobody signs it, and it reads ``unknown``
  (``no-id``); the limit counts characters on both cores (an id of 200 characters in 400 bytes
  is signed and verified like any other).

Marked ``live`` (tests/conftest.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from conftest import require_prosody
from slixmpp.xmlstream import ET

from trustpath.client.slixmpp.wire import wire_bytes
from trustpath.core.codec import decode_path, find_message, parse_stanza
from trustpath.core.model import NS, Chain, Verdict
from trustpath.testbed.harness.scenarios import Live, Setup, _configure, in_live_world, next_event, world_for
from trustpath.testbed.harness.world import build_world

ALICE, BOB, CAROL = "alice@a.example/phone", "bob@b.example/desk", "carol@a.example/desk"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"


@pytest.fixture(autouse=True)
def _prosody() -> None:
    require_prosody()


def _forged_refusal(client: Any, to: str, ident: str, by: str, *, second: bool = False) -> None:
    """``client`` sends an error for message ``ident`` that says ``by`` refused it, naming a hop;
    with ``second``, in a second ``<error/>`` after a plain one (a stanza error has one)."""
    error = client.xmpp.make_message(mto=to, mtype="error")
    error["id"] = ident
    if second:
        error.xml.append(ET.fromstring(f"<error xmlns='jabber:client' type='cancel'>"
                                       f"<undefined-condition xmlns='{NS_STANZAS}'/></error>"))
    error.xml.append(ET.fromstring(
        f"<error xmlns='jabber:client' type='cancel' by='{by}'><policy-violation xmlns='{NS_STANZAS}'/>"
        f"<unverified-hop xmlns='{NS}' peer='b.example' method='none' reason='not-verified' required='trusted'/>"
        f"</error>"))
    error.send()


def _carries_unverified_hop(error: Any) -> bool:
    return wire_bytes(error.xml).find(b"unverified-hop") >= 0


def test_a_refusal_forged_by_a_third_party_for_a_delivered_message_is_not_believed_live():
    """bob (a remote party) and carol (a local one) each tell alice, in a.example's name, that her
    delivered message was refused, and bob once more in b.example's name.  The servers remove every
    <unverified-hop/> (a.example what claims to be its own, b.example what its client sent), and
    alice's plugin reports no refusal.  A real refusal by a.example (the sender required trusted, H2 is checked
    by a CA only) still names the hop."""
    async def steps(live: Live) -> None:
        alice = await live.client(ALICE)
        bob = await live.client(BOB)
        carol = await live.client(CAROL)
        refusals: asyncio.Queue[Any] = asyncio.Queue()
        alice.xmpp.add_event_handler("trust_path_unverified_hop", refusals.put_nowait)
        message = alice.xmpp.make_message(mto="bob@b.example", mbody="Delivered, whatever anyone says.",
                                          mtype="chat")
        message["id"] = "delivered-1"
        message.send()
        delivered = await next_event(bob.verdicts)
        assert delivered.report.verdict is Verdict.WEAK  # delivered (H2 checked by a CA only)
        _forged_refusal(bob, ALICE, "delivered-1", "a.example")  # over s2s, in a.example's name
        first = await next_event(alice.errors)
        _forged_refusal(carol, ALICE, "delivered-1", "a.example")  # from a local client
        second = await next_event(alice.errors)
        _forged_refusal(bob, ALICE, "delivered-1", "b.example")  # in his own server's name
        third = await next_event(alice.errors)
        # rule 5, "every <unverified-hop/>": also one in a second <error/> (a.example looked only
        # at the first)
        _forged_refusal(carol, ALICE, "delivered-1", "a.example", second=True)
        fourth = await next_event(alice.errors)
        assert (first["id"], second["id"], third["id"], fourth["id"]) == ("delivered-1",) * 4
        assert not _carries_unverified_hop(first), "a.example removes a refusal in its name it did not write"
        assert not _carries_unverified_hop(second), "a.example removes a refusal its own client sent"
        assert not _carries_unverified_hop(third), "b.example removes what its own client claims it refused"
        assert not _carries_unverified_hop(fourth), "a.example removes a refusal its client hid in a second <error/>"
        await asyncio.sleep(0.5)
        assert refusals.empty(), "alice's plugin believes none of them"
        # and a.example's own refusal is still believed
        alice.xmpp.plugin["trust_path"].send_message_with_requirement("bob@b.example", "Only over verified hops.",
                                                                      "trusted")
        refusal = await next_event(refusals)
        assert refusal.hop.get("peer") == "b.example" and refusal.hop.get("required") == "trusted"

    # H2 checked by a CA only: a.example refuses a message that requires trusted hops
    in_live_world(lambda: build_world(modules={"a.example": ["trust_path"], "b.example": ["trust_path"]},
                                      configure=_configure(Setup(s2s_pins=False)), users=("alice", "bob", "carol")),
                  steps)


def test_a_sending_server_that_states_stored_on_its_own_record_fails_at_the_receiving_server_live():
    """a.example (its test relay) signs its record again with 'st=' two days back.  b.example
    removes the path and states c=fail.malformed; bob sees untrusted at H2, never "stored"."""
    async def steps(live: Live) -> None:
        alice = await live.client(ALICE)
        bob = await live.client(BOB)
        alice.send("bob@b.example", "Held for two days, says my server.")
        event = await next_event(bob.verdicts)
        report = event.report
        shown = (report.verdict, [(h.label, h.reason) for h in report.hops], report.notes)
        assert report.verdict is Verdict.UNTRUSTED, shown
        assert [h.reason for h in report.hops if h.label == "H2"] == ["malformed"], shown
        assert not any("stored" in note for note in report.notes), shown
        path = decode_path(find_message(parse_stanza(wire_bytes(event.stanza.xml))).message)
        assert path is not None and [r.signer for r in path.records] == ["b.example"]
        assert (path.records[0].chain, path.records[0].chain_reason) == (Chain.FAIL, "malformed")
        log = live.world.servers["a.example"].log_lines("test relay: stored")
        assert log, "the relay re-signed a.example's record with st="

    in_live_world(lambda: world_for(Setup(attack="stored")), steps)


def test_a_message_id_over_256_characters_is_signed_by_nobody_and_reads_unknown_live():
    """An id of 300 characters: no record at all reaches bob, and he sees unknown (no-id), not an
    unreadable path.  An id of 200 characters in 400 bytes of UTF-8 is signed by every node (the
    Lua core counted bytes, and dropped alice's record) and reads trusted."""
    async def steps(live: Live) -> None:
        alice = await live.client(ALICE)
        bob = await live.client(BOB)
        invalid: asyncio.Queue[Any] = asyncio.Queue()
        bob.xmpp.add_event_handler("trust_path_invalid", invalid.put_nowait)
        for ident, verdict, signers in (("x" * 300, Verdict.UNKNOWN, []),
                                        ("é" * 200, Verdict.TRUSTED, [None, "a.example", "b.example"])):
            message = alice.xmpp.make_message(mto="bob@b.example", mbody=f"an id of {len(ident)} characters",
                                              mtype="chat")
            message["id"] = ident
            message.send()
            event = await next_event(bob.verdicts)
            assert event.stanza["id"] == ident
            assert event.report.verdict is verdict, [(h.label, h.reason) for h in event.report.hops]
            if verdict is Verdict.UNKNOWN:
                assert {h.reason for h in event.report.hops} == {"no-id"}
            path = decode_path(find_message(parse_stanza(wire_bytes(event.stanza.xml))).message)
            assert ([r.signer for r in path.records] if path is not None else []) == signers
        assert invalid.empty()

    in_live_world(lambda: world_for(Setup()), steps)
