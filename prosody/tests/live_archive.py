"""Live check of what mod_trust_path puts in archives (XEP rule 40: "A server that archives a
message MUST store its path as delivered"), with two real Prosody servers, real s2s TLS and
slixmpp clients running the trust_path plugin, which verifies every MAM result with
trustpath.core.receive.verify_stanza (archived wrapper).

    mkdir -p /tmp/tparchive && TMPDIR=/tmp/tparchive .venv/bin/python prosody/tests/live_archive.py

The servers listen on 127.0.0.22 and 127.0.0.23 (set TRUSTPATH_LIVE_A / TRUSTPATH_LIVE_B to
use other addresses).  Prints one line per check and exits non-zero if one fails.
"""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "reference"))

import trustpath.testbed.harness.world as world_module  # noqa: E402

world_module.ADDRESSES = {"a.example": os.environ.get("TRUSTPATH_LIVE_A", "127.0.0.22"),
                          "b.example": os.environ.get("TRUSTPATH_LIVE_B", "127.0.0.23")}

from trustpath.testbed.harness.rotate import rotate_key  # noqa: E402
from trustpath.testbed.harness.scenarios import LIVE_SCENARIOS, Live, Setup, _next, _settle, _world, run_live  # noqa: E402
from trustpath.core.receive import verify_stanza  # noqa: E402
from trustpath.client.slixmpp.plugin import wire_bytes  # noqa: E402

ALICE, DESK, LAPTOP, TABLET = "alice@a.example/phone", "bob@b.example/desk", "bob@b.example/laptop", "bob@b.example/tablet"
results: list[tuple[str, bool, str]] = []


def check(name: str, received: tuple[Any, Any], verdict: str, note: str | None = None, *,
          archived: bool = False) -> None:
    event, anchor = received
    report = event.report
    ok = report.verdict.value == verdict and (note is None or any(note in n for n in report.notes))
    if archived:
        # the same stanza, verified once more here with the reference, as an archive result
        stanza = wire_bytes(event.stanza.xml)
        ok = ok and b"urn:xmpp:mam:2" in stanza and b"internal" not in stanza
        again = verify_stanza(stanza, anchor, datetime.now(UTC))
        ok = ok and again.verdict.value == verdict
    results.append((name, ok, f"{report.verdict.value} {list(report.notes)}"))
    print(("ok   " if ok else "FAIL ") + f"{name}: {report.verdict.value} {list(report.notes)}", flush=True)


async def verdict(client: Any) -> tuple[Any, Any]:
    """The next verdict the client's plugin reported, and the anchor it used."""
    return await _next(client.verdicts), client.xmpp.plugin["trust_path"].anchor


async def mam(live: Live, jid: str) -> Any:
    client = await live.client(jid, mam=True)
    await client.xmpp.plugin["xep_0313"].retrieve(jid=None, iterator=False)
    return client


async def rotation_scenario() -> None:
    """Scenario 10 of the brief, as the harness runs it."""
    scenario = next(s for s in LIVE_SCENARIOS if s.number == 10)
    outcome = await run_live(scenario)
    ok = not outcome.problems
    notes = list(outcome.report.notes) if outcome.report else []
    results.append(("scenario 10", ok, str(notes)))
    print(("ok   " if ok else "FAIL ") + f"scenario 10 (rotated key, read from the archive): "
          f"{outcome.report.verdict.value if outcome.report else None} {notes} {outcome.problems}", flush=True)


async def offline_then_archive() -> None:
    """Nobody online: the archive keeps the marker; offline delivery and archive reads are
    signed when they happen, with 'stored' = arrival time, also after a key rotation."""
    world = await asyncio.to_thread(_world, Setup())
    live = Live(world)
    try:
        alice = await live.client(ALICE)
        alice.send("bob@b.example", "Stored while Bob is offline.")
        await asyncio.sleep(1.5)
        bob = await live.client(DESK)
        check("offline delivery", await verdict(bob), "trusted", "stored by b.example")
        await bob.stop()
        del live.clients[DESK]
        bob = await mam(live, DESK)
        check("offline, then read from the archive", await verdict(bob), "trusted", "stored by b.example", archived=True)
        await bob.stop()
        del live.clients[DESK]
        rotate_key(world.servers["b.example"])
        bob = await mam(live, DESK)
        check("offline, key rotated, read from the archive", await verdict(bob), "trusted", "stored by b.example",
              archived=True)
    finally:
        await live.close()
        await asyncio.to_thread(world.close)


async def several_resources() -> None:
    """Two resources and carbons: each delivery has its own attestation; the archive holds
    the one of the first delivery, which a third resource reads."""
    world = await asyncio.to_thread(_world, Setup())
    live = Live(world)
    try:
        alice = await live.client(ALICE)
        desk = await live.client(DESK)
        laptop = await live.client(LAPTOP, carbons=True)
        alice.send("bob@b.example", "To both of Bob's resources.")
        check("bare JID, first resource", await verdict(desk), "trusted")
        check("bare JID, second resource", await verdict(laptop), "trusted")
        alice.xmpp.send_message(mto=DESK, mbody="To the desk; the laptop gets a carbon.", mtype="chat")
        check("full JID", await verdict(desk), "trusted")
        check("carbon copy", await verdict(laptop), "trusted", "carbon copy")
        tablet = await mam(live, TABLET)
        check("archive, message 1", await verdict(tablet), "trusted", "read here as bob@b.example/tablet", archived=True)
        check("archive, message 2", await verdict(tablet), "trusted", "read here as bob@b.example/tablet", archived=True)
        own = await mam(live, "alice@a.example/laptop")
        check("sender's own archive", await verdict(own), "trusted", "read from the archive", archived=True)
    finally:
        await live.close()
        await asyncio.to_thread(world.close)


async def main() -> int:
    for case in (rotation_scenario, offline_then_archive, several_resources):
        try:
            await case()
        except Exception as exc:  # a timeout or a harness failure counts as a failed check
            results.append((case.__name__, False, repr(exc)))
            print(f"FAIL {case.__name__}: {exc!r}", flush=True)
        await _settle()
    failed = sum(1 for _, ok, _ in results if not ok)
    print(f"{len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
