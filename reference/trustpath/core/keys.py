"""Attestation keys (Ed25519), published key sets with rotation and revocation, and SPKI pins.

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

from .constants import TABLE
from .errors import InvalidInput, UsageError
from .timefmt import format_time, parse_time


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: str, length: int, what: str) -> bytes:
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise InvalidInput(f"{what} is not valid base64") from exc
    if len(raw) != length:
        raise InvalidInput(f"{what} must be {length} bytes, got {len(raw)}")
    return raw


class SigningKey:
    """An Ed25519 private key of a signer (a server's attestation key or a client's session key)."""

    __slots__ = ("_key", "public")

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key
        raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        #: the base64 public key, as it appears in ``prev-key`` and in discovery
        self.public: str = b64(raw)

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
        return b64(self._key.sign(data))

    def __repr__(self) -> str:
        return f"SigningKey(public={self.public!r})"


_PUBLIC_CACHE: dict[str, Ed25519PublicKey] = {}


def public_key(text: str) -> Ed25519PublicKey:
    """Decode a base64 Ed25519 public key (cached: the same few keys recur on every message)."""
    key = _PUBLIC_CACHE.get(text)
    if key is None:
        raw = unb64(text, 32, "an Ed25519 public key")
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
        raw = unb64(sig, 64, "a signature")
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


KeyStatus = StrEnum("KeyStatus", [(s.upper(), s) for s in TABLE["key_statuses"]],  # type: ignore[misc]
                    module=__name__, qualname="KeyStatus")
KeyStatus.__doc__ = "Where a published key stands: current, retired (valid until its not-after time) or revoked."


@dataclass(frozen=True, slots=True)
class PublishedKey:
    """One entry of a server's published attestation keys."""

    key: str
    status: KeyStatus = KeyStatus.CURRENT
    not_after: str | None = None  # retired keys: valid for signatures made until then

    def to_json(self) -> dict[str, str]:
        out = {"key": self.key, "status": self.status.value}
        if self.not_after is not None:
            out["not_after"] = self.not_after
        return out


@dataclass(frozen=True, slots=True)
class KeySet:
    """The attestation keys a server publishes in service discovery."""

    domain: str
    keys: tuple[PublishedKey, ...]

    def candidates(self, signed_at: datetime) -> tuple[tuple[str, str | None], ...]:
        """Keys that may have made a signature at ``signed_at``: ``(key, problem)`` pairs.

        ``problem`` is ``None`` for a usable key, else the reason code that applies if
        only that key verifies the signature (``key-revoked``, ``key-retired``).
        """
        out: list[tuple[str, str | None]] = []
        for entry in self.keys:
            if entry.status is KeyStatus.CURRENT:
                out.append((entry.key, None))
            elif entry.status is KeyStatus.RETIRED:
                ok = entry.not_after is not None and signed_at <= parse_time(entry.not_after)
                out.append((entry.key, None if ok else "key-retired"))
            else:
                out.append((entry.key, "key-revoked"))
        # usable keys first: the common case costs one verification
        out.sort(key=lambda pair: pair[1] is not None)
        return tuple(out)

    def status_of(self, key: str) -> PublishedKey | None:
        for entry in self.keys:
            if entry.key == key:
                return entry
        return None

    def rotated(self, new_key: str, at: datetime, max_skew: int) -> KeySet:
        """Publish ``new_key`` as current; current keys become retired at ``at`` + skew."""
        from datetime import timedelta

        not_after = format_time(at + timedelta(seconds=max_skew))
        kept = tuple(PublishedKey(k.key, KeyStatus.RETIRED, not_after) if k.status is KeyStatus.CURRENT else k
                     for k in self.keys)
        return KeySet(self.domain, (PublishedKey(new_key),) + kept)

    def revoked(self, key: str) -> KeySet:
        return KeySet(self.domain, tuple(PublishedKey(k.key, KeyStatus.REVOKED) if k.key == key else k
                                         for k in self.keys))

    def to_json(self) -> dict[str, object]:
        return {"domain": self.domain, "keys": [k.to_json() for k in self.keys]}

    @classmethod
    def from_json(cls, data: object) -> KeySet:
        if not isinstance(data, dict) or not isinstance(data.get("domain"), str):
            raise InvalidInput("a key set needs a 'domain' string and a 'keys' list")
        entries = data.get("keys")
        if not isinstance(entries, list) or not entries:
            raise InvalidInput(f"key set of {data['domain']} has no 'keys'")
        keys = []
        for entry in entries:
            if not isinstance(entry, dict) or not isinstance(entry.get("key"), str):
                raise InvalidInput("each key entry needs a 'key' string")
            unb64(entry["key"], 32, "an Ed25519 public key")
            try:
                status = KeyStatus(entry.get("status", "current"))
            except ValueError as exc:
                raise InvalidInput(f"unknown key status {entry.get('status')!r}") from exc
            not_after = entry.get("not_after")
            if not_after is not None:
                if not isinstance(not_after, str):
                    raise InvalidInput("'not_after' must be a time string")
                try:
                    parse_time(not_after)
                except InvalidInput as exc:
                    raise InvalidInput(str(exc)) from exc
            if status is KeyStatus.RETIRED and not_after is None:
                raise InvalidInput("a retired key needs 'not_after'")
            keys.append(PublishedKey(entry["key"], status, not_after))
        return cls(data["domain"], tuple(keys))
