"""A man in the middle on an s2s hop of the embedded federation."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...core.model import (
    Result,
    Side,
    View,
)
from .server import S2SLink
from .tls import Credential, TlsLink, client_context, server_context

if TYPE_CHECKING:
    from .federation import Federation


class Interceptor:
    """A TLS-terminating man in the middle on an s2s hop, holding CA-valid certificates for
    both domains (the 2023 jabber.ru case): it relays what it receives, unchanged."""

    def __init__(self, fed: Federation, origin: str, target: str) -> None:
        self.fed = fed
        self.origin = origin
        self.target = target
        self.credentials = {name: fed.public_ca.issue(name, f"mitm-{name}") for name in (origin, target)}
        self._upstream: S2SLink | None = None

    def inbound_context(self):  # type: ignore[no-untyped-def]
        return server_context(self.credentials[self.target], client_ca_files=(self.fed.public_ca.ca_file,))

    def credential_for(self, name: str) -> Credential:
        return self.credentials[name]

    def accept_s2s(self, origin: str, tls: TlsLink) -> View:
        facts = tls.facts(side="server")
        return View(peer=origin, side=Side.SERVER, tls=facts.version, cipher=facts.cipher, spki=facts.server_spki,
                    method="pkix", result=Result.PASS)

    def from_server(self, link: S2SLink, data: bytes) -> None:
        target = self.fed.servers[self.target]
        if self._upstream is None:
            ctx = client_context((self.fed.public_ca.ca_file,), verify=True, credential=self.credentials[self.origin])
            tls = TlsLink(ctx, target.inbound_context(), self.target, target.credential)
            facts = tls.facts(side="client")
            out_view = View(peer=self.target, side=Side.CLIENT, tls=facts.version, cipher=facts.cipher,
                            spki=facts.server_spki, method="pkix", result=Result.PASS)
            self._upstream = S2SLink(self.origin, self.target, tls, out_view,
                                     target.accept_s2s(self.origin, tls), target)
        self._upstream.receiver.from_server(self._upstream, self._upstream.tls.client_to_server(data))
