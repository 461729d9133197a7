"""Checking a received path and computing the verdict (XEP: Verification, Verdict).

Pure: the message, its path, what the verifier trusts (:class:`Anchor`) and the
current time go in; a :class:`Report` comes out.  Used by a recipient client, and by
a recipient server to check what it received before it adds its own attestation.
"""

from __future__ import annotations

from collections.abc import Callable, Container
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from .keys import KeySet, verify_signature
from . import constants
from .errors import UsageError
from .model import (
    ATTESTATION_FAILURES,
    DEFAULT_MAX_SKEW,
    KEY_SOURCE_STRENGTH,
    Attestation,
    Chain,
    HopResult,
    KeySource,
    MessageFields,
    Path,
    Reason,
    Result,
    Side,
    Status,
    Strength,
    Verdict,
    View,
    is_client_jid,
    method_reason,
    method_strength,
)
from .signing import message_prefix, signing_input
from .timefmt import parse_time, require_aware


@dataclass(frozen=True, slots=True)
class Anchor:
    """What the verifier already trusts.

    ``server`` signed the last attestation and ``keys`` are its published keys, learned
    over the verifier's own verified link; ``me`` is the verifier's own JID (the
    recipient's full JID, or a recipient server's domain); ``view`` is the verifier's own
    view of the last hop; ``takes_part`` says whether ``server`` is known to attest.
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
        def view(v: View | None) -> dict[str, str] | None:
            return None if v is None else v.attributes()

        return {"hop": self.label, "role": self.role, "from": self.sender, "to": self.receiver,
                "method": self.method, "result": self.result, "reason": self.reason,
                "strength": self.strength.name.lower(), "key_source": self.key_source, "time": self.time,
                "client_view": view(self.client_view), "server_view": view(self.server_view)}


@dataclass(frozen=True, slots=True)
class AttestationCheck:
    signer: str
    status: Status


@dataclass(frozen=True, slots=True)
class Report:
    """The verdict on one message's path, hop by hop."""

    verdict: Verdict
    hops: tuple[HopReport, ...]
    weakest: tuple[str, ...]
    attestations: tuple[AttestationCheck, ...]
    notes: tuple[str, ...] = field(default=())
    #: the anchor key that verified the last attestation (what a server vouches for next)
    anchor_key: str | None = None

    @property
    def chain_ok(self) -> bool:
        """Every attestation verified and none was stripped (used by a server's <in chain/>)."""
        return self.chain_problem is None

    @property
    def chain_problem(self) -> Reason | None:
        """What a server writes into 'chain-reason' (XEP: At a Receiving Server), or None."""
        for check in self.attestations:
            if check.status not in (Status.OK, Status.UNVOUCHED):
                return Reason(check.status)
        for hop in self.hops:
            if hop.result is HopResult.FAIL and hop.reason in constants.CHAIN_FAILURES:
                return Reason(hop.reason)
        return None

    def to_json(self) -> dict[str, object]:
        return {"verdict": self.verdict.value, "weakest": list(self.weakest),
                "hops": [h.to_json() for h in self.hops],
                "attestations": [{"signer": a.signer, "status": a.status} for a in self.attestations],
                "notes": list(self.notes)}


@dataclass(slots=True)
class _Hop:
    """A hop while it is being reconstructed (XEP step 5), before it is evaluated (step 6)."""

    sender: str
    receiver: str
    up: View | None = None  # the sending node's <out/>
    down: View | None = None  # the receiving node's <in/> (or the verifier's own view)
    up_index: int | None = None
    down_index: int | None = None  # None with down set: the verifier's own view
    missing: Reason | None = None  # why a view is absent: not-participating, stripped, chain-broken, ...
    problem: Reason | None = None  # a failure found across attestations (clock-skew)


def _reason(code: str | None) -> Reason | str | None:
    """A code from a view as a :class:`Reason` when this version defines it."""
    if code is None:
        return None
    try:
        return Reason(code)
    except ValueError:
        return code


