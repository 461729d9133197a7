"""spec/constants.json is the one table of the protocol's constants: both cores load it (the
Python core in trustpath.core.constants, the Lua core in core/constants.lua, through the links
beside each), and the schema says the same (the XEP's tables: tests/test_xep.py)."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from conftest import ROOT
from lxml import etree

from trustpath.core import constants
from trustpath.core.model import Strength, method_reason

SPEC = ROOT / "spec" / "constants.json"
XS = "{http://www.w3.org/2001/XMLSchema}"
TABLE = json.loads(SPEC.read_text(encoding="utf-8"))


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


def test_the_schema_enumerations_are_the_constants_table():
    """The XEP's own tables are held to this file by tests/test_xep.py; the schema is checked here."""
    schema = etree.parse(str(ROOT / "schemas" / "trust-path.xsd"))

    def enumeration(attribute: str) -> set[str]:
        found = schema.xpath(f"//xs:attribute[@name='{attribute}']//xs:enumeration/@value",
                             namespaces={"xs": XS[1:-1]})
        return set(found)

    assert enumeration("strength") == set(TABLE["strengths"])
    assert enumeration("result") == set(TABLE["hop_results"])
    assert enumeration("key-source") == set(TABLE["key_sources"]) | {"anchor"}


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
            "local ks = {}; for k, v in pairs(core.KEY_SOURCE_STRENGTH) do ks[k] = core.strength_names[v] end; "
            "print(json.encode({ ns = core.NS, methods = m, records = core.MAX_RECORDS, "
            "record_chars = core.MAX_RECORD_CHARS, key_sources = ks, reasons = core.REASONS, "
            "bindings = core.CLIENT_BINDINGS, payloads = core.PAYLOAD_ORDER }))")
    result = subprocess.run(["lua5.4", "-e", code], capture_output=True, text=True, timeout=30, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    limits = TABLE["limits"]
    assert seen["ns"] == TABLE["namespace"]
    assert (seen["records"], seen["record_chars"]) == (limits["records"], limits["record_chars"])
    assert seen["methods"] == {m: e["strength"] for m, e in TABLE["methods"].items()}
    assert seen["key_sources"] == {k: s for k, s in TABLE["key_sources"].items() if s is not None}
    assert set(seen["reasons"]) == set(TABLE["reasons"])
    assert seen["bindings"] == TABLE["client_bindings"]
    assert seen["payloads"] == list(TABLE["payloads"])
