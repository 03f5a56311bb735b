"""The seam between the engine and HTTP: a ``Sender`` sends one request and reports its outcome.

Outcomes are strings, never exceptions: ``"status:200"`` for any HTTP response, or a transport
failure kind: ``connect`` (refused, unreachable, DNS), ``timeout`` (no full response within the
request timeout), ``reset`` (the peer closed or reset the connection mid-request), ``tls``
(handshake or certificate failure), ``error:<Name>`` for anything else; ``check:<name>`` for a
response that failed one of its endpoint's checks (:mod:`workers.checks`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

CONNECT = "connect"
TIMEOUT = "timeout"
RESET = "reset"
TLS = "tls"


def check_outcome(name: str) -> str:
    """Return the outcome string of a response that failed the check ``name``."""
    return f"check:{name}"


def status_outcome(status: int) -> str:
    """Return the outcome string of an HTTP response status."""
    return f"status:{status}"


class Sender(Protocol):
    """Sends requests of a fixed list of templates; one instance per worker event loop."""

    async def send(self, endpoint: int) -> tuple[str, int]:
        """Send request template ``endpoint``; return (outcome, send time in monotonic ns)."""
        ...

    async def aclose(self) -> None:
        """Close connections."""
        ...


class Dispatch:
    """A Sender over two: endpoints whose flag is set go to ``flagged``, the rest to ``other``
    (gRPC and HTTP endpoints of one experiment, each on its own transport)."""

    def __init__(self, flags: Sequence[bool], flagged: Sender, other: Sender) -> None:
        self._senders = [flagged if flag else other for flag in flags]
        self._both = (flagged, other)

    async def send(self, endpoint: int) -> tuple[str, int]:
        """Send with the endpoint's own sender."""
        return await self._senders[endpoint].send(endpoint)

    async def aclose(self) -> None:
        """Close both senders."""
        for sender in self._both:
            await sender.aclose()
