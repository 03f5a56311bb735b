"""The aiohttp ``Sender``: the one module of ``workers`` that imports aiohttp.

Used for what a plain keep-alive HTTP/1.1 path does not do (redirects, proxies, cookies, auth).
Exceptions from aiohttp become outcome strings here, at the boundary: every one, so that each
request sent ends as exactly one outcome (``error:<Name>`` for what is not a known failure).
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Sequence

import aiohttp

from workers.checks import Checker
from workers.plan import RequestTemplate
from workers.rows import per_endpoint
from workers.transport import CONNECT, RESET, TIMEOUT, TLS, check_outcome, status_outcome


def classify(exc: BaseException) -> str:
    """Return the outcome kind of an aiohttp or OS exception."""
    if isinstance(exc, (asyncio.TimeoutError, aiohttp.ServerTimeoutError)):
        return TIMEOUT
    if isinstance(exc, (aiohttp.ClientSSLError, ssl.SSLError)):
        return TLS
    if isinstance(exc, aiohttp.ClientConnectorError):
        return CONNECT
    if isinstance(exc, (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError,
                        ConnectionResetError, BrokenPipeError)):
        return RESET
    if isinstance(exc, aiohttp.ClientOSError):
        return RESET if exc.errno in (104, 32) else CONNECT
    return f"error:{type(exc).__name__}"


class AiohttpSender:
    """Sends templated requests over one pooled ``aiohttp.ClientSession``.

    Example::

        sender = AiohttpSender(templates, timeout_s=2.0, connections=64)
        outcome, sent_ns = await sender.send(0)
        await sender.aclose()
    """

    def __init__(
        self, templates: Sequence[RequestTemplate], *, timeout_s: float, connections: int,
        verify_tls: bool = True, follow_redirects: bool = False,
    ) -> None:
        self._templates = per_endpoint(templates, lambda t: t)  # request data: the next row's
        self._checkers = [None if t.checks is None else Checker(t.checks) for t in templates]
        self._follow_redirects = follow_redirects
        connector = aiohttp.TCPConnector(
            limit=max(1, connections), ssl=verify_tls, force_close=False,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=timeout_s),
            auto_decompress=False,
            skip_auto_headers=("User-Agent",),
            headers={"User-Agent": "slogate"},
        )
        # No silent retries: aiohttp resends an idempotent request once after a reset, which
        # doubles the load on a failing target and records the retry's outcome instead of the
        # reset. There is no public switch; aiohttp's own test client clears the same flag.
        self._session._retry_connection = False

    async def send(self, endpoint: int) -> tuple[str, int]:
        """Send one request and read the whole body; return (outcome, send time in ns)."""
        template = self._templates[endpoint]()
        sent_ns = time.monotonic_ns()
        try:
            async with self._session.request(
                template.method, template.url, headers=template.headers, data=template.body,
                allow_redirects=self._follow_redirects,
            ) as response:
                body = await response.read()
                checker = self._checkers[endpoint]
                if checker is not None:
                    failed = checker.first_failure(response.status, response.headers, body)
                    if failed is not None:
                        return check_outcome(failed), sent_ns
                return status_outcome(response.status), sent_ns
        except Exception as exc:  # noqa: BLE001 - every request ends as one outcome
            # ClientError, TimeoutError and OSError are classified; anything else aiohttp
            # raises (a ValueError for a header it refuses, say) is "error:<Name>", never lost.
            return classify(exc), sent_ns

    async def aclose(self) -> None:
        """Close the session and its connections."""
        await self._session.close()
