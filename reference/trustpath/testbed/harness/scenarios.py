"""How each scenario of the table (:mod:`..scenarios`) runs live: real Prosody servers with
mod_trust_path, real s2s TLS, and slixmpp clients with the trust_path plugin.  Outcomes have
the shape of ``trustpath demo``'s."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from ...client.slixmpp.pins import PinStore
from ...client.slixmpp.wire import wire_bytes
from ...core.errors import InvalidInput
from ...core.disco import txt_records
from ...core.keys import KeySet, PublishedKey, SigningKey
from ...core.timefmt import format_time
from ..scenarios import ALICE, BOB, Bed, Outcome, Scenario, check_outcome, error_detail, scenarios_on
from .clients import TrustPathClient
from .mitm import C2SInterceptor, KeyFetchAttacker
from .posh import PoshServer
from .rotate import current_key
from .world import C2S_INTERCEPTOR_ADDRESS, DIRECT_TLS_PORT, KEY_FETCH_ATTACKER_ADDRESS, World, build_world

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
    #: a man in the middle on alice's c2s hop (H1) with a CA-valid certificate for a.example:
    #: ``careful`` (alice checks a.example by the CA only; he swaps her session key and re-signs her
    #: record claiming a pin) or ``first-use`` (alice took his key as a first-use pin; he relays)
    h1_attack: str | None = None
    #: a man in the middle on b.example's own link to a.example answers its key query with his key
    #: (b.example checks a.example by the CA only, a.example pins b.example)
    key_fetch_attack: bool = False
    a_pins_b: bool = False  # a.example pins b.example (the outbound H2) even without s2s_pins
    #: both domains publish their keys in ``_trust-path.<domain>`` TXT records (XEP "Discovery and Keys"):
    #: ``real`` (each its own key) or ``wrong`` (a.example's record names a key it does not hold);
    #: signed (validated) only with ``dane``
    txt_keys: str | None = None
    a_tlsa: bool = True  # with ``dane``: a.example publishes TLSA (False: b.example checks it by the CA only)
    #: extra config options: (domain, option, value), e.g. ``("b.example", "trust_path_peer_keys", {...})``
    options: tuple[tuple[str, str, Any], ...] = ()
    #: extra Prosody modules: (domain, module), e.g. ``("a.example", "trust_path_test_silent")``
    modules: tuple[tuple[str, str], ...] = ()
    #: the servers load mod_posix, so that their configuration can be reloaded (a key rotation)
    reloadable: bool = False
    #: a.example publishes its record keys in a POSH document over HTTPS (XEP "Discovery and
    #: Keys"): ``real`` (its own key, a certificate for a.example from the harness's CA), ``wrong``
    #: (a key it does not hold), ``other-name`` (its own key, but a certificate for another name) or
    #: ``oversized`` (its own key, in a document of over 100 KB)
    posh_keys: str | None = None


@dataclass
class Live:
    """A running live scenario: its world and clients."""

    world: World
    clients: dict[str, TrustPathClient] = field(default_factory=dict)
    #: what went wrong beside the verdict (e.g. an attack that did not happen): added to the outcome
    problems: list[str] = field(default_factory=list)

    @property
    def c2s_interceptor(self) -> C2SInterceptor | None:
        return next((a for a in self.world.attackers if isinstance(a, C2SInterceptor)), None)

    async def client(self, jid: str, *, pins: bool = True, carbons: bool = False, mam: bool = False,
                     extra_filter: Callable[[Any], Any] | None = None) -> TrustPathClient:
        """Connect ``jid`` with the trust_path plugin, which pins its server unless ``pins`` is
        False (then it checks the server against the CA only); return once the plugin knows the
        server's keys.  ``extra_filter`` runs on each outgoing stanza after the plugin signed it."""
        domain = jid.split("@")[1].split("/")[0]
        store = PinStore()
        address = None
        mitm = self.c2s_interceptor
        if mitm is not None and jid == mitm.jid:
            # alice's hop runs through the man in the middle: she either checks a CA only, or
            # pinned, on first use, the key he showed her then
            address = mitm.listen[0]
            if not mitm.forge:
                store.pin_first_use(domain, mitm.credential.spki)
        elif pins:
            store.add(domain, self.world.spki[domain])
        client = TrustPathClient(jid, self.world, pins=store, address=address, config={"bind_channel": True})
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

    async def drop(self, jid: str) -> None:
        """Disconnect ``jid``, so that it can connect again (a new session)."""
        await self.clients.pop(jid).stop()

    async def close(self) -> None:
        for client in self.clients.values():
            await client.stop()


