"""The one table of scenarios both test beds run: the brief's 15, and more.

Each row says what the scenario is and what the brief requires the recipient (or, for a
refused message, the sender) to see.  Where a bed cannot show a scenario exactly as the row
words it, the row says so itself, with why: what that bed must show instead, or that it does
not run the scenario at all.  How a scenario is run is each bed's own business:
:mod:`.sim.scenarios` runs it in process (``trustpath demo``), :mod:`.harness.scenarios` on
two live Prosody servers (``trustpath harness``).  Both hand back an :class:`Outcome`, and
:func:`check_outcome` holds it against the row.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum

from lxml import etree

from ..core.codec import parse_stanza
from ..core.model import NS, Side, Verdict
from ..core.require import refusal_believed
from ..core.verify import Anchor, Report

#: the two people of every scenario: Alice on a.example sends, Bob on b.example receives
ALICE, BOB = "alice@a.example/phone", "bob@b.example/desk"


class Bed(StrEnum):
    """Where a scenario runs."""

    SIM = "sim"  # the embedded federation, in process (testbed.sim, ``trustpath demo``)
    LIVE = "live"  # the live harness: two Prosody servers, slixmpp clients (testbed.harness, ``trustpath harness``)


@dataclass(frozen=True)
class ViewMethod:
    """The method one view of a hop must show, e.g. H2's client view ``dane-ee``."""

    hop: str
    side: Side
    method: str


@dataclass(frozen=True)
class Expectation:
    """What the recipient (or the refused sender) must see."""

    verdict: Verdict
    delivered: bool = True
    hop: str | None = None  # the hop that must be named, e.g. 'H2'
    reason: str | None = None  # the reason that hop must carry
    note: str | None = None  # a substring one note must contain
    text: str = ""  # the requirement in the brief's words
    methods: tuple[ViewMethod, ...] = ()  # methods the report's views must show
    covers: tuple[str, ...] = ()  # payloads the verdict must cover (XEP: Covered Payloads)


@dataclass(frozen=True)
class Difference:
    """Where one bed cannot show a scenario as its row words it, and why.

    ``expected`` is what that bed must show instead; ``None`` means the bed does not run the
    scenario at all.
    """

    bed: Bed
    why: str
    expected: Expectation | None = None


@dataclass(frozen=True)
class Scenario:
    """One row of the table."""

    number: int
    name: str
    title: str
    expected: Expectation
    differences: tuple[Difference, ...] = ()

    def _difference(self, bed: Bed) -> Difference | None:
        return next((d for d in self.differences if d.bed is bed), None)

    def runs_on(self, bed: Bed) -> bool:
        difference = self._difference(bed)
        return difference is None or difference.expected is not None

    def expected_on(self, bed: Bed) -> Expectation:
        """What ``bed`` must show: the row's expectation unless the row states a difference."""
        difference = self._difference(bed)
        if difference is None:
            return self.expected
        if difference.expected is None:
            raise ValueError(f"scenario {self.number} does not run on the {bed} bed: {difference.why}")
        return difference.expected

    def why_not_on(self, bed: Bed) -> str | None:
        """Why ``bed`` does not run this scenario, or ``None`` when it does."""
        difference = self._difference(bed)
        return difference.why if difference is not None and difference.expected is None else None


