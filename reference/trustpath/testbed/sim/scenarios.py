"""How each scenario of the table (:mod:`..scenarios`) runs on the embedded federation.

Each run builds a fresh federation, sends one message, and returns the client whose inbox
holds what must be checked: the recipient's, or for a refused message the sender's.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from lxml import etree

from ...core.codec import find_path_element, parse_stanza, path_records, serialize
from ...core.timefmt import format_time
from ..scenarios import ALICE, BOB, SCENARIOS, Bed, Outcome, Scenario, check_outcome, error_detail, scenarios_on
from .federation import C2SInterceptor, ClientNode, Federation, Inbound, Inbox, Interceptor, Outbound, ServerNode

#: the fixed keys and clock of the published test vectors (``trustpath demo --fixed``)
VECTOR_SEED = b"trust-path test vectors v1"
VECTOR_START = datetime(2026, 11, 25, 9, 0, 0, tzinfo=UTC)

Run = Callable[[Federation], tuple[ClientNode, Inbox | None]]


def _world(fed: Federation, *, h2: str = "pin", h2_in: str = "pin", h2_back: str | None = None,
           rc_verify: str = "pin", sc_verify: str = "pin", ss_takes_part: bool = True, ss_cert: bool = True,
           ss_offset: float = 0, bob_online: bool = True, h1_attack: str | None = None,
           key_fetch_attack: bool = False) -> tuple[ServerNode, ServerNode, ClientNode, ClientNode]:
    """a.example and b.example, alice and bob.  ``h2`` is how a.example checks b.example, ``h2_in`` how
    b.example authenticates a.example on that stream, ``h2_back`` how b.example checks a.example on its
    own outgoing link (where it asks for a.example's keys, and returns refusals), and a.example
    b.example on it: like ``h2`` unless given.
    ``h1_attack`` puts a man in the middle on alice's hop: ``careful`` (alice checks a CA only, he
    re-signs her record) or ``first-use`` (alice pinned his key on first use, he relays).
    ``key_fetch_attack`` puts one on b.example's own link to a.example (checked by a CA only)."""
    if h1_attack is not None:
        fed.c2s_interceptors[ALICE] = C2SInterceptor(fed, "a.example", ALICE, forge=h1_attack == "careful")
        sc_verify = "pkix" if h1_attack == "careful" else "tofu"
    if key_fetch_attack:
        fed.interceptors[("b.example", "a.example")] = Interceptor(fed, "b.example", "a.example")
        h2_back = "pkix"
    ss = fed.server("a.example", takes_part=ss_takes_part, clock_offset=ss_offset, client_certificate=ss_cert)
    rs = fed.server("b.example")
    back = h2_back or ("pin" if h2 == "pin" else "pkix")
    ss.outbound["b.example"] = Outbound(h2, frozenset({rs.credential.spki}) if h2 == "pin" else frozenset())
    rs.inbound["a.example"] = Inbound(h2_in, frozenset({ss.credential.spki}) if h2_in == "pin" else frozenset())
    rs.outbound["a.example"] = Outbound(back, frozenset({ss.credential.spki}) if back == "pin" else frozenset())
    # a.example authenticates b.example on that link alike (what a refusal or a receipt comes back on)
    ss.inbound["b.example"] = Inbound(back, frozenset({rs.credential.spki}) if back == "pin" else frozenset())
    alice = ClientNode(fed, ALICE, ss, verify=sc_verify)
    if h1_attack == "first-use":
        alice.pins = frozenset({fed.c2s_interceptors[ALICE].credential.spki})  # taken when he was there
    bob = ClientNode(fed, BOB, rs, verify=rc_verify)
    alice.connect()
    if bob_online:
        bob.connect()
    return ss, rs, alice, bob


def _last(client: ClientNode) -> Inbox | None:
    return client.inbox[-1] if client.inbox else None


