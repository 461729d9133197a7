"""The XEP is valid XSF source, its schema is the one in schemas/, and every example is checked."""

from __future__ import annotations

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


def test_every_example_is_well_formed_and_valid_against_the_schema(xep):
    checked = 0
    for caption, text in _examples(xep):
        assert "PLACEHOLDER" not in text, caption
        if not text.strip().startswith("<"):
            continue
        stanzas = _parse_example(text)
        assert stanzas, caption
        for stanza in stanzas:
            for element in stanza.iter(f"{{{NS}}}*"):
                parent = element.getparent()
                if parent is not None and etree.QName(parent).namespace == NS:
                    continue  # validated as part of its parent
                doc = etree.fromstring(etree.tostring(element))
                assert SCHEMA.validate(doc), f"{caption}: {SCHEMA.error_log.last_error}"
                checked += 1
    assert checked >= 15


def test_every_signed_example_is_a_published_vector_and_verifies(xep):
    names = re.findall(r"<!-- trustpath:vector ([\w./-]+) -->", TEXT)
    assert len(names) >= 10
    examples = {caption: text for caption, text in _examples(xep)}
    signed = [text for text in examples.values() if "<attestation" in text]
    assert len(signed) >= len([n for n in names if not n.endswith(".error")])
    for name in names:
        vector = (VECTORS / f"{name}.xml") if "/" in name else (VECTORS / "scenarios" / f"{name}.xml")
        expected = etree.tostring(etree.fromstring(vector.read_bytes(),
                                                   etree.XMLParser(remove_blank_text=True)))
        shown = [t for t in examples.values() if etree.tostring(etree.fromstring(
            t.strip().encode(), etree.XMLParser(remove_blank_text=True))) == expected] if vector.exists() else []
        assert shown, f"no example shows {name}"
        if name.endswith(".error"):
            continue
        stem = (VECTORS / name) if "/" in name else (VECTORS / "scenarios" / name)
        anchor, skew = load_anchor(f"{stem}.anchor.json")
        exp = load_json(Path(f"{stem}.expected.json"))
        report = verify_stanza(shown[0].strip().encode(), anchor, parse_time(exp["now"]), max_skew=skew)
        # a delivery report's receipt: its own path has the verdict 'receipt' (XEP: Delivery Reports)
        assert report.verdict.value == exp.get("receipt", exp["verdict"]), name


def test_signed_example_in_the_signing_section_reproduces():
    """The worked example: the 344 bytes and the signature with the RFC 8032 test key."""
    from trustpath import MessageFields, Result, Side, SigningKey, View, attest, signing_input

    key = SigningKey.from_seed(bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"))
    message = MessageFields(sender="alice@a.example/phone", to="bob@b.example", id="6b1e0a", type="chat",
                            bodies=((None, "Hi Bob"),))
    view = View(peer="a.example", side=Side.CLIENT, tls="1.3", cipher="1302",
                spki="FV2T/hz7KnVaOMDmzJgqZk6wZQVV7LCYxP3iYUSjpGo=", method="pin", result=Result.PASS)
    att = attest(message, key, signer="alice@a.example/phone", time="2026-11-25T09:00:00Z", out_view=view)
    data = signing_input(message, "", att)
    assert len(data) == 344
    assert f"sig='{att.sig}'" in TEXT
    assert key.public in TEXT
    dump = "".join(re.findall(r"^[0-9a-f]{4}  ((?:[0-9a-f]{2} ){1,16})", TEXT, re.M)).replace(" ", "")
    assert bytes.fromhex(dump) == data


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
    statuses = [k.status for k in published.keys.keys]
    assert statuses == [KeyStatus.CURRENT, KeyStatus.RETIRED, KeyStatus.REVOKED]
    # and what the reference writes reads back the same
    query = etree.Element(f"{{{NS_DISCO_INFO}}}query")
    etree.SubElement(query, f"{{{NS_DISCO_INFO}}}feature", var=NS)
    query.append(key_form(published.keys, 300))
    assert read_disco_info(query, published.keys.domain) == published