def verify(message: MessageFields, path: Path | None, anchor: Anchor, now: datetime, *,
           max_skew: int = DEFAULT_MAX_SKEW, seen: Container[str] = (), archived: bool = False) -> Report:
    """Check ``path`` as received with ``message`` and return the report (XEP: At the Recipient
    Client, steps 3 to 6; :func:`trustpath.core.receive.verify_stanza` does steps 1 and 2).

    ``seen`` holds signatures already accepted within the skew window (a replay cache
    kept by the caller).  ``archived`` says the message is read from the archive, so it
    may be old and may have been delivered to another resource of the same account.
    Raises only :class:`~trustpath.core.errors.InvalidInput` subclasses, for input that is
    not a valid path at all.
    """
    require_aware(now)
    if not 0 <= max_skew <= constants.MAX_SKEW_LIMIT:
        raise UsageError(f"max_skew must be from 0 to {constants.MAX_SKEW_LIMIT} seconds")
    if now.year >= 9000:
        raise UsageError("now must be a time before the year 9000")
    given = path.attestations if path is not None else ()
    room = is_reflected_by_room(message, given, anchor)
    atts = () if room else given
    skew = timedelta(seconds=max_skew)
    prefix = message_prefix(message)

    def data(i: int) -> bytes:
        return signing_input(message, atts[i - 1].sig if i > 0 else "", atts[i], prefix=prefix)

    notes: list[str] = []
    status = check_replay(message, atts, seen)
    anchored = len(atts) > 0 and atts[-1].signer == anchor.server
    anchor_key = None
    if anchored:
        anchor_key = check_anchor(atts, anchor, now, skew, status, data, notes)
    else:
        status = [s or Status.UNVOUCHED for s in status]
    walk_backwards(atts, status, data)
    hops = reconstruct_hops(atts, anchor, anchored, message.sender, archived, room)
    if room:
        notes.append("not-participating: a groupchat message came through a room, and rooms do not take part "
                     "in this version of trust-path, so its path is not checked")
    check_clock_skew(atts, hops, status, now, skew, anchored=anchored, archived=archived)
    notes += _path_notes(atts, anchor, anchored, status)
    reports = [evaluate_hop(k, hop, atts, status) for k, hop in enumerate(hops)]
    verdict, weakest, reports = overall_verdict(reports, anchor, notes)
    checks = tuple(AttestationCheck(a.signer, status[i] or Status.UNVOUCHED) for i, a in enumerate(atts))
    return Report(verdict=verdict, hops=tuple(reports), weakest=weakest, attestations=checks, notes=tuple(notes),
                  anchor_key=anchor_key)


def is_reflected_by_room(message: MessageFields, atts: tuple[Attestation, ...], anchor: Anchor) -> bool:
    """A groupchat message a room reflected to a recipient client (XEP rule 57).

    Rooms do not take part in this version, and a room rewrites 'from' and 'to': whatever path
    a groupchat message carries cannot be checked over the reflected stanza.  Only a recipient
    client concludes that (a server keeps checking what it vouches for), and not for a message
    its 'from' signed itself, which no room reflected: that is a retyped chat message.
    """
    return message.type == "groupchat" and is_client_jid(anchor.me) and \
        not any(a.signer == message.sender for a in atts)


def check_replay(message: MessageFields, atts: tuple[Attestation, ...], seen: Container[str]) -> list[Status | None]:
    """Step 4's 'for' rule, and the caller's replay cache: ``replayed`` where an attestation was
    made for another message or already accepted; None (not yet known) for the others."""
    return [Status.REPLAYED if a.for_id != message.id or a.sig in seen else None for a in atts]


def check_anchor(atts: tuple[Attestation, ...], anchor: Anchor, now: datetime, skew: timedelta,
                 status: list[Status | None], data: Callable[[int], bytes], notes: list[str]) -> str | None:
    """Step 3: the last attestation, signed by the verifier's own server, must verify with one
    of its keys valid at its 'time'.  Sets its status; returns the key that verified it."""
    last = len(atts) - 1
    if status[last] is not None:
        return None
    signed_at = parse_time(atts[last].time)
    # A live attestation must verify with a current key (a retired key stays listed for the skew
    # after a rotation), so failing is tampering; only an older one may have been signed with a
    # key withdrawn since.
    status[last] = Status.KEY_UNKNOWN if now - signed_at > skew else Status.TAMPERED
    for candidate, problem in anchor.keys.candidates(signed_at):
        if verify_signature(candidate, atts[last].sig, data(last)):
            status[last] = Status(problem) if problem else Status.OK
            entry = anchor.keys.status_of(candidate)
            if problem is None and entry is not None and entry.not_after is not None:
                notes.append(f"{anchor.server} signed with a key retired since "
                             f"(valid for signatures until {entry.not_after})")
            return candidate
    return None


