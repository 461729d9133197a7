"""The world of one scenario of the embedded federation: its clock, its public CA, and the roles
in it (servers in :mod:`.server`, clients in :mod:`.client`, a man in the middle in
:mod:`.interceptor`).

Each role runs the reference logic exactly as an adapter for a real server or client would: it
reads the facts of its own TLS connections, signs with its own key, and hands stanzas to the
next role as bytes sent through a real TLS connection.  Attacker roles sit where the brief puts
them.
"""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path as FsPath

from ...core.keys import KeySet
from ...core.model import DEFAULT_MAX_SKEW
from .client import ClientNode, Inbox, RequirementNotMet
from .interceptor import C2SInterceptor, Interceptor
from .server import Inbound, Outbound, Refused, ServerNode
from .stanzas import renamespace
from .tls import Authority, KeyFactory, new_workdir


@dataclass
class Clock:
    now: datetime

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class Federation:
    """The world of one scenario: a clock, a public CA, servers, clients and attackers."""

    def __init__(self, *, seed: bytes | None = None, start: datetime | None = None,
                 max_skew: int = DEFAULT_MAX_SKEW) -> None:
        self.keys = KeyFactory(seed)
        self._workdir = new_workdir()
        self.dir = FsPath(self._workdir.name)
        self.clock = Clock(start or datetime.now(UTC).replace(microsecond=0))
        self.max_skew = max_skew
        self.public_ca = Authority("Public CA", self.keys, self.dir)
        self.servers: dict[str, ServerNode] = {}
        self.interceptors: dict[tuple[str, str], Interceptor] = {}
        #: a man in the middle on a client's c2s hop, by the client's full JID
        self.c2s_interceptors: dict[str, C2SInterceptor] = {}
        self._ids = itertools.count(1)
        #: fixed keys and ids (the published vectors): every key comes from the seed
        self.seeded = seed is not None

    def close(self) -> None:
        self._workdir.cleanup()

    def __enter__(self) -> Federation:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def next_id(self) -> str:
        n = next(self._ids)
        if self.seeded:
            return f"tp-{n:04d}"
        return uuid.uuid4().hex[:16]

    def server(self, domain: str, **options: object) -> ServerNode:
        node = ServerNode(self, domain, **options)  # type: ignore[arg-type]
        self.servers[domain] = node
        return node

    def endpoint(self, origin: str, target: str) -> ServerNode | Interceptor:
        return self.interceptors.get((origin, target)) or self.servers[target]

    def key_answer(self, asker: str, target: str) -> KeySet | None:
        """What ``asker`` learns when it asks ``target`` for its keys over its outgoing link: the
        man in the middle's keys when one sits on that link."""
        interceptor = self.interceptors.get((asker, target))
        if interceptor is not None:
            return interceptor.keys
        return self.servers[target].disco()[1]


__all__ = ["C2SInterceptor", "ClientNode", "Clock", "Federation", "Inbound", "Inbox", "Interceptor", "Outbound",
           "Refused",
           "RequirementNotMet", "ServerNode", "renamespace"]
