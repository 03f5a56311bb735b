"""deploy.kube and deploy.launch: real kubernetes_asyncio against the in-process Kubernetes API emulator."""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import re
import socket
import time as walltime
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

from coordinator.errors import EXPECTED, exit_code
from deploy.errors import KubernetesError
from deploy.kube import Applied, Kube
from deploy.launch import cleanup, launch, read_kubernetes_secret
from deploy.manifests import LaunchPlan, load_manifests
from tests.support.k8s_emulator import K8sEmulator, k8s_emulator, write_kubeconfig

pytestmark = pytest.mark.k8s

T = TypeVar("T")
REPO_ROOT = Path(__file__).resolve().parents[2]
CANDIDATE = REPO_ROOT / "examples" / "hello" / "candidate.yaml"
DEPLOYMENT = Applied(kind="Deployment", name="hello-candidate", namespace="default", action="created")
SECRET_VALUE = "ghp_s3cr3t-VALUE-0042"
USER = 'User "system:serviceaccount:default:slogate"'


@pytest.fixture
def k8s(tmp_path: Path) -> Iterator[K8sEmulator]:
    """An emulated API server whose controller steps every 20 ms."""
    with k8s_emulator(tmp_path, step_s=0.02) as emulator:
        yield emulator


def candidate(*, image: str | None = None, replicas: int | None = None,
              cpu: str | None = None) -> list[dict[str, Any]]:
    """Return the example candidate's documents, with the Deployment's image, replicas or cpu
    request changed."""
    docs = copy.deepcopy(load_manifests([CANDIDATE]))
    spec = docs[0]["spec"]
    container = spec["template"]["spec"]["containers"][0]
    if image is not None:
        container["image"] = image
    if replicas is not None:
        spec["replicas"] = replicas
    if cpu is not None:
        container["resources"]["requests"]["cpu"] = cpu
    return docs


class FakeTime:
    """A clock that ``sleep`` moves forward by the time asked, after a short real pause for the emulator."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0.01)


def with_kube(k8s: K8sEmulator, body: Callable[[Kube], Awaitable[T]], *, kubeconfig: Path | None = None,
              time: FakeTime | None = None) -> T:
    """Connect with the emulator's kubeconfig (or ``kubeconfig``), run ``body``, close."""
    async def main() -> T:
        options: dict[str, Any] = {"environ": {}}
        if time is not None:
            options.update(clock=time.clock, sleep=time.sleep)
        async with await Kube.connect(str(kubeconfig or k8s.kubeconfig), None, **options) as kube:
            return await body(kube)
    return asyncio.run(main())


def fails(k8s: K8sEmulator, body: Callable[[Kube], Awaitable[Any]], **kwargs: Any) -> str:
    """Run ``body`` and return the message of the KubernetesError it must raise."""
    with pytest.raises(KubernetesError) as info:
        with_kube(k8s, body, **kwargs)
    assert exit_code(info.value) == 2 and isinstance(info.value, EXPECTED)
    return str(info.value)


def rollout(docs: list[dict[str, Any]], log: Callable[[str], None], timeout_s: float = 600.0,
            ) -> Callable[[Kube], Awaitable[None]]:
    """Return a body applying ``docs`` to namespace default and waiting for the rollout (polls every 1 s).

    With :class:`FakeTime` each poll takes 10 ms of real time, so the default timeout leaves the
    emulator's controller several real seconds.
    """
    async def body(kube: Kube) -> None:
        applied = await kube.apply(docs, "default")
        await kube.wait_rollout(applied, timeout_s, log, poll_s=1.0)
    return body


# ---------------------------------------------------------------- apply