def _configure(setup: Setup) -> Callable[[str, dict[str, str]], dict[str, object]]:
    def configure(domain: str, spki: dict[str, str]) -> dict[str, object]:
        options: dict[str, object] = {}
        other = "b.example" if domain == "a.example" else "a.example"
        if setup.s2s_pins or (setup.b_pins_a and domain == "b.example") or (setup.a_pins_b and domain == "a.example"):
            options["trust_path_s2s_pins"] = {other: [spki[other]]}
        if setup.attack and domain == "a.example":
            options["trust_path_test_attack"] = setup.attack
        for where, name, value in setup.options:
            if where == domain:
                options[name] = value
        return options

    return configure


def world_for(setup: Setup) -> World:
    """Start the live federation ``setup`` describes, on the harness's addresses (see
    :func:`.world.loopback`); with TRUSTPATH_HARNESS_KEEP set, its files outlive it."""
    modules = {"a.example": ["trust_path"] if setup.a_takes_part else [],
               "b.example": ["trust_path"] if setup.b_takes_part else []}
    if setup.attack:
        modules["a.example"].append("trust_path_test_relay")
    for domain, name in setup.modules:
        modules[domain].append(name)
    env = {}
    if setup.a_clock:
        lib = next((p for p in FAKETIME_LIBS if os.path.exists(p)), None)
        if lib is None:
            raise RuntimeError("the clock-skew scenario needs libfaketime: apt-get install faketime")
        env["a.example"] = {"LD_PRELOAD": lib, "FAKETIME": setup.a_clock, "FAKETIME_DONT_RESET": "1"}
    distrust = frozenset() if setup.b_certificate_auth else frozenset({"b.example"})
    direct_tls = {"a.example": (KEY_FETCH_ATTACKER_ADDRESS, DIRECT_TLS_PORT)} if setup.key_fetch_attack else None
    world = build_world(modules=modules, intercept=setup.intercept, env=env, configure=_configure(setup),
                        distrust=distrust, dane=setup.dane, keep_files=bool(os.environ.get("TRUSTPATH_HARNESS_KEEP")),
                        direct_tls=direct_tls, reloadable=setup.reloadable)
    try:
        if setup.dane and not setup.a_tlsa:
            world.dns.zone.tlsa.pop("_15269._tcp.xmpp.a.example.", None)
        if setup.txt_keys is not None:
            publish_txt_keys(world, wrong=setup.txt_keys == "wrong")
        if setup.posh_keys is not None:
            publish_posh_keys(world, setup.posh_keys)
        if setup.h1_attack is not None:
            world.attackers.append(C2SInterceptor(
                (C2S_INTERCEPTOR_ADDRESS, 15222), (world.address("a.example"), 15222), "a.example", ALICE,
                world.ca.issue("a.example", "mitm-c2s-a.example"), world.ca.ca_file,
                forge=setup.h1_attack == "careful").start())
        if setup.key_fetch_attack:
            world.attackers.append(KeyFetchAttacker(
                (KEY_FETCH_ATTACKER_ADDRESS, DIRECT_TLS_PORT), "a.example",
                ("b.example", world.address("b.example"), 15269),
                world.ca.issue("a.example", "mitm-keyfetch-a.example"), world.ca.ca_file).start())
    except BaseException:
        world.close()
        raise
    return world


def publish_txt_keys(world: World, *, wrong: bool = False) -> None:
    """Publish each server's record keys in ``_trust-path.<domain>`` TXT records (the
    reference's :func:`~trustpath.core.disco.txt_records`); with ``wrong``, a.example's record
    names a key it does not hold.  Done once the servers run (a server makes its key on first start)
    and before any client connects."""
    for domain, instance in world.servers.items():
        key = SigningKey.generate().public if wrong and domain == "a.example" else current_key(instance).public
        world.dns.zone.add_txt(f"_trust-path.{domain}", txt_records(KeySet(domain, (PublishedKey(key),))))


