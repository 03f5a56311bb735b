"""An in-process Kubernetes API server emulator, for kubernetes_asyncio tests.

It speaks the real REST/JSON protocol on 127.0.0.1 (an aiohttp app on an event loop of its own,
in a daemon thread) and writes a kubeconfig with a bearer token pointing at itself, so
kubernetes_asyncio runs unchanged against it. Objects live in memory; a small deployment
controller moves a Deployment's status along after each spec change and creates its Pods.

Served: ``/api``, ``/apis``; v1 namespaces (get), services, pods, secrets, configmaps,
serviceaccounts, events; apps/v1 deployments. Verbs: get, list (``labelSelector``), create,
update (PUT), patch (server-side apply ``application/apply-patch+yaml`` creating when absent;
merge and strategic-merge patches as JSON merge patches), delete.

Invariants:

- every request is recorded (method, path, query, verb, resource) before anything else happens,
  so a test sees the refused ones too;
- errors are ``Status`` objects as the real API server writes them (kind Status, status Failure,
  message, reason, code, details); 403 messages follow the RBAC authorizer word for word;
- ``resourceVersion`` grows on every write that changes an object and never otherwise (an
  identical apply is a no-op); ``generation`` grows only when ``spec`` changes;
- the controller steps every ``step_s`` seconds: observedGeneration first, then one new pod
  created, then that pod ready and one old pod removed, until the wanted replicas run the new
  template. Faults come from the image (``does-not-exist`` -> ImagePullBackOff, ``crash`` ->
  CrashLoopBackOff with growing restarts), from requests larger than a node (Unschedulable), or
  from :meth:`K8sEmulator.inject`; a faulty pod halts the rollout, as a real one does;
- RBAC ``rules`` (PolicyRule dicts), when given, apply in every namespace (one Role bound in each);
  a server-side apply that creates its object needs ``create`` as well as ``patch``, as in the
  real API server.

Usage::

    with k8s_emulator(tmp_path, step_s=0.02) as k8s:
        await Kube.connect(str(k8s.kubeconfig), None)
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import copy
import dataclasses
import datetime
import hashlib
import json
import re
import threading
import uuid
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from tests.support.servers import Served, _in_thread

TOKEN = "k8s-emulator-token-0123456789abcdef"
USER = "system:serviceaccount:default:slogate"
FAULTS = ("ImagePullBackOff", "CrashLoopBackOff", "Unschedulable", "CreateContainerConfigError")
_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # the one Kubernetes uses for generated names
_DNS1123 = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


@dataclass(frozen=True, slots=True, kw_only=True)
class _Resource:
    group: str
    version: str
    kind: str

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


RESOURCES: Mapping[str, _Resource] = {
    "pods": _Resource(group="", version="v1", kind="Pod"),
    "services": _Resource(group="", version="v1", kind="Service"),
    "secrets": _Resource(group="", version="v1", kind="Secret"),
    "configmaps": _Resource(group="", version="v1", kind="ConfigMap"),
    "serviceaccounts": _Resource(group="", version="v1", kind="ServiceAccount"),
    "events": _Resource(group="", version="v1", kind="Event"),
    "deployments": _Resource(group="apps", version="v1", kind="Deployment"),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Recorded:
    """One request as the emulator received it; ``verb`` is the RBAC verb (get, list, patch, ...)."""

    method: str
    path: str
    query: str
    verb: str
    resource: str
    namespace: str | None
    name: str | None
    content_type: str
    authorized: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class _Route:
    verb: str
    group: str
    version: str
    resource: str
    namespace: str | None
    name: str | None


@dataclass(slots=True, kw_only=True)
class _Failure:
    status: int
    message: str
    remaining: int


class _StatusError(Exception):
    """A request refused with a ``Status`` body."""

    def __init__(self, code: int, reason: str, message: str,
                 details: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, dict(details or {})


def status_body(code: int, reason: str, message: str,
                details: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Return a failure ``Status`` object as the API server writes it."""
    body: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                            "message": message, "reason": reason, "code": code}
    if details:
        body["details"] = dict(details)
    return body


def write_kubeconfig(path: Path, server: str, token: str, *, context: str = "emulator",
                     namespace: str = "default") -> Path:
    """Write a kubeconfig whose current context reaches ``server`` with bearer ``token``; return its path."""
    config = {"apiVersion": "v1", "kind": "Config", "current-context": context,
              "clusters": [{"name": "emulator", "cluster": {"server": server}}],
              "users": [{"name": "slogate", "user": {"token": token}}],
              "contexts": [{"name": context, "context": {"cluster": "emulator", "user": "slogate",
                                                         "namespace": namespace}}]}
    path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")  # JSON is YAML
    return path


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _encode(data: bytes, length: int) -> str:
    return "".join(_ALPHABET[b % len(_ALPHABET)] for b in data[:length])


def template_hash(template: Mapping[str, Any]) -> str:
    """Return the pod-template-hash of a pod template (10 characters from Kubernetes' alphabet)."""
    return _encode(hashlib.sha256(json.dumps(template, sort_keys=True).encode()).digest(), 10)


