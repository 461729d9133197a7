"""spec/vectors/server/: the server rules, run through the Python core.  The same files run
through the Lua core the Prosody module ships (prosody/tests/server_vectors.lua, run by
tests/test_lua.py), so that both give every decision the same way."""

from __future__ import annotations

import re

import pytest
from conftest import ROOT, VECTORS, load_json

from trustpath.core.codec import decode_view, find_path_element, message_fields, parse_stanza, path_records
from trustpath.core.keys import KeySet
from trustpath.core.model import KeySource, Result, View
from trustpath.core.preflight import preflight_answer
from trustpath.core.server import delivery_requirement_problem, filter_client_path, receive_chain, \
    received_requirement_problem, sending_requirement_problem, unmet_requirement

SERVER = VECTORS / "server"
CASES = load_json(SERVER / "index.json")["cases"]


def raw_view(data: dict[str, str | None] | None) -> View | None:
    """A view written as its parts (it may be one a server must not answer with)."""
    if data is None:
        return None
    result = data["result"]
    if result in ("pass", "none"):
        return View(data["method"], Result(result), data["tls"], data.get("spki"))
    return View(data["method"], Result.FAIL, data["tls"], data.get("spki"), reason=result)


def sigs(message) -> list[str]:
    """The signatures in the path, read from the record texts: a receiving server passes on
    records it did not read, which a strict decoder would refuse."""
    path = find_path_element(message)
    return [] if path is None else [text.rsplit(";z=", 1)[-1] for text in path_records(path)]


def test_the_server_vectors_cover_every_rule():
    rules = {case["rule"] for case in CASES}
    assert rules == {"At the Sending Server", "At the Receiving Server", "Requiring Verified Hops", "Pre-flight Query"}
    sections = set(re.findall(r"<section2 topic='([^']+)'", (ROOT / "xep" / "trust-path.xml").read_text()))
    assert rules <= sections, f"each case's 'rule' names a section of the XEP: {rules - sections}"
    assert len({case["name"] for case in CASES}) == len(CASES) >= 30


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_server_vector(case):
    facts, expected = case["facts"], case["expected"]
    role = facts["role"]
    if role == "sending":
        message = parse_stanza((SERVER / case["stanza"]).read_bytes())
        fields = message_fields(message)
        decision = filter_client_path(message, facts["session_key"])
        assert (decision.kept.sig if decision.kept else None) == expected["kept"]
        assert (decision.removed, decision.chain.value, decision.chain_reason) == \
            (expected["removed"], expected["chain"], expected["chain_reason"])
        assert (decision.vouch.value if decision.vouch else None) == expected["vouch"]
        assert sigs(message) == expected["path"]
        if "view" in facts:  # what the message's <require/> meets at the sending server
            hop = sending_requirement_problem(fields.require, fields.sender, decode_view(facts["view"], "view"), decision)
            assert (hop.attributes() if hop else None) == expected["refusal"]
    elif role == "receiving":
        message = parse_stanza((SERVER / case["stanza"]).read_bytes())
        fields = message_fields(message)
        keys = KeySet.from_json({"domain": facts["origin"], "keys": facts["keys"]}) if facts["keys"] else None
        decision = receive_chain(message, origin=facts["origin"], takes_part=facts["takes_part"], keys=keys,
                                 key_source=KeySource(facts["key_source"]),
                                 keys_unavailable=facts.get("keys_unavailable", False))
        assert (decision.chain.value, decision.chain_reason, decision.vouch.value if decision.vouch else None) == \
            (expected["chain"], expected["chain_reason"], expected["vouch"])
        assert decision.refetch == expected["refetch"]
        assert sigs(message) == expected["path"]
        in_view = decode_view(facts["view"], "view")
        hop = received_requirement_problem(fields.require, facts["origin"], in_view, decision) if fields.require \
            else None
        assert (hop.attributes() if hop else None) == expected["refusal"]
    elif role == "delivery":
        client_view = decode_view(facts["client_view"], "view") if facts["client_view"] is not None else None
        hop = delivery_requirement_problem(facts["required"], facts["recipient"],
                                           decode_view(facts["server_view"], "view"), client_view)
        assert (hop.attributes() if hop else None) == expected["hop"]
    elif role == "require":
        views = [(h["peer"], decode_view(h["view"], "view")) for h in facts["hops"]]
        hop = unmet_requirement(facts["required"], views)
        assert (hop.attributes() if hop else None) == expected["hop"]
    else:
        answer = preflight_answer(facts["domain"], facts["takes_part"], raw_view(facts["view"]))
        assert (answer.domain, answer.takes_part) == (expected["domain"], expected["takes_part"])
        assert (answer.link.text() if answer.link else None) == expected["link"]


def test_a_decision_that_differs_from_the_vector_fails():
    """The vector check can fail: a receiving case with another key set gives another decision."""
    case = next(c for c in CASES if c["name"] == "arrived-all-pinned")
    message = parse_stanza((SERVER / case["stanza"]).read_bytes())
    decision = receive_chain(message, origin="a.example", takes_part=True,
                             keys=KeySet.from_json({"domain": "a.example", "keys": [
                                 {"key": "AAAAC3NzaC1lZDI1NTE5AAAAIGsomethingelseAAAAAAAA"[:43]}]}),
                             key_source=KeySource.S2S_PIN)
    assert (decision.chain.value, decision.chain_reason) != (case["expected"]["chain"], case["expected"]["chain_reason"])