def publish_posh_keys(world: World, how: str = "real") -> PoshServer:
    """Serve a.example's record key as its POSH document, at a.example's address, port 443
    (see :class:`.posh.PoshServer`): ``real``, ``wrong`` (a key it does not hold) or
    ``other-name`` (served with a certificate for www.c.example, not for a.example) or
    ``oversized`` (its own key in a document of over 100 KB)."""
    if how not in ("real", "wrong", "other-name", "oversized"):
        raise ValueError(f"posh_keys is real, wrong, other-name or oversized, not {how!r}")
    instance = world.servers["a.example"]
    key = SigningKey.generate().public if how == "wrong" else current_key(instance).public
    name = "www.c.example" if how == "other-name" else "a.example"
    server = PoshServer(instance.address, KeySet("a.example", (PublishedKey(key),)),
                        world.ca.issue(name, f"posh-{name}"), padding=100_000 if how == "oversized" else 0).start()
    world.services.append(server)
    return server


async def next_event(queue: asyncio.Queue[Any], timeout: float = 10) -> Any:
    """The next thing a client queued (a verdict, a message error); TimeoutError after ``timeout`` s."""
    return await asyncio.wait_for(queue.get(), timeout)


async def _delivered(live: Live, setup: Setup, body: str) -> tuple[TrustPathClient, Any]:
    alice = await live.client(ALICE)
    bob = await live.client(BOB, pins=setup.bob_pins)
    alice.send("bob@b.example", body)
    return bob, await next_event(bob.verdicts)


async def _refused(live: Live, body: str, *, require: str | None = None) -> tuple[TrustPathClient, Any]:
    alice = await live.client(ALICE)
    await live.client(BOB)
    if require:
        alice.xmpp.plugin["trust_path"].send_message_with_requirement("bob@b.example", body, require)
    else:
        alice.send("bob@b.example", body)
    return alice, await next_event(alice.errors)


async def s_plain(live: Live, setup: Setup) -> tuple[TrustPathClient, Any]:
    return await _delivered(live, setup, "Hello over a live federation.")


async def s_refused(live: Live, setup: Setup) -> tuple[TrustPathClient, Any]:
    return await _refused(live, "This must not be delivered.")


async def s_require(live: Live, setup: Setup) -> tuple[TrustPathClient, Any]:
    return await _refused(live, "Only over verified hops, please.", require="trusted")


async def s_tamper(live: Live, setup: Setup) -> tuple[TrustPathClient, Any]:
    return await _delivered(live, setup, "Meet at noon.")


async def s_replay(live: Live, setup: Setup) -> tuple[TrustPathClient, Any]:
    alice = await live.client(ALICE)
    bob = await live.client(BOB)
    alice.send("bob@b.example", "An earlier message.")
    await next_event(bob.verdicts)
    alice.send("bob@b.example", "A later message carrying the earlier record.")
    return bob, await next_event(bob.verdicts)


async def s_forgery(live: Live, setup: Setup) -> tuple[TrustPathClient, Any]:
    from .forge import forged_record_filter

    alice = await live.client(ALICE, extra_filter=forged_record_filter("a.example", ALICE))
    bob = await live.client(BOB)
    alice.send("bob@b.example", "My client claims to be my server.")
    return bob, await next_event(bob.verdicts)


async def s_offline(live: Live, setup: Setup) -> tuple[TrustPathClient, Any]:
    alice = await live.client(ALICE)
    alice.send("bob@b.example", "Bob is offline; b.example stores this.")
    await asyncio.sleep(1.5)
    bob = await live.client(BOB)
    return bob, await next_event(bob.verdicts)


async def s_carbon(live: Live, setup: Setup) -> tuple[TrustPathClient, Any]:
    alice = await live.client(ALICE)
    laptop = await live.client("alice@a.example/laptop", carbons=True)
    await live.client(BOB)
    alice.send("bob@b.example", "Sent from the phone; the laptop gets a carbon copy.")
    return laptop, await next_event(laptop.verdicts)


async def s_rotation(live: Live, setup: Setup) -> tuple[TrustPathClient, Any]:
    from .rotate import rotate_key

    alice = await live.client(ALICE)
    bob = await live.client(BOB)
    alice.send("bob@b.example", "Archived, then b.example rotates its key.")
    await next_event(bob.verdicts)
    await live.drop(BOB)
    rotate_key(live.world.servers["b.example"])
    bob = await live.client(BOB, mam=True)
    await bob.xmpp.plugin["xep_0313"].retrieve(jid=None, iterator=False)
    return bob, await next_event(bob.verdicts)


