"""Small real HTTP servers on 127.0.0.1 for the engine tests, each on an event loop of its own.

Every server runs in a daemon thread (the load worker runs its own loop in another thread) and
speaks real HTTP/1.1 over real sockets, so both transports run unchanged against it:

- :func:`reset_server`: reads a request, then resets the connection (RST, SO_LINGER 0);
- :func:`close_delimited_server`: answers with a body delimited by closing the connection;
- :func:`chunked_server`: answers with ``Transfer-Encoding: chunked`` in several chunks;
- :func:`large_response_server`: answers with a body large enough to take many reads;
- :func:`recording_server`: records method, target, headers and body of every request;
- :func:`tls_server`: answers 200 over TLS with a certificate from :func:`self_signed_cert`;
- :func:`wire_server`: keeps every byte it receives and answers each request head it finds;
- :func:`upgrade_server`: answers every request with ``101 Switching Protocols``;
- :func:`concurrency_server`: answers after a fixed time, recording how many requests it held;
- :func:`outcome_server`: answers the n-th request with a status, a reset, silence or a close.

Each is a context manager yielding a :class:`Served`: the base URL and what the server saw.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import json
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web


@dataclass
class Served:
    """A running test server: its base URL and a record of what it received."""

    url: str
    requests: list[dict[str, object]] = field(default_factory=list)
    connections: int = 0
    wire: bytearray = field(default_factory=bytearray)  # wire_server: every byte received


Stop = Callable[[], Coroutine[Any, Any, None]]


@contextlib.contextmanager
def _in_thread(start: Callable[[Served], Coroutine[Any, Any, tuple[int, Stop]]],
               scheme: str = "http") -> Iterator[Served]:
    """Run ``start`` on a fresh event loop in a daemon thread; yield once it listens."""
    served = Served(url="")
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="test-server", daemon=True)
    thread.start()
    port, stop = asyncio.run_coroutine_threadsafe(start(served), loop).result(timeout=10)
    served.url = f"{scheme}://127.0.0.1:{port}"
    try:
        yield served
    finally:
        asyncio.run_coroutine_threadsafe(stop(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


# --- raw servers (asyncio.Protocol) -------------------------------------------------------------


class _OneRequest(asyncio.Protocol):
    """Reads one request head (bodies are not expected), then calls ``respond``."""

    def __init__(self, served: Served, respond: Callable[[asyncio.Transport], None]) -> None:
        self.served, self.respond, self.buffer = served, respond, b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)  # a TCP server's transport
        self.transport = transport
        self.served.connections += 1

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if b"\r\n\r\n" in self.buffer:
            head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
            self.served.requests.append({"head": head.decode("latin-1")})
            self.respond(self.transport)


async def _raw(served: Served, respond: Callable[[asyncio.Transport], None]) -> tuple[int, Stop]:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _OneRequest(served, respond), "127.0.0.1", 0)

    async def stop() -> None:
        server.close()
        await server.wait_closed()

    return server.sockets[0].getsockname()[1], stop


def _reset(transport: asyncio.Transport) -> None:
    sock = transport.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()  # with linger 0 the kernel sends RST instead of FIN


def _close_delimited(transport: asyncio.Transport) -> None:
    transport.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nbody delimited by close")
    transport.close()  # flushes, then FIN: the end of the body


@contextlib.contextmanager
def reset_server() -> Iterator[Served]:
    """Serve resets: every connection gets RST right after its first request head arrives."""
    with _in_thread(lambda served: _raw(served, _reset)) as served:
        yield served


@contextlib.contextmanager
def close_delimited_server(delay_s: float = 0.0) -> Iterator[Served]:
    """Serve HTTP/1.0-style responses: no Content-Length, no chunks, the close ends the body;
    each ``delay_s`` after its request arrived."""
    def respond(transport: asyncio.Transport) -> None:
        if delay_s:
            asyncio.get_running_loop().call_later(delay_s, _close_delimited, transport)
        else:
            _close_delimited(transport)

    with _in_thread(lambda served: _raw(served, respond)) as served:
        yield served


class _Wire(asyncio.Protocol):
    """Keeps every byte; answers 200 (empty body, keep-alive) to each request head in them, so
    a request smuggled inside another's head shows up as an extra head and an extra answer."""

    def __init__(self, served: Served) -> None:
        self.served, self.buffer = served, b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)  # a TCP server's transport
        self.transport = transport
        self.served.connections += 1

    def data_received(self, data: bytes) -> None:
        self.served.wire += data
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
            self.served.requests.append({"head": head.decode("latin-1")})
            self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")