def test_apply_creates_then_reports_unchanged_then_configured(k8s: K8sEmulator) -> None:
    """First apply creates, the same again (after the controller moved the status) changes nothing, and a
    new image configures only the Deployment."""
    def meta(resource: str) -> dict[str, Any]:
        found = k8s.object(resource, "default", "hello-candidate")
        assert found is not None
        return dict(found["metadata"])

    assert [a.action for a in with_kube(k8s, lambda kube: kube.apply(candidate(), "default"))] == \
        ["created", "created"]
    service_rv = meta("services")["resourceVersion"]
    with_kube(k8s, rollout(candidate(), lambda _: None), time=FakeTime())  # status moves, the spec does not
    again = with_kube(k8s, lambda kube: kube.apply(candidate(), "default"))
    assert [(a.kind, a.action) for a in again] == [("Deployment", "unchanged"), ("Service", "unchanged")]
    assert meta("deployments")["generation"] == 1 and meta("services")["resourceVersion"] == service_rv
    changed = with_kube(k8s, lambda kube: kube.apply(candidate(image="ghcr.io/slogate/hello:2.1"), "default"))
    assert [a.action for a in changed] == ["configured", "unchanged"]
    assert meta("deployments")["generation"] == 2 and meta("services")["resourceVersion"] == service_rv
    patches = [r for r in k8s.requests if r.method == "PATCH"]
    assert {(r.content_type, r.query) for r in patches} == {
        ("application/apply-patch+yaml", "fieldManager=slogate&force=True")}


def test_namespace_in_the_document_wins(k8s: K8sEmulator) -> None:
    """A document's own metadata.namespace is kept; the others go to the namespace given."""
    k8s.add_namespace("other")
    docs = candidate()
    docs[1]["metadata"]["namespace"] = "other"
    applied = with_kube(k8s, lambda kube: kube.apply(docs, "default"))
    assert [(a.kind, a.namespace) for a in applied] == [("Deployment", "default"), ("Service", "other")]
    assert k8s.object("services", "other", "hello-candidate") is not None


def test_missing_namespace_is_named(k8s: K8sEmulator) -> None:
    """Applying into a namespace that does not exist names the namespace."""
    assert fails(k8s, lambda kube: kube.apply(candidate(), "staging")) == "namespace staging not found"


def test_invalid_object_names_the_field(k8s: K8sEmulator) -> None:
    """A 422 from the API names the object and the field from the Status causes."""
    docs = candidate()
    docs[0]["spec"]["selector"]["matchLabels"]["app"] = "other"
    message = fails(k8s, lambda kube: kube.apply(docs, "default"))
    assert message.startswith("invalid deployment default/hello-candidate: spec.template.metadata.labels: "
                              "Invalid value: ")
    assert message.endswith("`selector` does not match template `labels`")


def test_server_error_names_verb_object_and_status(k8s: K8sEmulator) -> None:
    """Any other failure names the verb, the object, the HTTP status and the API's message."""
    k8s.fail_next("patch", "deployments", status=500)
    assert fails(k8s, lambda kube: kube.apply(candidate(), "default")) == (
        "patch deployment default/hello-candidate: HTTP 500 Internal Server Error: "
        "Internal error occurred: etcdserver: request timed out")


# ---------------------------------------------------------------- rollout


def test_rollout_logs_each_change_of_progress_until_ready(tmp_path: Path) -> None:
    """Waiting for two replicas logs each new summary once, in the controller's order, until all
    are available."""
    steps = ["spec change not yet observed (0/2 updated, 0/2 available)", "0/2 updated, 0/2 available",
             "1/2 updated, 0/2 available", "1/2 updated, 1/2 available", "2/2 updated, 1/2 available",
             "2/2 updated, 2/2 available"]
    lines: list[str] = []
    with k8s_emulator(tmp_path, step_s=0.1) as k8s:  # polls (10 ms) see every step of 100 ms
        with_kube(k8s, rollout(candidate(replicas=2), lines.append), time=FakeTime())
        pods = k8s.objects("pods", "default")
    prefix = "deployment default/hello-candidate: "
    assert all(line.startswith(prefix) for line in lines)
    seen = [line.removeprefix(prefix) for line in lines]
    assert seen == [step for step in steps if step in seen]  # in order, each once
    assert seen[-1] == steps[-1] and "1/2 updated, 1/2 available" in seen
    assert len(pods) == 2 and all(p["status"]["phase"] == "Running" for p in pods)


def test_rollout_replaces_the_pods_of_the_old_template(k8s: K8sEmulator) -> None:
    """After a new image rolls out, only pods of the new template are left."""
    with_kube(k8s, rollout(candidate(), lambda _: None), time=FakeTime())
    with_kube(k8s, rollout(candidate(image="ghcr.io/slogate/hello:2.1"), lambda _: None), time=FakeTime())
    images = [p["spec"]["containers"][0]["image"] for p in k8s.objects("pods", "default")]
    assert images == ["ghcr.io/slogate/hello:2.1"]


