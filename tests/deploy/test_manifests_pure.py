"""deploy.manifests: loading manifests, picking the Service, reading rollout and pod status (pure)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from deploy.errors import KubernetesError
from deploy.manifests import (
    Rollout,
    explain_pods,
    fatal_pod_problem,
    label_selector,
    load_manifests,
    pods_of_template,
    rollout_progress,
    service_port,
    service_url,
)

CANDIDATE = Path(__file__).resolve().parents[2] / "examples" / "hello" / "candidate.yaml"


def service(name: str, *ports: int) -> dict[str, Any]:
    """Return a Service document with ``ports``."""
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"ports": [{"port": p} for p in ports]}}


def deployment(*, generation: int = 1, want: int | None = 3, **status: Any) -> dict[str, Any]:
    """Return a Deployment wanting ``want`` replicas, with ``status`` (camelCase keys) as the API sends it."""
    spec: dict[str, Any] = {"template": {"spec": {"containers": [{"name": "app", "image": "app:2"}]}}}
    if want is not None:
        spec["replicas"] = want
    return {"metadata": {"name": "app", "generation": generation}, "spec": spec, "status": status}


def waiting(reason: str, message: str = "", restarts: int = 0, **extra: Any) -> dict[str, Any]:
    """Return a pod whose one container waits with ``reason``."""
    container = {"name": "app", "image": "app:2", "restartCount": restarts,
                 "state": {"waiting": {"reason": reason, "message": message}}, **extra}
    return {"metadata": {"name": "app-7d9f-x"}, "spec": {"containers": [{"name": "app", "image": "app:2"}]},
            "status": {"phase": "Pending", "containerStatuses": [container]}}


UNSCHEDULABLE = {"metadata": {"name": "app-7d9f-y"}, "status": {"phase": "Pending", "conditions": [
    {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
     "message": "0/3 nodes are available: 3 Insufficient cpu."}]}}
RUNNING = {"metadata": {"name": "app-7d9f-z"}, "status": {"phase": "Running", "containerStatuses": [
    {"name": "app", "restartCount": 0, "ready": True, "state": {"running": {}}}]}}
CRASHED = {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}


# ---------------------------------------------------------------- load_manifests


def test_candidate_example_loads_as_deployment_and_service() -> None:
    """The example candidate file holds the hello-candidate Deployment and its Service."""
    docs = load_manifests([CANDIDATE])
    assert [(d["kind"], d["metadata"]["name"]) for d in docs] == [
        ("Deployment", "hello-candidate"), ("Service", "hello-candidate")]
    assert docs[0]["spec"]["template"]["spec"]["containers"][0]["image"] == "ghcr.io/slogate/hello:2.0"


def test_documents_of_several_files_keep_order_and_skip_empty_ones(tmp_path: Path) -> None:
    """Empty documents (a leading ``---``, comments only) are skipped; files are read in order."""
    first, second = tmp_path / "a.yaml", tmp_path / "b.yaml"
    first.write_text("---\n# nothing\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: one}\n---\n")
    second.write_text("apiVersion: v1\nkind: Secret\nmetadata: {name: two, namespace: ns}\n")
    docs = load_manifests([first, second])
    assert [d["metadata"]["name"] for d in docs] == ["one", "two"]


@pytest.mark.parametrize("text, expected", [
    pytest.param("a: [1\n", "invalid YAML at line 2", id="bad-yaml"),
    pytest.param("- 1\n", "document 1: expected a mapping, got list", id="not-a-mapping"),
    pytest.param("kind: Service\nmetadata: {name: x}\n", "document 1: apiVersion is missing",
                 id="no-apiversion"),
    pytest.param("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\n---\n"
                 "apiVersion: v1\nkind: Service\nmetadata: {}\n", "document 3: metadata.name is missing",
                 id="no-name-third-doc"),
    pytest.param("apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: x}\n",
                 "document 1: kind Ingress is not handled", id="unknown-kind"),
    pytest.param("apiVersion: extensions/v1beta1\nkind: Deployment\nmetadata: {name: x}\n",
                 "Deployment has apiVersion extensions/v1beta1, expected apps/v1", id="old-apiversion"),
    pytest.param("apiVersion: v1\nkind: Service\nmetadata: {name: x, namespace: 3}\n",
                 "metadata.namespace must be a non-empty string", id="bad-namespace"),
])
def test_bad_manifests_name_the_file_and_document(tmp_path: Path, text: str, expected: str) -> None:
    """Each kind of bad manifest raises KubernetesError naming the path, the document and the problem."""
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(KubernetesError) as info:
        load_manifests([path])
    assert str(info.value).startswith(f"manifest {path}")
    assert expected in str(info.value)


def test_missing_manifest_file_is_named(tmp_path: Path) -> None:
    """An unreadable file is reported with its path and the OS reason."""
    with pytest.raises(KubernetesError, match=r"cannot read manifest .*nope\.yaml: No such file"):
        load_manifests([tmp_path / "nope.yaml"])


# ---------------------------------------------------------------- service_port, service_url, selectors


@pytest.mark.parametrize("docs, name, port, expected", [
    pytest.param([service("web", 8080, 9090)], None, None, ("web", 8080), id="only-service-first-port"),
    pytest.param([service("web", 8080, 9090)], None, 9090, ("web", 9090), id="given-port"),
    pytest.param([service("a", 1), service("b", 2)], "b", None, ("b", 2), id="named-service"),
])
def test_service_port_picks_the_service_and_port(docs: list[dict[str, Any]], name: str | None,
                                                 port: int | None, expected: tuple[str, int]) -> None:
    """The only (or named) Service is picked, with its first (or given) port."""
    assert service_port(docs, name, port) == expected


@pytest.mark.parametrize("docs, name, port, message", [
    pytest.param([], None, None, "the manifests hold no Service: name the one to load", id="none"),
    pytest.param([service("a", 1), service("b", 2)], None, None, "the manifests hold 2 Services (a, b)",
                 id="two-unnamed"),
    pytest.param([service("a", 1)], "b", None, "service b is not in the manifests (Services there: a)",
                 id="named-missing"),
    pytest.param([service("a", 8080)], None, 9090, "service a has no port 9090 (ports: 8080)",
                 id="port-missing"),
    pytest.param([service("a")], None, None, "service a has no ports", id="no-ports"),
])
def test_service_port_errors_say_what_is_there(docs: list[dict[str, Any]], name: str | None,
                                               port: int | None, message: str) -> None:
    """A missing, ambiguous or portless Service is a KubernetesError listing what the manifests hold."""
    with pytest.raises(KubernetesError) as info:
        service_port(docs, name, port)
    assert message in str(info.value)


def test_service_url_is_the_cluster_dns_name() -> None:
    """The URL is the Service's cluster DNS name with its port."""
    assert service_url("staging", "hello-candidate", 8080) == "http://hello-candidate.staging.svc:8080"