def walk_backwards(atts: tuple[Attestation, ...], status: list[Status | None],
                   data: Callable[[int], bytes]) -> None:
    """Step 4: attestation i is checked with the key attestation i+1 vouched for, from the last
    one back, while every later one verified; the rest are unvouched."""
    for i in range(len(atts) - 1, 0, -1):
        if status[i] is not Status.OK:
            for j in range(i - 1, -1, -1):
                status[j] = status[j] or Status.UNVOUCHED
            return
        before, here = atts[i - 1], atts[i]
        if here.in_view is None:
            status[i - 1] = status[i - 1] or Status.CHAIN_BROKEN
            continue
        adjacent = before.out_view is not None and before.out_view.peer == here.signer
        if not adjacent or here.in_view.peer != before.signer:
            # a node between them did not sign: nobody vouched for the earlier key
            status[i - 1] = status[i - 1] or Status.UNVOUCHED
            continue
        if here.prev_key is None:
            status[i - 1] = status[i - 1] or Status.CHAIN_BROKEN
            continue
        if status[i - 1] is None:
            status[i - 1] = Status.OK if verify_signature(here.prev_key, before.sig, data(i - 1)) else Status.TAMPERED


def check_clock_skew(atts: tuple[Attestation, ...], hops: list[_Hop], status: list[Status | None], now: datetime,
                     skew: timedelta, *, anchored: bool, archived: bool) -> None:
    """Step 4's time rules, charged to hops: consecutive signers at most the skew apart (by
    arrival time), no time further in the future than the skew, and a live last attestation no
    older than the skew."""
    times = [parse_time(a.time) for a in atts]
    arrivals = [parse_time(a.stored) if a.stored else t for a, t in zip(atts, times)]
    if anchored and not archived and now - times[-1] > skew and status[-1] is Status.OK:
        # the recipient's own server signs at delivery: a live stanza this old is a replay
        hops[-1].problem = Reason.CLOCK_SKEW
    for hop in hops:
        if hop.up_index is not None and hop.down_index is not None:
            if abs(arrivals[hop.down_index] - times[hop.up_index]) > skew:
                hop.problem = Reason.CLOCK_SKEW
    for i, t in enumerate(times):
        if t > now + skew and status[i] is Status.OK:
            for hop in hops:
                if hop.up_index == i:
                    hop.problem = hop.problem or Reason.CLOCK_SKEW


def _path_notes(atts: tuple[Attestation, ...], anchor: Anchor, anchored: bool,
                status: list[Status | None]) -> list[str]:
    notes = []
    if anchored and atts[-1].out_view is not None and atts[-1].out_view.peer != anchor.me \
            and _bare(atts[-1].out_view.peer) == _bare(anchor.me):
        notes.append(f"delivered to {atts[-1].out_view.peer}, read here as {anchor.me}")
    for i, att in enumerate(atts):
        if att.stored and status[i] is Status.OK:
            notes.append(f"stored by {att.signer} from {att.stored} until delivery at {att.time}")
        if att.in_view is not None and att.in_view.removed and status[i] is Status.OK:
            notes.append(f"forgery-removed: {att.signer} removed {att.in_view.removed} forged attestation(s) "
                         f"sent by {att.in_view.peer}")
    return notes


def reconstruct_hops(atts: tuple[Attestation, ...], anchor: Anchor, anchored: bool, origin: str,
                     archived: bool, room: bool = False) -> list[_Hop]:
    """Step 5: rebuild the hops from the views' peers; a node that did not sign leaves a gap.

    The path always starts at the message's sender, so hops before the first attestation
    that no one describes are added as not participating: H1 is always the sender's hop.
    """
    hops = _described_hops(atts, anchor, anchored, archived, room)
    first = hops[0].sender
    if first != origin:
        origin_domain = origin.split("/", 1)[0].split("@", 1)[-1]
        before = [_Hop(origin, origin_domain, missing=Reason.NOT_PARTICIPATING)] if origin_domain != origin else []
        if origin_domain != first:
            before.append(_Hop(origin_domain if before else origin, first, missing=Reason.NOT_PARTICIPATING))
        hops = before + hops
    return hops


