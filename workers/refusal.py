"""A target that refuses every connection: noticed in a worker's first second, then named.

:class:`ConnectWatch` is pure: fed the recorder's buffered rows (outcome codes and done times,
ns from the worker's start) before each flush, it answers whether every request that finished
in the first second of sending failed to connect. A worker then ends its load early rather
than spend the whole run measuring nothing; :func:`connect_error` says, in one line, what a
fresh connection to each of the plan's origins runs into (``connection refused:
127.0.0.1:18099``).
"""

from __future__ import annotations

import asyncio
import socket
from array import array
from collections.abc import Iterable
from urllib.parse import urlsplit

import numpy as np

from workers.recorder import CODE_SPAN, CONNECT_CODE

FIRST_S = 1.0


class ConnectWatch:
    """Whether every request that finished in the first ``span_s`` after ``begin_ns`` failed
    with ``connect``. Watching stops at the first answer.

    Example::

        watch = ConnectWatch(begin_ns=0)
        watch.observe(recorder.codes, recorder.done)  # before each flush
        if watch.all_failed(now_ns): ...
    """

    __slots__ = ("_begin_ns", "_end_ns", "_failed", "_finished", "done")

    def __init__(self, *, begin_ns: int, span_s: float = FIRST_S) -> None:
        self._begin_ns = begin_ns
        self._end_ns = begin_ns + int(span_s * 1e9)
        self._finished = 0
        self._failed = 0
        self.done = False  # True once answered; observe() is then free

    def observe(self, codes: array, done: array) -> None:
        """Count the buffered rows that finished within the first span (any order of rows)."""
        if self.done or not len(codes):
            return
        finished = np.frombuffer(done, dtype=np.int64) < self._end_ns
        outcomes = np.frombuffer(codes, dtype=np.int64)[finished] % CODE_SPAN
        self._finished += int(finished.sum())
        self._failed += int((outcomes == CONNECT_CODE).sum())

    def all_failed(self, now_ns: int) -> bool:
        """Return True, once, when the first span is over and every request that finished in
        it (at least one) failed to connect; False before, and for ever after an answer."""
        if self.done or now_ns < self._end_ns:
            return False
        self.done = True
        return self._finished > 0 and self._failed == self._finished


def origins(urls: Iterable[str]) -> list[tuple[str, int]]:
    """Return the distinct ``(host, port)`` of ``urls``, in order (default ports filled in)."""
    seen: dict[tuple[str, int], None] = {}
    for url in urls:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        seen[(parts.hostname or "", port)] = None
    return list(seen)


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def connect_error(urls: Iterable[str], timeout_s: float = 1.0) -> str:
    """Return one line naming what a fresh connection to each origin of ``urls`` runs into
    (``connection refused: 127.0.0.1:18099``); origins that now connect are left out."""
    problems = []
    for host, port in origins(urls):
        address = _address(host, port)
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout_s)
        except ConnectionRefusedError:
            problems.append(f"connection refused: {address}")
        except socket.gaierror as exc:
            problems.append(f"cannot resolve {host}: {exc.strerror or exc}")
        except TimeoutError:
            problems.append(f"connect timed out after {timeout_s:g} s: {address}")
        except OSError as exc:
            problems.append(f"cannot connect to {address}: {exc.strerror or exc}")
        else:
            writer.close()
    if not problems:
        return (f"every request of the first {FIRST_S:g} s failed to connect to "
                f"{', '.join(_address(h, p) for h, p in origins(urls))}")
    return "; ".join(problems)
