"""Properties that hold for every input hypothesis can think of."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from lxml import etree

from trustpath import InvalidInput, MessageFields, SigningKey, Verdict, attest, verify_stanza
from trustpath.core.codec import decode_record, find_path_element, parse_stanza, serialize
from trustpath.core.model import NS, Chain, KeySource, Result, View
from trustpath.core.timefmt import format_time

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

jid_text = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=0x2FFF, blacklist_categories=("Cs",),
                                          blacklist_characters="<>&\"'"), min_size=1, max_size=24)
# what a record may hold: printable ASCII without the separators
record_value = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E, blacklist_characters=";=,"),
                       min_size=1, max_size=24)
b64_32 = st.binary(min_size=32, max_size=32).map(lambda b: base64.b64encode(b).decode())
b64_64 = st.binary(min_size=64, max_size=64).map(lambda b: base64.b64encode(b).decode().rstrip("="))
spkis = st.binary(min_size=12, max_size=12).map(lambda b: base64.b64encode(b).decode())
epochs = st.integers(0, 4_000_000_000)
times = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 1, 1)).map(
    lambda d: format_time(d.replace(tzinfo=UTC)))
methods = st.sampled_from(["pin", "tofu", "dane-ee", "dane-ta", "pkix", "dialback", "dialback-dnssec", "none",
                           "tls-unique", "tls-exporter", "tls-server-end-point", "device", "sasl", "x-new-method"])
reasons = st.from_regex(r"[a-z0-9][a-z0-9\-]{0,19}", fullmatch=True).filter(lambda r: r not in ("pass", "none"))
SIGNER = SigningKey.from_seed(b"\x05" * 32)


@st.composite
def views(draw) -> View:
    tls = draw(st.sampled_from(["1.2", "1.3", "none"]))
    result = draw(st.sampled_from(list(Result)))
    return View(draw(methods), result, tls, draw(spkis) if tls != "none" else None,
                draw(reasons) if result is Result.FAIL else None)


@st.composite
def records(draw):
    """A record as a client or a server signs it, with every optional field drawn."""
    message = MessageFields(sender="alice@a.example/phone", to="bob@b.example", id=draw(record_value),
                            bodies=((None, draw(st.text(max_size=20).filter(lambda t: "\x00" not in t))),))
    if draw(st.booleans()):
        return attest(message, SIGNER, out_view=draw(views()), time=draw(st.none() | epochs))
    chain = draw(st.sampled_from(list(Chain)))
    return attest(message, SIGNER, signer=draw(st.sampled_from(["a.example", "b.example"])), time=draw(epochs),
                  in_view=draw(views()), chain=chain, chain_reason=draw(reasons) if chain is Chain.FAIL else None,
                  vouch=draw(st.none() | st.sampled_from(list(KeySource))), removed=draw(st.none() | st.integers(1, 999)),
                  out_view=draw(views()), out_peer=(peer := draw(st.none() | st.just("bob@b.example/desk"))),
                  # only a record that delivers (with 'p') states 'st' (rule 28)
                  stored=draw(st.none() | epochs) if peer is not None else None,
                  in_peer=draw(st.none() | st.just("a.example")),
                  alg=draw(st.none() | st.just("ed25519")),
                  extra=tuple(draw(st.lists(st.tuples(st.from_regex(r"x-[a-z]{1,6}", fullmatch=True), record_value),
                                            max_size=2, unique_by=lambda kv: kv[0]))))


@SETTINGS
@given(records())
def test_a_record_decodes_to_what_was_signed(record):
    assert decode_record(record.text) == record


def _apply(data: bytes, draw) -> bytes:
    root = parse_stanza(data)
    element = find_path_element(root)
    texts = element.text.split(" ")
    kind = draw(st.sampled_from(["character", "field", "body", "message", "order", "remove"]))
    if kind == "character":
        i = draw(st.integers(0, len(texts) - 1))
        text = texts[i]
        pos = draw(st.integers(0, len(text) - 1))
        new = draw(st.characters(min_codepoint=0x21, max_codepoint=0x7E))
        assume(new != text[pos])
        texts[i] = text[:pos] + new + text[pos + 1:]
    elif kind == "field":
        i = draw(st.integers(0, len(texts) - 1))
        fields = texts[i].split(";")
        j = draw(st.integers(0, len(fields) - 2))  # never the signature itself: that is "character"
        del fields[j]
        texts[i] = ";".join(fields)
    elif kind == "body":
        body = root.find("{jabber:client}body")
        new = draw(st.text(min_size=0, max_size=40).filter(lambda t: "\x00" not in t))
        assume(new != body.text and all(c.isprintable() or c in "\n\t" for c in new))
        body.text = new
    elif kind == "message":
        name = draw(st.sampled_from(["from", "to", "id", "type"]))
        value = draw(jid_text)
        assume(value != root.get(name) and not (name == "type" and value == "normal" and root.get(name) is None))
        root.set(name, value)
    elif kind == "order":
        i, j = draw(st.sampled_from([(0, 1), (1, 2), (0, 2)]))
        texts[i], texts[j] = texts[j], texts[i]
    else:
        del texts[draw(st.integers(0, len(texts) - 1))]
    element.text = " ".join(texts)
    return serialize(root)


@SETTINGS
@given(st.data())
def test_any_change_to_a_signed_part_of_a_trusted_path_is_not_trusted(pinned_vector, data):
    stanza, anchor, now = pinned_vector
    assert verify_stanza(stanza, anchor, now).verdict is Verdict.TRUSTED
    changed = _apply(stanza, data.draw)
    try:
        report = verify_stanza(changed, anchor, now)
    except InvalidInput:
        return
    assert report.verdict is not Verdict.TRUSTED


@SETTINGS
@given(st.data())
def test_verifier_raises_only_its_documented_error_on_arbitrary_input(pinned_vector, data):
    stanza, anchor, now = pinned_vector
    blob = bytearray(stanza)
    for _ in range(data.draw(st.integers(1, 8))):
        op = data.draw(st.sampled_from(["flip", "insert", "delete"]))
        pos = data.draw(st.integers(0, len(blob) - 1))
        if op == "flip":
            blob[pos] = data.draw(st.integers(0, 255))
        elif op == "insert":
            blob[pos:pos] = data.draw(st.binary(min_size=1, max_size=8))
        else:
            del blob[pos:pos + data.draw(st.integers(1, 16))]
    when = now + timedelta(seconds=data.draw(st.integers(-10**6, 10**6)))
    try:
        report = verify_stanza(bytes(blob), anchor, when)
    except InvalidInput:
        return
    # whatever the bytes were, a report that comes back is a consistent one
    lowest = min(h.strength for h in report.hops)
    assert report.verdict is lowest.verdict
    assert [h.label for h in report.hops] == [f"H{i}" for i in range(1, len(report.hops) + 1)]
    assert (report.weakest == ()) == (report.verdict is Verdict.TRUSTED)
    assert set(report.weakest) == ({h.label for h in report.hops if h.strength == lowest}
                                   if report.verdict is not Verdict.TRUSTED else set())


@SETTINGS
@given(st.binary(max_size=2048))
def test_random_bytes_are_refused_with_the_documented_error(pinned_vector, blob):
    _, anchor, now = pinned_vector
    try:
        verify_stanza(blob, anchor, now)
    except InvalidInput:
        return
    raise AssertionError("random bytes verified")


# --- round trips: what one side writes, the other reads back unchanged --------------------

from trustpath.core.delivery import DeliveryReport, ReportedHop, decode_report, report_element  # noqa: E402
from trustpath.core.disco import NS_DISCO_INFO, key_form, read_disco_info  # noqa: E402
from trustpath.core.keys import KeySet, KeyStatus, PublishedKey  # noqa: E402
from trustpath.core.model import Strength  # noqa: E402
from trustpath.core.preflight import PreflightAnswer, decode_preflight, preflight_element  # noqa: E402

domains = st.from_regex(r"[a-z][a-z0-9]{0,10}\.(example|org|net)", fullmatch=True)
hop_results = st.sampled_from(["pass", "fail", "none", "unknown"])
key_sources = st.sampled_from([k.value for k in KeySource] + ["anchor"])


@st.composite
def delivery_reports(draw) -> DeliveryReport:
    hops = []
    for i in range(draw(st.integers(1, 4))):
        sender, receiver = draw(jid_text), draw(jid_text)
        role = "sender-c2s" if i == 0 and ("@" in sender or "/" in sender) else \
            "recipient-c2s" if "@" in receiver or "/" in receiver else "s2s"
        hops.append(ReportedHop(label=f"H{i + 1}", role=role, sender=sender, receiver=receiver,
                                strength=draw(st.sampled_from(list(Strength))), result=draw(hop_results),
                                reason=draw(st.none() | reasons),
                                client_method=draw(st.none() | methods), server_method=draw(st.none() | methods),
                                key_source=draw(st.none() | key_sources), time=draw(st.none() | times)))
    verdict = min(h.strength for h in hops).verdict
    return DeliveryReport(for_id=draw(st.text(alphabet="abc123-", min_size=1, max_size=20)), verdict=verdict,
                          origin=draw(st.none() | b64_64), hops=tuple(hops))


@SETTINGS
@given(delivery_reports())
def test_a_delivery_report_round_trips(report):
    element = parse_stanza(serialize(report_element(report)))
    assert decode_report(element) == report


@st.composite
def key_sets(draw) -> KeySet:
    entries = [PublishedKey(draw(b64_32).rstrip("="))]
    for _ in range(draw(st.integers(0, 3))):
        status = draw(st.sampled_from([KeyStatus.CURRENT, KeyStatus.RETIRED, KeyStatus.REVOKED]))
        entries.append(PublishedKey(draw(b64_32).rstrip("="), status,
                                    draw(times) if status is KeyStatus.RETIRED else None,
                                    draw(st.none() | times) if status is KeyStatus.REVOKED else None))
    return KeySet(draw(domains), tuple(entries))


@SETTINGS
@given(key_sets(), st.integers(0, 86_400), st.integers(0, 86_400))
def test_the_published_key_form_round_trips(keys, max_skew, cache_for):
    query = etree.Element(f"{{{NS_DISCO_INFO}}}query", nsmap={None: NS_DISCO_INFO})
    etree.SubElement(query, f"{{{NS_DISCO_INFO}}}feature").set("var", NS)
    query.append(key_form(keys, max_skew, cache_for))
    published = read_disco_info(parse_stanza(serialize(query)), keys.domain)
    assert published.takes_part and (published.max_skew, published.cache_for) == (max_skew, cache_for)
    # the form groups keys by status: the same keys, current first, then retired, then revoked
    order = {KeyStatus.CURRENT: 0, KeyStatus.RETIRED: 1, KeyStatus.REVOKED: 2}
    assert published.keys == KeySet(keys.domain, tuple(sorted(keys.keys, key=lambda k: order[k.status])))


@st.composite
def preflight_answers(draw) -> PreflightAnswer:
    domain = draw(domains)
    view = None
    if draw(st.booleans()):
        result = draw(st.sampled_from(list(Result)))
        view = View(draw(st.sampled_from(["pin", "dane-ee", "pkix", "none"])), result,
                    draw(st.sampled_from(["1.2", "1.3"])), draw(spkis), draw(reasons) if result is Result.FAIL else None)
    return PreflightAnswer(domain, draw(st.none() | st.booleans()), view)


@SETTINGS
@given(preflight_answers())
def test_a_preflight_answer_round_trips(answer):
    assert decode_preflight(parse_stanza(serialize(preflight_element(answer)))) == answer


@SETTINGS
@given(key_sets())
def test_the_dns_and_posh_key_publications_round_trip(keys):
    from trustpath.core.disco import posh_document, read_posh_document, read_txt_records, txt_records

    assume(any(k.status is KeyStatus.CURRENT for k in keys.keys))
    assert read_txt_records(txt_records(keys), keys.domain) == keys
    assert read_posh_document(posh_document(keys, 600), keys.domain) == (keys, 600)
