"""How a person sees a report in a terminal: words and a symbol for every verdict, never
colour alone (XEP: Accessibility Considerations)."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from .core import constants
from .core.model import View, Verdict
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


def view_text(view: View | None) -> str:
    """One end's view as written in its record (``method,result,tls,spki``), or ``–`` when that
    end said nothing about the hop."""
    return "–" if view is None else view.text()


def hop_table(hops: tuple[HopReport, ...]) -> Table:
    table = Table(show_header=True, header_style="bold", box=None, pad_edge=False, padding=(0, 1))
    for column in ("hop", "role", "from → to", "views: client / server (method,result,tls,spki)", "result",
                   "reason", "key source"):
        table.add_column(column)
    for hop in hops:
        # the two ends' views as their records state them: equal spki on both lines is the end-point binding
        views = f"{view_text(hop.client_view)}\n{view_text(hop.server_view)}" \
            if hop.client_view is not None or hop.server_view is not None else hop.method
        table.add_row(hop.label, hop.role, f"{hop.sender} → {hop.receiver}", views,
                      RESULT.get(hop.result, hop.result), str(hop.reason or ""), hop.key_source or "")
    return table


def covers_line(report: Report) -> Text:
    """What the verdict is about (XEP: Covered Payloads): the payloads the sender's signature
    covers, or that it covers nothing when no sender's record verified."""
    if not report.covers:
        return Text("covers: nothing the sender signed (no sender's record verified)", style="dim")
    shown = [token for token in report.covers if token in constants.PAYLOADS] + \
        [token for token in report.covers if token not in constants.PAYLOADS]
    return Text(f"covers: {', '.join(shown)} (and the message's from, to, id and type)", style="dim")


def report_view(report: Report) -> RenderableType:
    line = Text.assemble("verdict: ", badge(report.verdict), f"  {EXPLAIN[report.verdict]}")
    if report.weakest:
        line.append(f"; weakest: {', '.join(report.weakest)}")
    parts: list[RenderableType] = [line, hop_table(report.hops), covers_line(report)]
    parts += [Text(f"note: {note}", style="dim") for note in report.notes]
    return Group(*parts)
