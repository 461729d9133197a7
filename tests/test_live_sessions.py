"""Sessions live: client-state delays (XEP-0352) and the module's internal markers.

* **Client state.**  b.example runs Prosody's mod_csi_simple: while bob's client says it is
  inactive, stanzas that are not urgent (a reaction without a body, say) are held for him and
  written out later (when he becomes active, or an urgent stanza comes).  What a client-state
  delay holds is shown like a stored message: b.example signs when the message is written out,
  with ``st=`` its arrival, so a long hold is neither a false clock-skew nor a record that
  claims a delivery time the message never had.  Both servers run under libfaketime (as in
  tests/test_live_resumption.py): their clocks stand 450 s behind while the message is held,
  then jump to the real time, more than the 300 s skew.

* **Internal markers.**  What b.example knew when a message reached it travels inside the stanza
  as an internal marker until the message leaves.  No marker reaches a client, also after an
  XEP-0198 resumption with two resources or with carbons (the resent stanzas go out through the
  new connection's filters), and a marker that came from anywhere but this server's own hooks is
  never honoured: the attack of issue 11 item 1 (a user of a server without the module sends a
  private message through a room on b.example carrying a marker b.example made for another
  message) gets no record signed from it.

Marked ``live`` (tests/conftest.py)."""

from __future__ import annotations

import asyncio
import os
import re
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import require_prosody
from slixmpp.xmlstream import ET
from test_live_resumption import BOB, HELD, _bob, _cut, _delivering_record, _faketime_env, _reconnect
from trustpath.client.slixmpp.wire import wire_bytes
from trustpath.core.model import Verdict
from trustpath.testbed.harness.clients import Client
from trustpath.testbed.harness.scenarios import Live, in_live_world, next_event
from trustpath.testbed.harness.world import build_world

ALICE = "alice@a.example/phone"
PHONE = "bob@b.example/phone"
NS_CSI = "urn:xmpp:csi:0"
NS_INTERNAL = "urn:xmpp:trust-path:internal:0"
ROOM = "room@rooms.b.example"
KEEP = bool(os.environ.get("TRUSTPATH_HARNESS_KEEP"))


@pytest.fixture(autouse=True)
def _prosody() -> None:
    require_prosody()


def _pinned(domain: str, spki: dict[str, str]) -> dict[str, object]:
    other = "b.example" if domain == "a.example" else "a.example"
    return {"trust_path_s2s_pins": {other: [spki[other]]}}


def _records(stanza: bytes) -> list[dict[str, str]]:
    """Every record of the (first) path in ``stanza``, as fields."""
    text = re.search(rb"<path xmlns=\"urn:xmpp:trust-path:1\">([^<]*)</path>", stanza)
    if text is None:
        return []
    return [dict(f.split("=", 1) for f in r.split(";")) for r in text.group(1).decode().split()]


def _shown(event: Any) -> str:
    report = event.report
    return f"{report.verdict.value} {list(report.notes)} {report.to_json()['hops']}"


# --- client-state delays ------------------------------------------------------------------------

def _reaction(client: Client, to: str, emoji: str) -> str:
    """A reaction (XEP-0444) and nothing else: no body, so mod_csi_simple holds it for an inactive
    client; the plugin signs it (a covered payload)."""
    message = client.xmpp.make_message(mto=to, mtype="chat")
    message["id"] = client.xmpp.new_id()
    reactions = ET.SubElement(message.xml, "{urn:xmpp:reactions:0}reactions")
    reactions.set("id", "an-earlier-message")
    ET.SubElement(reactions, "{urn:xmpp:reactions:0}reaction").text = emoji
    message.send()
    return message["id"]


def _csi_world(offset_file: Path) -> Any:
    env = _faketime_env(offset_file)
    return build_world(modules={"a.example": ["trust_path"], "b.example": ["trust_path", "csi_simple"]},
                       env={"a.example": env, "b.example": env}, configure=_pinned, keep_files=KEEP)


def _assert_shown_as_held(what: str, event: Any, written_after: float) -> None:
    stanza = wire_bytes(event.stanza.xml)
    shown = f"{what}: {_shown(event)}"
    assert event.report.verdict in (Verdict.TRUSTED, Verdict.WEAK), shown
    assert "clock-skew" not in str(event.report.to_json()), shown
    assert any("stored by b.example" in n for n in event.report.notes), shown
    assert NS_INTERNAL.encode() not in stanza, f"{what}: a marker leaked"
    record = _delivering_record(stanza)
    assert record["s"] == "b.example" and record["p"] == BOB, record
    # signed when it was written out (real time), not when it was held (450 s earlier)
    assert int(record["t"]) >= written_after, f"{what}: signed at {record['t']}, before it was written out"
    assert "st" in record and int(record["t"]) - int(record["st"]) >= HELD - 5, record