@contextlib.contextmanager
def wire_server() -> Iterator[Served]:
    """Serve empty 200s to request heads (no bodies expected), keeping the raw bytes received."""
    async def start(served: Served) -> tuple[int, Stop]:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: _Wire(served), "127.0.0.1", 0)

        async def stop() -> None:
            server.close()
            await server.wait_closed()

        return server.sockets[0].getsockname()[1], stop

    with _in_thread(start) as served:
        yield served


def _upgrade(transport: asyncio.Transport) -> None:
    transport.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                    b"Connection: Upgrade\r\n\r\n")


@contextlib.contextmanager
def upgrade_server() -> Iterator[Served]:
    """Answer every request head with 101 Switching Protocols (httptools then raises
    HttpParserUpgrade, which is no HttpParserError)."""
    with _in_thread(lambda served: _raw(served, _upgrade)) as served:
        yield served


Action = int | str  # a status to answer with, or "reset", "hang", "close"


def _act(action: Action, transport: asyncio.Transport) -> None:
    if action == "reset":
        _reset(transport)
    elif action == "close":
        transport.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok")
        transport.close()
    elif action != "hang":  # hang: never answer (the client's timeout ends the request)
        transport.write(b"HTTP/1.1 %d X\r\nContent-Length: 2\r\n\r\nok" % int(action))


@contextlib.contextmanager
def outcome_server(actions: tuple[Action, ...]) -> Iterator[Served]:
    """Answer the n-th request head (from 0, over all connections, in arrival order) as
    ``actions[n % len(actions)]`` says: a status (keep-alive, body ``ok``), ``"reset"`` (RST),
    ``"hang"`` (no answer ever) or ``"close"`` (200, then the connection closes). As long as
    every request arrives once, how many get each action is fixed, whatever their order."""
    def start(served: Served) -> Coroutine[Any, Any, tuple[int, Stop]]:
        return _raw(served, lambda t: _act(actions[(len(served.requests) - 1) % len(actions)], t))

    with _in_thread(start) as served:
        yield served


# --- aiohttp servers ----------------------------------------------------------------------------


async def _aiohttp(served: Served, routes: list[web.RouteDef],
                   ssl_context: ssl.SSLContext | None = None,
                   client_max_size: int = 1024**2) -> tuple[int, Stop]:
    app = web.Application(client_max_size=client_max_size)
    app.add_routes(routes)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
    await site.start()
    return runner.addresses[0][1], runner.cleanup


CHUNKS = (b"first chunk\n", b"second\n", b"third and last\n")


@contextlib.contextmanager
def chunked_server() -> Iterator[Served]:
    """Serve ``GET /chunked`` as a chunked body of :data:`CHUNKS`, written one at a time."""
    async def start(served: Served) -> tuple[int, Stop]:
        async def chunked(request: web.Request) -> web.StreamResponse:
            served.requests.append({"path": request.path_qs})
            response = web.StreamResponse()
            response.enable_chunked_encoding()
            await response.prepare(request)
            for chunk in CHUNKS:
                await response.write(chunk)
                await asyncio.sleep(0)
            await response.write_eof()
            return response

        return await _aiohttp(served, [web.get("/chunked", chunked)])

    with _in_thread(start) as served:
        yield served


