"""Checking a received path and computing the verdict (XEP: At the Recipient Client, Hop
Strength and Verdict).

Pure: the message, its path, what the verifier trusts (:class:`Anchor`) and the current time go
in; a :class:`Report` comes out.  The steps have the XEP's names, and the Lua core's verifier has
the same functions: :func:`node_order`, :func:`check_replay`, :func:`check_anchor`,
:func:`walk_backwards`, :func:`reconstruct_hops`, :func:`check_clock_skew`, :func:`evaluate_hop`,
:func:`overall_verdict`.
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass, field, replace
from datetime import datetime

from . import constants
from .errors import MalformedStanza, UsageError
from .keys import KeySet, verify_signature
from .model import (
    RECORD_FAILURES,
    DEFAULT_MAX_SKEW,
    KEY_SOURCE_STRENGTH,
    Record,
    Chain,
    HopResult,
    KeySource,
    MessageFields,
    Path,
    Reason,
    Result,
    Status,
    Strength,
    Verdict,
    View,
    bare,
    binds_client,
    domain_of,
    is_client_jid,
    method_reason,
    method_strength,
)
from .signing import message_prefix, payload_input, signing_input
from .timefmt import epoch, format_epoch, format_time, from_epoch, require_aware


@dataclass(frozen=True, slots=True)
class Anchor:
    """What the verifier already trusts.

    ``server`` signed the last record and ``keys`` are its published keys, learned over the
    verifier's own verified link; ``me`` is the verifier's own full JID; ``view`` is its own view
    of the last hop; ``takes_part`` says whether ``server`` announces trust-path.
    """

    server: str
    keys: KeySet
    me: str
    view: View
    takes_part: bool = True


@dataclass(frozen=True, slots=True)
class HopReport:
    """One hop as the verifier sees it."""

    label: str
    role: str
    sender: str
    receiver: str
    client_view: View | None
    server_view: View | None
    method: str
    result: HopResult
    reason: Reason | str | None  # a Reason, or a code a view stated that this version does not define
    strength: Strength
    key_source: str | None = None
    time: str | None = None

    def to_json(self) -> dict[str, object]:
        def view(v: View | None) -> str | None:
            return None if v is None else v.text()

        return {"hop": self.label, "role": self.role, "from": self.sender, "to": self.receiver,
                "method": self.method, "result": self.result, "reason": self.reason,
                "strength": self.strength.name.lower(), "key_source": self.key_source, "time": self.time,
                "client_view": view(self.client_view), "server_view": view(self.server_view)}


@dataclass(frozen=True, slots=True)
class RecordCheck:
    signer: str
    status: Status


@dataclass(frozen=True, slots=True)
class Report:
    """The verdict on one message's path, hop by hop.  ``covers`` are the payloads the sender's
    record covers (XEP: Covered Payloads); the notes name what the message carries beyond them."""

    verdict: Verdict
    hops: tuple[HopReport, ...]
    weakest: tuple[str, ...]
    records: tuple[RecordCheck, ...]
    notes: tuple[str, ...] = field(default=())
    covers: tuple[str, ...] = ()

    def to_json(self) -> dict[str, object]:
        return {"verdict": self.verdict.value, "weakest": list(self.weakest),
                "hops": [h.to_json() for h in self.hops],
                "records": [{"signer": a.signer, "status": a.status} for a in self.records],
                "notes": list(self.notes), "covers": list(self.covers)}


@dataclass(slots=True)
class _Hop:
    """A hop while it is being reconstructed (step 6), before it is evaluated."""

    sender: str
    receiver: str
    up: int | None = None  # the record of the sending node (its out-view describes this hop)
    down: int | None = None  # the record of the receiving node (its in-view), if it signed
    own: View | None = None  # the verifier's own view, on the last hop
    missing: Reason | str | None = None  # why a view is absent: not-participating, stripped, ...
    problem: Reason | None = None  # a failure found across records (clock-skew)
    covered_by_own: bool = False  # the last hop of an archive result: judged by today's connection


def is_sent_copy(message: MessageFields, anchor: Anchor, wrapper: str | None) -> bool:
    """A copy of a message the reader's own account sent: a sent carbon, or the sender's own
    archive.  Its path ends at the sender's server, which delivered the copy to this device."""
    return wrapper == "carbon-sent" or (wrapper == "archive" and bare(message.sender) == bare(anchor.me))


