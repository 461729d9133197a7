"""Measure what bob's plugin shows for a stream of messages from alice while a.example's key is
rotated or b.example's fetch of a.example's keys gets no answer (issue 11 item 4):

    python -m trustpath.testbed.harness.key_faults rotate-restart   # old README: new key, restart
    python -m trustpath.testbed.harness.key_faults rotate-at-once   # switch by reload, no next key
    python -m trustpath.testbed.harness.key_faults rotate-readme    # README: next key, wait, switch
    python -m trustpath.testbed.harness.key_faults fetch-silent 30  # key queries unanswered for 30 s

Each prints one line: sent, arrived, not trusted, lost, and how often each verdict and reason was
shown.  Set TRUSTPATH_LOOPBACK to run beside other harnesses.  The first and the last need
nothing the module did not have before (they measure any version of prosody/mod_trust_path)."""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

from ...core.constants import KEY_FETCH_INTERVAL
from ...core.keys import SigningKey
from ..scenarios import ALICE, BOB
from .rotate import publish_next_key, rotate_key, switch_to_next_key
from .scenarios import Live, Setup, in_live_world, world_for
from .stream import StreamCount, stream_messages

#: a.example's cache-for where the procedure waits for it: seconds, not an hour (a server fetches a
#: domain's keys at most every key_fetch_interval, so a shorter cache-for would not be honoured)
CACHE_FOR = KEY_FETCH_INTERVAL


def measure(kind: str, seconds: float = 30) -> StreamCount:
    """Run the fault ``kind`` beside a stream of messages on a fresh federation; what bob saw."""
    flag = Path(tempfile.mkdtemp(prefix="trustpath-fault-")) / "silent"
    reloadable = kind in ("rotate-readme", "rotate-at-once")
    options: tuple[tuple[str, str, object], ...] = ()
    modules: tuple[tuple[str, str], ...] = ()
    if kind == "rotate-readme":
        options = (("a.example", "trust_path_cache_for", CACHE_FOR),)
    elif kind == "fetch-silent":
        modules = (("a.example", "trust_path_test_silent"),)
        options = (("a.example", "trust_path_test_silent_file", str(flag)), ("a.example", "trust_path_cache_for", 3))
    elif kind not in ("rotate-restart", "rotate-at-once"):
        raise ValueError(f"unknown fault {kind!r}")
    setup = Setup(reloadable=reloadable, modules=modules, options=options)
    result: list[StreamCount] = []

    async def steps(live: Live) -> None:
        await live.client(ALICE)
        await live.client(BOB)
        a = live.world.servers["a.example"]

        async def during() -> None:
            if kind == "rotate-restart":
                await asyncio.to_thread(rotate_key, a)
                # alice lost her connection with the restart: she logs in again, and the stream
                # goes on through the new connection (stream_messages sends through live.clients)
                await live.drop(ALICE)
                await live.client(ALICE)
            elif kind == "rotate-at-once":
                next_file = a.workdir / "next.hex"
                next_file.write_text(SigningKey.generate().seed().hex() + "\n")
                a.options["trust_path_next_key_file"] = str(next_file)  # names the file; never reloaded with it
                await asyncio.to_thread(switch_to_next_key, a)
            elif kind == "rotate-readme":
                await asyncio.to_thread(publish_next_key, a)
                await asyncio.sleep(CACHE_FOR + 1)
                await asyncio.to_thread(switch_to_next_key, a)
            else:
                flag.touch()
                await asyncio.sleep(seconds)
                flag.unlink()

        interval = 0.5 if kind in ("rotate-restart", "fetch-silent") else 0.25
        count = int((seconds + 20) / interval) if kind == "fetch-silent" else (40 if kind == "rotate-restart" else 120)
        result.append(await stream_messages(live, count=count, interval=interval, during=during,
                                            start_after=10, settle=30))

    in_live_world(lambda: world_for(setup), steps)
    return result[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("kind", choices=["rotate-restart", "rotate-at-once", "rotate-readme", "fetch-silent"])
    parser.add_argument("seconds", nargs="?", type=float, default=30, help="how long the fetch fault lasts")
    args = parser.parse_args()
    print(f"{args.kind}: {measure(args.kind, args.seconds).summary()}")


if __name__ == "__main__":
    main()