@pytest.mark.parametrize("flush", ["active", "urgent"])
def test_a_message_held_for_an_inactive_client_is_shown_like_stored(tmp_path, flush):
    """bob says <inactive/>; alice's reaction waits in b.example's client-state buffer; 450 s
    later (servers' clocks) bob says <active/>, or a message with a body flushes the buffer: the
    reaction is signed then, with 'st=' its arrival: no clock-skew, a 'stored' note."""
    offset_file = tmp_path / "faketime"
    offset_file.write_text(f"-{HELD}\n")

    async def steps(live: Live) -> None:
        alice = await live.client(ALICE)
        bob = await live.client(BOB)
        bob.xmpp.send_raw(f"<inactive xmlns='{NS_CSI}'/>")
        await asyncio.sleep(0.5)
        reaction = _reaction(alice, "bob@b.example", "👍")
        await asyncio.sleep(1.5)
        assert bob.verdicts.empty(), "the reaction was not held: is mod_csi_simple loaded on b.example?"
        offset_file.write_text("+0\n")  # 450 s pass on both servers
        written_after = int(time.time()) - 2
        if flush == "active":
            bob.xmpp.send_raw(f"<active xmlns='{NS_CSI}'/>")
        else:
            alice.send("bob@b.example", "A message with a body: urgent, it flushes the buffer.")
        event = await next_event(bob.verdicts)
        assert event.stanza["id"] == reaction, "the held reaction comes first"
        _assert_shown_as_held(f"held until {flush}", event, written_after)
        if flush == "urgent":
            event = await next_event(bob.verdicts)
            assert event.report.verdict in (Verdict.TRUSTED, Verdict.WEAK), _shown(event)
            assert "st" not in _delivering_record(wire_bytes(event.stanza.xml)), "the urgent one was not held"
        # bob is active again (or about to be): a reaction now is delivered at once, not stored
        bob.xmpp.send_raw(f"<active xmlns='{NS_CSI}'/>")
        await asyncio.sleep(0.3)
        _reaction(alice, "bob@b.example", "🎉")
        event = await next_event(bob.verdicts)
        assert event.report.verdict in (Verdict.TRUSTED, Verdict.WEAK), _shown(event)
        assert not any("stored" in n for n in event.report.notes), _shown(event)

    in_live_world(lambda: _csi_world(offset_file), steps)


def test_a_carbon_held_for_an_inactive_client_is_shown_like_stored(tmp_path):
    """bob/desk (carbons on) is inactive, bob/phone active; alice's reaction to bob/phone reaches
    desk as a carbon copy, which waits in desk's buffer; 450 s later desk says <active/>: the
    forwarded message's record for desk has 'st=' its arrival, so neither H2 (a.example's record
    450 s before b.example's) nor H3 shows a clock-skew."""
    offset_file = tmp_path / "faketime"
    offset_file.write_text(f"-{HELD}\n")

    async def steps(live: Live) -> None:
        alice = await live.client(ALICE)
        desk = await live.client(BOB, carbons=True)
        phone = await live.client(PHONE)
        desk.xmpp.send_raw(f"<inactive xmlns='{NS_CSI}'/>")
        await asyncio.sleep(0.5)
        _reaction(alice, PHONE, "👀")
        await next_event(phone.verdicts)
        await asyncio.sleep(1)
        assert desk.verdicts.empty(), "the carbon was not held"
        offset_file.write_text("+0\n")
        written_after = int(time.time()) - 2
        desk.xmpp.send_raw(f"<active xmlns='{NS_CSI}'/>")
        event = await next_event(desk.verdicts)
        stanza = wire_bytes(event.stanza.xml)
        assert b"<received xmlns=\"urn:xmpp:carbons:2\"" in stanza, stanza
        shown = _shown(event)
        assert event.report.verdict in (Verdict.TRUSTED, Verdict.WEAK), shown
        assert "clock-skew" not in str(event.report.to_json()), shown
        assert any("stored by b.example" in n for n in event.report.notes), shown
        assert NS_INTERNAL.encode() not in stanza, "a marker leaked"
        record = _records(stanza)[-1]
        assert record["p"] == BOB and int(record["t"]) >= written_after and "st" in record, record

    in_live_world(lambda: _csi_world(offset_file), steps)


