"""``<require/>`` on every route, live (issue 11 item 2): each route on which a message that
required verified hops was delivered although a hop could not meet it.  Two real Prosody
servers with mod_trust_path, a MUC component on b.example where a route goes through a room,
slixmpp clients with the trust_path plugin.

On every route the sender must get the XEP's error (``<policy-violation/>`` with
``<unverified-hop/>``, type 'cancel', from the server that refused), the message must not reach
anyone, and the error must not echo the message's payloads (like RFC 8689 section 5's
non-delivery reports).  The error is attested: its path starts with the refusing server's record
(which covers the refusal, ``h=refusal``, and states no in-view or chain: nothing brought the error
to it), followed by a record of each server on the way back, and the sender's plugin verifies it
from the refusing server (``verify_refusal``: every signature, and the path's verdict).

Marked ``live`` (tests/conftest.py); the servers listen on TRUSTPATH_LOOPBACK's addresses:
``TRUSTPATH_LOOPBACK=127.0.13 pytest tests/test_live_require.py``.
"""

from __future__ import annotations

import asyncio
import os
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from conftest import require_prosody
from trustpath.client.slixmpp.pins import PinStore
from trustpath.client.slixmpp.wire import wire_bytes
from trustpath.core.model import NS, Verdict
from trustpath.testbed.harness.clients import Client, TrustPathClient
from trustpath.testbed.harness.scenarios import Live, in_live_world, next_event
from trustpath.testbed.harness.world import World, build_world
from trustpath.testbed.scenarios import ALICE, BOB

ROOMS = "rooms.b.example"
ROOM = f"room@{ROOMS}"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
#: how long a message that must not arrive is given to arrive anyway
QUIET = 3.0


@pytest.fixture(autouse=True)
def _prosody() -> None:
    require_prosody()


def _world(*, s2s_pins: bool = True, a_takes_part: bool = True, rooms: bool = False) -> Callable[[], World]:
    def configure(domain: str, spki: dict[str, str]) -> dict[str, object]:
        other = "b.example" if domain == "a.example" else "a.example"
        return {"trust_path_s2s_pins": {other: [spki[other]]}} if s2s_pins else {}

    def make() -> World:
        modules = {"a.example": ["trust_path"] if a_takes_part else [], "b.example": ["trust_path"]}
        return build_world(modules=modules, configure=configure,
                           components={"b.example": {ROOMS: "muc"}} if rooms else None,
                           keep_files=bool(os.environ.get("TRUSTPATH_HARNESS_KEEP")))

    return make


async def _client(live: Live, jid: str, *, pins: bool = True, bound: bool = True, mucs: bool = False,
                  extra_filter: Callable[[Any], Any] | None = None) -> TrustPathClient:
    """A trust_path client; with ``bound`` False it speaks TLS 1.3, so that its login has no
    channel binding its server can check (Prosody 0.12 binds with tls-unique only)."""
    domain = jid.split("@")[1].split("/")[0]
    store = PinStore()
    if pins:
        store.add(domain, live.world.spki[domain])
    client = TrustPathClient(jid, live.world, pins=store, config={"bind_channel": bound})
    if not bound:
        client.xmpp.ssl_context.maximum_version = ssl.TLSVersion.MAXIMUM_SUPPORTED
    if mucs:
        client.xmpp.register_plugin("xep_0045")
    ready: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    client.xmpp.add_event_handler("trust_path_ready", lambda policy: ready.done() or ready.set_result(policy))
    await client.start()
    await asyncio.wait_for(ready, 10)
    if extra_filter is not None:
        client.xmpp.add_filter("out_sce", extra_filter)  # after the plugin signed
    live.clients[jid] = client
    return client


async def _plain(live: Live, jid: str) -> Client:
    """A client without the trust_path plugin (its server may not take part either)."""
    client = Client(jid, live.world, plugins=("xep_0045",))
    await client.start()
    live.clients[jid] = client  # type: ignore[assignment]
    return client


