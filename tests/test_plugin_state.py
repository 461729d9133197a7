"""The slixmpp plugin's delivery receipts and key refresh as a state machine (hypothesis.stateful).

A client bound as tester@localhost/resource (slixmpp's mock stream, as in test_xmpp_plugin.py)
receives messages from alice@localhost, signed by its server 'localhost', each asking for a
delivery receipt.  The rules interleave what can happen to them: a message arrives, the
application acknowledges one, the server's keys change, the server answers a disco#info query
(so the messages waiting for its keys are checked), time passes (``receipt_wait`` ends),
the session ends, a new one starts.  The event loop's clock is the test's: a held receipt's
timer fires exactly when the test moves the clock past it.

What must hold whatever the order (XEP: Delivery Reports; Keys and Discovery Caching):

* every acknowledged message's receipt is sent exactly once: at once, when its message's check
  completes, when ``receipt_wait`` ends, or when the session ends;
* a receipt carries a report exactly when its message was checked in time, and that report is
  the verdict the application was given for the message; no receipt goes before its message was
  checked unless the wait ended, or the session did, or there was no session to sign it;
* the plugin's records stay bounded: no receipt is left marked as released once the send queue
  has run, held receipts are only those the model holds, the messages waiting for a check are
  only those the model has not seen checked;
* once the server answered, the anchor has exactly the keys it published; a message signed with
  a key the server publishes verifies, and every message gets exactly one verdict.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from unittest import mock

import pytest
import trustpath.client.slixmpp
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from lxml import etree
from slixmpp.xmlstream import ET
from slixmpp_stream import MockStream, disco_result
from trustpath.client.slixmpp.plugin import TrustPath
from trustpath.core.attest import attest
from trustpath.core.codec import add_record, serialize
from trustpath.core.keys import SigningKey, short_spki
from trustpath.core.model import NS, Chain, MessageFields, Result, View

trustpath.client.slixmpp.register()

ME = "tester@localhost/resource"
SENDER = "alice@localhost/phone"
SPKI = "N9MO06A8vDfKkrcopktPu0JxbmTEFm9uerhE8D5TBSs="
T0 = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
TICK = 2.0  # seconds the clock moves at a time
RECEIPT_WAIT = 2 * TICK
DISCO_INFO = "http://jabber.org/protocol/disco#info"


def signed_message(key: SigningKey, ident: str) -> str:
    """A message from alice@localhost, signed by 'localhost' with ``key``, asking for a receipt."""
    fields = MessageFields(sender=SENDER, to="tester@localhost", id=ident, type="chat", bodies=((None, ident),))
    view = View("sasl", Result.PASS, "1.3", short_spki(SPKI))  # how each client authenticated to localhost
    record = attest(fields, key, signer="localhost", time=T0, in_view=view, chain=Chain.ABSENT, out_view=view,
                         out_peer=ME)
    root = etree.fromstring(f"<message xmlns='jabber:client' from='{SENDER}' to='{fields.to}' id='{ident}' "
                            f"type='chat'><body>{ident}</body></message>")
    add_record(root, record)
    # the request is not signed (XEP-0184 is outside the signing input): added after
    etree.SubElement(root, "{urn:xmpp:receipts}request")
    return serialize(root).decode()


class Stream(MockStream):
    """slixmpp's mock stream, used outside unittest's runner."""

    TLS = ssl.create_default_context()

    def stream_start(self, **kwargs: Any) -> None:
        # the mock stream has no TLS: one context for every client, instead of reading the
        # system's CA store twice for each example
        with mock.patch("ssl.create_default_context", lambda *_, **__: self.TLS):
            super().stream_start(**kwargs)


class LoopClock:
    """The event loop's clock, moved only by the test (``loop.time`` is what ``call_later`` and
    the loop's timer queue read)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.base = loop.time()
        self.ticks = 0
        loop.time = self  # type: ignore[method-assign]

    def __call__(self) -> float:
        return self.base + self.ticks * TICK

    def restore(self) -> None:
        del self.loop.time


@dataclass
class Received:
    """The model of one received message."""

    key: SigningKey  # the server key it was signed with
    in_unchecked: bool = True  # the plugin waits for its check (no session ended since it arrived)
    verdict: str | None = None  # the verdict the application was given
    status: str | None = None  # its server record's status
    reportable: bool = False  # checked while the plugin waited for it: its receipt can carry a report
    acknowledged: bool = False
    held_since: int | None = None  # the clock tick its receipt was held at
    receipts: int = 0  # receipts sent for it
    may_go_bare: bool = False  # its receipt may go without a report (the wait ended, ...)


class ReceiptMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.stream = Stream()
        self.stream.stream_start(jid=ME, plugins=["trust_path"], plugin_config={"trust_path": {
            "now": lambda: T0, "receipt_wait": RECEIPT_WAIT, "key_refresh_interval": 0, "disco_timeout": 10 ** 6}})
        self.plugin: TrustPath = self.stream.xmpp.plugin["trust_path"]
        self.verdicts: list[tuple[str, str, str]] = []  # (id, verdict, last record's status)
        self.stream.xmpp.add_event_handler("trust_path_verdict", lambda event: self.verdicts.append(
            (event.stanza["id"], event.report.verdict.value, event.report.records[-1].status)))
        self.invalid: list[object] = []
        self.stream.xmpp.add_event_handler("trust_path_invalid", self.invalid.append)
        self.messages: dict[str, Received] = {}
        self.server_key = SigningKey.generate()
        self.anchor_key: str | None = None  # the key the server last published to this session
        self.live = True  # a session with a key (bound, not ended)
        self.refreshing = False
        self.disco: str | None = None  # the id of the disco#info query waiting for an answer
        self.drain()  # the session is bound: its client key is announced, the server's keys asked for
        self.clock = LoopClock(self.stream.xmpp.loop)

    # --- the wire ------------------------------------------------------------------------------
    def drain(self) -> list[ET.Element]:
        """Read what the client wrote: answer its session-key announcement, note its disco#info
        query, check and count its receipts.  Nothing else may be written."""
        receipts = []
        while (xml := self.stream.sent()) is not None:
            if xml.tag == "{jabber:client}iq" and xml.find(f"{{{NS}}}session-key") is not None:
                self.stream.recv(f"<iq type='result' id='{xml.get('id')}' from='localhost'/>")
            elif xml.tag == "{jabber:client}iq" and xml.find(f"{{{DISCO_INFO}}}query") is not None:
                assert self.disco is None, "one query for the server's keys at a time"
                self.disco = xml.get("id")
            else:
                received = xml.find("{urn:xmpp:receipts}received")
                assert xml.tag == "{jabber:client}message" and received is not None, f"unexpected: {xml.tag}"
                receipts.append(xml)
                self.check_receipt(received.get("id"), xml.find(f"{{{NS}}}report"))
        assert not self.plugin.receipts.released, "a released receipt is let through once, then forgotten"
        return receipts

    def check_receipt(self, ident: str, report: ET.Element | None) -> None:
        message = self.messages[ident]
        message.receipts += 1
        assert message.receipts == 1, f"the receipt for {ident} was sent {message.receipts} times"
        assert message.acknowledged
        if report is None:
            assert message.may_go_bare or not message.reportable, f"{ident}'s receipt lost the report"
        else:
            assert message.verdict is not None, f"{ident}'s receipt went before its message was checked"
            assert message.reportable
            assert (report.get("for"), report.get("verdict")) == (ident, message.verdict)
        message.held_since = None

    def answer_disco(self) -> None:
        assert self.disco is not None
        self.stream.recv(disco_result(id=self.disco, key=self.server_key.public, jid=ME))
        self.disco = None
        self.refreshing = False
        self.anchor_key = self.server_key.public
        waiting = [ident for ident, m in self.messages.items() if m.verdict is None]
        self.take_verdicts(waiting)
        self.drain()

    def take_verdicts(self, idents: list[str]) -> None:
        """The verdicts since the last step are exactly those of ``idents``, in order."""
        new, self.verdicts = self.verdicts, []
        assert [ident for ident, _, _ in new] == idents
        for ident, verdict, status in new:
            message = self.messages[ident]
            message.verdict, message.status = verdict, status
            message.reportable = message.in_unchecked
            message.in_unchecked = False
            if message.key.public == self.anchor_key:
                assert status == "ok", f"{ident}, signed with a published key, is {status}"
            else:
                assert status != "ok"

    # --- rules ---------------------------------------------------------------------------------
    @initialize(waiting=st.integers(0, 3), answered=st.booleans(), rotated=st.booleans())
    def the_session_begins(self, waiting: int, answered: bool, rotated: bool) -> None:
        """``waiting`` messages arrive and are acknowledged while the first disco#info query is
        still out (their receipts are held); the server may answer, and then change its keys."""
        for _ in range(waiting):
            self.a_message_requesting_a_receipt_arrives()
            self.acknowledge(next(reversed(self.messages)))
        if answered:
            self.the_server_answers_with_its_keys_and_the_waiting_messages_are_checked()
            if rotated:
                self.the_servers_keys_change()

    @rule()
    def a_message_requesting_a_receipt_arrives(self) -> None:
        ident = f"m{len(self.messages)}"
        self.messages[ident] = Received(self.server_key)
        anchored = self.live and self.anchor_key is not None and not self.refreshing and self.disco is None
        self.stream.recv(signed_message(self.server_key, ident))
        if anchored and self.server_key.public == self.anchor_key:
            self.take_verdicts([ident])
        elif anchored:
            # a key the session does not know: the server is asked once more before any verdict
            self.take_verdicts([])
            self.refreshing = True
            event("an unknown key: the server is asked again")
        else:
            self.take_verdicts([])
        self.drain()
        if self.refreshing:
            assert self.disco is not None, "an unknown key makes the plugin ask for the server's keys"

    @precondition(lambda self: any(not m.acknowledged for m in self.messages.values()))
    @rule(data=st.data())
    def the_application_acknowledges_a_message(self, data: st.DataObject) -> None:
        # newest first: the message most likely still waiting for its check
        self.acknowledge(data.draw(st.sampled_from([i for i, m in reversed(self.messages.items())
                                                    if not m.acknowledged])))

    def acknowledge(self, ident: str) -> None:
        """The application sends the receipt for ``ident`` (as slixmpp's xep_0184 does)."""
        message = self.messages[ident]
        message.acknowledged = True
        receipt = self.stream.xmpp.make_message(mto=SENDER, mtype="chat")
        receipt.xml.append(ET.fromstring(f"<received xmlns='urn:xmpp:receipts' id='{ident}'/>"))
        receipt.send()
        held = self.live and message.verdict is None and message.in_unchecked
        if not self.live:
            message.may_go_bare = True  # no session key: nothing is signed, no report either
        if held:
            message.held_since = self.clock.ticks
        sent = self.drain()
        assert (len(sent) == 0) == held, f"{ident}: held {held}, sent {len(sent)}"
        if held:
            event("a receipt is held")
            _, timer = self.plugin.receipts.held[(SENDER, ident)]
            assert timer.when() == pytest.approx(self.clock() + RECEIPT_WAIT)

    @precondition(lambda self: self.disco is not None)
    @rule()
    def the_server_answers_with_its_keys_and_the_waiting_messages_are_checked(self) -> None:
        held = {ident for ident, m in self.messages.items() if m.held_since is not None}
        self.answer_disco()
        for ident in held:
            assert self.messages[ident].receipts == 1, f"{ident}'s receipt goes once its message is checked"
        if held:
            event("held receipts go when their messages are checked")

    @rule()
    def the_servers_keys_change(self) -> None:
        self.server_key = SigningKey.generate()

    @rule(ticks=st.sampled_from([1, 2]))
    def time_passes(self, ticks: int) -> None:
        """Half of ``receipt_wait`` or all of it: a receipt held for one tick stays, one held for two goes."""
        self.clock.ticks += ticks
        expired = {ident for ident, m in self.messages.items()
                   if m.held_since is not None and self.clock.ticks - m.held_since >= RECEIPT_WAIT / TICK}
        for ident in expired:
            self.messages[ident].may_go_bare = True
        sent = {xml.find("{urn:xmpp:receipts}received").get("id") for xml in self.drain()}
        assert sent == expired, "exactly the receipts whose wait ended go, without a report"
        if expired:
            event("held receipts go when their wait ends")

    @precondition(lambda self: self.live)
    @rule()
    def the_session_ends(self) -> None:
        if self.end_session():
            event("held receipts go when the session ends")

    def end_session(self) -> set[str]:
        """``session_end``; the receipts that were held."""
        held = {ident for ident, m in self.messages.items() if m.held_since is not None}
        for ident in held:
            self.messages[ident].may_go_bare = True
        for message in self.messages.values():
            message.in_unchecked = False
        self.stream.xmpp.event("session_end")
        self.live, self.refreshing, self.disco, self.anchor_key = False, False, None, None
        sent = {xml.find("{urn:xmpp:receipts}received").get("id") for xml in self.drain()}
        assert sent == held, "every held receipt goes when the session ends"
        assert self.plugin.anchor is None and self.plugin.session_key is None
        return held

    @precondition(lambda self: not self.live)
    @rule()
    def a_new_session_starts(self) -> None:
        self.stream.xmpp.event("session_bind", self.stream.xmpp.boundjid)
        self.live = True
        self.drain()
        assert self.disco is not None, "a new session asks for the server's keys"

    # --- invariants ----------------------------------------------------------------------------
    @invariant()
    def every_path_can_be_read(self) -> None:
        assert self.invalid == []

    @invariant()
    def the_anchor_is_the_published_keys(self) -> None:
        anchor = self.plugin.anchor
        if self.live and self.anchor_key is not None and not self.refreshing and self.disco is None:
            assert anchor is not None and [k.key for k in anchor.keys.keys] == [self.anchor_key]
        else:
            assert anchor is None, "while the server's keys are asked for, messages wait"

    @invariant()
    def the_records_stay_bounded(self) -> None:
        receipts = self.plugin.receipts
        assert set(receipts.held) == {(SENDER, i) for i, m in self.messages.items() if m.held_since is not None}
        assert receipts.unchecked == {(SENDER, i) for i, m in self.messages.items() if m.in_unchecked}
        assert receipts.released == set()
        waiting = [message["id"] for message, *_ in self.plugin.receiver.pending]
        assert waiting == [i for i, m in self.messages.items() if m.verdict is None]

    def teardown(self) -> None:
        try:
            if self.live:
                self.end_session()  # the last held receipts go now
            for ident, message in self.messages.items():
                assert message.receipts == (1 if message.acknowledged else 0), ident
        finally:
            self.clock.restore()
            self.stream.xmpp.plugin.disable("trust_path")
            self.stream.stream_close()


ReceiptMachine.TestCase.settings = settings(max_examples=50, stateful_step_count=25, deadline=None,
                                            suppress_health_check=[HealthCheck.too_slow])
TestReceiptsAndKeyRefresh = ReceiptMachine.TestCase
