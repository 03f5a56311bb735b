"""The Kubernetes adapter: the one module of slogate that imports kubernetes_asyncio.

It connects with a kubeconfig (or the in-cluster service account), applies manifests by
server-side apply, waits for Deployments to roll out, deletes what it applied and reads Secrets.
What the objects' status means is decided in :mod:`deploy.manifests`; this module fetches.

Invariants:

- every ``ApiException``, config error and connection error is translated here into one
  :class:`KubernetesError` with a one-line message naming the verb, resource and namespace (403),
  the namespace (404), the field (422) or the API host (unreachable);
- a Secret's value never appears in a message or a log line; the client library's DEBUG log,
  which prints response bodies, is held at INFO for that reason;
- apply is idempotent: re-applying the same manifests changes no ``resourceVersion`` and reports
  ``unchanged``; objects are owned by the field manager ``slogate``, conflicts taken over (force);
- time is passed in: ``clock`` and ``sleep`` are arguments of :meth:`Kube.connect`, so tests of
  timeouts do not wait.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

import aiohttp
import yaml
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException
from kubernetes_asyncio.config import ConfigException

from deploy.errors import KubernetesError
from deploy.manifests import (
    KINDS,
    explain_pods,
    fatal_pod_problem,
    label_selector,
    pods_of_template,
    rollout_progress,
)

T = TypeVar("T")

FIELD_MANAGER = "slogate"
_APPLY = "application/apply-patch+yaml"
_METHOD_SUFFIX = {"Deployment": "deployment", "Service": "service", "ConfigMap": "config_map",
                  "Secret": "secret", "ServiceAccount": "service_account"}

# Its DEBUG lines carry whole response bodies, Secrets included.
logging.getLogger("kubernetes_asyncio.client.rest").setLevel(logging.INFO)


@dataclass(frozen=True, slots=True, kw_only=True)
class Applied:
    """One object applied: ``action`` is ``created``, ``configured`` or ``unchanged``."""

    kind: str
    name: str
    namespace: str
    action: str


@dataclass(frozen=True, slots=True, kw_only=True)
class _Op:
    """What a request was about, for the message when it fails."""

    verb: str
    kind: str
    resource: str
    namespace: str
    name: str | None = None

    @property
    def subject(self) -> str:
        return f"{self.kind.lower()} {self.namespace}/{self.name}" if self.name \
            else f"{self.resource} in namespace {self.namespace}"


def _op(verb: str, kind: str, namespace: str, name: str | None = None) -> _Op:
    resource = KINDS[kind].qualified if kind in KINDS else f"{kind.lower()}s"
    return _Op(verb=verb, kind=kind, resource=resource, namespace=namespace, name=name)


class Kube:
    """A connection to one Kubernetes API server; use as ``async with await Kube.connect(...) as kube``."""

    def __init__(self, api: client.ApiClient, host: str, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.host = host
        self._api, self._clock, self._sleep = api, clock, sleep
        self._core, self._apps = client.CoreV1Api(api), client.AppsV1Api(api)

    @classmethod
    async def connect(cls, kubeconfig: str | None = None, context: str | None = None, *,
                      environ: Mapping[str, str] = os.environ, clock: Callable[[], float] = time.monotonic,
                      sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> Kube:
        """Return a connection configured from ``kubeconfig`` (else $KUBECONFIG), the in-cluster
        service account (when $KUBERNETES_SERVICE_HOST is set and no kubeconfig is named), or
        ``~/.kube/config``; ``context`` picks a context other than the current one."""
        configuration = client.Configuration()
        await _load_config(configuration, kubeconfig, context, environ)
        return cls(client.ApiClient(configuration), str(configuration.host), clock=clock, sleep=sleep)

    async def __aenter__(self) -> Kube:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the HTTP connections."""
        await self._api.close()

    # ---------------------------------------------------------------- requests

    def _method(self, verb: str, kind: str) -> Callable[..., Awaitable[Any]]:
        api = self._apps if kind == "Deployment" else self._core
        return getattr(api, f"{verb}_namespaced_{_METHOD_SUFFIX[kind]}")

    async def _call(self, op: _Op, call: Callable[[], Awaitable[T]], *, missing_ok: bool = False) -> T | None:
        try:
            return await call()
        except ApiException as exc:
            if missing_ok and exc.status == 404:
                return None
            raise _translate(exc, op, self.host) from exc
        except (TimeoutError, OSError, aiohttp.ClientError) as exc:
            # aiohttp is kubernetes_asyncio's transport: a dropped connection surfaces as its
            # ClientError (ServerDisconnectedError), which is not an OSError.
            why = getattr(exc, "strerror", None) or type(exc).__name__
            raise KubernetesError(f"cannot reach the Kubernetes API at {self.host}: {why}") from exc

    async def _must(self, op: _Op, call: Callable[[], Awaitable[T]]) -> T:
        result = await self._call(op, call)
        assert result is not None  # 404 raised in _call
        return result

    def _json(self, obj: Any) -> dict[str, Any]:
        """Return a client model as the API's JSON (camelCase keys, no None values)."""
        return self._api.sanitize_for_serialization(obj)

    def _content(self, obj: Any) -> dict[str, Any]:
        """Return what an apply can change: the object less its status and bookkeeping metadata.

        Not the resourceVersion alone: the controllers' status updates move it too.
        """
        content = {k: v for k, v in self._json(obj).items() if k != "status"}
        content["metadata"] = {k: v for k, v in content.get("metadata", {}).items()
                               if k not in ("resourceVersion", "managedFields")}
        return content

    # ---------------------------------------------------------------- apply and delete

    async def apply(self, docs: Sequence[Mapping[str, Any]], namespace: str) -> list[Applied]:
        """Server-side apply each document (in ``metadata.namespace``, else ``namespace``); return
        what happened."""
        applied: list[Applied] = []
        for doc in docs:
            kind, meta = str(doc["kind"]), dict(doc["metadata"])
            name, ns = str(meta["name"]), str(meta.get("namespace") or namespace)
            body = {**doc, "metadata": {**meta, "namespace": ns}}
            before = await self._call(_op("get", kind, ns, name),
                                      partial(self._method("read", kind), name, ns), missing_ok=True)
            after = await self._must(_op("patch", kind, ns, name), partial(
                self._method("patch", kind),
                name, ns, body, field_manager=FIELD_MANAGER, force=True, _content_type=_APPLY))
            if before is None:
                action = "created"
            else:
                action = "unchanged" if self._content(before) == self._content(after) else "configured"
            applied.append(Applied(kind=kind, name=name, namespace=ns, action=action))
        return applied

    async def delete(self, applied: Sequence[Applied]) -> None:
        """Delete the applied objects, last first, with foreground propagation; absent ones are fine."""
        for item in reversed(applied):
            await self._call(_op("delete", item.kind, item.namespace, item.name),
                             partial(self._method("delete", item.kind),
                                     item.name, item.namespace, propagation_policy="Foreground"),
                             missing_ok=True)

    # ---------------------------------------------------------------- rollout

    async def wait_rollout(self, applied: Sequence[Applied], timeout_s: float, log: Callable[[str], None],
                           poll_s: float = 0.5) -> None:
        """Return once every applied Deployment is ready; log each change of its progress.

        Raises at once when a pod fails in a way waiting will not cure (see
        :func:`deploy.manifests.fatal_pod_problem`) or the rollout passed its progress deadline;
        after ``timeout_s`` raises naming the last progress and why the pods are not ready.
        """
        deadline = self._clock() + timeout_s
        waiting = [a for a in applied if a.kind == "Deployment"]
        last: dict[Applied, tuple[str, str | None]] = {}
        while waiting:
            for item in list(waiting):
                seen = await self._check(item, last.get(item, ("", None))[0], log)
                if seen is None:
                    waiting.remove(item)
                else:
                    last[item] = seen
            if not waiting:
                return
            if self._clock() >= deadline:
                item = waiting[0]
                summary, why = last[item]
                raise KubernetesError(f"deployment {item.namespace}/{item.name} not ready after "
                                      f"{timeout_s:g} s: {summary}" + (f"; {why}" if why else ""))
            await self._sleep(poll_s)

    async def _check(self, item: Applied, previous: str,
                     log: Callable[[str], None]) -> tuple[str, str | None] | None:
        """Return the summary and the pods' problem of a Deployment not ready yet, None once ready."""
        label = f"deployment {item.namespace}/{item.name}"
        dep = self._json(await self._must(
            _op("get", "Deployment", item.namespace, item.name),
            lambda: self._apps.read_namespaced_deployment(item.name, item.namespace)))
        progress = rollout_progress(dep)
        if progress.summary != previous:
            log(f"{label}: {progress.summary}")
        if progress.ready:
            return None
        listed = await self._must(_op("list", "Pod", item.namespace), lambda: self._core.list_namespaced_pod(
            item.namespace, label_selector=label_selector(dep)))
        pods = pods_of_template(dep, self._json(listed).get("items") or [])
        if progress.failed:
            why = explain_pods(pods)
            raise KubernetesError(f"{label}: {progress.failed}" + (f"; {why}" if why else ""))
        fatal = fatal_pod_problem(pods)
        if fatal:
            raise KubernetesError(f"{label}: {fatal}")
        return progress.summary, explain_pods(pods)

    async def read_deployment(self, name: str, namespace: str) -> dict[str, Any] | None:
        """Return the Deployment ``namespace/name`` as the API's JSON, or None when there is none."""
        found = await self._call(_op("get", "Deployment", namespace, name),
                                 lambda: self._apps.read_namespaced_deployment(name, namespace),
                                 missing_ok=True)
        return None if found is None else self._json(found)

    # ---------------------------------------------------------------- secrets

    async def read_secret(self, name: str, key: str, namespace: str) -> str:
        """Return the value under ``key`` of Secret ``namespace/name``, decoded (UTF-8 text)."""
        secret = await self._must(_op("get", "Secret", namespace, name),
                                  lambda: self._core.read_namespaced_secret(name, namespace))
        data = secret.data or {}
        if key not in data:
            keys = ", ".join(sorted(data)) or "none"
            raise KubernetesError(f"secret {namespace}/{name} has no key {key} (keys: {keys})")
        try:
            return base64.b64decode(data[key], validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise KubernetesError(f"secret {namespace}/{name} key {key} is not UTF-8 text") from None


# ---------------------------------------------------------------- configuration and errors


async def _load_config(configuration: client.Configuration, kubeconfig: str | None, context: str | None,
                       environ: Mapping[str, str]) -> None:
    path = kubeconfig or environ.get("KUBECONFIG")
    if not path and environ.get("KUBERNETES_SERVICE_HOST"):
        try:
            config.load_incluster_config(client_configuration=configuration)
        except ConfigException as exc:
            raise KubernetesError(f"in-cluster Kubernetes config: {exc}") from exc
        return
    path = path or os.path.expanduser("~/.kube/config")
    if not any(os.path.isfile(os.path.expanduser(p)) for p in path.split(os.pathsep) if p):
        hint = "" if kubeconfig or environ.get("KUBECONFIG") else \
            " (name one, set KUBECONFIG, or run inside the cluster)"
        raise KubernetesError(f"kubeconfig {path} not found{hint}")
    where = f"kubeconfig {path}" + (f" context {context}" if context else "")
    try:
        if context is not None:
            contexts = [c["name"] for c in config.list_kube_config_contexts(path)[0]]
            if context not in contexts:
                raise KubernetesError(f"kubeconfig {path} has no context {context} "
                                      f"(contexts: {', '.join(contexts) or 'none'})")
        await config.load_kube_config(config_file=path, context=context, client_configuration=configuration,
                                      persist_config=False)
    except (ConfigException, yaml.YAMLError, OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise KubernetesError(f"{where}: {' '.join(str(exc).split()) or type(exc).__name__}") from exc


def _status(exc: ApiException) -> dict[str, Any]:
    """Return the ``Status`` object of a failed response, or {} when the body is not one."""
    try:
        body = json.loads(exc.body or "")
    except (TypeError, ValueError):
        return {}
    return body if isinstance(body, dict) else {}


def _translate(exc: ApiException, op: _Op, host: str) -> KubernetesError:
    """Return the one-line error for a failed request."""
    status = _status(exc)
    message = " ".join(str(status.get("message") or exc.reason or "").split())
    details = status.get("details") or {}
    if exc.status == 401:
        return KubernetesError(f"unauthorized: {message} (the Kubernetes API at {host} refused the "
                               "credentials of the kubeconfig)")
    if exc.status == 403:  # the authorizer names the verb it checked (create, for an apply that creates)
        checked = re.search(r"cannot (\S+) resource", message)
        return KubernetesError(f"forbidden: {message} (needs {checked.group(1) if checked else op.verb} "
                               f"on {op.resource} in namespace {op.namespace})")
    if exc.status == 404 and details.get("kind") == "namespaces":
        return KubernetesError(f"namespace {details.get('name') or op.namespace} not found")
    if exc.status == 404:
        return KubernetesError(f"{op.subject} not found")
    if exc.status == 409:
        return KubernetesError(f"conflict on {op.subject}: {message}")
    if exc.status == 422:
        causes = "; ".join(" ".join(f"{c.get('field', '?')}: {c.get('message', '')}".split())
                           for c in details.get("causes") or [])
        return KubernetesError(f"invalid {op.subject}: {causes or message}")
    return KubernetesError(f"{op.verb} {op.subject}: HTTP {exc.status} {exc.reason or ''}".rstrip()
                           + (f": {message}" if message and message != exc.reason else ""))
