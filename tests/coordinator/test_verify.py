"""`slogate verify` end to end: the GitHub emulator holds the GitOps repository, an emulated
GitOps controller applies its main branch to the Kubernetes emulator, and the verification run
loads a real hello app (the stable Service) on 127.0.0.1 through a real local Ray."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from analysis.results import load_results
from coordinator.cli import main
from coordinator.errors import SpecError
from coordinator.spec import parse_spec
from coordinator.verify_wiring import verification_spec
from promote.verify import VERIFY_MARKER
from tests.support.github_emulator import GitHubEmulator, git, github_emulator
from tests.support.gitops_controller import GitOpsController, gitops_controller
from tests.support.helpers import start_hello
from tests.support.k8s_emulator import K8sEmulator, k8s_emulator
from tests.support.runs import document
from tests.support.servers import json_body, webhook_receiver

MANIFEST = "deploy/hello.yaml"
IMAGE = "ghcr.io/slogate/hello"


def deployment_yaml(version: str) -> str:
    """Return the stable hello Deployment (2 replicas) running ``version``."""
    return (f"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: hello\nspec:\n"
            f"  replicas: 2\n  selector:\n    matchLabels: {{app: hello}}\n  template:\n"
            f"    metadata:\n      labels: {{app: hello}}\n    spec:\n      containers:\n"
            f"      - name: hello\n        image: {IMAGE}:{version}\n")


@pytest.fixture
def loop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
         ) -> Iterator[tuple[GitHubEmulator, K8sEmulator, GitOpsController]]:
    """The GitHub emulator (hello 1.0 on main), the Kubernetes emulator and the controller that
    keeps the cluster in sync with main; the cluster runs 1.0 when the test starts."""
    with github_emulator(tmp_path, {MANIFEST: deployment_yaml("1.0")}) as gh, \
            k8s_emulator(tmp_path, step_s=0.02) as k8s, \
            gitops_controller(gh.bare, "main", [MANIFEST], k8s.kubeconfig) as argo:
        monkeypatch.setenv("GITHUB_TOKEN", gh.token)
        yield gh, k8s, argo


def promoted_run(tmp_path: Path, gh: GitHubEmulator,
                 notify: list[dict[str, object]] | None = None) -> Path:
    """Write a PASS run of hello 2.0 (p50 ~8 ms against 30 ms) whose spec promotes by setting
    the Deployment's image and reverts on FAIL, loading 100 req/s for 2 s; return its path."""
    results = document(day=0, name="hello-verify",
                       objectives=[{"metric": "latency-p50", "upperLimit": "30ms"},
                                   {"metric": "error-rate", "upperLimit": "5%"}])
    assert results.verdict == "PASS"
    data = json.loads(results.to_json())
    data["spec"]["load"] = {"rate": 100, "duration": 2, "workers": 1}
    # The test machine is shared and loaded: the generator's own lag must not make it INCONCLUSIVE.
    data["spec"]["analysis"] = {**data["spec"].get("analysis", {}), "maxScheduleLag": 200.0}
    data["spec"]["promotion"] = {
        "repository": gh.full_name, "baseUrl": gh.base_url, "app": "hello", "version": "2.0",
        "onFail": "revert-pr",
        "manifests": [{"path": MANIFEST, "strategy": "set", "document": "Deployment/hello",
                       "edits": [{"path": "spec.template.spec.containers[name=hello].image",
                                  "value": IMAGE + ":{{ version }}"}]}]}
    if notify:
        data["spec"]["notify"] = notify
    path = tmp_path / "promoted" / "results.json"
    path.parent.mkdir()
    path.write_text(json.dumps(data))
    return path


def verify(path: Path, k8s: K8sEmulator, target: str, out: Path, *extra: str) -> Result:
    """Run `slogate verify` against the emulators with short polls and time-outs."""
    return CliRunner().invoke(main, [
        "verify", str(path), "--deployment", "default/hello", "--target", target,
        "--kubeconfig", str(k8s.kubeconfig), "--poll", "0.05s", "--merge-timeout", "30s",
        "--sync-timeout", "30s", "--out", str(out), *extra])


