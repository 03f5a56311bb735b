"""The benchmark's modules find the repository they run from (``make bench`` starts its clients
there, and writes bench/out there)."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("module", ["bench.cli", "bench.scaling", "bench.grpc_bench",
                                    "bench.request_data", "bench.test_bench"])
def test_every_bench_module_names_the_repository_root(module: str) -> None:
    """REPO is the folder with pyproject.toml: the tests' move into tests/<package> once
    rewrote bench's ``parent.parent`` to ``parents[2]``, and `make bench` then ran its
    slogate client outside the repository (No module named 'bench'), measuring nothing."""
    repo = importlib.import_module(module).REPO
    assert repo == ROOT and (repo / "pyproject.toml").is_file()
