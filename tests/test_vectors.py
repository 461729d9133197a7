"""The published vectors in spec/vectors are stable, and every verifier result they state holds."""

from __future__ import annotations

import base64
import filecmp
import json
import time
import tracemalloc
from pathlib import Path

import pytest

from conftest import VECTORS, load_json
from trustpath.core import errors
from trustpath.core.anchor import load_anchor
from trustpath.cli import main
from trustpath.core.keys import SigningKey, verify_signature
from trustpath.core.model import Verdict
from trustpath.core.receive import verify_refusal_stanza, verify_stanza
from trustpath.core.require import refusal_believed
from trustpath.core.timefmt import parse_time
from trustpath.tools.vectors import main as write_vectors

SCENARIO_FILES = sorted((VECTORS / "scenarios").glob("*.expected.json"))
LIVE_FILES = sorted((VECTORS / "live").glob("*.expected.json"))
REJECTIONS = load_json(VECTORS / "rejections" / "index.json")
FINDINGS = load_json(VECTORS / "findings" / "index.json")


def test_vectors_regenerate_byte_for_byte(tmp_path):
    assert write_vectors([str(tmp_path)]) == 0
    for sub in ("scenarios", "signing", "rejections", "findings", "receipts", "refusals"):
        cmp = filecmp.dircmp(VECTORS / sub, tmp_path / sub)
        assert not cmp.left_only and not cmp.right_only, sub
        _, mismatch, errors_ = filecmp.cmpfiles(VECTORS / sub, tmp_path / sub, cmp.common_files, shallow=False)
        assert mismatch == [] and errors_ == [], f"{sub}: {mismatch}"
    assert (VECTORS / "keys.json").read_bytes() == (tmp_path / "keys.json").read_bytes()


def test_every_scenario_of_the_brief_has_vectors():
    numbers = sorted(load_json(p)["scenario"] for p in SCENARIO_FILES)
    assert numbers[:15] == list(range(1, 16))


@pytest.mark.parametrize("expected_file", SCENARIO_FILES, ids=lambda p: p.name.split(".")[0])
def test_trustpath_verify_agrees_with_each_emitted_scenario(expected_file, capsys):
    expected = load_json(expected_file)
    stem = str(expected_file).removesuffix(".expected.json")
    if not expected["delivered"]:
        assert Path(f"{stem}.error.xml").exists()
        assert not Path(f"{stem}.xml").exists()
        # the refusal is attested: the sender checks its path from the server that refused
        refusal = expected["refusal"]
        code = main(["verify", f"{stem}.error.xml", "--anchor", f"{stem}.anchor.json", "--json", "--now",
                     expected["now"]])
        out = json.loads(capsys.readouterr().out)
        assert code == 0 and out["verdict"] == refusal["verdict"] == "trusted"
        assert out["records"][0]["signer"] == expected["error"]["by"] and out["hops"] == refusal["hops"]
        return
    code = main(["verify", f"{stem}.xml", "--anchor", f"{stem}.anchor.json", "--json", "--now", expected["now"]])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert out["verdict"] == expected["verdict"]
    if expected.get("hop"):
        hop = next(h for h in out["hops"] if h["hop"] == expected["hop"])
        assert hop["reason"] == expected["reason"]
        assert expected["hop"] in out["weakest"]
    for hop in out["hops"]:
        assert {"role", "method", "result", "reason"} <= hop.keys()


@pytest.mark.parametrize("case", FINDINGS["cases"], ids=lambda c: c["name"])
def test_findings_give_their_verdict_and_reason(case):
    directory = VECTORS / "findings"
    anchor, skew = load_anchor(directory / case["anchor"])
    report = verify_stanza((directory / case["stanza"]).read_bytes(), anchor, parse_time(case["now"]),
                           max_skew=skew)
    assert report.verdict.value == case["verdict"]
    if case["hop"]:
        hop = next(h for h in report.hops if h.label == case["hop"])
        assert hop.reason == case["reason"]


@pytest.mark.parametrize("case", REJECTIONS["cases"], ids=lambda c: c["file"])
def test_rejections_fail_with_their_error_in_bounded_time_and_memory(case):
    directory = VECTORS / "rejections"
    anchor, _ = load_anchor(directory / REJECTIONS["anchor"])
    data = (directory / case["file"]).read_bytes()
    tracemalloc.start()
    start = time.perf_counter()
    with pytest.raises(getattr(errors, case["error"])) as info:
        verify_stanza(data, anchor, parse_time(REJECTIONS["now"]))
    elapsed = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert case["message_contains"] in str(info.value)
    assert elapsed < 0.5
    assert peak < 16 * 1024 * 1024


@pytest.mark.parametrize("case", REJECTIONS["cases"], ids=lambda c: c["file"])
def test_cli_rejects_hostile_files_with_one_line_and_status_2(case, capsys):
    directory = VECTORS / "rejections"
    code = main(["verify", str(directory / case["file"]), "--anchor", str(directory / REJECTIONS["anchor"])])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "Traceback" not in err
    assert case["file"] in err