def test_rollout_timeout_names_the_last_summary(k8s: K8sEmulator) -> None:
    """A rollout that never moves fails after the timeout (on the injected clock) naming its progress."""
    k8s.paused = True
    time = FakeTime()
    message = fails(k8s, rollout(candidate(), lambda _: None, timeout_s=3.0), time=time)
    assert message == ("deployment default/hello-candidate not ready after 3 s: "
                       "spec change not yet observed (0/1 updated, 0/1 available)")
    assert time.sleeps == [1.0, 1.0, 1.0]


def test_timeout_names_the_pods_reason_when_there_is_one(tmp_path: Path) -> None:
    """A rollout stuck on a transient pod problem (a first crash) times out naming it after the summary."""
    with k8s_emulator(tmp_path, step_s=0.3) as k8s:
        k8s.inject("default", "hello-candidate", "CrashLoopBackOff")
        with_kube(k8s, lambda kube: kube.apply(candidate(), "default"))
        while not any(s.get("restartCount") == 1 for p in k8s.objects("pods", "default")
                      for s in p["status"].get("containerStatuses") or []):
            walltime.sleep(0.01)
        k8s.paused = True
        message = fails(k8s, rollout(candidate(), lambda _: None, timeout_s=3.0), time=FakeTime())
    assert re.fullmatch(r"deployment default/hello-candidate not ready after 3 s: "
                        r"1/1 updated, 0/1 available; "
                        r"pod hello-candidate-\w+-\w+: CrashLoopBackOff: container hello restarted 1 times, "
                        r"last exit code 1 \(Error\)", message), message


@pytest.mark.parametrize("docs, inject, expected", [
    pytest.param(candidate(image="ghcr.io/slogate/hello:does-not-exist"), None,
                 r'pod hello-candidate-\w+-\w+: ImagePullBackOff: Back-off pulling image '
                 r'"ghcr.io/slogate/hello:does-not-exist"', id="image-pull-backoff"),
    pytest.param(candidate(image="ghcr.io/slogate/hello:crash"), None,
                 r"pod hello-candidate-\w+-\w+: CrashLoopBackOff: container hello restarted "
                 r"([2-9]|\d\d+) times, last exit code 1 \(Error\)", id="crash-loop"),
    pytest.param(candidate(cpu="64"), None,
                 r"pod hello-candidate-\w+-\w+: Unschedulable: 0/3 nodes are available: 3 Insufficient cpu\.",
                 id="unschedulable"),
    pytest.param(candidate(), "CreateContainerConfigError",
                 r"pod hello-candidate-\w+-\w+: CreateContainerConfigError: "
                 r'configmap "hello-config" not found', id="config-error-injected"),
])
def test_fatal_pod_states_fail_at_once(k8s: K8sEmulator, docs: list[dict[str, Any]], inject: str | None,
                                       expected: str) -> None:
    """A fatal pod state fails the rollout as soon as it is seen, long before the timeout."""
    if inject:
        k8s.inject("default", "hello-candidate", inject)
    time = FakeTime()
    message = fails(k8s, rollout(docs, lambda _: None), time=time)
    assert message.startswith("deployment default/hello-candidate: ")
    assert re.fullmatch("deployment default/hello-candidate: " + expected, message), message
    assert time.now - 1000.0 < 600.0


def test_progress_deadline_exceeded_fails_at_once(k8s: K8sEmulator) -> None:
    """Progressing=False ProgressDeadlineExceeded fails the wait with the controller's message."""
    async def body(kube: Kube) -> None:
        applied = await kube.apply(candidate(), "default")
        k8s.paused = True
        k8s.exceed_progress_deadline("default", "hello-candidate")
        await kube.wait_rollout(applied, 600.0, lambda _: None, poll_s=1.0)
    message = fails(k8s, body, time=FakeTime())
    assert message.startswith('deployment default/hello-candidate: ProgressDeadlineExceeded: ReplicaSet '
                              '"hello-candidate-')
    assert message.endswith('" has timed out progressing.')


# ---------------------------------------------------------------- RBAC, credentials, reachability


APPLY_SERVICES = {"apiGroups": [""], "resources": ["services", "pods"],
                  "verbs": ["get", "list", "create", "patch"]}


