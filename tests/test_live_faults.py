"""Faults while messages flow, live, with the module and without (issue 11 item 6): the s2s
connection is reset, the receiving server stops (SIGSTOP) and restarts, the sending server
switches to its next record key (prosody/README.md's procedure) in mid-stream.  With the module no fault
may lose, duplicate or misjudge more messages than without, and every message that arrives over
the module's federation is judged trusted.  The full figures (200 messages a run) come from
``trustpath faults``; this keeps each run short.

Two real Prosody servers per run, a TCP relay in front of b.example's s2s port (the cut), slixmpp
clients with the trust_path plugin.  Marked ``live`` (tests/conftest.py).
"""

from __future__ import annotations

import asyncio

import pytest
from conftest import require_prosody
from trustpath.testbed.harness.faults import FaultCount, no_worse, run_fault


@pytest.fixture(autouse=True)
def _prosody() -> None:
    require_prosody()


def _both(fault: str, messages: int = 60) -> tuple[FaultCount, FaultCount]:
    async def run() -> tuple[FaultCount, FaultCount]:
        on = await run_fault(fault, module=True, messages=messages, settle=15)
        off = await run_fault(fault, module=False, messages=messages, settle=15)
        return on, off
    return asyncio.run(run())


@pytest.mark.parametrize("fault", ["cut", "stall", "restart", "rotate"])
def test_a_fault_costs_no_more_messages_with_the_module_than_without(fault: str) -> None:
    on, off = _both(fault)
    assert on.sent == off.sent == 60
    if fault == "cut":
        assert on.note.startswith("reset ") and not on.note.startswith("reset 0"), on.note  # the cut happened
    assert no_worse([on, off]) == [], (on.to_json(), off.to_json())  # a restart: within faults.SLACK
    if fault == "rotate":
        assert len(on.a_keys) == 2, on.to_json()  # the switch happened while the stream flowed
    assert on.misjudged == 0, on.to_json()
    assert len(on.arrivals) > 0 and len(off.arrivals) > 0
