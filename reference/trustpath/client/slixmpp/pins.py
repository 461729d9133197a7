"""A client's pins of its servers' certificate keys, kept in a small JSON file.

The file is meant to be read and edited by people::

    {
      "version": 1,
      "pins": {
        "a.example": [
          {"spki": "N9MO06A8vDfKkrcopktPu0JxbmTEFm9uerhE8D5TBSs=", "source": "first-use",
           "added": "2026-11-25T09:00:00Z", "backup": false}
        ]
      }
    }

A pin is the base64 SHA-256 of a certificate's SubjectPublicKeyInfo
(:func:`trustpath.core.keys.spki_sha256`), so it survives a renewal with the same key.
``source`` says where it came from: ``configured`` (a person entered it), ``confirmed`` (taken on
first use, then confirmed by a person, e.g. after comparing it out of band), ``first-use`` (taken
automatically on the first connection and not confirmed: the XEP rates it ``tofu``, as weak as a
CA, because an attacker on that first connection chose it) or ``dane``;
``backup`` marks a key that is not in use yet but may be (the lesson of HPKP, RFC 7469:
without a backup pin, losing the key locks the user out).  Any pin of a domain, backup
or not, accepts a connection.

Nothing here re-pins silently: a pin is only added on first use when the domain has no
pin at all, and a key that matches no pin is a mismatch the caller must act on.  Writes
are atomic (a temporary file in the same directory, then a rename).  A file that cannot
be read raises :class:`trustpath.core.errors.InvalidPinStore` with the place of the problem.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path as FsPath
from typing import Any

from ...core.errors import InvalidInput, InvalidPinStore, UsageError
from ...core.keys import unb64
from ...core.timefmt import format_time, parse_time

PIN_STORE_VERSION = 1
MAX_FILE_BYTES = 4_000_000
_ENTRY_FIELDS = frozenset({"spki", "source", "added", "backup"})


class PinSource(StrEnum):
    """Where a pin came from."""

    FIRST_USE = "first-use"
    CONFIGURED = "configured"
    CONFIRMED = "confirmed"
    DANE = "dane"

    @property
    def method(self) -> str:
        """The verification method a connection checked by this pin states (XEP: The path Element): a pin a
        person configured or confirmed is ``pin``; one taken on first use is only ``tofu``."""
        return "tofu" if self is PinSource.FIRST_USE else "pin"


@dataclass(frozen=True, slots=True)
class Pin:
    """One pinned key of one domain."""

    spki: str
    source: PinSource
    added: str
    backup: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"spki": self.spki, "source": self.source.value, "added": self.added, "backup": self.backup}


def normalize_domain(domain: str) -> str:
    """The form a domain is stored under: lower case, without a trailing dot."""
    if not isinstance(domain, str):
        raise UsageError("a domain is a string")
    name = domain.strip().rstrip(".").lower()
    if not name or "@" in name or "/" in name or any(c.isspace() for c in name):
        raise UsageError(f"{domain!r} is not a domain name")
    return name


def _is_pin(spki: object) -> bool:
    if not isinstance(spki, str):
        return False
    try:
        unb64(spki, 32, "a pin")
    except InvalidInput:
        return False
    return True


def _check_spki(spki: str) -> str:
    if not _is_pin(spki):
        raise UsageError(f"{spki!r} is not a pin: expected the base64 SHA-256 of a SubjectPublicKeyInfo "
                         "(44 characters)")
    return spki


class PinStore:
    """The pins of a client, by domain; optionally bound to a file.

    With a ``path`` and ``autosave`` (the default), every change is written at once.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, *, autosave: bool = True) -> None:
        self.path = FsPath(path).expanduser() if path is not None else None
        self.autosave = autosave
        self._pins: dict[str, list[Pin]] = {}

    # --- files ----------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | os.PathLike[str], *, autosave: bool = True) -> PinStore:
        """Load the pin file at ``path``; a file that does not exist yet is an empty store."""
        store = cls(path, autosave=autosave)
        assert store.path is not None
        if store.path.exists():
            store._pins = cls.load(store.path, autosave=False)._pins
        return store

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, autosave: bool = True) -> PinStore:
        """Read the pin file at ``path`` (which must exist); changes are written back to it."""
        where = FsPath(path).expanduser()
        try:
            raw = where.read_bytes()
        except OSError as exc:
            raise InvalidPinStore(f"cannot read the pin store {where}: {exc.strerror or exc}") from None
        if len(raw) > MAX_FILE_BYTES:
            raise InvalidPinStore(f"{where} is larger than a pin store can be ({len(raw)} bytes)")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidPinStore(f"{where} is not UTF-8 text (byte {exc.start})") from None
        try:
            data = json.loads(text, object_pairs_hook=_no_duplicates)
        except json.JSONDecodeError as exc:
            raise InvalidPinStore(f"{where} is not valid JSON: {exc.msg} at line {exc.lineno}, "
                                  f"column {exc.colno}") from None
        except InvalidPinStore as exc:
            raise InvalidPinStore(f"{where}: {exc}") from None
        store = cls.from_json(data, where=str(where))
        store.path = where
        store.autosave = autosave
        return store

    @classmethod
    def from_json(cls, data: Any, *, where: str = "pin store") -> PinStore:
        """A store from the decoded JSON of a pin file; ``where`` names it in errors."""
        def bad(message: str) -> InvalidPinStore:
            return InvalidPinStore(f"{where}: {message}")

        if not isinstance(data, dict):
            raise bad('expected a JSON object {"version": 1, "pins": {...}}')
        version = data.get("version")
        if isinstance(version, bool) or version != PIN_STORE_VERSION:
            raise bad(f"version {version!r} is not supported (expected {PIN_STORE_VERSION})")
        unknown = set(data) - {"version", "pins"}
        if unknown:
            raise bad(f"unknown field(s) {sorted(unknown)}")
        pins = data.get("pins")
        if not isinstance(pins, dict):
            raise bad("'pins' must be an object mapping each domain to a list of pins")
        store = cls(autosave=False)
        for domain, entries in pins.items():
            try:
                name = normalize_domain(domain)
            except UsageError as exc:
                raise bad(f"pins: {exc}") from None
            if name in store._pins:
                raise bad(f"pins: {domain!r} appears twice (domains are case-insensitive)")
            if not isinstance(entries, list):
                raise bad(f"pins[{domain!r}] must be a list")
            parsed: list[Pin] = []
            for k, entry in enumerate(entries):
                at = f"pins[{domain!r}][{k}]"
                if not isinstance(entry, dict):
                    raise bad(f"{at} must be an object")
                extra = set(entry) - _ENTRY_FIELDS
                if extra:
                    raise bad(f"{at} has unknown field(s) {sorted(extra)}")
                for field in ("spki", "source", "added"):
                    if not isinstance(entry.get(field), str):
                        raise bad(f"{at} needs '{field}' as a string")
                try:
                    spki = _check_spki(entry["spki"])
                except UsageError as exc:
                    raise bad(f"{at}.spki: {exc}") from None
                try:
                    source = PinSource(entry["source"])
                except ValueError:
                    raise bad(f"{at}.source must be one of {[s.value for s in PinSource]}, "
                              f"got {entry['source']!r}") from None
                try:
                    parse_time(entry["added"])
                except InvalidInput:
                    raise bad(f"{at}.added must be a UTC time like 2026-11-25T09:00:00Z, "
                              f"got {entry['added']!r}") from None
                backup = entry.get("backup", False)
                if not isinstance(backup, bool):
                    raise bad(f"{at}.backup must be true or false")
                if any(p.spki == spki for p in parsed):
                    raise bad(f"{at}: the pin {spki} is listed twice")
                parsed.append(Pin(spki, source, entry["added"], backup))
            if parsed:
                store._pins[name] = parsed
        return store

    def to_json(self) -> dict[str, Any]:
        return {"version": PIN_STORE_VERSION,
                "pins": {domain: [p.to_json() for p in self._pins[domain]] for domain in sorted(self._pins)}}

    def save(self, path: str | os.PathLike[str] | None = None) -> FsPath:
        """Write the store atomically to ``path`` (default: the path it was opened from)."""
        target = FsPath(path).expanduser() if path is not None else self.path
        if target is None:
            raise UsageError("this pin store has no file: pass a path to save()")
        text = json.dumps(self.to_json(), indent=2, ensure_ascii=False) + "\n"
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        except BaseException:  # whatever stopped the write (even ^C): no temporary file is left behind
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        try:
            dir_fd = os.open(target.parent, os.O_RDONLY)
        except OSError:
            return target
        try:
            os.fsync(dir_fd)
        except OSError:
            pass
        finally:
            os.close(dir_fd)
        return target

    def _changed(self) -> None:
        if self.autosave and self.path is not None:
            self.save()

    # --- reading --------------------------------------------------------------------------
    def domains(self) -> tuple[str, ...]:
        return tuple(sorted(self._pins))

    def pins(self, domain: str) -> tuple[Pin, ...]:
        """The pins of ``domain`` (empty when it has none)."""
        return tuple(self._pins.get(normalize_domain(domain), ()))

    def list(self) -> dict[str, tuple[Pin, ...]]:
        """Every domain's pins."""
        return {domain: tuple(self._pins[domain]) for domain in sorted(self._pins)}

    def is_pinned(self, domain: str) -> bool:
        return bool(self._pins.get(normalize_domain(domain)))

    def __contains__(self, domain: object) -> bool:
        return isinstance(domain, str) and self.is_pinned(domain)

    def __iter__(self) -> Iterator[str]:
        return iter(self.domains())

    def __len__(self) -> int:
        return len(self._pins)

    def check(self, domain: str, spki: str) -> Pin | None:
        """The pin of ``domain`` that ``spki`` matches, or None (unpinned, or a mismatch)."""
        for pin in self._pins.get(normalize_domain(domain), ()):
            if pin.spki == spki:
                return pin
        return None

    # --- changing -------------------------------------------------------------------------
    def add(self, domain: str, spki: str, *, source: PinSource | str = PinSource.CONFIGURED, backup: bool = False,
            now: datetime | None = None) -> Pin:
        """Pin ``spki`` for ``domain`` (an explicit decision; see :meth:`pin_first_use` for the automatic case).

        Adding a key that is already pinned changes nothing and returns the existing pin.
        """
        name = normalize_domain(domain)
        _check_spki(spki)
        try:
            source = PinSource(source)
        except ValueError:
            raise UsageError(f"a pin's source is one of {[s.value for s in PinSource]}, not {source!r}") from None
        if not isinstance(backup, bool):
            raise UsageError("backup is True or False")
        if source is PinSource.FIRST_USE and self._pins.get(name):
            raise UsageError(f"{name} is already pinned; a first-use pin is only taken for an unpinned domain")
        existing = self.check(name, spki)
        if existing is not None:
            return existing
        pin = Pin(spki, source, format_time(now or datetime.now(UTC)), backup)
        self._pins.setdefault(name, []).append(pin)
        self._changed()
        return pin

    def pin_first_use(self, domain: str, spki: str, *, now: datetime | None = None) -> Pin:
        """Pin the key seen on the first connection to an unpinned domain (trust on first use)."""
        return self.add(domain, spki, source=PinSource.FIRST_USE, now=now)

    def confirm(self, domain: str, spki: str | None = None) -> tuple[Pin, ...]:
        """A person confirmed the first-use pin(s) of ``domain`` (all of them, or the one of
        ``spki``): they become ``confirmed`` and count as pins from now on.  Returns the pins
        confirmed; raises :class:`UsageError` when there is no such first-use pin."""
        name = normalize_domain(domain)
        pins = self._pins.get(name, [])
        if spki is not None:
            _check_spki(spki)
        chosen = [p for p in pins if p.source is PinSource.FIRST_USE and (spki is None or p.spki == spki)]
        if not chosen:
            have = ", ".join(f"{p.spki} ({p.source.value})" for p in pins) or "no pins"
            raise UsageError(f"{name} has no first-use pin{'' if spki is None else ' ' + spki} to confirm "
                             f"(it has {have})")
        confirmed = tuple(replace(p, source=PinSource.CONFIRMED) for p in chosen)
        self._pins[name] = [replace(p, source=PinSource.CONFIRMED) if p in chosen else p for p in pins]
        self._changed()
        return confirmed

    def remove(self, domain: str, spki: str | None = None) -> int:
        """Remove one pin of ``domain`` (``spki``), or all of them; return how many went."""
        name = normalize_domain(domain)
        pins = self._pins.get(name, [])
        if spki is None:
            gone = len(pins)
            self._pins.pop(name, None)
        else:
            kept = [p for p in pins if p.spki != spki]
            gone = len(pins) - len(kept)
            if kept:
                self._pins[name] = kept
            else:
                self._pins.pop(name, None)
        if gone:
            self._changed()
        return gone

    def __repr__(self) -> str:
        return f"PinStore(path={str(self.path) if self.path else None!r}, domains={self.domains()!r})"


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """JSON objects with a key given twice are rejected, not silently overwritten."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise InvalidPinStore(f"the key {key!r} appears twice in one object")
        out[key] = value
    return out
