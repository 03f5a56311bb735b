"""The whole loop in a (emulated) cluster: ``slogate run`` as a real process dark-launches the
candidate through kubernetes_asyncio, waits for its rollout, loads it, judges it, promotes it by a
pull request whose token it read from the ``ghtoken`` Secret, and cleans up by its policy.

The Kubernetes API and GitHub are the in-process emulators (real HTTP on 127.0.0.1); the pod
behind the Service is the sample app on loopback, reached through ``target.url`` as a
``kubectl port-forward`` would be. Ray is real (embedded).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from coordinator.sample_app import start_hello
from tests.support.github_emulator import git, github_emulator
from tests.support.helpers import REPO_ROOT
from tests.support.k8s_emulator import k8s_emulator

EXAMPLES = REPO_ROOT / "examples" / "hello"
NAMESPACE = "shop"


def folder(path: Path) -> Path:
    """Returns ``path``, made if missing."""
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_spec(directory: Path, target: dict[str, Any], **extra: Any) -> Path:
    """Writes the candidate manifest and a short spec loading ``target`` into ``directory``."""
    shutil.copy(EXAMPLES / "candidate.yaml", directory / "candidate.yaml")
    spec = {"name": "hello-k8s", "target": target,
            "load": {"rate": 300, "duration": "3s", "workers": 1, "timeout": "2s"},
            "endpoints": [{"path": "/hello"}],
            "objectives": ["rate<0.01", "p(99)<500ms"], **extra}
    path = directory / "experiment.yaml"
    with path.open("w") as out:
        YAML().dump(spec, out)
    return path


def slogate_run(spec: Path, out: Path) -> subprocess.CompletedProcess[str]:
    """Runs ``slogate run`` as its own process, without any GitHub token in its environment."""
    env = {k: v for k, v in os.environ.items() if k not in ("GITHUB_TOKEN", "KUBECONFIG")}
    return subprocess.run([sys.executable, "-m", "coordinator.cli", "run", str(spec),
                           "--out", str(out)], capture_output=True, text=True, cwd=REPO_ROOT,
                          env=env, timeout=180)


def kubernetes(k8s: Any, **extra: Any) -> dict[str, Any]:
    """Returns a ``target.kubernetes`` block for the candidate on the emulator."""
    return {"namespace": NAMESPACE, "manifests": ["candidate.yaml"], "rolloutTimeout": "20s",
            "kubeconfig": str(k8s.kubeconfig), **extra}


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.k8s
@pytest.mark.github
def test_dark_launch_load_verdict_promotion_and_cleanup(tmp_path: Path) -> None:
    """apply -> rollout -> load -> PASS -> PR with the token from the ghtoken Secret -> cleanup:
    each step happens, in that order, and the token shows up nowhere."""
    stable = (EXAMPLES / "baseline.yaml").read_text()
    with k8s_emulator(folder(tmp_path / "k8s"), namespaces=(NAMESPACE,), step_s=0.05) as k8s, \
            github_emulator(folder(tmp_path / "gh"), {"apps/hello.yaml": stable}) as gh, \
            start_hello("--version", "2.0") as app:
        k8s.add_secret(NAMESPACE, "ghtoken", {"token": gh.token})
        spec = write_spec(tmp_path, {"url": str(app), "kubernetes": kubernetes(
            k8s, service="hello-candidate", port=8080, cleanup="always")}, promotion={
                "repository": gh.full_name, "baseUrl": gh.base_url, "app": "hello",
                "version": "2.0",
                "tokenSecret": {"namespace": NAMESPACE, "kubeconfig": str(k8s.kubeconfig)},
                "manifests": [{"path": "apps/hello.yaml", "strategy": "set",
                               "document": "Deployment/hello", "edits": [{
                                   "path": "spec.template.spec.containers[name=hello].image",
                                   "value": "ghcr.io/slogate/hello:{{ version }}"}]}]})
        proc = slogate_run(spec, tmp_path / "out")
        applied = [r for r in k8s.requests if r.verb == "patch"]
        left = k8s.objects("deployments") + k8s.objects("services")

    assert proc.returncode == 0, proc.stderr
    assert "Verdict: PASS" in proc.stdout and "Traceback" not in proc.stderr
    steps = ["deployment shop/hello-candidate created", "service shop/hello-candidate created",
             "candidate ready", f"loading {app}", "cleanup (always, verdict PASS)",
             "deployment shop/hello-candidate deleted", "promoting hello 2.0"]
    at = [proc.stderr.find(step) for step in steps]
    assert -1 not in at and at == sorted(at), proc.stderr
    assert {r.resource for r in applied} == {"deployments", "services"}
    assert left == []
    assert gh.pull_count() == 1 and "Promote hello to 2.0" in gh.pull_text(1)[0]
    promoted = git(gh.bare, "show", "slogate/promote-hello-2.0:apps/hello.yaml")
    assert "image: ghcr.io/slogate/hello:2.0" in promoted
    saved = (tmp_path / "out" / "results.json").read_text()
    assert json.loads(saved)["spec"]["target"]["kubernetes"]["namespace"] == NAMESPACE
    for text in (proc.stdout, proc.stderr, saved, (tmp_path / "out" / "report.html").read_text()):
        assert gh.token not in text


@pytest.mark.k8s
def test_failed_rollout_exits_2_naming_the_pod_and_cleans_up(tmp_path: Path) -> None:
    """An image that cannot be pulled stops the run before any load: one line naming the pod's
    ImagePullBackOff, exit 2, no results, and the candidate deleted (cleanup: on_fail)."""
    with k8s_emulator(folder(tmp_path / "k8s"), namespaces=(NAMESPACE,), step_s=0.02) as k8s:
        spec = write_spec(tmp_path, {"url": "http://127.0.0.1:9", "kubernetes": kubernetes(
            k8s, cleanup="on_fail")})
        text = spec.parent.joinpath("candidate.yaml").read_text()
        spec.parent.joinpath("candidate.yaml").write_text(
            text.replace("ghcr.io/slogate/hello:2.0", "ghcr.io/slogate/does-not-exist:2.0"))
        proc = slogate_run(spec, tmp_path / "out")
        left = k8s.objects("deployments") + k8s.objects("services")
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("slogate: error:")]
    assert len(errors) == 1 and "deployment shop/hello-candidate" in errors[0]
    assert "ImagePullBackOff" in errors[0] and "does-not-exist" in errors[0]
    assert "Traceback" not in proc.stderr and not (tmp_path / "out").exists()
    assert left == []


@pytest.mark.k8s
def test_forbidden_apply_exits_2_naming_the_missing_right(tmp_path: Path) -> None:
    """A service account that may not patch Deployments gets one line naming the verb, the
    resource and the namespace, exit 2, and nothing is created."""
    rules = [{"apiGroups": [""], "resources": ["services", "pods"],
              "verbs": ["get", "list", "create", "patch", "delete"]},
             {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get"]}]
    with k8s_emulator(folder(tmp_path / "k8s"), namespaces=(NAMESPACE,), rules=rules) as k8s:
        spec = write_spec(tmp_path, {"url": "http://127.0.0.1:9", "kubernetes": kubernetes(k8s)})
        proc = slogate_run(spec, tmp_path / "out")
        created = k8s.objects("deployments")
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith("slogate: error: ") and "forbidden" in line
    assert line.endswith(f"(needs patch on deployments.apps in namespace {NAMESPACE})"), line
    assert created == []


@pytest.mark.k8s
def test_launch_command_applies_waits_prints_the_url_and_deletes(tmp_path: Path) -> None:
    """``slogate launch`` applies the manifests and waits for the rollout, printing the Service's
    cluster URL; ``--delete`` removes what they describe; a URL-only spec is exit 2."""
    with k8s_emulator(folder(tmp_path / "k8s"), namespaces=(NAMESPACE,), step_s=0.02) as k8s:
        spec = write_spec(tmp_path, {"kubernetes": kubernetes(k8s)})
        cli = [sys.executable, "-m", "coordinator.cli", "launch", str(spec)]
        up = subprocess.run(cli, capture_output=True, text=True, cwd=REPO_ROOT, timeout=60)
        ready = k8s.object("deployments", NAMESPACE, "hello-candidate")
        down = subprocess.run([*cli, "--delete"], capture_output=True, text=True, cwd=REPO_ROOT,
                              timeout=60)
        left = k8s.objects("deployments") + k8s.objects("services")
    assert up.returncode == 0, up.stderr
    assert up.stdout == "http://hello-candidate.shop.svc:8080\n"
    assert ready is not None and ready["status"]["availableReplicas"] == 1
    assert down.returncode == 0, down.stderr
    assert "deployment shop/hello-candidate deleted" in down.stderr and left == []
    plain = tmp_path / "plain.yaml"
    plain.write_text("name: t\ntarget: http://127.0.0.1:9\nload: {rate: 1, duration: 1}\n")
    refused = subprocess.run([sys.executable, "-m", "coordinator.cli", "launch", str(plain)],
                             capture_output=True, text=True, cwd=REPO_ROOT, timeout=60)
    assert refused.returncode == 2
    assert refused.stderr == f"slogate: error: {plain}: target has no kubernetes block; " \
        "nothing to launch\n"


@pytest.mark.k8s
def test_promotion_github_token_comes_from_the_named_secret(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """``promote-serve --token-secret [NS/]NAME[:KEY]`` reads the token from that Secret (key
    ``token`` by default); a malformed value or a second token source is a usage error, and a
    missing Secret a one-line KubernetesError that carries no token."""
    import click

    from coordinator.cli import _github_token
    from deploy.errors import KubernetesError

    with k8s_emulator(folder(tmp_path / "k8s"), namespaces=(NAMESPACE,)) as k8s:
        k8s.add_secret(NAMESPACE, "ghtoken", {"token": "tok-1", "other": "tok-2"})
        monkeypatch.setenv("KUBECONFIG", str(k8s.kubeconfig))
        monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
        assert _github_token(None, f"{NAMESPACE}/ghtoken") == "tok-1"
        assert _github_token(None, f"{NAMESPACE}/ghtoken:other") == "tok-2"
        with pytest.raises(KubernetesError, match=f"secret {NAMESPACE}/gone not found") as caught:
            _github_token(None, f"{NAMESPACE}/gone")
        assert "tok-" not in str(caught.value)
    with pytest.raises(click.BadParameter, match="is not \\[NAMESPACE/\\]NAME\\[:KEY\\]"):
        _github_token(None, "shop/")
    with pytest.raises(click.UsageError, match="one of --token-file, --token-secret"):
        _github_token(tmp_path / "token", "ghtoken")
