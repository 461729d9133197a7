"""What a participating server decides (XEP: At the Sending Server, At the Receiving Server,
Requiring Verified Hops), sans-I/O.

A server signs, but does not verify signatures: the recipient client verifies every record.  What
a server decides from a message is structural (which records to keep, whether the previous
domain's record is there and names one of its published keys) and cheap, so that a busy server
can afford it on every message.

The embedded federation (:mod:`trustpath.testbed.sim`) calls these functions, and the Lua core
that the Prosody module ships has the same ones under the same names
(``prosody/mod_trust_path/core/server.lua``); ``spec/vectors/server/`` holds cases both run.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from lxml import etree

from .constants import DEFAULT_CACHE_FOR, REQUIRED_STRENGTH
from .codec import add_record, decode_path, read_last_record, remove_paths
from .errors import InvalidInput
from .keys import KeySet
from .model import KEY_SOURCE_STRENGTH, Record, Chain, KeySource, Reason, Strength, View
from .require import client_hop_problem, requirement_problem
from .timefmt import from_epoch


@dataclass(frozen=True, slots=True)
class ClientPathDecision:
    """What the sending server kept of a local client's path, and what its record states."""

    kept: Record | None  # the client's own record, still in the message
    removed: int  # records removed (forgeries, extra copies; an unreadable path counts as 1)
    chain: Chain  # pass (kept), fail (the client's own record was not kept), absent (none)
    chain_reason: Reason | None = None

    @property
    def vouch(self) -> KeySource | None:
        """The client's key was announced on this very session."""
        return KeySource.LINK if self.kept is not None else None


@dataclass(frozen=True, slots=True)
class ChainDecision:
    """What a receiving server found in the path that arrived from ``origin``.

    ``vouch`` is where it learned the key the last record names, set only when that record is
    ``origin``'s and the key is one ``origin`` publishes; ``error`` why an unreadable path was
    removed; ``refetch`` that ``origin``'s record names a key not in the cached set, so the set
    should be fetched again before deciding."""

    chain: Chain
    chain_reason: Reason | None = None
    vouch: KeySource | None = None
    error: str | None = None
    refetch: bool = False
    sig: str | None = None  # the last record's signature, when the path could be read


@dataclass(frozen=True, slots=True)
class UnverifiedHop:
    """The ``<unverified-hop/>`` of a refusal: the hop, how it was verified, why that is not
    enough, and what the sender required."""

    peer: str
    method: str
    reason: Reason | str
    required: str | None = None

    def attributes(self) -> dict[str, str]:
        out = {"peer": self.peer, "method": self.method, "reason": str(self.reason)}
        if self.required is not None:
            out["required"] = self.required
        return out


@dataclass(frozen=True, slots=True)
class FetchedKeys:
    """A domain's keys as a receiving server fetched them (XEP: Discovery and Keys): where from (the key source
    its records will state), when, and for how long the set may be used (the domain's
    ``cache-for``).  After that, or when a record names a key not in it, the server fetches again."""

    keys: KeySet | None
    source: KeySource
    fetched_at: datetime
    cache_for: int = DEFAULT_CACHE_FOR

    def usable(self, now: datetime) -> bool:
        return now < self.fetched_at + timedelta(seconds=self.cache_for)


def filter_client_path(message: etree._Element, session_key: str | None) -> ClientPathDecision:
    """Anti-forgery at the sending server: keep at most the session's own record in ``message``
    (changed in place): the first record, if it has no signer (it speaks for the message's
    'from') and names the key the session announced.  Everything else goes, counted.  No
    signature is checked here: the recipient checks every one."""
    try:
        path = decode_path(message)
    except InvalidInput:
        remove_paths(message)
        return ClientPathDecision(None, 1, Chain.ABSENT)
    records = path.records if path is not None else ()
    remove_paths(message)
    if not records:
        return ClientPathDecision(None, 0, Chain.ABSENT)
    first = records[0]
    own = first.signer is None
    if own and session_key is not None and first.key == session_key:
        add_record(message, first)
        return ClientPathDecision(first, len(records) - 1, Chain.PASS)
    if own:
        # the client's own record, under a key this session did not announce
        return ClientPathDecision(None, len(records) - 1, Chain.FAIL, Reason.KEY_UNKNOWN)
    return ClientPathDecision(None, len(records), Chain.ABSENT)