def test_label_selector_joins_labels_and_expressions() -> None:
    """matchLabels and matchExpressions become one label-selector query, as kubectl writes it."""
    dep = {"spec": {"selector": {"matchLabels": {"version": "2.0", "app": "hello"}, "matchExpressions": [
        {"key": "tier", "operator": "In", "values": ["web", "api"]},
        {"key": "canary", "operator": "DoesNotExist"}]}}}
    assert label_selector(dep) == "app=hello,version=2.0,tier in (web,api),!canary"


# ---------------------------------------------------------------- rollout_progress


@pytest.mark.parametrize("dep, expected", [
    pytest.param(deployment(generation=2, observedGeneration=1, replicas=3, updatedReplicas=3,
                            availableReplicas=3),
                 Rollout(ready=False, summary="spec change not yet observed (3/3 updated, 3/3 available)"),
                 id="not-observed"),
    pytest.param(deployment(observedGeneration=1, replicas=3, updatedReplicas=2, availableReplicas=1),
                 Rollout(ready=False, summary="2/3 updated, 1/3 available, 1 old pending termination"),
                 id="partway"),
    pytest.param(deployment(observedGeneration=1, replicas=4, updatedReplicas=3, availableReplicas=3),
                 Rollout(ready=False, summary="3/3 updated, 3/3 available, 1 old pending termination"),
                 id="old-replica-left"),
    pytest.param(deployment(observedGeneration=1, replicas=3, updatedReplicas=3, availableReplicas=3),
                 Rollout(ready=True, summary="3/3 updated, 3/3 available"), id="ready"),
    pytest.param(deployment(want=None, observedGeneration=1),
                 Rollout(ready=False, summary="0/1 updated, 0/1 available"), id="replicas-default-one"),
    pytest.param(deployment(want=0, observedGeneration=1),
                 Rollout(ready=True, summary="0/0 updated, 0/0 available"), id="scaled-to-zero"),
    pytest.param(deployment(observedGeneration=1, replicas=3, updatedReplicas=1, availableReplicas=0,
                            conditions=[{"type": "Progressing", "status": "False",
                                         "reason": "ProgressDeadlineExceeded",
                                         "message": 'ReplicaSet "app-7d9f" has timed\nout progressing.'}]),
                 Rollout(ready=False, summary="1/3 updated, 0/3 available, 2 old pending termination",
                         failed='ProgressDeadlineExceeded: ReplicaSet "app-7d9f" has timed out progressing.'),
                 id="deadline-exceeded"),
])
def test_rollout_progress(dep: dict[str, Any], expected: Rollout) -> None:
    """Ready only when the latest spec is observed and every wanted replica is updated and available."""
    assert rollout_progress(dep) == expected


