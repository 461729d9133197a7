"""Bounded resources of mod_trust_path, measured on a live federation (issue 11, item 3).

Three attacks on a server with mod_trust_path, each measured on two fresh Prosody servers of
the harness and, where that comparison means something, against the same servers without the
module:

``keys``
    a.example publishes ``--keys`` revoked keys beside its current one (the harness's test relay
    adds them to its disco#info answers) and a 'cache-for' of 0, then sends ``--messages``
    messages to bob, while bob's other device sends as many through b.example: b.example's CPU
    time (user + system, from /proc) per message from a.example (with the local one beside it:
    compare with ``--keys 0``), the key fetches it made, and the latency of both streams.
``held``
    b.example's own s2s connections to a.example go to a port that accepts and never answers,
    so its key fetch hangs while a.example (which does not take part) sends ``--messages``
    messages of ``--kb`` KB to bob: the growth of b.example's resident memory (VmRSS after,
    and its peak VmHWM), with and without the module.
``preflight``
    alice asks a.example ``--queries`` pre-flight queries for distinct domains that do not
    exist: the growth of a.example's resident memory once every query is answered; without the
    module, the same number of disco#info queries to those domains (the same s2s and DNS work).

Memory is reported twice: the growth of the resident set (what the issue measured; the allocator
keeps freed memory) and of the Lua heap after a full collection (what the server still holds),
read through the test-only memory probe (prosody/test_relay/mod_trust_path_test_memory.lua).

Run ``python -m trustpath.tools.resources keys|held|preflight [options] [--json]`` with a distinct
TRUSTPATH_LOOPBACK if another harness runs on the machine; prosody/README.md gives the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import socket
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

from ..testbed.harness.clients import Client
from ..testbed.harness.world import DIRECT_TLS_PORT, World, build_world, loopback

_TICK = os.sysconf("SC_CLK_TCK")
#: where the hanging s2s port listens (``held``)
HANG_ADDRESS = loopback(9)
NS = "urn:xmpp:trust-path:1"
#: TRUSTPATH_HARNESS_KEEP set: the servers' files (configs, logs) outlive the run
KEEP = bool(os.environ.get("TRUSTPATH_HARNESS_KEEP"))


def cpu_seconds(world: World, domain: str) -> float:
    """User + system CPU the server of ``domain`` has used so far."""
    server = world.servers[domain]
    assert server.process is not None
    with open(f"/proc/{server.process.pid}/stat", encoding="ascii") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


#: the test-only memory probe (prosody/test_relay/mod_trust_path_test_memory.lua)
PROBE = "trust_path_test_memory"
NS_PROBE = "urn:xmpp:trust-path:test:memory"


async def lua_heap_kb(client: Client) -> int:
    """The Lua heap of ``client``'s server after a full collection, in KB (the memory probe)."""
    from slixmpp.xmlstream import ET

    iq = client.xmpp.make_iq_get(ito=client.xmpp.boundjid.domain)
    iq.append(ET.fromstring(f"<memory xmlns='{NS_PROBE}'/>"))
    reply = await iq.send(timeout=30)
    return int(reply.xml.find(f"{{{NS_PROBE}}}memory").get("kb"))


