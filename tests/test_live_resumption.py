"""Stream resumption (XEP-0198) live: b.example runs Prosody's mod_smacks; bob's connection is cut
without a clean close, his session hibernates, alice's message waits in it, and bob resumes on a
NEW connection (or, once the session expired, logs in anew).  v1's rule: the receiving server
signs when it delivers, on the connection that carries the message, with 'st=' the arrival time:
no clock-skew for the wait, and a view of the connection that delivered it.

Both servers run under libfaketime with one shared offset file: their clocks stand 450 s behind
while the message arrives and is held, then jump to the real time before bob resumes, as if
450 s (more than the 300 s skew, less than Prosody's default 600 s hibernation) had passed.
The recipient's verifier uses the real clock.  Monotonic time is not faked, so Prosody's timers
(the hibernation watchdog) run in real time.

The first connection speaks TLS 1.2 with SCRAM-*-PLUS (view ``tls-unique,pass,1.2,...``); the
new one TLS 1.3 (no tls-unique: ``sasl,pass,1.3,...``), so b.example's H3 view tells which
connection it describes.

Marked ``live`` (tests/conftest.py)."""

from __future__ import annotations

import asyncio
import os
import re
import ssl
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import require_prosody
from trustpath.client.slixmpp.pins import PinStore
from trustpath.client.slixmpp.wire import wire_bytes
from trustpath.core.keys import short_spki
from trustpath.core.model import Verdict
from trustpath.testbed.harness.clients import TrustPathClient
from trustpath.testbed.harness.scenarios import FAKETIME_LIBS, Live, in_live_world, next_event
from trustpath.testbed.harness.world import build_world

ALICE, BOB = "alice@a.example/phone", "bob@b.example/desk"
HELD = 450  # seconds the servers' clocks jump while bob's session hibernates (> the 300 s skew)


@pytest.fixture(autouse=True)
def _prosody() -> None:
    require_prosody()


def _faketime_env(offset_file: Path) -> dict[str, str]:
    lib = next((p for p in FAKETIME_LIBS if os.path.exists(p)), None)
    if lib is None:
        pytest.skip("needs libfaketime (apt-get install faketime)")
    return {"LD_PRELOAD": lib, "FAKETIME_TIMESTAMP_FILE": str(offset_file), "FAKETIME_NO_CACHE": "1",
            "FAKETIME_DONT_FAKE_MONOTONIC": "1", "FAKETIME_DONT_RESET": "1"}


def _world(offset_file: Path, b_options: dict[str, object]) -> Any:
    env = _faketime_env(offset_file)

    def configure(domain: str, spki: dict[str, str]) -> dict[str, object]:
        other = "b.example" if domain == "a.example" else "a.example"
        options: dict[str, object] = {"trust_path_s2s_pins": {other: [spki[other]]}}
        if domain == "b.example":
            options.update(b_options)
        return options

    return build_world(modules={"a.example": ["trust_path"], "b.example": ["trust_path", "smacks"]},
                       env={"a.example": env, "b.example": env}, configure=configure,
                       keep_files=bool(os.environ.get("TRUSTPATH_HARNESS_KEEP")))


async def _bob(live: Live) -> TrustPathClient:
    """bob with the trust_path plugin (pinning b.example) and XEP-0198 with resumption, over TLS 1.2."""
    store = PinStore()
    store.add("b.example", live.world.spki["b.example"])
    bob = TrustPathClient(BOB, live.world, pins=store, config={"bind_channel": True})
    bob.xmpp.register_plugin("xep_0198", {"allow_resume": True})
    bob.xmpp.end_session_on_disconnect = False  # a lost connection keeps the session to resume
    ready: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    bob.xmpp.add_event_handler("trust_path_ready", lambda policy: ready.done() or ready.set_result(policy))
    enabled: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    bob.xmpp.add_event_handler("sm_enabled", lambda ev: enabled.done() or enabled.set_result(ev))
    await bob.start()
    await asyncio.wait_for(ready, 10)
    await asyncio.wait_for(enabled, 10)
    live.clients[BOB] = bob
    return bob


async def _cut(bob: TrustPathClient) -> None:
    """Cut bob's TCP connection with no closing </stream>: b.example's session hibernates."""
    assert bob.xmpp.plugin["xep_0198"].sm_id, "no resumable session"
    bob.xmpp.transport.abort()
    await asyncio.sleep(1.5)


async def _reconnect(bob: TrustPathClient, outcome: str) -> None:
    """A NEW connection for bob, over TLS 1.3; wait for ``outcome`` (session_resumed or session_start)."""
    done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    bob.xmpp.add_event_handler(outcome, lambda ev: done.done() or done.set_result(ev))
    # TLS 1.3 only: the plugin's bind_channel cap (TLS 1.2) gives way, SCRAM without binding
    bob.xmpp.ssl_context.minimum_version = ssl.TLSVersion.TLSv1_3
    bob.xmpp.ssl_context.maximum_version = ssl.TLSVersion.MAXIMUM_SUPPORTED
    bob.xmpp.connect(bob.world.address("b.example"), 15222)
    await asyncio.wait_for(done, 15)


