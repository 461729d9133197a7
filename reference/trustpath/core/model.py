"""Value types of the protocol: views, attestations, paths and message fields.

Everything here is a frozen dataclass or a string enum whose values are the exact
words used on the wire and in the XEP.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, StrEnum

NS = "urn:xmpp:trust-path:0"
NS_PREFIX = "urn:xmpp:trust-path:"

MAX_STANZA_BYTES = 262_144
MAX_DEPTH = 16
MAX_ATTESTATIONS = 8
MAX_REPORT_HOPS = 16
DEFAULT_MAX_SKEW = 300


class Side(StrEnum):
    """The signer's TLS role on a hop (the TLS client opened the connection)."""

    CLIENT = "client"
    SERVER = "server"


class Result(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    NONE = "none"


class Chain(StrEnum):
    """A signer's own check of the attestations it received."""

    PASS = "pass"
    ABSENT = "absent"
    STRIPPED = "stripped"
    FAIL = "fail"


class KeySource(StrEnum):
    """Where a signer learned the key of the attestation before its own."""

    LINK = "link"
    DNSSEC = "dnssec"
    CONFIG = "config"
    POSH = "posh"
    TOFU = "tofu"
    NONE = "none"


class Verdict(StrEnum):
    TRUSTED = "trusted"
    WEAK = "weak"
    UNTRUSTED = "untrusted"
    UNKNOWN = "unknown"


class Strength(IntEnum):
    """Ordered so that ``min()`` over hops gives the path's strength."""

    FAILED = 0
    UNVERIFIED = 1
    UNKNOWN = 2
    CA = 3
    STRONG = 4

    @property
    def verdict(self) -> Verdict:
        if self <= Strength.UNVERIFIED:
            return Verdict.UNTRUSTED
        if self == Strength.UNKNOWN:
            return Verdict.UNKNOWN
        if self == Strength.CA:
            return Verdict.WEAK
        return Verdict.TRUSTED


#: Certificate verification methods of a TLS client end, and s2s peer authentication
#: methods of a TLS server end.  On the server end of a c2s hop the method is the
#: SASL mechanism name (upper case), which does not change the hop's strength.
METHOD_STRENGTH: dict[str, Strength] = {
    "pin": Strength.STRONG,
    "dane-ee": Strength.STRONG,
    "dane-ta": Strength.STRONG,
    "pkix": Strength.CA,
    "dialback-dnssec": Strength.CA,
    "dialback": Strength.UNVERIFIED,
    "none": Strength.UNVERIFIED,
}

KEY_SOURCE_STRENGTH: dict[KeySource, Strength | None] = {
    KeySource.CONFIG: Strength.STRONG,
    KeySource.DNSSEC: Strength.STRONG,
    KeySource.LINK: None,  # as strong as the hop the key was learned over
    KeySource.POSH: Strength.CA,
    KeySource.TOFU: Strength.CA,
    KeySource.NONE: Strength.UNVERIFIED,
}

#: IANA TLS cipher suite values of the suites Python's ssl module names.
CIPHER_CODES: dict[str, str] = {
    "TLS_AES_128_GCM_SHA256": "1301",
    "TLS_AES_256_GCM_SHA384": "1302",
    "TLS_CHACHA20_POLY1305_SHA256": "1303",
    "TLS_AES_128_CCM_SHA256": "1304",
    "ECDHE-ECDSA-AES128-GCM-SHA256": "C02B",
    "ECDHE-ECDSA-AES256-GCM-SHA384": "C02C",
    "ECDHE-RSA-AES128-GCM-SHA256": "C02F",
    "ECDHE-RSA-AES256-GCM-SHA384": "C030",
    "ECDHE-ECDSA-CHACHA20-POLY1305": "CCA9",
    "ECDHE-RSA-CHACHA20-POLY1305": "CCA8",
}


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
