"""Shared test helpers."""

import socket
from typing import TypeVar

from coordinator.sample_app import HELLO_APP, REPO_ROOT, HelloURL, start_hello

__all__ = ["HELLO_APP", "REPO_ROOT", "HelloURL", "free_port", "present", "start_hello"]

T = TypeVar("T")


def free_port() -> int:
    """Returns a TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def present(value: T | None) -> T:
    """Returns ``value``, failing the test when it is None (a statistic of an empty histogram, a
    metric the run did not produce), so a test compares numbers, never None."""
    assert value is not None
    return value
