"""Delivery reports (XEP: Delivery Reports, rules 37 and 38): the recipient side's report of a
message's path, signed into its delivery receipt and judged by the sender's client."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from lxml import etree

from conftest import ROOT, VECTORS, load_json
from trustpath.core.anchor import load_anchor
from trustpath.core.codec import find_message, message_fields, parse_stanza, serialize
from trustpath.core.delivery import DeliveryReport, ReportedHop, decode_report, delivery_of, find_report, \
    judge_delivery, report_element, report_for
from trustpath.core.errors import LimitExceeded, MalformedStanza
from trustpath.core.model import NS, Strength, Verdict
from trustpath.core.receive import verify_stanza
from trustpath.core.signing import payload_input, signing_input
from trustpath.testbed.sim.federation import ClientNode, Federation, Inbound, Outbound
from trustpath.testbed.sim.receipts import RECEIPT_CASES, run_receipt
from trustpath.testbed.sim.scenarios import ALICE, BOB
from trustpath.core.timefmt import parse_time
from trustpath.core.verify import Report

SCHEMA = etree.XMLSchema(etree.parse(str(ROOT / "schemas" / "trust-path.xsd")))
RECEIPT_VECTORS = sorted((VECTORS / "receipts").glob("*.expected.json"))
SIG = "yMJf6aEGeLMug35bPWPdhmliLYErKHZm8dPUaZoYhxaGMu3Yui608vyvlhHYGe42zKJXP2Sb7NhEgsdkzui9BA=="
OTHER_SIG = "A" * 85 + "Q=="
HOP = "<hop from='a' to='b' strength='ca' result='pass'/>"


def _vector(name: str) -> tuple[bytes, dict]:
    return (VECTORS / "receipts" / f"{name}.xml").read_bytes().strip(), \
        load_json(VECTORS / "receipts" / f"{name}.expected.json")


def _receipt_report(data: bytes, name: str) -> Report:
    anchor, skew = load_anchor(VECTORS / "receipts" / f"{name}.anchor.json")
    return verify_stanza(data, anchor, parse_time(_vector(name)[1]["now"]), max_skew=skew)


def _hop(strength: Strength, label: str = "H1") -> ReportedHop:
    return ReportedHop(label=label, role="s2s", sender="a.example", receiver="b.example", strength=strength,
                       result="pass")


def _reported(verdict: Verdict, origin: str | None = SIG) -> DeliveryReport:
    strength = {Verdict.TRUSTED: Strength.STRONG, Verdict.WEAK: Strength.CA, Verdict.UNKNOWN: Strength.UNKNOWN,
                Verdict.UNTRUSTED: Strength.FAILED}[verdict]
    return DeliveryReport("m1", verdict, origin, (_hop(strength),))


def _receipt(verdict: Verdict) -> Report:
    return Report(verdict=verdict, hops=(), weakest=(), records=())


# --- the embedded federation and the published vectors -------------------------------------------

@pytest.mark.parametrize("case", RECEIPT_CASES, ids=lambda c: c.name)
def test_each_receipt_case_gives_what_the_sender_may_show(case):
    outcome = run_receipt(case)
    assert outcome.ok, outcome.problems
    assert outcome.delivery is not None and outcome.delivery.verdict is case.verdict


@pytest.mark.parametrize("expected_file", RECEIPT_VECTORS, ids=lambda p: p.name.split(".")[0])
def test_receipt_vectors_give_their_verdicts(expected_file):
    name = expected_file.name.split(".")[0]
    data, expected = _vector(name)
    receipt = _receipt_report(data, name)
    assert receipt.verdict.value == expected["receipt"]
    delivery = delivery_of(data, receipt, {(expected["sent_to"], expected["sent_id"]): expected["sent_origin"]})
    assert delivery is not None
    assert delivery.reported.verdict.value == expected["reported"]
    assert (delivery.verdict.value, delivery.limited_by) == (expected["verdict"], expected["limited_by"])


def test_receipt_vectors_cover_every_way_a_report_is_bounded():
    limited = {load_json(f)["limited_by"] for f in RECEIPT_VECTORS}
    assert limited == {None, "receipt", "origin"}
    assert {load_json(f)["verdict"] for f in RECEIPT_VECTORS} == {"trusted", "weak", "untrusted"}


def test_report_element_is_valid_against_the_schema():
    data, _ = _vector("delivered-h2-ca-only")
    element = find_report(find_message(parse_stanza(data)).message)
    built = report_element(decode_report(element))
    assert SCHEMA.validate(etree.fromstring(serialize(built))), SCHEMA.error_log.last_error
    assert serialize(built) == serialize(etree.fromstring(etree.tostring(element)))


# --- rule 37: what the recipient's client puts into the report -------------------------------------

def test_report_gives_the_recipients_verdict_hops_id_and_the_senders_signature():
    case = next(c for c in RECEIPT_CASES if c.name == "delivered-h2-ca-only")
    with Federation() as fed:
        ss, rs = fed.server("a.example"), fed.server("b.example")
        ss.outbound["b.example"] = Outbound("pkix")
        rs.inbound["a.example"] = Inbound("pkix")
        alice, bob = ClientNode(fed, ALICE, ss), ClientNode(fed, BOB, rs)
        alice.connect()
        bob.connect()
        sent = alice.send("bob@b.example", "how did this travel?")
        bob.acknowledge(bob.inbox[-1])
        received = bob.inbox[-1].report
        stanza = alice.inbox[-1].stanza
    report = decode_report(find_report(find_message(parse_stanza(stanza)).message))
    assert case.reported is Verdict.WEAK
    assert report.for_id == sent and report.origin == alice.sent[("bob@b.example", sent)]
    assert report.verdict is received.verdict is Verdict.WEAK
    assert [(h.label, h.sender, h.receiver, h.strength, h.result, h.reason, h.key_source, h.time)
            for h in report.hops] == \
        [(h.label, h.sender, h.receiver, h.strength, h.result, h.reason, h.key_source, h.time)
         for h in received.hops]
    assert report.weakest == received.weakest == ("H2",)
    assert report.hops[1].method == received.hops[1].method == "pkix / pkix"


def test_report_has_no_origin_when_the_first_record_is_not_the_senders():
    with Federation() as fed:
        ss, rs = fed.server("a.example"), fed.server("b.example")
        alice = ClientNode(fed, ALICE, ss, takes_part=False)  # the sender's client does not sign
        bob = ClientNode(fed, BOB, rs)
        alice.connect()
        bob.connect()
        alice.send("bob@b.example", "unsigned by my client")
        bob.acknowledge(bob.inbox[-1])
        stanza = alice.inbox[-1].stanza
    report = decode_report(find_report(find_message(parse_stanza(stanza)).message))
    assert report.origin is None
    assert report.hops[0].sender == "alice@a.example/phone"


# --- rule 4: the report is signed (a covered payload) ------------------------------------------

@pytest.mark.parametrize("edit", [
    (b'verdict="weak"', b'verdict="trusted"'),
    (b'strength="ca"', b'strength="strong"'),
    (b' reason="ca-only"', b''),
    (b'<hop from="a.example"', b'<hop extra="1" from="a.example"'),
], ids=["verdict", "strength", "reason-removed", "attribute-added"])
def test_a_report_changed_after_signing_is_tampered(edit):
    data, expected = _vector("delivered-h2-ca-only")
    assert edit[0] in data
    changed = data.replace(*edit)
    receipt = _receipt_report(changed, "delivered-h2-ca-only")
    assert receipt.verdict is Verdict.UNTRUSTED
    assert any(h.reason == "tampered" for h in receipt.hops)
    assert _receipt_report(data, "delivered-h2-ca-only").verdict is Verdict.TRUSTED


def test_a_report_removed_after_signing_is_tampered():
    data, _ = _vector("delivered-h2-ca-only")
    root = parse_stanza(data)
    root.remove(find_report(root))
    receipt = _receipt_report(serialize(root), "delivered-h2-ca-only")
    assert receipt.verdict is Verdict.UNTRUSTED
    assert any(h.reason == "tampered" for h in receipt.hops)


def test_signing_input_covers_the_report_exactly():
    message = parse_stanza(
        f"<message xmlns='jabber:client' from='b@b/r' to='a@a/r' id='r1'><report xmlns='{NS}' verdict='weak' "
        f"for='m1'><hop to='b' from='a' strength='ca'/><hop from='b' to='c'/></report></message>".encode())
    fields = message_fields(message)
    assert payload_input(fields, ["report"]) == ("report\0report.for\0m1\0report.verdict\0weak\0hop\0001\0hop.from\0a\0"
                                                 "hop.strength\0ca\0hop.to\0b\0hop\0002\0hop.from\0b\0hop.to\0c\0")
    # a report is among the default payloads: every record covers it unless its h= says otherwise
    assert "report.verdict\0weak\0" in signing_input(fields, "", "k=x").decode()


@pytest.mark.parametrize("body,error", [
    (f"<report xmlns='{NS}' for='m1'/><report xmlns='{NS}' for='m1'/>", MalformedStanza),
    (f"<report xmlns='{NS}' for='m1'><hop xmlns:x='urn:x' x:a='1'/></report>", MalformedStanza),
    (f"<report xmlns='{NS}' for='m1' xml:lang='en'/>", MalformedStanza),
    (f"<report xmlns='{NS}' for='m1'>{'<hop/>' * 17}</report>", LimitExceeded),
], ids=["two-reports", "namespaced-hop-attribute", "xml-lang", "17-hops"])
def test_a_report_that_cannot_be_signed_makes_the_message_unattestable(body, error):
    message = parse_stanza(f"<message xmlns='jabber:client' from='b@b/r' to='a@a/r' id='r1'>{body}</message>".encode())
    with pytest.raises(error):
        message_fields(message)


# --- Delivery Reports: a report not for this receipt, or not consistent, is not shown -------------

def test_a_report_for_another_message_than_the_receipt_acknowledges_is_refused():
    data, expected = _vector("delivered-h2-ca-only")
    receipt = _receipt_report(data, "delivered-h2-ca-only")
    moved = data.replace(f'<received xmlns="urn:xmpp:receipts" id="{expected["sent_id"]}"'.encode(),
                         b'<received xmlns="urn:xmpp:receipts" id="another"')
    assert moved != data
    with pytest.raises(MalformedStanza, match="acknowledges"):
        delivery_of(moved, receipt, {(expected["sent_to"], expected["sent_id"]): expected["sent_origin"]})


@pytest.mark.parametrize("report,message", [
    (f"<report xmlns='{NS}' for='m1' verdict='trusted'><hop from='a' to='b' strength='ca' result='pass'/></report>",
     "its hops give 'weak'"),
    (f"<report xmlns='{NS}' for='m1' verdict='weak'/>", "at least one"),
    (f"<report xmlns='{NS}' verdict='weak'><hop from='a' to='b' strength='ca' result='pass'/></report>", "'for'"),
    (f"<report xmlns='{NS}' for='m1' verdict='fine'><hop from='a' to='b' strength='ca' result='pass'/></report>",
     "'verdict'"),
    (f"<report xmlns='{NS}' for='m1' verdict='weak' colour='red'><hop from='a' to='b' strength='ca' "
     "result='pass'/></report>", "unknown attribute"),
    (f"<report xmlns='{NS}' for='m1' verdict='weak'><hop from='a' to='b' strength='medium' result='pass'/></report>",
     "'strength'"),
    (f"<report xmlns='{NS}' for='m1' verdict='weak'><hop from='a' to='b' strength='ca' result='pass' "
     "reason='CA ONLY'/></report>", "'reason'"),
    (f"<report xmlns='{NS}' for='m1' verdict='weak' origin='short'><hop from='a' to='b' strength='ca' "
     "result='pass'/></report>", "'origin'"),
    (f"<report xmlns='{NS}' for='m1' verdict='weak'>{HOP * 17}</report>", "limit"),
], ids=["inconsistent-verdict", "no-hops", "no-for", "bad-verdict", "unknown-attribute", "bad-strength",
        "bad-reason", "bad-origin", "17-hops"])
def test_a_malformed_report_is_refused_with_a_clear_message(report, message):
    with pytest.raises(MalformedStanza, match=message):
        decode_report(etree.fromstring(report))


# --- rule 38: what the sender may show -------------------------------------------------------------

def test_a_report_about_another_copy_is_untrusted():
    delivery = judge_delivery(_reported(Verdict.TRUSTED, origin=OTHER_SIG), _receipt(Verdict.TRUSTED),
                              sent_origin=SIG)
    assert (delivery.verdict, delivery.limited_by) == (Verdict.UNTRUSTED, "origin")
    missing = judge_delivery(_reported(Verdict.TRUSTED, origin=None), _receipt(Verdict.TRUSTED), sent_origin=SIG)
    assert missing.verdict is Verdict.UNTRUSTED


def test_without_an_own_record_there_is_no_origin_to_compare():
    delivery = judge_delivery(_reported(Verdict.WEAK, origin=None), _receipt(Verdict.TRUSTED), sent_origin=None)
    assert (delivery.verdict, delivery.limited_by) == (Verdict.WEAK, None)


@pytest.mark.parametrize("reported,receipt,shown,limited_by", [
    (Verdict.TRUSTED, Verdict.TRUSTED, Verdict.TRUSTED, None),
    (Verdict.TRUSTED, Verdict.WEAK, Verdict.WEAK, "receipt"),
    (Verdict.WEAK, Verdict.UNKNOWN, Verdict.UNKNOWN, "receipt"),
    (Verdict.TRUSTED, Verdict.UNTRUSTED, Verdict.UNTRUSTED, "receipt"),
    (Verdict.UNTRUSTED, Verdict.TRUSTED, Verdict.UNTRUSTED, None),
    (Verdict.UNKNOWN, Verdict.UNTRUSTED, Verdict.UNTRUSTED, "receipt"),
    (Verdict.UNTRUSTED, Verdict.UNKNOWN, Verdict.UNTRUSTED, None),
])
def test_the_shown_verdict_is_the_lower_of_report_and_receipt(reported, receipt, shown, limited_by):
    delivery = judge_delivery(_reported(reported), _receipt(receipt), sent_origin=SIG)
    assert (delivery.verdict, delivery.limited_by) == (shown, limited_by)


ORDER = [Verdict.UNTRUSTED, Verdict.UNKNOWN, Verdict.WEAK, Verdict.TRUSTED]


@given(st.sampled_from(ORDER), st.sampled_from(ORDER), st.sampled_from([SIG, OTHER_SIG, None]),
       st.sampled_from([SIG, None]))
def test_never_more_than_the_report_or_the_receipt_path(reported, receipt, origin, sent):
    delivery = judge_delivery(_reported(reported, origin), _receipt(receipt), sent_origin=sent)
    assert (delivery.reported.verdict, delivery.receipt.verdict) == (reported, receipt)
    if sent is not None and origin != sent:
        assert (delivery.verdict, delivery.limited_by) == (Verdict.UNTRUSTED, "origin")
    else:
        # exactly the lower of the two, and named as the receipt's limit only when it is lower
        assert delivery.verdict is min(reported, receipt, key=ORDER.index)
        assert delivery.limited_by == ("receipt" if ORDER.index(receipt) < ORDER.index(reported) else None)


def test_report_for_keeps_the_views_methods():
    data, _ = _vector("delivered-h2-ca-only")
    report = _receipt_report(data, "delivered-h2-ca-only")
    reported = report_for(report, "r1", None)
    assert [h.method for h in reported.hops] == [h.method for h in report.hops] == \
        ["pin / tls-server-end-point", "pin / pin", "pin / tls-server-end-point"]


def _sent(expected: dict) -> dict:
    return {(expected["sent_to"], expected["sent_id"]): expected["sent_origin"]}


def test_a_receipt_from_someone_the_message_was_not_sent_to_is_at_best_unknown():
    """Carol's receipt, with a trusted report and Alice's own 'origin', for Alice's message to Bob."""
    data, expected = _vector("delivered-all-pinned")
    receipt = _receipt_report(data, "delivered-all-pinned")
    assert delivery_of(data, receipt, _sent(expected)).verdict is Verdict.TRUSTED
    elsewhere = {("carol@c.example", expected["sent_id"]): expected["sent_origin"]}
    delivery = delivery_of(data, receipt, elsewhere)
    assert (delivery.verdict, delivery.limited_by) == (Verdict.UNKNOWN, "unbound")


