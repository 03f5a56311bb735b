"""``slogate demo``: the whole loop on the bundled sample app, with no cluster and no account.

Starts ``examples/hello/app.py`` (version 2.0) on a free loopback port, runs
``examples/hello/experiment.yaml`` against it on an embedded local Ray, prints the report and the
verdict, and on PASS promotes 2.0 into a local GitOps repository made from the example manifests
(a real git repository standing in for the fork), printing the diff and the pull request. It
says what it is doing as it goes.

Invariant: every path it prints exists after it ends. The results, the HTML report, the GitOps
repository and the pull request file all live under the output directory (default
``results/hello-2.0-TIMESTAMP``), and the last lines list them.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from coordinator.errors import SpecError
from coordinator.out_dir import writable_out
from coordinator.sample_app import REPO_ROOT, start_hello
from coordinator.spec import ExperimentSpec, load_spec, parse_spec
from promote.local_git import identity
from promote.spec import PromotionSpec

EXAMPLE_DIR = REPO_ROOT / "examples" / "hello"
DEMO_APP_ARGS = ("--version", "2.0", "--latency", "4ms", "--jitter", "2ms",
                 "--distribution", "uniform", "--seed", "7")
PROMOTE_BRANCH = "slogate/promote-hello-2.0"


def run_demo(*, out: Path | None, log: Callable[[str], None], execute: Callable[..., int],
             default_out: Callable[[str], Path], prometheus: bool = False) -> int:
    """Run the demo and return the verdict's exit code; ``default_out(name)`` is where
    ``slogate run`` writes when given no ``--out``; ``prometheus``: judge one custom objective
    too, from a Prometheus started for the demo (:func:`with_prometheus`)."""
    spec_path = EXAMPLE_DIR / "experiment.yaml"
    spec = load_spec(spec_path)
    with writable_out(out or default_out(spec.name)) as out_dir:
        return _demo_in(out_dir, spec, spec_path, log=log, execute=execute, prometheus=prometheus)


def _demo_in(out_dir: Path, spec: ExperimentSpec, spec_path: Path, *, log: Callable[[str], None],
             execute: Callable[..., int], prometheus: bool) -> int:
    gitops_dir = (out_dir / "gitops").resolve()
    if gitops_dir.exists():
        raise SpecError(f"{gitops_dir} already exists: give the demo a new --out directory")
    begun = time.monotonic()
    log(f"starting the sample app hello 2.0 ({' '.join(DEMO_APP_ARGS[2:])})")
    with start_hello(*DEMO_APP_ARGS) as url, contextlib.ExitStack() as stack:
        log(f"sample app listening at {url}")
        if prometheus:
            spec = with_prometheus(spec, str(url), stack, log)
        gitops = make_gitops_repo(gitops_dir)
        log(f"local GitOps repository (standing in for your fork): {gitops}")
        spec = spec.with_target(str(url)).model_copy(update={"promotion": PromotionSpec.model_validate({
            "provider": "local", "repository": str(gitops), "baseBranch": "main", "app": "hello",
            "version": "2.0", "manifests": [{
                "path": "samples/deployments/baseline.yaml", "strategy": "copy",
                "from": "samples/deployments/candidate.yaml"}]})})
        code = execute(spec, spec_dir=EXAMPLE_DIR, out=out_dir, address=None, fmt_name="text",
                       show_pull_body=True, spec_file=spec_path)
        log("stopping the sample app")
    log(f"demo finished in {time.monotonic() - begun:.1f} s; what it left:")
    for line in left_behind(out_dir):
        log(f"  {line}")
    return code


SERVER_P99 = {"name": "server-p99", "unit": "ms", "query": (
    "1000 * histogram_quantile(0.99, sum by (le) (rate("
    "hello_request_duration_seconds_bucket{ {{ labels }} }[{{ interval }}])))")}


def with_prometheus(spec: ExperimentSpec, url: str, stack: contextlib.ExitStack,
                    log: Callable[[str], None]) -> ExperimentSpec:
    """Return ``spec`` with a custom objective on the app's own server-side p99, read from a
    Prometheus started on ``stack`` that scrapes the app at ``url`` every second."""
    from coordinator.custom_metrics import check_metrics
    from coordinator.sample_prometheus import start_prometheus

    log("starting prometheus, scraping the sample app every second (first scrape in ~5 s)")
    prometheus = stack.enter_context(start_prometheus({url.removeprefix("http://"): "2.0"}))
    log(f"prometheus listening at {prometheus}")
    data = spec.model_dump(mode="json", by_alias=True)
    data["metrics"] = {"providers": [{"url": prometheus}], "queryDelay": "1.5s",
                       "candidate": {"version": "2.0", "labels": {"version": "2.0"}},
                       "custom": [SERVER_P99]}
    data["objectives"] = [*data["objectives"], {"metric": "server-p99", "upperLimit": "50ms"}]
    judged = parse_spec(data, source="demo")
    check_metrics(judged)
    return judged


def left_behind(out_dir: Path) -> list[str]:
    """Return one line per file or repository the demo left under ``out_dir`` that exists."""
    gitops = (out_dir / "gitops").resolve()
    pull = gitops.parent / "gitops.pull-requests" / f"{PROMOTE_BRANCH.replace('/', '-')}.md"
    items = [("results", out_dir / "results.json"), ("HTML report", out_dir / "report.html"),
             ("GitOps repository", gitops), ("pull request", pull)]
    lines = [f"{what}: {path}" for what, path in items if path.exists()]
    if pull.exists():
        lines.append(f"see the promotion: git -C {gitops} log --stat main..{PROMOTE_BRANCH}")
    return lines


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
