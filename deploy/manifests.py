"""Manifests of the candidate and what its Kubernetes objects say, as plain values (no client here).

It loads the YAML files a dark launch applies, picks the Service that load is sent to, and reads
a Deployment's and its pods' status (JSON dicts, as the API server sends them) into one-line
answers: is the rollout done, how far it is, and why its pods are not ready.

Invariants:

- pure: nothing here imports kubernetes_asyncio or does I/O beyond reading the manifest files;
- every problem with a manifest raises :class:`KubernetesError` naming the file and the document
  (1-based, counting the empty ones too, as an editor shows them);
- only the kinds in :data:`KINDS` are accepted: an unknown kind is an error, never skipped;
- messages are one line: status messages from the cluster are folded onto one line.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml.error import YAMLError

from analysis.results import read_regular_text
from analysis.safe_yaml import bounded_yaml
from deploy.errors import KubernetesError


@dataclass(frozen=True, slots=True, kw_only=True)
class ResourceKind:
    """A kind the adapter applies: its apiVersion and its resource (plural) in the API."""

    api_version: str
    resource: str

    @property
    def group(self) -> str:
        """Return the API group ("" for the core group)."""
        return self.api_version.rpartition("/")[0]

    @property
    def qualified(self) -> str:
        """Return the resource as RBAC and kubectl name it: ``deployments.apps``, ``services``."""
        return f"{self.resource}.{self.group}" if self.group else self.resource


KINDS: Mapping[str, ResourceKind] = {
    "Deployment": ResourceKind(api_version="apps/v1", resource="deployments"),
    "Service": ResourceKind(api_version="v1", resource="services"),
    "ConfigMap": ResourceKind(api_version="v1", resource="configmaps"),
    "Secret": ResourceKind(api_version="v1", resource="secrets"),
    "ServiceAccount": ResourceKind(api_version="v1", resource="serviceaccounts"),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class LaunchPlan:
    """What to dark-launch and where: manifests applied into ``namespace``, load sent to ``service``.

    Example::

        LaunchPlan(namespace="staging", manifests=(Path("examples/hello/candidate.yaml"),),
                   service=None, port=None)  # the only Service in the file, its first port
    """

    namespace: str
    manifests: tuple[Path, ...]
    service: str | None
    port: int | None
    rollout_timeout_s: float = 120.0
    kubeconfig: str | None = None
    context: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Rollout:
    """How far a Deployment's rollout is: ``ready``, a one-line ``summary``, ``failed`` when it gave up."""

    ready: bool
    summary: str
    failed: str | None = None


# ---------------------------------------------------------------- manifests


def load_manifests(paths: Sequence[Path]) -> list[dict[str, Any]]:
    """Return the documents of the YAML files ``paths``, in order, skipping empty documents."""
    docs: list[dict[str, Any]] = []
    for path in paths:
        try:
            text = read_regular_text(path)
        except (OSError, UnicodeDecodeError) as exc:
            raise KubernetesError(f"cannot read manifest {path}: {getattr(exc, 'strerror', None) or exc}") \
                from exc
        try:
            loaded = list(bounded_yaml().load_all(text))
        except YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark is not None else ""
            raise KubernetesError(f"manifest {path}: invalid YAML{where}: "
                                  f"{getattr(exc, 'problem', None) or exc}") from exc
        for index, doc in enumerate(loaded, start=1):
            if doc is not None:
                docs.append(_checked(doc, f"manifest {path} document {index}"))
    return docs


def _checked(doc: Any, where: str) -> dict[str, Any]:
    if not isinstance(doc, dict):
        raise KubernetesError(f"{where}: expected a mapping, got {type(doc).__name__}")
    meta = doc.get("metadata")
    meta = meta if isinstance(meta, dict) else {}
    for field, value in (("apiVersion", doc.get("apiVersion")), ("kind", doc.get("kind")),
                         ("metadata.name", meta.get("name"))):
        if not isinstance(value, str) or not value:
            raise KubernetesError(f"{where}: {field} is missing")
    kind = KINDS.get(doc["kind"])
    if kind is None:
        raise KubernetesError(f"{where}: kind {doc['kind']} is not handled "
                              f"(handled: {', '.join(KINDS)})")
    if doc["apiVersion"] != kind.api_version:
        raise KubernetesError(f"{where}: {doc['kind']} has apiVersion {doc['apiVersion']}, "
                              f"expected {kind.api_version}")
    namespace = meta.get("namespace")
    if namespace is not None and (not isinstance(namespace, str) or not namespace):
        raise KubernetesError(f"{where}: metadata.namespace must be a non-empty string")
    return doc


