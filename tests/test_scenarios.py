"""The brief's scenarios are the acceptance tests: each must give its required verdict."""

from __future__ import annotations

import pytest

from trustpath.core.model import Verdict
from trustpath.testbed.sim.scenarios import SCENARIOS, VECTOR_SEED, VECTOR_START, run_scenario


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[f"{s.number:02d}-{s.name}" for s in SCENARIOS])
def test_scenario_gives_required_verdict(scenario):
    outcome = run_scenario(scenario)
    assert outcome.problems == []
    assert outcome.verdict is scenario.expected.verdict
    assert outcome.delivered is scenario.expected.delivered


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[f"{s.number:02d}-{s.name}" for s in SCENARIOS])
def test_scenario_with_fixed_keys_gives_the_same_verdict(scenario):
    outcome = run_scenario(scenario, seed=VECTOR_SEED, start=VECTOR_START)
    assert outcome.ok, outcome.problems


def test_no_scenario_that_must_not_be_trusted_is_trusted():
    for scenario in SCENARIOS:
        if scenario.expected.verdict is not Verdict.TRUSTED:
            assert run_scenario(scenario).verdict is not Verdict.TRUSTED, scenario.name
