"""The limits of the XEP's "Keys" in the Python core, and in the XEP's text (the Lua core:
prosody/tests/test_limits.lua; the server's behaviour under load: tests/test_live_resources.py).

A domain publishes at most MAX_PUBLISHED_KEYS keys in each place; a reader refuses a larger set
as malformed before it reads any key of it, so that a domain publishing thousands of keys costs
its peers nothing per message."""

from __future__ import annotations

import pytest
from lxml import etree

from conftest import ROOT
from trustpath.core.constants import KEY_FETCH_INTERVAL, MAX_PUBLISHED_KEYS, TABLE
from trustpath.core.disco import (NS_DISCO_INFO, key_form, posh_document, read_disco_info, read_posh_document,
                                  read_txt_records, txt_records)
from trustpath.core.errors import MalformedStanza
from trustpath.core.keys import KeySet, KeyStatus, PublishedKey, SigningKey, b64_raw
from trustpath.core.model import NS

XEP = (ROOT / "xep" / "trust-path.xml").read_text(encoding="utf-8")


def _keys(count: int) -> KeySet:
    """One current key and ``count`` - 1 revoked ones."""
    current = PublishedKey(SigningKey.from_seed(b"\1" * 32).public)
    revoked = tuple(PublishedKey(b64_raw(b"%032d" % i), KeyStatus.REVOKED, since="2026-01-01T00:00:00Z")
                    for i in range(2, count + 1))
    return KeySet("a.example", (current,) + revoked)


def _query(keys: KeySet) -> etree._Element:
    query = etree.Element(f"{{{NS_DISCO_INFO}}}query", nsmap={None: NS_DISCO_INFO})
    etree.SubElement(query, f"{{{NS_DISCO_INFO}}}feature", var=NS)
    query.append(key_form(keys, 300, 0))
    return query


def test_the_limits_come_from_the_constants_table_and_the_xep_states_them():
    limits = TABLE["limits"]
    assert (MAX_PUBLISHED_KEYS, KEY_FETCH_INTERVAL) == (limits["published_keys"], limits["key_fetch_interval"])
    assert f"3600 if absent; below {KEY_FETCH_INTERVAL} counts as {KEY_FETCH_INTERVAL}." in XEP  # cache-for
    assert f"A reader MUST treat a key set of more than {MAX_PUBLISHED_KEYS} keys as malformed." in XEP


def test_a_key_set_at_the_limit_is_read_in_every_place():
    keys = _keys(MAX_PUBLISHED_KEYS)
    assert read_disco_info(_query(keys), "a.example").keys == keys
    assert read_txt_records(txt_records(keys), "a.example") == keys
    assert read_posh_document(posh_document(keys, 600), "a.example") == (keys, 600)


@pytest.mark.parametrize("where", ["key form", "_trust-path TXT records", "POSH document"])
def test_a_key_set_over_the_limit_is_malformed_in_every_place(where):
    keys = _keys(MAX_PUBLISHED_KEYS + 1)
    read = {"key form": lambda: read_disco_info(_query(keys), "a.example"),
            "_trust-path TXT records": lambda: read_txt_records(txt_records(keys), "a.example"),
            "POSH document": lambda: read_posh_document(posh_document(keys), "a.example")}[where]
    with pytest.raises(MalformedStanza, match=f"a.example publishes {MAX_PUBLISHED_KEYS + 1} keys in its {where}"):
        read()


def test_the_count_is_checked_before_any_key_is_read():
    texts = txt_records(_keys(MAX_PUBLISHED_KEYS + 1))
    texts[-1] = "v=tp1; k=ed25519:not-a-key"
    with pytest.raises(MalformedStanza, match=f"publishes {MAX_PUBLISHED_KEYS + 1} keys"):
        read_txt_records(texts, "a.example")