def memory_kb(world: World, domain: str) -> dict[str, int]:
    """The server's resident memory now (VmRSS) and at its peak (VmHWM), in KB."""
    server = world.servers[domain]
    assert server.process is not None
    out = {}
    for line in Path(f"/proc/{server.process.pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            out[name] = int(value.split()[0])
    return out


def _options(by_domain: dict[str, dict[str, object]]) -> Any:
    return lambda domain, _spki: by_domain.get(domain, {})


async def _receive(bob: Client, bodies: set[str], timeout: float, refused: Any = None) -> dict[str, float]:
    """Arrival time of each of ``bodies`` at bob (those that arrived within ``timeout``), until
    every one arrived or ``refused()`` says how many of the others were refused."""
    arrived: dict[str, float] = {}
    deadline = time.monotonic() + timeout
    while len(arrived) + (refused() if refused else 0) < len(bodies):
        left = deadline - time.monotonic()
        if left <= 0:
            break
        try:
            when, message = await asyncio.wait_for(bob.inbox.get(), min(left, 0.2))
        except TimeoutError:
            continue
        body = message["body"]
        if body in bodies:
            arrived[body] = when
    return arrived


async def measure_keys(keys: int = 7000, messages: int = 50, cache_for: int = 0,
                       b_options: dict[str, object] | None = None) -> dict[str, object]:
    """b.example's CPU per message from a.example, which publishes ``keys`` revoked keys."""
    a_modules = ["trust_path"]
    a_options: dict[str, object] = {"trust_path_cache_for": cache_for}
    if keys:
        # the test relay adds the keys to a.example's disco#info answers: mod_trust_path itself
        # refuses to publish more than the XEP's limit
        a_modules.append("trust_path_test_relay")
        a_options.update(trust_path_test_attack="many-keys", trust_path_test_keys=keys)
    world = build_world(modules={"a.example": a_modules, "b.example": ["trust_path"]},
                        keep_files=KEEP, configure=_options({"a.example": a_options, "b.example": dict(b_options or {})}))
    try:
        alice = await Client("alice@a.example/res", world).start()
        bob = await Client("bob@b.example/res", world).start()
        # honest traffic beside the attack: bob's other device writes to him through b.example
        local = await Client("bob@b.example/local", world).start()
        # one message sets up the link and the first key fetch
        first_sent = time.perf_counter()
        alice.send("bob@b.example", "warm-up")
        warm = await _receive(bob, {"warm-up"}, 30)
        first_ms = round((warm["warm-up"] - first_sent) * 1000, 1) if warm else None
        cpu_before = cpu_seconds(world, "b.example")
        sent: dict[str, float] = {}
        honest: dict[str, float] = {}
        for i in range(messages):
            body = f"keys-{i}"
            sent[body] = time.perf_counter()
            alice.send("bob@b.example", body)
            honest[f"local-{i}"] = time.perf_counter()
            local.send("bob@b.example/res", f"local-{i}")
            await asyncio.sleep(0.02)  # a steady stream, not one burst that a single fetch serves
        arrived = await _receive(bob, set(sent) | set(honest), 60)
        cpu_after = cpu_seconds(world, "b.example")
        latencies = sorted(arrived[b] - sent[b] for b in arrived if b in sent)
        honest_latencies = sorted(arrived[b] - honest[b] for b in arrived if b in honest)
        problems: dict[str, int] = {}
        for line in world.servers["b.example"].log_lines("from alice@a.example/res: chain "):
            decision = line.split(": chain ", 1)[1].strip()
            problems[decision] = problems.get(decision, 0) + 1
        # every key fetch b.example made: the test relay logs each answer it floods
        fetches = len(world.servers["a.example"].log_lines("many-keys disco#info answer")) if keys else \
            len(world.servers["b.example"].log_lines("trust-path keys of a.example"))
        await alice.stop()
        await bob.stop()
        await local.stop()
    finally:
        world.close()
    return {"attack": "keys", "published_keys": keys + 1, "cache_for": cache_for, "messages": messages,
            "first_message_ms": first_ms, "delivered": len(latencies),
            "b_cpu_ms_per_msg": round((cpu_after - cpu_before) / max(1, messages) * 1000, 2),
            "median_latency_ms": round(statistics.median(latencies) * 1000, 1) if latencies else None,
            "max_latency_ms": round(latencies[-1] * 1000, 1) if latencies else None,
            "honest_median_ms": round(statistics.median(honest_latencies) * 1000, 1) if honest_latencies else None,
            "honest_max_ms": round(honest_latencies[-1] * 1000, 1) if honest_latencies else None,
            "key_fetches": fetches, "chain_problems": problems}


class HangingPort:
    """A TCP port that accepts connections and never sends a byte: a server whose s2s port hangs."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.sock = socket.create_server(address)
        self.connections: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, name="hanging-port", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections.append(conn)

    def stop(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept(), which frees the port
        except OSError:
            pass
        self.sock.close()
        self._thread.join(2)
        for conn in self.connections:
            conn.close()


def refused_in_log(world: World) -> int:
    """How many messages b.example refused beyond its held limits (held.lib.lua logs each batch)."""
    lines = world.servers["b.example"].log_lines("beyond the held limits")
    return sum(int(m.group(1)) for m in (re.search(r"refused (\d+) message", line) for line in lines) if m)


async def measure_held(messages: int = 300, kb: int = 100, module: bool = True,
                       b_options: dict[str, object] | None = None, settle: float = 2.0) -> dict[str, object]:
    """The growth of b.example's memory while a.example, whose s2s port hangs for b.example,
    sends ``messages`` messages of ``kb`` KB to bob."""
    hang = HangingPort((HANG_ADDRESS, DIRECT_TLS_PORT))
    world = build_world(modules={"b.example": (["trust_path"] if module else []) + [PROBE]},
                        direct_tls={"a.example": (HANG_ADDRESS, DIRECT_TLS_PORT)},
                        keep_files=KEEP, configure=_options({"b.example": dict(b_options or {})}))
    world.attackers.append(hang)
    try:
        alice = await Client("alice@a.example/res", world).start()
        bob = await Client("bob@b.example/res", world).start()
        await asyncio.sleep(0.5)
        before = memory_kb(world, "b.example")
        heap_before = await lua_heap_kb(bob)
        filler = "x" * (kb * 1024)
        bodies = set()
        start = time.perf_counter()
        for i in range(messages):
            body = f"held-{i} {filler}"
            bodies.add(body)
            alice.send("bob@b.example", body)
            if i % 20 == 19:
                await asyncio.sleep(0)  # let slixmpp write
        # the refusals go back over b.example's own link to a.example, the one that hangs: count
        # them in b.example's log
        arrived = await _receive(bob, bodies, 90, lambda: refused_in_log(world))
        took = time.perf_counter() - start
        await asyncio.sleep(settle)
        after = memory_kb(world, "b.example")
        heap_after = await lua_heap_kb(bob)
        refused = refused_in_log(world)
        await alice.stop()
        await bob.stop()
    finally:
        world.close()
    return {"attack": "held", "module": module, "messages": messages, "kb": kb, "delivered": len(arrived),
            "refused": refused, "seconds": round(took, 1),
            "rss_growth_mb": round((after["VmRSS"] - before["VmRSS"]) / 1024, 1),
            "lua_heap_growth_mb": round((heap_after - heap_before) / 1024, 1),
            "peak_growth_mb": round((after["VmHWM"] - before["VmRSS"]) / 1024, 1)}


async def measure_preflight(queries: int = 20000, module: bool = True, concurrency: int = 50,
                            a_options: dict[str, object] | None = None, settle: float = 12.0,
                            prefix: str = "nowhere") -> dict[str, object]:
    """The growth of a.example's memory after ``queries`` pre-flight queries for distinct domains
    that do not exist (without the module: disco#info queries to them)."""
    from slixmpp.xmlstream import ET

    world = build_world(modules={"a.example": (["trust_path"] if module else []) + [PROBE]},
                        keep_files=KEEP, configure=_options({"a.example": dict(a_options or {})}))
    answers: dict[str, int] = {}
    try:
        alice = await Client("alice@a.example/res", world).start()
        gate = asyncio.Semaphore(concurrency)

        async def ask(i: int, prefix: str = prefix) -> None:
            domain = f"d{i}.{prefix}.example"
            async with gate:
                if module:
                    iq = alice.xmpp.make_iq_get(ito=None)
                    iq.append(ET.fromstring(f"<preflight xmlns='{NS}' domain='{domain}'/>"))
                else:
                    iq = alice.xmpp.make_iq_get(queryxmlns="http://jabber.org/protocol/disco#info", ito=domain)
                try:
                    reply = await iq.send(timeout=60)
                    kind = "link" if reply.xml.find(f"{{{NS}}}preflight[@link]") is not None else reply["type"]
                except Exception as exc:  # noqa: BLE001 - an error answer is an answer; count its kind
                    kind = type(exc).__name__
                answers[kind] = answers.get(kind, 0) + 1

        # a few queries first, so that what the first one sets up (resolver, s2s) is not counted
        await asyncio.gather(*(ask(i, "warm-up") for i in range(20)))
        answers.clear()
        await asyncio.sleep(0.5)
        before = memory_kb(world, "a.example")
        heap_before = await lua_heap_kb(alice)
        start = time.perf_counter()
        await asyncio.gather(*(ask(i) for i in range(queries)))
        took = time.perf_counter() - start
        await asyncio.sleep(settle)  # pre-flight timers and failed fetches run out
        after = memory_kb(world, "a.example")
        heap_after = await lua_heap_kb(alice)
        # every fetch of a domain asked for (a failed disco#info is logged), and whether a.example
        # said it forgot domains (trust_path_peer_domains)
        fetches = len(world.servers["a.example"].log_lines(f".{prefix}.example failed"))
        evicting = bool(world.servers["a.example"].log_lines("trust_path_peer_domains"))
        await alice.stop()
    finally:
        world.close()
    return {"attack": "preflight", "module": module, "queries": queries, "answers": answers, "fetches": fetches,
            "evicting": evicting, "seconds": round(took, 1),
            "rss_growth_mb": round((after["VmRSS"] - before["VmRSS"]) / 1024, 1),
            "lua_heap_growth_mb": round((heap_after - heap_before) / 1024, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trustpath.tools.resources", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("attack", choices=("keys", "held", "preflight"))
    parser.add_argument("--keys", type=int, default=7000, help="keys: revoked keys a.example publishes")
    parser.add_argument("--cache-for", type=int, default=0, help="keys: a.example's cache-for")
    parser.add_argument("--messages", type=int, help="keys (50) and held (300): messages a.example sends")
    parser.add_argument("--kb", type=int, default=100, help="held: KB per message")
    parser.add_argument("--queries", type=int, default=20000, help="preflight: distinct domains asked for")
    parser.add_argument("--without-module", action="store_true", help="held, preflight: the control run")
    parser.add_argument("--option", action="append", default=[], metavar="NAME=VALUE",
                        help="a Prosody option for the measured server (b.example; a.example for preflight), "
                             "e.g. trust_path_preflight_fetches=100000")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    options: dict[str, object] = {}
    for item in args.option:
        name, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--option wants NAME=VALUE, got {item!r}")
        options[name] = int(value) if value.isdigit() else value
    if args.attack == "keys":
        figures = asyncio.run(measure_keys(args.keys, args.messages or 50, args.cache_for, options))
    elif args.attack == "held":
        figures = asyncio.run(measure_held(args.messages or 300, args.kb, not args.without_module, options))
    else:
        figures = asyncio.run(measure_preflight(args.queries, not args.without_module, a_options=options))
    if args.json:
        print(json.dumps(figures))
    else:
        for name, value in figures.items():
            print(f"{name:>22}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