@contextlib.contextmanager
def large_response_server(size: int) -> Iterator[Served]:
    """Serve ``GET /large`` with a ``size``-byte body (Content-Length), so one response takes
    many reads."""
    body = bytes(range(256)) * (size // 256)

    async def start(served: Served) -> tuple[int, Stop]:
        async def large(request: web.Request) -> web.Response:
            served.requests.append({"path": request.path_qs})
            return web.Response(body=body, content_type="application/octet-stream")

        return await _aiohttp(served, [web.get("/large", large)])

    with _in_thread(start) as served:
        yield served


@contextlib.contextmanager
def recording_server(max_body: int = 1024**2) -> Iterator[Served]:
    """Serve any method on any path with 200, recording method, target, headers and body
    (bodies up to ``max_body`` bytes; aiohttp answers 413 past it)."""
    async def start(served: Served) -> tuple[int, Stop]:
        async def record(request: web.Request) -> web.Response:
            served.requests.append({
                "method": request.method, "target": request.path_qs,
                "headers": {k.lower(): v for k, v in request.headers.items()},
                "body": await request.read(),
            })
            return web.Response(text="recorded")

        return await _aiohttp(served, [web.route("*", "/{tail:.*}", record)],
                              client_max_size=max_body)

    with _in_thread(start) as served:
        yield served


@contextlib.contextmanager
def tls_server(certfile: Path, keyfile: Path) -> Iterator[Served]:
    """Serve ``GET /hello`` with 200 over HTTPS with the given certificate and key."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certfile, keyfile)

    async def start(served: Served) -> tuple[int, Stop]:
        async def hello(request: web.Request) -> web.Response:
            served.requests.append({"path": request.path_qs})
            return web.Response(text="hello over tls")

        return await _aiohttp(served, [web.get("/hello", hello)], ssl_context=context)

    with _in_thread(start, scheme="https") as served:
        yield served


def self_signed_cert(directory: Path) -> tuple[Path, Path]:
    """Write a self-signed certificate for 127.0.0.1 and localhost; return (cert, key) paths.

    Its subject alternative names match the URL, so a client that verifies fails only on trust
    (no CA signed it), not on the name.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "slogate test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
        .sign(key, hashes.SHA256())
    )
    certfile, keyfile = directory / "cert.pem", directory / "key.pem"
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    return certfile, keyfile


def json_body(request: dict[str, object]) -> Any:
    """Return the JSON body of a request a receiver recorded."""
    body = request["body"]
    assert isinstance(body, bytes)
    return json.loads(body)


@contextlib.contextmanager
def webhook_receiver(statuses: tuple[int, ...] = (), headers: dict[str, str] | None = None
                     ) -> Iterator[Served]:
    """Serve POST on any path, recording target, headers and body of each request; the n-th
    request is answered with ``statuses[n]`` (with ``headers``), those past the tuple with 200."""
    async def start(served: Served) -> tuple[int, Stop]:
        async def receive(request: web.Request) -> web.Response:
            served.requests.append({
                "target": request.path_qs,
                "headers": {k.lower(): v for k, v in request.headers.items()},
                "body": await request.read(),
            })
            index = len(served.requests) - 1
            status = statuses[index] if index < len(statuses) else 200
            return web.Response(status=status, text="ok" if status < 300 else "no",
                                headers=headers if status >= 300 else None)

        return await _aiohttp(served, [web.post("/{tail:.*}", receive)])

    with _in_thread(start) as served:
        yield served


Answer = Callable[[int, str], tuple[int, bytes, dict[str, str]]]


@contextlib.contextmanager
def scripted_server(answer: Answer, *, workers: int | None = None,
                    service_s: float = 0.0) -> Iterator[Served]:
    """Serve any path: the n-th request (from 0) with its path gets ``answer(n, path)`` =
    (status, body, headers). ``workers`` and ``service_s``: at most that many requests are
    served at once, each taking ``service_s`` (the rest wait), so the server's capacity is
    ``workers / service_s`` requests per second."""
    async def start(served: Served) -> tuple[int, Stop]:
        busy = asyncio.Semaphore(workers) if workers else None

        async def respond(request: web.Request) -> web.Response:
            n = len(served.requests)
            served.requests.append({"target": request.path_qs})
            if busy is not None:
                async with busy:
                    await asyncio.sleep(service_s)
            status, body, headers = answer(n, request.path_qs)
            return web.Response(status=status, body=body, headers=headers)

        return await _aiohttp(served, [web.route("*", "/{tail:.*}", respond)])

    with _in_thread(start) as served:
        yield served


@contextlib.contextmanager
def concurrency_server(service_s: float) -> Iterator[Served]:
    """Serve any path with 200 after ``service_s``; record for every request its arrival
    (``at``: ``time.time()``) and how many requests the server held then, itself included
    (``in_flight``): what a closed model's users look like from the server."""
    async def start(served: Served) -> tuple[int, Stop]:
        held = [0]

        async def respond(request: web.Request) -> web.Response:
            held[0] += 1
            served.requests.append({"at": time.time(), "in_flight": held[0]})
            try:
                await asyncio.sleep(service_s)
            finally:
                held[0] -= 1
            return web.Response(body=b"ok")

        return await _aiohttp(served, [web.route("*", "/{tail:.*}", respond)])

    with _in_thread(start) as served:
        yield served