# ---------------------------------------------------------------- explain_pods


@pytest.mark.parametrize("pods, explained, fatal", [
    pytest.param([waiting("ContainerCreating")], None, False, id="creating-is-fine"),
    pytest.param([RUNNING], None, False, id="running"),
    pytest.param([], None, False, id="no-pods"),
    pytest.param([waiting("ErrImagePull", "rpc error: not found")],
                 "pod app-7d9f-x: ErrImagePull: rpc error: not found", False, id="err-image-pull-transient"),
    pytest.param([waiting("ImagePullBackOff", 'Back-off pulling image "ghcr.io/x:9"')],
                 'pod app-7d9f-x: ImagePullBackOff: Back-off pulling image "ghcr.io/x:9"', True,
                 id="image-pull-backoff"),
    pytest.param([waiting("InvalidImageName", 'couldn\'t parse image name "X:"')],
                 'pod app-7d9f-x: InvalidImageName: couldn\'t parse image name "X:"', True,
                 id="invalid-image"),
    pytest.param([waiting("CreateContainerConfigError", 'configmap "cfg" not found')],
                 'pod app-7d9f-x: CreateContainerConfigError: configmap "cfg" not found', True,
                 id="config-error"),
    pytest.param([waiting("CrashLoopBackOff", "back-off", 1, lastState=CRASHED)],
                 "pod app-7d9f-x: CrashLoopBackOff: container app restarted 1 times, last exit code 137 "
                 "(OOMKilled)", False, id="first-crash-transient"),
    pytest.param([waiting("CrashLoopBackOff", "back-off", 3, lastState={"terminated": {"exitCode": 1}})],
                 "pod app-7d9f-x: CrashLoopBackOff: container app restarted 3 times, last exit code 1", True,
                 id="crash-loop"),
    pytest.param([UNSCHEDULABLE],
                 "pod app-7d9f-y: Unschedulable: 0/3 nodes are available: 3 Insufficient cpu.", True,
                 id="unschedulable"),
    pytest.param([waiting("ErrImagePull", "x"), RUNNING, UNSCHEDULABLE],
                 "pod app-7d9f-y: Unschedulable: 0/3 nodes are available: 3 Insufficient cpu.", True,
                 id="fatal-named-before-transient"),
])
def test_explain_pods(pods: list[dict[str, Any]], explained: str | None, fatal: bool) -> None:
    """explain_pods names the first problem (fatal first); fatal_pod_problem only the ones waiting
    won't cure."""
    assert explain_pods(pods) == explained
    assert fatal_pod_problem(pods) == (explained if fatal else None)


def test_init_container_problems_count_too() -> None:
    """A failing init container is explained like a failing container."""
    pod = waiting("ImagePullBackOff", 'Back-off pulling image "init:1"')
    pod["status"]["initContainerStatuses"] = pod["status"].pop("containerStatuses")
    assert fatal_pod_problem([pod]) == 'pod app-7d9f-x: ImagePullBackOff: Back-off pulling image "init:1"'


def test_pods_of_older_templates_are_left_out() -> None:
    """A pod of the replaced revision (another image) does not count against the new one."""
    old = waiting("ImagePullBackOff", "old broken image")
    old["spec"]["containers"][0]["image"] = "app:1-broken"
    new = waiting("ContainerCreating")
    assert pods_of_template(deployment(), [old, new]) == [new]