def receive_chain(message: etree._Element, *, origin: str, takes_part: bool, keys: KeySet | None,
                  key_source: KeySource, keys_unavailable: bool = False) -> ChainDecision:
    """A receiving server's decision about a message from domain ``origin`` (XEP: At a Receiving
    Server): ``takes_part`` says whether ``origin`` takes part (announced or remembered), ``keys``
    are its published keys as last fetched (the last record's key must be one valid at its time:
    not revoked, not retired before), ``key_source`` where they were learned (e.g.
    ``s2s-pin``: over this server's own outgoing link to ``origin``, checked by a pin).  Only what
    this needs is read (:func:`read_last_record`): the path's shape, whether a record states 'st'
    (only the delivering server may), and the last record's 's', 't', 'k' and 'z'; the recipient
    decodes every record.  ``keys_unavailable``: there is no usable key set because fetching it
    failed (no answer, unreachable), so a key not known is ``keys-unavailable`` (unknown), not
    ``key-unknown``.  A path that cannot be read so, or that states 'st', is removed from
    ``message``; nothing else is changed.  ``sig`` is the last record's signature (what a pass
    vouches for)."""
    try:
        last = read_last_record(message)
    except InvalidInput as exc:
        remove_paths(message)
        return ChainDecision(Chain.FAIL, Reason.MALFORMED, error=str(exc))
    stripped_or_absent = Chain.STRIPPED if takes_part else Chain.ABSENT
    if last is None:
        return ChainDecision(stripped_or_absent)
    if last.stored:
        # only the server that delivers states 'st' (rule 28): a sending server that does would
        # explain away the age of what it sends as storage
        remove_paths(message)
        return ChainDecision(Chain.FAIL, Reason.MALFORMED,
                             error="a record that arrived from another server states 'st=', which only the "
                                   "delivering server may")
    if last.signer != origin or not takes_part:
        return ChainDecision(stripped_or_absent, sig=last.sig)
    problem = "key-unknown" if keys is None else keys.problem(last.key, from_epoch(last.time or 0))
    if problem == "key-unknown":
        if keys_unavailable:
            # nothing is known against the key: the fetch failed, it did not name other keys
            return ChainDecision(Chain.FAIL, Reason.KEYS_UNAVAILABLE, refetch=True, sig=last.sig)
        return ChainDecision(Chain.FAIL, Reason.KEY_UNKNOWN, refetch=True, sig=last.sig)
    if problem is not None:  # revoked, or retired before the record's time: the origin withdrew it
        return ChainDecision(Chain.FAIL, Reason(problem), sig=last.sig)
    return ChainDecision(Chain.PASS, vouch=key_source, sig=last.sig)


def unmet_requirement(required: str, views: Iterable[tuple[str, View | None]]) -> UnverifiedHop | None:
    """The first of ``views`` (``(peer, view)`` of each hop a server checks before it forwards or
    delivers) that cannot meet ``<require verdict='required'/>``, as the refusal names it."""
    for peer, view in views:
        if view is None:
            continue
        reason = requirement_problem(view, required)
        if reason is not None:
            return UnverifiedHop(peer, view.method, reason, required)
    return None


def received_requirement_problem(required: str, origin: str, in_view: View,
                                 decision: ChainDecision) -> UnverifiedHop | None:
    """At a receiving server: the s2s hop a message arrived on must meet ``required``, and so must
    what arrived on it (a record that is not there, or names an unknown key, cannot be vouched for)
    and the source of the key it vouches with (a key learned over a CA-checked link caps the hop
    at ca, as the recipient's verifier caps it)."""
    hop = unmet_requirement(required, ((origin, in_view),))
    if hop is not None:
        return hop
    if decision.chain is not Chain.PASS:
        reason: Reason | str = (decision.chain_reason or Reason.CHAIN_BROKEN) if decision.chain is Chain.FAIL else \
            Reason.NOT_PARTICIPATING if decision.chain is Chain.ABSENT else Reason.STRIPPED
        return UnverifiedHop(origin, in_view.method, reason, required)
    cap = KEY_SOURCE_STRENGTH.get(decision.vouch) if decision.vouch is not None else None
    if cap is not None and cap < Strength.named(REQUIRED_STRENGTH[required]):
        return UnverifiedHop(origin, in_view.method, Reason.WEAK_KEY_SOURCE, required)
    return None


def sending_requirement_problem(required: str, sender: str, in_view: View,
                                decision: ClientPathDecision) -> UnverifiedHop | None:
    """At the sending server, before it routes a message anywhere (to a remote domain, to a user
    of its own, to a room): the hop from the sending client (H1), described by this server's
    ``in_view`` and by the client's own record it kept (``decision``), must meet ``required``.
    Without the client's record the hop is described by one end only, which meets nothing."""
    missing: Reason | str | None = None
    if decision.chain is Chain.FAIL:
        missing = decision.chain_reason or Reason.CHAIN_BROKEN
    elif decision.chain is not Chain.PASS:
        missing = Reason.NOT_PARTICIPATING
    client_view = decision.kept.out_view if decision.kept is not None else None
    found = client_hop_problem(required, in_view, client_view, missing)
    return None if found is None else UnverifiedHop(sender, found[0], found[1], required)


def delivery_requirement_problem(required: str, recipient: str, server_view: View,
                                 client_view: View | None) -> UnverifiedHop | None:
    """At the recipient's server, before it delivers to one resource (live, a carbon copy, from
    offline storage, an archive result): the hop to that resource's client, described by this
    server's ``server_view`` and by the view the client announced for its connection
    (``<session-key view=.../>``; None if it announced none), must meet ``required``.  A view the
    client announced counts as strong only on a login bound to its channel, as H1's does."""
    found = client_hop_problem(required, server_view, client_view, Reason.NOT_PARTICIPATING)
    return None if found is None else UnverifiedHop(recipient, found[0], found[1], required)


__all__ = ["ChainDecision", "ClientPathDecision", "UnverifiedHop", "delivery_requirement_problem",
           "filter_client_path", "receive_chain", "received_requirement_problem", "sending_requirement_problem",
           "unmet_requirement"]