def service_port(docs: Iterable[Mapping[str, Any]], service: str | None,
                 port: int | None) -> tuple[str, int]:
    """Return the Service that load is sent to and its port.

    Without ``service`` the manifests must hold exactly one Service; without ``port`` its first
    port is taken. A named service or port that the manifests do not have is an error.
    """
    services = {d["metadata"]["name"]: d for d in docs if d.get("kind") == "Service"}
    if service is None:
        if len(services) != 1:
            found = f"{len(services)} Services ({', '.join(services)})" if services else "no Service"
            raise KubernetesError(f"the manifests hold {found}: name the one to load")
        service = next(iter(services))
    elif service not in services:
        raise KubernetesError(f"service {service} is not in the manifests "
                              f"(Services there: {', '.join(services) or 'none'})")
    ports = [p.get("port") for p in (services[service].get("spec") or {}).get("ports") or []]
    if not ports:
        raise KubernetesError(f"service {service} has no ports")
    if port is None:
        return service, int(ports[0])
    if port not in ports:
        raise KubernetesError(f"service {service} has no port {port} "
                              f"(ports: {', '.join(str(p) for p in ports)})")
    return service, port


def service_url(namespace: str, service: str, port: int) -> str:
    """Return the in-cluster URL of ``service``: ``http://<service>.<namespace>.svc:<port>``."""
    return f"http://{service}.{namespace}.svc:{port}"


def label_selector(deployment: Mapping[str, Any]) -> str:
    """Return the Deployment's ``spec.selector`` as a label-selector query (``app=hello,version=2.0``)."""
    selector = (deployment.get("spec") or {}).get("selector") or {}
    terms = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], ",".join(expr.get("values") or [])
        terms.append({"In": f"{key} in ({values})", "NotIn": f"{key} notin ({values})",
                      "Exists": key, "DoesNotExist": f"!{key}"}[op])
    return ",".join(terms)


# ---------------------------------------------------------------- rollout and pods


def rollout_progress(deployment: Mapping[str, Any]) -> Rollout:
    """Return how far the rollout of ``deployment`` (the API object as JSON) is.

    Ready as ``kubectl rollout status`` has it: the controller saw the latest spec
    (observedGeneration >= generation), every wanted replica runs the new template and is
    available, and no old replica is left. Failed when the Progressing condition says
    ProgressDeadlineExceeded.
    """
    meta, spec = deployment.get("metadata") or {}, deployment.get("spec") or {}
    status = deployment.get("status") or {}
    want = int(spec.get("replicas", 1))
    updated, available = int(status.get("updatedReplicas", 0)), int(status.get("availableReplicas", 0))
    old = max(int(status.get("replicas", 0)) - updated, 0)
    summary = f"{updated}/{want} updated, {available}/{want} available"
    if old:
        summary += f", {old} old pending termination"
    observed = int(status.get("observedGeneration", 0)) >= int(meta.get("generation", 0))
    if not observed:
        summary = f"spec change not yet observed ({summary})"
    for cond in status.get("conditions") or []:
        if cond.get("type") == "Progressing" and cond.get("status") == "False" \
                and cond.get("reason") == "ProgressDeadlineExceeded":
            return Rollout(ready=False, summary=summary,
                           failed=_one_line(f"ProgressDeadlineExceeded: {cond.get('message', '')}"))
    ready = observed and updated == want and available == want and old == 0
    return Rollout(ready=ready, summary=summary)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Problem:
    fatal: bool
    text: str