def test_signing_inputs_reproduce_every_signature():
    """Each signing input, signed with the published test key, gives the signature in the stanza,
    except where the scenario itself altered the body after the client and its server signed (7), moved an
    record to another message (9), or raised a delivery report after its receipt was signed."""
    keys = {k["public"]: k for k in load_json(VECTORS / "keys.json")["keys"]}
    files = sorted((VECTORS / "signing").glob("*.json")) + sorted((VECTORS / "receipts").glob("*.signing.json"))
    assert len(files) >= 12
    checked, altered = 0, set()
    for file in files:
        doc = load_json(file)
        for entry in doc["records"]:
            data = entry["signing_input"].encode("utf-8")
            assert data.startswith(b"urn:xmpp:trust-path:1\x00from\x00")
            assert base64.b64decode(entry["signing_input_base64"]) == data
            if not entry["public_key"] or entry["public_key"] not in keys:
                continue
            seed = bytes.fromhex(keys[entry["public_key"]]["private_seed_hex"])
            same = SigningKey.from_seed(seed).sign(data) == entry["sig"]
            assert same == entry["reproducible"] == entry["verifies"] == verify_signature(entry["public_key"], entry["sig"], data)
            if same:
                checked += 1
            else:
                altered.add((doc.get("scenario", doc.get("name")), entry["signer"]))
    assert altered == {(7, "alice@a.example/phone"), (7, "a.example"), (9, "a.example"),
                       ("report-raised-in-transit", "bob@b.example/desk"), ("report-raised-in-transit", "b.example")}
    assert checked >= 30


@pytest.mark.parametrize("expected_file", LIVE_FILES, ids=lambda p: p.name.split(".")[0])
def test_stanzas_captured_from_the_prosody_servers_verify_with_the_reference(expected_file):
    """spec/vectors/live: what two Prosody servers running mod_trust_path produced (captured once)."""
    expected = load_json(expected_file)
    stem = str(expected_file).removesuffix(".expected.json")
    if not expected["delivered"]:
        error = Path(f"{stem}.error.xml").read_text()
        assert "unverified-hop" in error and expected["error"]["reason"] in error
        # the refusal is attested: its own path verifies from the server that refused
        anchor, skew = load_anchor(f"{stem}.anchor.json")
        refusal = verify_refusal_stanza(error.encode(), anchor, parse_time(expected["now"]), max_skew=skew)
        assert refusal.verdict.value == expected["refusal"]["verdict"] == "trusted"
        assert refusal.records[0].signer == expected["error"]["by"]
        return
    anchor, skew = load_anchor(f"{stem}.anchor.json")
    report = verify_stanza(Path(f"{stem}.xml").read_bytes(), anchor, parse_time(expected["now"]), max_skew=skew)
    assert report.verdict.value == expected["verdict"]
    if expected.get("hop"):
        assert next(h for h in report.hops if h.label == expected["hop"]).reason == expected["reason"]


def test_live_vectors_exist():
    assert len(LIVE_FILES) >= 3


def test_the_readme_tables_are_the_vector_indexes():
    """spec/README.md's scenario, rejection, findings and receipt tables are the vectors' own indexes."""
    readme = (VECTORS.parent / "README.md").read_text(encoding="utf-8")

    def table(heading: str, first: str) -> list[list[str | None]]:
        section = readme.split(f"\n## `{heading}/`", 1)[1].split("\n## ", 1)[0]
        rows, inside = [], False
        for line in section.splitlines():
            cells = [c.strip().strip("`") for c in line.strip().strip("|").split("|")] if line.startswith("|") else None
            if cells is None:
                inside = False
            elif cells[0] == first:
                inside = True
            elif inside and not set(cells[0]) <= {"-"}:
                rows.append([None if c == "–" else c for c in cells])
        return rows

    scenarios = []
    for path in SCENARIO_FILES:
        e = load_json(path)
        scenarios.append([path.name.removesuffix(".expected.json"), e["verdict"], "yes" if e["delivered"] else "no",
                          e.get("hop"), e.get("reason")])
    assert table("scenarios", "scenario") == scenarios
    assert [row[:3] for row in table("rejections", "file")] == \
        [[c["file"], c["error"], c["message_contains"]] for c in REJECTIONS["cases"]]
    assert f"`anchor` (`{REJECTIONS['anchor']}`), `now` (`{REJECTIONS['now']}`)" in readme
    assert [{"name": name, "stanza": f"{name}.xml", "anchor": f"{name}.anchor.json", "now": now, "verdict": verdict,
             "hop": hop, "reason": reason, "note": None}
            for name, now, verdict, hop, reason in table("findings", "case")] == FINDINGS["cases"]
    receipts = []
    for case in load_json(VECTORS / "receipts" / "index.json"):
        e = load_json(VECTORS / "receipts" / f"{case['name']}.expected.json")
        assert (e["verdict"], e["limited_by"]) == (case["verdict"], case["limited_by"])
        receipts.append([case["name"], e["reported"], e["receipt"], e["verdict"], e["limited_by"]])
    assert table("receipts", "case") == receipts
    refusals = [[case["name"], case["by"], case["required"], case["verdict"], "yes" if case["believed"] else "no"]
                for case in load_json(VECTORS / "refusals" / "index.json")]
    assert table("refusals", "case") == refusals


@pytest.mark.parametrize("case", load_json(VECTORS / "refusals" / "index.json"), ids=lambda c: c["name"])
def test_trustpath_verify_checks_each_refusal_from_the_server_that_refused(case, capsys):
    """spec/vectors/refusals: the verdict on a refusal's own path, and whether the sender believes it."""
    directory = VECTORS / "refusals"
    expected = load_json(directory / f"{case['name']}.expected.json")
    code = main(["verify", str(directory / f"{case['name']}.xml"), "--anchor",
                 str(directory / f"{case['name']}.anchor.json"), "--json", "--now", expected["now"]])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["verdict"] == expected["verdict"] and out["weakest"] == expected["weakest"]
    assert refusal_believed(Verdict(out["verdict"]), expected["required"],
                            by_own_server=expected["by"] == "a.example") is expected["believed"]
    if expected["believed"]:
        assert out["records"][0]["signer"] == expected["by"]
