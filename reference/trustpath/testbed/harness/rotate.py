"""Key rotation on a live server: a new record key, the old one retired (scenario 10, by a
restart), and the operator procedure of prosody/README.md without a gap (the next key published
first, then the switch, each by a configuration reload)."""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ...core.keys import SigningKey
from ...core.model import DEFAULT_MAX_SKEW
from ...core.timefmt import format_time
from .prosody import Instance
from .world import World


def current_key(instance: Instance) -> SigningKey:
    """The record key ``instance`` signs with now (mod_trust_path's own, or the configured file)."""
    configured = instance.options.get("trust_path_key_file")
    path = Path(configured) if isinstance(configured, str) else \
        instance.workdir / "data" / "trust_path" / f"{instance.domain}.key"
    # the module writes its key when it loads, which may be a moment after the server listens
    deadline = time.monotonic() + 5
    while True:
        text = path.read_text(encoding="ascii").strip() if path.exists() else ""
        if len(text) == 64:  # a whole 32-byte seed in hex
            return SigningKey.from_seed(bytes.fromhex(text))
        if time.monotonic() > deadline:
            raise FileNotFoundError(f"{instance.domain} wrote no record key to {path} within 5 s")
        time.sleep(0.05)


def rotate_key(instance: Instance) -> tuple[str, str]:
    """Restart ``instance`` signing with a new key; return (old public key, new public key).

    The old key is retired from the end of the module's default clock skew on: records
    it made until now stay verifiable."""
    old = current_key(instance)
    new = SigningKey.generate()
    key_file = instance.workdir / f"record-key-{new.public[:8].replace('/', '_')}.hex"
    key_file.write_text(new.seed().hex() + "\n")
    key_file.chmod(0o600)
    _sign_with(instance, key_file, retiring=old)
    instance.restart()
    return old.public, new.public


def _sign_with(instance: Instance, key_file: Path, *, retiring: SigningKey) -> None:
    """Configure ``instance`` to sign with the key in ``key_file`` and list ``retiring`` as retired
    from now plus the module's default clock skew on (records it made until then stay verifiable);
    the caller restarts or reloads."""
    retired = list(instance.options.get("trust_path_retired_keys", []))  # type: ignore[call-overload]
    retired.append({"key": retiring.public,
                    "not_after": format_time(datetime.now(UTC) + timedelta(seconds=DEFAULT_MAX_SKEW))})
    instance.options["trust_path_key_file"] = str(key_file)
    instance.options["trust_path_retired_keys"] = retired


def publish_next_key(instance: Instance) -> str:
    """Step 1 of prosody/README.md's rotation: name a file for the next key
    (``trust_path_next_key_file``) and reload; the module makes the key and publishes it as
    ``next-key``.  Returns the next public key.  ``instance`` must be :attr:`~Instance.reloadable`."""
    next_file = instance.workdir / "data" / "trust_path" / f"{instance.domain}.next.key"
    instance.options["trust_path_next_key_file"] = str(next_file)
    instance.reload()
    return _written_key(next_file).public


def switch_to_next_key(instance: Instance) -> tuple[str, str]:
    """Step 3 (at least the old key set's cache-for after step 1): sign with the next key
    (``trust_path_key_file``), list the old one in ``trust_path_retired_keys`` with a not_after of
    now plus the skew, drop ``trust_path_next_key_file``, and reload.  Returns (old, new)."""
    old = current_key(instance)
    next_file = instance.options.pop("trust_path_next_key_file")
    new = _written_key(Path(str(next_file)))
    _sign_with(instance, Path(str(next_file)), retiring=old)
    instance.reload()
    return old.public, new.public


def _written_key(path: Path, timeout: float = 5) -> SigningKey:
    """The key in ``path`` once the module has written it (it does so when it reloads)."""
    deadline = time.monotonic() + timeout
    while True:
        text = path.read_text(encoding="ascii").strip() if path.exists() else ""
        if len(text) == 64:
            return SigningKey.from_seed(bytes.fromhex(text))
        if time.monotonic() > deadline:
            raise FileNotFoundError(f"no record key was written to {path} within {timeout} s")
        time.sleep(0.05)


def renew_certificate(world: World, domain: str) -> str:
    """Restart ``domain``'s server with a new TLS certificate and key (a renewal, as with ACME);
    return the new key's pin.  Clients that pin it (the harness's own) pin the new key from now on."""
    instance = world.servers[domain]
    credential = world.ca.issue(domain, f"prosody-{domain}-renewed-{secrets.token_hex(4)}")
    instance.cert_file, instance.key_file = credential.cert_file, credential.key_file
    world.spki[domain] = credential.spki
    instance.restart()
    return credential.spki
