"""Waiting for the GitOps sync: poll the stable Deployment until it runs the promoted version
(:func:`deploy.sync_state.sync_state`), with a time-out.

Invariants: time is passed in (``clock``, ``sleep``), so tests of the time-out do not wait; each
change of the state is logged once; a rollout past its progress deadline fails at once
(:class:`KubernetesError`, exit 2), a sync that does not come in time is a :class:`SyncTimeout`
(exit 3: the version was neither verified nor found failing).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from deploy.errors import KubernetesError
from deploy.kube import Kube
from deploy.sync_state import SyncState, sync_state


class SyncTimeout(KubernetesError):
    """The cluster did not run the promoted version in time: nothing was verified (exit 3)."""

    exit_code = 3


@dataclass(frozen=True, slots=True, kw_only=True)
class StableDeployment:
    """The Deployment a GitOps controller keeps in sync with the promoted manifest.

    Example: ``StableDeployment(namespace="shop", name="checkout", kubeconfig=None, context=None)``
    """

    namespace: str
    name: str
    kubeconfig: str | None = None
    context: str | None = None

    @property
    def label(self) -> str:
        """Return ``deployment NAMESPACE/NAME``."""
        return f"deployment {self.namespace}/{self.name}"


async def wait_synced_async(kube: Kube, stable: StableDeployment, *,
                            images: Mapping[str, str] | None, version: str, timeout_s: float,
                            poll_s: float, log: Callable[[str], None],
                            clock: Callable[[], float] = time.monotonic,
                            sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> SyncState:
    """Return the synced state of ``stable`` once it runs ``version``; raise SyncTimeout after
    ``timeout_s`` naming the last state."""
    deadline, last = clock() + timeout_s, ""
    while True:
        state = sync_state(await kube.read_deployment(stable.name, stable.namespace),
                           images=images, version=version)
        if state.summary != last:
            log(f"{stable.label}: {state.summary}")
            last = state.summary
        if state.failed:
            raise KubernetesError(f"{stable.label}: {state.failed}")
        if state.synced:
            return state
        if clock() >= deadline:
            raise SyncTimeout(f"{stable.label} did not run {version} within {timeout_s:g} s "
                              f"({state.summary})")
        await sleep(poll_s)


def wait_synced(stable: StableDeployment, *, images: Mapping[str, str] | None, version: str,
                timeout_s: float, poll_s: float, log: Callable[[str], None]) -> SyncState:
    """:func:`wait_synced_async` on a connection of its own (one ``asyncio.run``)."""
    async def run() -> SyncState:
        async with await Kube.connect(stable.kubeconfig, stable.context) as kube:
            return await wait_synced_async(kube, stable, images=images, version=version,
                                           timeout_s=timeout_s, poll_s=poll_s, log=log)

    return asyncio.run(run())
