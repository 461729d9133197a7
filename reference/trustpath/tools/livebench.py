"""``trustpath bench --live``: messages per second and latency through two real federations,
one with mod_trust_path and one without, measured side by side in one run.

Both federations are configured identically (the harness writes ``network_settings = { nagle =
false }`` and ``gc = { mode = "generational" }`` into every Prosody config) and differ only in the
module.  Batches alternate between them; the whole measurement runs ``runs`` times (three by
default) and each figure is the median over the runs.  Beside throughput it reports each server's
CPU time per message (user + system, from /proc), the part of the cost the module adds."""

from __future__ import annotations

import asyncio
import os
import statistics
import time

from ..testbed.harness.clients import Client
from ..testbed.harness.world import World, build_world, loopback

ON_ADDRESSES = {"a.example": loopback(2), "b.example": loopback(3)}
OFF_ADDRESSES = {"a.example": loopback(5), "b.example": loopback(6)}
_TICK = os.sysconf("SC_CLK_TCK")


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


def _cpu_seconds(world: World) -> dict[str, float]:
    """User + system CPU each server of ``world`` has used so far."""
    out = {}
    for domain, server in world.servers.items():
        assert server.process is not None
        with open(f"/proc/{server.process.pid}/stat", encoding="ascii") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        out[domain] = (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime
    return out


async def _one_run(clients: dict[str, tuple[Client, Client]], worlds: dict[str, World], messages: int, batch: int,
                   run: int) -> dict[str, float | int]:
    elapsed = {"on": 0.0, "off": 0.0}
    latencies: dict[str, list[float]] = {"on": [], "off": []}
    cpu_before = {name: _cpu_seconds(world) for name, world in worlds.items()}
    for round_ in range(max(1, messages // batch)):
        order = ("on", "off") if round_ % 2 == 0 else ("off", "on")
        for name in order:
            took, lat = await _batch(*clients[name], batch, f"{name}-{run}-{round_}")
            elapsed[name] += took
            latencies[name] += lat
    cpu_after = {name: _cpu_seconds(world) for name, world in worlds.items()}
    figures: dict[str, float | int] = {"messages": len(latencies["on"]), "batch": batch}
    for name in ("on", "off"):
        lat = sorted(latencies[name])
        figures[f"{name}_msgs_per_s"] = round(len(lat) / elapsed[name], 1)
        figures[f"{name}_median_ms"] = round(statistics.median(lat) * 1000, 2)
        figures[f"{name}_p99_ms"] = round(lat[int(len(lat) * 0.99) - 1] * 1000, 2)
        for domain, role in (("a.example", "sending"), ("b.example", "receiving")):
            used = cpu_after[name][domain] - cpu_before[name][domain]
            figures[f"{name}_{role}_cpu_us_per_msg"] = round(used / len(lat) * 1e6, 1)
    figures["throughput_ratio"] = round(figures["on_msgs_per_s"] / figures["off_msgs_per_s"], 3)
    return figures


async def run_live_bench(messages: int = 1000, batch: int = 50, on_modules: tuple[str, ...] = ("trust_path",),
                         on_addresses: dict[str, str] = ON_ADDRESSES,
                         off_addresses: dict[str, str] = OFF_ADDRESSES, runs: int = 3) -> dict[str, object]:
    """``runs`` measurements of ``messages`` per federation each; every figure is the median over
    the runs (``runs_detail`` keeps each run's)."""
    worlds: dict[str, World] = {}
    try:
        worlds["on"] = build_world(modules={d: list(on_modules) for d in on_addresses}, addresses=on_addresses)
        worlds["off"] = build_world(addresses=off_addresses)
        clients = {}
        for name, world in worlds.items():
            alice = await Client("alice@a.example/bench", world).start()
            bob = await Client("bob@b.example/bench", world).start()
            clients[name] = (alice, bob)
            await _batch(alice, bob, 20, f"warm-{name}")  # sets up the s2s link (and the module's key fetch)
        detail = [await _one_run(clients, worlds, messages, batch, run) for run in range(runs)]
        for alice, bob in clients.values():
            await alice.stop()
            await bob.stop()
    finally:
        for world in worlds.values():
            world.close()
    figures: dict[str, object] = {key: statistics.median(run[key] for run in detail)  # type: ignore[misc]
                                  for key in detail[0]}
    figures["runs"] = runs
    figures["runs_detail"] = detail
    return figures