def _quantity(text: Any, *, memory: bool) -> float:
    """Return a resource quantity in cores (cpu) or bytes (memory)."""
    value = str(text)
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50,
             "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}
    for suffix, factor in sorted(units.items(), key=lambda kv: -len(kv[0])):
        if value.endswith(suffix) and (memory or suffix == "m"):
            return float(value[: -len(suffix)]) * factor
    return float(value)


def _selector_matches(selector: str, labels: Mapping[str, str]) -> bool:
    """Return whether ``labels`` match a label-selector query (=, ==, !=, in, notin, exists, !exists)."""
    for term in filter(None, (t.strip() for t in re.split(r",(?![^()]*\))", selector))):
        sets = re.fullmatch(r"(\S+)\s+(in|notin)\s+\((.*)\)", term)
        if sets:
            key, op, values = sets.group(1), sets.group(2), {v.strip() for v in sets.group(3).split(",")}
            if (labels.get(key) in values) != (op == "in"):
                return False
        elif "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key.strip()) == value.strip():
                return False
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            if labels.get(key.strip()) != value.strip():
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


def _merge_patch(target: Any, patch: Any) -> Any:
    """Return ``target`` with the JSON merge patch ``patch`` (RFC 7386) applied."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = _merge_patch(out.get(key), value)
    return out


def _allowed(rules: Sequence[Mapping[str, Any]], verb: str, group: str, resource: str,
             name: str | None) -> bool:
    """Return whether one of the RBAC PolicyRules allows ``verb`` on ``resource`` (named ``name``)."""
    for rule in rules:
        names = rule.get("resourceNames") or []
        if any(g in ("*", group) for g in rule.get("apiGroups") or []) \
                and any(r in ("*", resource) for r in rule.get("resources") or []) \
                and any(v in ("*", verb) for v in rule.get("verbs") or []) \
                and (not names or name in names):
            return True
    return False


class K8sEmulator:
    """The emulated API server: namespaced objects in memory and a deployment controller."""

    def __init__(self, root: Path, *, token: str = TOKEN, user: str = USER,
                 rules: Sequence[Mapping[str, Any]] | None = None, step_s: float = 0.05,
                 namespaces: Sequence[str] = ("default",), nodes: int = 3, node_cpu: float = 4.0,
                 node_memory: str = "16Gi") -> None:
        self.root, self.token, self.user = root, token, user
        self.rules = None if rules is None else [dict(r) for r in rules]
        self.step_s, self.paused = step_s, False
        self.nodes, self.node_cpu = nodes, node_cpu
        self.node_memory = _quantity(node_memory, memory=True)
        self.base_url = ""
        self.kubeconfig = root / "kubeconfig"
        self.requests: list[Recorded] = []
        self._lock = threading.RLock()
        self._namespaces: dict[str, dict[str, Any]] = {}
        self._objects: dict[str, dict[tuple[str, str], dict[str, Any]]] = {r: {} for r in RESOURCES}
        self._faults: dict[tuple[str, str], str] = {}
        self._failures: dict[tuple[str, str], list[_Failure]] = {}
        self._rollouts: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._rv = 100
        self._names = 0
        for ns in namespaces:
            self.add_namespace(ns)

    # ---------------------------------------------------------------- set-up and test helpers

    def _next_rv(self) -> str:
        self._rv += 1
        return str(self._rv)

    def _new_meta(self, name: str, namespace: str | None) -> dict[str, Any]:
        meta: dict[str, Any] = {"name": name, "uid": str(uuid.uuid4()), "resourceVersion": self._next_rv(),
                                "creationTimestamp": _now()}
        if namespace is not None:
            meta["namespace"] = namespace
        return meta

    def add_namespace(self, name: str) -> None:
        """Create namespace ``name`` (Active)."""
        with self._lock:
            self._namespaces[name] = {"kind": "Namespace", "apiVersion": "v1",
                                      "metadata": self._new_meta(name, None), "status": {"phase": "Active"}}

    def add_secret(self, namespace: str, name: str, data: Mapping[str, str | bytes]) -> None:
        """Create Secret ``namespace/name`` holding ``data`` (stored base64-encoded, as the API does)."""
        encoded = {k: base64.b64encode(v.encode() if isinstance(v, str) else v).decode()
                   for k, v in data.items()}
        with self._lock:
            self._objects["secrets"][(namespace, name)] = {
                "kind": "Secret", "apiVersion": "v1", "metadata": self._new_meta(name, namespace),
                "type": "Opaque", "data": encoded}

    def object(self, resource: str, namespace: str, name: str) -> dict[str, Any] | None:
        """Return a copy of object ``namespace/name`` of ``resource`` (e.g. ``"deployments"``), or None."""
        with self._lock:
            found = self._objects[resource].get((namespace, name))
            return copy.deepcopy(found) if found is not None else None

    def objects(self, resource: str, namespace: str | None = None) -> list[dict[str, Any]]:
        """Return copies of every object of ``resource``, in ``namespace`` when given."""
        with self._lock:
            return [copy.deepcopy(o) for (ns, _), o in sorted(self._objects[resource].items())
                    if namespace in (None, ns)]

    def inject(self, namespace: str, deployment: str, fault: str) -> None:
        """Make the pods the controller creates for ``deployment`` from now on fail with ``fault``
        (see FAULTS)."""
        assert fault in FAULTS, fault
        with self._lock:
            self._faults[(namespace, deployment)] = fault

    def exceed_progress_deadline(self, namespace: str, deployment: str) -> None:
        """Mark ``deployment`` Progressing=False ProgressDeadlineExceeded, as the controller does after
        ``progressDeadlineSeconds`` without progress."""
        with self._lock:
            dep = self._objects["deployments"][(namespace, deployment)]
            rs = f"{deployment}-{template_hash(dep['spec']['template'])}"
            self._condition(dep, "Progressing", "False", "ProgressDeadlineExceeded",
                            f'ReplicaSet "{rs}" has timed out progressing.')
            dep["metadata"]["resourceVersion"] = self._next_rv()

    def fail_next(self, verb: str, resource: str, count: int = 1, *, status: int = 500,
                  message: str = "Internal error occurred: etcdserver: request timed out") -> None:
        """Make the next ``count`` requests of ``verb`` on ``resource`` answer ``status`` with ``message``."""
        with self._lock:
            self._failures.setdefault((verb, resource), []).append(
                _Failure(status=status, message=message, remaining=count))

    def calls(self, verb: str, resource: str) -> int:
        """Return how many ``verb`` requests on ``resource`` were received (refused ones included)."""
        return sum(1 for r in self.requests if (r.verb, r.resource) == (verb, resource))

    # ---------------------------------------------------------------- routing

    def app(self) -> web.Application:
        """Return the aiohttp application serving the emulated API."""
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        return app

    @staticmethod
    def _route(method: str, path: str, query: Mapping[str, str]) -> _Route | None:
        parts = path.strip("/").split("/")
        if parts[:2] == ["api", "v1"]:
            group, version, rest = "", "v1", parts[2:]
        elif len(parts) >= 3 and parts[0] == "apis":
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            return None
        namespace: str | None = None
        if rest[:1] == ["namespaces"] and len(rest) >= 3:
            namespace, rest = rest[1], rest[2:]
        elif rest[:1] == ["namespaces"] and len(rest) == 2:
            namespace, rest = rest[1], ["namespaces", rest[1]]
        if not rest or len(rest) > 2:
            return None
        resource, name = rest[0], (rest[1] if len(rest) == 2 else None)
        known = RESOURCES.get(resource)
        if resource != "namespaces" and (known is None or (known.group, known.version) != (group, version)):
            return None
        if name is None:
            listing = "watch" if query.get("watch") in ("true", "1") else "list"
            verb = {"GET": listing, "POST": "create"}.get(method)
        else:
            verb = {"GET": "get", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(method)
        if verb is None:
            return None
        return _Route(verb=verb, group=group, version=version, resource=resource, namespace=namespace,
                      name=name)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        if request.path in ("/api", "/apis"):
            route = None
        else:
            route = self._route(request.method, request.path, request.query)
        authorized = request.headers.get("Authorization", "") == f"Bearer {self.token}"
        self.requests.append(Recorded(
            method=request.method, path=request.path, query=request.query_string,
            verb=route.verb if route else request.method.lower(), resource=route.resource if route else "",
            namespace=route.namespace if route else None, name=route.name if route else None,
            content_type=request.headers.get("Content-Type", ""), authorized=authorized))
        try:
            if not authorized:
                raise _StatusError(401, "Unauthorized", "Unauthorized")
            if request.path in ("/api", "/apis"):
                return web.json_response(self._discovery(request.path))
            if route is None:
                raise _StatusError(404, "NotFound", "the server could not find the requested resource")
            with self._lock:
                self._take_failure(route)
                self._authorize(route)
                out, code = self._dispatch(route, request, body)
            return web.json_response(out, status=code)
        except _StatusError as exc:
            return web.json_response(status_body(exc.code, exc.reason, exc.message, exc.details),
                                     status=exc.code)

    @staticmethod
    def _discovery(path: str) -> dict[str, Any]:
        if path == "/api":
            return {"kind": "APIVersions", "versions": ["v1"],
                    "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]}
        apps = {"groupVersion": "apps/v1", "version": "v1"}
        return {"kind": "APIGroupList", "apiVersion": "v1",
                "groups": [{"name": "apps", "versions": [apps], "preferredVersion": apps}]}

    def _take_failure(self, route: _Route) -> None:
        queue = self._failures.get((route.verb, route.resource), [])
        if queue:
            failure = queue[0]
            failure.remaining -= 1
            if failure.remaining <= 0:
                queue.pop(0)
            reasons = {500: "InternalError", 503: "ServiceUnavailable", 429: "TooManyRequests",
                       409: "Conflict", 403: "Forbidden", 404: "NotFound"}
            raise _StatusError(failure.status, reasons.get(failure.status, "Unknown"), failure.message)

    def _authorize(self, route: _Route) -> None:
        if self.rules is None or _allowed(self.rules, route.verb, route.group, route.resource, route.name):
            return
        qualified = f"{route.resource}.{route.group}" if route.group else route.resource
        subject = f'{qualified} "{route.name}"' if route.name else qualified
        message = (f'{subject} is forbidden: User "{self.user}" cannot {route.verb} resource '
                   f'"{route.resource}" in API group "{route.group}"')
        message += f' in the namespace "{route.namespace}"' if route.namespace else " at the cluster scope"
        details: dict[str, Any] = {"group": route.group, "kind": route.resource}
        if route.name:
            details["name"] = route.name
        raise _StatusError(403, "Forbidden", message, details)

    # ---------------------------------------------------------------- verbs

    def _dispatch(self, route: _Route, request: web.Request, body: bytes) -> tuple[dict[str, Any], int]:
        if route.resource == "namespaces":
            found = self._namespaces.get(route.name or "")
            if route.verb != "get" or found is None:
                raise self._not_found("namespaces", "", route.name or "")
            return copy.deepcopy(found), 200
        if route.verb == "list":
            return self._list(route, request.query.get("labelSelector", "")), 200
        if route.verb == "watch":
            raise _StatusError(405, "MethodNotAllowed", "watch is not served by the emulator; poll instead")
        assert route.namespace is not None
        if route.verb in ("create", "update", "patch") and route.namespace not in self._namespaces:
            raise self._not_found("namespaces", "", route.namespace)
        key = (route.namespace, route.name or "")
        store = self._objects[route.resource]
        if route.verb == "get":
            if key not in store:
                raise self._not_found(route.resource, route.group, key[1])
            return copy.deepcopy(store[key]), 200
        if route.verb == "delete":
            return self._delete(route, key), 200
        if route.verb == "patch":
            return self._patch(route, request, body)
        return self._create_or_update(route, body)

    def _not_found(self, resource: str, group: str, name: str) -> _StatusError:
        qualified = f"{resource}.{group}" if group else resource
        details = {"name": name, "kind": resource, **({"group": group} if group else {})}
        return _StatusError(404, "NotFound", f'{qualified} "{name}" not found', details)

    def _list(self, route: _Route, selector: str) -> dict[str, Any]:
        res = RESOURCES[route.resource]
        items = [copy.deepcopy(o) for (ns, _), o in sorted(self._objects[route.resource].items())
                 if route.namespace in (None, ns)
                 and _selector_matches(selector, o["metadata"].get("labels") or {})]
        return {"kind": f"{res.kind}List", "apiVersion": res.api_version,
                "metadata": {"resourceVersion": str(self._rv)}, "items": items}

    def _create_or_update(self, route: _Route, body: bytes) -> tuple[dict[str, Any], int]:
        try:
            desired = json.loads(body)
        except ValueError as exc:
            raise _StatusError(400, "BadRequest",
                               f"the body of the request was in an unknown format: {exc}") from exc
        store = self._objects[route.resource]
        if route.verb == "create":
            name = str((desired.get("metadata") or {}).get("name", ""))
            if (route.namespace, name) in store:
                res = RESOURCES[route.resource]
                qualified = f"{route.resource}.{res.group}" if res.group else route.resource
                raise _StatusError(409, "AlreadyExists", f'{qualified} "{name}" already exists',
                                   {"name": name, "group": res.group, "kind": route.resource})
            return self._write(route, name, desired, None), 201
        assert route.name is not None and route.namespace is not None
        existing = store.get((route.namespace, route.name))
        if existing is None:
            raise self._not_found(route.resource, route.group, route.name)
        wanted_rv = (desired.get("metadata") or {}).get("resourceVersion")
        if wanted_rv and wanted_rv != existing["metadata"]["resourceVersion"]:
            raise _StatusError(409, "Conflict", f'Operation cannot be fulfilled on {route.resource} '
                               f'"{route.name}": the object has been modified; please apply your changes '
                               "to the latest version and try again")
        return self._write(route, route.name, desired, existing), 200

    def _patch(self, route: _Route, request: web.Request, body: bytes) -> tuple[dict[str, Any], int]:
        assert route.name is not None and route.namespace is not None
        content_type = request.headers.get("Content-Type", "").split(";")[0].strip()
        existing = self._objects[route.resource].get((route.namespace, route.name))
        if content_type == "application/apply-patch+yaml":
            if not request.query.get("fieldManager"):
                raise _StatusError(422, "Invalid", "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: "
                                   "Required value: is required for apply patch",
                                   {"causes": [{"reason": "FieldValueRequired", "field": "fieldManager",
                                                "message": "Required value: is required for apply patch"}]})
            try:
                desired = YAML(typ="safe", pure=True).load(body.decode())
            except (YAMLError, UnicodeDecodeError) as exc:
                raise _StatusError(400, "BadRequest", f"error decoding YAML: {exc}") from exc
            self._check_apply_target(route, desired)
            if existing is None:  # an apply that creates is authorized as a create too
                self._authorize(dataclasses.replace(route, verb="create"))
            return self._write(route, route.name, desired, existing), 201 if existing is None else 200
        if content_type in ("application/merge-patch+json", "application/strategic-merge-patch+json"):
            if existing is None:
                raise self._not_found(route.resource, route.group, route.name)
            merged = _merge_patch(copy.deepcopy(existing), json.loads(body))
            return self._write(route, route.name, merged, existing), 200
        raise _StatusError(415, "UnsupportedMediaType", f"the body of the request was in an unknown format - "
                           f"accepted media types include: application/apply-patch+yaml, "
                           f"application/merge-patch+json, application/strategic-merge-patch+json "
                           f"(not {content_type})")

    def _check_apply_target(self, route: _Route, desired: Any) -> None:
        res = RESOURCES[route.resource]
        if not isinstance(desired, dict):
            raise _StatusError(400, "BadRequest", "apply patch must be an object")
        name = (desired.get("metadata") or {}).get("name")
        if name != route.name:
            raise _StatusError(400, "BadRequest", f"the name of the object ({name}) does not match the "
                               f"name on the URL ({route.name})")
        if (desired.get("apiVersion"), desired.get("kind")) != (res.api_version, res.kind):
            raise _StatusError(400, "BadRequest", f"apply patch for {res.kind} {res.api_version} got "
                               f"{desired.get('kind')} {desired.get('apiVersion')}")

    def _delete(self, route: _Route, key: tuple[str, str]) -> dict[str, Any]:
        store = self._objects[route.resource]
        found = store.pop(key, None)
        if found is None:
            raise self._not_found(route.resource, route.group, key[1])
        if route.resource == "deployments":
            task = self._rollouts.pop(key, None)
            if task is not None:
                task.cancel()
            for pod in self._pods_of(key[0], key[1]):
                self._objects["pods"].pop((key[0], pod["metadata"]["name"]), None)
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                "details": {"name": key[1], "group": route.group, "kind": route.resource,
                            "uid": found["metadata"]["uid"]}}

    # ---------------------------------------------------------------- writes

    def _write(self, route: _Route, name: str, desired: dict[str, Any],
               existing: dict[str, Any] | None) -> dict[str, Any]:
        """Store ``desired`` with server fields kept or set; unchanged objects keep their resourceVersion."""
        assert route.namespace is not None
        res = RESOURCES[route.resource]
        obj = {k: copy.deepcopy(v) for k, v in desired.items() if k != "status"}
        obj.update({"apiVersion": res.api_version, "kind": res.kind})
        meta = obj.setdefault("metadata", {})
        for field in ("uid", "resourceVersion", "creationTimestamp", "generation", "managedFields"):
            meta.pop(field, None)
        meta.update({"name": name, "namespace": route.namespace})
        self._validate(res, obj)
        self._defaults(res, obj, existing)
        if existing is not None:
            meta.update({k: existing["metadata"][k] for k in ("uid", "creationTimestamp", "generation")
                         if k in existing["metadata"]})
            if "status" in existing:
                obj["status"] = copy.deepcopy(existing["status"])
            if self._same(obj, existing):
                return copy.deepcopy(existing)
        else:
            meta.update(self._new_meta(name, route.namespace))
        meta["resourceVersion"] = self._next_rv()
        spec_changed = existing is None or existing.get("spec") != obj.get("spec")
        if res.kind == "Deployment" and spec_changed:
            meta["generation"] = int(meta.get("generation", 0)) + 1
            obj.setdefault("status", {})
        self._objects[route.resource][(route.namespace, name)] = obj
        if res.kind == "Deployment" and spec_changed:
            self._start_rollout(route.namespace, name, meta["generation"])
        return copy.deepcopy(obj)

    @staticmethod
    def _same(obj: Mapping[str, Any], existing: Mapping[str, Any]) -> bool:
        def strip(o: Mapping[str, Any]) -> dict[str, Any]:
            return {**o, "metadata": {k: v for k, v in o["metadata"].items() if k != "resourceVersion"}}
        return strip(obj) == strip(existing)

    def _defaults(self, res: _Resource, obj: dict[str, Any], existing: dict[str, Any] | None) -> None:
        spec = obj.get("spec")
        if res.kind == "Deployment" and isinstance(spec, dict):
            spec.setdefault("replicas", 1)
            spec.setdefault("progressDeadlineSeconds", 600)
            spec.setdefault("revisionHistoryLimit", 10)
            spec.setdefault("strategy", {"type": "RollingUpdate",
                                         "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}})
        elif res.kind == "Service" and isinstance(spec, dict):
            spec.setdefault("type", "ClusterIP")
            old_ip = ((existing or {}).get("spec") or {}).get("clusterIP")
            spec.setdefault("clusterIP", old_ip or f"10.96.{self._rv % 250}.{(self._rv // 250) % 250 + 1}")
            for port in spec.get("ports") or []:
                port.setdefault("protocol", "TCP")
                port.setdefault("targetPort", port.get("port"))
            obj["status"] = {"loadBalancer": {}}
        elif res.kind == "Secret":
            data = obj.setdefault("data", {}) or {}
            for key, value in (obj.pop("stringData", None) or {}).items():
                data[key] = base64.b64encode(str(value).encode()).decode()
            obj["data"] = data
            obj.setdefault("type", "Opaque")

    def _validate(self, res: _Resource, obj: Mapping[str, Any]) -> None:
        causes: list[tuple[str, str, str]] = []  # (reason, field, message)
        name = obj["metadata"]["name"]
        if not _DNS1123.fullmatch(name) or len(name) > 253:
            causes.append(("FieldValueInvalid", "metadata.name",
                           f'Invalid value: "{name}": a lowercase RFC 1123 subdomain must consist of '
                           "lower case alphanumeric characters, '-' or '.', and must start and end with "
                           "an alphanumeric character"))
        spec = obj.get("spec") or {}
        if res.kind == "Deployment":
            causes += self._deployment_causes(spec)
        elif res.kind == "Service":
            for i, port in enumerate(spec.get("ports") or []):
                value = port.get("port")
                if not isinstance(value, int) or not 1 <= value <= 65535:
                    causes.append(("FieldValueInvalid", f"spec.ports[{i}].port",
                                   f"Invalid value: {value}: must be between 1 and 65535, inclusive"))
        elif res.kind == "Secret":
            for key, value in (obj.get("data") or {}).items():
                try:
                    base64.b64decode(str(value), validate=True)
                except binascii.Error:
                    causes.append(("FieldValueInvalid", f"data[{key}]", "Invalid value: illegal base64 data"))
        if causes:
            group = f".{res.group}" if res.group else ""
            text = [f"{field}: {message}" for _, field, message in causes]
            joined = text[0] if len(text) == 1 else "[" + ", ".join(text) + "]"
            raise _StatusError(422, "Invalid", f'{res.kind}{group} "{name}" is invalid: {joined}',
                               {"name": name, "group": res.group, "kind": res.kind,
                                "causes": [{"reason": r, "message": m, "field": f} for r, f, m in causes]})

    @staticmethod
    def _deployment_causes(spec: Mapping[str, Any]) -> list[tuple[str, str, str]]:
        causes: list[tuple[str, str, str]] = []
        selector = (spec.get("selector") or {}).get("matchLabels") or {}
        template = spec.get("template") or {}
        labels = (template.get("metadata") or {}).get("labels") or {}
        if not selector:
            causes.append(("FieldValueRequired", "spec.selector", "Required value"))
        elif any(labels.get(k) != v for k, v in selector.items()):
            shown = "map[string]string{" + ", ".join(f'"{k}":"{v}"' for k, v in sorted(labels.items())) + "}"
            causes.append(("FieldValueInvalid", "spec.template.metadata.labels",
                           f"Invalid value: {shown}: `selector` does not match template `labels`"))
        containers = (template.get("spec") or {}).get("containers") or []
        if not containers:
            causes.append(("FieldValueRequired", "spec.template.spec.containers", "Required value"))
        for i, container in enumerate(containers):
            for field in ("name", "image"):
                if not container.get(field):
                    causes.append(("FieldValueRequired", f"spec.template.spec.containers[{i}].{field}",
                                   "Required value"))
        return causes

    # ---------------------------------------------------------------- deployment controller

    def _start_rollout(self, namespace: str, name: str, generation: int) -> None:
        old = self._rollouts.pop((namespace, name), None)
        if old is not None:
            old.cancel()
        task = asyncio.get_running_loop().create_task(self._rollout(namespace, name, generation))
        self._rollouts[(namespace, name)] = task

    async def _tick(self) -> None:
        await asyncio.sleep(self.step_s)
        while self.paused:
            await asyncio.sleep(self.step_s)

    def _current(self, namespace: str, name: str, generation: int) -> dict[str, Any] | None:
        dep = self._objects["deployments"].get((namespace, name))
        if dep is None or dep["metadata"].get("generation") != generation:
            return None
        return dep

    async def _rollout(self, namespace: str, name: str, generation: int) -> None:
        """Move the Deployment to ``generation`` one step per tick; stop when a newer spec takes over."""
        await self._tick()
        with self._lock:
            dep = self._current(namespace, name, generation)
            if dep is None:
                return
            dep["status"]["observedGeneration"] = generation
            self._condition(dep, "Progressing", "True", "ReplicaSetUpdated",
                            f'ReplicaSet "{name}-{template_hash(dep["spec"]["template"])}" is progressing.')
            self._recount(dep)
        while True:
            await self._tick()
            with self._lock:
                dep = self._current(namespace, name, generation)
                if dep is None:
                    return
                if not self._step(dep):
                    break
                self._recount(dep)
        with self._lock:
            rs = f"{name}-{template_hash(dep['spec']['template'])}"
            self._condition(dep, "Progressing", "True", "NewReplicaSetAvailable",
                            f'ReplicaSet "{rs}" has successfully progressed.')
            self._condition(dep, "Available", "True", "MinimumReplicasAvailable",
                            "Deployment has minimum availability.")
            self._recount(dep)

    def _step(self, dep: dict[str, Any]) -> bool:
        """Advance one step; return False when the rollout is complete."""
        namespace, name = dep["metadata"]["namespace"], dep["metadata"]["name"]
        current = template_hash(dep["spec"]["template"])
        pods = self._pods_of(namespace, name)
        new = [p for p in pods if p["metadata"]["labels"].get("pod-template-hash") == current]
        old = [p for p in pods if p not in new]
        faulty = [p for p in new if p["metadata"].get("annotations", {}).get("emulator/fault")]
        if faulty:
            for pod in faulty:
                self._advance_fault(pod)
            return True
        starting = [p for p in new if not self._pod_ready(p)]
        if starting:
            self._make_ready(starting[0])
            if old:
                self._objects["pods"].pop((namespace, old[0]["metadata"]["name"]))
            return True
        want = int(dep["spec"].get("replicas", 1))
        if len(new) < want:
            self._create_pod(dep, current)
            return True
        for pod in old + new[want:]:
            self._objects["pods"].pop((namespace, pod["metadata"]["name"]))
        return False

    def _pods_of(self, namespace: str, deployment: str) -> list[dict[str, Any]]:
        return [p for (ns, _), p in sorted(self._objects["pods"].items()) if ns == namespace
                and any(ref.get("name", "").rsplit("-", 1)[0] == deployment
                        for ref in p["metadata"].get("ownerReferences") or [])]

    def _fault_for(self, dep: Mapping[str, Any]) -> str | None:
        namespace, name = dep["metadata"]["namespace"], dep["metadata"]["name"]
        if (namespace, name) in self._faults:
            return self._faults[(namespace, name)]
        containers = dep["spec"]["template"]["spec"]["containers"]
        images = " ".join(str(c.get("image", "")) for c in containers)
        if "does-not-exist" in images:
            return "ImagePullBackOff"
        if "crash" in images:
            return "CrashLoopBackOff"
        return "Unschedulable" if self._insufficient(containers) else None

    def _insufficient(self, containers: Sequence[Mapping[str, Any]]) -> list[str]:
        requests = [(c.get("resources") or {}).get("requests") or {} for c in containers]
        cpu = sum(_quantity(r.get("cpu", 0), memory=False) for r in requests)
        memory = sum(_quantity(r.get("memory", 0), memory=True) for r in requests)
        return [what for what, over in (("cpu", cpu > self.node_cpu), ("memory", memory > self.node_memory))
                if over]

    def _create_pod(self, dep: dict[str, Any], current: str) -> None:
        namespace, name = dep["metadata"]["namespace"], dep["metadata"]["name"]
        template = copy.deepcopy(dep["spec"]["template"])
        self._names += 1
        pod_name = f"{name}-{current}-{_encode(hashlib.sha256(str(self._names).encode()).digest(), 5)}"
        meta = self._new_meta(pod_name, namespace)
        meta["labels"] = {**(template.get("metadata") or {}).get("labels", {}), "pod-template-hash": current}
        meta["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                    "name": f"{name}-{current}",
                                    "uid": str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{name}-{current}")),
                                    "controller": True, "blockOwnerDeletion": True}]
        fault = self._fault_for(dep)
        if fault:
            meta["annotations"] = {"emulator/fault": fault}
        spec = template.get("spec") or {}
        containers = spec.get("containers") or []
        pod = {"kind": "Pod", "apiVersion": "v1", "metadata": meta, "spec": spec,
               "status": {"phase": "Pending", "conditions": [self._pod_condition("PodScheduled", "True")],
                          "containerStatuses": [self._waiting(c, "ContainerCreating") for c in containers]}}
        if fault == "Unschedulable":
            short = self._insufficient(containers) or ["cpu"]
            reasons = ", ".join(f"{self.nodes} Insufficient {what}" for what in short)
            pod["status"] = {"phase": "Pending", "conditions": [self._pod_condition(
                "PodScheduled", "False", "Unschedulable", f"0/{self.nodes} nodes are available: {reasons}.")]}
        self._objects["pods"][(namespace, pod_name)] = pod

    @staticmethod
    def _pod_condition(kind: str, status: str, reason: str | None = None,
                       message: str | None = None) -> dict[str, Any]:
        cond: dict[str, Any] = {"type": kind, "status": status, "lastProbeTime": None,
                                "lastTransitionTime": _now()}
        if reason:
            cond.update({"reason": reason, "message": message or ""})
        return cond

    @staticmethod
    def _waiting(container: Mapping[str, Any], reason: str, message: str | None = None,
                 restarts: int = 0) -> dict[str, Any]:
        waiting = {"reason": reason, **({"message": message} if message else {})}
        return {"name": container.get("name"), "image": container.get("image"), "imageID": "", "ready": False,
                "started": False, "restartCount": restarts, "state": {"waiting": waiting}}

    def _advance_fault(self, pod: dict[str, Any]) -> None:
        fault = pod["metadata"]["annotations"]["emulator/fault"]
        containers, status = pod["spec"].get("containers") or [], pod["status"]
        name = pod["metadata"]["name"]
        if fault == "ImagePullBackOff":
            pulled = any(s["state"]["waiting"]["reason"] == "ErrImagePull"
                         for s in status["containerStatuses"])
            status["containerStatuses"] = [
                self._waiting(c, "ImagePullBackOff", f'Back-off pulling image "{c.get("image")}"') if pulled
                else self._waiting(c, "ErrImagePull", f'rpc error: code = NotFound desc = failed to pull and '
                                   f'unpack image "{c.get("image")}": not found') for c in containers]
        elif fault == "CrashLoopBackOff":
            status["phase"] = "Running"
            restarts = int(status["containerStatuses"][0].get("restartCount", 0)) + 1
            status["containerStatuses"] = [{
                **self._waiting(c, "CrashLoopBackOff", f"back-off 10s restarting failed container="
                                f"{c.get('name')} pod={name}", restarts),
                "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "startedAt": _now(),
                                             "finishedAt": _now()}}} for c in containers]
        elif fault == "CreateContainerConfigError":
            status["containerStatuses"] = [
                self._waiting(c, "CreateContainerConfigError", 'configmap "hello-config" not found')
                for c in containers]
        pod["metadata"]["resourceVersion"] = self._next_rv()

    @staticmethod
    def _pod_ready(pod: Mapping[str, Any]) -> bool:
        return any(c.get("type") == "Ready" and c.get("status") == "True"
                   for c in pod.get("status", {}).get("conditions") or [])

    def _make_ready(self, pod: dict[str, Any]) -> None:
        containers = pod["spec"].get("containers") or []
        pod["status"] = {
            "phase": "Running", "podIP": f"10.244.0.{self._names % 250 + 2}", "startTime": _now(),
            "conditions": [self._pod_condition(kind, "True")
                           for kind in ("PodScheduled", "Initialized", "ContainersReady", "Ready")],
            "containerStatuses": [{"name": c.get("name"), "image": c.get("image"), "ready": True,
                                   "imageID": f"{c.get('image')}@sha256:"
                                              f"{hashlib.sha256(str(c.get('image')).encode()).hexdigest()}",
                                   "started": True, "restartCount": 0,
                                   "state": {"running": {"startedAt": _now()}}} for c in containers]}
        pod["metadata"]["resourceVersion"] = self._next_rv()

    def _recount(self, dep: dict[str, Any]) -> None:
        namespace, name = dep["metadata"]["namespace"], dep["metadata"]["name"]
        current = template_hash(dep["spec"]["template"])
        pods = self._pods_of(namespace, name)
        ready = sum(1 for p in pods if self._pod_ready(p))
        status = dep["status"]
        status.update({"replicas": len(pods), "readyReplicas": ready, "availableReplicas": ready,
                       "unavailableReplicas": max(int(dep["spec"].get("replicas", 1)) - ready, 0),
                       "updatedReplicas": sum(
                           1 for p in pods if p["metadata"]["labels"].get("pod-template-hash") == current)})
        dep["metadata"]["resourceVersion"] = self._next_rv()

    def _condition(self, dep: dict[str, Any], kind: str, status: str, reason: str, message: str) -> None:
        conditions = [c for c in dep["status"].get("conditions") or [] if c.get("type") != kind]
        conditions.append({"type": kind, "status": status, "reason": reason, "message": message,
                           "lastUpdateTime": _now(), "lastTransitionTime": _now()})
        dep["status"]["conditions"] = conditions


@contextlib.contextmanager
def k8s_emulator(root: Path, *, rules: Sequence[Mapping[str, Any]] | None = None,
                 **kwargs: Any) -> Iterator[K8sEmulator]:
    """Serve a :class:`K8sEmulator` on 127.0.0.1 and write its kubeconfig; yield it once it listens."""
    emulator = K8sEmulator(root, rules=rules, **kwargs)

    async def start(_: Served) -> tuple[int, Callable[[], Coroutine[Any, Any, None]]]:
        runner = web.AppRunner(emulator.app(), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()

        async def stop() -> None:
            for task in list(emulator._rollouts.values()):
                task.cancel()
            await runner.cleanup()

        return runner.addresses[0][1], stop

    with _in_thread(start) as served:
        emulator.base_url = served.url
        write_kubeconfig(emulator.kubeconfig, emulator.base_url, emulator.token)
        yield emulator
