"""Delivery reports on the embedded federation (XEP: Delivery Reports).

Each case sends one message from Alice to Bob, lets Bob's client acknowledge it with a
receipt that carries its report of the path, and checks what Alice's client may show on the
sent message: the reported verdict, bounded by the verdict on the receipt's own path.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime

from ...core.codec import find_message, parse_stanza
from ...core.delivery import Delivery, DeliveryReport, delivery_of, find_report
from ...core.model import Verdict
from ...core.timefmt import format_time
from ...core.verify import Anchor
from ..scenarios import ALICE, BOB
from .federation import ClientNode, Federation, Inbound, Outbound

BOB_BARE = BOB.split("/", 1)[0]


@dataclass(frozen=True)
class ReceiptCase:
    name: str
    title: str
    verdict: Verdict  # what Alice may show on the sent message
    reported: Verdict  # what Bob's client reported
    receipt: Verdict  # the verdict on the receipt's own path
    limited_by: str | None
    forward_h2: str = "pin"  # how a.example checks b.example (Alice's message; and a.example's fetch of b.example's keys)
    back_h2: str = "pin"  # how b.example checks a.example (the receipt; and b.example's fetch of a.example's keys)
    back_in: str | None = None  # how a.example authenticates b.example when the receipt comes (default: back_h2)
    configured: bool = False  # a.example's operator configured b.example's keys (key source config)
    edit: Callable[[DeliveryReport], DeliveryReport] | None = None
    #: an on-path change of the receipt on its way back (between b.example's signing and the wire)
    on_path: Callable[[bytes], bytes] | None = None


@dataclass
class ReceiptOutcome:
    case: ReceiptCase
    stanza: bytes | None  # the receipt as Alice's client received it
    anchor: Anchor | None  # what Alice's client trusts
    now: str
    sent_id: str
    sent_origin: str | None
    delivery: Delivery | None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _forged_origin(report: DeliveryReport) -> DeliveryReport:
    # a report about another copy of the message: the first record Bob saw is not Alice's
    return replace(report, origin="A" * 85 + "Q")


def _raise_verdict(data: bytes) -> bytes:
    # an attacker on the way back makes a weak delivery look trusted
    return data.replace(b"verdict='weak'", b"verdict='trusted'").replace(b'verdict="weak"', b'verdict="trusted"') \
        .replace(b"strength='ca'", b"strength='strong'").replace(b'strength="ca"', b'strength="strong"')


RECEIPT_CASES: tuple[ReceiptCase, ...] = (
    ReceiptCase("delivered-all-pinned", "every hop pinned both ways: the report is trusted",
                Verdict.TRUSTED, Verdict.TRUSTED, Verdict.TRUSTED, None),
    ReceiptCase("delivered-h2-ca-only", "the message's H2 checked by a CA only: the report says weak, naming H2; "
                "a.example's operator configured b.example's keys, so the receipt's own path is trusted",
                Verdict.WEAK, Verdict.WEAK, Verdict.TRUSTED, None, forward_h2="pkix", configured=True),
    ReceiptCase("keys-over-a-ca-link", "a.example learned b.example's keys over the link it checks by a CA only: "
                "the receipt's path is weak too", Verdict.WEAK, Verdict.WEAK, Verdict.WEAK, None, forward_h2="pkix"),
    ReceiptCase("receipt-h2-ca-only", "the receipt came back over an s2s stream that a.example checked by a CA only: "
                "at best weak", Verdict.WEAK, Verdict.TRUSTED, Verdict.WEAK, "receipt", back_in="pkix"),
    ReceiptCase("report-for-another-copy", "the report names another first record than Alice's",
                Verdict.UNTRUSTED, Verdict.TRUSTED, Verdict.TRUSTED, "origin", edit=_forged_origin),
    ReceiptCase("report-raised-in-transit", "the report was changed from weak to trusted after b.example signed",
                Verdict.UNTRUSTED, Verdict.TRUSTED, Verdict.UNTRUSTED, "receipt", forward_h2="pkix",
                on_path=_raise_verdict),
)


def run_receipt(case: ReceiptCase, *, seed: bytes | None = None, start: datetime | None = None) -> ReceiptOutcome:
    with Federation(seed=seed, start=start) as fed:
        ss = fed.server("a.example")
        rs = fed.server("b.example")
        pins_rs, pins_ss = frozenset({rs.credential.spki}), frozenset({ss.credential.spki})
        ss.outbound["b.example"] = Outbound(case.forward_h2, pins_rs if case.forward_h2 == "pin" else frozenset())
        rs.inbound["a.example"] = Inbound(case.forward_h2, pins_ss if case.forward_h2 == "pin" else frozenset())
        rs.outbound["a.example"] = Outbound(case.back_h2, pins_ss if case.back_h2 == "pin" else frozenset())
        back_in = case.back_in or case.back_h2
        ss.inbound["b.example"] = Inbound(back_in, pins_rs if back_in == "pin" else frozenset())
        if case.configured:
            ss.configured_keys["b.example"] = rs.keyset
        alice, bob = ClientNode(fed, ALICE, ss), ClientNode(fed, BOB, rs)
        alice.connect()
        bob.connect()
        sent_id = alice.send("bob@b.example", "Did this reach you over verified hops?")
        problems: list[str] = []
        if not bob.inbox or bob.inbox[-1].report is None:
            problems.append("Bob received nothing")
            return ReceiptOutcome(case, None, None, format_time(alice.now()), sent_id,
                                  alice.sent.get((BOB_BARE, sent_id)), None, problems)
        rs.outbound_filter = case.on_path
        bob.acknowledge(bob.inbox[-1], edit=case.edit)
        rs.outbound_filter = None
        anchor = alice.anchor()
        now = format_time(alice.now())
    outcome = ReceiptOutcome(case, None, anchor, now, sent_id, alice.sent.get((BOB_BARE, sent_id)), None,
                             problems)
    receipt = alice.inbox[-1] if alice.inbox else None
    if receipt is None or receipt.report is None:
        problems.append("Alice received no receipt")
        return outcome
    outcome.stanza = receipt.stanza
    outcome.delivery = delivery_of(receipt.stanza, receipt.report, alice.sent)
    if outcome.delivery is None:
        problems.append("the receipt carries no report")
        return outcome
    got = outcome.delivery
    for what, found, wanted in (("verdict", got.verdict, case.verdict), ("reported", got.reported.verdict,
                                                                           case.reported),
                                ("receipt path", got.receipt.verdict, case.receipt),
                                ("limited by", got.limited_by, case.limited_by)):
        if found != wanted:
            problems.append(f"{what}: {found}, required {wanted}")
    if find_report(find_message(parse_stanza(receipt.stanza)).message) is None:
        problems.append("the receipt's <report/> did not arrive")
    return outcome


def run_receipts(*, seed: bytes | None = None, start: datetime | None = None) -> list[ReceiptOutcome]:
    return [run_receipt(case, seed=seed, start=start) for case in RECEIPT_CASES]


__all__ = ["RECEIPT_CASES", "ReceiptCase", "ReceiptOutcome", "run_receipt", "run_receipts"]
