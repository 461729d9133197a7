"""The Python core and the Lua core that the Prosody module ships, held equal on generated paths.

Hypothesis builds stanzas from scenario 1 of the published vectors (a message with the sending
client's, the sending server's and the receiving server's records) and breaks them on the way:
record fields changed to values near the edge of what the XEP allows (or past it), dropped,
repeated, reordered or added; records dropped, swapped, repeated or joined by odd whitespace;
payloads, a <report/>, a <require/> or a second <path/> added to the message, its id removed; a
refusal's <error/> with its <unverified-hop/> (one, two, in a second <error/>) added, the message
made an error, and a server's record made a refuser's (its 'i=', 'c=' and 'v=' removed).
Both cores must agree on every step a server takes (the XEP step names are the function names in
both): decoding (what each record says, or which reason code refuses the stanza), the signing
input of every record, the payloads the message carries, the sending server's anti-forgery
(``filter_client_path``), a receiving server's chain decision (``receive_chain``), and the exact
record ``attest`` writes.  Servers do not verify signatures in urn:xmpp:trust-path:1, so there is no
verdict to compare: the Lua core has no verifier.

Further properties of the Python core alone: the signing input is injective.
"""

from __future__ import annotations

import base64
import json
import subprocess
from dataclasses import replace
from typing import Any

import pytest
from conftest import ROOT, VECTORS, require_lua
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from lxml import etree

from trustpath.core import constants
from trustpath.core.attest import attest
from trustpath.core.codec import decode_path, decode_view, find_message, find_path_element, message_fields, parse_stanza, \
    path_records, serialize
from trustpath.core.errors import InvalidInput, LimitExceeded, UnsupportedAlgorithm, UnsupportedVersion, UsageError
from trustpath.core.disco import read_posh_document, read_txt_records
from trustpath.core.keys import KeySet
from trustpath.core.model import NS, Chain, KeySource, MessageFields, Result, View
from trustpath.core.require import client_hop_problem
from trustpath.core.server import filter_client_path, receive_chain
from trustpath.core.signing import payload_input, signing_input
from trustpath.testbed.sim.scenarios import VECTOR_SEED
from trustpath.testbed.sim.tls import KeyFactory

SERVICE = ROOT / "prosody" / "tests" / "differential.lua"
BASE = find_message(parse_stanza((VECTORS / "scenarios" / "01-all-pinned.xml").read_bytes())).message
BASE_RECORDS = [a.text for a in decode_path(BASE).records]  # type: ignore[union-attr]
KEYS = KeyFactory(VECTOR_SEED)
ALICE = KEYS.signing_key("client/alice@a.example/phone").public
A_KEY = KEYS.signing_key("server/a.example/1").public
B_SEED = KEYS.signing_key("server/b.example/1").seed().hex()
B_KEY = KEYS.signing_key("server/b.example/1").public


# --- the Lua core, as a service ----------------------------------------------------------