def node_order(message: MessageFields, anchor: Anchor, wrapper: str | None) -> list[str]:
    """The nodes a message crossed to reach the verifier (XEP: Nodes, Hops and Record Order)."""
    sender, to = message.sender, message.to
    if is_sent_copy(message, anchor, wrapper) or domain_of(sender) == domain_of(to):
        return [sender, domain_of(sender), anchor.me]
    return [sender, domain_of(sender), domain_of(to), anchor.me]


def refusal_nodes(message: MessageFields, anchor: Anchor, by: str) -> list[str]:
    """The nodes a refusal crossed (XEP: Requiring Verified Hops): from the refusing server, through
    the sender's server when that is another, to the verifier.  There is no sending client."""
    to_domain = domain_of(message.to)
    return [by, anchor.me] if by == to_domain else [by, to_domain, anchor.me]


def place_records(atts: tuple[Record, ...], nodes: list[str], *, refusal: bool = False) -> list[int]:
    """The node index of each record's signer, in node order: the sending client's record (no
    signer) is node 0, a server's record is its domain's node; in a ``refusal`` node 0 is the
    refusing server, whose record alone has no in-view.  Refuses any other signer, a signer twice,
    or records out of order."""
    places: list[int] = []
    servers = {node: i for i, node in enumerate(nodes[:-1] if refusal else nodes[1:-1], 0 if refusal else 1)}
    for att in atts:
        place = (None if refusal else 0) if att.signer is None else servers.get(att.signer)
        if place is None:
            raise MalformedStanza(f"a record by {att.signer or 'a client'!r}, which is not on this "
                                  f"{'refusal' if refusal else 'message'}'s path ({' → '.join(nodes)})")
        if att.signer is not None and (att.in_view is None) != (refusal and place == 0):
            raise MalformedStanza(f"the refuser's record ({att.signer}) states no 'i=': nothing brought the refusal "
                                  "to it" if refusal and place == 0 else
                                  f"the record by {att.signer} lacks 'i=' and 'c=', which only a refusal's "
                                  "first record may")
        if att.stored is not None and place != len(nodes) - 2:
            # rule 28: only the server that delivers to the reader held the message before delivery
            raise MalformedStanza(f"the record by {att.signer} states 'st=', which only the server that delivers "
                                  f"to the reader ({nodes[-2]}) may")
        if places and place <= places[-1]:
            raise MalformedStanza("records out of order, or a signer twice: records follow the message's path")
        places.append(place)
    return places


