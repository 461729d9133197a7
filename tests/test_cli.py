"""The command line as a person and a script use it."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import require_lua

from trustpath.cli import main
from trustpath.testbed.scenarios import Bed, scenarios_on

SIM = scenarios_on(Bed.SIM)


def test_demo_json_lists_every_scenario_with_its_verdict(capsys):
    assert main(["demo", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [o["scenario"] for o in out] == [s.number for s in SIM]
    assert [o["requirement"] for o in out] == [s.expected.text for s in SIM]
    for o in out:
        assert {"scenario", "name", "verdict", "expected", "ok", "hops"} <= o.keys()
        assert o["ok"] is True and o["verdict"] == o["expected"]
        assert o["verdict"] in ("trusted", "weak", "untrusted", "unknown")


def test_demo_shows_every_scenario_with_hops_and_notes():
    result = subprocess.run([sys.executable, "-m", "trustpath.cli", "demo"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert f"{len(SIM)}/{len(SIM)} scenarios gave the verdict the brief requires" in text
    for word in ("✔ TRUSTED", "◐ WEAK", "✘ UNTRUSTED", "? UNKNOWN", "not delivered", "key-mismatch",
                 "note: stored by b.example"):
        assert word in text, word


def test_emitted_files_verify_with_the_command_line(tmp_path, capsys):
    assert main(["demo", "--emit", str(tmp_path), "--scenario", "2", "--scenario", "15"]) == 0
    capsys.readouterr()
    expected = json.loads((tmp_path / "02-h2-ca-only.expected.json").read_text())
    code = main(["verify", str(tmp_path / "02-h2-ca-only.xml"), "--anchor",
                 str(tmp_path / "02-h2-ca-only.anchor.json"), "--now", expected["now"]])
    out = capsys.readouterr().out
    assert code == 0 and "◐ WEAK" in out and "ca-only" in out
    assert (tmp_path / "15-require-refused.error.xml").exists()
    assert json.loads((tmp_path / "15-require-refused.expected.json").read_text())["delivered"] is False


def test_demo_says_why_it_does_not_run_a_live_only_scenario(capsys):
    assert main(["demo", "--json", "--scenario", "17", "--scenario", "1"]) == 0
    captured = capsys.readouterr()
    assert [o["scenario"] for o in json.loads(captured.out)] == [1]
    assert "scenario 17 is not run here" in captured.err and "DNSSEC" in captured.err


def test_verify_reports_missing_files_and_bad_anchors_in_one_line(tmp_path, capsys):
    assert main(["verify", str(tmp_path / "none.xml"), "--anchor", str(tmp_path / "none.json")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot read" in err
    (tmp_path / "a.json").write_text("{not json")
    (tmp_path / "s.xml").write_text("<message/>")
    assert main(["verify", str(tmp_path / "s.xml"), "--anchor", str(tmp_path / "a.json")]) == 2
    assert "not valid JSON" in capsys.readouterr().err
    assert main(["verify", str(tmp_path / "s.xml"), "--anchor", str(tmp_path / "a.json"), "--now", "tomorrow"]) == 2
    assert "2026-11-25T09:00:00Z" in capsys.readouterr().err


def test_demo_shows_what_a_verdict_covers_and_both_views_of_each_hop():
    result = subprocess.run([sys.executable, "-m", "trustpath.cli", "demo", "--scenario", "21", "--scenario", "18"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert "covers: body, omemo" in text, "the OMEMO payload is named as covered"
    assert "unbound" in text, "an H1 view without channel binding is named"
    assert "sasl,pass,1.3," in text, "the server's view of H1 is shown as its record states it"


def test_bench_reports_the_three_figures(capsys):
    assert main(["bench", "--json", "--rounds", "250"]) == 0
    figures = json.loads(capsys.readouterr().out)
    for key in ("create_ratio", "verify_ratio", "bytes_per_hop", "sign_median_us", "raw_verify_median_us"):
        assert figures[key] > 0
    assert figures["hops"] == 3


def test_plain_output_names_verdicts_in_words_without_colour():
    """Piped output has no colour codes at all, so words and symbols carry every verdict."""
    result = subprocess.run([sys.executable, "-m", "trustpath.cli", "demo", "--scenario", "2", "--scenario", "5"],
                            capture_output=True, text=True, timeout=60)
    assert "\x1b[" not in result.stdout
    assert "◐ WEAK" in result.stdout and "weakest: H2" in result.stdout
    assert "a.example → b.example" in result.stdout
    assert "? UNKNOWN" in result.stdout


def _module_without_binding(tmp_path):
    """A copy of the module's folder as a checkout has it before `make -C prosody`: no binding."""
    import shutil

    from trustpath.testbed.harness import prosody

    module = tmp_path / "prosody" / "mod_trust_path"
    shutil.copytree(prosody.MODULE_DIR, module, ignore=shutil.ignore_patterns("*.so", ".crypto-*"))
    return module


def test_harness_without_the_binding_stops_at_once_with_one_line_and_the_fix(tmp_path, monkeypatch, capsys):
    """Issue 11, item 7: without the C binding Prosody loads no mod_trust_path, and the harness ran
    every scenario with every hop "not-participating" (under --json: exit 1, nothing on stdout)."""
    from trustpath.testbed.harness import prosody

    module = _module_without_binding(tmp_path)
    monkeypatch.setattr(prosody, "MODULE_DIR", module)
    monkeypatch.setattr(prosody, "prosody_binary", lambda: "/usr/bin/prosody")  # installed or not: not started

    def no_server(*_args, **_kwargs):
        raise AssertionError("the harness started a server without the module")

    monkeypatch.setattr(prosody.Instance, "start", no_server)
    for args in (["harness", "--json"], ["harness", "--scenario", "1"], ["harness", "--keep"]):
        assert main(args) == 2, args
        captured = capsys.readouterr()
        assert captured.out == ""
        (line,) = captured.err.splitlines()
        assert line.startswith("trustpath harness: mod_trust_path needs its Ed25519 binding "), line
        assert f"{module}/trust_path_crypto.so, which is not built" in line
        assert f"`make -C {module.parent}`" in line and "libsodium-dev" in line and "CRYPTO=openssl" in line


def test_a_federation_with_the_module_is_not_built_without_the_binding(tmp_path, monkeypatch):
    """The same check guards every federation the tests and the bench build, not only the command."""
    import pytest

    from trustpath.testbed.harness import prosody, world

    monkeypatch.setattr(prosody, "MODULE_DIR", _module_without_binding(tmp_path))
    monkeypatch.setattr(world, "prosody_binary", lambda: "/usr/bin/prosody")
    with pytest.raises(prosody.ModuleMissing, match="trust_path_crypto.so, which is not built"):
        world.build_world(modules={"a.example": ["trust_path"]})
    assert prosody.module_problem() is not None
    monkeypatch.undo()
    require_lua()  # `make test` builds the binding: the checkout's own module passes the check
    assert prosody.module_problem() is None


def test_a_binding_that_does_not_load_is_named_with_how_to_rebuild_it(tmp_path, monkeypatch):
    import shutil

    import pytest

    from trustpath.testbed.harness import prosody

    if shutil.which("lua5.4") is None:
        pytest.skip("lua5.4 checks that the binding loads")
    module = _module_without_binding(tmp_path)
    (module / "trust_path_crypto.so").write_bytes(b"not a shared object")
    problem = prosody.module_problem(module)
    assert problem is not None and "does not load" in problem and "rebuild it with `make -C" in problem
