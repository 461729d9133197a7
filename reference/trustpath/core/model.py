"""Value types of the protocol: views, attestations, paths and message fields.

Everything here is a frozen dataclass or a string enum whose values are the exact
words used on the wire and in the XEP.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, StrEnum

from . import constants
from .constants import DEFAULT_MAX_SKEW, MAX_ATTESTATIONS, MAX_DEPTH, MAX_REPORT_HOPS, MAX_STANZA_BYTES  # noqa: F401
from .constants import NS, NS_PREFIX  # noqa: F401  (re-exported: the model speaks in them)


def _words(name: str, values: list[str] | tuple[str, ...], doc: str) -> type[StrEnum]:
    """A string enum of wire words from the constants table: ``'chain-broken'`` is ``CHAIN_BROKEN``.

    The members come from spec/constants.json, the file the Lua core loads too, so that the two
    cores cannot name a different set of words."""
    enum = StrEnum(name, [(v.upper().replace("-", "_").replace(".", "_"), v) for v in values],  # type: ignore[misc]
                   module=__name__, qualname=name)
    enum.__doc__ = doc
    return enum


_T = constants.TABLE
Side = _words("Side", _T["sides"], "The signer's TLS role on a hop (the TLS client opened the connection).")
Result = _words("Result", _T["results"], "A view's result: what one end of a hop found.")
HopResult = _words("HopResult", _T["hop_results"],
                   "A hop's result in a report: a view's results, and ``unknown`` for a hop not described.")
Chain = _words("Chain", _T["chains"], "A signer's own check of the attestations it received.")
KeySource = _words("KeySource", list(_T["key_sources"]),
                   "Where a signer learned the key of the attestation before its own.")
Verdict = _words("Verdict", _T["verdicts"], "The overall verdict on a path.")
Reason = _words("Reason", list(_T["reasons"]), "The reason codes (XEP: Reason Codes).")
Status = _words("Status", ["ok", "unvouched", *_T["attestation_failures"], "key-unknown"],
                "What a verifier found about one attestation: ``ok``, ``unvouched`` (no later signer "
                "vouched for its key) or the reason code it fails with.")


class Strength(IntEnum):
    """Ordered so that ``min()`` over hops gives the path's strength."""

    FAILED = 0
    UNVERIFIED = 1
    UNKNOWN = 2
    CA = 3
    STRONG = 4

    @property
    def verdict(self) -> Verdict:
        return Verdict(constants.VERDICT_OF_STRENGTH[self.name.lower()])

    @property
    def hop_result(self) -> HopResult:
        return HopResult(constants.HOP_RESULT_OF_STRENGTH[self.name.lower()])

    @classmethod
    def named(cls, name: str) -> Strength:
        """``'ca'`` -> ``Strength.CA``: the names the constants table and reports use."""
        return cls[name.upper()]


if [s.name.lower() for s in Strength] != list(constants.STRENGTHS):
    raise ImportError("Strength differs from spec/constants.json 'strengths'")

#: Certificate verification methods of a TLS client end, and s2s peer authentication
#: methods of a TLS server end.  On the server end of a c2s hop the method is the
#: SASL mechanism name (upper case), which does not change the hop's strength.
METHOD_STRENGTH: dict[str, Strength] = {m: Strength.named(s) for m, (s, _) in constants.METHODS.items()}

#: ``None`` for ``link``: as strong as the hop the key was learned over
KEY_SOURCE_STRENGTH: dict[KeySource, Strength | None] = {
    KeySource(k): None if s is None else Strength.named(s) for k, s in constants.KEY_SOURCES.items()}

#: IANA TLS cipher suite values by the OpenSSL names Python's ssl module and LuaSec report.
CIPHER_CODES = constants.CIPHER_SUITES

ATTESTATION_FAILURES: frozenset[Status] = frozenset(Status(s) for s in constants.ATTESTATION_FAILURES)


