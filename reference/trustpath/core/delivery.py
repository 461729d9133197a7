"""Delivery reports (XEP: Delivery Reports): the recipient side's report of a message's path,
carried back to the sender in its delivery receipt (XEP-0184).

The recipient's client turns its :class:`~trustpath.core.verify.Report` into a ``<report/>``
(:func:`report_for`, :func:`report_element`) and signs it with the receipt, like a body.  The
sender's client reads it back (:func:`find_report`, :func:`decode_report`) once it has verified
the receipt's own path, and :func:`delivery_of` / :func:`judge_delivery` decide what it may
show: never more than the recipient reported, never more than the receipt's own path can carry,
at best unknown for a report not bound to a message this client sent to that peer, and untrusted
for a report about another copy of the message.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from lxml import etree

from . import constants
from .timefmt import WIRE_TIME
from .codec import METHOD_PATTERN, REASON_PATTERN, SIG_PATTERN, decode_path, find_message, parse_stanza
from .errors import MalformedStanza
from .model import MAX_REPORT_HOPS, NS, Strength, Verdict, is_client_jid
from .verify import Report

_STRENGTHS = {s.name.lower(): s for s in Strength}
_RESULTS = ("pass", "fail", "none", "unknown")
_HOP_ATTRS = frozenset({"from", "to", "strength", "result", "reason", "client-method", "server-method", "key-source",
                        "time"})
_REPORT_ATTRS = frozenset({"for", "verdict", "origin"})
_REASON, _METHOD, _SIG = REASON_PATTERN, METHOD_PATTERN, SIG_PATTERN
_TIME = WIRE_TIME
_KEY_SOURCES = (*constants.KEY_SOURCES, "anchor")
NS_RECEIPTS = "urn:xmpp:receipts"
_RANK = {Verdict.UNTRUSTED: 0, Verdict.UNKNOWN: 1, Verdict.WEAK: 2, Verdict.TRUSTED: 3}


@dataclass(frozen=True, slots=True)
class ReportedHop:
    """One hop as the recipient reported it: what its :class:`~trustpath.core.verify.HopReport` said,
    without the views (the recipient's words, not facts the sender can check)."""

    label: str
    role: str
    sender: str
    receiver: str
    strength: Strength
    result: str  # pass | fail | none | unknown
    reason: str | None = None
    client_method: str | None = None
    server_method: str | None = None
    key_source: str | None = None
    time: str | None = None

    @property
    def method(self) -> str:
        """As in a :class:`~trustpath.core.verify.HopReport`: ``'pin / SCRAM-SHA-256'``, ``'pkix'``, ..."""
        return " / ".join(m for m in (self.client_method, self.server_method) if m) or "unknown"

    def to_json(self) -> dict[str, object]:
        return {"hop": self.label, "role": self.role, "from": self.sender, "to": self.receiver,
                "method": self.method, "result": self.result, "reason": self.reason,
                "strength": self.strength.name.lower(), "key_source": self.key_source, "time": self.time}


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    """What the recipient's client said about one message's path, hop by hop.

    ``for_id`` is the acknowledged message's id; ``origin`` the ``sig`` of the first record
    of the path the recipient verified (the sender's own), None if there was none.
    """

    for_id: str
    verdict: Verdict
    origin: str | None
    hops: tuple[ReportedHop, ...]

    @property
    def weakest(self) -> tuple[str, ...]:
        """The labels of the weakest hops (empty for a trusted path), as in a :class:`Report`."""
        if self.verdict is Verdict.TRUSTED or not self.hops:
            return ()
        low = min(h.strength for h in self.hops)
        return tuple(h.label for h in self.hops if h.strength == low)

    def to_json(self) -> dict[str, object]:
        return {"for": self.for_id, "verdict": self.verdict.value, "origin": self.origin,
                "weakest": list(self.weakest), "hops": [h.to_json() for h in self.hops]}


@dataclass(frozen=True, slots=True)
class Delivery:
    """What the sender may show for a message once its receipt arrived.

    ``verdict`` is the lowest of the recipient's reported verdict and the verdict on the
    receipt's own path (``receipt``), in the order untrusted < unknown < weak < trusted.
    ``limited_by`` says why it is lower than reported: ``'receipt'`` (the receipt's own path
    cannot carry more), ``'origin'`` (the report is about another copy of the message, so it
    counts as untrusted) or ``'unbound'`` (this client has no record of sending that message to
    the receipt's sender, so the report is at best unknown); None when the report itself decided.
    """

    verdict: Verdict
    reported: DeliveryReport
    receipt: Report
    limited_by: str | None = None

    def to_json(self) -> dict[str, object]:
        return {"verdict": self.verdict.value, "limited_by": self.limited_by, "reported": self.reported.to_json(),
                "receipt": self.receipt.to_json()}


def report_for(report: Report, for_id: str, origin: str | None) -> DeliveryReport:
    """The delivery report of the message ``for_id`` that the recipient verified as ``report``;
    ``origin`` is the ``sig`` of that path's first record (None if it had none)."""
    hops = tuple(ReportedHop(label=h.label, role=h.role, sender=h.sender, receiver=h.receiver, strength=h.strength,
                             result=h.result, reason=h.reason,
                             client_method=h.client_view.method if h.client_view is not None else None,
                             server_method=h.server_view.method if h.server_view is not None else None,
                             key_source=h.key_source, time=h.time)
                 for h in report.hops)
    return DeliveryReport(for_id=for_id, verdict=report.verdict, origin=origin, hops=hops)


def report_element(report: DeliveryReport) -> etree._Element:
    """``<report xmlns='urn:xmpp:trust-path:0' for='...' verdict='...' origin='...'><hop .../>...</report>``"""
    element = etree.Element(f"{{{NS}}}report", nsmap={None: NS})
    element.set("for", report.for_id)
    element.set("verdict", report.verdict.value)
    if report.origin is not None:
        element.set("origin", report.origin)
    for hop in report.hops:
        child = etree.SubElement(element, f"{{{NS}}}hop")
        for name, value in (("from", hop.sender), ("to", hop.receiver), ("strength", hop.strength.name.lower()),
                            ("result", hop.result), ("reason", hop.reason), ("client-method", hop.client_method),
                            ("server-method", hop.server_method), ("key-source", hop.key_source),
                            ("time", hop.time)):
            if value is not None:
                child.set(name, value)
    return element


def find_report(message: etree._Element) -> etree._Element | None:
    """The ``<report/>`` a message carries, or None (``message_fields`` refuses two)."""
    found = [c for c in message if isinstance(c.tag, str) and c.tag == f"{{{NS}}}report"]
    if len(found) > 1:
        raise MalformedStanza("more than one <report/> in a message")
    return found[0] if found else None


def _role(index: int, sender: str, receiver: str) -> str:
    if index == 0 and is_client_jid(sender):
        return "sender-c2s"
    if is_client_jid(receiver):
        return "recipient-c2s"
    return "s2s"


def _token(value: str | None, name: str, pattern: re.Pattern[str]) -> str | None:
    if value is not None and not pattern.match(value):
        raise MalformedStanza(f"<hop/> '{name}' has an unexpected form: {value[:80]!r}")
    return value


def decode_report(element: etree._Element) -> DeliveryReport:
    """A ``<report/>`` read strictly: the attributes and values the XEP defines, one to
    ``MAX_REPORT_HOPS`` hops, and a verdict that is the one its hops give."""
    extra = set(element.attrib) - _REPORT_ATTRS
    if extra:
        raise MalformedStanza(f"<report/> has unknown attribute(s) {sorted(extra)}")
    for_id = element.get("for")
    if not for_id or len(for_id) > 256:
        raise MalformedStanza("<report/> needs 'for', the id of the acknowledged message (at most 256 characters)")
    try:
        verdict = Verdict(element.get("verdict", ""))
    except ValueError:
        raise MalformedStanza(f"<report/> 'verdict' must be one of trusted, weak, untrusted, unknown, "
                              f"got {element.get('verdict')!r}") from None
    origin = element.get("origin")
    if origin is not None and not _SIG.match(origin):
        raise MalformedStanza("<report/> 'origin' must be a record's 'sig' (86 base64 characters, no padding)")
    # only the attributes and the <hop/> children are signed: text and other elements are not
    # part of the report, and are ignored rather than letting anyone on the way hide it
    children = [c for c in element if isinstance(c.tag, str) and c.tag == f"{{{NS}}}hop"]
    if not children:
        raise MalformedStanza("<report/> needs at least one <hop/>")
    if len(children) > MAX_REPORT_HOPS:
        raise MalformedStanza(f"{len(children)} hops in a <report/>; the limit is {MAX_REPORT_HOPS}")
    hops = []
    for i, child in enumerate(children):
        extra = set(child.attrib) - _HOP_ATTRS
        if extra:
            raise MalformedStanza(f"<hop/> has unknown attribute(s) {sorted(extra)}")
        sender, receiver = child.get("from"), child.get("to")
        if not sender or not receiver or len(sender) > 3071 or len(receiver) > 3071:
            raise MalformedStanza("<hop/> needs 'from' and 'to', JIDs of at most 3071 characters")
        strength = _STRENGTHS.get(child.get("strength", ""))
        if strength is None:
            raise MalformedStanza(f"<hop/> 'strength' must be one of {sorted(_STRENGTHS)}, got {child.get('strength')!r}")
        result = child.get("result", "")
        if result not in _RESULTS:
            raise MalformedStanza(f"<hop/> 'result' must be one of {list(_RESULTS)}, got {result!r}")
        key_source = child.get("key-source")
        if key_source is not None and key_source not in _KEY_SOURCES:
            raise MalformedStanza(f"<hop/> 'key-source' must be one of {list(_KEY_SOURCES)}, got {key_source!r}")
        hops.append(ReportedHop(
            label=f"H{i + 1}", role=_role(i, sender, receiver), sender=sender, receiver=receiver,
            strength=strength, result=result, reason=_token(child.get("reason"), "reason", _REASON),
            client_method=_token(child.get("client-method"), "client-method", _METHOD),
            server_method=_token(child.get("server-method"), "server-method", _METHOD),
            key_source=key_source, time=_token(child.get("time"), "time", _TIME)))
    implied = min(h.strength for h in hops).verdict
    if implied is not verdict:
        raise MalformedStanza(f"<report/> says {verdict.value!r}, but its hops give {implied.value!r}")
    return DeliveryReport(for_id=for_id, verdict=verdict, origin=origin, hops=tuple(hops))


def judge_delivery(reported: DeliveryReport, receipt: Report, *, sent_origin: str | None) -> Delivery:
    """What the sender may show: ``reported`` (decoded from the receipt) bounded by ``receipt``,
    the verdict on the receipt's own path.  ``sent_origin`` is the ``sig`` of the record the
    sender's client made for the acknowledged message (None if it made none)."""
    if sent_origin is not None and reported.origin != sent_origin:
        return Delivery(Verdict.UNTRUSTED, reported, receipt, "origin")
    if _RANK[receipt.verdict] < _RANK[reported.verdict]:
        return Delivery(receipt.verdict, reported, receipt, "receipt")
    return Delivery(reported.verdict, reported, receipt)


def delivery_of(data: bytes, receipt: Report, sent: Mapping[tuple[str, str], str | None], *,
                account: str | None = None) -> Delivery | None:
    """The :class:`Delivery` a received delivery receipt (or a carbon or archive copy of one)
    carries, judged against ``receipt`` (the verdict on that stanza's own path, from
    :func:`trustpath.core.receive.verify_stanza`); None when it is not a receipt with a ``<report/>``.

    ``sent`` maps ``(recipient's bare JID, message id)`` of each message this client sent to the
    ``sig`` of its own record on it (None if it sent it without one).  A report is bound to
    such a message only if the receipt comes from that recipient; otherwise it is at best
    unknown.  A receipt that ``account`` (this client's bare JID) sent itself, copied back by a
    carbon or read from its archive, is about a message it received, and gives None.  Raises :class:`~trustpath.core.errors.MalformedStanza` for a report that cannot be read,
    or whose ``for`` is not the id the receipt acknowledges.
    """
    message = find_message(parse_stanza(data)).message
    element = find_report(message)
    acknowledged = message.find(f"{{{NS_RECEIPTS}}}received")
    if element is None or acknowledged is None:
        return None  # a report outside a receipt acknowledges nothing
    if account is not None and (message.get("from") or "").split("/", 1)[0] == account:
        return None
    reported = decode_report(element)
    if acknowledged.get("id") != reported.for_id:
        raise MalformedStanza(f"<report/> is for {reported.for_id!r}, but the receipt acknowledges "
                              f"{acknowledged.get('id')!r}")
    key = ((message.get("from") or "").split("/", 1)[0], reported.for_id)
    if key not in sent:
        # not a message this client sent to the receipt's sender (or one it no longer remembers)
        verdict = min((reported.verdict, receipt.verdict, Verdict.UNKNOWN), key=_RANK.__getitem__)
        return Delivery(verdict, reported, receipt, "unbound")
    return judge_delivery(reported, receipt, sent_origin=sent[key])


def report_of_stanza(data: bytes, report: Report) -> DeliveryReport:
    """The delivery report a recipient's client sends for the message in ``data`` (as it was
    received), which it verified as ``report``: ``for`` is the message's id, ``origin`` the sig of
    its first record when the message's sender signed it (XEP rule 37)."""
    message = find_message(parse_stanza(data)).message
    ident = message.get("id")
    if not ident:
        raise MalformedStanza("a message without an 'id' cannot be acknowledged with a report")
    path = decode_path(message)
    first = path.records[0] if path is not None and path.records else None
    origin = first.sig if first is not None and first.signer is None else None  # the sender's own record
    return report_for(report, ident, origin)


def sent_by_another_device(data: bytes, account: str) -> tuple[tuple[str, str], str | None] | None:
    """For a carbon copy (``<sent/>``) of a message another device of ``account`` (a bare JID)
    sent: ``((recipient's bare JID, id), sig of that device's record or None)``, the entry a
    client adds to the ``sent`` mapping of :func:`delivery_of` so that the recipient's report can
    be bound on every device.  None for anything else.  Call it only for a stanza
    :func:`trustpath.core.receive.verify_stanza` accepted (it refuses a carbon from another account)."""
    received = find_message(parse_stanza(data))
    message = received.message
    sender, to, ident = message.get("from") or "", message.get("to") or "", message.get("id")
    if received.wrapper != "carbon-sent" or not ident or not to or sender.split("/", 1)[0] != account:
        return None
    path = decode_path(message)
    first = path.records[0] if path is not None and path.records else None
    return (to.split("/", 1)[0], ident), (first.sig if first is not None and first.signer is None else None)