def test_a_message_held_for_an_inactive_client_whose_connection_is_lost_comes_once_after_resumption(tmp_path):
    """bob (XEP-0198) says <inactive/>; alice's reaction is held; his connection is lost, and
    450 s later (servers' clocks) he resumes on a new connection: the reaction comes once, signed
    for the new connection with 'st=' its arrival."""
    offset_file = tmp_path / "faketime"
    offset_file.write_text(f"-{HELD}\n")

    def world() -> Any:
        env = _faketime_env(offset_file)
        return build_world(modules={"a.example": ["trust_path"], "b.example": ["trust_path", "smacks", "csi_simple"]},
                           env={"a.example": env, "b.example": env}, configure=_pinned, keep_files=KEEP)

    async def steps(live: Live) -> None:
        alice = await live.client(ALICE)
        bob = await _bob(live)
        bob.xmpp.send_raw(f"<inactive xmlns='{NS_CSI}'/>")
        await asyncio.sleep(0.5)
        reaction = _reaction(alice, "bob@b.example", "🙂")
        await asyncio.sleep(1.5)
        assert bob.verdicts.empty(), "the reaction was not held"
        await _cut(bob)
        offset_file.write_text("+0\n")
        written_after = int(time.time()) - 2
        await _reconnect(bob, "session_resumed")
        event = await next_event(bob.verdicts)
        assert event.stanza["id"] == reaction
        _assert_shown_as_held("held, then resumed", event, written_after)
        assert _delivering_record(wire_bytes(event.stanza.xml))["o"].startswith("sasl,pass,1.3,")
        await asyncio.sleep(1.5)
        assert bob.verdicts.empty(), f"delivered twice: {_shown(bob.verdicts.get_nowait())}"

    in_live_world(world, steps)


# --- internal markers after a resumption --------------------------------------------------------

def _smacks_world(offset_file: Path) -> Any:
    env = _faketime_env(offset_file)
    return build_world(modules={"a.example": ["trust_path"], "b.example": ["trust_path", "smacks"]},
                       env={"a.example": env, "b.example": env}, configure=_pinned, keep_files=KEEP)


def _assert_for_desk(what: str, stanza: bytes, records: list[dict[str, str]]) -> None:
    assert NS_INTERNAL.encode() not in stanza, f"{what}: an internal marker reached bob/desk: {stanza!r}"
    by_b = [r for r in records if r.get("s") == "b.example" and "p" in r]
    assert by_b, f"{what}: no delivery record by b.example: {stanza!r}"
    assert [r["p"] for r in by_b] == [BOB], f"{what}: delivery records for {[r['p'] for r in by_b]}, not bob/desk alone"
    assert by_b[-1]["o"].startswith("sasl,pass,1.3,"), f"{what}: {by_b[-1]['o']} is not the new connection's view"


def test_after_a_resumption_with_two_resources_bob_desk_gets_only_its_own_record(tmp_path):
    """bob/desk hibernates while bob/phone stays; alice writes to bob (bare JID): the copy held
    for desk is resent on the new connection with desk's own record, never phone's record nor
    the server's internal marker."""
    offset_file = tmp_path / "faketime"
    offset_file.write_text("+0\n")

    async def steps(live: Live) -> None:
        alice = await live.client(ALICE)
        desk = await _bob(live)
        phone = await live.client(PHONE)
        await _cut(desk)
        alice.send("bob@b.example", "To both of bob's resources.")
        event = await next_event(phone.verdicts)
        phone_records = _records(wire_bytes(event.stanza.xml))
        assert phone_records[-1]["p"] == PHONE, phone_records
        await _reconnect(desk, "session_resumed")
        event = await next_event(desk.verdicts)
        stanza = wire_bytes(event.stanza.xml)
        _assert_for_desk("two resources", stanza, _records(stanza))
        assert event.report.verdict in (Verdict.TRUSTED, Verdict.WEAK), _shown(event)

    in_live_world(lambda: _smacks_world(offset_file), steps)