async def _join(client: Client, nick: str) -> None:
    """Join the room (created on first join: the harness's MUC has no room locking)."""
    await client.xmpp.plugin["xep_0045"].join_muc_wait(ROOM, nick, maxstanzas=0, timeout=10)


def _send_required(client: Client, to: str, body: str, verdict: str = "trusted", *, mtype: str = "chat") -> str:
    """A message with ``<require verdict=.../>``, built by hand so that no client-side check
    stops it (the servers' checks are under test)."""
    message = client.xmpp.make_message(mto=to, mbody=body, mtype=mtype)
    message["id"] = client.xmpp.new_id()
    require = message.xml.makeelement(f"{{{NS}}}require", {"verdict": verdict})
    message.xml.append(require)
    message.send()
    return message["id"]


async def _arrivals(inbox: asyncio.Queue[Any], body: str, wait: float = QUIET) -> list[Any]:
    """Messages carrying ``body`` that reached a client within ``wait`` seconds."""
    got: list[Any] = []
    deadline = asyncio.get_running_loop().time() + wait
    while (left := deadline - asyncio.get_running_loop().time()) > 0:
        try:
            _, message = await asyncio.wait_for(inbox.get(), left)
        except TimeoutError:
            break
        if message["type"] != "error" and body in str(message["body"]):
            got.append(message)
    return got


async def _refusal(sender: TrustPathClient, mid: str) -> Any:
    """The error the sender got for message ``mid``."""
    while True:
        message = await next_event(sender.errors, 15)
        if message["id"] == mid:
            return message


def _assert_refused(error: Any, body: str, *, by: str, required: str = "trusted") -> dict[str, str]:
    """The XEP's refusal, echoing nothing of the message; returns the <unverified-hop/>'s attributes."""
    data = wire_bytes(error.xml)
    err = error.xml.find(f"{{{error.namespace}}}error")
    assert err is not None and err.get("type") == "cancel" and err.get("by") == by, data
    assert err.find(f"{{{NS_STANZAS}}}policy-violation") is not None, data
    hop = err.find(f"{{{NS}}}unverified-hop")
    assert hop is not None and hop.get("required") == required, data
    assert body.encode() not in data and b"<body" not in data and b"<require" not in data, data
    return dict(hop.attrib)


def _records(error: Any) -> list[dict[str, str]]:
    """The fields of each record of the error's path, oldest first."""
    path = error.xml.find(f"{{{NS}}}path")
    assert path is not None and path.text, f"the refusal carries no path: {wire_bytes(error.xml)!r}"
    return [dict(item.split("=", 1) for item in record.split(";")) for record in path.text.split()]


def _assert_attested(sender: TrustPathClient, error: Any, *, by: str, then: tuple[str, ...] = (),
                     verdict: Verdict = Verdict.TRUSTED) -> list[dict[str, str]]:
    """The refusal is signed by ``by``, the server that refused (the first record: it covers the
    refusal and states no 'i=' or 'c=', nothing brought the error to it), then by each server in
    ``then`` on the way back, each with what arrived (c=pass); the last record is for the sender's
    own session (p= its full JID).  The sender's plugin checks the refusal's own path from ``by``
    (the Python core's verify_refusal_stanza, with the sender's anchor): every signature holds and
    the path's verdict is ``verdict``.  Returns the records' fields."""
    data = wire_bytes(error.xml)
    report = sender.xmpp.plugin["trust_path"].verify_refusal(error)
    assert [str(r.status) for r in report.records] == ["ok"] * len(report.records), (report.to_json(), data)
    assert report.records[0].signer == by and report.verdict is verdict, (report.to_json(), data)
    records = _records(error)
    assert [r.get("s") for r in records] == [by, *then], data
    first = records[0]
    assert first.get("h") == "refusal" and not {"i", "c", "v", "r", "st"} & first.keys(), data
    for record in records[1:]:
        assert record.get("c") == "pass" and "i" in record and record.get("h") == "refusal", data
    assert records[-1].get("p") == str(error["to"]), data
    return records