def verify(message: MessageFields, path: Path | None, anchor: Anchor, now: datetime, *,
           max_skew: int = DEFAULT_MAX_SKEW, seen: Container[str] = (), archived_at: datetime | None = None,
           wrapper: str | None = None, via_room: bool = False, refused_by: str | None = None) -> Report:
    """Check ``path`` as received with ``message`` and return the report (XEP: At the Recipient
    Client, steps 3 to 7; :func:`trustpath.core.receive.verify_stanza` does steps 1 and 2).

    ``seen`` holds signatures already accepted (a replay cache kept by the caller).
    ``archived_at`` is the archive's stamp when the message is read from an archive; ``wrapper``
    how it was forwarded (``carbon-sent``, ``carbon-received``, ``archive``); ``via_room`` that a
    room reflected it.  ``refused_by`` makes it the check of a refusal that server sent (XEP:
    Requiring Verified Hops): the path starts at that server, and the hops are the refusal's.  Raises only :class:`~trustpath.core.errors.InvalidInput` subclasses, for
    a path that cannot be read at all.
    """
    require_aware(now)
    if not 0 <= max_skew <= constants.MAX_SKEW_LIMIT:
        raise UsageError(f"max_skew must be from 0 to {constants.MAX_SKEW_LIMIT} seconds")
    if now.year >= 9000:
        raise UsageError("now must be a time before the year 9000")
    atts = path.records if path is not None else ()
    refusal = refused_by is not None
    nodes = refusal_nodes(message, anchor, refused_by) if refused_by is not None else \
        node_order(message, anchor, wrapper)
    if not message.id:
        return _not_described(nodes, Reason.NO_ID, "no-id: the message has neither an id nor an origin-id of at "
                              f"most {constants.MAX_ID_CHARS} characters, so no node could attest it")
    if not refusal and (via_room or message.type == "groupchat"):
        return _through_a_room(message, atts, anchor, now, max_skew, nodes)
    places = place_records(atts, nodes, refusal=refusal)
    archived = archived_at is not None
    status: list[Status | None] = [None] * len(atts)
    notes: list[str] = []
    anchored = bool(atts) and places[-1] == len(nodes) - 2 and atts[-1].signer == anchor.server
    prefix = message_prefix(message)
    payloads: dict[tuple[str, ...] | None, str] = {}  # the records of one message mostly cover the same payloads

    def data(i: int) -> bytes:
        previous = " ".join(a.text for a in atts[:i])
        covers = atts[i].covers
        payload = payloads.get(covers)
        if payload is None:
            payload = payloads[covers] = payload_input(message, constants.DEFAULT_PAYLOADS if covers is None
                                                       else covers)
        return signing_input(message, previous, atts[i].unsigned, covers, prefix=prefix, payload=payload)

    if anchored:
        check_anchor(atts, anchor, now, max_skew, status, data, archived_at)
    else:
        status = [s or Status.UNVOUCHED for s in status]
    walk_backwards(atts, places, status, data)
    check_replay(atts, status, () if archived else seen)  # an archive holds what was accepted before
    hops = reconstruct_hops(atts, places, nodes, anchor, anchored, archived)
    check_clock_skew(atts, places, hops, status, now, max_skew, anchored=anchored, archived=archived)
    notes += _path_notes(atts, anchor, anchored, status)
    reports = [evaluate_hop(k, hop, atts, places, status, anchor) for k, hop in enumerate(hops)]
    if not refusal and is_sent_copy(message, anchor, wrapper):
        reports.append(_undescribed(len(reports), nodes[1], domain_of(message.to), Reason.SENT_COPY))
        notes.append("sent-copy: a copy of a message sent from another device; it says how the copy reached you, "
                     "not how the message was delivered")
    verdict, weakest, reports = overall_verdict(reports, anchor, notes)
    covers = _covers(atts, status)
    missing = [token for token in message.present if token not in covers]
    if covers and missing:
        notes.append(f"not covered by the sender's signature: {', '.join(missing)}")
    checks = tuple(RecordCheck(a.signer or message.sender, status[i] or Status.UNVOUCHED)
                   for i, a in enumerate(atts))
    return Report(verdict=verdict, hops=tuple(reports), weakest=weakest, records=checks, notes=tuple(notes),
                  covers=covers)


def check_replay(atts: tuple[Record, ...], status: list[Status | None], seen: Container[str]) -> None:
    """The caller's replay cache: a record that verified and whose signature was accepted before is
    ``replayed``.  A record copied onto another message does not verify (the message's id is in
    its signing input) and stays ``tampered``."""
    for i, att in enumerate(atts):
        if status[i] is Status.OK and att.sig in seen:
            status[i] = Status.REPLAYED


