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
    # address="local": always a new instance, never a cluster some `ray start` left behind in
    # /tmp/ray/ray_current_cluster (ray.init() would join it and refuse num_cpus).
    ray.init(address="local", num_cpus=4, include_dashboard=False, log_to_driver=False,
             logging_level=logging.ERROR)
    try:
        yield
    finally:
        ray.shutdown()


def pytest_addoption(parser: pytest.Parser) -> None:
    """--update-golden rewrites the golden files under tests/golden from the current output."""
    parser.addoption("--update-golden", action="store_true", default=False,
                     help="rewrite tests/golden/* from the current output")


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    """Whether golden files are being regenerated in this run."""
    return bool(request.config.getoption("--update-golden"))
