"""``trustpath bench --live``: messages per second and latency through two real federations,
one with mod_trust_path and one without, measured side by side in one run."""

from __future__ import annotations

import asyncio
import statistics
import time

from ..testbed.harness.clients import Client
from ..testbed.harness.world import build_world, loopback

ON_ADDRESSES = {"a.example": loopback(2), "b.example": loopback(3)}
OFF_ADDRESSES = {"a.example": loopback(5), "b.example": loopback(6)}


async def _batch(alice: Client, bob: Client, size: int, tag: str) -> tuple[float, list[float]]:
    sent: dict[str, float] = {}
    start = time.perf_counter()
    for i in range(size):
        body = f"{tag}-{i}"
        sent[body] = time.perf_counter()
        alice.send("bob@b.example", body)
    latencies = []
    while len(latencies) < size:
        arrived, message = await asyncio.wait_for(bob.inbox.get(), 30)
        body = message["body"]
        if body in sent:
            latencies.append(arrived - sent.pop(body))
    return time.perf_counter() - start, latencies


async def run_live_bench(messages: int = 1000, batch: int = 50, on_modules: tuple[str, ...] = ("trust_path",),
                         on_addresses: dict[str, str] = ON_ADDRESSES,
                         off_addresses: dict[str, str] = OFF_ADDRESSES) -> dict[str, float | int]:
    worlds = {"on": build_world(modules={d: list(on_modules) for d in on_addresses}, addresses=on_addresses),
              "off": build_world(addresses=off_addresses)}
    try:
        clients = {}
        for name, world in worlds.items():
            alice = await Client("alice@a.example/bench", world).start()
            bob = await Client("bob@b.example/bench", world).start()
            clients[name] = (alice, bob)
            await _batch(alice, bob, 20, f"warm-{name}")  # sets up the s2s link
        elapsed = {"on": 0.0, "off": 0.0}
        latencies: dict[str, list[float]] = {"on": [], "off": []}
        for round_ in range(max(1, messages // batch)):
            order = ("on", "off") if round_ % 2 == 0 else ("off", "on")
            for name in order:
                took, lat = await _batch(*clients[name], batch, f"{name}-{round_}")
                elapsed[name] += took
                latencies[name] += lat
        for alice, bob in clients.values():
            await alice.stop()
            await bob.stop()
    finally:
        for world in worlds.values():
            world.close()
    figures: dict[str, float | int] = {"messages": len(latencies["on"]), "batch": batch}
    for name in ("on", "off"):
        lat = sorted(latencies[name])
        figures[f"{name}_msgs_per_s"] = round(len(lat) / elapsed[name], 1)
        figures[f"{name}_median_ms"] = round(statistics.median(lat) * 1000, 2)
        figures[f"{name}_p99_ms"] = round(lat[int(len(lat) * 0.99) - 1] * 1000, 2)
    figures["throughput_ratio"] = round(figures["on_msgs_per_s"] / figures["off_msgs_per_s"], 3)
    return figures