def _run(make: Callable[[], World], steps: Callable[[Live], Awaitable[None]]) -> None:
    in_live_world(make, steps)


def test_a_local_recipient_is_refused_when_the_senders_login_is_not_bound_to_her_channel():
    """alice pins a.example but logs in over TLS 1.3 (no channel binding: a.example's view of H1
    is 'sasl', so H1 is at most ca, 'unbound') and requires trusted hops to bob@a.example, a
    user of her own server.  Delivered on main: the local route checked nothing."""
    body = "To a local user, only over verified hops."

    async def steps(live: Live) -> None:
        alice = await _client(live, ALICE, bound=False)
        local_bob = await _client(live, "bob@a.example/desk")
        mid = _send_required(alice, "bob@a.example", body)
        assert await _arrivals(local_bob.inbox, body) == []
        error = await _refusal(alice, mid)
        hop = _assert_refused(error, body, by="a.example")
        assert (hop["peer"], hop["reason"], hop["method"]) == (ALICE, "unbound", "sasl"), hop
        _assert_attested(alice, error, by="a.example")

    _run(_world(), steps)


def test_a_remote_recipient_is_refused_when_the_senders_login_is_not_bound_to_her_channel():
    body = "To b.example, only over verified hops, from an unbound login."

    async def steps(live: Live) -> None:
        alice = await _client(live, ALICE, bound=False)
        bob = await _client(live, BOB)
        mid = _send_required(alice, "bob@b.example", body)
        assert await _arrivals(bob.inbox, body) == []
        error = await _refusal(alice, mid)
        hop = _assert_refused(error, body, by="a.example")
        assert (hop["peer"], hop["reason"]) == (ALICE, "unbound"), hop
        _assert_attested(alice, error, by="a.example")

    _run(_world(), steps)


def test_a_message_without_the_senders_record_is_refused():
    """The sending client's record is removed after signing (a client that does not attest):
    H1 is then described by a.example alone, which cannot meet any requirement."""
    body = "Required, but not attested by my client."

    def strip_path(stanza: Any) -> Any:
        for path in stanza.xml.findall(f"{{{NS}}}path"):
            stanza.xml.remove(path)
        return stanza

    async def steps(live: Live) -> None:
        alice = await _client(live, ALICE, extra_filter=strip_path)
        bob = await _client(live, BOB)
        mid = _send_required(alice, "bob@b.example", body, "weak")
        assert await _arrivals(bob.inbox, body) == []
        error = await _refusal(alice, mid)
        hop = _assert_refused(error, body, by="a.example", required="weak")
        assert (hop["peer"], hop["reason"]) == (ALICE, "not-participating"), hop
        _assert_attested(alice, error, by="a.example")

    _run(_world(), steps)


def test_the_sending_server_signs_its_refusal_of_a_message_whose_s2s_hop_is_checked_by_a_ca_only():
    """Attested refusals (issue 11 item 2: "bounces follow rules like RFC 8689 section 5"): a.example
    checks b.example by a CA only and refuses alice's message that requires trusted hops when it
    would leave (route/remote).  Its error to alice is signed by a.example alone, with its view of
    alice's session (o=, p= her full JID).  Unsigned on the module before it."""
    body = "Only over verified hops, over a CA-checked s2s link."

    async def steps(live: Live) -> None:
        alice = await _client(live, ALICE)
        bob = await _client(live, BOB)
        mid = _send_required(alice, "bob@b.example", body)
        assert await _arrivals(bob.inbox, body) == []
        error = await _refusal(alice, mid)
        hop = _assert_refused(error, body, by="a.example")
        assert (hop["peer"], hop["reason"], hop["method"]) == ("b.example", "ca-only", "pkix"), hop
        (record,) = _assert_attested(alice, error, by="a.example")
        assert record["p"] == ALICE and record["o"].startswith("tls-unique,pass,1.2,"), record

    _run(_world(s2s_pins=False), steps)


