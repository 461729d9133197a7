"""What mod_trust_path puts in archives, live (XEP, Archives: "A server archives messages with
their paths as delivered"): two real Prosody servers, real s2s TLS, and slixmpp clients
whose trust_path plugin verifies every MAM result with trustpath.core.receive.verify_stanza.
Every archive result is verified once more here, with the reference, as the stanza arrived.

Marked ``live`` (tests/conftest.py).  The servers listen on TRUSTPATH_LOOPBACK's addresses, like
every live federation of the harness: ``TRUSTPATH_LOOPBACK=127.0.2 pytest tests/test_live_archive.py``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from conftest import require_prosody
from trustpath.client.slixmpp.wire import wire_bytes
from trustpath.core.model import Verdict
from trustpath.core.receive import verify_stanza
from trustpath.core.verify import Anchor, Report
from trustpath.testbed.harness.clients import TrustPathClient
from trustpath.testbed.harness.rotate import rotate_key
from trustpath.testbed.harness.scenarios import Live, Setup, in_live_world, next_event, run_live, world_for
from trustpath.testbed.scenarios import ALICE, BOB, SCENARIOS

LAPTOP, TABLET = "bob@b.example/laptop", "bob@b.example/tablet"


@pytest.fixture(autouse=True)
def _prosody() -> None:
    require_prosody()


@dataclass(frozen=True)
class Seen:
    """A message as one client's plugin reported it: its report, its bytes, the anchor it used."""

    report: Report
    stanza: bytes
    anchor: Anchor


async def seen(client: TrustPathClient) -> Seen:
    """The next message ``client`` verified."""
    event = await next_event(client.verdicts)
    return Seen(event.report, wire_bytes(event.stanza.xml), client.xmpp.plugin["trust_path"].anchor)


def assert_shown(what: str, message: Seen, verdict: Verdict, note: str | None = None, *,
                 archived: bool = False) -> None:
    report = message.report
    assert report.verdict is verdict, f"{what}: {report.verdict.value} {list(report.notes)}"
    if note is not None:
        assert any(note in n for n in report.notes), f"{what}: no note mentions {note!r}: {list(report.notes)}"
    if archived:
        assert b"urn:xmpp:mam:2" in message.stanza, f"{what}: not an archive result"
        assert b"internal" not in message.stanza, f"{what}: the archive leaked the module's own storage"
        again = verify_stanza(message.stanza, message.anchor, datetime.now(UTC))
        assert again.verdict is verdict, f"{what}: the reference says {again.verdict.value} {list(again.notes)}"


async def read_archive(live: Live, jid: str) -> TrustPathClient:
    """Connect ``jid`` and ask its server for its whole archive (XEP-0313)."""
    client = await live.client(jid, mam=True)
    await client.xmpp.plugin["xep_0313"].retrieve(jid=None, iterator=False)
    return client


def in_live_federation(steps: Callable[[Live], Awaitable[None]]) -> None:
    """Run ``steps`` on a fresh live federation with every hop pinned, then stop all of it."""
    in_live_world(lambda: world_for(Setup()), steps)


def test_scenario_10_a_message_read_from_the_archive_after_a_key_rotation():
    """Scenario 10 as the harness runs it: b.example rotates its key, bob reads the message back."""
    outcome = asyncio.run(run_live(next(s for s in SCENARIOS if s.number == 10)))
    assert outcome.problems == ()
    assert outcome.report is not None and outcome.report.verdict is Verdict.TRUSTED
    assert any("retired" in n for n in outcome.report.notes), outcome.report.notes


