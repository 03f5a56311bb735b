"""Shared test helpers."""

from coordinator.sample_app import HELLO_APP, REPO_ROOT, HelloURL, start_hello

__all__ = ["HELLO_APP", "REPO_ROOT", "HelloURL", "start_hello"]