def method_strength(method: str) -> Strength:
    """The strength a verification method gives a view that passed (an unknown method: unverified)."""
    return METHOD_STRENGTH.get(method, Strength.named(constants.OTHER_METHOD[0]))


def method_reason(method: str) -> Reason:
    """The reason code of a hop whose strength this method caps: ``ca-only``, ``dialback-only``, ..."""
    entry = constants.METHODS.get(method)
    return Reason((entry[1] if entry is not None else None) or constants.OTHER_METHOD[1])


def view_strength(view: View) -> Strength:
    """How strong one end's view makes its hop: failed, unverified (no TLS, nothing checked) or its method's."""
    if view.result is Result.FAIL:
        return Strength.FAILED
    if view.tls == "none" or view.result is not Result.PASS:
        return Strength.UNVERIFIED
    return method_strength(view.method)


def is_client_jid(jid: str) -> bool:
    """A client is addressed by a full JID (``user@domain/resource``); a server by a domain."""
    return "@" in jid or "/" in jid


@dataclass(frozen=True, slots=True)
class View:
    """What one end of a hop states about it.

    ``chain``, ``chain_reason``, ``key_source`` and ``removed`` belong to an ``<in/>``
    view only.
    """

    peer: str
    side: Side
    tls: str
    method: str
    result: Result
    spki: str | None = None
    cipher: str | None = None
    cb: str | None = None
    reason: str | None = None
    chain: Chain | None = None
    chain_reason: str | None = None
    key_source: KeySource | None = None
    removed: int | None = None

    def attributes(self) -> dict[str, str]:
        """The wire attributes, exactly as they are encoded and signed."""
        out: dict[str, str] = {"peer": self.peer, "side": self.side.value, "tls": self.tls}
        if self.cipher is not None:
            out["cipher"] = self.cipher
        if self.spki is not None:
            out["spki"] = self.spki
        out["method"] = self.method
        if self.cb is not None:
            out["cb"] = self.cb
        out["result"] = self.result.value
        if self.reason is not None:
            out["reason"] = self.reason
        if self.chain is not None:
            out["chain"] = self.chain.value
        if self.chain_reason is not None:
            out["chain-reason"] = self.chain_reason
        if self.key_source is not None:
            out["key-source"] = self.key_source.value
        if self.removed is not None:
            out["removed"] = str(self.removed)
        return out


@dataclass(frozen=True, slots=True)
class Attestation:
    """One signer's signed statement about the hop(s) it saw for one message."""

    signer: str
    time: str
    for_id: str
    sig: str
    in_view: View | None = None
    out_view: View | None = None
    prev_key: str | None = None
    stored: str | None = None
    alg: str | None = None

    def attributes(self, *, with_sig: bool = True) -> dict[str, str]:
        out: dict[str, str] = {"signer": self.signer, "time": self.time, "for": self.for_id}
        if self.alg is not None:
            out["alg"] = self.alg
        if self.prev_key is not None:
            out["prev-key"] = self.prev_key
        if self.stored is not None:
            out["stored"] = self.stored
        if with_sig:
            out["sig"] = self.sig
        return out


@dataclass(frozen=True, slots=True)
class Path:
    """The attestations of one message, oldest first."""

    attestations: tuple[Attestation, ...] = ()


@dataclass(frozen=True, slots=True)
class MessageFields:
    """The parts of a ``<message/>`` an attestation is bound to.

    ``bodies``, ``subjects`` and ``threads`` are ``(xml:lang or None, text)`` pairs in
    document order.  ``report`` is a delivery report's attributes as signed (XEP: Delivery
    Reports): the ``<report/>``'s ``(name, value)`` pairs sorted by name, then each ``<hop/>``'s,
    in document order; None when the message carries none.
    """

    sender: str
    to: str
    id: str
    type: str = "normal"
    bodies: tuple[tuple[str | None, str], ...] = ()
    subjects: tuple[tuple[str | None, str], ...] = ()
    threads: tuple[tuple[str | None, str], ...] = ()
    require: str | None = None
    report: tuple[tuple[tuple[str, str], ...], ...] | None = None
