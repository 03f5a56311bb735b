"""Shared fixtures: one real local Ray per test module that asks for it."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest


@pytest.fixture(scope="module")
def ray_local() -> Iterator[None]:
    """Start a real local Ray (4 logical CPUs on this 2-core machine) for one test module."""
    ray = pytest.importorskip("ray")
    logging.getLogger("ray").setLevel(logging.ERROR)
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False,
             logging_level=logging.ERROR)
    try:
        yield
    finally:
        ray.shutdown()
