"""``slogate demo``: the whole loop on the bundled sample app, with no cluster and no account.

Starts ``examples/hello/app.py`` (version 2.0) on a free loopback port, runs
``examples/hello/experiment.yaml`` against it on an embedded local Ray, prints the report and the
verdict, and on PASS promotes 2.0 into a temporary local GitOps repository made from the example
manifests (a real git repository standing in for the fork), printing the diff and the pull
request. It says what it is doing as it goes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import shutil
import subprocess
import tempfile

from coordinator.sample_app import REPO_ROOT, start_hello
from coordinator.spec import PromotionSpec, load_spec
from promote.local_git import identity

EXAMPLE_DIR = REPO_ROOT / "examples" / "hello"
DEMO_APP_ARGS = ("--version", "2.0", "--latency", "4ms", "--jitter", "2ms",
                 "--distribution", "uniform", "--seed", "7")


def run_demo(*, out: Path | None, log: Callable[[str], None],
             execute: Callable[..., int]) -> int:
    """Run the demo and return the verdict's exit code."""
    spec_path = EXAMPLE_DIR / "experiment.yaml"
    spec = load_spec(spec_path)
    begun = time.monotonic()
    log(f"starting the sample app hello 2.0 ({' '.join(DEMO_APP_ARGS[2:])})")
    with tempfile.TemporaryDirectory(prefix="slogate-demo-") as tmp, \
            start_hello(*DEMO_APP_ARGS) as url:
        log(f"sample app listening at {url}")
        gitops = make_gitops_repo(Path(tmp) / "gitops")
        log(f"local GitOps repository (standing in for your fork): {gitops}")
        spec = spec.with_target(str(url)).model_copy(update={"promotion": PromotionSpec.model_validate({
            "provider": "local", "repository": str(gitops), "baseBranch": "main", "app": "hello",
            "version": "2.0", "manifests": [{
                "path": "samples/deployments/baseline.yaml", "strategy": "copy",
                "from": "samples/deployments/candidate.yaml"}]})})
        code = execute(spec, spec_dir=EXAMPLE_DIR, out=out, address=None, fmt_name="text",
                       show_pull_body=True)
        log("stopping the sample app")
    log(f"demo finished in {time.monotonic() - begun:.1f} s")
    return code


def make_gitops_repo(path: Path) -> Path:
    """Return a new git repository at ``path`` holding the example manifests on ``main``, laid
    out as in Iter8's tutorial (``samples/deployments/baseline.yaml``, ``candidate.yaml``)."""
    target = path / "samples" / "deployments"
    target.mkdir(parents=True)
    for name in ("baseline.yaml", "candidate.yaml"):
        shutil.copy(EXAMPLE_DIR / name, target / name)
    git = ["git", "-C", str(path)]
    subprocess.run([*git, "init", "--quiet", "-b", "main"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, *identity(path), "commit", "--quiet", "-m",
                    "hello 1.0 stable, 2.0 candidate"], check=True)
    return path
