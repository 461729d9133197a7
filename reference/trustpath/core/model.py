"""Value types of the protocol: views, records, paths and message fields.

Everything here is a frozen dataclass or a string enum whose values are the exact
words used on the wire and in the XEP.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, StrEnum

from . import constants
from .constants import DEFAULT_MAX_SKEW, MAX_RECORDS, MAX_DEPTH, MAX_REPORT_HOPS, MAX_STANZA_BYTES  # noqa: F401
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
Chain = _words("Chain", _T["chains"], "A signer's own check of the records it received.")
KeySource = _words("KeySource", list(_T["key_sources"]),
                   "Where a signer learned the key of the record before its own.")
Verdict = _words("Verdict", _T["verdicts"], "The overall verdict on a path.")
Reason = _words("Reason", list(_T["reasons"]), "The reason codes (XEP: Reason Codes).")
Status = _words("Status", ["ok", "unvouched", *_T["record_failures"], "key-unknown"],
                "What a verifier found about one record: ``ok``, ``unvouched`` (no later signer "
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
        return _VERDICT_OF_STRENGTH[self]

    @property
    def hop_result(self) -> HopResult:
        return _HOP_RESULT_OF_STRENGTH[self]

    @classmethod
    def named(cls, name: str) -> Strength:
        """``'ca'`` -> ``Strength.CA``: the names the constants table and reports use."""
        return cls[name.upper()]


if [s.name.lower() for s in Strength] != list(constants.STRENGTHS):
    raise ImportError("Strength differs from spec/constants.json 'strengths'")
_VERDICT_OF_STRENGTH = {s: Verdict(constants.VERDICT_OF_STRENGTH[s.name.lower()]) for s in Strength}
_HOP_RESULT_OF_STRENGTH = {s: HopResult(constants.HOP_RESULT_OF_STRENGTH[s.name.lower()]) for s in Strength}

#: Certificate verification methods of a TLS client end, and s2s peer authentication
#: methods of a TLS server end.  On the server end of a c2s hop the method is the
#: SASL mechanism name (upper case), which does not change the hop's strength.
METHOD_STRENGTH: dict[str, Strength] = {m: Strength.named(s) for m, (s, _) in constants.METHODS.items()}

#: ``None`` for ``link``: as strong as the hop the key was learned over
KEY_SOURCE_STRENGTH: dict[KeySource, Strength | None] = {
    KeySource(k): None if s is None else Strength.named(s) for k, s in constants.KEY_SOURCES.items()}

RECORD_FAILURES: frozenset[Status] = frozenset(Status(s) for s in constants.RECORD_FAILURES)


_OTHER_METHOD_STRENGTH = Strength.named(constants.OTHER_METHOD[0])


def method_strength(method: str) -> Strength:
    """The strength a verification method gives a view that passed (an unknown method: unverified)."""
    return METHOD_STRENGTH.get(method, _OTHER_METHOD_STRENGTH)


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


def bare(jid: str) -> str:
    return jid.split("/", 1)[0]


def domain_of(jid: str) -> str:
    return bare(jid).split("@", 1)[-1]


def binds_client(method: str) -> bool:
    """Whether a server's view of its client's hop (H1) binds the client's own statements to
    that channel: SASL channel binding the server checked, or a key it knew before."""
    return constants.CLIENT_BINDINGS.get(method, False)


@dataclass(frozen=True, slots=True)
class View:
    """What one end of a hop states about it (XEP: The path Element): ``method,result,tls,spki``.

    ``result`` is pass, none (not verified) or fail; a failed view gives its ``reason``.  ``spki``
    is the first 12 bytes of the SHA-256 of the certificate key the TLS server end presented,
    base64 without padding; None when ``tls`` is ``none``.
    """

    method: str
    result: Result
    tls: str
    spki: str | None = None
    reason: str | None = None

    def text(self) -> str:
        """The view as it is written in a record."""
        result = self.reason if self.result is Result.FAIL else self.result.value
        return f"{self.method},{result},{self.tls},{self.spki or '-'}"


@dataclass(frozen=True, slots=True)
class Record:
    """One signer's signed statement about the hop(s) it saw for one message: a record of the
    ``<path/>`` (XEP: The path Element).  ``text`` is the record exactly as written; the signature covers
    it as written, so it is what a verifier checks, whatever the other fields say.

    ``signer`` is None in the sending client's record (the signer is the message's 'from').
    ``time`` and ``stored`` are seconds since the epoch.  ``vouch`` is where the signer learned
    the previous record's ``key``.  ``covers`` is None for the default payloads.  ``extra`` holds
    the fields this version does not define, in order: signed, and otherwise ignored.
    """

    key: str
    out_view: View
    sig: str
    text: str
    signer: str | None = None
    time: int | None = None
    alg: str | None = None
    in_view: View | None = None
    in_peer: str | None = None
    out_peer: str | None = None
    chain: Chain | None = None
    chain_reason: str | None = None
    vouch: KeySource | None = None
    removed: int | None = None
    stored: int | None = None
    covers: tuple[str, ...] | None = None
    extra: tuple[tuple[str, str], ...] = ()

    @property
    def unsigned(self) -> str:
        """The record without its signature: what its signing input ends with."""
        return self.text[:self.text.rindex(";z=")]

    @property
    def payloads(self) -> tuple[str, ...]:
        return self.covers if self.covers is not None else constants.DEFAULT_PAYLOADS


@dataclass(frozen=True, slots=True)
class Path:
    """The records of one message, oldest first."""

    records: tuple[Record, ...] = ()

    def text(self) -> str:
        return " ".join(a.text for a in self.records)


@dataclass(frozen=True, slots=True)
class MessageFields:
    """The parts of a ``<message/>`` a record can be bound to (XEP: Signing Input).

    ``id`` is the message's 'id', else its XEP-0359 origin-id.  ``bodies``, ``subjects`` and
    ``threads`` are ``(xml:lang or None, text)`` pairs in document order.  ``report`` is a delivery
    report's attributes as signed: the ``<report/>``'s ``(name, value)`` pairs sorted by name, then
    each ``<hop/>``'s, in document order; None when the message carries none.  ``elements`` maps
    each element payload present (omemo, oob, ...) to its projection (XEP: Covered Payloads).
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
    elements: tuple[tuple[str, str], ...] = ()

    @property
    def present(self) -> tuple[str, ...]:
        """The payload tokens this message carries, in the table's order."""
        have = {"body": bool(self.bodies), "subject": bool(self.subjects), "thread": bool(self.threads),
                "require": self.require is not None, "report": self.report is not None}
        have.update((token, True) for token, _ in self.elements)
        return tuple(token for token in constants.PAYLOADS if have.get(token))
