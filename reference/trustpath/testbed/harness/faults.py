"""Faults on a live federation, with and without mod_trust_path, side by side (``trustpath
faults``): a stream of messages from alice to bob while the s2s connection is cut, the receiving
server is stopped (SIGSTOP) for a while, the receiving server restarts, or the sending server
switches to its next record key by prosody/README.md's procedure (publish, wait, switch by
reload).  Each fault runs twice, on a federation where both servers run the module and on one
where neither does, with the same settings otherwise; what counts is how many messages
were lost, arrived twice, or were judged other than the same federation judges a message when
nothing goes wrong (trusted with the module, unknown without).

Prosody 0.12 has no stream management on s2s: stanzas in flight when a connection breaks, or
queued when a server stops, are lost with or without the module.  The figures say so rather than
hide it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from ...core.codec import decode_record
from ...core.constants import KEY_FETCH_INTERVAL
from ...core.errors import InvalidInput
from ...core.model import NS, Verdict
from ..scenarios import ALICE, BOB
from .mitm import _LoopThread, open_upstream, relay_both_ways
from .rotate import publish_next_key, switch_to_next_key
from .scenarios import Live, Setup, world_for
from .world import loopback

#: where the s2s relay for b.example listens (the fault "cut" closes its connections)
RELAY_ADDRESS = loopback(9)
RELAY_HOST = "relay.b.example."
S2S_PORT = 15269


class S2SRelay(_LoopThread):
    """A plain TCP relay in front of b.example's s2s port: a.example's TLS runs through it end to
    end, so nothing about the link changes, until :meth:`cut` resets every connection at once, as a
    network failure would."""

    name = "s2s-relay"

    def __init__(self, listen: tuple[str, int], upstream: tuple[str, int]) -> None:
        self.listen = listen
        self.upstream = upstream
        self.cuts = 0
        self._writers: set[asyncio.StreamWriter] = set()
        self._init_loop()

    async def _serve(self) -> asyncio.AbstractServer:
        return await asyncio.start_server(self._relay, *self.listen)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream = await open_upstream(writer, self.upstream)
        if upstream is None:
            return
        up_reader, up_writer = upstream
        pair = {writer, up_writer}
        self._writers |= pair
        try:
            await relay_both_ways(reader, writer, up_reader, up_writer)
        finally:
            self._writers -= pair

    def cut(self) -> int:
        """Reset every connection through the relay (RST, no goodbye); return how many."""
        done = asyncio.run_coroutine_threadsafe(self._cut(), self._loop)
        return done.result(5)

    async def _cut(self) -> int:
        writers = list(self._writers)
        for writer in writers:
            sock = writer.get_extra_info("socket")
            if sock is not None:
                # linger 0: close() sends RST and drops what is still buffered, as a broken link would
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            writer.transport.abort()
        self._writers.clear()
        self.cuts += 1
        return len(writers) // 2


def relay_s2s(live: Live) -> S2SRelay:
    """Put an :class:`S2SRelay` in front of b.example's s2s port (DNS points a.example at it).
    Call before the first message crosses: Prosody resolves when it first connects."""
    world = live.world
    relay = S2SRelay((RELAY_ADDRESS, S2S_PORT), (world.address("b.example"), S2S_PORT)).start()
    world.attackers.append(relay)
    world.dns.zone.a[RELAY_HOST] = RELAY_ADDRESS
    world.dns.zone.srv["_xmpp-server._tcp.b.example."] = (RELAY_HOST, S2S_PORT)
    return relay


@dataclass
class FaultCount:
    """What bob saw of the messages alice sent during one fault on one federation."""

    fault: str
    module: bool
    sent: int = 0
    #: body -> how many times it arrived
    arrivals: Counter[str] = field(default_factory=Counter)
    #: body -> the verdict bob's plugin gave it (the last, if it arrived twice)
    verdicts: dict[str, Verdict] = field(default_factory=dict)
    #: message errors alice received for messages of the stream (a loss the sender hears of)
    bounced: int = 0
    seconds: float = 0.0
    #: what the fault did, as observed (e.g. how many connections the cut reset)
    note: str = ""
    #: how many arrivals a.example signed with each of its record keys (the rotation switched
    #: keys in mid-stream when there are two)
    a_keys: Counter[str] = field(default_factory=Counter)

    @property
    def expected(self) -> Verdict:
        """What this federation says of a message when nothing goes wrong."""
        return Verdict.TRUSTED if self.module else Verdict.UNKNOWN

    @property
    def lost(self) -> int:
        return self.sent - len(self.arrivals)

    @property
    def duplicated(self) -> int:
        return sum(n - 1 for n in self.arrivals.values() if n > 1)

    @property
    def misjudged(self) -> int:
        """Messages that arrived and were judged other than :attr:`expected` (or not at all)."""
        return sum(1 for body in self.arrivals if self.verdicts.get(body) is not self.expected)

    def misjudged_as(self) -> Counter[str]:
        return Counter(self.verdicts[b].value if b in self.verdicts else "no verdict"
                       for b in self.arrivals if self.verdicts.get(b) is not self.expected)

    def to_json(self) -> dict[str, object]:
        return {"fault": self.fault, "module": self.module, "sent": self.sent, "arrived": len(self.arrivals),
                "lost": self.lost, "bounced": self.bounced, "duplicated": self.duplicated,
                "misjudged": self.misjudged, "misjudged_as": dict(self.misjudged_as()),
                "expected": self.expected.value, "seconds": round(self.seconds, 1), "note": self.note,
                "a_keys": dict(self.a_keys)}


async def _reconnect_bob(live: Live) -> None:
    """bob's server went away: connect him again (a new session; what waited offline follows)."""
    old = live.clients.pop(BOB, None)
    if old is not None:
        await old.stop()
    deadline = time.monotonic() + 20
    while True:
        try:
            await live.client(BOB)
            return
        except (TimeoutError, ConnectionError, OSError):
            if time.monotonic() > deadline:
                raise