async def s_h1_mitm(live: Live, setup: Setup) -> tuple[TrustPathClient, Any]:
    """Alice's hop runs through the man in the middle; positive controls: he was on the path, and
    alice's login had no channel binding the server could check."""
    bob, event = await _delivered(live, setup, "Through the man in the middle on my own hop.")
    mitm = live.c2s_interceptor
    assert mitm is not None
    if mitm.real_view is None:
        live.problems.append("alice's hop did not run through the man in the middle")
    if mitm.forge and "record" not in mitm.rewritten:
        live.problems.append(f"the careful attacker did not re-sign alice's record (he changed: {mitm.rewritten})")
    if live.clients[ALICE].xmpp.plugin["trust_path"].channel_binding is not None:
        live.problems.append("alice's login through the man in the middle used channel binding")
    return bob, event


async def s_key_fetch(live: Live, setup: Setup) -> tuple[TrustPathClient, Any]:
    """b.example asks for a.example's keys over its own link, which the attacker holds; positive
    control: he answered a query."""
    bob, event = await _delivered(live, setup, "b.example asked for a.example's keys over a link a man in the "
                                  "middle holds.")
    attacker = next(a for a in live.world.attackers if isinstance(a, KeyFetchAttacker))
    if not attacker.answered:
        live.problems.append("the attacker on b.example's link to a.example answered no key query")
    return bob, event


OMEMO = "eu.siacs.conversations.axolotl"


async def s_omemo(live: Live, setup: Setup) -> tuple[TrustPathClient, Any]:
    """An OMEMO-shaped message (XEP-0384): a header with a key per device, an encrypted payload,
    and the usual fallback body; the plugin signs it in its last outgoing filter."""
    from slixmpp.xmlstream import ET

    alice = await live.client(ALICE)
    bob = await live.client(BOB, pins=setup.bob_pins)
    message = alice.xmpp.make_message(mto="bob@b.example", mtype="chat",
                                      mbody="I sent you an OMEMO encrypted message but your client doesn't "
                                            "seem to support that.")
    message["id"] = alice.xmpp.new_id()
    encrypted = ET.SubElement(message.xml, f"{{{OMEMO}}}encrypted")
    header = ET.SubElement(encrypted, f"{{{OMEMO}}}header", sid="27183")
    ET.SubElement(header, f"{{{OMEMO}}}key", rid="31415").text = "MwohLsQ+Wz0QhK9hKcoHGhIIARIbCiEF"
    ET.SubElement(header, f"{{{OMEMO}}}iv").text = "dGhpcyBpcyBub3Q="
    ET.SubElement(encrypted, f"{{{OMEMO}}}payload").text = "ZW5jcnlwdGVkIHRleHQ="
    message.send()
    event = await next_event(bob.verdicts)
    if OMEMO.encode() not in wire_bytes(event.stanza.xml):
        live.problems.append("bob's copy carries no OMEMO payload")
    return bob, event


@dataclass(frozen=True)
class LiveRun:
    """How one scenario is run live: the federation's setup, and what the clients do on it.

    ``steps`` returns the client that must see the result, and what it saw: a verdict event
    (``trust_path_verdict``) or the error of a refused message.
    """

    setup: Setup
    steps: Callable[[Live, Setup], Awaitable[tuple[TrustPathClient, Any]]]


RUNS: dict[int, LiveRun] = {
    1: LiveRun(Setup(), s_plain),
    2: LiveRun(Setup(s2s_pins=False), s_plain),
    3: LiveRun(Setup(s2s_pins=False, b_certificate_auth=False), s_plain),
    4: LiveRun(Setup(intercept=True), s_refused),
    5: LiveRun(Setup(a_takes_part=False, s2s_pins=False), s_plain),
    6: LiveRun(Setup(attack="strip"), s_plain),
    7: LiveRun(Setup(attack="tamper"), s_tamper),
    8: LiveRun(Setup(), s_forgery),
    9: LiveRun(Setup(attack="replay"), s_replay),
    10: LiveRun(Setup(), s_rotation),
    11: LiveRun(Setup(bob_pins=False), s_plain),
    12: LiveRun(Setup(), s_offline),
    13: LiveRun(Setup(), s_carbon),
    14: LiveRun(Setup(a_clock="-3h"), s_plain),
    15: LiveRun(Setup(s2s_pins=False, b_certificate_auth=False), s_require),
    16: LiveRun(Setup(intercept=True, s2s_pins=False), s_plain),
    # H2 by DANE-EE over the harness's DNSSEC-signed zone; b.example pins a.example (Prosody
    # 0.12 does no DANE for inbound streams)
    17: LiveRun(Setup(s2s_pins=False, dane=True, b_pins_a=True), s_plain),
    18: LiveRun(Setup(h1_attack="careful"), s_h1_mitm),
    19: LiveRun(Setup(h1_attack="first-use"), s_h1_mitm),
    20: LiveRun(Setup(s2s_pins=False, a_pins_b=True, key_fetch_attack=True), s_key_fetch),
    21: LiveRun(Setup(), s_omemo),
}


