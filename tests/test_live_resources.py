"""Bounded resources (issue 11, item 3), live: what one remote domain, or a client asking
pre-flight queries, can make a server with mod_trust_path spend or keep.

Each test runs one attack of :mod:`trustpath.tools.resources` on two real Prosody servers with a
load smaller than the issue's (the full figures: ``python -m trustpath.tools.resources``, see
prosody/README.md "Limits"), with the limits lowered where that shows the same bound sooner.
Every assertion here failed on the module before the limits (each says what it did then).
Marked ``live``; the servers listen on TRUSTPATH_LOOPBACK's addresses.
"""

from __future__ import annotations

import asyncio

import pytest
from conftest import require_prosody
from trustpath.core.constants import MAX_PUBLISHED_KEYS
from trustpath.tools.resources import measure_held, measure_keys, measure_preflight

pytestmark = pytest.mark.live


@pytest.fixture(autouse=True)
def _prosody() -> None:
    require_prosody()


def test_a_domain_publishing_more_keys_than_the_limit_is_fetched_once_and_none_of_its_keys_count():
    # a.example publishes 200 revoked keys beside its own, with cache-for 0: b.example fetched and
    # read its whole key set for (nearly) every message, and passed its chain
    figures = asyncio.run(measure_keys(keys=200, messages=20))
    assert figures["published_keys"] > MAX_PUBLISHED_KEYS
    assert figures["delivered"] == 20, figures
    assert figures["key_fetches"] == 1, figures
    assert figures["chain_problems"] == {"fail (key-unknown)": 21}, figures


def test_a_cache_for_of_zero_does_not_mean_a_key_fetch_per_message():
    # 31 keys (within the limit), cache-for 0, 30 messages in about a second: b.example fetched
    # a.example's keys again for almost every one of them
    figures = asyncio.run(measure_keys(keys=30, messages=30))
    assert figures["delivered"] == 30 and figures["chain_problems"] == {}, figures
    assert figures["key_fetches"] == 1, figures


@pytest.mark.parametrize("option", ["trust_path_held_bytes", "trust_path_held_total_bytes"])
def test_messages_held_for_a_domain_whose_key_fetch_hangs_are_bounded_in_bytes(option):
    # a.example's s2s port hangs for b.example, which held all 20 messages until its key fetch
    # timed out (10 s), and delivered every one of them then
    figures = asyncio.run(measure_held(20, 20, b_options={option: 100_000, "trust_path_held_seconds": 2}, settle=0.2))
    assert (figures["delivered"], figures["refused"]) == (4, 16), figures  # 4 messages of 20 KB fit in 100,000 bytes
    assert figures["seconds"] < 8, figures  # released after trust_path_held_seconds


def test_messages_held_for_a_domain_whose_key_fetch_hangs_are_bounded_in_number_and_time():
    figures = asyncio.run(measure_held(20, 20, b_options={"trust_path_held_messages": 5, "trust_path_held_seconds": 2},
                                       settle=0.2))
    assert (figures["delivered"], figures["refused"]) == (5, 15), figures
    assert figures["seconds"] < 8, figures


def test_a_flood_from_a_domain_whose_key_fetch_hangs_does_not_grow_memory_with_the_default_limits():
    # 60 messages of 100 KB: b.example held all of them, +35 MB resident before the limits
    figures = asyncio.run(measure_held(60, 100, settle=0.5))
    assert figures["delivered"] <= 11 and figures["delivered"] + figures["refused"] == 60, figures
    assert figures["peak_growth_mb"] < 15, figures


def test_pre_flight_queries_for_ever_new_domains_fetch_at_a_bounded_rate():
    # 150 queries for distinct domains that do not exist: a.example fetched (and tried to connect
    # to) every one of them
    figures = asyncio.run(measure_preflight(150, a_options={"trust_path_preflight_fetches": 60}, settle=0.2))
    assert figures["answers"] == {"result": 150}, figures  # every query is answered
    assert figures["fetches"] <= 45, figures  # 60 a minute, 20 of them taken by the warm-up queries


def test_the_state_kept_per_remote_domain_is_bounded():
    # every domain asked about stayed in memory (its failed fetch and its remembered policy)
    figures = asyncio.run(measure_preflight(120, a_options={"trust_path_preflight_fetches": 10_000,
                                                            "trust_path_peer_domains": 50}, settle=0.2))
    assert figures["answers"] == {"result": 120} and figures["fetches"] == 120, figures
    assert figures["evicting"], figures
