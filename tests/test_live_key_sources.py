"""Every key source of the XEP's "Keys" section that a server uses, live: b.example learns
a.example's record key from DNSSEC-validated ``_trust-path`` TXT records (key source
``dnssec``), from its operator's configuration (``config``), or over its own CA-checked link
(``s2s-pkix``), or from its POSH document over HTTPS (``posh``), and the verdict never claims
more than the source supports.

Two real Prosody servers, real s2s TLS, the harness's DNS server (a DNSSEC-signed zone where the
setup says so; libunbound validates it with the zone's trust anchor), slixmpp clients with the
trust_path plugin.  Marked ``live`` (tests/conftest.py); the servers listen on
TRUSTPATH_LOOPBACK's addresses: ``TRUSTPATH_LOOPBACK=127.0.2 pytest tests/test_live_key_sources.py``.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import require_prosody
from trustpath.core.keys import SigningKey
from trustpath.core.model import KEY_SOURCE_STRENGTH, HopResult, KeySource, Reason, Strength, Verdict
from trustpath.core.verify import HopReport, Report
from trustpath.testbed.harness.scenarios import Live, Setup, next_event, settle, world_for
from trustpath.testbed.scenarios import ALICE, BOB


@pytest.fixture(autouse=True)
def _prosody() -> None:
    require_prosody()


async def _report(setup: Setup, body: str = "Which key source?") -> tuple[Report, list[str]]:
    """Send one message from alice to bob over a fresh federation ``setup`` describes; bob's
    report and b.example's log lines about a.example's keys."""
    world = await asyncio.to_thread(world_for, setup)
    live = Live(world)
    try:
        alice = await live.client(ALICE)
        bob = await live.client(BOB)
        alice.send("bob@b.example", body)
        event = await next_event(bob.verdicts, 20)
        logs = world.servers["b.example"].log_lines("a.example")
        return event.report, logs
    finally:
        await live.close()
        await settle()
        await asyncio.to_thread(world.close)


def _run(setup: Setup) -> tuple[Report, list[str]]:
    return asyncio.run(_report(setup))


def _h2(report: Report) -> HopReport:
    return next(h for h in report.hops if h.label == "H2")


def _shown(report: Report) -> str:
    return f"{report.verdict.value} {[h.to_json() for h in report.hops]} {list(report.notes)}"


#: b.example checks a.example by the CA only (the zone is signed, but a.example has no TLSA)
CA_ONLY = Setup(s2s_pins=False, dane=True, a_tlsa=False)


def test_validated_txt_records_give_key_source_dnssec_where_the_link_is_ca_only():
    report, _ = _run(replace(CA_ONLY, txt_keys="real"))
    h2 = _h2(report)
    assert h2.result is HopResult.PASS and h2.key_source == "dnssec", _shown(report)
    assert KEY_SOURCE_STRENGTH[KeySource("dnssec")] is Strength.STRONG
    # weak only because of b.example's own view of the inbound link, not because of the key source
    assert report.verdict is Verdict.WEAK and h2.server_view is not None and h2.server_view.text().startswith("pkix,pass"), \
        _shown(report)


def test_without_txt_records_the_same_link_gives_key_source_s2s_pkix():
    report, _ = _run(CA_ONLY)
    h2 = _h2(report)
    assert h2.result is HopResult.PASS and h2.key_source == "s2s-pkix" and report.verdict is Verdict.WEAK, _shown(report)


def test_dnssec_keys_do_not_cap_the_path():
    # b.example pins a.example's certificate (the inbound H2), but learns its record key from DNSSEC
    report, _ = _run(replace(CA_ONLY, b_pins_a=True, txt_keys="real"))
    h2 = _h2(report)
    assert report.verdict is Verdict.TRUSTED and h2.key_source == "dnssec", _shown(report)


def test_a_validated_txt_record_naming_another_key_fails_the_chain():
    # a.example's disco#info (over b.example's CA-checked link) still names its real key: DNSSEC wins
    report, logs = _run(replace(CA_ONLY, txt_keys="wrong"))
    h2 = _h2(report)
    assert report.verdict is Verdict.UNTRUSTED and h2.result is HopResult.FAIL and h2.reason is Reason.KEY_UNKNOWN, \
        _shown(report)
    assert any("chain fail (key-unknown)" in line for line in logs), logs


def test_txt_records_the_resolver_did_not_validate_are_ignored():
    # an unsigned zone: the wrong key in TXT is ignored, the key comes over the CA-checked link
    report, logs = _run(Setup(s2s_pins=False, txt_keys="wrong"))
    h2 = _h2(report)
    assert report.verdict is Verdict.WEAK and h2.result is HopResult.PASS and h2.key_source == "s2s-pkix", _shown(report)
    assert any("_trust-path.a.example TXT: not DNSSEC-validated (insecure); ignored" in line for line in logs), logs


def _configured(tmp_path: Path, listed: str | None = None) -> Setup:
    """a.example signs with a key from a file; b.example's operator lists ``listed`` (by default
    that key) as a.example's key.  The servers pin each other's certificates (so that the path can
    be trusted at all): the configured key takes the place of one fetched over the pinned link."""
    key = SigningKey.generate()
    key_file = tmp_path / "a-record.hex"
    key_file.write_text(key.seed().hex() + "\n")
    key_file.chmod(0o600)
    return Setup(options=(
        ("a.example", "trust_path_key_file", str(key_file)),
        ("b.example", "trust_path_peer_keys", {"a.example": [listed or key.public]})))


def test_configured_peer_keys_give_key_source_config(tmp_path):
    report, _ = _run(_configured(tmp_path))
    h2 = _h2(report)
    assert report.verdict is Verdict.TRUSTED and h2.key_source == "config", _shown(report)


def test_a_configured_key_the_peer_does_not_hold_fails_the_chain(tmp_path):
    report, _ = _run(_configured(tmp_path, SigningKey.generate().public))
    h2 = _h2(report)
    assert report.verdict is Verdict.UNTRUSTED and h2.result is HopResult.FAIL and h2.reason is Reason.KEY_UNKNOWN, \
        _shown(report)


# --- POSH: https://a.example/.well-known/posh/trust-path.json ------------------------------

#: b.example checks a.example by the CA only, and a.example serves its POSH document
POSH = Setup(s2s_pins=False)


def test_a_posh_document_gives_key_source_posh():
    report, logs = _run(replace(POSH, posh_keys="real"))
    h2 = _h2(report)
    assert h2.result is HopResult.PASS and h2.key_source == "posh", _shown(report)
    # POSH is as good as a CA (an attacker with a CA-valid certificate can serve it): weak
    assert KEY_SOURCE_STRENGTH[KeySource("posh")] is Strength.CA
    assert report.verdict is Verdict.WEAK, _shown(report)


def test_a_posh_document_naming_another_key_fails_the_chain():
    # a.example's disco#info (over b.example's CA-checked link) names its real key: POSH wins
    report, logs = _run(replace(POSH, posh_keys="wrong"))
    h2 = _h2(report)
    assert report.verdict is Verdict.UNTRUSTED and h2.result is HopResult.FAIL and h2.reason is Reason.KEY_UNKNOWN, \
        _shown(report)
    assert any("chain fail (key-unknown)" in line for line in logs), logs


def test_a_posh_server_whose_certificate_names_another_domain_is_ignored():
    report, logs = _run(replace(POSH, posh_keys="other-name"))
    h2 = _h2(report)
    assert report.verdict is Verdict.WEAK and h2.result is HopResult.PASS and h2.key_source == "s2s-pkix", \
        _shown(report)
    assert any("a.example: no POSH document (certificate-verify-failed)" in line for line in logs), logs


def test_a_posh_document_over_64_kb_is_ignored():
    # the document comes from anyone who can serve the domain's name: it may not make the server
    # hold megabytes (net.http would take 10 MB by default)
    report, logs = _run(replace(POSH, posh_keys="oversized"))
    h2 = _h2(report)
    assert h2.key_source == "s2s-pkix" and report.verdict is Verdict.WEAK, _shown(report)
    assert any("a.example: no POSH document (content-length-limit-exceeded)" in line for line in logs), logs


def test_a_pinned_link_beats_a_posh_document():
    # the XEP's order: a key set fetched over a pinned link, else POSH
    report, _ = _run(Setup(posh_keys="wrong"))
    h2 = _h2(report)
    assert report.verdict is Verdict.TRUSTED and h2.key_source == "s2s-pin", _shown(report)
