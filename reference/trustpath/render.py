"""How a person sees a report in a terminal: words and a symbol for every verdict, never
colour alone (XEP: Accessibility Considerations)."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from .core.model import Verdict
from .core.verify import HopReport, Report

BADGE = {
    Verdict.TRUSTED: ("✔", "trusted", "bold green"),
    Verdict.WEAK: ("◐", "weak", "bold yellow"),
    Verdict.UNTRUSTED: ("✘", "untrusted", "bold red"),
    Verdict.UNKNOWN: ("?", "unknown", "bold magenta"),
}

EXPLAIN = {
    Verdict.TRUSTED: "every hop verified by a pin or DANE, both ends agree on every key",
    Verdict.WEAK: "every hop verified, but some only by a certificate authority",
    Verdict.UNTRUSTED: "a hop is unverified, failed, or was tampered with",
    Verdict.UNKNOWN: "part of the path is not described (a node does not take part, or a key is no longer known)",
}

RESULT = {"pass": "✔ pass", "fail": "✘ fail", "none": "– unverified", "unknown": "? unknown"}


def badge(verdict: Verdict) -> Text:
    symbol, word, style = BADGE[verdict]
    return Text(f"{symbol} {word.upper()}", style=style)


def hop_table(hops: tuple[HopReport, ...]) -> Table:
    table = Table(show_header=True, header_style="bold", box=None, pad_edge=False, padding=(0, 1))
    for column in ("hop", "role", "from → to", "method (client / server)", "result", "reason", "key source"):
        table.add_column(column)
    for hop in hops:
        table.add_row(hop.label, hop.role, f"{hop.sender} → {hop.receiver}", hop.method,
                      RESULT.get(hop.result, hop.result), hop.reason or "", hop.key_source or "")
    return table


def report_view(report: Report) -> RenderableType:
    line = Text.assemble("verdict: ", badge(report.verdict), f"  {EXPLAIN[report.verdict]}")
    if report.weakest:
        line.append(f"; weakest: {', '.join(report.weakest)}")
    parts: list[RenderableType] = [line, hop_table(report.hops)]
    parts += [Text(f"note: {note}", style="dim") for note in report.notes]
    return Group(*parts)
