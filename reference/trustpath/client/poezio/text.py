"""A report as plain text, for a terminal client that cannot use rich (poezio).

Every verdict is a word and a symbol (✔ trusted, ◐ weak, ✘ untrusted, ? unknown), never colour
alone, and the weakest hop is named with both its ends and its reason in words (XEP:
Accessibility Considerations); colour, where a client adds it, only repeats them.  Nothing here
decides anything: it formats a :class:`trustpath.Report` as the core made it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...core.delivery import Delivery, DeliveryReport, ReportedHop
from ...core.errors import MalformedStanza, TrustPathError
from ...core.model import Verdict
from ...core.verify import HopReport, Report
from ...render import BADGE, EXPLAIN, RESULT

if TYPE_CHECKING:  # only named here: these words need neither slixmpp nor poezio
    from ..slixmpp.preflight import Preflight

#: the reason codes (XEP: Reason Codes) in plain words; the codes are identifiers, not interface text
REASON_WORDS = {
    "ca-only": "checked by a CA only",
    "dialback-only": "dialback only",
    "not-verified": "not verified",
    "not-participating": "does not take part",
    "stripped": "record removed",
    "tampered": "changed in transit",
    "replayed": "copied from another message",
    "chain-broken": "records inconsistent",
    "key-mismatch": "the two ends saw different keys",
    "pin-mismatch": "key does not match the pin",
    "key-unknown": "key no longer known",
    "keys-unavailable": "the receiving server could not fetch the sender's keys",
    "key-revoked": "signed with a revoked key",
    "key-retired": "signed with a retired key",
    "clock-skew": "clock wrong",
    "unvouched": "key not vouched for",
    "weak-key-source": "key learned from a weak source",
    "unsupported-algorithm": "unknown signature algorithm",
    "starttls-not-supported": "no TLS",
    "certificate-host-mismatch": "certificate names another server",
    "certificate-expired": "certificate expired",
    "certificate-not-trusted": "certificate not trusted",
    "validation-failure": "certificate check failed",
    "tlsa-invalid": "DANE record does not match",
    "dnssec-invalid": "DNSSEC check failed",
    "dane-required": "DANE required but missing",
    "unbound": "the sender's login was not bound to the connection (no channel binding)",
    "first-use-pin": "pinned on first use, not confirmed by a person",
    "sent-copy": "a copy of a message sent from another device: how it was delivered is not known here",
    "no-id": "the message has no id, so no one could sign it",
}


def verdict_words(verdict: Verdict | str) -> str:
    """``'✔ trusted'``, ``'◐ weak'``, ``'✘ untrusted'`` or ``'? unknown'``."""
    symbol, word, _ = BADGE[Verdict(verdict)]
    return f"{symbol} {word}"


def reason_words(reason: str | None) -> str:
    """A reason code in plain words (the code itself when no words are known for it)."""
    return REASON_WORDS.get(reason, reason) if reason else ""


def weakest_words(report: Report | DeliveryReport) -> str:
    """The weakest hops, each with both ends and its reason in words, e.g.
    ``'H2 a.example → b.example, checked by a CA only'`` (empty when none is named)."""
    hops = {hop.label: hop for hop in report.hops}
    parts = []
    for label in report.weakest:
        hop = hops.get(label)
        if hop is None:
            parts.append(label)
            continue
        part = f"{label} {hop.sender} → {hop.receiver}"
        parts.append(f"{part}, {reason_words(hop.reason)}" if hop.reason else part)
    return "; ".join(parts)


def badge(report: Report, prefix: str = "") -> str:
    """The badge shown after a message: ``'[✔ trusted]'``,
    ``'[◐ weak: H2 a.example → b.example, checked by a CA only]'``, ...  ``prefix`` says whose
    path it is when it is not the message's own (e.g. ``'receipt path'``)."""
    words = verdict_words(report.verdict)
    if prefix:
        words = f"{prefix} {words}"
    weakest = weakest_words(report) if report.verdict is not Verdict.TRUSTED else ""
    # content no signature covers (an unknown extension, a payload added later): the verdict is
    # not about it, and the badge must not let it look verified (details: /trust_path)
    uncovered = " · part not covered" if any(n.startswith("not covered") for n in report.notes) else ""
    return f"[{words}: {weakest}{uncovered}]" if weakest else f"[{words}{uncovered}]"


def room_badge(report: Report) -> str:
    """The badge of a message in a room: ``'[? unknown: the room does not take part]'``.  Rooms do
    not take part in this version, so the core reports every groupchat message as unknown, each hop
    not taking part (XEP rule 26); naming all of them would only repeat that."""
    return f"[{verdict_words(report.verdict)}: the room does not take part]"


def summary(report: Report | DeliveryReport) -> str:
    """One line: the verdict in words, what it means, and the weakest hops."""
    symbol, word, _ = BADGE[report.verdict]
    line = f"{symbol} {word.upper()} — {EXPLAIN[report.verdict]}"
    if report.weakest:
        line += f"; weakest: {weakest_words(report)}"
    return line


def _reason(reason: str | None) -> str:
    if not reason:
        return "–"
    words = reason_words(reason)
    return reason if words == reason else f"{reason} ({words})"


