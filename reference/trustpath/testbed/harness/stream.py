"""A stream of messages from alice to bob while something happens to the federation (a key
rotation, a key fetch that fails): how many arrived, and how bob's plugin judged each one."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from ...client.slixmpp.wire import wire_bytes
from ...core.codec import decode_path, find_message, parse_stanza
from ...core.model import Verdict
from ..scenarios import ALICE, BOB
from .scenarios import Live


@dataclass
class StreamCount:
    """What bob saw of the messages alice sent: each message's verdict and why, by body."""

    sent: int = 0
    #: body -> (verdict, the weakest hops' labels and reasons, as shown)
    seen: dict[str, tuple[Verdict, str]] = field(default_factory=dict)
    #: body -> the key a.example's record names (``k=``), or None without one
    sender_keys: dict[str, str | None] = field(default_factory=dict)

    @property
    def lost(self) -> int:
        return self.sent - len(self.seen)

    def count(self, verdict: Verdict) -> int:
        return sum(1 for v, _ in self.seen.values() if v is verdict)

    @property
    def not_trusted(self) -> int:
        """Messages that arrived and were not shown as trusted."""
        return sum(1 for v, _ in self.seen.values() if v is not Verdict.TRUSTED)

    def why(self) -> Counter[str]:
        """How often each verdict and reason was shown."""
        return Counter(f"{v.value} {why}".strip() for v, why in self.seen.values())

    def summary(self) -> str:
        reasons = ", ".join(f"{n}× {what}" for what, n in self.why().most_common())
        return (f"{self.sent} sent, {len(self.seen)} arrived, {self.not_trusted} not trusted, "
                f"{self.lost} lost ({reasons})")


async def stream_messages(live: Live, *, count: int, interval: float, during: Callable[[], Awaitable[None]],
                          start_after: int, settle: float = 20, prefix: str = "stream") -> StreamCount:
    """Send ``count`` messages from alice to bob, one every ``interval`` seconds; after message
    ``start_after`` run ``during()`` beside the stream (the stream does not wait for it).  Then
    wait up to ``settle`` seconds for the rest of bob's verdicts.  alice and bob must be
    connected already (``live.clients``)."""
    alice, bob = live.clients[ALICE], live.clients[BOB]
    result = StreamCount()
    action: asyncio.Task[None] | None = None

    async def collect() -> None:
        while True:
            event = await bob.verdicts.get()
            report = event.report
            weakest = "; ".join(f"{h.label} {h.reason}" for h in report.hops
                                if h.strength == min(x.strength for x in report.hops) and h.reason)
            body = str(event.stanza["body"])
            result.seen[body] = (report.verdict, weakest)
            path = decode_path(find_message(parse_stanza(wire_bytes(event.stanza.xml))).message)
            result.sender_keys[body] = next((r.key for r in path.records if r.signer == "a.example"), None) \
                if path is not None else None

    collector = asyncio.create_task(collect())
    try:
        for n in range(count):
            if n == start_after:
                action = asyncio.create_task(during())
            # alice's current connection (a fault may have made her log in again; while she does,
            # the old one takes the message, and it is lost)
            live.clients.get(ALICE, alice).send(BOB, f"{prefix} {n:04d}")
            result.sent += 1
            await asyncio.sleep(interval)
        if action is not None:
            await action
        deadline = time.monotonic() + settle
        while len(result.seen) < result.sent and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
    finally:
        collector.cancel()
        await asyncio.gather(collector, return_exceptions=True)
    return result