def check_anchor(atts: tuple[Record, ...], anchor: Anchor, now: datetime, max_skew: int,
                 status: list[Status | None], data, archived_at: datetime | None) -> None:  # type: ignore[no-untyped-def]
    """Step 3: the last record, by the verifier's own server, must name one of its keys valid at its
    time, and verify with it."""
    last = len(atts) - 1
    if status[last] is not None:
        return
    att = atts[last]
    signed_at = from_epoch(att.time) if att.time is not None else now
    problem = anchor.keys.problem(att.key, signed_at, archived_at)
    if problem == "key-unknown":
        # A live record must name a current key (a retired key stays listed for the skew after a
        # rotation), so an unknown key there is tampering; only an older one may name a key
        # withdrawn since.
        status[last] = Status.KEY_UNKNOWN if epoch(now) - epoch(signed_at) > max_skew else Status.TAMPERED
    elif problem is not None:
        status[last] = Status(problem)
    else:
        status[last] = Status.OK if verify_signature(att.key, att.sig, data(last)) else Status.TAMPERED


def vouches(before: int, here: int, atts: tuple[Record, ...], places: list[int]) -> bool:
    """Whether record ``here`` vouches for record ``before``'s key: it received the message from
    that signer (the next node on the path), found it there (``c=pass``) and says where it learned
    the key (``v=``)."""
    att = atts[here]
    return places[here] == places[before] + 1 and att.chain is Chain.PASS and att.vouch is not None


def walk_backwards(atts: tuple[Record, ...], places: list[int], status: list[Status | None],
                   data) -> None:  # type: ignore[no-untyped-def]
    """Step 4: each record before the last is checked with its own key, which the record after it
    vouched for, from the last one back, while every later one verified; the rest are unvouched."""
    for i in range(len(atts) - 1, 0, -1):
        if status[i] is not Status.OK:
            for j in range(i - 1, -1, -1):
                status[j] = status[j] or Status.UNVOUCHED
            return
        if not vouches(i - 1, i, atts, places):
            # a node between them did not sign, or this one did not find the record: nobody vouched
            status[i - 1] = status[i - 1] or (Status.CHAIN_BROKEN if places[i] == places[i - 1] + 1
                                              and atts[i].chain is Chain.PASS else Status.UNVOUCHED)
            continue
        if status[i - 1] is None:
            status[i - 1] = Status.OK if verify_signature(atts[i - 1].key, atts[i - 1].sig, data(i - 1)) \
                else Status.TAMPERED


def _missing_reason(att: Record) -> Reason | str:
    """What a record's chain statement says about the hop before it, when no record is there."""
    if att.chain is Chain.ABSENT:
        return Reason.NOT_PARTICIPATING
    if att.chain is Chain.FAIL:
        return _reason(att.chain_reason) or Reason.CHAIN_BROKEN
    return Reason.STRIPPED  # stripped, or pass for a record that is no longer here


def reconstruct_hops(atts: tuple[Record, ...], places: list[int], nodes: list[str], anchor: Anchor,
                     anchored: bool, archived: bool) -> list[_Hop]:
    """Step 6: one hop between each pair of neighbouring nodes, described by the sending node's
    out-view and the receiving node's in-view (on the last hop, the verifier's own view)."""
    at = {place: i for i, place in enumerate(places)}
    hops: list[_Hop] = []
    last = len(nodes) - 2
    for k in range(len(nodes) - 1):
        hop = _Hop(nodes[k], nodes[k + 1], up=at.get(k), down=at.get(k + 1) if k + 1 <= last else None)
        if k == last:
            hop.own = anchor.view
            if not anchored:
                hop.missing = Reason.STRIPPED if anchor.takes_part else Reason.NOT_PARTICIPATING
            elif hop.up is not None and not _delivered_here(atts[hop.up], anchor, archived):
                hop.missing = Reason.CHAIN_BROKEN
            hop.covered_by_own = archived
        elif hop.down is not None and hop.up is None:
            hop.missing = _missing_reason(atts[hop.down])
        elif hop.down is None:
            # nobody received it here and signed: the next record says why
            later = next((i for i, place in enumerate(places) if place > k), None)
            hop.missing = _missing_reason(atts[later]) if later is not None else (
                Reason.STRIPPED if anchor.takes_part else Reason.NOT_PARTICIPATING)
        hops.append(hop)
    return hops