def test_after_a_resumption_carbons_reach_bob_desk_without_markers(tmp_path):
    """bob/desk (carbons on) hibernates; bob/phone writes to alice (a sent carbon for desk) and
    alice writes to bob/phone (a received carbon for desk).  450 s later (servers' clocks), resent
    on desk's new connection, each carbon's message carries desk's own record with 'st=', and no
    marker: no clock-skew for the wait."""
    offset_file = tmp_path / "faketime"
    offset_file.write_text(f"-{HELD}\n")

    async def steps(live: Live) -> None:
        alice = await live.client(ALICE)
        desk = await _bob(live)
        desk.xmpp.register_plugin("xep_0280")
        await desk.xmpp.plugin["xep_0280"].enable()
        phone = await live.client(PHONE)
        await _cut(desk)
        phone.send("alice@a.example", "From bob's phone: desk gets a sent carbon.")
        await next_event(alice.verdicts)
        alice.send(PHONE, "To bob's phone: desk gets a received carbon.")
        await next_event(phone.verdicts)
        offset_file.write_text("+0\n")  # 450 s pass on both servers
        await _reconnect(desk, "session_resumed")
        seen = {}
        for _ in range(2):
            event = await next_event(desk.verdicts)
            stanza = wire_bytes(event.stanza.xml)
            kind = "sent" if b"<sent xmlns=\"urn:xmpp:carbons:2\"" in stanza else "received"
            seen[kind] = event
            records = _records(stanza)
            _assert_for_desk(f"{kind} carbon", stanza, records)
            assert "st" in records[-1], f"{kind} carbon: {records[-1]}"
            assert "clock-skew" not in str(event.report.to_json()), f"{kind} carbon: {_shown(event)}"
        assert set(seen) == {"sent", "received"}, seen.keys()
        assert seen["received"].report.verdict in (Verdict.TRUSTED, Verdict.WEAK), _shown(seen["received"])

    in_live_world(lambda: _smacks_world(offset_file), steps)


# --- a forged marker through a room -------------------------------------------------------------

def _stored_marker(world: Any, user: str) -> ET.Element:
    """A marker b.example made for a message and kept in ``user``'s offline storage: what a leak
    of any marker would give an attacker (the old module's markers carried one server-wide
    token, so one leaked marker made every forged one valid)."""
    path = world.servers["b.example"].workdir / "data" / "b%2eexample" / "offline" / f"{user}.list"
    deadline = time.monotonic() + 5
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    text = path.read_text()
    # util.serialization writes each element as a table, its attributes as ["attr"] = { ["k"] = "v"; ... }
    for block in re.findall(r'\["attr"\] = \{([^{}]*)\}', text):
        fields = dict(re.findall(r'\["([^"]+)"\] = "([^"]*)"', block))
        if fields.pop("xmlns", None) == NS_INTERNAL:
            marker = ET.Element(f"{{{NS_INTERNAL}}}pending")
            for name, value in fields.items():
                marker.set(name, value)
            return marker
    raise AssertionError(f"no marker in {path}: {text[:2000]}")


def _room_world() -> Any:
    return build_world(modules={"a.example": [], "b.example": ["trust_path"]},
                       users=("alice", "bob", "dave"), components={"b.example": {"rooms.b.example": "muc"}},
                       keep_files=KEEP)


def test_a_marker_forged_through_a_room_is_never_honoured():
    """alice@a.example (a server without the module) sends bob a private message through a room
    on b.example, carrying a marker b.example once made (taken from its offline storage, as a
    leak would give it).  The room, a local component, relays it to bob: b.example signs nothing
    from that marker, and no marker reaches bob."""
    async def steps(live: Live) -> None:
        bob = await live.client(BOB)
        # a marker b.example makes: bob writes to dave, who is offline
        bob.send("dave@b.example", "Dave is offline: this waits in storage, with its marker.")
        leaked = await asyncio.to_thread(_stored_marker, live.world, "dave")
        alice = Client(ALICE, live.world, plugins=("xep_0045",))
        await alice.start()
        live.clients[ALICE] = alice  # type: ignore[assignment]  # stopped with the others
        bob.xmpp.register_plugin("xep_0045")
        await bob.xmpp.plugin["xep_0045"].join_muc_wait(ROOM, "bob", maxstanzas=0, timeout=10)
        await alice.xmpp.plugin["xep_0045"].join_muc_wait(ROOM, "alice", maxstanzas=0, timeout=10)
        message = alice.xmpp.make_message(mto=f"{ROOM}/bob", mbody="Trust me: b.example checked this.",
                                          mtype="chat")
        message["id"] = alice.xmpp.new_id()
        message.xml.append(leaked)
        message.send()
        event = await next_event(bob.verdicts)
        while event.stanza["type"] == "groupchat":  # the room's subject, on joining
            event = await next_event(bob.verdicts)
        stanza = wire_bytes(event.stanza.xml)
        assert event.stanza["from"] == f"{ROOM}/alice", stanza
        assert NS_INTERNAL.encode() not in stanza, f"the forged marker reached bob: {stanza!r}"
        signed = [r for r in _records(stanza) if r.get("s") == "b.example"]
        assert not signed, f"b.example signed a record from a forged marker: {signed}"
        assert event.report.verdict is Verdict.UNKNOWN, _shown(event)
        assert not any("b.example states what reached it" in n for n in event.report.notes), _shown(event)

    in_live_world(_room_world, steps)