def hop_lines(hop: HopReport | ReportedHop) -> list[str]:
    """One hop in labelled lines (readable at 80 columns and by a screen reader)::

        H2 s2s: a.example → b.example
           method pkix / pkix · result ✔ pass · reason ca-only (checked by a CA only) · key source link · time ...
           views: client pkix,pass,1.3,N9MO06A8vDfKkrco · server pkix,pass,1.3,N9MO06A8vDfKkrco

    (the views line only for a hop of a received message; equal keys at both ends are the
    end-point binding)"""
    lines = [f"{hop.label} {hop.role}: {hop.sender} → {hop.receiver}",
             (f"   method {hop.method} · result {RESULT.get(hop.result, hop.result)} · reason {_reason(hop.reason)}"
              f" · key source {hop.key_source or '–'} · time {hop.time or '–'}")]
    client, server = getattr(hop, "client_view", None), getattr(hop, "server_view", None)
    if client is not None or server is not None:
        lines.append(f"   views: client {client.text() if client else '–'} · server {server.text() if server else '–'}")
    return lines


def covers_line(report: Report) -> str:
    """What the verdict is about (XEP: Covered Payloads)."""
    if not report.covers:
        return "covers: nothing the sender signed"
    return f"covers: {', '.join(report.covers)} (and from, to, id, type); anything else is not covered"


def path_lines(report: Report) -> list[str]:
    """The path hop by hop: the verdict line, the hops, what the verdict covers, then the core's notes."""
    lines = [summary(report)]
    for hop in report.hops:
        lines += hop_lines(hop)
    lines.append(covers_line(report))
    lines += [f"note: {note}" for note in report.notes]
    return lines


# --- the pre-flight query -----------------------------------------------------------------------

def preflight_lines(preflight: Preflight, own: str = "your server") -> list[str]:
    """A :class:`trustpath.client.slixmpp.preflight.Preflight` for ``/preflight``: the forecast, then the H2 view
    your server would attest, whether the remote takes part, and what a pre-flight cannot know::

        pre-flight to b.example: H1 a.example verified by its pin; H2 b.example checked by a CA only; ...
           H2 a.example → b.example (your server's view): tls 1.3 · method pkix · result ✔ pass · ...
           key N9MO06A8vDfKkrco
           b.example takes part in trust-path: yes
           a forecast only: b.example's own check of H2 and its hop to the recipient are known once a message arrives
    """
    domain = preflight.domain
    view = preflight.out_view
    lines = [f"pre-flight to {domain}: {preflight.forecast}"]
    if view is None:
        lines.append(f"   H2 {own} → {domain}: no view (your server did not connect to {domain})")
    else:
        lines.append(f"   H2 {own} → {domain} (your server's view): tls {view.tls} · "
                     f"method {view.method} · result {RESULT.get(view.result.value, view.result.value)} · "
                     f"reason {_reason(view.reason)}")
        lines.append(f"   key {view.spki or '–'}")
    part = {True: "yes", False: "no", None: "not known"}[preflight.takes_part]
    lines.append(f"   {domain} takes part in trust-path: {part}")
    lines.append(f"   a forecast only: {domain}'s own check of H2 and its hop to the recipient are known once a "
                 "message arrives")
    return lines


def preflight_line(preflight: Preflight) -> str:
    """The automatic pre-flight as one information line."""
    return f"trust_path: pre-flight to {preflight.domain}: {preflight.forecast}"


def preflight_error(domain: str, error: TrustPathError) -> str:
    """A pre-flight that failed, as one line: the server's error or no answer
    (:class:`~trustpath.client.slixmpp.preflight.PreflightFailed`), its unreadable answer, or a
    domain it could not be asked for."""
    if isinstance(error, MalformedStanza):
        return f"trust_path: ✘ pre-flight to {domain}: your server's answer cannot be read ({error})"
    text = str(error) or type(error).__name__
    if not text.startswith("pre-flight to "):
        text = f"pre-flight to {domain} failed: {text}"
    return f"trust_path: ✘ {text}"


# --- delivery reports ---------------------------------------------------------------------------

def _delivery_detail(delivery: Delivery) -> str:
    if delivery.limited_by == "origin":
        return "the report is about another copy of this message"
    if delivery.limited_by == "unbound":
        return "not a message this device remembers sending to them"
    if delivery.limited_by == "receipt":
        weakest = weakest_words(delivery.receipt)
        return f"the receipt came back over {weakest}" if weakest else "the receipt's own path is weaker"
    return weakest_words(delivery.reported) if delivery.verdict is not Verdict.TRUSTED else ""


def delivery_badge(delivery: Delivery) -> str:
    """The badge of a sent message once its receipt brought the recipient's report:
    ``'[delivered ✔ trusted]'``, ``'[delivered ◐ weak: H2 a.example → b.example, checked by a CA only]'``,
    ``'[delivered ◐ weak: the receipt came back over H2 b.example → a.example, checked by a CA only]'``,
    ``'[delivered ✘ untrusted: the report is about another copy of this message]'``."""
    words = f"delivered {verdict_words(delivery.verdict)}"
    detail = _delivery_detail(delivery)
    return f"[{words}: {detail}]" if detail else f"[{words}]"


def delivery_lines(delivery: Delivery) -> list[str]:
    """``/path`` of a sent message: what may be shown and why, the path as the recipient's client
    reported it hop by hop, and the verdict on the receipt's own path back."""
    symbol, word, _ = BADGE[delivery.verdict]
    detail = _delivery_detail(delivery)
    lines = [f"{symbol} {word.upper()} — {detail}" if detail else f"{symbol} {word.upper()} — {EXPLAIN[delivery.verdict]}",
             f"as the recipient's client reported it: {summary(delivery.reported)}"]
    for hop in delivery.reported.hops:
        lines += hop_lines(hop)
    lines.append(f"the receipt's own path back: {summary(delivery.receipt)}")
    lines.append("note: the recipient's report is its client's word; the receipt's path shows it arrived as signed")
    return lines