def _delivered_here(att: Record, anchor: Anchor, archived: bool) -> bool:
    """The last record delivered to this resource, or (from an archive) to another of the account."""
    peer = att.out_peer
    return peer is not None and (peer == anchor.me or (archived and bare(peer) == bare(anchor.me)))


def check_clock_skew(atts: tuple[Record, ...], places: list[int], hops: list[_Hop], status: list[Status | None],
                     now: datetime, max_skew: int, *, anchored: bool, archived: bool) -> None:
    """Step 5, charged to hops: consecutive servers at most the skew apart (by arrival time), no
    server time further in the future than the skew, and a live last record no older than the
    skew.  The sending client's time is not checked (its clock is its own)."""
    current = epoch(now)
    if anchored and not archived and atts[-1].time is not None and current - atts[-1].time > max_skew \
            and status[-1] is Status.OK:
        # the recipient's own server signs at delivery: a live stanza this old is a replay
        hops[-1].problem = Reason.CLOCK_SKEW
    for hop in hops:
        if hop.up is None or hop.down is None:
            continue
        sent, received = atts[hop.up], atts[hop.down]
        if sent.signer is None or sent.time is None or received.time is None:
            continue
        arrival = received.stored if received.stored is not None else received.time
        if abs(arrival - sent.time) > max_skew:
            hop.problem = Reason.CLOCK_SKEW
    for i, att in enumerate(atts):
        if att.signer is not None and att.time is not None and att.time > current + max_skew \
                and status[i] is Status.OK:
            for hop in hops:
                if hop.up == i:
                    hop.problem = hop.problem or Reason.CLOCK_SKEW


def _reason(code: str | None) -> Reason | str | None:
    if code is None:
        return None
    try:
        return Reason(code)
    except ValueError:
        return code


def _role(hop: _Hop, index: int) -> str:
    if is_client_jid(hop.sender) and index == 0:
        return "sender-c2s"
    if is_client_jid(hop.receiver):
        return "recipient-c2s"
    return "s2s"


def evaluate_hop(k: int, hop: _Hop, atts: tuple[Record, ...], places: list[int], status: list[Status | None],
                 anchor: Anchor) -> HopReport:
    """Step 7 for one hop: the first failure that applies, in the XEP's order (a record that cannot
    be believed, a time, a view's own failure, the signer's chain statement, a missing view,
    end-point binding), else the weakest of its views, capped when the sending client's view of H1
    is not bound to the channel, by one view alone, and by the key source."""
    label = f"H{k + 1}"
    role = _role(hop, k)
    up_status = status[hop.up] if hop.up is not None else None
    up = atts[hop.up].out_view if hop.up is not None and up_status is Status.OK else None
    down_att = atts[hop.down] if hop.down is not None and status[hop.down] is Status.OK else None
    down = hop.own if hop.own is not None else (down_att.in_view if down_att is not None else None)
    # the TLS client end opened the connection: the sender of an s2s hop or of H1, the receiver of a delivery
    delivery = is_client_jid(hop.receiver)
    client, server = (down, up) if delivery else (up, down)
    views = [v for v in (client, server) if v is not None]
    key_source = None
    if down_att is not None and down_att.vouch is not None and hop.up is not None and vouches(
            hop.up, hop.down, atts, places):  # type: ignore[arg-type]
        key_source = down_att.vouch.value
    elif hop.own is not None and hop.up is not None:
        key_source = "anchor"
    when = None
    if hop.up is not None and atts[hop.up].time is not None:
        when = format_epoch(atts[hop.up].time)  # type: ignore[arg-type]
    method = " / ".join(v.method for v in (client, server) if v is not None) or "unknown"

    reason, strength = _hop_strength(hop, role, up_status, down_att, client, server, views, key_source)
    return HopReport(label=label, role=role, sender=hop.sender, receiver=hop.receiver, client_view=client,
                     server_view=server, method=method, result=strength.hop_result, reason=reason,
                     strength=strength, key_source=key_source, time=when)


