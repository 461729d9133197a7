"""spec/constants.json is the one table of the protocol's constants: both cores load it (the
Python core in trustpath.core.constants, the Lua core in core/constants.lua, through the links
beside each), and the XEP's tables, its prose and the schema say the same."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
from conftest import ROOT
from lxml import etree

from trustpath.core import constants
from trustpath.core.model import METHOD_STRENGTH, Reason, Strength, method_reason

SPEC = ROOT / "spec" / "constants.json"
XEP = (ROOT / "xep" / "trust-path.xml").read_text(encoding="utf-8")
XS = "{http://www.w3.org/2001/XMLSchema}"
TABLE = json.loads(SPEC.read_text(encoding="utf-8"))
EFFECTS = {"hop unverified": "unverified", "fails the hop": "failed", "hop ca (weak)": "ca", "unknown": "unknown",
           "hop not described (unknown)": "unknown", "caps the hop": "caps",
           "reported as a note; the verdict is unchanged": "note",
           "the stanza is rejected; a client shows it as untrusted": "rejected"}


def test_both_cores_load_the_one_file():
    for link in (ROOT / "reference" / "trustpath" / "core" / "constants.json",
                 ROOT / "prosody" / "mod_trust_path" / "constants.json"):
        assert link.is_symlink() and link.resolve() == SPEC.resolve(), link
    assert constants.TABLE == TABLE


def test_the_file_has_no_duplicate_keys():
    """As the ARC suite learned: a duplicate key in JSON silently overwrites the first."""
    def no_duplicates(pairs):
        keys = [k for k, _ in pairs]
        assert len(keys) == len(set(keys)), keys
        return dict(pairs)

    json.loads(SPEC.read_text(encoding="utf-8"), object_pairs_hook=no_duplicates)


def test_the_xep_reason_code_table_is_the_constants_table():
    table = re.search(r"<table caption='Reason codes'>(.*?)</table>", XEP, re.S).group(1)
    rows = re.findall(r"<tr><td><tt>([a-z-]+)</tt></td><td>([^<]+)</td><td>.*?</td><td>([^<]+)</td></tr>", table)
    assert {code: {"origin": origin, "effect": EFFECTS[effect]} for code, origin, effect in rows} == TABLE["reasons"]
    assert {r.value for r in Reason} == set(TABLE["reasons"])


def _tt_groups(sentence: str) -> dict[str, str]:
    """'<tt>a</tt> and <tt>b</tt> are strong; <tt>c</tt> is ca' -> {a: strong, b: strong, c: ca}."""
    out = {}
    for clause in sentence.split(";"):
        found = re.search(r"(?:are|is) (strong|ca|unverified)\b", clause)
        if found:
            for name in re.findall(r"<tt>([a-z-]+)</tt>", clause[:found.start()]):
                out[name] = found.group(1)
    return out


def test_the_xep_view_strengths_are_the_constants_table():
    sentence = re.search(r"<strong>View\.</strong> A view's strength comes from its 'method': (.*?)\.", XEP).group(1)
    assert _tt_groups(sentence) == {m: e["strength"] for m, e in TABLE["methods"].items()}
    assert {m: s.name.lower() for m, s in METHOD_STRENGTH.items()} == _tt_groups(sentence)


def test_the_xep_key_source_strengths_are_the_constants_table():
    sentence = re.search(r"<strong>Key source\.</strong>.*?: (.*?)</li>", XEP).group(1)
    assert _tt_groups(sentence) == {k: s for k, s in TABLE["key_sources"].items() if s is not None}
    assert "<tt>link</tt> is as strong as the hop" in sentence and TABLE["key_sources"]["link"] is None


def test_the_xep_limits_are_the_constants_table():
    limits = TABLE["limits"]
    assert (f"at most {limits['stanza_bytes']} bytes, nests elements at most {limits['depth']} deep, and has at "
            f"most {limits['attestations']} attestations") in XEP
    assert f"{limits['default_max_skew']} seconds by default" in XEP


def test_the_schema_enumerations_are_the_constants_table():
    schema = etree.parse(str(ROOT / "schemas" / "trust-path.xsd"))

    def enumeration(attribute: str) -> set[str]:
        found = schema.xpath(f"//xs:attribute[@name='{attribute}']//xs:enumeration/@value",
                             namespaces={"xs": XS[1:-1]})
        return set(found)

    assert enumeration("side") == set(TABLE["sides"])
    assert enumeration("tls") == set(TABLE["tls_versions"])
    assert enumeration("cb") == set(TABLE["channel_bindings"])
    assert enumeration("result") == set(TABLE["results"]) | set(TABLE["hop_results"])
    assert enumeration("chain") == set(TABLE["chains"])
    assert enumeration("key-source") == set(TABLE["key_sources"]) | {"anchor"}
    method = schema.xpath("//xs:simpleType[@name='method']//xs:pattern/@value", namespaces={"xs": XS[1:-1]})[0]
    assert set(method.split("|")[:-1]) == set(TABLE["methods"])


def test_the_strength_order_and_the_method_reasons():
    assert [s.name.lower() for s in sorted(Strength)] == TABLE["strengths"]
    for method, entry in TABLE["methods"].items():
        assert method_reason(method) == (entry["reason"] or TABLE["other_method"]["reason"])
    assert method_reason("X-SOMETHING-NEW") == TABLE["other_method"]["reason"]


def test_the_lua_core_reads_the_same_table():
    script = ROOT / "prosody" / "tests" / "setup.lua"
    if shutil.which("lua5.4") is None:
        pytest.skip("lua5.4 is not installed")
    code = (f"local core = dofile({json.dumps(str(script))}).core; local json = require 'util.json'; "
            "local m = {}; for k, v in pairs(core.METHOD_STRENGTH) do m[k] = core.strength_names[v] end; "
            "print(json.encode({ ns = core.NS, methods = m, attestations = core.MAX_ATTESTATIONS, "
            "ciphers = core.CIPHER_SUITES, reasons = core.REASONS }))")
    result = subprocess.run(["lua5.4", "-e", code], capture_output=True, text=True, timeout=30, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert seen["ns"] == TABLE["namespace"] and seen["attestations"] == TABLE["limits"]["attestations"]
    assert seen["methods"] == {m: e["strength"] for m, e in TABLE["methods"].items()}
    assert seen["ciphers"] == TABLE["cipher_suites"]
    assert set(seen["reasons"]) == set(TABLE["reasons"])