def _sends(body: str, *, on_path: Callable[[bytes], bytes] | None = None, intercept: bool = False,
           require: str | None = None, forge: bool = False, refused: bool = False, **world: Any) -> Run:
    """A run in which alice sends ``body`` to bob once, in a world set up with ``world`` (see
    :func:`_world`): ``on_path`` changes what a.example sends on the wire after signing, ``intercept``
    puts a man in the middle with CA-valid certificates on H2, ``forge`` makes alice's client forge
    its server's record.  What bob got is checked, or what alice got when it is ``refused``."""
    def run(fed: Federation) -> tuple[ClientNode, Inbox | None]:
        if intercept:
            fed.interceptors[("a.example", "b.example")] = Interceptor(fed, "a.example", "b.example")
        ss, _, alice, bob = _world(fed, **world)
        ss.outbound_filter = on_path
        alice.send("bob@b.example", body, require=require, extra=alice.forge_server_record if forge else None)
        viewer = alice if refused else bob
        return viewer, _last(viewer)

    return run


def _records(data: bytes, edit: Callable[[list[str]], list[str]]) -> bytes:
    """``data`` with the records of its path changed by ``edit`` (an attacker on the wire)."""
    root = parse_stanza(data)
    path = find_path_element(root)
    if path is not None:
        path.text = " ".join(edit(path_records(path)))
    return serialize(root)


def _strip(data: bytes) -> bytes:
    return _records(data, lambda records: [r for r in records if not r.startswith("s=a.example;")])


def _tamper(data: bytes) -> bytes:
    return data.replace(b"Meet at noon.", b"Meet at midnight.")


def s09(fed: Federation) -> tuple[ClientNode, Inbox | None]:
    ss, _, alice, bob = _world(fed)
    captured: list[str] = []

    def swap(records: list[str]) -> list[str]:
        if not captured:  # the first message: remember a.example's record
            captured.extend(r for r in records if r.startswith("s=a.example;"))
            return records
        return [captured[0] if r.startswith("s=a.example;") else r for r in records]

    def replay(data: bytes) -> bytes:
        return _records(data, swap)

    ss.outbound_filter = replay
    alice.send("bob@b.example", "An earlier message.")
    fed.clock.advance(20)
    alice.send("bob@b.example", "A later message carrying the earlier record.")
    return bob, _last(bob)


def s10(fed: Federation) -> tuple[ClientNode, Inbox | None]:
    ss, rs, alice, bob = _world(fed)
    alice.send("bob@b.example", "Archived, then both servers rotate their keys.")
    fed.clock.advance(30 * 86400)
    ss.rotate_key()
    rs.rotate_key()
    bob.refresh_keys()
    assert bob.session is not None
    for data in rs.archive_query(bob.session):
        bob.receive(data)
    return bob, _last(bob)


OMEMO = "eu.siacs.conversations.axolotl"


def _omemo(root: etree._Element) -> None:
    """An OMEMO-shaped payload (XEP-0384): a header with a key per device and an encrypted payload."""
    encrypted = etree.SubElement(root, f"{{{OMEMO}}}encrypted", nsmap={None: OMEMO})
    header = etree.SubElement(encrypted, f"{{{OMEMO}}}header", sid="27183")
    etree.SubElement(header, f"{{{OMEMO}}}key", rid="31415").text = "MwohLsQ+Wz0QhK9hKcoHGhIIARIbCiEF"
    etree.SubElement(header, f"{{{OMEMO}}}iv").text = "dGhpcyBpcyBub3Q="
    etree.SubElement(encrypted, f"{{{OMEMO}}}payload").text = "ZW5jcnlwdGVkIHRleHQ="


def s21(fed: Federation) -> tuple[ClientNode, Inbox | None]:
    _, _, alice, bob = _world(fed)
    alice.send("bob@b.example", "I sent you an OMEMO encrypted message but your client doesn't seem to support "
               "that.", payload=_omemo)
    return bob, _last(bob)


