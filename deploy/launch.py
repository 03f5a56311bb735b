"""The dark launch as the coordinator calls it: synchronous, one ``asyncio.run`` per call.

``launch`` applies the candidate's manifests, waits for its Deployments and returns the URL of
its Service inside the cluster; ``cleanup`` deletes what ``launch`` applied.

Invariants:

- the manifests are read and the Service and port checked before anything is sent to the
  cluster, so a wrong file or port fails with nothing applied;
- a launch that fails deletes what it applied only when asked (``cleanup_on_failure``); left in
  place, the objects are there for ``kubectl describe`` and the next launch re-applies them;
- every failure is a :class:`KubernetesError` (exit 2); a Secret's value is never logged.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from deploy.errors import KubernetesError
from deploy.kube import Applied, Kube
from deploy.manifests import LaunchPlan, load_manifests, service_port, service_url


@dataclass(frozen=True, slots=True, kw_only=True)
class Launched:
    """What a launch applied and where the candidate's Service answers inside the cluster."""

    applied: tuple[Applied, ...]
    url: str


def launch(plan: LaunchPlan, log: Callable[[str], None], *, cleanup_on_failure: bool = False,
           poll_s: float = 0.5) -> Launched:
    """Apply ``plan``'s manifests, wait until its Deployments are ready; return them and the Service URL.

    When applying or the rollout fails, the error is raised after deleting what was applied if
    ``cleanup_on_failure`` (a cleanup policy of ``always`` or ``on_fail``), else the objects stay.
    """
    docs = load_manifests(plan.manifests)
    service, port = service_port(docs, plan.service, plan.port)
    doc = next(d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == service)
    url = service_url(doc["metadata"].get("namespace") or plan.namespace, service, port)

    async def run() -> tuple[Applied, ...]:
        applied: list[Applied] = []
        async with await Kube.connect(plan.kubeconfig, plan.context) as kube:
            try:
                for doc in docs:  # one at a time, so a failure knows what is already there
                    item = (await kube.apply([doc], plan.namespace))[0]
                    applied.append(item)
                    log(f"{item.kind.lower()} {item.namespace}/{item.name} {item.action}")
                await kube.wait_rollout(applied, plan.rollout_timeout_s, log, poll_s=poll_s)
            except KubernetesError:
                if cleanup_on_failure and applied:
                    await _delete_after_failure(kube, applied, log)
                raise
            return tuple(applied)

    applied = asyncio.run(run())
    log(f"candidate ready at {url}")
    return Launched(applied=applied, url=url)


async def _delete_after_failure(kube: Kube, applied: list[Applied], log: Callable[[str], None]) -> None:
    log("launch failed: deleting what was applied")
    try:
        await kube.delete(applied)
    except KubernetesError as exc:  # the launch's own error is the one to report
        log(f"warning: cleanup failed, the candidate may still be deployed: {exc}")


def cleanup(launched: Launched, plan: LaunchPlan, log: Callable[[str], None]) -> None:
    """Delete what ``launched`` applied (foreground propagation; objects already gone are fine)."""
    async def run() -> None:
        async with await Kube.connect(plan.kubeconfig, plan.context) as kube:
            await kube.delete(launched.applied)

    asyncio.run(run())
    for item in reversed(launched.applied):
        log(f"{item.kind.lower()} {item.namespace}/{item.name} deleted")


def delete_manifests(plan: LaunchPlan, log: Callable[[str], None]) -> None:
    """Delete the objects ``plan``'s manifests describe (``slogate launch --delete``)."""
    docs = load_manifests(plan.manifests)
    applied = tuple(Applied(kind=d["kind"], name=d["metadata"]["name"],
                            namespace=d["metadata"].get("namespace") or plan.namespace,
                            action="described") for d in docs)
    cleanup(Launched(applied=applied, url=""), plan, log)


def read_kubernetes_secret(name: str, key: str, namespace: str, kubeconfig: str | None = None,
                           context: str | None = None) -> str:
    """Return the value under ``key`` of Secret ``namespace/name`` (decoded text)."""
    async def run() -> str:
        async with await Kube.connect(kubeconfig, context) as kube:
            return await kube.read_secret(name, key, namespace)

    return asyncio.run(run())
