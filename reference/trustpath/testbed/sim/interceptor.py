"""Men in the middle of the embedded federation: on an s2s hop (:class:`Interceptor`) and on a
client's c2s hop (:class:`C2SInterceptor`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ...core.attest import attest
from ...core.codec import add_record, find_path_element, message_fields, parse_stanza, remove_paths, serialize
from ...core.keys import KeySet, PublishedKey
from ...core.model import NS, Result, View
from .server import S2SLink
from .tls import Credential, TlsFacts, TlsLink, client_context, server_context

if TYPE_CHECKING:
    from .client import ClientNode
    from .federation import Federation
    from .server import Session


class Interceptor:
    """A TLS-terminating man in the middle on an s2s hop, holding CA-valid certificates for
    both domains (the 2023 jabber.ru case): it relays what it receives, unchanged."""

    def __init__(self, fed: Federation, origin: str, target: str) -> None:
        self.fed = fed
        self.origin = origin
        self.target = target
        self.credentials = {name: fed.public_ca.issue(name, f"mitm-{name}") for name in (origin, target)}
        self._upstream: S2SLink | None = None
        #: what it answers when ``origin`` asks ``target`` for its keys over this link: its own
        self.keys = KeySet(target, (PublishedKey(fed.keys.signing_key(f"mitm/{target}").public),))

    def inbound_context(self):  # type: ignore[no-untyped-def]
        return server_context(self.credentials[self.target], client_ca_files=(self.fed.public_ca.ca_file,))

    def credential_for(self, name: str) -> Credential:
        return self.credentials[name]

    def accept_s2s(self, origin: str, tls: TlsLink) -> View:
        facts = tls.facts(side="server")
        return View("pkix", Result.PASS, facts.version, facts.spki)

    def from_server(self, link: S2SLink, data: bytes) -> None:
        target = self.fed.servers[self.target]
        if self._upstream is None:
            ctx = client_context((self.fed.public_ca.ca_file,), verify=True, credential=self.credentials[self.origin])
            tls = TlsLink(ctx, target.inbound_context(), self.target, target.credential)
            facts = tls.facts(side="client")
            out_view = View("pkix", Result.PASS, facts.version, facts.spki)
            self._upstream = S2SLink(self.origin, self.target, tls, out_view,
                                     target.accept_s2s(self.origin, tls), target)
        self._upstream.receiver.from_server(self._upstream, self._upstream.tls.client_to_server(data))


class RelayLink:
    """A client's TLS link to a man in the middle and the man in the middle's own link to the
    server, seen as one link: what the client sends is rewritten on the way."""

    def __init__(self, down: TlsLink, up: TlsLink, rewrite: Callable[[bytes], bytes]) -> None:
        self.down, self.up, self._rewrite = down, up, rewrite

    def client_to_server(self, data: bytes) -> bytes:
        return self.up.client_to_server(self._rewrite(self.down.client_to_server(data)))

    def server_to_client(self, data: bytes) -> bytes:
        return self.down.server_to_client(self.up.server_to_client(data))

    def facts(self, *, side: str) -> TlsFacts:
        return self.down.facts(side="client") if side == "client" else self.up.facts(side="server")


class C2SInterceptor:
    """A man in the middle on a client's c2s hop (H1) with a CA-valid certificate for the server's
    domain.  It relays SASL without channel binding (it offers the client no -PLUS mechanism, which
    it could not relay).  With ``forge`` (the careful attacker, ``h1-mitm-careful``) it also replaces
    the key the client announces with its own and re-signs the client's record with it, claiming
    that the client pinned the real server; without, it only relays (``first-use-pin-mitm``)."""

    def __init__(self, fed: Federation, domain: str, jid: str, *, forge: bool = True) -> None:
        self.fed, self.domain, self.jid, self.forge = fed, domain, jid, forge
        self.credential = fed.public_ca.issue(domain, f"mitm-c2s-{domain}")
        self.key = fed.keys.signing_key(f"mitm/c2s/{domain}")
        self._real: TlsFacts | None = None

    def accept(self, client: ClientNode, down: TlsLink) -> Session:
        server = self.fed.servers[self.domain]
        up = TlsLink(client_context((self.fed.public_ca.ca_file,), verify=True),
                     server_context(server.credential), self.domain, server.credential)
        self._real = up.facts(side="client")
        return server.accept_c2s(client, RelayLink(down, up, self._rewrite), offer_plus=False)  # type: ignore[arg-type]

    def _rewrite(self, data: bytes) -> bytes:
        if not self.forge or not data.startswith(b"<"):
            return data
        root = parse_stanza(data)
        key = root.find(f"{{{NS}}}session-key")
        if key is not None:
            key.set("key", f"ed25519:{self.key.public}")
            return serialize(root)
        element = find_path_element(root)
        if element is None or self._real is None:
            return data
        root.set("from", self.jid)
        fields = message_fields(root)
        del root.attrib["from"]
        remove_paths(root)
        claim = View("pin", Result.PASS, self._real.version, self._real.spki)
        add_record(root, attest(fields, self.key, out_view=claim))
        return serialize(root)