def s12(fed: Federation) -> tuple[ClientNode, Inbox | None]:
    _, _, alice, bob = _world(fed, bob_online=False)
    alice.send("bob@b.example", "Bob is offline; b.example stores this.")
    fed.clock.advance(3 * 3600)
    bob.connect()
    return bob, _last(bob)


def s13(fed: Federation) -> tuple[ClientNode, Inbox | None]:
    ss, _, alice, _ = _world(fed)
    laptop = ClientNode(fed, "alice@a.example/laptop", ss)
    laptop.connect()
    alice.send("bob@b.example", "Sent from the phone; the laptop gets a carbon copy.")
    return laptop, _last(laptop)


RUNS: dict[int, Run] = {
    1: _sends("Hi Bob, this path is pinned end to end."),
    2: _sends("H2 is checked against a CA only.", h2="pkix", h2_in="pkix"),
    3: _sends("b.example knows a.example by dialback only.", h2="pkix", h2_in="dialback", ss_cert=False),
    4: _sends("A man in the middle holds a CA-valid certificate for b.example.", intercept=True, refused=True),
    5: _sends("a.example does not implement trust-path.", h2="pkix", h2_in="pkix", ss_takes_part=False),
    6: _sends("Someone removes a.example's record in transit.", on_path=_strip),
    7: _sends("Meet at noon.", on_path=_tamper),
    8: _sends("My client claims to be my server.", forge=True),
    9: s09,
    10: s10,
    11: _sends("Bob's client trusts its server by a CA only.", rc_verify="pkix"),
    12: s12,
    13: s13,
    14: _sends("a.example's clock is three hours slow.", ss_offset=-3 * 3600),
    15: _sends("Only over verified hops, please.", require="trusted", refused=True, h2="none", h2_in="dialback",
              ss_cert=False),
    16: _sends("a.example checks b.example against a CA only.", intercept=True, h2="pkix", h2_in="pkix"),
    18: _sends("Written by a man in the middle, signed as if I had pinned a.example.", h1_attack="careful"),
    19: _sends("Relayed by the man in the middle whose key I pinned on first use.", h1_attack="first-use"),
    20: _sends("b.example asked for a.example's keys over a link a man in the middle holds.", key_fetch_attack=True),
    21: s21,
}


def run_scenario(scenario: Scenario, *, seed: bytes | None = None, start: datetime | None = None) -> Outcome:
    """Run ``scenario`` on a fresh embedded federation (fresh keys and clock, or ``seed``/``start``)."""
    why_not = scenario.why_not_on(Bed.SIM)
    if why_not is not None:
        raise ValueError(f"scenario {scenario.number} does not run on the embedded federation: {why_not}")
    with Federation(seed=seed, start=start) as fed:
        viewer, inbox = RUNS[scenario.number](fed)
        anchor = viewer.anchor() if viewer.view is not None else None
        received_at = format_time(viewer.now())
    if inbox is None:
        return check_outcome(Outcome(scenario, Bed.SIM, False, anchor=anchor, received_at=received_at,
                                     problems=("nothing arrived",)))
    return check_outcome(Outcome(scenario, Bed.SIM, not inbox.error, inbox.report, inbox.stanza, anchor,
                                 error=error_detail(inbox.stanza) if inbox.error else None,
                                 received_at=received_at, refusal=inbox.refusal))


def run_all(*, seed: bytes | None = None, start: datetime | None = None,
            only: tuple[int, ...] = ()) -> list[Outcome]:
    """Every scenario the embedded federation runs (or those numbered in ``only``), in table order."""
    return [run_scenario(s, seed=seed, start=start) for s in scenarios_on(Bed.SIM, only)]


# SCENARIOS is the table's, named here too for callers that index it by position
__all__ = ["ALICE", "BOB", "RUNS", "SCENARIOS", "VECTOR_SEED", "VECTOR_START", "run_all", "run_scenario"]
