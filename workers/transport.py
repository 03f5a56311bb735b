"""The seam between the engine and HTTP: a ``Sender`` sends one request and reports its outcome.

Outcomes are strings, never exceptions: ``"status:200"`` for any HTTP response, or a transport
failure kind: ``connect`` (refused, unreachable, DNS), ``timeout`` (no full response within the
request timeout), ``reset`` (the peer closed or reset the connection mid-request), ``tls``
(handshake or certificate failure), ``error:<Name>`` for anything else.
"""

from __future__ import annotations

from typing import Protocol

CONNECT = "connect"
TIMEOUT = "timeout"
RESET = "reset"
TLS = "tls"


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