E = Expectation
SCENARIOS: tuple[Scenario, ...] = (
    Scenario(1, "all-pinned", "every hop pinned, both ends agree on every key",
             E(Verdict.TRUSTED, text="fully trusted")),
    Scenario(2, "h2-ca-only", "H2 verified by a CA chain only",
             E(Verdict.WEAK, hop="H2", reason="ca-only", text="verified, but weaker (names H2)")),
    Scenario(3, "h2-dialback", "H2 authenticated by dialback only",
             E(Verdict.UNTRUSTED, hop="H2", reason="dialback-only", text="not trusted (names H2)")),
    Scenario(4, "h2-mitm-pinned", "man in the middle on H2 with a CA-valid certificate, against a pin",
             E(Verdict.UNTRUSTED, delivered=False, hop="H2", reason="pin-mismatch",
               text="not delivered, or failed at H2; never trusted")),
    Scenario(5, "ss-not-participating", "the sender's server does not implement trust-path",
             E(Verdict.UNKNOWN, hop="H2", reason="not-participating", text="unknown before RS, never trusted")),
    Scenario(6, "ss-stripped", "the sender server's record removed in transit",
             E(Verdict.UNTRUSTED, hop="H2", reason="stripped", text="stripped, not trusted; unlike 5")),
    Scenario(7, "body-tampered", "the body changed after the sender's server signed",
             E(Verdict.UNTRUSTED, hop="H2", reason="tampered", text="tampered at H2, not trusted")),
    Scenario(8, "client-forgery", "the sender's client adds a record claiming to be its server's",
             E(Verdict.TRUSTED, note="forged", text="the forgery is removed; it never counts")),
    Scenario(9, "replayed", "a valid record copied from another message",
             E(Verdict.UNTRUSTED, hop="H2", reason="tampered", text="rejected")),
    Scenario(10, "key-rotated-archive", "keys rotated; an older message read from the archive",
             E(Verdict.TRUSTED, note="retired", text="still verifiable, or clearly 'key no longer known'")),
    Scenario(11, "h3-ca-only", "the recipient's client checks its server against a CA only",
             E(Verdict.WEAK, hop="H3", reason="ca-only", text="verified, but weaker (names H3)")),
    Scenario(12, "offline-storage", "stored offline and delivered three hours later",
             E(Verdict.TRUSTED, note="stored", text="same verdict as on arrival, storage shown")),
    Scenario(13, "carbon", "a carbon copy to the sender's other device",
             E(Verdict.UNKNOWN, hop="H3", reason="sent-copy", text="a verdict for that path: how the copy came, "
               "and that the delivery is not known from a copy")),
    Scenario(14, "clock-skew", "the sender server's clock is three hours off",
             E(Verdict.UNTRUSTED, hop="H2", reason="clock-skew", text="flagged")),
    Scenario(15, "require-refused", "the sender required verified hops; H2 cannot be verified",
             E(Verdict.UNTRUSTED, delivered=False, hop="H2", reason="not-verified",
               text="a defined error to the sender; no delivery"),
             differences=(Difference(
                 Bed.LIVE, "Prosody checks the certificate of every server it connects to, and both live "
                 "servers hold certificates from the harness's CA: a.example's view of H2 is 'pkix' (ca-only), "
                 "where the embedded a.example checks nothing (not-verified). Either falls short of the "
                 "'trusted' the sender required, and the refusal names H2 with that reason.",
                 E(Verdict.UNTRUSTED, delivered=False, hop="H2", reason="ca-only",
                   text="a defined error to the sender; no delivery")),)),
    Scenario(16, "h2-mitm-ca-only", "man in the middle on H2 where the sender's server checks a CA only "
             "(the 2023 jabber.ru case)",
             E(Verdict.UNTRUSTED, hop="H2", reason="key-mismatch", text="caught by end-point binding")),
    # beyond the brief's table: H2 strong by DANE.  a.example verifies b.example by DANE-EE
    # (DNSSEC-validated TLSA 3 1 1), with no pin; Prosody 0.12 does no DANE for inbound
    # streams, so b.example checks a.example by its pin.
    Scenario(17, "h2-dane", "H2 verified by DANE-EE over DNSSEC, no pin on the outbound side",
             E(Verdict.TRUSTED, text="fully trusted, H2 by DANE-EE",
               methods=(ViewMethod("H2", Side.CLIENT, "dane-ee"), ViewMethod("H2", Side.SERVER, "pin"))),
             differences=(Difference(
                 Bed.SIM, "the embedded federation resolves no names: DANE needs a DNSSEC-signed zone with "
                 "TLSA records, which only the live harness serves"),)),
    # attacks found on version 0: each must never show trusted
    Scenario(18, "h1-mitm-careful", "a man in the middle on H1 with a CA-valid certificate relays the login, "
             "swaps the sender's key and re-signs her record claiming a pin",
             E(Verdict.WEAK, hop="H1", reason="unbound", text="never trusted: the sender's view of H1 counts "
               "only when her server checked channel binding")),
    Scenario(19, "first-use-pin-mitm", "the sender's client pinned, on first use, the key of a man in the "
             "middle on H1",
             E(Verdict.UNTRUSTED, hop="H1", reason="key-mismatch", text="never trusted: a first-use pin is not "
               "strong, and the two ends of H1 name different keys")),
    Scenario(20, "key-fetch-poisoned", "a man in the middle on b.example's own link to a.example answers its "
             "key query with his own key",
             E(Verdict.UNTRUSTED, hop="H2", reason="key-unknown", text="never trusted: a key is as good as "
               "the link it was learned over")),
    Scenario(21, "omemo", "an end-to-end encrypted message (OMEMO) with a fallback body",
             E(Verdict.TRUSTED, covers=("body", "omemo"), text="trusted, and the verdict covers the encrypted "
               "payload, not only the fallback body")),
)


