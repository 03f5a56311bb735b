"""Request data against a real recording server on 127.0.0.1: each row's request reaches the
server, in the documented order and split between workers, on both transports."""

from __future__ import annotations

import collections
import dataclasses
import time
from pathlib import Path
from typing import Any

import pytest

from coordinator.spec import load_spec
from coordinator.split import worker_plans
from tests.support import servers
from workers.load_worker import LoadWorker, WorkerReport
from workers.recorder import Window

TRANSPORTS = [pytest.param("fast", id="fast"), pytest.param("aiohttp", id="aiohttp")]


def run_all(tmp_path: Path, target: str, rows: int, load: dict[str, Any], transport: str,
            order: str = "sequential") -> list[WorkerReport]:
    """Run every worker of a spec whose endpoint takes ``rows`` ids, together, as Ray would."""
    (tmp_path / "ids.csv").write_text("id\n" + "".join(f"{n}\n" for n in range(rows)))
    (tmp_path / "spec.yaml").write_text(
        f"name: t\ntarget: {target}\nload: {load}\nhttp: {{transport: {transport}}}\n"
        "endpoints:\n  - {path: '/item/{{ id }}', headers: {X-Id: '{{ id }}'}, "
        f"dataset: {{file: ids.csv, order: {order}, seed: 3}}}}\n")
    plans = worker_plans(load_spec(tmp_path / "spec.yaml"), tmp_path)
    workers = [LoadWorker(plan) for plan in plans]
    start = time.time() + 0.3
    for worker in workers:
        worker.start(start)
    reports = []
    for worker in workers:
        windows: list[Window] = []
        while True:
            snapshot = worker.poll(timeout_s=30.0)
            windows.extend(snapshot.windows)
            if snapshot.final is not None:
                reports.append(dataclasses.replace(snapshot.final, windows=tuple(windows)))
                break
    return reports


def seen_ids(server: servers.Served) -> list[int]:
    """Return the ids the server received, in arrival order, checking path and header agree."""
    ids = []
    for request in server.requests:
        target = str(request["target"])
        assert target.startswith("/item/")
        assert request["headers"]["x-id"] == target.removeprefix("/item/")  # type: ignore[index]
        ids.append(int(target.removeprefix("/item/")))
    return ids


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_one_worker_sends_rows_in_file_order_then_loops(tmp_path: Path, transport: str) -> None:
    """Sequential order: one user sends rows 0..9 in file order, then starts over."""
    with servers.recording_server() as server:
        run_all(tmp_path, server.url, 10, {"concurrency": 1, "requests": 25}, transport)
    assert seen_ids(server) == list(range(10)) * 2 + list(range(5))


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_rows_are_split_by_stride_between_workers(tmp_path: Path, transport: str) -> None:
    """Three workers of one user each send rows 3k + i in order: every row reaches the server
    exactly once, and each worker's rows arrive in file order."""
    with servers.recording_server() as server:
        reports = run_all(tmp_path, server.url, 30,
                          {"concurrency": 3, "requests": 30, "workers": 3}, transport)
    ids = seen_ids(server)
    assert sorted(ids) == list(range(30))
    for worker in range(3):
        assert [n for n in ids if n % 3 == worker] == list(range(worker, 30, 3))
    assert sum(h.total for r in reports for w in r.windows for h in w.latency.values()) == 30


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_shuffle_sends_each_row_once_per_pass(tmp_path: Path, transport: str) -> None:
    """Shuffle: 40 requests of one user over 20 rows send every row exactly twice, not in file
    order, and the same seed sends the same sequence again."""
    load = {"concurrency": 1, "requests": 40}
    runs = []
    for attempt in range(2):
        (tmp_path / str(attempt)).mkdir()
        with servers.recording_server() as server:
            run_all(tmp_path / str(attempt), server.url, 20, load, transport, order="shuffle")
        runs.append(seen_ids(server))
    assert collections.Counter(runs[0]) == {n: 2 for n in range(20)}
    assert runs[0][:20] != list(range(20))
    assert sorted(runs[0][:20]) == list(range(20))
    assert runs[0] == runs[1]
