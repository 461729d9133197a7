"""What a participating server decides (XEP: At the Sending Server, At a Receiving Server,
Requiring Verified Hops), sans-I/O.

The embedded federation (:mod:`trustpath.testbed.sim`) calls these functions, and the Lua core
that the Prosody module ships has the same ones under the same names
(``prosody/mod_trust_path/core/server.lua``); ``spec/vectors/server/`` holds cases both run.

* :func:`filter_client_path`: anti-forgery on a message from a local client: keep at most the
  session's own valid attestation, remove everything else, and say what the server's ``<in/>``
  view of that hop states (:func:`client_attestation_problem` is the test of that attestation).
* :func:`receive_chain`: a receiving server's check of what arrived from a remote domain, and
  what its own ``<in/>`` view then states ('chain', 'chain-reason', 'key-source', 'prev-key').
* :func:`unmet_requirement`: the hop that cannot meet a sender's ``<require/>``, as the
  ``<unverified-hop/>`` of the refusal.
"""

from __future__ import annotations

from collections.abc import Container, Iterable
from dataclasses import dataclass, replace
from datetime import datetime

from lxml import etree

from .codec import add_attestation, decode_path, remove_paths
from .errors import InvalidInput
from .keys import KeySet, KeyStatus, verify_signature
from .model import Attestation, Chain, KeySource, MessageFields, Reason, View
from .require import requirement_problem
from .signing import signing_input
from .timefmt import parse_time
from .verify import Anchor, Report, verify


@dataclass(frozen=True, slots=True)
class ClientPathDecision:
    """What the sending server kept of a local client's path, and what its ``<in/>`` states."""

    kept: Attestation | None  # the client's own valid attestation, still in the message
    removed: int  # attestations removed (forgeries, extra copies, an unreadable path counts as 1)
    chain: Chain  # pass (kept), fail (the client's own attestation failed), absent (none)
    chain_reason: Reason | None = None  # why the client's own attestation failed

    def in_view(self, base: View) -> View:
        """The server's ``<in/>`` view of the client's hop: ``base`` (its TLS and SASL facts) with
        'chain', 'chain-reason', 'key-source' (link, when a client attestation was kept) and
        'removed'."""
        return replace(base, chain=self.chain, chain_reason=self.chain_reason,
                       key_source=KeySource.LINK if self.kept is not None else None,
                       removed=self.removed or None)


@dataclass(frozen=True, slots=True)
class ChainDecision:
    """What a receiving server found in the path that arrived from ``origin``.

    ``previous`` is the last received attestation (what the server's own one follows);
    ``prev_key`` the key of ``origin`` it vouches for, set only when ``previous`` is signed by
    ``origin`` and ``origin`` takes part; ``report`` the verification behind ``chain``;
    ``error`` why an unreadable path was removed."""

    chain: Chain
    chain_reason: Reason | None = None
    previous: Attestation | None = None
    prev_key: str | None = None
    key_source: KeySource | None = None
    report: Report | None = None
    error: str | None = None
    received: tuple[Attestation, ...] = ()  # the attestations checked

    def in_view(self, base: View) -> View:
        """The server's ``<in/>`` view of the s2s hop: ``base`` with what this decision found."""
        return replace(base, chain=self.chain, chain_reason=self.chain_reason if self.chain is Chain.FAIL else None,
                       key_source=self.key_source if self.prev_key is not None else None)

    @property
    def accepted(self) -> tuple[str, ...]:
        """The signatures of a path that passed: what goes into the replay cache."""
        return tuple(a.sig for a in self.received) if self.chain is Chain.PASS else ()


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


def client_attestation_problem(fields: MessageFields, att: Attestation, *, domain: str, client_key: str | None,
                               now: datetime, max_skew: int) -> Reason | None:
    """Why the client's own attestation cannot be kept by its server ``domain``, or None
    (XEP: At the Sending Server, step 1)."""
    if att.in_view is not None or att.prev_key is not None or att.out_view is None or att.out_view.peer != domain:
        return Reason.CHAIN_BROKEN
    if att.for_id != fields.id:
        return Reason.REPLAYED
    if abs((parse_time(att.time) - now).total_seconds()) > max_skew:
        return Reason.CLOCK_SKEW
    if client_key is None or not verify_signature(client_key, att.sig, signing_input(fields, "", att)):
        return Reason.TAMPERED
    return None


