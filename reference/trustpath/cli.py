"""The ``trustpath`` command: ``demo``, ``verify`` and ``bench``."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path as FsPath

from rich.console import Console
from rich.table import Table
from rich.text import Text

from .core.anchor import anchor_to_json, load_anchor
from .core.errors import InvalidAnchor, LimitExceeded, TrustPathError
from .core.model import DEFAULT_MAX_SKEW, MAX_STANZA_BYTES, Verdict
from .core.codec import find_message, parse_stanza
from .core.receive import refuser_of, verify_refusal_stanza, verify_stanza
from .core.timefmt import format_time, parse_time
from .render import badge, report_view
from .testbed.scenarios import SCENARIOS, Bed, Outcome, file_stem


def _console() -> Console:
    console = Console(highlight=False, soft_wrap=False)
    if not console.is_terminal:
        console = Console(highlight=False, soft_wrap=False, width=max(console.width, 140))
    return console


def _only(args: argparse.Namespace, bed: Bed) -> tuple[int, ...]:
    """The scenario numbers asked for; a word on stderr for each that ``bed`` does not run, and why."""
    only = tuple(args.scenario or ())
    rows = {s.number: s for s in SCENARIOS}
    for number in only:
        why_not = rows[number].why_not_on(bed) if number in rows else "there is no such scenario"
        if why_not is not None:
            print(f"trustpath {args.command}: scenario {number} is not run here: {why_not}", file=sys.stderr)
    return only


def cmd_demo(args: argparse.Namespace) -> int:
    from .testbed.sim.scenarios import VECTOR_SEED, VECTOR_START, run_all

    seed, start = (VECTOR_SEED, VECTOR_START) if args.fixed else (None, None)
    return show_outcomes(run_all(seed=seed, start=start, only=_only(args, Bed.SIM)), args)


def cmd_harness(args: argparse.Namespace) -> int:
    from .testbed.harness.prosody import ProsodyMissing, prosody_binary, require_module

    try:
        # before any server starts: without the module every scenario would run, and fail, with
        # every hop "not-participating"
        prosody_binary()
        require_module()
    except ProsodyMissing as exc:
        print(f"trustpath harness: {exc}", file=sys.stderr)
        return 2
    if args.keep:
        from .testbed.harness.cli import keep

        return keep(args)
    import asyncio

    from .testbed.harness.scenarios import run_all_live

    try:
        outcomes = asyncio.run(run_all_live(_only(args, Bed.LIVE)))
    except ProsodyMissing as exc:
        print(f"trustpath harness: {exc}", file=sys.stderr)
        return 2
    return show_outcomes(outcomes, args)


def show_outcomes(outcomes: list[Outcome], args: argparse.Namespace) -> int:
    """Print scenario outcomes as text or JSON (and write them with --emit); 0 when all are as required."""
    if getattr(args, "emit", None):
        emit(outcomes, FsPath(args.emit))
    if args.json:
        print(json.dumps([o.to_json() for o in outcomes], indent=2))
    else:
        console = _console()
        for o in outcomes:
            mark = Text("✔ as required", style="green") if o.ok else Text("✘ NOT as required", style="bold red")
            console.print(Text.assemble((f"{o.number:2d} {o.name}", "bold"), f" — {o.title}"))
            if o.report is not None:
                console.print(report_view(o.report))
            elif o.error is not None:
                err = o.error
                console.print(Text.assemble("not delivered: ", badge(Verdict.UNTRUSTED),
                                            f"  the sender got error <{err.get('condition')}/> "
                                            f"naming {err.get('peer')} ({err.get('method')}, {err.get('reason')})"))
                console.print(Text(f"  {err.get('text', '')}", style="dim"))
                if o.refusal is not None:
                    signers = " then ".join(r.signer for r in o.refusal.records) or "nobody"
                    console.print(Text.assemble("  refusal signed by ", signers, "; its own path: ",
                                                badge(o.refusal.verdict)))
            console.print(Text.assemble("required: ", o.expected.text, " → ", mark, *(
                [f"  ({'; '.join(o.problems)})"] if o.problems else [])))
            console.print()
        passed = sum(o.ok for o in outcomes)
        console.print(Text(f"{passed}/{len(outcomes)} scenarios gave the verdict the brief requires",
                           style="bold green" if passed == len(outcomes) else "bold red"))
        if getattr(args, "emit", None):
            console.print(f"wrote the received stanzas, anchors and expected verdicts to {args.emit}/")
    return 0 if all(o.ok for o in outcomes) else 1


def emit(outcomes: list[Outcome], directory: FsPath) -> None:
    """Write, per scenario, what the recipient received, what it trusts, and what it must see."""
    directory.mkdir(parents=True, exist_ok=True)
    for o in outcomes:
        stem = file_stem(o)
        expected: dict[str, object] = {"scenario": o.number, "name": o.name, "title": o.title,
                                       "verdict": o.expected.verdict.value, "delivered": o.expected.delivered,
                                       "requirement": o.expected.text}
        if o.expected.hop:
            expected.update({"hop": o.expected.hop, "reason": o.expected.reason})
        if o.delivered and o.stanza is not None and o.anchor is not None and o.report is not None:
            (directory / f"{stem}.xml").write_bytes(o.stanza + b"\n")
            (directory / f"{stem}.anchor.json").write_text(json.dumps(anchor_to_json(o.anchor), indent=2) + "\n")
            expected["now"] = o.received_at
        elif o.stanza is not None:
            (directory / f"{stem}.error.xml").write_bytes(o.stanza + b"\n")
            if o.error:
                expected["error"] = o.error
            if o.refusal is not None and o.anchor is not None:
                # the sender's check of the refusal's own path (XEP: Requiring Verified Hops)
                (directory / f"{stem}.anchor.json").write_text(json.dumps(anchor_to_json(o.anchor), indent=2) + "\n")
                expected["now"] = o.received_at
                expected["refusal"] = o.refusal.to_json()
        (directory / f"{stem}.expected.json").write_text(json.dumps(expected, indent=2) + "\n")


def cmd_verify(args: argparse.Namespace) -> int:
    try:
        now = _now_option(args.now)
        anchor, max_skew = load_anchor(args.anchor)
        path = FsPath(args.stanza)
        try:
            if path.stat().st_size > MAX_STANZA_BYTES + 1024:
                raise LimitExceeded(f"file is {path.stat().st_size} bytes; a stanza may be at most "
                                    f"{MAX_STANZA_BYTES}")
            data = path.read_bytes()
        except OSError as exc:
            raise _FileProblem(f"cannot read it: {exc.strerror}") from None
        skew = args.max_skew if args.max_skew is not None else max_skew
        # a refusal (an error naming the hop that refused a message) is checked from its refuser
        check = verify_refusal_stanza if _is_refusal(data) else verify_stanza
        report = check(data, anchor, now, max_skew=skew)
    except _OptionProblem as exc:
        print(f"trustpath verify: {exc}", file=sys.stderr)
        return 2
    except InvalidAnchor as exc:
        print(f"trustpath verify: --anchor {args.anchor}: {exc}", file=sys.stderr)
        return 2
    except (TrustPathError, _FileProblem) as exc:
        print(f"trustpath verify: {args.stanza}: {exc}", file=sys.stderr)
        return 2
    if args.json:
        out = report.to_json()
        out["now"] = format_time(now)
        print(json.dumps(out, indent=2))
    else:
        _console().print(report_view(report))
    return 0


def _is_refusal(data: bytes) -> bool:
    try:
        return refuser_of(find_message(parse_stanza(data)).message) is not None
    except TrustPathError:
        return False  # verify_stanza says what is wrong with it


class _FileProblem(Exception):
    pass


class _OptionProblem(Exception):
    pass


def _now_option(text: str | None) -> datetime:
    if text is None:
        return datetime.now(UTC)
    try:
        now = parse_time(text)
    except TrustPathError:
        raise _OptionProblem(f"--now {text!r} is not a time like 2026-11-25T09:00:00Z") from None
    if now.year >= 9000:
        raise _OptionProblem("--now must be a time before the year 9000")
    return now


def _skew(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 86_400:
        raise argparse.ArgumentTypeError("the skew is from 0 to 86400 seconds")
    return value


def _rounds(text: str) -> int:
    value = int(text)
    if value < 250:
        raise argparse.ArgumentTypeError("at least 250 rounds (5 batches of 50), for a meaningful median")
    return value


def cmd_bench(args: argparse.Namespace) -> int:
    if args.live:
        return _live_bench(args)
    from .tools.bench import run_bench

    figures = run_bench(rounds=args.rounds)
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        console = _console()
        console.print(f"create one record: {figures['create_median_us']:.1f} µs median; "
                      f"one raw Ed25519 signature: {figures['sign_median_us']:.1f} µs "
                      f"→ ratio {figures['create_ratio']:.2f} (target ≤ 1.20)")
        console.print(f"check a {figures['hops']}-hop path (decode + verify): {figures['verify_median_us']:.1f} µs "
                      f"median; {figures['hops']} raw verifications: {figures['raw_verify_median_us']:.1f} µs "
                      f"→ ratio {figures['verify_ratio']:.2f} (target ≤ 1.20)")
        console.print(f"the same from the stanza's bytes (XML parsing included): "
                      f"{figures['verify_from_bytes_median_us']:.1f} µs → ratio {figures['verify_from_bytes_ratio']:.2f}")
        console.print(f"bytes added per hop: {figures['bytes_per_hop']:.0f} (target ≤ 250); "
                      f"medians of {figures['samples']} batches of {figures['batch']}")
    return 0


def _live_bench(args: argparse.Namespace) -> int:
    import asyncio

    from .testbed.harness.prosody import ProsodyMissing
    from .tools.livebench import run_live_bench

    try:
        figures = asyncio.run(run_live_bench(args.messages, args.batch))
    except ProsodyMissing as exc:
        print(f"trustpath bench: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        console = _console()
        for name, label in (("on", "with mod_trust_path on both servers"), ("off", "without it")):
            console.print(f"{label:>36}: {figures[f'{name}_msgs_per_s']:8.1f} msg/s, latency median "
                          f"{figures[f'{name}_median_ms']:.2f} ms, p99 {figures[f'{name}_p99_ms']:.2f} ms")
        console.print(f"throughput ratio (on / off): {figures['throughput_ratio']:.2f} (goal ≥ 0.75); "
                      f"{figures['messages']} messages each, batches of {figures['batch']}, alternating")
    return 0


def cmd_faults(args: argparse.Namespace) -> int:
    import asyncio
    import logging

    from .testbed.harness.faults import FAULTS, SLACK, no_worse, run_faults
    from .testbed.harness.prosody import ProsodyMissing

    unknown = [name for name in args.fault or () if name not in FAULTS]
    if unknown:
        print(f"trustpath faults: no fault named {', '.join(unknown)}; the faults are {', '.join(FAULTS)}",
              file=sys.stderr)
        return 2
    # slixmpp leaves a filter task pending when a client disconnects; asyncio would log each one
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    try:
        results = asyncio.run(run_faults(tuple(args.fault or FAULTS), messages=args.messages, stall=args.stall))
    except ProsodyMissing as exc:
        print(f"trustpath faults: {exc}", file=sys.stderr)
        return 2
    problems = no_worse(results)
    if args.json:
        print(json.dumps({"results": [r.to_json() for r in results], "worse_with_module": problems}, indent=2))
    else:
        table = Table(title=f"{args.messages} messages alice → bob per run; "
                      "the fault strikes after the first quarter")
        for column in ("fault", "module", "arrived", "lost", "of them bounced", "duplicated", "misjudged", "note"):
            table.add_column(column, justify="left" if column in ("fault", "note") else "right")
        for r in results:
            judged = f"{r.misjudged}" + (f" ({', '.join(f'{n}× {v}' for v, n in r.misjudged_as().items())})"
                                         if r.misjudged else "")
            keys = ("; a.example signed " + " then ".join(f"{n} under {key}…" for key, n in r.a_keys.items())
                    if len(r.a_keys) > 1 else "")  # in the order first seen: the old key, then the new
            table.add_row(r.fault, "on" if r.module else "off", str(len(r.arrivals)), str(r.lost), str(r.bounced),
                          str(r.duplicated), judged, r.note + keys)
        console = _console()
        console.print(table)
        console.print("with the module, no fault did worse than without (a restart may lose "
                      f"{SLACK['restart']} more: what is in flight at that instant)" if not problems
                      else "worse with the module: " + "; ".join(problems))
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="trustpath", description="End-to-end trust-path reporting for XMPP "
                                     "(urn:xmpp:trust-path:1): reference implementation.")
    sub = parser.add_subparsers(dest="command", required=True)

    def scenario_options(command: argparse.ArgumentParser) -> None:
        command.add_argument("--json", action="store_true", help="machine-readable output")
        command.add_argument("--emit", metavar="DIR", help="write each received stanza, anchor and expected verdict")
        command.add_argument("--scenario", type=int, action="append", metavar="N",
                             help="run only scenario N (repeatable)")

    demo = sub.add_parser("demo", help="run the brief's scenarios on the embedded federation",
                          description="Run the scenarios on the embedded federation (in-process clients and "
                          "servers, real TLS over memory) and show each verdict; exit status 0 only when every "
                          "scenario gives the verdict the brief requires.")
    scenario_options(demo)
    demo.add_argument("--fixed", action="store_true",
                      help="fixed keys and clock (the published test vectors) instead of fresh ones")
    demo.set_defaults(func=cmd_demo)

    ver = sub.add_parser("verify", help="check one received stanza against an anchor",
                         description="Check one received stanza against an anchor and show the verdict; exit "
                         "status 2, with one line naming the problem, for a stanza that cannot be read.")
    ver.add_argument("stanza", help="the stanza as received (a message, carbon or archive result)")
    ver.add_argument("--anchor", required=True, help="JSON: the recipient's server keys and its own view")
    ver.add_argument("--json", action="store_true", help="machine-readable output")
    ver.add_argument("--now", help="the time to verify at, like 2026-11-25T09:00:00Z (default: now)")
    ver.add_argument("--max-skew", type=_skew, help=f"allowed clock skew in seconds (default: the anchor's, "
                     f"else {DEFAULT_MAX_SKEW})")
    ver.set_defaults(func=cmd_verify)

    harness = sub.add_parser("harness", help="run the scenarios live: two Prosody servers, slixmpp clients",
                             description="Run the scenarios live: two Prosody 0.12 servers with mod_trust_path, "
                             "the harness's own DNS, slixmpp clients with the trust_path plugin.")
    scenario_options(harness)
    harness.add_argument("--keep", action="store_true",
                         help="leave the federation running for a person and print how to connect")
    harness.add_argument("--intercept", action="store_true",
                         help="with --keep: put a man in the middle with CA-valid certificates on the s2s hop")
    harness.set_defaults(func=cmd_harness)

    bench = sub.add_parser("bench", help="measure record cost against raw Ed25519, and bytes per hop; with "
                           "--live, live throughput with the module and without",
                           description="Measure what records cost against raw Ed25519 and the bytes each hop "
                           "adds; with --live, messages per second through two live federations, module on and "
                           "off.")
    bench.add_argument("--json", action="store_true", help="machine-readable output")
    bench.add_argument("--rounds", type=_rounds, default=2000,
                       help="timed repetitions per figure (≥ 250, default 2000)")
    bench.add_argument("--live", action="store_true",
                       help="messages per second through two live federations, module on and off")
    bench.add_argument("--messages", type=int, default=1000, help="with --live: messages per federation (default 1000)")
    bench.add_argument("--batch", type=int, default=50, help="with --live: messages per alternating batch (default 50)")
    bench.set_defaults(func=cmd_bench)

    faults = sub.add_parser("faults", help="cut, stall, restart and key rotation on a live federation, with the "
                            "module and without: lost, duplicated and misjudged messages side by side")
    faults.add_argument("--fault", action="append", metavar="NAME",
                        help="run only this fault: cut, stall, restart or rotate (repeatable)")
    faults.add_argument("--messages", type=int, default=200, help="messages per run (default 200)")
    faults.add_argument("--stall", type=float, default=5.0,
                        help="seconds the 'stall' fault stops b.example (default 5)")
    faults.add_argument("--json", action="store_true", help="machine-readable output")
    faults.set_defaults(func=cmd_faults)

    sub.add_parser("poezio", add_help=False,
                   help="run poezio with the trust_path plugin loaded before its first connection "
                        "(every further argument is poezio's)")

    arguments = sys.argv[1:] if argv is None else argv
    if arguments[:1] == ["poezio"]:
        from .client.poezio.launch import main as poezio_main

        return poezio_main(arguments[1:])
    args = parser.parse_args(arguments)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