def test_rbac_denial_names_verb_resource_and_namespace(tmp_path: Path) -> None:
    """A Role without patch on deployments gets the API's 403 message and what is needed, exit class 2."""
    read_only = {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "list"]}
    with k8s_emulator(tmp_path, rules=[APPLY_SERVICES, read_only], step_s=0.02) as k8s:
        message = fails(k8s, lambda kube: kube.apply(candidate(), "default"))
        assert k8s.object("deployments", "default", "hello-candidate") is None
    assert message == (f'forbidden: deployments.apps "hello-candidate" is forbidden: {USER} cannot patch '
                       'resource "deployments" in API group "apps" in the namespace "default" '
                       "(needs patch on deployments.apps in namespace default)")


def test_apply_that_creates_needs_create_too(tmp_path: Path) -> None:
    """Server-side apply of an absent object is refused without ``create``, as the API server does."""
    patch_only = {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "patch"]}
    with k8s_emulator(tmp_path, rules=[APPLY_SERVICES, patch_only]) as k8s:
        message = fails(k8s, lambda kube: kube.apply(candidate(), "default"))
    assert message == (f'forbidden: deployments.apps "hello-candidate" is forbidden: {USER} cannot create '
                       'resource "deployments" in API group "apps" in the namespace "default" '
                       "(needs create on deployments.apps in namespace default)")


def test_rules_that_allow_enough_let_the_launch_through(tmp_path: Path) -> None:
    """The verbs the adapter uses (get, list, patch, delete, and create for an apply that creates)
    are enough."""
    rules = [{"apiGroups": ["apps"], "resources": ["deployments"],
              "verbs": ["get", "create", "patch", "delete"]},
             {"apiGroups": [""], "resources": ["services"], "verbs": ["get", "create", "patch", "delete"]},
             {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}]
    with k8s_emulator(tmp_path, rules=rules, step_s=0.02) as k8s:
        with_kube(k8s, rollout(candidate(), lambda _: None), time=FakeTime())
        applied = [DEPLOYMENT, Applied(kind="Service", name="hello-candidate", namespace="default",
                                       action="created")]
        with_kube(k8s, lambda kube: kube.delete(applied))
        assert {r.verb for r in k8s.requests} == {"get", "list", "patch", "delete"}


def test_wrong_token_is_unauthorized(k8s: K8sEmulator, tmp_path: Path) -> None:
    """A token the API server does not know gets 401, named as refused credentials."""
    bad = write_kubeconfig(tmp_path / "bad-kubeconfig", k8s.base_url, "not-the-token")
    assert fails(k8s, lambda kube: kube.apply(candidate(), "default"), kubeconfig=bad) == (
        f"unauthorized: Unauthorized (the Kubernetes API at {k8s.base_url} refused the credentials of "
        "the kubeconfig)")


