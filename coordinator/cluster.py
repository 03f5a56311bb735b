"""The Ray adapter: the one module of slogate that imports ray.

``RayPool`` starts an embedded local Ray (no address, no ``RAY_ADDRESS``) or joins a cluster,
creates one ``LoadWorker`` actor per plan (``ray.remote`` is applied here, to the plain class),
starts them on one common start time and collects their reports. A worker that dies or does not
answer in time becomes a :class:`WorkerLost` value, never a hang: every wait has a deadline
derived from the plan's expected duration.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import ray
from ray.exceptions import GetTimeoutError, RayActorError, RayError, RayTaskError

from coordinator.errors import ClusterError
from workers.engine import LoadWorker, WorkerReport
from workers.plan import WorkerPlan

REPO_ROOT = Path(__file__).resolve().parent.parent
_EXCLUDES = [".git", ".venv", "**/__pycache__", ".pytest_cache", ".hypothesis", "bench/out",
             "results", "out"]
_START_SLACK_S = 1.0  # between "all actors ready" and the common start time
_READY_TIMEOUT_S = 120.0


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerLost:
    """A worker that did not return a report, and why."""

    worker_index: int
    reason: str


WorkerOutcome = WorkerReport | WorkerLost
Log = Callable[[str], None]


class RayPool:
    """Runs plans on Ray actors. Use as a context manager.

    Example::

        with RayPool(address=None) as pool:
            outcomes = pool.run(plans)
    """

    def __init__(self, address: str | None = None, *, log: Log = lambda _m: None,
                 num_cpus: int | None = None, cpus_per_worker: float = 1.0) -> None:
        self.address = address or os.environ.get("RAY_ADDRESS") or None
        self._log = log
        self._num_cpus = num_cpus
        self._cpus_per_worker = cpus_per_worker
        self._owned = False

    def __enter__(self) -> RayPool:
        if ray.is_initialized():
            self._log("using the Ray instance already running in this process")
            return self
        # Ray logs a notice on how to opt out of token auth at every start; keep stderr to ours.
        logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(
            logging.ERROR)
        try:
            if self.address:
                self._log(f"joining Ray at {self.address}")
                ray.init(address=self.address, logging_level=logging.WARNING,
                         runtime_env={"working_dir": str(REPO_ROOT), "excludes": _EXCLUDES})
            else:
                self._log("starting an embedded local Ray")
                ray.init(num_cpus=self._num_cpus, include_dashboard=False,
                         logging_level=logging.WARNING, log_to_driver=False)
        except (RayError, ConnectionError, ValueError, RuntimeError) as exc:
            where = self.address or "an embedded local instance"
            raise ClusterError(f"cannot start or join Ray ({where}): "
                               f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from exc
        self._owned = True
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._owned:
            ray.shutdown()

    def run(self, plans: Sequence[WorkerPlan]) -> list[WorkerOutcome]:
        """Run every plan on its own actor from one common start; return reports or losses."""
        needed = self._cpus_per_worker * len(plans)
        available = ray.cluster_resources().get("CPU", 0.0)
        if needed > available:
            raise ClusterError(f"load.workers x load.cpusPerWorker needs {needed:g} CPUs but the "
                               f"Ray cluster has {available:g}")
        remote_cls = ray.remote(num_cpus=self._cpus_per_worker, max_restarts=0)(LoadWorker)
        actors = [remote_cls.options(scheduling_strategy="SPREAD").remote(plan) for plan in plans]
        try:
            self._wait_ready(actors)
            start_at = time.time() + _START_SLACK_S
            self._log(f"{len(actors)} worker(s) ready; load starts at the common start time")
            refs = [actor.run.remote(start_at) for actor in actors]
            deadline = start_at + max(p.expected_s for p in plans) + 30.0
            return self._collect(refs, deadline)
        finally:
            for actor in actors:
                ray.kill(actor, no_restart=True)

    def _wait_ready(self, actors: list[object]) -> None:
        refs = [actor.ready.remote() for actor in actors]  # type: ignore[attr-defined]
        try:
            ray.get(refs, timeout=_READY_TIMEOUT_S)
        except GetTimeoutError:
            raise ClusterError(f"workers were not placed within {_READY_TIMEOUT_S:.0f} s "
                               "(not enough CPUs or nodes in the Ray cluster?)") from None
        except RayActorError as exc:
            raise ClusterError(f"a worker failed to start: {_first_line(exc)}") from None

    def _collect(self, refs: list[ray.ObjectRef], deadline: float) -> list[WorkerOutcome]:
        outcomes: list[WorkerOutcome | None] = [None] * len(refs)
        pending = {ref: index for index, ref in enumerate(refs)}
        while pending:
            timeout = max(0.0, deadline - time.time())
            done, _ = ray.wait(list(pending), num_returns=1, timeout=timeout)
            if not done:
                for index in pending.values():
                    outcomes[index] = WorkerLost(worker_index=index,
                                                 reason="no report before the deadline")
                break
            for ref in done:
                index = pending.pop(ref)
                outcomes[index] = self._outcome(ref, index)
        return [o for o in outcomes if o is not None]

    @staticmethod
    def _outcome(ref: ray.ObjectRef, index: int) -> WorkerOutcome:
        try:
            return ray.get(ref)
        except RayActorError as exc:
            return WorkerLost(worker_index=index, reason=f"actor died: {_first_line(exc)}")
        except RayTaskError as exc:
            return WorkerLost(worker_index=index, reason=f"worker raised: {_last_line(exc)}")


def _last_line(exc: BaseException) -> str:
    """Return the last line of a remote traceback: the exception type and message."""
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else type(exc).__name__


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