def test_a_groupchat_message_into_a_remote_room_over_a_ca_only_link_is_refused():
    """Rooms do not take part (a groupchat message is always 'unknown' to its readers), and the
    link from a.example to the room's service is checked by a CA only."""
    body = "To the whole room, only over verified hops."

    async def steps(live: Live) -> None:
        bob = await _client(live, BOB, mucs=True)
        await _join(bob, "bob")
        alice = await _client(live, ALICE, mucs=True)
        await _join(alice, "alice")
        mid = _send_required(alice, ROOM, body, mtype="groupchat")
        assert await _arrivals(bob.inbox, body) == []
        error = await _refusal(alice, mid)
        hop = _assert_refused(error, body, by="a.example")
        assert (hop["peer"], hop["reason"]) == (ROOMS, "not-participating"), hop
        _assert_attested(alice, error, by="a.example")

    _run(_world(s2s_pins=False, rooms=True), steps)


def test_a_private_message_relayed_by_a_room_to_a_domain_that_does_not_take_part_is_refused():
    """bob@b.example writes privately to a room occupant whose account is on a.example, which does
    not take part, over a CA-only link: the room would relay it there."""
    body = "Privately, through the room, only over verified hops."

    async def steps(live: Live) -> None:
        alice = await _plain(live, ALICE)
        await _join(alice, "alice")
        bob = await _client(live, BOB, mucs=True)
        await _join(bob, "bob")
        mid = _send_required(bob, f"{ROOM}/alice", body)
        assert await _arrivals(alice.inbox, body) == []
        error = await _refusal(bob, mid)
        hop = _assert_refused(error, body, by="b.example")
        assert hop["peer"] == ROOMS and hop["reason"] == "not-participating", hop
        _assert_attested(bob, error, by="b.example")

    _run(_world(s2s_pins=False, a_takes_part=False, rooms=True), steps)


def test_the_last_hop_is_refused_when_the_recipients_client_checks_its_server_by_a_ca_only():
    """Every hop to b.example is pinned, but bob's client checks b.example against the CA only
    (scenario 11): a trusted path cannot reach him.  b.example knows that from bob's own
    announcement of his view of his hop (<session-key view=.../>) on a login bound to his channel."""
    body = "Only over verified hops, all the way to bob's client."

    async def steps(live: Live) -> None:
        alice = await _client(live, ALICE)
        bob = await _client(live, BOB, pins=False)
        mid = _send_required(alice, "bob@b.example", body)
        assert await _arrivals(bob.inbox, body) == []
        error = await _refusal(alice, mid)
        hop = _assert_refused(error, body, by="b.example")
        assert (hop["peer"], hop["reason"], hop["method"]) == (BOB, "ca-only", "pkix"), hop
        # b.example signs its refusal with its view of the s2s link to a.example; a.example, which
        # delivers it to alice, adds its record as for any message from b.example (c=pass)
        refuser, delivery = _assert_attested(alice, error, by="b.example", then=("a.example",))
        assert "p" not in refuser and refuser["o"].startswith("pin,pass,"), refuser
        assert delivery["v"] == "s2s-pin" and delivery["p"] == ALICE, delivery

    _run(_world(), steps)


def _reported_refusals(client: TrustPathClient) -> asyncio.Queue[Any]:
    """The refusals ``client``'s plugin believes and reports (``trust_path_unverified_hop``)."""
    queue: asyncio.Queue[Any] = asyncio.Queue()
    client.xmpp.add_event_handler("trust_path_unverified_hop", queue.put_nowait)
    return queue