async def run_live(scenario: Scenario, *, timeout: float = 60) -> Outcome:
    """Run ``scenario`` on a fresh live federation, and check what arrived against the table."""
    why_not = scenario.why_not_on(Bed.LIVE)
    if why_not is not None:
        raise ValueError(f"scenario {scenario.number} does not run live: {why_not}")
    run = RUNS.get(scenario.number)
    if run is None:
        return Outcome(scenario, Bed.LIVE, False, problems=("the live harness has no run for this scenario yet",))
    world = await asyncio.to_thread(world_for, run.setup)
    live = Live(world)
    try:
        viewer, event = await asyncio.wait_for(run.steps(live, run.setup), timeout)
        if hasattr(event, "report"):
            outcome = Outcome(scenario, Bed.LIVE, True, event.report, wire_bytes(event.stanza.xml),
                              viewer.xmpp.plugin["trust_path"].anchor,
                              received_at=format_time(datetime.now(UTC)))
        else:
            stanza = wire_bytes(event.xml)
            plugin = viewer.xmpp.plugin["trust_path"]
            try:
                refusal = plugin.verify_refusal(event)  # the refusal's own path, from its refuser
            except InvalidInput:
                refusal = None
            outcome = Outcome(scenario, Bed.LIVE, False, stanza=stanza, error=error_detail(stanza),
                              anchor=plugin.anchor, received_at=format_time(datetime.now(UTC)), refusal=refusal)
        outcome = replace(outcome, problems=outcome.problems + tuple(live.problems))
    except TimeoutError:
        return Outcome(scenario, Bed.LIVE, False, problems=("nothing arrived in time", *live.problems))
    except (OSError, RuntimeError, ValueError, KeyError, AttributeError) as exc:
        # a step of the run failed (a server that did not start, a key file the module did not write):
        # that scenario fails with why, the others still run
        return Outcome(scenario, Bed.LIVE, False, problems=(f"the run failed: {type(exc).__name__}: {exc}",
                                                            *live.problems))
    finally:
        try:
            await live.close()
        finally:
            world.close()  # synchronous: it must run even when the run is cancelled (Ctrl-C)
    return check_outcome(outcome)


async def run_all_live(only: tuple[int, ...] = ()) -> list[Outcome]:
    """Every scenario the live harness runs (or those numbered in ``only``), one federation each."""
    outcomes = []
    for scenario in scenarios_on(Bed.LIVE, only):
        outcomes.append(await run_live(scenario))
        await settle()
    return outcomes


def in_live_world(make_world: Callable[[], World], steps: Callable[[Live], Awaitable[None]]) -> None:
    """Build a federation with ``make_world`` (in a thread: it starts processes), run ``steps``
    on it, then stop every client and process, whatever happened."""
    async def run() -> None:
        world = await asyncio.to_thread(make_world)
        live = Live(world)
        try:
            await steps(live)
        finally:
            try:
                await live.close()
                await settle()
            finally:
                await asyncio.to_thread(world.close)

    asyncio.run(run())


async def settle() -> None:
    """Cancel and await every other task of this event loop: what closed clients left running,
    so that the next federation starts clean."""
    current = asyncio.current_task()
    leftovers = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
    for task in leftovers:
        task.cancel()
    await asyncio.gather(*leftovers, return_exceptions=True)


__all__ = ["RUNS", "Live", "LiveRun", "Setup", "next_event", "run_all_live", "run_live", "settle", "world_for"]
