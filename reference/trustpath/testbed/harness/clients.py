"""slixmpp clients for the harness, connected to a world's servers."""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from typing import Any

import slixmpp

from ...client.slixmpp import register
from ...client.slixmpp.pins import PinStore
from .world import PASSWORD, World

# slixmpp logs through the root logger; the harness reports outcomes itself
logging.getLogger("slixmpp").setLevel(logging.CRITICAL)
logging.getLogger("trustpath.client.slixmpp").setLevel(logging.ERROR)


class Client:
    """One account's connection; received messages land in :attr:`inbox` with their arrival time."""

    def __init__(self, jid: str, world: World, *, plugins: tuple[str, ...] = (),
                 plugin_config: dict[str, dict[str, Any]] | None = None, address: str | None = None,
                 tls12: bool = False) -> None:
        self.jid = jid
        self.world = world
        self.address = address  # where it connects, if not to its server (a man in the middle)
        self.xmpp = slixmpp.ClientXMPP(jid, PASSWORD)
        self.xmpp.ca_certs = world.ca.ca_file
        self.xmpp.enable_direct_tls = False  # the harness serves STARTTLS only
        if tls12:
            # SCRAM-*-PLUS in slixmpp binds with tls-unique only, which TLS 1.3 does not define:
            # a client that wants its server to check channel binding speaks TLS 1.2
            self.xmpp.ssl_context.maximum_version = ssl.TLSVersion.TLSv1_2
        self.xmpp.register_plugin("xep_0030")
        for name in plugins:
            self.xmpp.register_plugin(name, (plugin_config or {}).get(name))
        self.inbox: asyncio.Queue[tuple[float, slixmpp.Message]] = asyncio.Queue()
        self.xmpp.add_event_handler("message", self._on_message)

    def _on_message(self, message: slixmpp.Message) -> None:
        self.inbox.put_nowait((time.perf_counter(), message))

    async def start(self, timeout: float = 15) -> Client:
        started: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

        def on_start(_: object) -> None:
            self.xmpp.send_presence()
            if not started.done():
                started.set_result(True)

        def on_fail(event: object) -> None:
            if not started.done():
                started.set_exception(ConnectionError(f"{self.jid} could not connect: {event}"))

        self.xmpp.add_event_handler("session_start", on_start)
        self.xmpp.add_event_handler("failed_auth", on_fail)
        self.xmpp.add_event_handler("connection_failed", on_fail)
        domain = self.xmpp.boundjid.domain
        self.xmpp.connect(self.address or self.world.address(domain), 15222)
        await asyncio.wait_for(started, timeout)
        return self

    def send(self, to: str, body: str) -> str:
        message = self.xmpp.make_message(mto=to, mbody=body, mtype="chat")
        message["id"] = message["id"] or self.xmpp.new_id()
        message.send()
        return message["id"]

    async def stop(self) -> None:
        try:
            await asyncio.wait_for(self.xmpp.disconnect(wait=0.5), 3)
        except (TimeoutError, asyncio.CancelledError, ConnectionError):
            pass


class TrustPathClient(Client):
    """A client running the trust_path plugin with ``pins`` (and no pinning on first use), over
    TLS 1.2 so that it logs in with SCRAM-*-PLUS (tls-unique): the verdicts it reports land in
    :attr:`verdicts`, the message errors it gets in :attr:`errors`."""

    def __init__(self, jid: str, world: World, *, pins: PinStore, address: str | None = None,
                 config: dict[str, Any] | None = None) -> None:
        register()
        super().__init__(jid, world, plugins=("trust_path",), address=address, tls12=True,
                         plugin_config={"trust_path": {"pins": pins, "first_use": False, **(config or {})}})
        self.verdicts: asyncio.Queue[Any] = asyncio.Queue()
        self.errors: asyncio.Queue[Any] = asyncio.Queue()
        self.xmpp.add_event_handler("trust_path_verdict", self.verdicts.put_nowait)
        self.xmpp.add_event_handler("message_error", self.errors.put_nowait)
