"""``trustpath bench``: what records cost, measured side by side with raw Ed25519.

Each figure is timed in interleaved batches (ours, then the raw operation, then ours
...) so that a noisy shared machine slows both alike; the ratios are of medians.  Time is this
thread's CPU time, not the wall clock: on a shared machine the wall clock also counts the time
other processes held the core.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from datetime import timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ..core.attest import sign_record
from ..core.codec import decode_path, find_message, message_fields, parse_stanza
from ..core.keys import public_key, unb64_raw
from ..core.receive import verify_stanza
from ..core.signing import signing_input
from ..core.verify import verify
from ..testbed.harness.size import path_size

BATCH = 50


def _interleaved(ours: Callable[[], object], raw: Callable[[], object], rounds: int) -> tuple[float, float]:
    """Median microseconds per call of ``ours`` and ``raw``, timed in alternating batches."""
    a: list[float] = []
    b: list[float] = []
    for _ in range(max(1, rounds // BATCH)):
        for fn, out in ((ours, a), (raw, b)):
            start = time.thread_time_ns()
            for _ in range(BATCH):
                fn()
            out.append((time.thread_time_ns() - start) / BATCH / 1000)
    return statistics.median(a), statistics.median(b)


def run_bench(rounds: int = 2000) -> dict[str, float | int]:
    from ..testbed.sim.scenarios import SCENARIOS, VECTOR_SEED, VECTOR_START, run_scenario

    outcome = run_scenario(SCENARIOS[0], seed=VECTOR_SEED, start=VECTOR_START)
    assert outcome.stanza is not None and outcome.anchor is not None
    stanza = outcome.stanza
    message = find_message(parse_stanza(stanza)).message
    fields = message_fields(message)
    path = decode_path(message)
    assert path is not None
    atts = path.records
    hops = len(atts)

    # creation: the sender server's record, as a server makes it
    from ..testbed.sim.tls import KeyFactory

    key = KeyFactory(VECTOR_SEED).signing_key("server/a.example/1")
    ss = atts[1]
    when = VECTOR_START + timedelta(seconds=1)
    raw_key = Ed25519PrivateKey.from_private_bytes(key.seed())
    data = signing_input(fields, atts[0].text, ss.unsigned, ss.covers)

    def create() -> object:  # what a server does: the record's text, appended to the path
        return sign_record(fields, key, signer=ss.signer, time=when, previous=atts[0].text, in_view=ss.in_view,
                           chain=ss.chain, vouch=ss.vouch, out_view=ss.out_view)

    create_us, sign_us = _interleaved(create, lambda: raw_key.sign(data), rounds)

    # checking: the whole received stanza, from bytes, against the three raw verifications
    anchor = outcome.anchor
    now = VECTOR_START + timedelta(seconds=5)
    inputs = [signing_input(fields, " ".join(a.text for a in atts[:i]), atts[i].unsigned, atts[i].covers)
              for i in range(hops)]
    raws = [(public_key(a.key), unb64_raw(a.sig, 64, "sig"), d) for a, d in zip(atts, inputs)]
    assert verify_stanza(stanza, anchor, now).verdict.value == "trusted"

    def raw_verify() -> None:
        for pub, sig, d in raws:
            pub.verify(sig, d)

    # the path check proper: the client's XMPP library has already parsed the stanza
    def check_parsed() -> object:
        return verify(message_fields(message), decode_path(message), anchor, now)

    verify_us, raw_verify_us = _interleaved(check_parsed, raw_verify, rounds)
    bytes_us, raw_verify2_us = _interleaved(lambda: verify_stanza(stanza, anchor, now), raw_verify, rounds)

    path_bytes = path_size(stanza, hops).added
    return {
        "create_ratio": round(create_us / sign_us, 3),
        "verify_ratio": round(verify_us / raw_verify_us, 3),
        "verify_from_bytes_ratio": round(bytes_us / raw_verify2_us, 3),
        "bytes_per_hop": round(path_bytes / hops, 1),  # the measure: what trust-path adds, per hop
        "create_median_us": round(create_us, 2),
        "sign_median_us": round(sign_us, 2),
        "verify_median_us": round(verify_us, 2),
        "raw_verify_median_us": round(raw_verify_us, 2),
        "verify_from_bytes_median_us": round(bytes_us, 2),
        "path_bytes": path_bytes,
        "hops": hops,
        "rounds": rounds,
        "batch": BATCH,
        "samples": max(1, rounds // BATCH),
    }
