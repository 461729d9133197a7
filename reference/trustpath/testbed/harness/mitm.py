"""A TLS-terminating man in the middle on the s2s hop, as in the 2023 jabber.ru interception.

It holds certificates for both domains from the CA the servers trust, answers the sending
server as the receiving domain, connects to the receiving server as the sending domain, and
relays the decrypted stream unchanged.  It sits on direct-TLS s2s (XEP-0368): the harness's
DNS points ``_xmpps-server._tcp.b.example`` at it.
"""

from __future__ import annotations

import asyncio
import ssl
import threading

from ..sim.tls import Credential


class Interceptor:
    def __init__(self, listen: tuple[str, int], upstream: tuple[str, int], upstream_name: str,
                 as_receiver: Credential, as_sender: Credential, ca_file: str) -> None:
        self.listen = listen
        self.upstream = upstream
        self.upstream_name = upstream_name
        self._server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._server_ctx.load_cert_chain(as_receiver.cert_file, as_receiver.key_file)
        self._server_ctx.set_alpn_protocols(["xmpp-server"])
        self._client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self._client_ctx.load_verify_locations(ca_file)
        self._client_ctx.load_cert_chain(as_sender.cert_file, as_sender.key_file)
        self._client_ctx.set_alpn_protocols(["xmpp-server"])
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="trustpath-mitm", daemon=True)
        self._server: asyncio.base_events.Server | None = None

    def start(self) -> Interceptor:
        self._thread.start()
        if not self._ready.wait(5):
            raise RuntimeError("the interceptor did not start")
        return self

    def stop(self) -> None:
        if self._loop.is_running():
            self._loop.call_soon_threadsafe(self._shutdown)
        self._thread.join(timeout=5)

    def _shutdown(self) -> None:
        for task in asyncio.all_tasks(self._loop):
            task.cancel()
        self._loop.call_later(0.05, self._loop.stop)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._relay, *self.listen, ssl=self._server_ctx))
        self._ready.set()
        self._loop.run_forever()
        self._server.close()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream, ssl=self._client_ctx,
                                                                 server_hostname=self.upstream_name)
        except OSError:
            writer.close()
            return

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (OSError, ssl.SSLError):
                pass
            finally:
                dst.close()

        try:
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        except asyncio.CancelledError:
            writer.close()
            up_writer.close()