def explain_pods(pods: Sequence[Mapping[str, Any]]) -> str | None:
    """Return why the pods are not ready, in one line, or None when nothing is wrong yet.

    The first fatal problem is named first (see :func:`fatal_pod_problem`); otherwise the first
    transient one (ErrImagePull, a first crash, a pod waiting for a node). Waiting states that
    are part of a normal start (ContainerCreating, PodInitializing) are not problems.
    """
    problems = sorted(_problems(pods), key=lambda p: not p.fatal)
    return problems[0].text if problems else None


def fatal_pod_problem(pods: Sequence[Mapping[str, Any]]) -> str | None:
    """Return the first problem that waiting will not cure, or None.

    Fatal, so the rollout fails at once instead of running into its timeout:

    - ImagePullBackOff, InvalidImageName: the kubelet already failed to pull (ErrImagePull came
      first and was retried) or cannot even parse the name; a wrong tag does not fix itself.
      A lone ErrImagePull is transient: one registry hiccup is retried by the kubelet.
    - CrashLoopBackOff with restartCount >= 2: the container started and exited more than once
      with the same spec; one restart may be a dependency that was not up yet.
    - CreateContainerConfigError: a missing ConfigMap/Secret key; everything slogate applies was
      applied before the wait, so nothing will create it meanwhile.
    - Unschedulable: no node fits the pod (requests, selectors, taints). A cluster autoscaler
      might add one, but a dark launch should not wait minutes for it; the message says why.
    """
    return next((p.text for p in _problems(pods) if p.fatal), None)


_FATAL_WAITING = frozenset({"ImagePullBackOff", "InvalidImageName", "CreateContainerConfigError"})
_TRANSIENT_WAITING = frozenset({"ErrImagePull", "CreateContainerError", "RunContainerError"})


def _problems(pods: Sequence[Mapping[str, Any]]) -> list[_Problem]:
    found: list[_Problem] = []
    for pod in pods:
        name = (pod.get("metadata") or {}).get("name", "?")
        status = pod.get("status") or {}
        for cond in status.get("conditions") or []:
            if cond.get("type") == "PodScheduled" and cond.get("status") == "False" \
                    and cond.get("reason") == "Unschedulable":
                found.append(_Problem(fatal=True, text=_one_line(
                    f"pod {name}: Unschedulable: {cond.get('message', '')}")))
        for container in [*(status.get("initContainerStatuses") or []),
                          *(status.get("containerStatuses") or [])]:
            problem = _container_problem(name, container)
            if problem is not None:
                found.append(problem)
    return found


def _container_problem(pod: str, container: Mapping[str, Any]) -> _Problem | None:
    waiting = (container.get("state") or {}).get("waiting") or {}
    reason, message = waiting.get("reason"), waiting.get("message", "")
    if reason == "CrashLoopBackOff":
        restarts = int(container.get("restartCount", 0))
        last = ((container.get("lastState") or {}).get("terminated")) or {}
        text = (f"pod {pod}: CrashLoopBackOff: container {container.get('name', '?')} "
                f"restarted {restarts} times")
        if "exitCode" in last:
            text += f", last exit code {last['exitCode']}"
            text += f" ({last['reason']})" if last.get("reason") else ""
        return _Problem(fatal=restarts >= 2, text=text)
    if reason in _FATAL_WAITING or reason in _TRANSIENT_WAITING:
        text = f"pod {pod}: {reason}" + (f": {message}" if message else "")
        return _Problem(fatal=reason in _FATAL_WAITING, text=_one_line(text))
    return None


def pods_of_template(deployment: Mapping[str, Any],
                     pods: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Return the pods that run the Deployment's current images (old, replaced pods left out).

    The selector matches the pods of every revision; a pod of a broken revision that is being
    replaced must not fail the rollout of the fixed one.
    """
    def images(pod_spec: Mapping[str, Any]) -> list[str]:
        return [str(c.get("image")) for c in pod_spec.get("containers") or []]

    template = (((deployment.get("spec") or {}).get("template") or {}).get("spec")) or {}
    want = images(template)
    return [dict(p) for p in pods if images(p.get("spec") or {}) == want]


def _one_line(text: str) -> str:
    return " ".join(text.split())