def _hop_strength(hop: _Hop, role: str, up_status: Status | None, down_att: Record | None, client: View | None,
                  server: View | None, views: list[View], key_source: str | None) -> tuple[Reason | str | None, Strength]:
    """The reason and strength of :func:`evaluate_hop`, in the XEP's order."""
    if up_status in RECORD_FAILURES:
        return Reason(up_status), Strength.FAILED
    if up_status is Status.KEY_UNKNOWN:
        return Reason.KEY_UNKNOWN, Strength.UNKNOWN
    if hop.problem is not None:
        return hop.problem, Strength.FAILED
    for view in views:
        if view.result is Result.FAIL:
            return _reason(view.reason) or Reason.VALIDATION_FAILURE, Strength.FAILED
    if down_att is not None and down_att.chain is Chain.FAIL and hop.missing is None:
        if down_att.chain_reason == Reason.KEYS_UNAVAILABLE:
            # the receiving server could not learn the keys: it says nothing either way
            return Reason.KEYS_UNAVAILABLE, Strength.UNKNOWN
        return _reason(down_att.chain_reason) or Reason.CHAIN_BROKEN, Strength.FAILED
    if hop.missing is not None and hop.missing != Reason.NOT_PARTICIPATING:
        return hop.missing, Strength.FAILED
    if client is not None and server is not None and client.spki != server.spki and not hop.covered_by_own:
        return Reason.KEY_MISMATCH, Strength.FAILED
    strength, reason = Strength.STRONG, None
    for view, is_server_side_of_c2s in ((client, False), (server, role != "s2s")):
        if view is None:
            continue
        if view.tls == "none":
            strength, reason = Strength.UNVERIFIED, Reason.STARTTLS_NOT_SUPPORTED
            break
        if is_server_side_of_c2s:
            if view.result is not Result.PASS:
                strength, reason = min(strength, Strength.UNVERIFIED), Reason.NOT_VERIFIED
            continue  # SASL, and how it was bound: it does not make the hop stronger
        value = method_strength(view.method) if view.result is Result.PASS else Strength.UNVERIFIED
        if value < strength:
            strength, reason = value, method_reason(view.method)
    if role == "sender-c2s" and server is not None and not binds_client(server.method) and strength > Strength.CA:
        # the sending client's view came over this very hop: without channel binding (or a key the
        # server knew before), a man in the middle could have written it
        strength, reason = Strength.CA, Reason.UNBOUND
    if hop.covered_by_own and hop.own is not None and strength > Strength.UNKNOWN:
        pass  # an archive result: today's connection alone carries it, and describes it
    elif len(views) < 2 and strength > Strength.UNKNOWN:
        # one end's statement alone cannot show a man in the middle
        strength = Strength.UNKNOWN
        reason = Reason.NOT_PARTICIPATING if hop.missing == Reason.NOT_PARTICIPATING else Reason.UNVOUCHED
    if key_source is not None and key_source != "anchor" and strength > Strength.UNVERIFIED:
        cap = KEY_SOURCE_STRENGTH.get(KeySource(key_source))
        if cap is not None and cap < strength:
            strength, reason = cap, Reason.WEAK_KEY_SOURCE
    return reason, strength


def _undescribed(k: int, sender: str, receiver: str, reason: Reason) -> HopReport:
    return HopReport(label=f"H{k + 1}", role="s2s" if not is_client_jid(receiver) else "recipient-c2s",
                     sender=sender, receiver=receiver, client_view=None, server_view=None, method="unknown",
                     result=HopResult.UNKNOWN, reason=reason, strength=Strength.UNKNOWN)


def _not_described(nodes: list[str], reason: Reason, note: str) -> Report:
    hops = tuple(_undescribed(k, nodes[k], nodes[k + 1], reason) for k in range(len(nodes) - 1))
    return Report(Verdict.UNKNOWN, hops, tuple(h.label for h in hops), (), (note,))