@pytest.fixture(scope="module")
def lua():
    require_lua()
    process = subprocess.Popen(["lua5.4", str(SERVICE)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, cwd=ROOT)

    def ask(request: dict[str, Any]) -> dict[str, Any]:
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write(json.dumps(request) + "\n")
        process.stdin.flush()
        line = process.stdout.readline()
        if not line:
            raise RuntimeError(f"the Lua core stopped: {process.stderr.read() if process.stderr else ''}")
        answer = json.loads(line)
        answer.pop("text", None) if "refused" in answer else None  # the words may differ, the reason may not
        return answer

    yield ask
    process.stdin.close()  # type: ignore[union-attr]
    process.wait(timeout=10)


# --- the same answers from the Python core -------------------------------------------------

def refusal(exc: InvalidInput) -> dict[str, Any]:
    reason = "unsupported-algorithm" if isinstance(exc, UnsupportedAlgorithm) else \
        "unsupported-version" if isinstance(exc, UnsupportedVersion) else "malformed"
    return {"refused": reason, "limit": isinstance(exc, LimitExceeded)}


def summary(a: Any) -> dict[str, Any]:
    return {"text": a.text, "signer": a.signer, "key": a.key, "time": a.time, "alg": a.alg,
            "in_view": a.in_view.text() if a.in_view else None, "out_view": a.out_view.text(),
            "in_peer": a.in_peer, "out_peer": a.out_peer, "chain": a.chain.value if a.chain else None,
            "chain_reason": a.chain_reason, "vouch": a.vouch.value if a.vouch else None, "removed": a.removed,
            "stored": a.stored, "covers": list(a.covers) if a.covers is not None else None,
            "extra": [list(pair) for pair in a.extra]}


def decoded(message: etree._Element) -> tuple[list[Any], MessageFields]:
    """decode_path, then message_fields with the qualified payloads the records cover (as
    receive.verify_stanza reads a message)."""
    path = decode_path(message)
    atts = list(path.records) if path is not None else []
    extra = tuple({t for a in atts for t in (a.covers or ()) if t.startswith("{")})
    return atts, message_fields(message, extra)


def py_decode(data: str) -> dict[str, Any]:
    try:
        atts, fields = decoded(parse_stanza(data.encode()))
    except InvalidInput as exc:
        return refusal(exc)
    texts: list[str] = []
    inputs = []
    for a in atts:
        inputs.append(base64.b64encode(signing_input(fields, " ".join(texts), a.unsigned, a.covers)).decode())
        texts.append(a.text)
    return {"records": [summary(a) for a in atts], "signing_inputs": inputs,
            "fields": {"id": fields.id, "type": fields.type, "present": list(fields.present),
                       "payloads": base64.b64encode(payload_input(fields, tuple(constants.PAYLOADS)).encode()).decode()}}


def path_texts(message: etree._Element) -> list[str]:
    """The record texts of the path as they are now (a receiving server passes on records it did
    not read, which a strict decoder would refuse)."""
    path = find_path_element(message)
    return path_records(path) if path is not None else []


def py_filter(data: str, session_key: str | None) -> dict[str, Any]:
    message = parse_stanza(data.encode())
    d = filter_client_path(message, session_key)
    return {"kept": d.kept.text if d.kept else None, "removed": d.removed, "chain": d.chain.value,
            "chain_reason": str(d.chain_reason) if d.chain_reason else None,
            "vouch": d.vouch.value if d.vouch else None, "path": path_texts(message)}


def py_receive(request: dict[str, Any]) -> dict[str, Any]:
    message = parse_stanza(request["stanza"].encode())
    keys = KeySet.from_json({"domain": request["origin"], "keys": request["keys"]}) if request["keys"] else None
    d = receive_chain(message, origin=request["origin"], takes_part=request["takes_part"], keys=keys,
                      key_source=KeySource(request["key_source"]),
                      keys_unavailable=request.get("keys_unavailable", False))
    return {"chain": d.chain.value, "chain_reason": str(d.chain_reason) if d.chain_reason else None,
            "vouch": d.vouch.value if d.vouch else None, "refetch": d.refetch, "unreadable": d.error is not None, "sig": d.sig,
            "path": path_texts(message)}


def _key_list(keys: KeySet) -> list[dict[str, Any]]:
    return [{"key": k.key, "alg": k.alg, "status": k.status.value, "not_after": k.not_after, "since": k.since}
            for k in keys.keys]


def py_txt(texts: list[str], domain: str) -> dict[str, Any]:
    try:
        return {"keys": _key_list(read_txt_records(texts, domain))}
    except InvalidInput as exc:
        return refusal(exc)


def py_posh(document: str, domain: str) -> dict[str, Any]:
    try:
        keys, expires = read_posh_document(json.loads(document), domain)
    except InvalidInput as exc:
        return refusal(exc)
    return {"keys": _key_list(keys), "expires": expires}


def py_attest(data: str, record: dict[str, Any]) -> dict[str, Any]:
    try:
        atts, fields = decoded(parse_stanza(data.encode()))
        views = {k: decode_view(record[k]) if record[k] is not None else None for k in ("in_view", "out_view")}
    except InvalidInput as exc:
        return refusal(exc)
    try:
        signed = attest(fields, KEYS.signing_key("server/b.example/1"), previous=" ".join(a.text for a in atts),
                        signer=record["signer"], time=record["time"], in_view=views["in_view"],
                        out_view=views["out_view"], in_peer=record["in_peer"], out_peer=record["out_peer"],
                        chain=Chain(record["chain"]) if record["chain"] else None, chain_reason=record["chain_reason"],
                        vouch=KeySource(record["vouch"]) if record["vouch"] else None, removed=record["removed"],
                        stored=record["stored"])
    except UsageError:
        return {"usage_error": True}
    return {"text": signed.text}


# --- generated stanzas ---------------------------------------------------------------------

SIG = BASE_RECORDS[0].rsplit(";z=", 1)[1]
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
VIEWS = ["pin,pass,1.3,AAAAAAAAAAAAAAAA", "tls-unique,pass,1.2,4T+Oyg225ADja+G0", "pkix,none,none,-",
         "pin,pin-mismatch,1.3,AAAAAAAAAAAAAAAA", "pin,pass,1.3,-", "pin,pass,1.1,AAAAAAAAAAAAAAAA",
         "Pin,pass,1.3,AAAAAAAAAAAAAAAA", "pin,pass,1.3", "pin,Fail,none,-", "pin,pass,none,AAAAAAAAAAAAAAAA",
         "device,pass,1.3,AAAAAAAAAAAAAAA=", "a" * 33 + ",pass,none,-"]
TIMES = ["0", "1795597200", "01795597200", "-5", "17955972000000", "1.5", "99999999999", "100000000000", ""]
VALUES: dict[str, list[str]] = {
    "s": ["a.example", "b.example", "alice@a.example/phone", ""],
    "t": TIMES, "st": TIMES,
    "a": ["ed25519", "ml-dsa-44", ""],
    "k": [ALICE, A_KEY, ALICE + "=", ALICE[:-1] + "B", "short"],
    "i": VIEWS, "o": VIEWS,
    "f": ["alice@a.example/phone", "", "x" * 3072],
    "p": ["bob@b.example/desk", "", "y" * 3072],
    "c": ["pass", "absent", "stripped", "fail", "fail.key-unknown", "fail.", "pass.x", "fail.Bad", "bogus"],
    "v": ["link", "device", "s2s-pin", "posh", "nope", ""],
    "r": ["1", "999", "1000", "0", "01"],
    "h": ["body", "body,omemo", "body,body", "{urn:x}y", "body,{urn:x}y", "", "Body",
          "omemo2,oob,replace,reply,reactions,fallback", "{urn:x}y,{urn:x}y"],
    "z": [SIG, SIG + "==", SIG[:-1] + "B", "x"],
    "x-new": ["1", "a=b", ""],
    "S": ["a.example"], "1a": ["1"], "": ["x"],
}
PAYLOADS = {
    "subject": "<subject xml:lang='en'>Sub</subject>",
    "thread": "<thread>t1</thread><thread xml:lang='de'>t2</thread>",
    "omemo2": "<encrypted xmlns='urn:xmpp:omemo:2'><header sid='7'><keys jid='b@y'><key rid='1'>AAA=</key></keys>"
              "</header><payload>QkJC</payload></encrypted>",
    "omemo": "<encrypted xmlns='eu.siacs.conversations.axolotl'><header sid='1'/></encrypted>",
    "oob": "<x xmlns='jabber:x:oob' xml:lang='en' b='2' a='1'>t<url>https://x/</url>tail</x>",
    "reply": "<reply xmlns='urn:xmpp:reply:0' to='a@x' id='m0'/>",
    "unknown": "<y xmlns='urn:x' q='1'>z</y>",
    "report": f"<report xmlns='{NS}' for='m1' verdict='weak'><hop peer='a.example' result='pass'/></report>",
    "empty-report": f"<report xmlns='{NS}'/>",
    "require": f"<require xmlns='{NS}' verdict='trusted'/>",
    "bad-require": f"<require xmlns='{NS}' verdict='maybe'/>",
    "two-requires": f"<require xmlns='{NS}' verdict='weak'/><require xmlns='{NS}' verdict='weak'/>",
    "origin-id": "<origin-id xmlns='urn:xmpp:sid:0' id='oid-1'/>",
    "second-path": f"<path xmlns='{NS}'>{BASE_RECORDS[0]}</path>",
    "v0-path": "<path xmlns='urn:xmpp:trust-path:0'/>",
    "body-markup": "<body>a<b xmlns='x'/></body>",
    # a refusal (XEP "Requiring Verified Hops"): the <error/> is in the message's own namespace
    "refusal": f"<error type='cancel' by='a.example'><policy-violation xmlns='{NS_STANZAS}'/>"
               f"<unverified-hop xmlns='{NS}' peer='b.example' method='pkix' reason='ca-only' required='trusted'/>"
               f"<text xmlns='{NS_STANZAS}'>not covered</text></error>",
    # a second <error/>: with the refusal above, two <unverified-hop/> (refused); alone, a refusal
    # without type, by or condition, its condition after a <text/>
    "second-error": f"<error><text xmlns='{NS_STANZAS}'>first</text><bad-request xmlns='{NS_STANZAS}'/>"
                    f"<unverified-hop xmlns='{NS}' required='weak' peer='a@x/r'/></error>",
}


@st.composite
def records(draw: st.DrawFn) -> list[str]:
    """Scenario 1's records with up to three field edits and up to two record edits."""
    recs = [r.split(";") for r in BASE_RECORDS]
    for _ in range(draw(st.integers(0, 3))):
        rec = recs[draw(st.integers(0, len(recs) - 1))]
        what = draw(st.sampled_from(["set", "set", "set", "drop", "move", "repeat", "refuser"]))
        if what == "refuser":
            # a refusal's first record: a server's record without 'i=', 'c=' and 'v=' (nothing
            # brought the error to its signer); other edits may add any of them back
            rec[:] = [f for f in rec if f.split("=", 1)[0] not in ("i", "c", "v")] or rec
        elif what == "set":
            key = draw(st.sampled_from(sorted(VALUES)))
            field = f"{key}={draw(st.sampled_from(VALUES[key]))}"
            index = next((i for i, f in enumerate(rec) if f.split("=", 1)[0] == key), None)
            if index is None:
                rec.insert(draw(st.integers(0, len(rec))), field)
            else:
                rec[index] = field
        elif what == "drop" and len(rec) > 1:
            del rec[draw(st.integers(0, len(rec) - 1))]
        elif what == "move":
            rec.insert(draw(st.integers(0, len(rec) - 1)), rec.pop(draw(st.integers(0, len(rec) - 1))))
        elif what == "repeat":
            rec.insert(draw(st.integers(0, len(rec))), rec[draw(st.integers(0, len(rec) - 1))])
    texts = [";".join(r) for r in recs]
    for _ in range(draw(st.integers(0, 2))):
        what = draw(st.sampled_from(["drop", "swap", "repeat", "nine", "non-ascii", "long"]))
        if what == "drop" and texts:
            del texts[draw(st.integers(0, len(texts) - 1))]
        elif what == "swap" and len(texts) > 1:
            i = draw(st.integers(0, len(texts) - 2))
            texts[i], texts[i + 1] = texts[i + 1], texts[i]
        elif what == "repeat" and texts:
            texts.append(texts[draw(st.integers(0, len(texts) - 1))])
        elif what == "nine":
            texts = (texts * 9)[:9]
        elif what == "non-ascii" and texts:
            texts[0] = texts[0].replace("o=", "o=\u00e9", 1)
        elif what == "long" and texts:
            texts[-1] = texts[-1].replace("z=", "x-pad=" + "p" * 1024 + ";z=", 1)
    return texts


@st.composite
def stanzas(draw: st.DrawFn) -> str:
    """A message as a server may receive it: scenario 1, its records and its content changed."""
    message = etree.fromstring(serialize(BASE))
    texts = draw(records())
    path = message.find(f"{{{NS}}}path")
    assert path is not None
    separator = draw(st.sampled_from([" ", " ", "\t\n  ", "\r\n"]))
    path.text = draw(st.sampled_from(["", " ", "\n"])) + separator.join(texts) + draw(st.sampled_from(["", " \n"]))
    if draw(st.integers(0, 9)) == 0:
        path.set("extra", "1")
    if draw(st.integers(0, 9)) == 0:
        del message[list(message).index(path)]
    data = serialize(message).decode()
    for name in draw(st.lists(st.sampled_from(sorted(PAYLOADS)), max_size=3, unique=True)):
        data = data.replace("</message>", PAYLOADS[name] + "</message>")
    edit = draw(st.sampled_from(["none"] * 6 + ["no-id", "body", "groupchat", "server-ns", "id", "error"]))
    if edit == "no-id":
        data = data.replace(' id="tp-0003"', "", 1)
    elif edit == "id":
        # near the 256-character limit, in one- and two-byte characters (both cores count characters)
        ident = draw(st.sampled_from(["x", "é", "ü€"])) * draw(st.sampled_from([1, 128, 200, 256, 257]))
        data = data.replace(' id="tp-0003"', f' id="{ident}"', 1)
    elif edit == "body":
        data = data.replace("pinned end to end", "pinned end to END", 1)
    elif edit == "groupchat":
        data = data.replace('type="chat"', 'type="groupchat"', 1)
    elif edit == "error":
        data = data.replace('type="chat"', 'type="error"', 1)
    elif edit == "server-ns":
        data = data.replace('xmlns="jabber:client"', 'xmlns="jabber:server"', 1)
    return data


SETTINGS = settings(max_examples=400, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@SETTINGS
@given(stanzas())
def test_python_and_lua_decode_the_same_records_and_sign_the_same_bytes(lua, data):
    assert lua({"op": "decode", "stanza": data}) == py_decode(data)


@pytest.mark.parametrize("ident", [c * n for c in ("x", "é", "ü€") for n in (1, 128, 200, 256, 257)])
def test_python_and_lua_count_a_message_id_in_characters(lua, ident):
    """Issue 11, item 5: the Lua core counted the id's bytes, so an id of 200 two-byte characters
    lost every server's record (stripped at every hop) while the Python core signed and checked it."""
    data = serialize(BASE).decode().replace(' id="tp-0003"', f' id="{ident}"', 1)
    theirs, ours = lua({"op": "decode", "stanza": data}), py_decode(data)
    assert theirs == ours
    assert ours["fields"]["id"] == (ident if len(ident) <= constants.MAX_ID_CHARS else "")


@SETTINGS
@given(stanzas(), st.sampled_from([ALICE, A_KEY, None]), st.integers(0, 2))
def test_python_and_lua_keep_the_same_records_at_the_sending_server(lua, data, session_key, keep):
    message = parse_stanza(data.encode())
    path = message.find(f"{{{NS}}}path")
    if path is not None and path.text:
        # what a client sends: its own record, perhaps with forged server records after it
        path.text = " ".join(path.text.split()[:keep + 1])
    data = serialize(message).decode()
    assert lua({"op": "filter", "stanza": data, "session_key": session_key}) == py_filter(data, session_key)


KEY_SETS = [
    [{"key": A_KEY, "status": "current"}],
    [{"key": ALICE, "status": "current"}],
    [{"key": KEYS.signing_key("server/a.example/2").public, "status": "current"},
     {"key": A_KEY, "status": "retired", "not_after": "2026-11-25T09:05:00Z"}],
    [{"key": KEYS.signing_key("server/a.example/2").public, "status": "current"},
     {"key": A_KEY, "status": "retired", "not_after": "2026-11-25T08:00:00Z"}],
    [{"key": KEYS.signing_key("server/a.example/2").public, "status": "current"},
     {"key": A_KEY, "status": "revoked", "since": "2026-11-20T00:00:00Z"}],
    [{"key": KEYS.signing_key("server/a.example/2").public, "status": "current"},
     {"key": A_KEY, "status": "next"}],
    [],  # no key set: fetching it failed
]


@SETTINGS
@given(stanzas(), st.booleans(), st.sampled_from(KEY_SETS),
       st.sampled_from(["s2s-pin", "s2s-dane", "s2s-pkix", "s2s-none", "config"]), st.booleans())
def test_python_and_lua_decide_the_same_chain_at_the_receiving_server(lua, data, takes_part, keys, source, arrived):
    message = parse_stanza(data.encode())
    path = message.find(f"{{{NS}}}path")
    if arrived and path is not None and path.text and len(path.text.split()) > 1:
        path.text = " ".join(path.text.split()[:-1])  # b.example's own record is not there yet
    request = {"op": "receive", "stanza": serialize(message).decode(), "origin": "a.example", "takes_part": takes_part,
               "keys": keys, "key_source": source, "keys_unavailable": not keys}
    assert lua(request) == py_receive(request)


# --- a domain's keys from its DNSSEC TXT records and its POSH document ---------------------

def _flip_last(key: str) -> str:
    """The same key with other bits in its last character: not the canonical base64 of 32 bytes."""
    return key[:-1] + ("B" if key[-1] != "B" else "C")


KEY_TEXTS = [A_KEY, B_KEY, A_KEY + "=", A_KEY[:-1], _flip_last(A_KEY), A_KEY + "A", "", "!" * 43]
TIMES = ["2026-11-25T09:05:00Z", "2026-02-30T00:00:00Z", "2026-11-25 09:05:00", "", "2026-11-25T09:05:00+00:00"]


@st.composite
def txt_texts(draw: st.DrawFn) -> list[str]:
    """TXT record texts, right and wrong: tags in any order and spacing, unknown versions and statuses."""
    def one() -> str:
        tags = [("v", draw(st.sampled_from(["tp1", "tp1", "tp2", "TP1", ""])))]
        if draw(st.integers(0, 9)) > 0:
            alg = draw(st.sampled_from(["ed25519:", "ed25519:", "rsa:", ""]))
            tags.append(("k", alg + draw(st.sampled_from(KEY_TEXTS))))
        status = draw(st.sampled_from([None, None, "next", "retired", "revoked", "current", "bogus"]))
        if status is not None:
            tags.append(("s", status))
        for name in ("until", "since"):
            if draw(st.booleans()):
                tags.append((name, draw(st.sampled_from(TIMES))))
        if draw(st.booleans()):
            tags.append(("x", "ignored"))
        tags = draw(st.permutations(tags)) if draw(st.booleans()) else tags
        space = draw(st.sampled_from(["", " ", "  ", "\t"]))
        text = ";".join(f"{space}{k}{space}={space}{v}{space}" for k, v in tags)
        return text + draw(st.sampled_from(["", ";", "; "]))
    return [one() for _ in range(draw(st.integers(0, 4)))]


@SETTINGS
@given(txt_texts())
def test_python_and_lua_read_the_same_keys_from_txt_records(lua, texts):
    assert lua({"op": "txt", "texts": texts, "domain": "a.example"}) == py_txt(texts, "a.example")


JSON_VALUES = [None, True, 0, 1, -1, 5.0, "x", [], {}]


@st.composite
def posh_documents(draw: st.DrawFn) -> str:
    """POSH documents, right and wrong: entries with every field missing, null or of the wrong type."""
    def entry() -> Any:
        if draw(st.integers(0, 9)) == 0:
            return draw(st.sampled_from(JSON_VALUES))
        out: dict[str, Any] = {}
        if draw(st.integers(0, 9)) > 0:
            out["key"] = draw(st.sampled_from(KEY_TEXTS + ["ed25519:" + A_KEY]))
        for name, choices in (("alg", ["ed25519", "rsa", None, 1]),
                              ("status", ["current", "next", "retired", "revoked", "bogus", None, 2]),
                              ("not_after", TIMES + [None, 3]), ("since", TIMES + [None])):
            if draw(st.booleans()):
                out[name] = draw(st.sampled_from(choices))
        return out
    if draw(st.integers(0, 19)) == 0:
        return json.dumps(draw(st.sampled_from(JSON_VALUES)))
    document: dict[str, Any] = {}
    if draw(st.integers(0, 9)) > 0:
        document["keys"] = [entry() for _ in range(draw(st.integers(0, 3)))]
    if draw(st.booleans()):
        document["expires"] = draw(st.sampled_from([600, 0, 86400, -5, 5.0, "600", None, True]))
    return json.dumps(document)


@SETTINGS
@given(posh_documents())
def test_python_and_lua_read_the_same_keys_from_a_posh_document(lua, document):
    assert lua({"op": "posh", "document": document, "domain": "a.example"}) == py_posh(document, "a.example")


@st.composite
def new_records(draw: st.DrawFn) -> dict[str, Any]:
    chain = draw(st.sampled_from([None, "pass", "absent", "stripped", "fail"]))
    return {"signer": draw(st.sampled_from([None, "b.example"])), "time": draw(st.sampled_from([None, 0, 1795597200])),
            "in_view": draw(st.sampled_from([None, *VIEWS[:4]])), "out_view": draw(st.sampled_from(VIEWS[:4])),
            "in_peer": draw(st.sampled_from([None, "a.example"])),
            "out_peer": draw(st.sampled_from([None, "bob@b.example/desk"])), "chain": chain,
            "chain_reason": draw(st.sampled_from([None, "key-unknown"])),
            "vouch": draw(st.sampled_from([None, "s2s-pin", "link", "config"])),
            "removed": draw(st.sampled_from([None, 0, 1, 999])), "stored": draw(st.sampled_from([None, 1795590000]))}


@SETTINGS
@given(stanzas(), new_records())
def test_python_and_lua_attest_the_same_record(lua, data, record):
    theirs = lua({"op": "attest", "stanza": data, "seed_hex": B_SEED, "record": record})
    assert theirs == py_attest(data, record)


def test_the_generators_reach_each_decision():
    """The generated stanzas are not all alike: both refusals and limits, records kept and removed,
    each chain a receiving server states, and records attested."""
    from hypothesis import find

    quick = settings(max_examples=3000, database=None, derandomize=True)
    for reason, limit in (("malformed", False), ("malformed", True), ("unsupported-algorithm", False),
                          ("unsupported-version", False)):
        find(stanzas(), lambda d, r=reason, lim=limit: py_decode(d).get("refused") == r and py_decode(d)["limit"] == lim,
             settings=quick)
    find(stanzas(), lambda d: "h" in {f.split("=")[0] for r in py_decode(d).get("records", []) for f in
                                      r["text"].split(";")} and len(py_decode(d)["records"]) == 3, settings=quick)
    # refusals: the payload read, and a refuser's record (a server's without 'i=' and 'c=') decoded
    find(stanzas(), lambda d: "refusal" in py_decode(d).get("fields", {}).get("present", ()), settings=quick)
    find(stanzas(), lambda d: any(r["signer"] and r["in_view"] is None for r in py_decode(d).get("records", [])),
         settings=quick)
    for chain, key in (("pass", ALICE), ("absent", ALICE), ("fail", A_KEY), ("fail", None)):
        find(stanzas(), lambda d, c=chain, k=key: py_filter(d, k)["chain"] == c, settings=quick)
    for chain, keys in (("pass", KEY_SETS[0]), ("stripped", KEY_SETS[0]), ("fail", KEY_SETS[1]), ("fail", KEY_SETS[4])):
        find(stanzas(), lambda d, c=chain, k=keys: py_receive({"stanza": d, "origin": "b.example", "takes_part": True,
                                                               "keys": [dict(e, key=B_KEY) if e["key"] == A_KEY else e
                                                                        for e in k],
                                                               "key_source": "s2s-pin"})["chain"] == c, settings=quick)


def test_python_and_lua_sign_a_refusal_alike():
    """The spec's refusal (a.example refuses a trusted requirement that b.example's CA-only link
    cannot meet): both cores read the same refusal payload, byte for byte the spec's example, and
    write the same refuser's record (no 'i=' or 'c='), then the same record of the next server."""
    require_lua()
    data = ("<message xmlns='jabber:client' type='error' from='bob@b.example' to='alice@a.example/phone' id='tp-0003'>"
            + PAYLOADS["refusal"].replace("method='pkix' reason='ca-only'", "method='none' reason='not-verified'")
            + "</message>")
    spec = ("refusal\0type\0cancel\0by\0a.example\0condition\0policy-violation\0hop.method\0none\0hop.peer\0"
            "b.example\0hop.reason\0not-verified\0hop.required\0trusted\0")
    fields = message_fields(parse_stanza(data.encode()))
    assert payload_input(fields, ("refusal",)) == spec
    process = subprocess.run(["lua5.4", str(SERVICE)], input="\n".join(json.dumps(r) for r in (
        {"op": "decode", "stanza": data},
        {"op": "attest", "stanza": data, "seed_hex": B_SEED, "record": REFUSER})) + "\n",
        capture_output=True, text=True, cwd=ROOT, timeout=60)
    decoded_lua, refuser_lua = (json.loads(line) for line in process.stdout.splitlines())
    assert decoded_lua == py_decode(data) and fields.present == ("refusal",)
    assert base64.b64decode(decoded_lua["fields"]["payloads"]).decode().endswith(spec)
    refuser = py_attest(data, REFUSER)
    assert refuser == refuser_lua and ";h=refusal;" in refuser["text"] and ";i=" not in refuser["text"]
    # the next server's record over the refuser's, in both cores
    signed = data.replace("</message>", f"<path xmlns='{NS}'>{refuser['text']}</path></message>")
    next_record = dict(REFUSER, signer="a.example", in_view=VIEWS[0], chain="pass", vouch="s2s-pin",
                       out_peer="alice@a.example/phone")
    theirs = subprocess.run(["lua5.4", str(SERVICE)], input=json.dumps(
        {"op": "attest", "stanza": signed, "seed_hex": B_SEED, "record": next_record}) + "\n",
        capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert json.loads(theirs.stdout) == py_attest(signed, next_record)
    assert py_decode(signed)["records"][0]["in_view"] is None


REFUSER = {"signer": "b.example", "time": 1795597200, "in_view": None, "out_view": VIEWS[0], "in_peer": None,
           "out_peer": None, "chain": None, "chain_reason": None, "vouch": None, "removed": None, "stored": None}


# --- properties of the Python core ---------------------------------------------------------

# Small alphabets make neighbouring fields collide if the encoding let them: a body ending where
# a subject begins, a language tag moving between elements, a report attribute becoming a hop's.
TEXT = st.text(alphabet="ab@.=\n ", max_size=3)


@st.composite
def signed_contents(draw: st.DrawFn) -> tuple[MessageFields, str, str]:
    def group() -> tuple[tuple[str | None, str], ...]:
        return tuple(draw(st.lists(st.tuples(st.sampled_from([None, "en", "e"]), TEXT), max_size=2)))

    report = None
    if draw(st.booleans()):
        own = tuple(sorted(draw(st.dictionaries(st.sampled_from(["for", "verdict", "v"]), TEXT, max_size=2)).items()))
        hops = tuple(tuple(sorted(d.items())) for d in draw(st.lists(
            st.dictionaries(st.sampled_from(["from", "to", "t"]), TEXT, max_size=2), max_size=2)))
        report = (own, *hops)
    fields = MessageFields(sender=draw(st.sampled_from(["a@x/r", "a@x"])), to=draw(st.sampled_from(["b@y", "b@y/"])),
                           id=draw(st.sampled_from(["1", "11"])), type=draw(st.sampled_from(["chat", "normal"])),
                           bodies=group(), subjects=group(), threads=group(),
                           require=draw(st.sampled_from([None, "trusted", "weak"])), report=report)
    view = View(draw(st.sampled_from(["pin", "pkix"])), Result.PASS, "1.3", draw(st.sampled_from(["AAAAAAAAAAAAAAAA",
                                                                                              "AAAAAAAAAAAAAAAB"])))
    att = attest(fields, KEYS.signing_key("client/alice@a.example/phone"), out_view=view,
                 time=draw(st.sampled_from([None, 1795597200])))
    return fields, draw(st.sampled_from(["", "x", "xx"])), att.unsigned


@settings(max_examples=400, deadline=None, derandomize=True)
@given(signed_contents(), signed_contents())
def test_the_signing_input_is_injective(first, second):
    """Two different messages, previous records or records never sign the same bytes."""
    (f1, p1, u1), (f2, p2, u2) = first, second
    same_content = f1 == f2 and (p1, u1) == (p2, u2)
    assert (signing_input(f1, p1, u1) == signing_input(f2, p2, u2)) == same_content


def test_an_empty_report_does_not_sign_like_no_report():
    """v0 signed an empty <report/> like no report at all (found by this test as a strict xfail);
    v1 writes the token before the report's attributes, in both cores."""
    fields = MessageFields(sender="a@x/r", to="b@y", id="1", type="chat")
    unsigned = attest(fields, KEYS.signing_key("client/alice@a.example/phone"),
                      out_view=View("pin", Result.PASS, "1.3", "AAAAAAAAAAAAAAAA")).unsigned
    assert signing_input(fields, "", unsigned) != signing_input(replace(fields, report=((),)), "", unsigned)


#: both ends' views of a client's hop: the server's methods (how the client authenticated) and the
#: client's (how it verified its server), with results, TLS versions and two server keys
C2S_SERVER_VIEWS = [f"{m},{r},{t},{k}" for m in ("tls-unique", "tls-server-end-point", "device", "sasl")
                    for r in ("pass", "none") for t in ("1.3",) for k in ("AAAAAAAAAAAAAAAA", "4T+Oyg225ADja+G0")]
C2S_CLIENT_VIEWS = [None, "pkix,none,none,-", "pin,pin-mismatch,1.3,AAAAAAAAAAAAAAAA", "sasl,none,none,-"] + [
    f"{m},{r},1.3,{k}" for m in ("pin", "dane-ee", "pkix", "tofu", "none", "dialback", "unknown-method")
    for r in ("pass", "none") for k in ("AAAAAAAAAAAAAAAA", "4T+Oyg225ADja+G0")]


@SETTINGS
@given(st.sampled_from(["trusted", "weak"]), st.sampled_from(C2S_SERVER_VIEWS), st.sampled_from(C2S_CLIENT_VIEWS),
       st.sampled_from([None, "key-unknown"]))
def test_python_and_lua_judge_a_clients_hop_against_a_requirement_alike(lua, verdict, server_view, client_view,
                                                                       missing):
    """What a sending server checks of H1, and a recipient's server of the last hop."""
    found = client_hop_problem(verdict, decode_view(server_view, "view"),
                               decode_view(client_view, "view") if client_view is not None else None, missing)
    ours = {"meets": True} if found is None else {"method": found[0], "reason": str(found[1])}
    assert lua({"op": "client_hop", "verdict": verdict, "server_view": server_view, "client_view": client_view,
                "missing": missing}) == ours
