"""Shared test helpers."""

import socket

from coordinator.sample_app import HELLO_APP, REPO_ROOT, HelloURL, start_hello

__all__ = ["HELLO_APP", "REPO_ROOT", "HelloURL", "free_port", "start_hello"]


def free_port() -> int:
    """Returns a TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