def _described_hops(atts: tuple[Attestation, ...], anchor: Anchor, anchored: bool, archived: bool,
                    room: bool = False) -> list[_Hop]:
    hops: list[_Hop] = []
    if not atts:
        hops.append(_Hop(anchor.server, anchor.me, down=anchor.view,
                         missing=Reason.STRIPPED if anchor.takes_part and not room else Reason.NOT_PARTICIPATING))
        return hops
    first = atts[0]
    if first.in_view is not None:
        missing = _missing_reason(first.in_view)
        if first.prev_key is not None:
            missing = Reason.STRIPPED  # it vouched for an attestation that is no longer there
        hops.append(_Hop(first.in_view.peer, first.signer, down=first.in_view, down_index=0, missing=missing))
    for i in range(len(atts) - 1):
        a, b = atts[i], atts[i + 1]
        if b.in_view is None:
            hops.append(_Hop(a.signer, b.signer, up=a.out_view, up_index=i, missing=Reason.CHAIN_BROKEN))
            continue
        if a.out_view is not None and a.out_view.peer == b.signer and b.in_view.peer == a.signer:
            hops.append(_Hop(a.signer, b.signer, up=a.out_view, down=b.in_view, up_index=i, down_index=i + 1))
        elif a.out_view is not None and b.in_view.peer == a.out_view.peer:
            gap = b.in_view.peer
            missing = _missing_reason(b.in_view)
            hops.append(_Hop(a.signer, gap, up=a.out_view, up_index=i, missing=missing))
            hops.append(_Hop(gap, b.signer, down=b.in_view, down_index=i + 1, missing=missing))
        else:
            hops.append(_Hop(b.in_view.peer, b.signer, down=b.in_view, down_index=i + 1,
                             missing=Reason.CHAIN_BROKEN))
    last_index = len(atts) - 1
    last = atts[last_index]
    if anchored:
        delivered_here = last.out_view is not None and (
            last.out_view.peer == anchor.me or (archived and _bare(last.out_view.peer) == _bare(anchor.me)))
        hops.append(_Hop(anchor.server, anchor.me, up=last.out_view, down=anchor.view, up_index=last_index,
                         missing=None if delivered_here else Reason.CHAIN_BROKEN))
    else:
        missing = Reason.STRIPPED if anchor.takes_part else Reason.NOT_PARTICIPATING
        if last.out_view is not None and last.out_view.peer == anchor.server:
            hops.append(_Hop(last.signer, anchor.server, up=last.out_view, up_index=last_index, missing=missing))
        hops.append(_Hop(anchor.server, anchor.me, down=anchor.view, missing=missing))
    return hops


def _bare(jid: str) -> str:
    return jid.split("/", 1)[0]


def _missing_reason(in_view: View) -> Reason | str:
    if in_view.chain is Chain.ABSENT:
        return Reason.NOT_PARTICIPATING
    if in_view.chain is Chain.STRIPPED:
        return Reason.STRIPPED
    if in_view.chain is Chain.FAIL:
        return _reason(in_view.chain_reason) or Reason.CHAIN_BROKEN
    return Reason.STRIPPED  # the signer checked a chain that is no longer here


def _role(hop: _Hop, index: int) -> str:
    if is_client_jid(hop.sender) and index == 0:
        return "sender-c2s"
    if is_client_jid(hop.receiver):
        return "recipient-c2s"
    if is_client_jid(hop.sender):
        return "c2s"
    return "s2s"


