"""The brief's scenarios, live: real Prosody servers with mod_trust_path, real s2s TLS, and
slixmpp clients with the trust_path plugin.  Results have the shape of ``trustpath demo``."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any


from ...core.model import Verdict
from ..sim.scenarios import SCENARIOS as SIM_SCENARIOS
from ..sim.scenarios import Expectation, Outcome, _check, error_detail
from ...core.timefmt import format_time
from .clients import Client
from .world import World, build_world

FAKETIME_LIBS = ("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
                 "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1")


@dataclass(frozen=True)
class Setup:
    """How the live federation is configured for one scenario."""

    a_takes_part: bool = True
    b_takes_part: bool = True
    s2s_pins: bool = True  # both servers pin each other's key
    b_certificate_auth: bool = True  # False: b.example knows a.example by dialback only
    intercept: bool = False  # a man in the middle with CA-valid certificates on H2
    attack: str | None = None  # the test relay on a.example: strip, tamper, replay
    a_clock: str | None = None  # a libfaketime offset for a.example, e.g. "-3h"
    bob_pins: bool = True  # False: bob's client checks b.example against the CA only
    dane: bool = False  # a DNSSEC-signed zone with TLSA (DANE-EE) records; servers use_dane
    b_pins_a: bool = False  # b.example pins a.example (the inbound H2) even without s2s_pins


@dataclass
class Live:
    """A running live scenario: its world and clients."""

    world: World
    clients: dict[str, Client] = field(default_factory=dict)

    async def client(self, jid: str, *, pins: bool = True, carbons: bool = False, mam: bool = False,
                     extra_filter: Callable[[Any], Any] | None = None) -> Client:
        from ...client.slixmpp import register
        from ...client.slixmpp.pins import PinStore

        register()
        domain = jid.split("@")[1].split("/")[0]
        store = PinStore()
        if pins:
            store.add(domain, self.world.spki[domain])
        client = Client(jid, self.world, plugins=("trust_path",),
                        plugin_config={"trust_path": {"pins": store, "first_use": False}})
        client.verdicts: asyncio.Queue[Any] = asyncio.Queue()  # type: ignore[misc]
        client.errors: asyncio.Queue[Any] = asyncio.Queue()  # type: ignore[misc]
        client.xmpp.add_event_handler("trust_path_verdict", client.verdicts.put_nowait)
        client.xmpp.add_event_handler("message_error", client.errors.put_nowait)
        if carbons:
            client.xmpp.register_plugin("xep_0280")
        if mam:
            client.xmpp.register_plugin("xep_0313")
        ready: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        client.xmpp.add_event_handler("trust_path_ready", lambda policy: ready.done() or ready.set_result(policy))
        await client.start()
        if carbons:
            await client.xmpp.plugin["xep_0280"].enable()
        await asyncio.wait_for(ready, 10)
        if extra_filter is not None:
            # the plugin moves its signing filter to the end at session start: go after it
            client.xmpp.add_filter("out_sce", extra_filter)
        self.clients[jid] = client
        return client

    async def close(self) -> None:
        for client in self.clients.values():
            await client.stop()


def _configure(setup: Setup) -> Callable[[str, dict[str, str]], dict[str, object]]:
    def configure(domain: str, spki: dict[str, str]) -> dict[str, object]:
        options: dict[str, object] = {}
        other = "b.example" if domain == "a.example" else "a.example"
        if setup.s2s_pins or (setup.b_pins_a and domain == "b.example"):
            options["trust_path_s2s_pins"] = {other: [spki[other]]}
        if setup.attack and domain == "a.example":
            options["trust_path_test_attack"] = setup.attack
        return options

    return configure


def _world(setup: Setup) -> World:
    modules = {"a.example": ["trust_path"] if setup.a_takes_part else [],
               "b.example": ["trust_path"] if setup.b_takes_part else []}
    if setup.attack:
        modules["a.example"].append("trust_path_test_relay")
    env = {}
    if setup.a_clock:
        lib = next((p for p in FAKETIME_LIBS if os.path.exists(p)), None)
        if lib is None:
            raise RuntimeError("the clock-skew scenario needs libfaketime: apt-get install faketime")
        env["a.example"] = {"LD_PRELOAD": lib, "FAKETIME": setup.a_clock, "FAKETIME_DONT_RESET": "1"}
    distrust = frozenset() if setup.b_certificate_auth else frozenset({"b.example"})
    return build_world(modules=modules, intercept=setup.intercept, env=env, configure=_configure(setup),
                       distrust=distrust, dane=setup.dane, keep_files=bool(os.environ.get("TRUSTPATH_HARNESS_KEEP")))


async def _next(queue: asyncio.Queue[Any], timeout: float = 10) -> Any:
    return await asyncio.wait_for(queue.get(), timeout)


ALICE, BOB = "alice@a.example/phone", "bob@b.example/desk"


async def _delivered(live: Live, setup: Setup, body: str, **send: Any) -> tuple[Client, Any]:
    alice = await live.client(ALICE)
    bob = await live.client(BOB, pins=setup.bob_pins)
    alice.send("bob@b.example", body)
    return bob, await _next(bob.verdicts)


async def _refused(live: Live, body: str, **send: Any) -> tuple[Client, Any]:
    alice = await live.client(ALICE)
    await live.client(BOB)
    if send.get("require"):
        alice.xmpp.plugin["trust_path"].send_message_with_requirement("bob@b.example", body, send["require"])
    else:
        alice.send("bob@b.example", body)
    return alice, await _next(alice.errors)


@dataclass(frozen=True)
class LiveScenario:
    number: int
    name: str
    title: str
    expected: Expectation
    setup: Setup
    run: Callable[[Live, Setup], Awaitable[tuple[Client, Any]]]
    methods: tuple[tuple[str, str, str], ...] = ()  # (hop, 'client'/'server', method) the report must show


def _sim(number: int) -> Any:
    return next(s for s in SIM_SCENARIOS if s.number == number)


def _scenario(number: int, setup: Setup, run: Callable[[Live, Setup], Awaitable[tuple[Client, Any]]],
              **expect: Any) -> LiveScenario:
    base = _sim(number)
    return LiveScenario(number, base.name, base.title, replace(base.expected, **expect), setup, run)


async def s_plain(live: Live, setup: Setup) -> tuple[Client, Any]:
    return await _delivered(live, setup, "Hello over a live federation.")


async def s_refused(live: Live, setup: Setup) -> tuple[Client, Any]:
    return await _refused(live, "This must not be delivered.")


async def s_require(live: Live, setup: Setup) -> tuple[Client, Any]:
    return await _refused(live, "Only over verified hops, please.", require="trusted")


async def s_tamper(live: Live, setup: Setup) -> tuple[Client, Any]:
    return await _delivered(live, setup, "Meet at noon.")


async def s_replay(live: Live, setup: Setup) -> tuple[Client, Any]:
    alice = await live.client(ALICE)
    bob = await live.client(BOB)
    alice.send("bob@b.example", "An earlier message.")
    await _next(bob.verdicts)
    alice.send("bob@b.example", "A later message carrying the earlier attestation.")
    return bob, await _next(bob.verdicts)


async def s_forgery(live: Live, setup: Setup) -> tuple[Client, Any]:
    from .forge import forged_attestation_filter

    alice = await live.client(ALICE, extra_filter=forged_attestation_filter("a.example"))
    bob = await live.client(BOB)
    alice.send("bob@b.example", "My client claims to be my server.")
    return bob, await _next(bob.verdicts)


async def s_offline(live: Live, setup: Setup) -> tuple[Client, Any]:
    alice = await live.client(ALICE)
    alice.send("bob@b.example", "Bob is offline; b.example stores this.")
    await asyncio.sleep(1.5)
    bob = await live.client(BOB)
    return bob, await _next(bob.verdicts)


async def s_carbon(live: Live, setup: Setup) -> tuple[Client, Any]:
    alice = await live.client(ALICE)
    laptop = await live.client("alice@a.example/laptop", carbons=True)
    await live.client(BOB)
    alice.send("bob@b.example", "Sent from the phone; the laptop gets a carbon copy.")
    return laptop, await _next(laptop.verdicts)


async def s_rotation(live: Live, setup: Setup) -> tuple[Client, Any]:
    from .rotate import rotate_key

    alice = await live.client(ALICE)
    bob = await live.client(BOB)
    alice.send("bob@b.example", "Archived, then b.example rotates its key.")
    await _next(bob.verdicts)
    await bob.stop()
    del live.clients[BOB]
    rotate_key(live.world.servers["b.example"])
    bob = await live.client(BOB, mam=True)
    await bob.xmpp.plugin["xep_0313"].retrieve(jid=None, iterator=False)
    return bob, await _next(bob.verdicts)


LIVE_SCENARIOS: tuple[LiveScenario, ...] = (
    _scenario(1, Setup(), s_plain),
    _scenario(2, Setup(s2s_pins=False), s_plain),
    _scenario(3, Setup(s2s_pins=False, b_certificate_auth=False), s_plain),
    _scenario(4, Setup(intercept=True), s_refused),
    _scenario(5, Setup(a_takes_part=False, s2s_pins=False), s_plain),
    _scenario(6, Setup(attack="strip"), s_plain),
    _scenario(7, Setup(attack="tamper"), s_tamper),
    _scenario(8, Setup(), s_forgery),
    _scenario(9, Setup(attack="replay"), s_replay),
    _scenario(10, Setup(), s_rotation),
    _scenario(11, Setup(bob_pins=False), s_plain),
    _scenario(12, Setup(), s_offline),
    _scenario(13, Setup(), s_carbon),
    _scenario(14, Setup(a_clock="-3h"), s_plain),
    _scenario(15, Setup(s2s_pins=False, b_certificate_auth=False), s_require, reason="ca-only"),
    _scenario(16, Setup(intercept=True, s2s_pins=False), s_plain),
    # beyond the brief's table: H2 strong by DANE.  a.example verifies b.example by DANE-EE
    # (DNSSEC-validated TLSA 3 1 1 from the harness's signed zone), with no pin; Prosody
    # 0.12 does no DANE for inbound streams, so b.example checks a.example by its pin.
    LiveScenario(17, "h2-dane", "H2 verified by DANE-EE over DNSSEC, no pin on the outbound side",
                 Expectation(Verdict.TRUSTED, text="fully trusted, H2 by DANE-EE"),
                 Setup(s2s_pins=False, dane=True, b_pins_a=True), s_plain,
                 methods=(("H2", "client", "dane-ee"), ("H2", "server", "pin"))),
)


async def run_live(scenario: LiveScenario, *, timeout: float = 60) -> Outcome:
    world = await asyncio.to_thread(_world, scenario.setup)
    live = Live(world)
    outcome = Outcome(scenario.number, scenario.name, scenario.title, scenario.expected, False, None, None, None)
    try:
        viewer, event = await asyncio.wait_for(scenario.run(live, scenario.setup), timeout)
        if hasattr(event, "report"):
            outcome.delivered = True
            outcome.report = event.report
            from ...client.slixmpp.plugin import wire_bytes

            outcome.stanza = wire_bytes(event.stanza.xml)
            outcome.anchor = viewer.xmpp.plugin["trust_path"].anchor
            outcome.received_at = format_time(__import__("datetime").datetime.now(__import__("datetime").UTC))
        else:
            from ...client.slixmpp.plugin import wire_bytes

            outcome.stanza = wire_bytes(event.xml)
            outcome.error = error_detail(outcome.stanza)
    except TimeoutError:
        outcome.problems.append("nothing arrived in time")
    finally:
        try:
            await live.close()
        finally:
            world.close()  # synchronous: it must run even when the run is cancelled (Ctrl-C)
    if outcome.problems:
        return outcome
    _check(outcome)
    if outcome.report is not None:
        hops = {h.label: h for h in outcome.report.hops}
        for label, side, method in scenario.methods:
            hop = hops.get(label)
            view = hop and (hop.client_view if side == "client" else hop.server_view)
            found = view.method if view is not None else None
            if found != method:
                outcome.problems.append(f"{label}'s {side} view must show method {method} ({found})")
    elif scenario.methods:
        outcome.problems.append("not delivered: no methods to check")
    return outcome


async def run_all_live(only: tuple[int, ...] = ()) -> list[Outcome]:
    outcomes = []
    for scenario in LIVE_SCENARIOS:
        if not only or scenario.number in only:
            outcomes.append(await run_live(scenario))
            await _settle()
    return outcomes


async def _settle() -> None:
    """Let the closed clients' background tasks end before the next scenario starts."""
    current = asyncio.current_task()
    leftovers = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
    for task in leftovers:
        task.cancel()
    await asyncio.gather(*leftovers, return_exceptions=True)


__all__ = ["LIVE_SCENARIOS", "LiveScenario", "Setup", "run_all_live", "run_live"]
