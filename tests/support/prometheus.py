"""A real Prometheus (Debian's ``prometheus`` package) on 127.0.0.1 for the custom-metrics tests.

``start_prometheus`` and ``query`` are :mod:`coordinator.sample_prometheus`'s (the demo's);
``needs_prometheus`` skips a test, with the demo's own reason, where there is none (``make test``
installs it as root, as the bench installs nginx); ``auth_proxy`` puts a credential check (and TLS) in
front of it, since Prometheus itself checks no token.
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import ClientSession, web

from coordinator.sample_prometheus import MISSING, prometheus_binary, query, start_prometheus
from tests.support.servers import Served, Stop, _aiohttp, _in_thread

__all__ = ["auth_proxy", "needs_prometheus", "query", "start_prometheus"]

# Only where Debian's prometheus cannot be installed (no root, no package registry).
needs_prometheus = pytest.mark.skipif(prometheus_binary() is None, reason=MISSING)


@contextlib.contextmanager
def auth_proxy(upstream: str, authorization: str | None,
               tls: tuple[Path, Path] | None = None) -> Iterator[tuple[Served, dict[str, bool]]]:
    """Run a reverse proxy on 127.0.0.1 in front of ``upstream`` that answers 401 unless the
    request's ``Authorization`` header is ``authorization`` (None: any; Prometheus itself checks
    no token), and 503 while ``switch["fail"]`` is set; over HTTPS with ``tls`` (certificate,
    key); yield (its Served record, the switch)."""
    switch = {"fail": False}
    context = None
    if tls is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(*tls)

    async def start(served: Served) -> tuple[int, Stop]:
        session = ClientSession()

        async def forward(request: web.Request) -> web.Response:
            served.requests.append({"path": request.path,
                                    "authorization": request.headers.get("Authorization")})
            if authorization is not None and request.headers.get("Authorization") != authorization:
                return web.Response(status=401, text="Unauthorized\n")
            if switch["fail"]:
                return web.Response(status=503, text="Service Unavailable\n")
            async with session.request(request.method, upstream + request.path_qs,
                                       data=await request.read(),
                                       headers={"Content-Type": request.content_type}) as answer:
                return web.Response(status=answer.status, body=await answer.read(),
                                    content_type="application/json")

        port, stop = await _aiohttp(served, [web.route("*", "/{tail:.*}", forward)],
                                    ssl_context=context)

        async def stop_all() -> None:
            await session.close()
            await stop()

        return port, stop_all

    with _in_thread(start, scheme="https" if tls else "http") as served:
        yield served, switch