def test_the_recipients_servers_refusal_reaches_the_sender_as_a_refusal_she_believes():
    """Before refusals were attested, alice's plugin believed only a.example's refusals (nothing
    showed who wrote any other): b.example's genuine refusal of the last hop reached her as an
    ordinary error, and she never learned which hop failed.  Signed by b.example and a.example, it
    is reported with the hop it names and the check of its own path."""
    body = "Only over verified hops, all the way to bob's client, and tell me if not."

    async def steps(live: Live) -> None:
        alice = await _client(live, ALICE)
        reported = _reported_refusals(alice)
        await _client(live, BOB, pins=False)
        mid = _send_required(alice, "bob@b.example", body)
        event = await next_event(reported, 15)
        assert event.stanza["id"] == mid and event.condition == "policy-violation"
        assert (event.hop["peer"], event.hop["reason"], event.hop["required"]) == (BOB, "ca-only", "trusted")
        assert event.report.verdict is Verdict.TRUSTED
        assert [r.signer for r in event.report.records] == ["b.example", "a.example"]

    _run(_world(), steps)


def test_a_refusal_returned_over_a_link_checked_by_a_ca_only_is_not_believed_for_a_trusted_message():
    """a.example pins b.example, but b.example checks a.example by a CA only: b.example refuses the
    message (its own end of H2 cannot meet 'trusted') and returns the refusal over its own link to
    a.example, checked by a CA only.  The refusal's path is weak, less than the message required,
    so alice's plugin does not report it (a man in the middle on that link could have written it);
    it stays an ordinary error, and the message is not delivered."""
    body = "Only over verified hops; a refusal must come back over them too."

    def configure(domain: str, spki: dict[str, str]) -> dict[str, object]:
        return {"trust_path_s2s_pins": {"b.example": [spki["b.example"]]}} if domain == "a.example" else {}

    def make() -> World:
        return build_world(modules={"a.example": ["trust_path"], "b.example": ["trust_path"]}, configure=configure,
                           keep_files=bool(os.environ.get("TRUSTPATH_HARNESS_KEEP")))

    async def steps(live: Live) -> None:
        alice = await _client(live, ALICE)
        reported = _reported_refusals(alice)
        bob = await _client(live, BOB)
        mid = _send_required(alice, "bob@b.example", body)
        error = await _refusal(alice, mid)
        assert await _arrivals(bob.inbox, body, 1) == []
        hop = _assert_refused(error, body, by="b.example")
        assert (hop["peer"], hop["required"]) == ("a.example", "trusted"), hop
        records = _assert_attested(alice, error, by="b.example", then=("a.example",), verdict=Verdict.WEAK)
        assert records[0]["o"].startswith("pkix,pass,"), records[0]
        await asyncio.sleep(0.5)
        assert reported.empty(), "a refusal weaker than the requirement is not reported"

    _run(make, steps)


def test_a_stored_message_is_refused_when_it_would_be_delivered_over_a_last_hop_that_does_not_meet_it():
    """bob is offline when the message arrives (b.example stores it), then connects with a client
    that checks b.example by a CA only: the message is refused then, not delivered."""
    body = "Stored for bob, only over verified hops."

    async def steps(live: Live) -> None:
        alice = await _client(live, ALICE)
        mid = _send_required(alice, "bob@b.example", body)
        await asyncio.sleep(1.5)  # stored at b.example
        assert alice.errors.empty()
        bob = await _client(live, BOB, pins=False)
        assert await _arrivals(bob.inbox, body) == []
        error = await _refusal(alice, mid)
        hop = _assert_refused(error, body, by="b.example")
        assert (hop["peer"], hop["reason"]) == (BOB, "ca-only"), hop
        _assert_attested(alice, error, by="b.example", then=("a.example",))

    _run(_world(), steps)


def test_a_requirement_every_hop_meets_is_delivered_to_a_local_and_a_remote_recipient():
    """The control: pinned, bound logins, pinned s2s: delivered, locally and remotely."""
    body = "Only over verified hops; every hop is."

    async def steps(live: Live) -> None:
        alice = await _client(live, ALICE)
        bob = await _client(live, BOB)
        local_bob = await _client(live, "bob@a.example/desk")
        _send_required(alice, "bob@b.example", body)
        _send_required(alice, "bob@a.example", body)
        assert len(await _arrivals(bob.inbox, body, 5)) == 1
        assert len(await _arrivals(local_bob.inbox, body, 2)) == 1
        assert alice.inbox.empty()

    _run(_world(), steps)
