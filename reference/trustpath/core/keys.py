"""Record keys (Ed25519), published key sets with rotation and revocation, and SPKI pins.

All cryptography is `cryptography`'s; this module only encodes and decodes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .constants import SPKI_BYTES, TABLE
from .errors import InvalidInput, UsageError
from .timefmt import format_time, parse_time


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def b64_raw(data: bytes) -> str:
    """Base64 without padding (RFC 4648 section 3.2), as records write keys and signatures."""
    return base64.b64encode(data).decode("ascii").rstrip("=")


def unb64_raw(text: str, length: int, what: str) -> bytes:
    """Base64 without padding back to exactly ``length`` bytes."""
    return unb64(text + "=" * (-len(text) % 4), length, what)


def unb64(text: str, length: int, what: str) -> bytes:
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise InvalidInput(f"{what} is not valid base64") from exc
    if len(raw) != length:
        raise InvalidInput(f"{what} must be {length} bytes, got {len(raw)}")
    if base64.b64encode(raw).decode("ascii") != text:
        # unused bits set in the last character: another spelling of the same bytes, which the
        # Lua core (and a record's exact comparison of keys) would not match
        raise InvalidInput(f"{what} is not in canonical base64 (unused bits set in its last character)")
    return raw


class SigningKey:
    """An Ed25519 private key of a signer (a server's record key or a client's session key)."""

    __slots__ = ("_key", "public")

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key
        raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        #: the base64 public key without padding, as records write it (``k=``)
        self.public: str = b64_raw(raw)

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes) -> SigningKey:
        """A fixed key for test vectors: the 32-byte RFC 8032 private key ``seed``."""
        if len(seed) != 32:
            raise UsageError("an Ed25519 seed is 32 bytes")
        return cls(Ed25519PrivateKey.from_private_bytes(seed))

    def seed(self) -> bytes:
        return self._key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                       serialization.NoEncryption())

    def sign(self, data: bytes) -> str:
        """The Ed25519 signature over ``data``, base64 without padding (``z=``)."""
        return b64_raw(self._key.sign(data))

    def __repr__(self) -> str:
        return f"SigningKey(public={self.public!r})"


_PUBLIC_CACHE: dict[str, Ed25519PublicKey] = {}


def public_key(text: str) -> Ed25519PublicKey:
    """Decode a base64 Ed25519 public key, with or without padding (cached: the same few keys
    recur on every message)."""
    key = _PUBLIC_CACHE.get(text)
    if key is None:
        raw = unb64_raw(text.rstrip("="), 32, "an Ed25519 public key")
        try:
            key = Ed25519PublicKey.from_public_bytes(raw)
        except ValueError as exc:
            raise InvalidInput("not a valid Ed25519 public key") from exc
        if len(_PUBLIC_CACHE) > 4096:
            _PUBLIC_CACHE.clear()
        _PUBLIC_CACHE[text] = key
    return key


def verify_signature(public: str, sig: str, data: bytes) -> bool:
    """True when ``sig`` (base64) is ``public``'s Ed25519 signature over ``data``."""
    try:
        key = public_key(public)
        raw = unb64_raw(sig.rstrip("="), 64, "a signature")
    except InvalidInput:
        return False
    try:
        key.verify(raw, data)
    except InvalidSignature:
        return False
    return True


def spki_sha256(certificate_der: bytes) -> str:
    """The pin of a certificate: base64 SHA-256 of its DER SubjectPublicKeyInfo."""
    cert = x509.load_der_x509_certificate(certificate_der)
    spki = cert.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)
    return b64(hashlib.sha256(spki).digest())


def short_spki(pin: str) -> str:
    """A view's ``spki``: the first 12 bytes of a pin's SHA-256, base64 without padding (16 chars)."""
    return b64_raw(unb64(pin, 32, "an SPKI pin")[:SPKI_BYTES])


KeyStatus = StrEnum("KeyStatus", [(s.upper(), s) for s in TABLE["key_statuses"]],  # type: ignore[misc]
                    module=__name__, qualname="KeyStatus")
KeyStatus.__doc__ = ("Where a published key stands: current, next (published before the server signs with it, "
                     "valid like a current key), retired (valid until its not-after time) or revoked.")


@dataclass(frozen=True, slots=True)
class PublishedKey:
    """One entry of a server's published record keys (XEP: Discovery and Keys).

    ``not_after`` (retired keys): signatures whose time is not later are valid.  ``since``
    (revoked keys): the key may have been compromised from then on, so only messages an archive
    holds from before that time stay valid.  ``alg`` is the key's algorithm."""

    key: str
    status: KeyStatus = KeyStatus.CURRENT
    not_after: str | None = None
    since: str | None = None
    alg: str = "ed25519"

    def to_json(self) -> dict[str, str]:
        out = {"key": self.key, "alg": self.alg, "status": self.status.value}
        if self.not_after is not None:
            out["not_after"] = self.not_after
        if self.since is not None:
            out["since"] = self.since
        return out