def test_a_report_for_an_id_this_client_does_not_remember_is_at_best_unknown():
    data, expected = _vector("delivered-all-pinned")
    delivery = delivery_of(data, _receipt_report(data, "delivered-all-pinned"), {})
    assert (delivery.verdict, delivery.limited_by) == (Verdict.UNKNOWN, "unbound")
    weak, weak_expected = _vector("delivered-h2-ca-only")
    lower = delivery_of(weak, _receipt_report(weak, "delivered-h2-ca-only"), {})
    assert lower.verdict is Verdict.UNKNOWN  # never higher than unknown, and never higher than reported


def test_a_message_sent_without_an_record_has_no_origin_to_compare():
    data, expected = _vector("delivered-h2-ca-only")
    delivery = delivery_of(data, _receipt_report(data, "delivered-h2-ca-only"),
                           {(expected["sent_to"], expected["sent_id"]): None})
    assert (delivery.verdict, delivery.limited_by) == (Verdict.WEAK, None)


def test_a_report_outside_a_receipt_acknowledges_nothing():
    data, expected = _vector("delivered-all-pinned")
    root = parse_stanza(data)
    root.remove(root.find("{urn:xmpp:receipts}received"))
    assert delivery_of(serialize(root), _receipt_report(data, "delivered-all-pinned"), _sent(expected)) is None


