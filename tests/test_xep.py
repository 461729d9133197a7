"""The XEP is valid XSF source for urn:xmpp:trust-path:1, its schema is the one in schemas/, its
tables are the constants table, and every example is checked against the schema and the vectors."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from lxml import etree

from conftest import ROOT, VECTORS, load_json
from trustpath.core.anchor import load_anchor
from trustpath.core.model import NS
from trustpath.core.receive import verify_stanza
from trustpath.core.timefmt import parse_time

XEP = ROOT / "xep" / "trust-path.xml"
XSF = ROOT.parent / "shared" / "xsf"
SCHEMA = etree.XMLSchema(etree.parse(str(ROOT / "schemas" / "trust-path.xsd")))
TEXT = XEP.read_text(encoding="utf-8")
TABLE = load_json(ROOT / "spec" / "constants.json")
WORD_LIMIT = 12000


@pytest.fixture(scope="module")
def xep(tmp_path_factory):
    """The XEP parsed with the XSF's DTD and entities, validating."""
    if not (XSF / "xep.dtd").exists():
        pytest.fail(f"the XSF format files are expected in {XSF} (shared/xsf beside the checkout)")
    work = tmp_path_factory.mktemp("xep")
    for name in ("xep.dtd", "xep.ent"):
        shutil.copy(XSF / name, work / name)
    shutil.copy(XEP, work / "trust-path.xml")
    parser = etree.XMLParser(dtd_validation=True, load_dtd=True, no_network=True, resolve_entities=True)
    return etree.parse(str(work / "trust-path.xml"), parser)


def test_xep_is_valid_against_the_xsf_dtd(xep):
    assert xep.getroot().tag == "xep"


def test_xep_meets_the_editor_checks(xep):
    header = xep.getroot().find("header")
    assert header.findtext("status") == "ProtoXEP"
    assert header.findtext("number") == "xxxx"
    assert header.findtext("type") in ("Standards Track", "Informational", "Historical", "Procedural")
    assert header.findtext("approver") in ("Council", "Board")
    assert not re.match(r"xep-\d", XEP.name)
    assert "<?xml-stylesheet type='text/xsl' href='xep.xsl'?>" in TEXT
    assert "&LEGALNOTICE;" in TEXT
    authors = header.findall("author")
    assert authors
    for author in authors:
        for field in ("firstname", "surname", "email", "jid"):
            assert (author.findtext(field) or "").strip(), field
    versions = [tuple(int(x) for x in r.findtext("version").split(".")) for r in header.findall("revision")]
    dates = [r.findtext("date") for r in header.findall("revision")]
    assert versions == sorted(versions, reverse=True) and dates == sorted(dates, reverse=True)


def test_xep_is_version_1_and_names_its_dependencies(xep):
    header = xep.getroot().find("header")
    assert header.find("revision").findtext("version") == "1.0"
    assert TABLE["namespace"] == NS == "urn:xmpp:trust-path:1"
    assert "urn:xmpp:trust-path:0" not in TEXT.split("</header>", 1)[1], "version 0 is not kept"
    deps = " ".join(s.text for s in header.find("dependencies"))
    for spec in ("XEP-0184", "XEP-0280", "XEP-0313", "XEP-0045", "XEP-0198", "XEP-0178", "XEP-0440", "XEP-0474",
                 "XEP-0359", "XEP-0202", "RFC 6120", "RFC 6125", "RFC 9266", "RFC 7711", "RFC 7673", "RFC 4648"):
        assert spec in deps, spec


def _words(xep) -> int:
    body = xep.getroot()
    return len(" ".join(body.itertext()).split())


def test_xep_is_short_enough_to_read_in_one_sitting(xep):
    assert _words(xep) <= WORD_LIMIT


def test_xep_does_not_collide_with_client_key_support():
    """The inbox ProtoXEP "Client Key Support" (urn:xmpp:client-key:0, CLIENT-KEY SASL) owns the name."""
    assert "<client-key" not in TEXT
    assert "<session-key xmlns='urn:xmpp:trust-path:1'" in TEXT


def test_no_business_rule_cites_a_file_of_the_repository(xep):
    section = next(s for s in xep.getroot().iter("section1") if s.get("anchor") == "rules")
    text = " ".join(section.itertext())
    assert not re.search(r"\b(spec|tests|reference|prosody|docs)/|\.py\b|\.lua\b|\.json\b", text)
    whole = " ".join(xep.getroot().itertext())
    assert not re.search(r"\b(poezio|LuaSec|mod_[a-z_]+|slixmpp's)\b", whole), "implementation internals belong in docs/"


def test_schema_in_the_xep_is_the_schema_file(xep):
    section = next(s for s in xep.getroot().iter("section1") if s.get("anchor") == "schema")
    assert section.findtext("code").strip() == (ROOT / "schemas" / "trust-path.xsd").read_text().strip()