@dataclass(frozen=True, slots=True)
class KeySet:
    """The record keys a domain publishes, as a verifier learned them."""

    domain: str
    keys: tuple[PublishedKey, ...]

    def status_of(self, key: str) -> PublishedKey | None:
        for entry in self.keys:
            if entry.key == key:
                return entry
        return None

    def problem(self, key: str, signed_at: datetime, archived_at: datetime | None = None) -> str | None:
        """Why ``key`` cannot have made a valid signature at ``signed_at`` (XEP: Discovery and Keys): None when it
        can, else ``key-unknown`` (not published), ``key-retired`` (retired before) or
        ``key-revoked`` (revoked; for a message read from an archive, ``archived_at`` before the
        compromise is still valid)."""
        entry = self.status_of(key)
        if entry is None:
            return "key-unknown"
        if entry.status in (KeyStatus.CURRENT, KeyStatus.NEXT):
            # a next key is published before its first signature so that a rotation has no gap
            return None
        if entry.status is KeyStatus.RETIRED:
            return None if entry.not_after is not None and signed_at <= parse_time(entry.not_after) \
                else "key-retired"
        if archived_at is not None and entry.since is not None and archived_at < parse_time(entry.since):
            return None
        return "key-revoked"

    @property
    def current(self) -> tuple[str, ...]:
        return tuple(k.key for k in self.keys if k.status is KeyStatus.CURRENT)

    def rotated(self, new_key: str, at: datetime, max_skew: int) -> KeySet:
        """Publish ``new_key`` as current; current keys become retired at ``at`` + skew."""
        from datetime import timedelta

        not_after = format_time(at + timedelta(seconds=max_skew))
        kept = tuple(PublishedKey(k.key, KeyStatus.RETIRED, not_after) if k.status is KeyStatus.CURRENT else k
                     for k in self.keys if k.key != new_key)  # a next key becomes the current one
        return KeySet(self.domain, (PublishedKey(new_key),) + kept)

    def with_next(self, key: str) -> KeySet:
        """``key`` published as the next key: valid from now on, before the server signs with it."""
        return KeySet(self.domain, self.keys + (PublishedKey(key, KeyStatus.NEXT),))

    def revoked(self, key: str, since: datetime) -> KeySet:
        """``key`` revoked, compromised since ``since``."""
        return KeySet(self.domain, tuple(PublishedKey(k.key, KeyStatus.REVOKED, since=format_time(since))
                                         if k.key == key else k for k in self.keys))

    def to_json(self) -> dict[str, object]:
        return {"domain": self.domain, "keys": [k.to_json() for k in self.keys]}

    @classmethod
    def from_json(cls, data: object) -> KeySet:
        if not isinstance(data, dict) or not isinstance(data.get("domain"), str):
            raise InvalidInput("a key set needs a 'domain' string and a 'keys' list")
        entries = data.get("keys")
        if not isinstance(entries, list) or not entries:
            raise InvalidInput(f"key set of {data['domain']} has no 'keys'")
        return cls(data["domain"], tuple(_published_key(entry) for entry in entries))


def _published_key(entry: object) -> PublishedKey:
    if not isinstance(entry, dict) or not isinstance(entry.get("key"), str):
        raise InvalidInput("each key entry needs a 'key' string")
    unb64_raw(entry["key"].rstrip("="), 32, "an Ed25519 public key")
    # JSON null counts as absent, as for the times below
    alg = entry.get("alg") if entry.get("alg") is not None else "ed25519"
    if alg not in TABLE["algorithms"]:
        raise InvalidInput(f"key algorithm {alg!r} is not supported; only {TABLE['algorithms']}")
    try:
        status = KeyStatus(entry.get("status") if entry.get("status") is not None else "current")
    except ValueError as exc:
        raise InvalidInput(f"unknown key status {entry.get('status')!r}") from exc
    times = {}
    for name in ("not_after", "since"):
        value = entry.get(name)
        if value is not None:
            if not isinstance(value, str):
                raise InvalidInput(f"'{name}' must be a time string")
            parse_time(value)
            times[name] = value
    if status is KeyStatus.RETIRED and "not_after" not in times:
        raise InvalidInput("a retired key needs 'not_after'")
    return PublishedKey(entry["key"].rstrip("="), status, times.get("not_after"), times.get("since"), alg)
