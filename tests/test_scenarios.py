"""The brief's scenarios are the acceptance tests: each must give its required verdict.  One
table (trustpath.testbed.scenarios) says what each requires; these tests run it on the embedded
federation and hold both beds to it."""

from __future__ import annotations

from dataclasses import replace

import pytest
from trustpath.core.model import Side, Verdict
from trustpath.testbed import scenarios as table
from trustpath.testbed.harness import scenarios as live
from trustpath.testbed.scenarios import Bed, Expectation, ViewMethod, check_outcome, scenarios_on
from trustpath.testbed.sim.scenarios import RUNS, VECTOR_SEED, VECTOR_START, run_scenario

SIM = scenarios_on(Bed.SIM)


@pytest.mark.parametrize("scenario", SIM, ids=[f"{s.number:02d}-{s.name}" for s in SIM])
def test_scenario_gives_required_verdict(scenario):
    outcome = run_scenario(scenario)
    assert outcome.problems == ()
    assert outcome.verdict is scenario.expected.verdict
    assert outcome.delivered is scenario.expected.delivered


@pytest.mark.parametrize("scenario", SIM, ids=[f"{s.number:02d}-{s.name}" for s in SIM])
def test_scenario_with_fixed_keys_gives_the_same_verdict(scenario):
    outcome = run_scenario(scenario, seed=VECTOR_SEED, start=VECTOR_START)
    assert outcome.ok, outcome.problems


def test_no_scenario_that_must_not_be_trusted_is_trusted():
    for scenario in SIM:
        if scenario.expected.verdict is not Verdict.TRUSTED:
            assert run_scenario(scenario).verdict is not Verdict.TRUSTED, scenario.name


def test_each_bed_runs_exactly_the_scenarios_the_table_gives_it():
    assert sorted(RUNS) == [s.number for s in scenarios_on(Bed.SIM)] == [*range(1, 17), 18, 19, 20, 21]
    # the attacks of version 1 run in both beds: found live, proved live
    assert sorted(live.RUNS) == [s.number for s in scenarios_on(Bed.LIVE)] == list(range(1, 22))


def test_the_table_numbers_and_names_each_scenario_once():
    assert [s.number for s in table.SCENARIOS] == list(range(1, len(table.SCENARIOS) + 1))
    assert len({s.name for s in table.SCENARIOS}) == len(table.SCENARIOS)


def test_every_difference_between_the_beds_is_stated_with_why_and_changes_something():
    stated = {(s.number, d.bed) for s in table.SCENARIOS for d in s.differences}
    assert stated == {(15, Bed.LIVE), (17, Bed.SIM)}
    for scenario in table.SCENARIOS:
        for difference in scenario.differences:
            assert len(difference.why) > 40, (scenario.number, difference.bed)
            assert difference.expected != scenario.expected
    fifteen = next(s for s in table.SCENARIOS if s.number == 15)
    assert fifteen.expected_on(Bed.SIM).reason == "not-verified"
    assert fifteen.expected_on(Bed.LIVE).reason == "ca-only"
    assert fifteen.expected_on(Bed.LIVE).verdict is fifteen.expected.verdict  # a reason differs, never a verdict


def test_a_scenario_a_bed_does_not_run_is_refused_with_why():
    dane = next(s for s in table.SCENARIOS if s.number == 17)
    assert not dane.runs_on(Bed.SIM) and dane.runs_on(Bed.LIVE)
    with pytest.raises(ValueError, match="DNSSEC"):
        run_scenario(dane)


def test_check_outcome_names_a_wrong_verdict_a_wrong_reason_and_a_missing_note():
    outcome = run_scenario(SIM[1], seed=VECTOR_SEED, start=VECTOR_START)  # 2: weak, H2 ca-only
    assert outcome.ok
    wrong = replace(outcome, scenario=replace(SIM[1], expected=Expectation(
        Verdict.TRUSTED, hop="H2", reason="pin-mismatch", note="no such note")), problems=())
    problems = check_outcome(wrong).problems
    assert "verdict weak, required trusted" in problems
    assert "H2 must show pin-mismatch (H2: ca-only)" in problems
    assert "a note must mention 'no such note'" in problems


def test_check_outcome_holds_the_report_to_the_methods_its_views_must_show():
    """The live-only scenario 17 requires H2's client view by DANE-EE; the pinned scenario 1 has 'pin'."""
    outcome = run_scenario(SIM[0], seed=VECTOR_SEED, start=VECTOR_START)
    wanted = Expectation(Verdict.TRUSTED, methods=(ViewMethod("H2", Side.CLIENT, "dane-ee"),
                                                   ViewMethod("H2", Side.SERVER, "pin")))
    checked = check_outcome(replace(outcome, scenario=replace(SIM[0], expected=wanted), problems=()))
    assert checked.problems == ("H2's client view must show method dane-ee (pin)",)