def test_unsigned_content_inside_a_report_is_ignored_not_fatal():
    """Only the attributes and the <hop/> children are signed: text or another element added on
    the way neither breaks the signatures nor hides the report."""
    data, expected = _vector("delivered-h2-ca-only")
    padded = data.replace(b"<hop ", b"added on the way<x xmlns='urn:x'/><hop ", 1)
    assert padded != data
    receipt = _receipt_report(padded, "delivered-h2-ca-only")
    assert receipt.verdict is Verdict.TRUSTED
    delivery = delivery_of(padded, receipt, _sent(expected))
    assert delivery.verdict is Verdict.WEAK and delivery.reported.weakest == ("H2",)


@pytest.mark.parametrize("name,sent,badge", [
    ("delivered-h2-ca-only", True, "[delivered ◐ weak: H2 a.example → b.example, checked by a CA only]"),
    ("receipt-h2-ca-only", True,
     "[delivered ◐ weak: the receipt came back over H2 b.example → a.example, checked by a CA only]"),
    ("report-for-another-copy", True, "[delivered ✘ untrusted: the report is about another copy of this message]"),
    ("delivered-all-pinned", False, "[delivered ? unknown: not a message this device remembers sending to them]"),
])
def test_the_sent_message_badge_says_whose_word_it_is_and_what_limits_it(name, sent, badge):
    from trustpath.client.poezio.text import delivery_badge

    data, expected = _vector(name)
    delivery = delivery_of(data, _receipt_report(data, name), _sent(expected) if sent else {})
    assert delivery_badge(delivery) == badge
