"""Real TLS over memory: certificates made per run, handshakes between two ``ssl.SSLObject``s.

No sockets: each direction of a link is a pair of ``ssl.MemoryBIO`` buffers that this
module pumps.  Every fact a record states about a hop (TLS version, cipher, the
server's SPKI hash, the pin check) is read from these real handshakes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path as FsPath

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ...core.keys import short_spki, SigningKey, spki_sha256

_VALID_FROM = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
_VALID_UNTIL = dt.datetime(2100, 1, 1, tzinfo=dt.UTC)


class KeyFactory:
    """Where every key of a run comes from: fresh randomness, or a fixed seed for test vectors."""

    def __init__(self, seed: bytes | None = None) -> None:
        self.seed = seed
        self._serial = 1000

    def _digest(self, label: str) -> bytes:
        assert self.seed is not None
        return hashlib.sha256(self.seed + b"/" + label.encode()).digest()

    def ec_key(self, label: str) -> ec.EllipticCurvePrivateKey:
        if self.seed is None:
            return ec.generate_private_key(ec.SECP256R1())
        order = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
        return ec.derive_private_key(int.from_bytes(self._digest(label), "big") % (order - 1) + 1, ec.SECP256R1())

    def signing_key(self, label: str) -> SigningKey:
        return SigningKey.generate() if self.seed is None else SigningKey.from_seed(self._digest("ed25519/" + label))

    def serial(self) -> int:
        if self.seed is None:
            return x509.random_serial_number()
        self._serial += 1
        return self._serial


@dataclass(frozen=True)
class Credential:
    """A certificate and its key, written to files because ``ssl`` loads them only from files."""

    name: str
    der: bytes
    cert_file: str
    key_file: str

    @property
    def spki(self) -> str:
        return spki_sha256(self.der)


class Authority:
    """A certificate authority (the per-run stand-in for a public CA)."""

    def __init__(self, name: str, keys: KeyFactory, directory: FsPath) -> None:
        self.name = name
        self._keys = keys
        self._dir = directory
        self._key = keys.ec_key(f"ca/{name}")
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self.cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
                     .public_key(self._key.public_key()).serial_number(keys.serial())
                     .not_valid_before(_VALID_FROM).not_valid_after(_VALID_UNTIL)
                     .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                     .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                                  content_commitment=False, key_encipherment=False,
                                                  data_encipherment=False, key_agreement=False,
                                                  encipher_only=False, decipher_only=False), critical=True)
                     .add_extension(x509.SubjectKeyIdentifier.from_public_key(self._key.public_key()),
                                    critical=False)
                     .sign(self._key, hashes.SHA256()))
        self.pem = self.cert.public_bytes(serialization.Encoding.PEM)
        self.ca_file = str(directory / f"ca-{name.replace(' ', '-')}.pem")
        FsPath(self.ca_file).write_bytes(self.pem)

    def issue(self, dns_name: str, label: str, *, also: tuple[str, ...] = ()) -> Credential:
        """A leaf certificate for ``dns_name`` (and the names in ``also``: a server's components),
        usable as TLS server and client certificate."""
        key = self._keys.ec_key(f"leaf/{label}")
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns_name)]))
                .issuer_name(self.cert.subject).public_key(key.public_key()).serial_number(self._keys.serial())
                .not_valid_before(_VALID_FROM).not_valid_after(_VALID_UNTIL)
                .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in (dns_name, *also)]), critical=False)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH,
                                                      x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()),
                               critical=False)
                .sign(self._key, hashes.SHA256()))
        der = cert.public_bytes(serialization.Encoding.DER)
        stem = self._dir / label.replace("/", "_")
        cert_file, key_file = f"{stem}.crt", f"{stem}.key"
        FsPath(cert_file).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        FsPath(key_file).write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                       serialization.PrivateFormat.PKCS8,
                                                       serialization.NoEncryption()))
        return Credential(dns_name, der, cert_file, key_file)


def new_workdir() -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix="trustpath-")


class HandshakeFailed(Exception):
    """The TLS handshake did not complete; ``reason`` is a reason code."""

    def __init__(self, reason: str, detail: str, facts: TlsFacts | None = None) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.facts = facts  # what the handshake showed, when it completed and a later check failed


def client_context(trusted_ca_files: tuple[str, ...], *, verify: bool,
                   credential: Credential | None = None) -> ssl.SSLContext:
    """A TLS 1.3 client context; ``verify`` turns on PKIX validation and host name checks."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    if verify:
        for ca in trusted_ca_files:
            ctx.load_verify_locations(ca)
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if credential is not None:
        ctx.load_cert_chain(credential.cert_file, credential.key_file)
    return ctx


def server_context(credential: Credential, *, client_ca_files: tuple[str, ...] = ()) -> ssl.SSLContext:
    """A TLS 1.3 server context; with ``client_ca_files`` it asks for a client certificate."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_cert_chain(credential.cert_file, credential.key_file)
    if client_ca_files:
        ctx.verify_mode = ssl.CERT_OPTIONAL
        for ca in client_ca_files:
            ctx.load_verify_locations(ca)
    return ctx


@dataclass(frozen=True)
class TlsFacts:
    """What one end of a handshake knows about it."""

    version: str  # '1.3'
    server_spki: str  # SHA-256 of the SPKI the TLS server presented (seen, or sent): a pin
    peer_der: bytes | None  # the peer's certificate, if it sent one
    server_der: bytes  # the certificate the TLS server presented (seen, or sent)

    @property
    def spki(self) -> str:
        """The server's key as a view states it (XEP: The path Element)."""
        return short_spki(self.server_spki)

    @property
    def end_point(self) -> bytes:
        """tls-server-end-point channel binding data (RFC 5929): the SHA-256 of that certificate."""
        return hashlib.sha256(self.server_der).digest()


class TlsLink:
    """One TLS connection whose two ends live in this process."""

    def __init__(self, client_ctx: ssl.SSLContext, server_ctx: ssl.SSLContext, server_name: str,
                 server_credential: Credential) -> None:
        self._c_in, self._c_out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self._s_in, self._s_out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.client = client_ctx.wrap_bio(self._c_in, self._c_out, server_side=False, server_hostname=server_name)
        self.server = server_ctx.wrap_bio(self._s_in, self._s_out, server_side=True)
        self._server_credential = server_credential
        self._handshake()

    def _pump(self) -> None:
        self._s_in.write(self._c_out.read())
        self._c_in.write(self._s_out.read())

    def _handshake(self) -> None:
        done = [False, False]
        for _ in range(20):
            for k, end in enumerate((self.client, self.server)):
                if done[k]:
                    continue
                try:
                    end.do_handshake()
                    done[k] = True
                except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                    pass
                except ssl.SSLCertVerificationError as exc:
                    reason = ("certificate-host-mismatch" if "match" in str(exc.verify_message)
                              else "certificate-expired" if "expired" in str(exc.verify_message)
                              else "certificate-not-trusted")
                    raise HandshakeFailed(reason, exc.verify_message or str(exc)) from None
                except ssl.SSLError as exc:
                    raise HandshakeFailed("validation-failure", str(exc)) from None
            self._pump()
            if all(done):
                # TLS 1.3 session tickets and the client's certificate travel after the handshake
                for _ in range(3):
                    self._drain()
                    self._pump()
                return
        raise HandshakeFailed("validation-failure", "handshake did not complete")

    def _drain(self) -> None:
        for end in (self.client, self.server):
            try:
                end.read(1 << 16)
            except (ssl.SSLWantReadError, ssl.SSLZeroReturnError):
                pass
            except ssl.SSLError:
                pass

    def facts(self, *, side: str) -> TlsFacts:
        end = self.client if side == "client" else self.server
        version = (end.version() or "none").removeprefix("TLSv")
        if side == "client":
            seen = self.client.getpeercert(binary_form=True) or b""
            return TlsFacts(version, spki_sha256(seen) if seen else "", seen, seen)
        return TlsFacts(version, self._server_credential.spki, self.server.getpeercert(binary_form=True),
                        self._server_credential.der)

    # Application data, encrypted by one end and decrypted by the other.
    def client_to_server(self, data: bytes) -> bytes:
        return self._send(self.client, self.server, data)

    def server_to_client(self, data: bytes) -> bytes:
        return self._send(self.server, self.client, data)

    def _send(self, src: ssl.SSLObject, dst: ssl.SSLObject, data: bytes) -> bytes:
        src.write(data)
        self._pump()
        chunks = []
        while True:
            try:
                chunk = dst.read(1 << 16)
            except ssl.SSLWantReadError:
                break
            if not chunk:
                break
            chunks.append(chunk)
            if sum(map(len, chunks)) >= len(data):
                break
        return b"".join(chunks)
