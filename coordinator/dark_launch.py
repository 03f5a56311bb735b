"""The dark launch around a run: apply the candidate, load it, then clean up as the spec says.

The Kubernetes work itself is :mod:`deploy.launch` (kubernetes_asyncio lives in :mod:`deploy.kube`);
this module turns the spec's ``target.kubernetes`` block into a :class:`~deploy.manifests.LaunchPlan`,
resolves the URL to load, and decides when to delete the candidate (:func:`should_clean_up`, pure).

Invariant: once anything was applied, the cleanup policy is honoured whatever happens next: a
FAIL, an INCONCLUSIVE run, an aborted run or an exception all count as "not PASS".
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from coordinator.errors import EXPECTED
from coordinator.spec import ExperimentSpec, KubernetesTarget


def launch_plan(kubernetes: KubernetesTarget, spec_dir: Path):  # type: ignore[no-untyped-def]
    """Return the :class:`~deploy.manifests.LaunchPlan` of a spec's ``target.kubernetes``."""
    from deploy.manifests import LaunchPlan

    return LaunchPlan(
        namespace=kubernetes.namespace,
        manifests=tuple(spec_dir / m for m in kubernetes.manifests),
        service=kubernetes.service, port=kubernetes.port,
        rollout_timeout_s=kubernetes.rollout_timeout,
        kubeconfig=kubernetes.kubeconfig, context=kubernetes.context)


def should_clean_up(policy: str, verdict: str | None) -> bool:
    """Return whether to delete the candidate: ``always``, ``never``, or ``on_fail`` (any
    outcome but PASS, including no verdict at all because the run broke off)."""
    if policy == "always":
        return True
    if policy == "on_fail":
        return verdict != "PASS"
    return False


@dataclass(slots=True, kw_only=True)
class LaunchOutcome:
    """What the run inside :func:`dark_launch` sets: its verdict (None until judged)."""

    verdict: str | None = None


@contextlib.contextmanager
def dark_launch(spec: ExperimentSpec, spec_dir: Path, log: Callable[[str], None],
                outcome: LaunchOutcome) -> Iterator[ExperimentSpec]:
    """Launch the spec's Kubernetes target and yield the spec resolved to the URL to load.

    A spec without ``target.kubernetes`` is yielded unchanged and nothing is launched. The URL is
    ``target.url`` when given (a port-forward from outside the cluster), else the Service's
    cluster DNS name. On exit the candidate is deleted as ``cleanup`` says, given
    ``outcome.verdict``.
    """
    kubernetes = spec.target.kubernetes
    if kubernetes is None:
        yield spec
        return
    from deploy.launch import cleanup, launch

    plan = launch_plan(kubernetes, spec_dir)
    log(f"dark launch in namespace {plan.namespace}: "
        f"{', '.join(str(Path(m).name) for m in kubernetes.manifests)}")
    # A rollout that fails is cleaned up by the same policy: it has no verdict, so on_fail too.
    launched = launch(plan, log, cleanup_on_failure=should_clean_up(kubernetes.cleanup, None))
    url = spec.target.url or launched.url
    try:
        log(f"the load goes to {url}")
        yield spec.with_target(url)
    finally:
        if should_clean_up(kubernetes.cleanup, outcome.verdict):
            log(f"cleanup ({kubernetes.cleanup}, verdict {outcome.verdict or 'none'}): "
                "deleting the candidate")
            try:
                cleanup(launched, plan, log)
            except EXPECTED as exc:  # the run's outcome stands; say what was left behind
                log(f"warning: cleanup failed, the candidate may still be deployed: {exc}")
        else:
            log(f"the candidate stays deployed (cleanup: {kubernetes.cleanup})")