def _signal_after(pid: int, first: signal.Signals, then: signal.Signals,
                  seconds: float) -> Callable[[], Awaitable[None]]:
    async def act() -> None:
        os.killpg(pid, first)
        try:
            await asyncio.sleep(seconds)
        finally:
            os.killpg(pid, then)
    return act


def fault_action(name: str, live: Live, relay: S2SRelay, count: FaultCount, *,
                 stall: float) -> Callable[[], Awaitable[None]]:
    """The fault ``name`` as something to run beside the stream; what it did goes to ``count.note``."""
    world = live.world
    if name == "cut":
        async def cut() -> None:
            count.note = f"reset {relay.cut()} s2s connection(s)"
        return cut
    if name == "stall":
        process = world.servers["b.example"].process
        assert process is not None
        count.note = f"b.example stopped for {stall:g} s"
        return _signal_after(process.pid, signal.SIGSTOP, signal.SIGCONT, stall)
    if name == "restart":
        async def restart() -> None:
            began = time.monotonic()
            await asyncio.to_thread(world.servers["b.example"].restart)
            count.note = f"b.example down {time.monotonic() - began:.1f} s"
            await _reconnect_bob(live)
        return restart
    if name == "rotate":
        a = world.servers["a.example"]

        async def rotate() -> None:
            # prosody/README.md's step 3: the next key was published (and waited for) before the
            # stream began; now a.example signs with it, by a reload.  Without the module, the same
            # reload, so that both federations go through the same thing
            if "trust_path" in a.modules:
                old, new = await asyncio.to_thread(switch_to_next_key, a)
                count.note = f"a.example switched keys by reload ({old[:6]}… → {new[:6]}…)"
            else:
                await asyncio.to_thread(a.reload)
                count.note = "a.example reloaded"
        return rotate
    raise ValueError(f"unknown fault {name!r}: one of {', '.join(FAULTS)}")


FAULTS = ("cut", "stall", "restart", "rotate")
#: how many more losses a fault may show with the module before it counts as worse: a restart
#: loses what is in flight at that instant, a message or two either way by timing alone
SLACK = {"restart": 2}
#: seconds between two messages of the stream, by fault: a burst for the cut (so that messages are
#: in flight when it strikes) and the stall; slower for the restart and the rotation, so that the
#: stream goes on after the server is back or the new key is in use
INTERVALS = {"cut": 0.005, "stall": 0.005, "restart": 0.02, "rotate": 0.02}


async def run_fault(name: str, *, module: bool, messages: int = 200, interval: float | None = None,
                    stall: float = 5.0, settle: float = 30.0) -> FaultCount:
    """One fault on a fresh federation, with or without the module on both servers."""
    # reloadable: mod_posix, so that SIGHUP reloads the configuration (the rotation); a short
    # cache-for, so that the README's wait between publishing the next key and using it is seconds
    options = (("a.example", "trust_path_cache_for", KEY_FETCH_INTERVAL),) if module else ()
    setup = Setup(reloadable=True, options=options, a_takes_part=module, b_takes_part=module)
    world = await asyncio.to_thread(world_for, setup)
    live = Live(world)
    count = FaultCount(name, module)
    try:
        relay = relay_s2s(live)
        await live.client(ALICE)
        await live.client(BOB)
        warm = f"warm-{name}"
        live.clients[ALICE].send(BOB, warm)  # opens the s2s link (and the module's key fetch) first
        await asyncio.wait_for(_until_arrived(live, warm), 20)
        if name == "rotate" and module:
            # README steps 1 and 2: publish the next key, wait at least the old key set's cache-for
            await asyncio.to_thread(publish_next_key, world.servers["a.example"])
            await asyncio.sleep(KEY_FETCH_INTERVAL + 1)
        action = fault_action(name, live, relay, count, stall=stall)
        start = time.monotonic()
        count.seconds = await _stream(live, count, messages, INTERVALS[name] if interval is None else interval,
                                      action, settle)
        count.seconds = time.monotonic() - start
    finally:
        await live.close()
        world.close()
    return count