def _through_a_room(message: MessageFields, atts: tuple[Record, ...], anchor: Anchor, now: datetime,
                    max_skew: int, nodes: list[str]) -> Report:
    """A message a room reflected (XEP rule 26): rooms do not take part in this version and
    rewrite 'from' and 'to', so the path is not checked; what the verifier's own server signed
    about what reached it is kept as a note."""
    notes = ["not-participating: the message came through a room, and rooms do not take part in this version of "
             "trust-path, so its path is not checked"]
    if atts and atts[-1].signer == anchor.server and anchor.keys.problem(
            atts[-1].key, from_epoch(atts[-1].time) if atts[-1].time else now) is None:
        previous = " ".join(a.text for a in atts[:-1])
        if verify_signature(atts[-1].key, atts[-1].sig, signing_input(message, previous, atts[-1].unsigned,
                                                                      atts[-1].covers)):
            chain = atts[-1].chain.value if atts[-1].chain else "?"
            notes.append(f"{anchor.server} states what reached it: chain {chain}"
                         + (f" ({atts[-1].chain_reason})" if atts[-1].chain_reason else ""))
    report = _not_described(nodes, Reason.NOT_PARTICIPATING, notes[0])
    return replace(report, notes=tuple(notes))


def _path_notes(atts: tuple[Record, ...], anchor: Anchor, anchored: bool,
                status: list[Status | None]) -> list[str]:
    notes = []
    if anchored:
        entry = anchor.keys.status_of(atts[-1].key)
        if status[-1] is Status.OK and entry is not None and entry.not_after is not None:
            notes.append(f"{anchor.server} signed with a key retired since (valid for signatures until "
                         f"{entry.not_after})")
        peer = atts[-1].out_peer
        if peer is not None and peer != anchor.me and bare(peer) == bare(anchor.me):
            notes.append(f"delivered to {peer}, read here as {anchor.me}")
    for i, att in enumerate(atts):
        if att.stored is not None and att.time is not None and status[i] is Status.OK:
            notes.append(f"stored by {att.signer} from {format_time(from_epoch(att.stored))} until delivery at "
                         f"{format_time(from_epoch(att.time))}")
        if att.removed and status[i] is Status.OK:
            notes.append(f"forgery-removed: {att.signer} removed {att.removed} forged record(s) sent by its client")
    return notes


def _covers(atts: tuple[Record, ...], status: list[Status | None]) -> tuple[str, ...]:
    """The payloads the first verified record covers: the sender's, if it verified."""
    for i, att in enumerate(atts):
        if status[i] is Status.OK:
            return att.payloads
    return ()


def overall_verdict(reports: list[HopReport], anchor: Anchor,
                    notes: list[str]) -> tuple[Verdict, tuple[str, ...], list[HopReport]]:
    """Step 7 for the path: the weakest hop decides, never more than unknown when the verifier's
    own server does not take part; the weakest hops are named unless the path is trusted."""
    overall = min((r.strength for r in reports), default=Strength.UNKNOWN)
    if not anchor.takes_part and overall > Strength.UNKNOWN:
        # the client's own server does not announce the feature: nothing it signs is an anchor
        overall = Strength.UNKNOWN
        notes.append(f"not-participating: {anchor.server} does not announce trust-path, so no path is trusted")
        reports[-1] = replace(reports[-1], result=HopResult.UNKNOWN, reason=Reason.NOT_PARTICIPATING,
                              strength=Strength.UNKNOWN)
    verdict = overall.verdict
    weakest = tuple(r.label for r in reports if r.strength == overall) if verdict is not Verdict.TRUSTED else ()
    return verdict, weakest, reports


__all__ = ["Anchor", "RecordCheck", "HopReport", "Report", "check_anchor", "check_clock_skew", "check_replay",
           "evaluate_hop", "node_order", "overall_verdict", "payload_input", "place_records", "reconstruct_hops",
           "refusal_nodes",
           "verify", "walk_backwards"]
