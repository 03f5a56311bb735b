"""The gRPC flavour of the `hello` sample app: ``hello.Greeter/SayHello`` (hello.proto).

Version 1.0 is the baseline and 2.0 the candidate, as for the HTTP app (../hello/app.py). It
answers ``Hello <name> from version <version>`` after ``--latency`` (waited out with
``asyncio.sleep``, so never early) and fails a share ``--error-rate`` of the calls with
UNAVAILABLE. It serves gRPC server reflection, so a spec may use ``reflection: true`` instead of
the proto.

Every option can also come from an environment variable (HELLO_VERSION, HELLO_HOST, HELLO_PORT,
HELLO_LATENCY, HELLO_ERROR_RATE, HELLO_SEED); a flag wins over its variable. Once listening it
prints one line, ``READY grpc://HOST:PORT``. SIGTERM or SIGINT stops it with exit status 0.

    python examples/hello-grpc/server.py --version 2.0 --port 0 --latency 8ms
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import sys
from pathlib import Path

import grpc
from grpc import aio
from grpc_reflection.v1alpha import reflection

HERE = Path(__file__).resolve().parent
LATENCY_S = {"1.0": 0.005, "2.0": 0.008}  # the known latencies of the two versions


def _duration_s(text: str) -> float:
    text = text.strip()
    for suffix, scale in (("ms", 1e-3), ("us", 1e-6), ("s", 1.0)):
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * scale
    return float(text)


def _options(argv: list[str]) -> argparse.Namespace:
    env = os.environ.get
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--version", default=env("HELLO_VERSION", "1.0"))
    parser.add_argument("--host", default=env("HELLO_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(env("HELLO_PORT", "50051")))
    parser.add_argument("--latency", type=_duration_s, default=env("HELLO_LATENCY"),
                        help="added latency per call; default 5ms for 1.0, 8ms for 2.0")
    parser.add_argument("--error-rate", type=float, default=float(env("HELLO_ERROR_RATE", "0")))
    parser.add_argument("--seed", type=int, default=env("HELLO_SEED"))
    options = parser.parse_args(argv)
    if isinstance(options.latency, str):
        options.latency = _duration_s(options.latency)
    if options.latency is None:
        options.latency = LATENCY_S.get(options.version, 0.0)
    if not 0.0 <= options.error_rate <= 1.0:
        parser.error("--error-rate: give a fraction in [0, 1]")
    return options


async def serve(options: argparse.Namespace) -> None:
    """Serve until SIGTERM or SIGINT."""
    sys.path.insert(0, str(HERE))
    protos, services = grpc.protos_and_services("hello.proto")
    draw = random.Random(options.seed)

    class Greeter(services.GreeterServicer):  # type: ignore[name-defined]
        async def SayHello(self, request: object, context: aio.ServicerContext) -> object:
            await asyncio.sleep(options.latency)
            if options.error_rate and draw.random() < options.error_rate:
                await context.abort(grpc.StatusCode.UNAVAILABLE, "injected failure")
            name = getattr(request, "name", "") or "world"
            return protos.HelloReply(message=f"Hello {name} from version {options.version}")

    server = aio.server()
    services.add_GreeterServicer_to_server(Greeter(), server)
    names = (protos.DESCRIPTOR.services_by_name["Greeter"].full_name, reflection.SERVICE_NAME)
    reflection.enable_server_reflection(names, server)
    port = server.add_insecure_port(f"{options.host}:{options.port}")
    await server.start()
    print(f"READY grpc://{options.host}:{port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(1.0)


if __name__ == "__main__":
    asyncio.run(serve(_options(sys.argv[1:])))