def _delivering_record(stanza: bytes) -> dict[str, str]:
    """b.example's record (the last) of the message's path, as fields."""
    text = re.search(rb"<path xmlns=\"urn:xmpp:trust-path:1\">([^<]*)</path>", stanza)
    assert text is not None, stanza
    last = text.group(1).split()[-1].decode()
    return dict(field.split("=", 1) for field in last.split(";"))


def _assert_delivered_on_new_connection(what: str, event: Any, world: Any, signed_after: float) -> None:
    report, stanza = event.report, wire_bytes(event.stanza.xml)
    shown = f"{what}: {report.verdict.value} {list(report.notes)} {report.to_json()['hops']}"
    assert report.verdict in (Verdict.TRUSTED, Verdict.WEAK), shown
    assert "clock-skew" not in str(report.to_json()), shown
    assert any("stored by b.example" in n for n in report.notes), shown
    assert b"trust-path:internal" not in stanza, f"{what}: a marker leaked"
    record = _delivering_record(stanza)
    assert record["s"] == "b.example" and record["p"] == BOB, record
    method, result, tls, spki = record["o"].split(",")
    # the view of the connection that carried it: TLS 1.3, no tls-unique (the first one: 1.2, tls-unique)
    assert (method, result, tls) == ("sasl", "pass", "1.3"), f"{what}: H3 view {record['o']} is not the new connection's"
    assert spki == short_spki(world.spki["b.example"])
    assert int(record["t"]) >= signed_after, f"{what}: signed at {record['t']}, before the new connection ({signed_after})"
    assert "st" in record and int(record["st"]) < int(record["t"]), record
    # and bob's own view of H3 (his plugin's, recomputed on every connection) is the new one's too
    h3 = report.hops[-1]
    assert h3.client_view is not None and h3.client_view.tls == "1.3", f"{what}: bob's own H3 view {h3.client_view}"


def _run(b_options: dict[str, object], steps: Any, tmp_path: Path) -> None:
    offset_file = tmp_path / "faketime"
    offset_file.write_text(f"-{HELD}\n")

    in_live_world(lambda: _world(offset_file, b_options), lambda live: steps(live, offset_file))


def test_a_message_held_in_a_hibernating_session_is_signed_for_the_resumed_connection(tmp_path):
    """Cut, message, 450 s later (servers' clocks) resume on a new connection: b.example's record
    describes the new connection, is signed at delivery with 'st=' the arrival: no clock-skew."""
    async def steps(live: Live, offset_file: Path) -> None:
        alice = await live.client(ALICE)
        bob = await _bob(live)
        await _cut(bob)
        alice.send("bob@b.example", "Held while Bob's connection is gone.")
        await asyncio.sleep(1.5)
        offset_file.write_text("+0\n")  # 450 s pass on both servers
        before = time.time() - 2
        await _reconnect(bob, "session_resumed")
        event = await next_event(bob.verdicts)
        _assert_delivered_on_new_connection("resumed", event, live.world, int(before))
        # and the session goes on: a live message on the resumed session, on the new connection
        alice.send("bob@b.example", "After the resumption.")
        event = await next_event(bob.verdicts)
        report = event.report
        assert report.verdict in (Verdict.TRUSTED, Verdict.WEAK), (report.verdict, report.notes)
        record = _delivering_record(wire_bytes(event.stanza.xml))
        assert record["o"].startswith("sasl,pass,1.3,"), record
        assert "st" not in record, record

    _run({}, steps, tmp_path)


def test_after_a_failed_resume_the_held_message_is_signed_for_the_new_login(tmp_path):
    """The hibernating session expires (smacks_hibernation_time 2 s): the held message goes to
    offline storage; bob's resume fails, he logs in anew and gets it with a record of the new
    connection, not of the dead one."""
    async def steps(live: Live, offset_file: Path) -> None:
        alice = await live.client(ALICE)
        bob = await _bob(live)
        await _cut(bob)
        alice.send("bob@b.example", "Held, then the session expired.")
        await asyncio.sleep(4)  # the session expired (real time: the watchdog is monotonic)
        offset_file.write_text("+0\n")
        before = time.time() - 2
        await _reconnect(bob, "session_start")
        event = await next_event(bob.verdicts)
        _assert_delivered_on_new_connection("after a failed resume", event, live.world, int(before))

    _run({"smacks_hibernation_time": 2}, steps, tmp_path)
