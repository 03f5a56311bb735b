"""Real gRPC servers on 127.0.0.1 (grpcio's ``grpc.aio``) for the gRPC tests.

:func:`grpc_server` runs in a thread of the test process, serving ``hello.Greeter`` from
``tests/support/protos/hello.proto``; :func:`hello_grpc` runs the gRPC sample app as a process
of its own, for timing tests (a server in the client's process shares its GIL).

The handler works on raw bytes (the test decides nothing from the request) and behaves as told:
a fixed delay, every k-th call UNAVAILABLE, or a stall (never answers, so the caller's deadline
fires). It records each call's request bytes and metadata. Optionally it serves reflection
(grpcio-reflection) and TLS (a key and certificate chain in PEM).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc import aio

PROTOS = Path(__file__).parent / "protos"
HELLO_GRPC = Path(__file__).resolve().parents[2] / "examples" / "hello-grpc"
HELLO_PROTO = PROTOS / "hello.proto"
SAY_HELLO = "/hello.Greeter/SayHello"


@dataclass
class Behaviour:
    """What the server does with each call."""

    delay_s: float = 0.0
    unavailable_every: int = 0  # every k-th call (1st, k+1th, ...) fails UNAVAILABLE; 0: none
    stall: bool = False  # never answer


@dataclass
class GrpcServed:
    """A running gRPC server: its URL and what it received."""

    url: str
    bodies: list[bytes] = field(default_factory=list)
    metadata: list[dict[str, str]] = field(default_factory=list)
    calls: int = 0
    peers: set[str] = field(default_factory=set)  # client address:port of each connection


def _handler(behaviour: Behaviour, served: GrpcServed) -> grpc.GenericRpcHandler:
    async def say_hello(request: bytes, context: aio.ServicerContext) -> bytes:
        served.peers.add(context.peer())
        served.calls += 1
        number = served.calls  # before any await: other calls count on meanwhile
        served.bodies.append(request)
        served.metadata.append({k: v for k, v in context.invocation_metadata() or ()
                                if isinstance(v, str)})
        if behaviour.stall:
            await asyncio.Event().wait()
        if behaviour.delay_s:
            await asyncio.sleep(behaviour.delay_s)
        every = behaviour.unavailable_every
        if every and (number - 1) % every == 0:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "told to fail")
        return b"\x0a\x02hi"  # HelloReply{message: "hi"}

    handler = grpc.unary_unary_rpc_method_handler(say_hello)
    return grpc.method_handlers_generic_handler("hello.Greeter", {"SayHello": handler})


@contextlib.contextmanager
def grpc_server(behaviour: Behaviour | None = None, *, reflection: bool = False,
                tls: tuple[bytes, bytes] | None = None) -> Iterator[GrpcServed]:
    """Serve hello.Greeter on 127.0.0.1 (a free port) in a daemon thread; ``tls`` is
    (key PEM, certificate chain PEM); yield once it listens."""
    served = GrpcServed(url="")
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="grpc-test-server", daemon=True)
    thread.start()

    async def start() -> aio.Server:
        server = aio.server()
        server.add_generic_rpc_handlers((_handler(behaviour or Behaviour(), served),))
        if reflection:
            _add_reflection(server)
        if tls is None:
            port = server.add_insecure_port("127.0.0.1:0")
        else:
            port = server.add_secure_port("127.0.0.1:0", grpc.ssl_server_credentials([tls]))
        await server.start()
        served.url = f"{'grpcs' if tls else 'grpc'}://127.0.0.1:{port}"
        return server

    server = asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=10)
    try:
        yield served
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(0), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


@contextlib.contextmanager
def hello_grpc(*args: str) -> Iterator[str]:
    """Run the gRPC sample app (examples/hello-grpc/server.py) as a process of its own on a
    free port (no GIL shared with the client under test); yield its grpc:// URL."""
    proc = subprocess.Popen([sys.executable, str(HELLO_GRPC / "server.py"), "--port", "0", *args],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("READY grpc://"), line
        yield line.removeprefix("READY ")
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0


def _add_reflection(server: aio.Server) -> None:
    from google.protobuf import descriptor_pool
    from grpc_reflection.v1alpha import reflection

    from coordinator.grpc_schema import compile_protos

    pool = descriptor_pool.DescriptorPool()
    for proto in compile_protos(["hello.proto"], [], PROTOS).file:
        pool.Add(proto)
    reflection.enable_server_reflection(("hello.Greeter", reflection.SERVICE_NAME), server,
                                        pool=pool)


def ca_and_server_cert(directory: Path, server_name: str = "hello.test"
                       ) -> tuple[Path, bytes, bytes]:
    """Write a self-signed CA to ``directory/ca.pem``; return its path and a server key and
    certificate (PEM) it signed for ``server_name`` (not for 127.0.0.1)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def build(subject: str, key: ec.EllipticCurvePrivateKey, issuer: str,
              signer: ec.EllipticCurvePrivateKey, ca: bool) -> x509.Certificate:
        builder = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
                   .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if not ca:
            builder = builder.add_extension(x509.SubjectAlternativeName(
                [x509.DNSName(server_name)]), critical=False)
        return builder.sign(signer, hashes.SHA256())

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = build("slogate test CA", ca_key, "slogate test CA", ca_key, True)
    leaf = build(server_name, key, "slogate test CA", ca_key, False)
    ca_path = directory / "ca.pem"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return ca_path, key_pem, leaf.public_bytes(serialization.Encoding.PEM)