def merge_when_opened(gh: GitHubEmulator, number: int, after_s: float = 0.5) -> threading.Thread:
    """Merge pull ``number`` ``after_s`` after it was opened (while verify polls it), as a
    reviewer would; give up after 30 s."""
    def review() -> None:
        deadline = time.monotonic() + 30
        while gh.pull_count() < number and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(after_s)
        gh.merge_pull(number)

    thread = threading.Thread(target=review, daemon=True)
    thread.start()
    return thread


@pytest.mark.ray
@pytest.mark.github
@pytest.mark.k8s
def test_merge_then_sync_then_verify_passes(
        tmp_path: Path, loop: tuple[GitHubEmulator, K8sEmulator, GitOpsController],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Merged while verify waits; the controller applies the merged manifest and the rollout
    completes; the run against the stable hello app passes, says so on the merged PR, and the
    webhook hears of the promotion and the verification."""
    gh, k8s, argo = loop
    path = promoted_run(tmp_path, gh, notify=[{"kind": "webhook", "urlEnv": "HOOK_URL"}])
    with webhook_receiver() as hook:
        monkeypatch.setenv("HOOK_URL", hook.url + "/hook")
        assert CliRunner().invoke(main, ["promote", str(path)]).exit_code == 0
        merge_when_opened(gh, 1)
        with start_hello() as hello:
            out = verify(path, k8s, hello, tmp_path / "verified")
    assert out.exit_code == 0, out.stderr
    events = [json_body(r) for r in hook.requests]
    assert [(e["event"], e["verdict"], e["headline"]) for e in events] == [
        ("promotion", "PASS", "hello 2.0: pull request to promote it opened (hello-verify PASS)"),
        ("verification", "PASS", "hello 2.0: verified as the stable version (PASS)")]
    dep = k8s.object("deployments", "default", "hello")
    assert dep is not None
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == f"{IMAGE}:2.0"
    assert dep["status"]["observedGeneration"] == dep["metadata"]["generation"] == 2
    assert dep["status"]["updatedReplicas"] == 2
    checked = load_results(tmp_path / "verified" / "results.json")
    assert (checked.verdict, checked.target_url) == ("PASS", str(hello))
    assert len(argo.synced) == 2 and argo.errors == []
    comment = [c.body for c in gh.comments_on(1) if c.body.startswith(VERIFY_MARKER)]
    assert len(comment) == 1 and "**PASS**" in comment[0] and "hello 2.0 is verified" in comment[0]
    assert "pull request #1 is merged" in out.stderr
    assert "deployment default/hello runs hello 2.0" in out.stderr
    assert gh.pull_count() == 1


@pytest.mark.ray
@pytest.mark.github
@pytest.mark.k8s
def test_a_stable_version_failing_after_sync_is_reverted_with_both_runs(
        tmp_path: Path, loop: tuple[GitHubEmulator, K8sEmulator, GitOpsController],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """`promote --verify`, merged while it waits; the synced stable app answers in 60 ms
    against a 30 ms p50 objective: it exits 1,
    opens the revert PR (main's 1.0 manifest back, byte for byte) whose body holds both runs,
    with a green check backing it, and links it from the merged PR."""
    gh, k8s, _argo = loop
    path = promoted_run(tmp_path, gh)
    monkeypatch.chdir(tmp_path)  # promote --verify writes results/hello-verify-verify-*/
    merge_when_opened(gh, 1)
    with start_hello("--latency", "60ms") as hello:
        out = CliRunner().invoke(main, [
            "promote", str(path), "--verify", "--deployment", "hello", "--target", hello,
            "--kubeconfig", str(k8s.kubeconfig), "--poll", "0.05s", "--merge-timeout", "30s",
            "--sync-timeout", "30s"])
    (saved,) = (tmp_path / "results").glob("hello-verify-verify-*/results.json")
    checked = load_results(saved)
    assert (out.exit_code, checked.verdict) == (1, "FAIL"), (checked.reasons, checked.metrics)
    assert gh.pull_count() == 2
    title, body = gh.pull_text(2)
    assert title == "Revert hello 2.0: SLOs failed"
    assert body is not None and "The run that promoted it" in body
    assert body.count("## slogate: hello-verify") == 2 and "**FAIL**" in body and "**PASS**" in body
    assert git(gh.bare, "show", f"slogate/revert-hello-2.0:{MANIFEST}") + "\n" == deployment_yaml("1.0")
    check = gh.checks_on(gh.pull_head(2))
    assert [(c.conclusion, c.output["title"][:10]) for c in check] == [("success", "FAIL: hell")]
    verified = [c.body for c in gh.comments_on(1) if c.body.startswith(VERIFY_MARKER)]
    assert len(verified) == 1 and f"revert {gh.base_url.removesuffix('/api/v3')}/acme/gitops/pull/2" \
        in verified[0]


@pytest.mark.github
@pytest.mark.k8s
def test_a_pull_request_not_merged_in_time_is_exit_3(
        tmp_path: Path, loop: tuple[GitHubEmulator, K8sEmulator, GitOpsController]) -> None:
    """An open PR past --merge-timeout: one line naming it, exit 3, nothing run."""
    gh, k8s, _argo = loop
    path = promoted_run(tmp_path, gh)
    assert CliRunner().invoke(main, ["promote", str(path)]).exit_code == 0
    out = verify(path, k8s, "http://127.0.0.1:9", tmp_path / "v", "--merge-timeout", "0.3s")
    assert out.exit_code == 3
    assert out.stderr.splitlines()[-1] == (
        f"slogate: error: pull request #1 ({gh.base_url.removesuffix('/api/v3')}/acme/gitops/"
        "pull/1) not merged within 0.3 s: nothing verified")
    assert not (tmp_path / "v").exists()


@pytest.mark.github
@pytest.mark.k8s
def test_a_cluster_not_synced_in_time_is_exit_3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Merged, but no controller applies it: after --sync-timeout one line says what the
    cluster runs instead, exit 3."""
    with github_emulator(tmp_path, {MANIFEST: deployment_yaml("1.0")}) as gh, \
            k8s_emulator(tmp_path, step_s=0.02) as k8s:
        monkeypatch.setenv("GITHUB_TOKEN", gh.token)
        GitOpsController(gh.bare, "main", [MANIFEST], k8s.kubeconfig).sync_once()
        path = promoted_run(tmp_path, gh)
        assert CliRunner().invoke(main, ["promote", str(path)]).exit_code == 0
        gh.merge_pull(1)
        out = verify(path, k8s, "http://127.0.0.1:9", tmp_path / "v", "--sync-timeout", "0.3s")
    assert out.exit_code == 3
    assert out.stderr.splitlines()[-1] == (
        "slogate: error: deployment default/hello did not run 2.0 within 0.3 s (not synced yet: "
        f"hello runs {IMAGE}:1.0, not {IMAGE}:2.0)")


@pytest.mark.github
@pytest.mark.k8s
def test_a_pull_request_closed_unmerged_is_exit_2(
        tmp_path: Path, loop: tuple[GitHubEmulator, K8sEmulator, GitOpsController]) -> None:
    """A promotion PR closed without merging: nothing to verify, one line, exit 2."""
    gh, k8s, _argo = loop
    path = promoted_run(tmp_path, gh)
    assert CliRunner().invoke(main, ["promote", str(path)]).exit_code == 0
    gh.close_pull(1)
    out = verify(path, k8s, "http://127.0.0.1:9", tmp_path / "v")
    assert out.exit_code == 2
    assert out.stderr.splitlines()[-1].endswith("was closed without merging: nothing to verify")


SPEC = {"name": "checkout", "target": "http://127.0.0.1:8081", "baseline": "http://127.0.0.1:8080",
        "load": {"rate": 10, "duration": "1s"}, "endpoints": [{"path": "/"}],
        "promotion": {"repository": "acme/gitops", "version": "2.0", "manifests": [
            {"path": "a.yaml", "strategy": "helm-values", "key": "image.tag", "value": "2.0"}]}}


def test_the_verification_loads_the_stable_service_alone() -> None:
    """The verification spec targets the stable URL, without baseline, relative objectives or
    promoting by itself; the absolute objectives are kept as they were."""
    spec = parse_spec({**SPEC, "objectives": [
        {"metric": "latency-p99", "upperLimit": "20ms"},
        {"metric": "latency-p99", "vs": "baseline", "upperLimit": 1.1}]})
    checking = verification_spec(spec, "http://127.0.0.1:9000")
    assert (checking.target_url, checking.baseline) == ("http://127.0.0.1:9000", None)
    assert [(o.metric, o.vs, o.upper_limit) for o in checking.objectives] == [
        ("latency-p99", None, 20.0)]
    assert checking.promotion is not None and checking.promotion.auto is False


def test_only_relative_objectives_cannot_be_verified() -> None:
    """With every objective relative to the baseline there is nothing to judge the stable
    version on alone: a spec error (exit 2) before any wait."""
    spec = parse_spec({**SPEC, "objectives": [
        {"metric": "latency-p99", "vs": "baseline", "upperLimit": 1.1}]})
    with pytest.raises(SpecError, match="every objective is relative to the baseline"):
        verification_spec(spec, "http://127.0.0.1:9000")


@pytest.mark.github
@pytest.mark.k8s
@pytest.mark.parametrize("args, line", [
    pytest.param(["--verify"], "slogate: error: verifying needs --deployment and --target",
                 id="promote-verify-without-where"),
    pytest.param(["--verify", "--dry-run", "--deployment", "hello", "--target", "http://x:1"],
                 "slogate: error: --verify follows a promotion made here: not with --dry-run "
                 "or --service", id="verify-a-dry-run"),
])
def test_promote_verify_refuses_before_promoting(
        tmp_path: Path, loop: tuple[GitHubEmulator, K8sEmulator, GitOpsController],
        args: list[str], line: str) -> None:
    """`promote --verify` missing where to verify (or on a dry run) is one line, exit 2, and
    opens no pull request."""
    gh, _k8s, _argo = loop
    out = CliRunner().invoke(main, ["promote", str(promoted_run(tmp_path, gh)), *args])
    assert (out.exit_code, out.stderr.strip()) == (2, line)
    assert gh.pull_count() == 0


@pytest.mark.parametrize("promotion, args, line", [
    pytest.param({"auto": False}, ["--deployment", "hello", "--target", "http://x:1"],
                 "slogate: error: --verify follows the promotion slogate run makes by itself: "
                 "the spec needs a promotion block with auto: true (and no --aa)", id="not-auto"),
    pytest.param({}, ["--target", "http://x:1"],
                 "slogate: error: verifying needs --deployment", id="no-deployment"),
])
def test_run_verify_refuses_before_the_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            promotion: dict[str, object], args: list[str],
                                            line: str) -> None:
    """`run --verify` that could not verify (no automatic promotion, nowhere to look) is one
    line, exit 2, before Ray starts or any load is sent."""
    spec = {**SPEC, "objectives": [{"metric": "latency-p99", "upperLimit": "20ms"}],
            "promotion": {**SPEC["promotion"], **promotion}}  # type: ignore[dict-item]
    (path := tmp_path / "spec.json").write_text(json.dumps(spec))
    monkeypatch.chdir(tmp_path)  # where run would write results/NAME-STAMP/
    out = CliRunner().invoke(main, ["run", str(path), "--verify", *args])
    assert (out.exit_code, out.stderr.strip()) == (2, line)
    assert not (tmp_path / "results").exists()
