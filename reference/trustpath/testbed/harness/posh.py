"""A domain's POSH document (XEP "Discovery and Keys"; RFC 7711 style) served over HTTPS on
loopback, at ``https://<domain>/.well-known/posh/trust-path.json``, with a certificate from the
harness's CA, so that mod_trust_path can fetch a domain's record keys with key source ``posh``.

The server answers that one path with the document and everything else with 404.  It listens
on the domain's own address (the harness's DNS resolves the domain there), port 443."""

from __future__ import annotations

import json
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from ...core.disco import POSH_PATH, posh_document
from ...core.keys import KeySet
from ..sim.tls import Credential

POSH_PORT = 443


class PoshServer:
    """Serves ``keys`` as ``domain``'s POSH document on ``(address, port)`` with ``credential``
    (a certificate for that domain, or, to test that it is refused, for another name)."""

    def __init__(self, address: str, keys: KeySet, credential: Credential, *, expires: int = 3600,
                 port: int = POSH_PORT, padding: int = 0) -> None:
        self.address = address
        self.port = port
        document = posh_document(keys, expires)
        if padding:
            document["padding"] = "x" * padding  # an unknown member: a document this much larger
        self.document = json.dumps(document).encode()
        self.credential = credential
        #: the paths asked for, in order: what the fetching server did
        self.requests: list[str] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> PoshServer:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the name http.server calls)
                owner.requests.append(self.path)
                if self.path != POSH_PATH:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(owner.document)))
                self.end_headers()
                self.wfile.write(owner.document)

            def log_message(self, *args: object) -> None:  # the harness reports outcomes itself
                pass

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.credential.cert_file, self.credential.key_file)
        server = ThreadingHTTPServer((self.address, self.port), Handler)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name=f"posh-{self.address}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