def test_unreachable_api_is_named(k8s: K8sEmulator, tmp_path: Path) -> None:
    """Connection refused names the API server's address."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    closed = write_kubeconfig(tmp_path / "closed-kubeconfig", url, k8s.token)
    message = fails(k8s, lambda kube: kube.apply(candidate(), "default"), kubeconfig=closed)
    assert message.startswith(f"cannot reach the Kubernetes API at {url}: ")


# ---------------------------------------------------------------- configuration


def connect_error(kubeconfig: str | None, context: str | None, environ: dict[str, str]) -> str:
    """Return the message of the KubernetesError that connecting raises."""
    async def main() -> None:
        await (await Kube.connect(kubeconfig, context, environ=environ)).close()
    with pytest.raises(KubernetesError) as info:
        asyncio.run(main())
    return str(info.value)


def test_config_errors_name_the_file_or_context(k8s: K8sEmulator, tmp_path: Path) -> None:
    """A missing kubeconfig, an unknown context and an in-cluster pod without a token are named."""
    missing = str(tmp_path / "nope")
    assert connect_error(missing, None, {}) == f"kubeconfig {missing} not found"
    assert connect_error(None, None, {"KUBECONFIG": missing}) == f"kubeconfig {missing} not found"
    assert connect_error(str(k8s.kubeconfig), "prod", {}) == \
        f"kubeconfig {k8s.kubeconfig} has no context prod (contexts: emulator)"
    in_cluster = connect_error(None, None, {"KUBERNETES_SERVICE_HOST": "10.0.0.1",
                                            "KUBERNETES_SERVICE_PORT": "443"})
    assert in_cluster.startswith("in-cluster Kubernetes config: ")


def test_kubeconfig_from_the_environment_and_a_named_context(k8s: K8sEmulator, tmp_path: Path) -> None:
    """$KUBECONFIG is used when no file is named, and its named context picks the cluster."""
    path = write_kubeconfig(tmp_path / "env-kubeconfig", k8s.base_url, k8s.token, context="dev")

    async def main() -> str:
        async with await Kube.connect(None, "dev", environ={"KUBECONFIG": str(path)}) as kube:
            return await kube.read_secret("ghtoken", "token", "default")
    k8s.add_secret("default", "ghtoken", {"token": SECRET_VALUE})
    assert asyncio.run(main()) == SECRET_VALUE


# ---------------------------------------------------------------- secrets


@pytest.mark.parametrize("name, key, rules, expected", [
    pytest.param("ghtoken", "nope", None, "secret default/ghtoken has no key nope (keys: binary, token)",
                 id="missing-key"),
    pytest.param("other", "token", None, "secret default/other not found", id="missing-secret"),
    pytest.param("ghtoken", "binary", None, "secret default/ghtoken key binary is not UTF-8 text",
                 id="not-text"),
    pytest.param("ghtoken", "token", [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"],
                                       "resourceNames": ["other"]}],
                 f'forbidden: secrets "ghtoken" is forbidden: {USER} cannot get resource "secrets" '
                 'in API group "" in the namespace "default" (needs get on secrets in namespace default)',
                 id="forbidden"),
])
def test_read_secret_errors_never_show_the_value(tmp_path: Path, caplog: pytest.LogCaptureFixture, name: str,
                                                 key: str, rules: list[dict[str, Any]] | None,
                                                 expected: str) -> None:
    """Secret errors name the Secret, the key or the permission, and the value is in no message or log."""
    caplog.set_level(logging.DEBUG)
    with k8s_emulator(tmp_path, rules=rules) as k8s:
        k8s.add_secret("default", "ghtoken",
                       {"token": SECRET_VALUE, "binary": b"\xff\xfe" + SECRET_VALUE.encode()})
        message = fails(k8s, lambda kube: kube.read_secret(name, key, "default"))
    assert message == expected
    assert SECRET_VALUE not in message and SECRET_VALUE not in caplog.text


def test_read_secret_through_the_facade(k8s: K8sEmulator, caplog: pytest.LogCaptureFixture) -> None:
    """The sync read_kubernetes_secret returns the decoded value and logs nothing of it."""
    caplog.set_level(logging.DEBUG)
    k8s.add_secret("default", "ghtoken", {"token": SECRET_VALUE})
    read = read_kubernetes_secret("ghtoken", "token", "default", kubeconfig=str(k8s.kubeconfig))
    assert read == SECRET_VALUE
    assert SECRET_VALUE not in caplog.text


# ---------------------------------------------------------------- delete and the facade


def test_delete_removes_what_was_applied_and_ignores_absent_objects(k8s: K8sEmulator) -> None:
    """Delete removes the Deployment (its pods with it) and the Service, foreground; twice is fine."""
    with_kube(k8s, rollout(candidate(), lambda _: None), time=FakeTime())
    applied = [DEPLOYMENT,
               Applied(kind="Service", name="hello-candidate", namespace="default", action="created")]
    with_kube(k8s, lambda kube: kube.delete(applied))
    with_kube(k8s, lambda kube: kube.delete(applied))
    assert not k8s.objects("deployments") and not k8s.objects("services") and not k8s.objects("pods")
    deletes = [r for r in k8s.requests if r.verb == "delete"]
    assert [r.resource for r in deletes] == ["services", "deployments"] * 2
    assert all(r.query == "propagationPolicy=Foreground" for r in deletes)


def test_launch_and_cleanup_through_the_sync_facade(k8s: K8sEmulator) -> None:
    """launch() applies, waits and returns the cluster URL of the Service; cleanup() deletes it all."""
    plan = LaunchPlan(namespace="default", manifests=(CANDIDATE,), service=None, port=None,
                      rollout_timeout_s=30.0, kubeconfig=str(k8s.kubeconfig))
    lines: list[str] = []
    launched = launch(plan, lines.append, poll_s=0.02)
    assert launched.url == "http://hello-candidate.default.svc:8080"
    assert [a.kind for a in launched.applied] == ["Deployment", "Service"]
    assert lines[:2] == ["deployment default/hello-candidate created",
                         "service default/hello-candidate created"]
    assert "deployment default/hello-candidate: 1/1 updated, 1/1 available" in lines
    assert lines[-1] == "candidate ready at http://hello-candidate.default.svc:8080"
    cleanup(launched, plan, lines.append)
    assert not k8s.objects("deployments") and not k8s.objects("services")
    assert lines[-2:] == ["service default/hello-candidate deleted",
                          "deployment default/hello-candidate deleted"]


def test_launch_checks_the_service_before_touching_the_cluster(k8s: K8sEmulator) -> None:
    """A port the Service does not have fails before any request reaches the API server."""
    plan = LaunchPlan(namespace="default", manifests=(CANDIDATE,), service=None, port=9090,
                      kubeconfig=str(k8s.kubeconfig))
    with pytest.raises(KubernetesError, match="service hello-candidate has no port 9090"):
        launch(plan, lambda _: None)
    assert k8s.requests == []


def test_emulator_create_replace_merge_patch_and_list_as_the_api_does(k8s: K8sEmulator) -> None:
    """POST twice is 409 AlreadyExists, a stale PUT is 409 Conflict, a merge patch merges, lists
    filter by label."""
    async def main() -> tuple[list[int], str, list[str]]:
        async with await config.new_client_from_config(str(k8s.kubeconfig), persist_config=False) as api:
            return await calls(client.CoreV1Api(api))

    async def calls(core: client.CoreV1Api) -> tuple[list[int], str, list[str]]:
        body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg", "labels": {"app": "a"}},
                "data": {"one": "1"}}
        created = await core.create_namespaced_config_map("default", body)
        codes = []
        for call in (lambda: core.create_namespaced_config_map("default", body),
                     lambda: core.replace_namespaced_config_map("cfg", "default", {
                         **body, "metadata": {**body["metadata"], "resourceVersion": "1"}})):
            try:
                await call()
            except ApiException as exc:
                codes.append(exc.status)
                assert json.loads(exc.body)["kind"] == "Status"
        merged = await core.patch_namespaced_config_map("cfg", "default", {"data": {"two": "2"}})
        assert merged.metadata.resource_version != created.metadata.resource_version
        await core.create_namespaced_config_map(
            "default", {**body, "metadata": {"name": "b", "labels": {"app": "b"}}})
        listed = await core.list_namespaced_config_map("default", label_selector="app in (a, c)")
        return codes, ",".join(sorted(merged.data)), [c.metadata.name for c in listed.items]

    assert asyncio.run(main()) == ([409, 409], "one,two", ["cfg"])
    assert [r.verb for r in k8s.requests] == ["create", "create", "update", "patch", "create", "list"]


@pytest.mark.parametrize("cleanup_on_failure",
                         [pytest.param(True, id="deleted"), pytest.param(False, id="kept")])
def test_failed_launch_deletes_what_it_applied_only_when_asked(k8s: K8sEmulator, tmp_path: Path,
                                                               cleanup_on_failure: bool) -> None:
    """A launch whose rollout fails raises its reason; the candidate is deleted first if the policy
    says so."""
    broken = tmp_path / "broken.yaml"
    broken.write_text(CANDIDATE.read_text().replace("hello:2.0", "hello:does-not-exist"))
    plan = LaunchPlan(namespace="default", manifests=(broken,), service=None, port=None,
                      rollout_timeout_s=30.0, kubeconfig=str(k8s.kubeconfig))
    lines: list[str] = []
    with pytest.raises(KubernetesError, match="ImagePullBackOff"):
        launch(plan, lines.append, cleanup_on_failure=cleanup_on_failure, poll_s=0.02)
    left = [o["metadata"]["name"] for r in ("deployments", "services") for o in k8s.objects(r)]
    assert left == ([] if cleanup_on_failure else ["hello-candidate", "hello-candidate"])
    assert ("launch failed: deleting what was applied" in lines) == cleanup_on_failure