def test_generated_parts_of_the_xep_are_up_to_date():
    result = subprocess.run([sys.executable, "-m", "trustpath.tools.sync_xep", "--check"], capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr


def _examples(xep):
    for example in xep.getroot().iter("example"):
        yield example.get("caption"), example.text or ""


def _parse_example(text: str) -> list[etree._Element]:
    """An example may hold several stanzas; parse them under one wrapper in jabber:client."""
    wrapper = etree.fromstring(f"<wrapper xmlns='jabber:client'>{text}</wrapper>".encode())
    return list(wrapper)


def _validate_elements(stanza) -> int:
    checked = 0
    for element in stanza.iter(f"{{{NS}}}*"):
        parent = element.getparent()
        if parent is not None and etree.QName(parent).namespace == NS:
            continue  # validated as part of its parent
        doc = etree.fromstring(etree.tostring(element))
        assert SCHEMA.validate(doc), f"{etree.QName(element).localname}: {SCHEMA.error_log.last_error}"
        checked += 1
    return checked


def test_every_example_is_well_formed_and_valid_against_the_schema(xep):
    checked = 0
    for caption, text in _examples(xep):
        assert "PLACEHOLDER" not in text, caption
        if not text.strip().startswith("<"):
            continue
        for stanza in _parse_example(text):
            checked += _validate_elements(stanza)
    assert checked >= 15


def test_the_schema_accepts_every_valid_vector_and_refuses_the_shapes_it_can():
    for path in (VECTORS / "scenarios").glob("*.xml"):
        _validate_elements(etree.fromstring(path.read_bytes()))
    for name in ("empty-path", "path-with-attribute", "path-with-child", "record-not-ascii", "signature-not-last",
                 "too-many-records", "field-without-value", "require-unknown-verdict"):
        root = etree.fromstring((VECTORS / "rejections" / f"{name}.xml").read_bytes())
        elements = [e for e in root.iter(f"{{{NS}}}path", f"{{{NS}}}require")]
        assert elements and not all(SCHEMA.validate(etree.fromstring(etree.tostring(e))) for e in elements), name


def _canonical(data: bytes) -> bytes:
    """White space between records is not signed: compare paths record by record."""
    root = etree.fromstring(data, etree.XMLParser(remove_blank_text=True))
    for path in root.iter(f"{{{NS}}}path"):
        path.text = " ".join((path.text or "").split())
    return etree.tostring(root)


def test_every_signed_example_is_a_published_vector_and_verifies(xep):
    names = re.findall(r"<!-- trustpath:vector ([\w./-]+) -->", TEXT)
    assert len(names) >= 10
    examples = {caption: text for caption, text in _examples(xep)}
    for name in names:
        vector = (VECTORS / f"{name}.xml") if "/" in name else (VECTORS / "scenarios" / f"{name}.xml")
        expected = _canonical(vector.read_bytes())
        shown = [t for t in examples.values() if t.strip().startswith("<") and _canonical(t.strip().encode()) == expected]
        assert shown, f"no example shows {name}"
        if name.endswith(".error"):
            continue
        stem = (VECTORS / name) if "/" in name else (VECTORS / "scenarios" / name)
        anchor, skew = load_anchor(f"{stem}.anchor.json")
        exp = load_json(Path(f"{stem}.expected.json"))
        # the example as shown, one record per line, verifies as the vector does
        report = verify_stanza(shown[0].strip().encode(), anchor, parse_time(exp["now"]), max_skew=skew)
        assert report.verdict.value == exp.get("receipt", exp["verdict"]), name


def test_signing_input_in_the_xep_reproduces():
    """The shown signing input is what the core builds for the first example's client record, and the
    record's signature verifies over it with the published test key."""
    from trustpath.core.codec import decode_path, find_message, message_fields, parse_stanza
    from trustpath.core.keys import verify_signature
    from trustpath.core.signing import signing_input
    from trustpath.tools.sync_xep import read_signing_text

    block = re.search(r"<!-- trustpath:signing ([\w.-]+) (\d+) -->\s*<code caption='[^']*'><!\[CDATA\[(.*?)\]\]>",
                      TEXT, re.S)
    name, index, shown = block.group(1), int(block.group(2)), read_signing_text(block.group(3))
    message = find_message(parse_stanza((VECTORS / "scenarios" / f"{name}.xml").read_bytes())).message
    record = decode_path(message).records[index]
    data = signing_input(message_fields(message), "", record.unsigned, record.covers)
    assert shown.encode() == data
    assert verify_signature(record.key, record.sig, data)
    keys = {k["public"] for k in load_json(VECTORS / "keys.json")["keys"]}
    assert record.key in keys


def test_disco_example_publishes_keys_the_reference_can_read(xep):
    from trustpath.core.disco import NS_DISCO_INFO, key_form, read_disco_info
    from trustpath.core.keys import KeyStatus

    results = []
    for caption, text in _examples(xep):
        if "disco#info" in text and "type='result'" in text and NS in text:
            for stanza in _parse_example(text):
                query = stanza.find(f"{{{NS_DISCO_INFO}}}query")
                if query is not None:
                    results.append(read_disco_info(query, stanza.get("from")))
    assert results, "no disco#info result with the key form among the examples"
    published = results[0]
    assert published.takes_part and published.max_skew == 300
    assert published.cache_for == TABLE["limits"]["default_cache_for"]
    statuses = [k.status for k in published.keys.keys]
    assert statuses == [KeyStatus.CURRENT, KeyStatus.RETIRED, KeyStatus.REVOKED]
    assert all(k.alg == "ed25519" for k in published.keys.keys)
    query = etree.Element(f"{{{NS_DISCO_INFO}}}query")
    etree.SubElement(query, f"{{{NS_DISCO_INFO}}}feature", var=NS)
    query.append(key_form(published.keys, 300))
    assert read_disco_info(query, published.keys.domain) == published


def _table(caption: str) -> list[list[str]]:
    body = re.search(rf"<table caption='{re.escape(caption)}'>(.*?)</table>", TEXT, re.S).group(1)
    return [re.findall(r"<td>(.*?)</td>", row, re.S) for row in re.findall(r"<tr>(.*?)</tr>", body, re.S)[1:]]


def _tt(cell: str) -> list[str]:
    return re.findall(r"<tt>([^<]+)</tt>", cell)


EFFECTS = {"hop unverified": "unverified", "fails the hop": "failed", "hop ca (weak)": "ca", "unknown": "unknown",
           "hop not described (unknown)": "unknown", "caps the hop": "caps",
           "reported as a note; the verdict is unchanged": "note",
           "the stanza is rejected; a client shows it as untrusted": "rejected"}


def test_the_reason_code_table_is_the_constants_table():
    rows = {_tt(r[0])[0]: {"origin": r[1], "effect": EFFECTS[r[3]]} for r in _table("Reason codes")}
    assert rows == TABLE["reasons"]


def test_the_record_field_table_is_the_constants_table():
    assert sorted(_tt(r[0])[0] for r in _table("Record fields")) == sorted(TABLE["record_fields"])


def test_the_payload_tokens_are_the_constants_table():
    tokens = [t for r in _table("Payload tokens") for t in _tt(r[0])]
    assert tokens == list(TABLE["payloads"])
    default = ",".join(TABLE["default_payloads"])
    assert f"absent means <tt>{default}</tt>" in TEXT


def test_the_key_sources_and_methods_are_the_constants_table():
    sources = [t for r in _table("Key sources") for t in _tt(r[0])]
    assert sorted(sources) == sorted(TABLE["key_sources"])
    methods = {t for r in _table("Methods") for t in _tt(r[0])}
    assert methods == set(TABLE["methods"]) | set(TABLE["client_bindings"])
    sentence = re.search(r"<strong>View\.</strong> A view's strength comes from its 'method': (.*?)\.", TEXT).group(1)
    assert _groups(sentence) == {m: e["strength"] for m, e in TABLE["methods"].items()}
    sentence = re.search(r"<strong>Key source\.</strong>.*?: (.*?)</li>", TEXT).group(1)
    assert _groups(sentence) == {k: s for k, s in TABLE["key_sources"].items() if s is not None}
    assert "<tt>link</tt> is as strong as the hop" in sentence and TABLE["key_sources"]["link"] is None
    bound = [m for m, b in TABLE["client_bindings"].items() if b]
    assert all(f"<tt>{m}</tt>" in TEXT for m in bound)


def _groups(sentence: str) -> dict[str, str]:
    out = {}
    for clause in sentence.split(";"):
        found = re.search(r"(?:are|is) (strong|ca|unverified)\b", clause)
        if found:
            for name in _tt(clause[:found.start()]):
                out[name] = found.group(1)
    return out


def test_the_limits_are_the_constants_table():
    limits = TABLE["limits"]
    assert (f"at most {limits['stanza_bytes']} bytes, nests elements at most {limits['depth']} deep, and has at "
            f"most {limits['records']} records of at most {limits['record_chars']} characters") in TEXT
    assert f"'max-skew' of the reader's own server, {limits['default_max_skew']} seconds by default" in TEXT
    assert f"from 0 to {limits['max_skew']}" in TEXT
    assert f"{limits['default_cache_for']} if absent" in TEXT
    assert f"first {limits['spki_bytes']} bytes of SHA-256" in TEXT
    assert f"1 to {limits['removed']}" in TEXT
