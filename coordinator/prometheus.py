"""The Prometheus HTTP API adapter: the one module that queries a metrics store (with aiohttp).

``run_queries`` sends instant (``/api/v1/query``) and range (``/api/v1/query_range``) queries,
all at once, and returns for each the answer's ``data`` or a :class:`MetricsError` whose one
line names the custom metric, the server and what went wrong (the HTTP status and Prometheus's
own error text, a refused connection, a timeout). Credentials travel only in ``headers`` and
never appear in a message.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from coordinator.errors import CoordinatorError

MAX_ANSWER_BYTES = 64 * 2**20  # a range query of a few series is kilobytes; refuse a flood


class MetricsError(CoordinatorError):
    """A metrics store could not be reached, or refused or failed a query (exit 2 before the
    load; after it, the run is INVALID with this line as the reason)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Connection:
    """How to talk to one Prometheus: base URL, auth headers, TLS, per-query timeout."""

    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    tls: ssl.SSLContext | bool | None = None  # None: default verification; False: insecure
    timeout_s: float = 5.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Query:
    """One query of custom metric ``metric``: instant at ``at_s``, or range with ``step_s``."""

    metric: str
    promql: str
    at_s: float | None = None
    start_s: float | None = None
    end_s: float | None = None
    step_s: float | None = None

    def params(self) -> tuple[str, dict[str, str]]:
        """Return the API path and its parameters."""
        if self.step_s is None:
            at = {} if self.at_s is None else {"time": f"{self.at_s:.3f}"}
            return "/api/v1/query", {"query": self.promql, **at}
        return "/api/v1/query_range", {"query": self.promql, "start": f"{self.start_s:.3f}",
                                       "end": f"{self.end_s:.3f}", "step": f"{self.step_s:g}"}


def run_queries(connection: Connection, queries: Sequence[Query]) -> list[Any | MetricsError]:
    """Return, for each query in order, the answer's ``data`` or the MetricsError it met."""
    return asyncio.run(_run_all(connection, queries))


async def _run_all(connection: Connection, queries: Sequence[Query]) -> list[Any | MetricsError]:
    timeout = aiohttp.ClientTimeout(total=connection.timeout_s)
    async with aiohttp.ClientSession(timeout=timeout, headers=dict(connection.headers),
                                     trust_env=False) as session:
        return list(await asyncio.gather(*(_one(session, connection, q) for q in queries)))


async def _one(session: aiohttp.ClientSession, connection: Connection,
               query: Query) -> Any | MetricsError:
    path, params = query.params()
    where = f"custom metric {query.metric}: {connection.url}{path}"
    try:
        async with session.post(connection.url + path, data=params,
                                ssl=connection.tls if connection.tls is not None else True) as answer:
            body = await answer.content.read(MAX_ANSWER_BYTES + 1)
            status = answer.status
    except TimeoutError:
        return MetricsError(f"{where}: no answer within {connection.timeout_s:g} s")
    except aiohttp.ClientConnectorError as exc:
        reason = exc.os_error.strerror if exc.os_error and exc.os_error.strerror else str(exc)
        return MetricsError(f"{where}: cannot reach the metrics store ({reason})")
    except aiohttp.ClientError as exc:
        return MetricsError(f"{where}: {type(exc).__name__}: {' '.join(str(exc).split())[:200]}")
    if len(body) > MAX_ANSWER_BYTES:
        return MetricsError(f"{where}: HTTP {status}: the answer is larger than "
                            f"{MAX_ANSWER_BYTES // 2**20} MiB")
    return _decode(where, status, body)


def _decode(where: str, status: int, body: bytes) -> Any | MetricsError:
    """Return the ``data`` of a Prometheus answer, or the MetricsError it stands for."""
    try:
        answer = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        answer = None
    if not isinstance(answer, dict):
        text = " ".join(body[:200].decode("utf-8", "replace").split())
        return MetricsError(f"{where}: HTTP {status}: not a Prometheus API answer"
                            + (f": {text}" if text else ""))
    if status != 200 or answer.get("status") != "success":
        kind = answer.get("errorType") or "error"
        text = " ".join(str(answer.get("error") or "no error text").split())[:300]
        return MetricsError(f"{where}: HTTP {status}: {kind}: {text}")
    return answer.get("data")
