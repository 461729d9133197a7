"""Refusals on the embedded federation (XEP: Requiring Verified Hops), for the vectors in
``spec/vectors/refusals/``.

Each case has Alice send a message that requires verified hops, which a server on the way
refuses; the refusal comes back signed by the refusing server and by every server on its way, and
Alice's client checks its path from the refuser (its 'by') and believes it only when that path
meets what the message required.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from ...core.codec import find_message, parse_stanza, remove_paths, serialize
from ...core.model import Verdict
from ...core.require import refusal_believed
from ...core.timefmt import format_time
from ...core.verify import Anchor, Report
from ..scenarios import BOB
from .federation import Federation
from .scenarios import _world


def _without_path(data: bytes) -> bytes:
    root = parse_stanza(data)
    remove_paths(root)
    return serialize(root)


def _hop_changed(data: bytes) -> bytes:
    # someone on the way back makes the refusal name another reason
    return data.replace(b'reason="ca-only"', b'reason="pin-mismatch"')


@dataclass(frozen=True)
class RefusalCase:
    name: str
    title: str
    by: str  # the refusing server
    verdict: Verdict  # the refusal's own path, as Alice's client checks it
    required: str  # what Alice's message required
    believed: bool
    h2_back: str = "pin"  # how b.example checks a.example on its own link (and a.example b.example on it)
    rc_verify: str = "pkix"  # how Bob's client checks b.example
    h2: str = "pin"  # how a.example checks b.example
    on_path: Callable[[bytes], bytes] | None = None  # a change on the way to Alice's client


@dataclass
class RefusalOutcome:
    case: RefusalCase
    stanza: bytes | None
    anchor: Anchor | None
    now: str
    report: Report | None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


REFUSAL_CASES: tuple[RefusalCase, ...] = (
    RefusalCase("by-the-senders-server", "a.example checks b.example by a CA only: it refuses a trusted requirement "
                "itself, with one record", "a.example", Verdict.TRUSTED, "trusted", True, h2="pkix", rc_verify="pin"),
    RefusalCase("by-the-recipients-server", "Bob's client checks b.example by a CA only: b.example refuses, and "
                "a.example adds its record as for a message", "b.example", Verdict.TRUSTED, "trusted", True),
    RefusalCase("back-over-a-ca-only-link", "b.example returns its refusal over its own link to a.example, checked "
                "by a CA only: the refusal is weak, less than the trusted the message required", "b.example",
                Verdict.WEAK, "trusted", False, h2_back="pkix"),
    RefusalCase("changed-on-the-way-back", "the hop the refusal names was changed after both servers signed",
                "b.example", Verdict.UNTRUSTED, "trusted", False, on_path=_hop_changed),
    RefusalCase("without-a-record", "a refusal as servers sent them before they were attested: nothing shows who "
                "wrote it", "b.example", Verdict.UNTRUSTED, "trusted", False, on_path=_without_path),
)


def run_refusal(case: RefusalCase, *, seed: bytes | None = None, start: datetime | None = None) -> RefusalOutcome:
    with Federation(seed=seed, start=start) as fed:
        ss, rs, alice, bob = _world(fed, h2=case.h2, h2_in=case.h2, h2_back=case.h2_back, rc_verify=case.rc_verify)
        alice.send(BOB.split("/", 1)[0], "Only over verified hops, please.", require=case.required)
        anchor, now = alice.anchor(), format_time(alice.now())
        outcome = RefusalOutcome(case, None, anchor, now, None)
        if not alice.inbox or not alice.inbox[-1].error:
            outcome.problems.append("no refusal came back")
            return outcome
        stanza = alice.inbox[-1].stanza
        if case.on_path is not None:
            stanza = case.on_path(stanza)
        outcome.stanza = stanza
        outcome.report = alice.check_refusal(stanza)
    report = outcome.report
    by = find_message(parse_stanza(outcome.stanza)).message.find("{jabber:client}error").get("by")
    if report is None:
        outcome.problems.append("the refusal could not be checked")
    elif report.verdict is not case.verdict or by != case.by:
        outcome.problems.append(f"refusal by {by}, {report.verdict.value}; required by {case.by}, "
                                f"{case.verdict.value}")
    elif refusal_believed(report.verdict, case.required, by_own_server=case.by == "a.example") is not case.believed:
        outcome.problems.append(f"believed must be {case.believed}")
    return outcome


def run_refusals(*, seed: bytes | None = None, start: datetime | None = None) -> list[RefusalOutcome]:
    return [run_refusal(case, seed=seed, start=start) for case in REFUSAL_CASES]


__all__ = ["REFUSAL_CASES", "RefusalCase", "RefusalOutcome", "run_refusal", "run_refusals"]