def filter_client_path(message: etree._Element, fields: MessageFields, session_jid: str, *, domain: str,
                       client_key: str | None, now: datetime, max_skew: int) -> ClientPathDecision:
    """Anti-forgery at the sending server: keep at most the session's own valid attestation in
    ``message`` (changed in place), remove every other ``<path/>`` and attestation."""
    kept: Attestation | None = None
    removed = 0
    own_problem: Reason | None = None
    try:
        path = decode_path(message)
    except InvalidInput:
        path, removed = None, 1
    for att in path.attestations if path is not None else ():
        if att.signer != session_jid or kept is not None:
            removed += 1
            continue
        problem = client_attestation_problem(fields, att, domain=domain, client_key=client_key, now=now,
                                             max_skew=max_skew)
        if problem is None:
            kept = att
        else:
            own_problem = problem
    remove_paths(message)
    if kept is not None:
        add_attestation(message, kept)
    chain = Chain.PASS if kept is not None else Chain.FAIL if own_problem is not None else Chain.ABSENT
    return ClientPathDecision(kept, removed, chain, own_problem if chain is Chain.FAIL else None)


def receive_chain(message: etree._Element, fields: MessageFields, *, origin: str, domain: str, takes_part: bool,
                  keys: KeySet | None, in_view: View, now: datetime, max_skew: int,
                  seen: Container[str] = ()) -> ChainDecision:
    """A receiving server's decision about a message from domain ``origin`` (XEP: At a Receiving
    Server): ``takes_part`` says whether ``origin`` takes part (announced or remembered),
    ``keys`` are its published keys, ``in_view`` this server's view of the s2s hop, ``seen`` the
    replay cache.  An unreadable path is removed from ``message``; nothing else is changed."""
    try:
        path = decode_path(message)
    except InvalidInput as exc:
        remove_paths(message)
        return ChainDecision(Chain.FAIL, Reason.MALFORMED, error=str(exc))
    stripped_or_absent = Chain.STRIPPED if takes_part else Chain.ABSENT
    if path is None:
        return ChainDecision(stripped_or_absent)
    previous = path.attestations[-1]
    if previous.signer != origin or not takes_part:
        return ChainDecision(stripped_or_absent, previous=previous)
    keyset = keys if keys is not None else KeySet(origin, ())
    report = verify(fields, path, Anchor(origin, keyset, domain, in_view), now, max_skew=max_skew, seen=seen)
    current = next((k.key for k in keyset.keys if k.status is KeyStatus.CURRENT), None)
    problem = report.chain_problem
    return ChainDecision(Chain.PASS if problem is None else Chain.FAIL, problem, previous,
                         report.anchor_key or current, KeySource.LINK, report, received=path.attestations)


def unmet_requirement(required: str, views: Iterable[View | None]) -> UnverifiedHop | None:
    """The first of ``views`` (the hops a server checks before it forwards or delivers) that
    cannot meet ``<require verdict='required'/>``, as the refusal names it; None if all can."""
    for view in views:
        if view is None:
            continue
        reason = requirement_problem(view, required)
        if reason is not None:
            return UnverifiedHop(view.peer, view.method, reason, required)
    return None


def received_requirement_problem(required: str, in_view: View, decision: ChainDecision) -> UnverifiedHop | None:
    """At a receiving server: the s2s hop a message arrived on must meet ``required``, and so
    must the chain that arrived on it (a chain that did not pass cannot be vouched for)."""
    hop = unmet_requirement(required, (in_view,))
    if hop is not None or decision.chain is Chain.PASS:
        return hop
    reason: Reason | str = (decision.chain_reason or Reason.CHAIN_BROKEN) if decision.chain is Chain.FAIL else \
        Reason.NOT_PARTICIPATING if decision.chain is Chain.ABSENT else Reason.STRIPPED
    return UnverifiedHop(in_view.peer, in_view.method, reason, required)


__all__ = ["ChainDecision", "ClientPathDecision", "UnverifiedHop", "client_attestation_problem",
           "filter_client_path", "receive_chain", "received_requirement_problem", "unmet_requirement"]