def scenarios_on(bed: Bed, only: tuple[int, ...] = ()) -> tuple[Scenario, ...]:
    """The scenarios ``bed`` runs, in table order; with ``only``, just those numbers."""
    return tuple(s for s in SCENARIOS if s.runs_on(bed) and (not only or s.number in only))


@dataclass(frozen=True)
class Outcome:
    """What one scenario produced on one bed, and how it falls short of what that bed must show."""

    scenario: Scenario
    bed: Bed
    delivered: bool
    report: Report | None = None
    stanza: bytes | None = None  # as the recipient client received it (or the error the sender got)
    anchor: Anchor | None = None
    error: dict[str, str] | None = None
    received_at: str | None = None  # the recipient's clock when it verified
    refusal: Report | None = None  # the sender's check of the refusal's own path, where the bed made one
    problems: tuple[str, ...] = field(default=())

    @property
    def number(self) -> int:
        return self.scenario.number

    @property
    def name(self) -> str:
        return self.scenario.name

    @property
    def title(self) -> str:
        return self.scenario.title

    @property
    def expected(self) -> Expectation:
        """What this bed must show: the row's expectation, or the difference the row states."""
        return self.scenario.expected_on(self.bed)

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
            "delivered": self.delivered, "ok": self.ok, "problems": list(self.problems),
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
        if self.refusal is not None:
            out["refusal"] = self.refusal.to_json()  # the check of the refusal's own path, from its 'by'
        return out


def check_outcome(outcome: Outcome) -> Outcome:
    """``outcome`` with every way it falls short of its expectation added to its problems."""
    return replace(outcome, problems=outcome.problems + tuple(_shortfalls(outcome)))


def _shortfalls(outcome: Outcome) -> list[str]:
    exp = outcome.expected
    problems = []
    if outcome.delivered != exp.delivered:
        problems.append("delivered" if outcome.delivered else "not delivered")
    if outcome.verdict is not exp.verdict:
        problems.append(f"verdict {outcome.verdict.value}, required {exp.verdict.value}")
    if exp.hop and exp.reason:
        if outcome.report is not None:
            hops = {h.label: h for h in outcome.report.hops}
            hop = hops.get(exp.hop)
            if hop is None or hop.reason != exp.reason:
                found = f"{hop.label}: {hop.reason}" if hop else "no such hop"
                problems.append(f"{exp.hop} must show {exp.reason} ({found})")
            if exp.verdict is not Verdict.TRUSTED and exp.hop not in outcome.report.weakest:
                problems.append(f"{exp.hop} must be named as the weakest hop")
        elif outcome.error is None or outcome.error.get("reason") != exp.reason:
            problems.append(f"the refusal must give reason {exp.reason}")
    if outcome.error and outcome.refusal is None:
        problems.append("the refusal carries no path the sender could check")
    by_own = outcome.anchor is not None and (outcome.error or {}).get("by") == outcome.anchor.server
    if outcome.refusal is not None and not refusal_believed(outcome.refusal.verdict,
                                                            (outcome.error or {}).get("required"), by_own_server=by_own):
        problems.append(f"the sender must believe the refusal: its path is {outcome.refusal.verdict.value}")
    if exp.covers and (outcome.report is None or not set(exp.covers) <= set(outcome.report.covers)):
        problems.append(f"the verdict must cover {', '.join(exp.covers)}")
    if exp.note and (outcome.report is None or not any(exp.note in n for n in outcome.report.notes)):
        problems.append(f"a note must mention {exp.note!r}")
    if exp.methods and outcome.report is None:
        problems.append("not delivered: no methods to check")
    elif outcome.report is not None:
        hops = {h.label: h for h in outcome.report.hops}
        for want in exp.methods:
            hop = hops.get(want.hop)
            view = hop and (hop.client_view if want.side is Side.CLIENT else hop.server_view)
            found = view.method if view is not None else None
            if found != want.method:
                problems.append(f"{want.hop}'s {want.side} view must show method {want.method} ({found})")
    return problems


def error_detail(stanza: bytes) -> dict[str, str]:
    """What the error a refused sender got says: its condition, text, and the unverified hop."""
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


def file_stem(outcome: Outcome) -> str:
    """The file name an outcome's files share, e.g. ``02-h2-ca-only``."""
    return f"{outcome.number:02d}-{outcome.name}"


__all__ = ["ALICE", "BOB", "SCENARIOS", "Bed", "Difference", "Expectation", "Outcome", "Scenario", "ViewMethod",
           "check_outcome", "error_detail", "file_stem", "scenarios_on"]