def evaluate_hop(k: int, hop: _Hop, atts: tuple[Attestation, ...], status: list[Status | None]) -> HopReport:
    """Step 6 for one hop: the first failure that applies, in the XEP's order (an attestation that
    cannot be believed, a time, a view's own failure, the signer's chain check, a missing view,
    end-point binding), else the weakest of its views' methods, capped by one view alone and by
    the key source."""
    label = f"H{k + 1}"
    role = _role(hop, k)
    up_ok = hop.up is not None and hop.up_index is not None and status[hop.up_index] is Status.OK
    down_is_own = hop.down is not None and hop.down_index is None
    down_ok = hop.down is not None and (down_is_own or status[hop.down_index] is Status.OK)
    up = hop.up if up_ok else None
    down = hop.down if down_ok else None
    views = [v for v in (up, down) if v is not None]
    client = next((v for v in views if v.side is Side.CLIENT), None)
    server = next((v for v in views if v.side is Side.SERVER), None)
    s2s = not is_client_jid(hop.sender) and not is_client_jid(hop.receiver)
    key_source = None
    if hop.down_index is not None and hop.down is not None and hop.down.key_source is not None:
        key_source = hop.down.key_source.value
    elif hop.down_index is not None and atts[hop.down_index].prev_key is not None and hop.up_index is not None:
        key_source = KeySource.NONE.value  # vouched without saying where the key came from
    elif down_is_own and hop.up_index is not None:
        key_source = "anchor"
    when = atts[hop.up_index].time if hop.up_index is not None else (
        atts[hop.down_index].time if hop.down_index is not None else None)
    method = " / ".join(v.method for v in (client, server) if v is not None) or "unknown"

    def report(reason: Reason | str | None, strength: Strength) -> HopReport:
        return HopReport(label=label, role=role, sender=hop.sender, receiver=hop.receiver, client_view=client,
                         server_view=server, method=method, result=strength.hop_result, reason=reason,
                         strength=strength, key_source=key_source, time=when)

    # An attestation that fails its checks was altered or moved on the hop after its signer.
    up_status = status[hop.up_index] if hop.up_index is not None else None
    if up_status in ATTESTATION_FAILURES:
        return report(Reason(up_status), Strength.FAILED)
    if up_status is Status.KEY_UNKNOWN:
        return report(Reason.KEY_UNKNOWN, Strength.UNKNOWN)
    if hop.problem is not None:
        return report(hop.problem, Strength.FAILED)
    for view in views:
        if view.result is Result.FAIL:
            return report(_reason(view.reason) or Reason.VALIDATION_FAILURE, Strength.FAILED)
    if down is not None and down.chain is Chain.FAIL and hop.down_index is not None and not hop.missing:
        return report(_reason(down.chain_reason) or Reason.CHAIN_BROKEN, Strength.FAILED)
    if hop.missing is not None and hop.missing != Reason.NOT_PARTICIPATING:
        return report(hop.missing, Strength.FAILED)
    if len(views) == 2:
        if client is None or server is None:
            return report(Reason.CHAIN_BROKEN, Strength.FAILED)
        if client.spki != server.spki:
            return report(Reason.KEY_MISMATCH, Strength.FAILED)

    strength = Strength.STRONG
    reason: Reason | None = None
    for view in views:
        if view.tls == "none":
            strength, reason = Strength.UNVERIFIED, Reason.STARTTLS_NOT_SUPPORTED
            break
        if view.side is Side.SERVER and not s2s:
            if view.result is not Result.PASS:
                strength, reason = min(strength, Strength.UNVERIFIED), Reason.NOT_VERIFIED
            continue  # a SASL mechanism: the client's check of the server decides
        value = method_strength(view.method) if view.result is Result.PASS else Strength.UNVERIFIED
        if value < strength:
            strength, reason = value, method_reason(view.method)
    if len(views) < 2 and strength > Strength.UNKNOWN:
        # one end's statement alone cannot show a man in the middle
        strength = Strength.UNKNOWN
        reason = Reason.NOT_PARTICIPATING if hop.missing == Reason.NOT_PARTICIPATING else Reason.UNVOUCHED
    # The key of the attestation before this hop is only as good as where it came from.
    if key_source is not None and key_source != "anchor" and strength > Strength.UNVERIFIED:
        cap = KEY_SOURCE_STRENGTH.get(KeySource(key_source))
        if cap is not None and cap < strength:
            strength, reason = cap, Reason.WEAK_KEY_SOURCE
    return report(reason, strength)


def overall_verdict(reports: list[HopReport], anchor: Anchor,
                    notes: list[str]) -> tuple[Verdict, tuple[str, ...], list[HopReport]]:
    """Step 6 for the path: the weakest hop decides, never more than unknown when the verifier's
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
