"""spec/vectors/server/: the server rules, run through the Python core.  The same files run
through the Lua core the Prosody module ships (prosody/tests/server_vectors.lua, run by
tests/test_lua.py), so that both give every decision the same way."""

from __future__ import annotations

import pytest
from conftest import VECTORS, load_json

from trustpath.core.codec import decode_path, message_fields, parse_stanza
from trustpath.core.keys import KeySet
from trustpath.core.model import Chain, KeySource, Result, Side, View
from trustpath.core.preflight import preflight_answer
from trustpath.core.server import filter_client_path, receive_chain, received_requirement_problem, unmet_requirement
from trustpath.core.timefmt import parse_time

SERVER = VECTORS / "server"
CASES = load_json(SERVER / "index.json")["cases"]


def view_of(data: dict[str, str] | None) -> View | None:
    if data is None:
        return None
    return View(peer=data["peer"], side=Side(data["side"]), tls=data["tls"], method=data["method"],
                result=Result(data["result"]), spki=data.get("spki"), cipher=data.get("cipher"), cb=data.get("cb"),
                reason=data.get("reason"), chain=Chain(data["chain"]) if "chain" in data else None,
                chain_reason=data.get("chain-reason"),
                key_source=KeySource(data["key-source"]) if "key-source" in data else None,
                removed=int(data["removed"]) if "removed" in data else None)


def sigs(message) -> list[str]:
    path = decode_path(message)
    return [] if path is None else [a.sig for a in path.attestations]


def test_the_server_vectors_cover_every_rule():
    rules = {case["rule"] for case in CASES}
    assert rules == {"At the Sending Server", "At a Receiving Server", "Requiring Verified Hops", "Pre-flight Query"}
    assert len({case["name"] for case in CASES}) == len(CASES) >= 40


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_server_vector(case):
    facts, expected = case["facts"], case["expected"]
    role = facts["role"]
    if role == "sending":
        message = parse_stanza((SERVER / case["stanza"]).read_bytes())
        decision = filter_client_path(message, message_fields(message), facts["session"], domain=facts["domain"],
                                      client_key=facts["client_key"], now=parse_time(facts["now"]),
                                      max_skew=facts["max_skew"])
        assert (decision.kept.sig if decision.kept else None) == expected["kept"]
        assert (decision.removed, decision.chain.value, decision.chain_reason) == \
            (expected["removed"], expected["chain"], expected["chain_reason"])
        assert decision.in_view(view_of(facts["view"])).attributes() == expected["in_view"]
        assert sigs(message) == expected["path"]
    elif role == "receiving":
        message = parse_stanza((SERVER / case["stanza"]).read_bytes())
        fields = message_fields(message)
        base = view_of(facts["view"])
        decision = receive_chain(message, fields, origin=facts["origin"], domain=facts["domain"],
                                 takes_part=facts["takes_part"],
                                 keys=KeySet.from_json({"domain": facts["origin"], "keys": facts["keys"]}),
                                 in_view=base, now=parse_time(facts["now"]), max_skew=facts["max_skew"],
                                 seen=set(facts["seen"]))
        view = decision.in_view(base)
        assert (decision.chain.value, decision.chain_reason, decision.prev_key) == \
            (expected["chain"], expected["chain_reason"], expected["prev_key"])
        assert view.attributes() == expected["in_view"]
        assert list(decision.accepted) == expected["accepted"]
        assert sigs(message) == expected["path"]
        hop = received_requirement_problem(fields.require, view, decision) if fields.require else None
        assert (hop.attributes() if hop else None) == expected["refusal"]
    elif role == "require":
        hop = unmet_requirement(facts["required"], [view_of(v) for v in facts["views"]])
        assert (hop.attributes() if hop else None) == expected["hop"]
    else:
        answer = preflight_answer(facts["domain"], facts["takes_part"], view_of(facts["view"]))
        assert (answer.domain, answer.takes_part) == (expected["domain"], expected["takes_part"])
        assert (answer.out_view.attributes() if answer.out_view else None) == expected["out"]
