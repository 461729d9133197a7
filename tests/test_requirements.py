"""spec/requirements.json maps every business rule of the XEP to tests that exist."""

from __future__ import annotations

import ast
import re
from functools import cache

from lxml import etree

from conftest import ROOT, load_json

REQUIREMENTS = load_json(ROOT / "spec" / "requirements.json")
KEYWORDS = re.compile(r"\b(MUST NOT|MUST|SHOULD NOT|SHOULD|MAY)\b")


def _text(element) -> str:
    """The text of an element, with entity references kept by name (the XSF's entities stay unexpanded)."""
    parts = [element.text or ""]
    for child in element:
        if isinstance(child, etree._Entity):
            parts.append(f"&{child.name};")
        elif isinstance(child.tag, str):
            parts.append(_text(child))
        parts.append(child.tail or "")
    return "".join(parts)


def _rules() -> list[str]:
    parser = etree.XMLParser(load_dtd=False, resolve_entities=False, no_network=True)
    xep = etree.parse(str(ROOT / "xep" / "trust-path.xml"), parser)
    section = next(s for s in xep.getroot().iter("section1") if s.get("anchor") == "rules")
    return [" ".join(_text(li).split()) for li in section.find("ol").findall("li")]


@cache
def _test_functions(path: str) -> frozenset[str]:
    tree = ast.parse((ROOT / path).read_text(encoding="utf-8"))
    names = {node.name for node in tree.body if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")}
    for cls in (node for node in tree.body if isinstance(node, ast.ClassDef)):
        names |= {f"{cls.name}::{item.name}" for item in cls.body
                  if isinstance(item, ast.FunctionDef) and item.name.startswith("test_")}
    return frozenset(names)


def test_every_rule_of_the_xep_is_listed_with_its_text():
    rules = _rules()
    listed = REQUIREMENTS["rules"]
    assert [r["rule"] for r in listed] == list(range(1, len(rules) + 1))
    for rule, text in zip(listed, rules):
        assert rule["text"] == text, f"rule {rule['rule']} changed in the XEP; update spec/requirements.json"
        assert rule["levels"] == sorted(set(KEYWORDS.findall(text)))


def test_every_must_and_should_names_tests_that_exist():
    for rule in REQUIREMENTS["rules"]:
        if {"MUST", "MUST NOT", "SHOULD", "SHOULD NOT"} & set(rule["levels"]):
            assert rule["tests"], f"rule {rule['rule']} has no test"
        for test in rule["tests"]:
            path, _, name = test.partition("::")  # name: test_x, or Class::test_x
            assert (ROOT / path).exists(), f"rule {rule['rule']}: no file {path}"
            assert name in _test_functions(path), f"rule {rule['rule']}: no test {test}"


def _normative_sentences_outside_the_rules() -> list[str]:
    parser = etree.XMLParser(load_dtd=False, resolve_entities=False, no_network=True)
    xep = etree.parse(str(ROOT / "xep" / "trust-path.xml"), parser)
    found: list[str] = []
    for section in xep.getroot().iter("section1"):
        if section.get("anchor") in ("rules", "schema", "glossary"):
            continue
        for element in section.iter("p", "li", "td"):
            for sentence in re.split(r"(?<=[.!?])\s+", " ".join(_text(element).split())):
                if re.search(r"\b(MUST|SHOULD|SHALL|RECOMMENDED)\b", sentence) and sentence not in found:
                    found.append(sentence)
    return found


def test_every_normative_sentence_outside_the_rules_restates_a_mapped_rule():
    """A MUST or SHOULD elsewhere in the XEP must restate numbered rules, which have tests."""
    statements = {s["text"]: s["rules"] for s in REQUIREMENTS["statements"]}
    numbered = {r["rule"] for r in REQUIREMENTS["rules"] if r["tests"]}
    for sentence in _normative_sentences_outside_the_rules():
        assert sentence in statements, f"not mapped in spec/requirements.json: {sentence[:100]}"
        assert statements[sentence] and set(statements[sentence]) <= numbered, sentence[:100]
    assert len(statements) == len(_normative_sentences_outside_the_rules())