def _signing_key(message: ET.Element, signer: str) -> str | None:
    """The key ``signer``'s record in ``message``'s path names, if it has one."""
    path = message.find(f"{{{NS}}}path")
    for text in (path.text or "").split() if path is not None else ():
        try:
            record = decode_record(text)
        except InvalidInput:
            continue
        if record.signer == signer:
            return record.key
    return None


async def _until_arrived(live: Live, body: str) -> None:
    while True:
        _, message = await live.clients[BOB].inbox.get()
        if str(message["body"]) == body:
            return


async def _stream(live: Live, count: FaultCount, messages: int, interval: float,
                  action: Callable[[], Awaitable[None]], settle: float) -> float:
    """Send ``messages`` from alice, running ``action`` after the first quarter; collect what bob
    (whichever session he has) receives and how his plugin judges it, and alice's errors."""
    prefix = f"{count.fault}-{'on' if count.module else 'off'}"
    stream_bodies: set[str] = set()
    sent_ids: set[str] = set()

    async def collect() -> None:
        while True:
            bob = live.clients.get(BOB)
            if bob is None:
                await asyncio.sleep(0.05)
                continue
            try:
                _, message = await asyncio.wait_for(bob.inbox.get(), 0.1)
            except TimeoutError:
                pass
            else:
                body = str(message["body"])
                if body in stream_bodies:
                    count.arrivals[body] += 1
            while not bob.verdicts.empty():
                event = bob.verdicts.get_nowait()
                body = str(event.stanza["body"])
                if body in stream_bodies:
                    count.verdicts[body] = event.report.verdict
                    key = _signing_key(event.stanza.xml, "a.example")
                    if key is not None:
                        count.a_keys[key[:8]] += 1
            alice = live.clients.get(ALICE)
            while alice is not None and not alice.errors.empty():
                if alice.errors.get_nowait()["id"] in sent_ids:
                    count.bounced += 1

    collector = asyncio.create_task(collect())
    task: asyncio.Task[None] | None = None
    start = time.monotonic()
    try:
        for n in range(messages):
            if n == messages // 4:
                task = asyncio.create_task(action())
            alice = live.clients.get(ALICE)
            body = f"{prefix} {n:04d}"
            stream_bodies.add(body)
            count.sent += 1
            if alice is not None:
                sent_ids.add(alice.send(BOB, body))  # while alice reconnects, it is lost on her side alike
            await asyncio.sleep(interval)
        if task is not None:
            await task
        deadline = time.monotonic() + settle
        # done when every message arrived and was judged, or its sender heard it was not delivered
        while time.monotonic() < deadline and (len(count.arrivals) + count.bounced < count.sent
                                                or any(b not in count.verdicts for b in count.arrivals)):
            await asyncio.sleep(0.2)
        await asyncio.sleep(0.5)  # a duplicate comes late, if at all
    finally:
        collector.cancel()
        await asyncio.gather(collector, return_exceptions=True)
    return time.monotonic() - start


async def run_faults(faults: tuple[str, ...] = FAULTS, *, messages: int = 200, interval: float | None = None,
                     stall: float = 5.0, settle: float = 30.0) -> list[FaultCount]:
    """Every fault, with the module and without, one after the other."""
    results = []
    for name in faults:
        for module in (True, False):
            results.append(await run_fault(name, module=module, messages=messages, interval=interval, stall=stall,
                                           settle=settle))
    return results


def no_worse(results: list[FaultCount], *, slack: dict[str, int] | None = SLACK) -> list[str]:
    """Where the module did worse than no module under the same fault: lost, duplicated or
    misjudged more messages.  ``slack`` allows a fault that many more losses: how many messages a
    restart catches in flight depends on the instant it strikes, module or not."""
    problems = []
    by = {(r.fault, r.module): r for r in results}
    for (fault, module), on in by.items():
        off = by.get((fault, False))
        if not module or off is None:
            continue
        for what in ("lost", "duplicated", "misjudged"):
            allowed = getattr(off, what) + ((slack or {}).get(fault, 0) if what == "lost" else 0)
            if getattr(on, what) > allowed:
                problems.append(f"{fault}: {getattr(on, what)} {what} with the module, {getattr(off, what)} without")
    return problems


__all__ = ["FAULTS", "SLACK", "FaultCount", "S2SRelay", "no_worse", "relay_s2s", "run_fault", "run_faults"]