def test_offline_then_archive_keeps_the_arrival_time_also_after_a_key_rotation():
    """Nobody online: offline delivery and archive reads are signed when they happen, each
    with 'stored' at the arrival time, and still so after b.example rotates its key."""
    async def steps(live: Live) -> None:
        alice = await live.client(ALICE)
        alice.send("bob@b.example", "Stored while Bob is offline.")
        await asyncio.sleep(1.5)
        bob = await live.client(BOB)
        assert_shown("offline delivery", await seen(bob), Verdict.TRUSTED, "stored by b.example")
        await live.drop(BOB)
        bob = await read_archive(live, BOB)
        assert_shown("offline, then read from the archive", await seen(bob), Verdict.TRUSTED,
                     "stored by b.example", archived=True)
        await live.drop(BOB)
        old, new = rotate_key(live.world.servers["b.example"])
        assert old != new
        bob = await read_archive(live, BOB)
        assert_shown("offline, key rotated, read from the archive", await seen(bob), Verdict.TRUSTED,
                     "stored by b.example", archived=True)

    in_live_federation(steps)


def test_several_resources_and_carbons_each_get_their_own_record():
    """Two resources and carbons: each delivery is attested on its own; the archive holds the
    first delivery's, which a third resource reads."""
    async def steps(live: Live) -> None:
        alice = await live.client(ALICE)
        desk = await live.client(BOB)
        laptop = await live.client(LAPTOP, carbons=True)
        alice.send("bob@b.example", "To both of Bob's resources.")
        assert_shown("bare JID, first resource", await seen(desk), Verdict.TRUSTED)
        assert_shown("bare JID, second resource", await seen(laptop), Verdict.TRUSTED)
        alice.send(BOB, "To the desk; the laptop gets a carbon.")
        assert_shown("full JID", await seen(desk), Verdict.TRUSTED)
        assert_shown("carbon copy", await seen(laptop), Verdict.TRUSTED, "carbon copy")
        tablet = await read_archive(live, TABLET)
        for n in (1, 2):
            assert_shown(f"archive, message {n}", await seen(tablet), Verdict.TRUSTED,
                         f"read here as {TABLET}", archived=True)

    in_live_federation(steps)


def test_the_senders_own_archive_holds_a_verifiable_path():
    """Alice's other device reads what Alice sent from a.example's archive.  Like a sent carbon
    (XEP: at most unknown, sent-copy) it says how the copy reached this device, not how the
    message was delivered: never a false alarm, never trusted."""
    async def steps(live: Live) -> None:
        alice = await live.client(ALICE)
        bob = await live.client(BOB)
        alice.send("bob@b.example", "Kept in my own archive too.")
        assert_shown("delivered", await seen(bob), Verdict.TRUSTED)
        own = await read_archive(live, "alice@a.example/laptop")
        copy = await seen(own)
        assert_shown("sender's own archive", copy, Verdict.UNKNOWN, "read from the archive", archived=True)
        assert any(h.reason == "sent-copy" for h in copy.report.hops), copy.report.to_json()

    in_live_federation(steps)


def test_an_archive_read_after_the_servers_certificate_renewal_is_judged_by_todays_connection():
    """b.example renews its TLS certificate (a new key) after the message was delivered; bob,
    pinning the new key, reads it back from the archive: H3 is judged by today's connection, so
    the old key named in b.example's record is no key-mismatch (XEP: archives, no false alarms)."""
    from trustpath.testbed.harness.rotate import renew_certificate

    async def steps(live: Live) -> None:
        alice = await live.client(ALICE)
        bob = await live.client(BOB)
        alice.send("bob@b.example", "Delivered before b.example renews its certificate.")
        delivered = await seen(bob)
        assert_shown("delivered", delivered, Verdict.TRUSTED)
        old_view = bob.xmpp.plugin["trust_path"].view
        await live.drop(BOB)
        old = live.world.spki["b.example"]
        new = await asyncio.to_thread(renew_certificate, live.world, "b.example")
        assert new != old
        bob = await read_archive(live, BOB)
        # positive control: today's connection shows the new key, not the one the message came by
        assert bob.xmpp.plugin["trust_path"].view.spki != old_view.spki
        archived = await seen(bob)
        assert_shown("read from the archive after the renewal", archived, Verdict.TRUSTED, archived=True)
        assert all(h.reason != "key-mismatch" for h in archived.report.hops), archived.report.to_json()

    in_live_federation(steps)
