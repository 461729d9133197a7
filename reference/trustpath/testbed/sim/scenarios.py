"""The brief's 15 scenarios (and one more), each run on a fresh embedded federation.

A scenario builds its world, sends one message, and checks what the recipient (or,
for a refused message, the sender) got against what the brief requires.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from lxml import etree

from ...core.codec import find_message, parse_stanza, serialize
from ...core.model import NS, Verdict
from ...core.timefmt import format_time
from ...core.verify import Anchor, Report
from .federation import ClientNode, Federation, Inbound, Inbox, Interceptor, Outbound, ServerNode

ALICE, BOB = "alice@a.example/phone", "bob@b.example/desk"
VECTOR_SEED = b"trust-path test vectors v0"
VECTOR_START = datetime(2026, 11, 25, 9, 0, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Expectation:
    """What the brief requires the recipient (or the refused sender) to see."""

    verdict: Verdict
    delivered: bool = True
    hop: str | None = None  # the hop that must be named, e.g. 'H2'
    reason: str | None = None  # the reason that hop must carry
    note: str | None = None  # a substring one note must contain
    text: str = ""


@dataclass
class Outcome:
    """What one scenario produced."""

    number: int
    name: str
    title: str
    expected: Expectation
    delivered: bool
    report: Report | None
    stanza: bytes | None  # as the recipient client received it (or the error the sender got)
    anchor: Anchor | None
    error: dict[str, str] | None = None
    received_at: str | None = None  # the recipient's clock when it verified
    problems: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> Verdict:
        return self.report.verdict if self.report is not None else Verdict.UNTRUSTED

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "scenario": self.number, "name": self.name, "title": self.title, "verdict": self.verdict.value,
            "expected": self.expected.verdict.value, "expected_delivered": self.expected.delivered,
            "delivered": self.delivered, "ok": self.ok, "problems": self.problems,
            "requirement": self.expected.text,
        }
        if self.report is not None:
            out.update(self.report.to_json())
        else:
            err = self.error or {}
            refusal = {"hop": self.expected.hop, "role": "s2s", "from": err.get("by", "a.example"),
                       "to": err.get("peer"), "method": err.get("method"), "result": "fail",
                       "reason": err.get("reason"), "refused": True}
            out.update({"weakest": [self.expected.hop] if self.expected.hop else [], "hops": [refusal],
                        "notes": [f"not delivered: the sender got <{err.get('condition')}/>: {err.get('text', '')}"]})
        if self.error is not None:
            out["error"] = self.error
        return out


def _check(outcome: Outcome) -> Outcome:
    exp = outcome.expected
    if outcome.delivered != exp.delivered:
        outcome.problems.append("delivered" if outcome.delivered else "not delivered")
    if outcome.verdict is not exp.verdict:
        outcome.problems.append(f"verdict {outcome.verdict.value}, required {exp.verdict.value}")
    if exp.hop and exp.reason:
        if outcome.report is not None:
            hops = {h.label: h for h in outcome.report.hops}
            hop = hops.get(exp.hop)
            if hop is None or hop.reason != exp.reason:
                found = f"{hop.label}: {hop.reason}" if hop else "no such hop"
                outcome.problems.append(f"{exp.hop} must show {exp.reason} ({found})")
            if exp.verdict is not Verdict.TRUSTED and exp.hop not in outcome.report.weakest:
                outcome.problems.append(f"{exp.hop} must be named as the weakest hop")
        elif outcome.error is None or outcome.error.get("reason") != exp.reason:
            outcome.problems.append(f"the refusal must give reason {exp.reason}")
    if exp.note and (outcome.report is None or not any(exp.note in n for n in outcome.report.notes)):
        outcome.problems.append(f"a note must mention {exp.note!r}")
    return outcome


@dataclass(frozen=True)
class Scenario:
    number: int
    name: str
    title: str
    expected: Expectation
    run: Callable[[Federation], tuple[ClientNode, Inbox | None]]


def _world(fed: Federation, *, h2: str = "pin", h2_in: str = "pin", rc_verify: str = "pin",
           ss_takes_part: bool = True, ss_cert: bool = True, ss_offset: float = 0,
           bob_online: bool = True) -> tuple[ServerNode, ServerNode, ClientNode, ClientNode]:
    ss = fed.server("a.example", takes_part=ss_takes_part, clock_offset=ss_offset, client_certificate=ss_cert)
    rs = fed.server("b.example")
    ss.outbound["b.example"] = Outbound(h2, frozenset({rs.credential.spki}) if h2 == "pin" else frozenset())
    rs.inbound["a.example"] = Inbound(h2_in, frozenset({ss.credential.spki}) if h2_in == "pin" else frozenset())
    alice = ClientNode(fed, ALICE, ss)
    bob = ClientNode(fed, BOB, rs, verify=rc_verify)
    alice.connect()
    if bob_online:
        bob.connect()
    return ss, rs, alice, bob


def _last(client: ClientNode) -> Inbox | None:
    return client.inbox[-1] if client.inbox else None


def s01(fed: Federation) -> tuple[ClientNode, Inbox | None]:
    _, _, alice, bob = _world(fed)
    alice.send("bob@b.example", "Hi Bob, this path is pinned end to end.")
    return bob, _last(bob)


def s02(fed: Federation) -> tuple[ClientNode, Inbox | None]:
    _, _, alice, bob = _world(fed, h2="pkix", h2_in="pkix")
    alice.send("bob@b.example", "H2 is checked against a CA only.")
    return bob, _last(bob)


def s03(fed: Federation) -> tuple[ClientNode, Inbox | None]:
    _, _, alice, bob = _world(fed, h2="pkix", h2_in="dialback", ss_cert=False)
    alice.send("bob@b.example", "b.example knows a.example by dialback only.")
    return bob, _last(bob)


def s04(fed: Federation) -> tuple[ClientNode, Inbox | None]:
    fed.interceptors[("a.example", "b.example")] = Interceptor(fed, "a.example", "b.example")
    _, _, alice, bob = _world(fed)
    alice.send("bob@b.example", "A man in the middle holds a CA-valid certificate for b.example.")
    return alice, _last(alice)


def s05(fed: Federation) -> tuple[ClientNode, Inbox | None]:
    _, _, alice, bob = _world(fed, h2="pkix", h2_in="pkix", ss_takes_part=False)
    alice.send("bob@b.example", "a.example does not implement trust-path.")
    return bob, _last(bob)


def _strip(data: bytes) -> bytes:
    root = parse_stanza(data)
    for path in root.findall(f"{{{NS}}}path"):
        for att in list(path):
            if att.get("signer") == "a.example":
                path.remove(att)
    return serialize(root)


def s06(fed: Federation) -> tuple[ClientNode, Inbox | None]:
    ss, _, alice, bob = _world(fed)
    ss.outbound_filter = _strip
    alice.send("bob@b.example", "Someone removes a.example's attestation in transit.")
    return bob, _last(bob)


def _tamper(data: bytes) -> bytes:
    return data.replace(b"Meet at noon.", b"Meet at midnight.")


def s07(fed: Federation) -> tuple[ClientNode, Inbox | None]:
    ss, _, alice, bob = _world(fed)
    ss.outbound_filter = _tamper
    alice.send("bob@b.example", "Meet at noon.")
    return bob, _last(bob)


def s08(fed: Federation) -> tuple[ClientNode, Inbox | None]:
    _, _, alice, bob = _world(fed)
    alice.send("bob@b.example", "My client claims to be my server.", extra=alice.forge_server_attestation)
    return bob, _last(bob)


def s09(fed: Federation) -> tuple[ClientNode, Inbox | None]:
    ss, _, alice, bob = _world(fed)
    captured: list[etree._Element] = []

    def replay(data: bytes) -> bytes:
        root = parse_stanza(data)
        path = root.find(f"{{{NS}}}path")
        if not captured:  # the first message: remember its attestation from a.example
            captured.append(next(a for a in path if a.get("signer") == "a.example"))
            return data
        for att in list(path):
            if att.get("signer") == "a.example":
                path.replace(att, captured[0])
        return serialize(root)

    ss.outbound_filter = replay
    alice.send("bob@b.example", "An earlier message.")
    fed.clock.advance(20)
    alice.send("bob@b.example", "A later message carrying the earlier attestation.")
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


def s11(fed: Federation) -> tuple[ClientNode, Inbox | None]:
    _, _, alice, bob = _world(fed, rc_verify="pkix")
    alice.send("bob@b.example", "Bob's client trusts its server by a CA only.")
    return bob, _last(bob)


def s12(fed: Federation) -> tuple[ClientNode, Inbox | None]:
    _, _, alice, bob = _world(fed, bob_online=False)
    alice.send("bob@b.example", "Bob is offline; b.example stores this.")
    fed.clock.advance(3 * 3600)
    bob.connect()
    return bob, _last(bob)


def s13(fed: Federation) -> tuple[ClientNode, Inbox | None]:
    ss, _, alice, bob = _world(fed)
    laptop = ClientNode(fed, "alice@a.example/laptop", ss)
    laptop.connect()
    alice.send("bob@b.example", "Sent from the phone; the laptop gets a carbon copy.")
    return laptop, _last(laptop)


def s14(fed: Federation) -> tuple[ClientNode, Inbox | None]:
    _, _, alice, bob = _world(fed, ss_offset=-3 * 3600)
    alice.send("bob@b.example", "a.example's clock is three hours slow.")
    return bob, _last(bob)


def s15(fed: Federation) -> tuple[ClientNode, Inbox | None]:
    _, _, alice, bob = _world(fed, h2="none", h2_in="dialback", ss_cert=False)
    alice.send("bob@b.example", "Only over verified hops, please.", require="trusted")
    return alice, _last(alice)


def s16(fed: Federation) -> tuple[ClientNode, Inbox | None]:
    fed.interceptors[("a.example", "b.example")] = Interceptor(fed, "a.example", "b.example")
    _, _, alice, bob = _world(fed, h2="pkix", h2_in="pkix")
    alice.send("bob@b.example", "a.example checks b.example against a CA only.")
    return bob, _last(bob)


E = Expectation
SCENARIOS: tuple[Scenario, ...] = (
    Scenario(1, "all-pinned", "every hop pinned, both ends agree on every key",
             E(Verdict.TRUSTED, text="fully trusted"), s01),
    Scenario(2, "h2-ca-only", "H2 verified by a CA chain only",
             E(Verdict.WEAK, hop="H2", reason="ca-only", text="verified, but weaker (names H2)"), s02),
    Scenario(3, "h2-dialback", "H2 authenticated by dialback only",
             E(Verdict.UNTRUSTED, hop="H2", reason="dialback-only", text="not trusted (names H2)"), s03),
    Scenario(4, "h2-mitm-pinned", "man in the middle on H2 with a CA-valid certificate, against a pin",
             E(Verdict.UNTRUSTED, delivered=False, hop="H2", reason="pin-mismatch",
               text="not delivered, or failed at H2; never trusted"), s04),
    Scenario(5, "ss-not-participating", "the sender's server does not implement trust-path",
             E(Verdict.UNKNOWN, hop="H2", reason="not-participating", text="unknown before RS, never trusted"),
             s05),
    Scenario(6, "ss-stripped", "the sender server's attestation removed in transit",
             E(Verdict.UNTRUSTED, hop="H2", reason="stripped", text="stripped, not trusted; unlike 5"), s06),
    Scenario(7, "body-tampered", "the body changed after the sender's server signed",
             E(Verdict.UNTRUSTED, hop="H2", reason="tampered", text="tampered at H2, not trusted"), s07),
    Scenario(8, "client-forgery", "the sender's client adds an attestation claiming to be its server's",
             E(Verdict.TRUSTED, note="forged", text="the forgery is removed; it never counts"), s08),
    Scenario(9, "replayed", "a valid attestation copied from another message",
             E(Verdict.UNTRUSTED, hop="H2", reason="replayed", text="rejected"), s09),
    Scenario(10, "key-rotated-archive", "keys rotated; an older message read from the archive",
             E(Verdict.TRUSTED, note="retired", text="still verifiable, or clearly 'key no longer known'"), s10),
    Scenario(11, "h3-ca-only", "the recipient's client checks its server against a CA only",
             E(Verdict.WEAK, hop="H3", reason="ca-only", text="verified, but weaker (names H3)"), s11),
    Scenario(12, "offline-storage", "stored offline and delivered three hours later",
             E(Verdict.TRUSTED, note="stored", text="same verdict as on arrival, storage shown"), s12),
    Scenario(13, "carbon", "a carbon copy to the sender's other device",
             E(Verdict.TRUSTED, text="a verdict for that path"), s13),
    Scenario(14, "clock-skew", "the sender server's clock is three hours off",
             E(Verdict.UNTRUSTED, hop="H2", reason="clock-skew", text="flagged"), s14),
    Scenario(15, "require-refused", "the sender required verified hops; H2 cannot be verified",
             E(Verdict.UNTRUSTED, delivered=False, hop="H2", reason="not-verified",
               text="a defined error to the sender; no delivery"), s15),
    Scenario(16, "h2-mitm-ca-only", "man in the middle on H2 where the sender's server checks a CA only "
             "(the 2023 jabber.ru case)",
             E(Verdict.UNTRUSTED, hop="H2", reason="key-mismatch", text="caught by end-point binding"), s16),
)


def error_detail(stanza: bytes) -> dict[str, str]:
    root = parse_stanza(stanza)
    error = root.find("{jabber:client}error")
    out: dict[str, str] = {}
    if error is None:
        return out
    out["by"] = error.get("by", "")
    for child in error:
        name = etree.QName(child).localname
        if etree.QName(child).namespace == NS and name == "unverified-hop":
            out.update(child.attrib)
        elif name == "text":
            out["text"] = child.text or ""
        else:
            out["condition"] = name
    return out


def run_scenario(scenario: Scenario, *, seed: bytes | None = None, start: datetime | None = None) -> Outcome:
    with Federation(seed=seed, start=start) as fed:
        viewer, inbox = scenario.run(fed)
        anchor = viewer.anchor() if viewer.view is not None else None
        received_at = format_time(viewer.now())
    delivered = inbox is not None and not inbox.error
    outcome = Outcome(scenario.number, scenario.name, scenario.title, scenario.expected, delivered,
                      inbox.report if inbox else None, inbox.stanza if inbox else None, anchor,
                      received_at=received_at)
    if inbox is not None and inbox.error:
        outcome.error = error_detail(inbox.stanza)
    if inbox is None:
        outcome.problems.append("nothing arrived")
    return _check(outcome)


def run_all(*, seed: bytes | None = None, start: datetime | None = None,
            only: tuple[int, ...] = ()) -> list[Outcome]:
    return [run_scenario(s, seed=seed, start=start) for s in SCENARIOS if not only or s.number in only]


def file_stem(outcome: Outcome) -> str:
    return f"{outcome.number:02d}-{outcome.name}"


def received_message(stanza: bytes) -> etree._Element:
    return find_message(parse_stanza(stanza)).message


__all__ = ["SCENARIOS", "Outcome", "Scenario", "run_all", "run_scenario", "VECTOR_SEED", "VECTOR_START"]
