"""Offline checks of deploy/controllers: the Argo Rollouts AnalysisTemplate, the Flagger Canary,
the gate, the Argo CD / Flux post-sync Job and the Flux Kustomization.

The custom resources are validated against our own JSON Schemas (tests/schemas/*.schema.json,
written from each project's API reference, closed where the CRD prunes unknown fields); the
built-in kinds and the Job specs inside them against the Kubernetes OpenAPI schemas
(kubernetes_validate, strict); every slogate command line with slogate's own click parser; the
experiments with slogate's spec loader; the folders with the real ``kubectl kustomize``. Each
schema has a negative test that proves it rejects a broken copy.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
from ruamel.yaml import YAML

from coordinator.spec import load_spec
from coordinator.units import parse_duration_s
from tests.deploy.test_k8s_manifests import _kustomize, k8s_error, parse_slogate

REPO_ROOT = Path(__file__).resolve().parents[2]
CONTROLLERS = REPO_ROOT / "deploy" / "controllers"
SCHEMAS = Path(__file__).resolve().parents[1] / "schemas"
_yaml = YAML(typ="safe")


def doc(relative: str, kind: str | None = None) -> dict[str, Any]:
    """Return the (only, or the ``kind``) document of deploy/controllers/``relative``."""
    docs = [d for d in _yaml.load_all((CONTROLLERS / relative).read_text()) if d]
    return next(d for d in docs if kind is None or d["kind"] == kind)


def schema_errors(schema: str, document: dict[str, Any]) -> list[str]:
    """Return the errors of ``document`` against tests/schemas/``schema``."""
    validator = jsonschema.Draft202012Validator(json.loads((SCHEMAS / schema).read_text()))
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in validator.iter_errors(document)]


def as_job(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    """Return a batch/v1 Job around ``spec``, for kubernetes_validate."""
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name}, "spec": spec}


CRDS = [
    pytest.param("analysistemplate_v1alpha1.schema.json", "argo-rollouts/analysistemplate.yaml",
                 id="analysistemplate"),
    pytest.param("canary_v1beta1.schema.json", "flagger/canary.yaml", id="canary"),
    pytest.param("flux_kustomization_v1.schema.json", "flux/slogate-postsync.yaml",
                 id="flux-kustomization"),
]


@pytest.mark.parametrize("schema, _file", CRDS)
def test_schemas_are_valid_json_schema(schema: str, _file: str) -> None:
    """Each hand-written CRD schema is itself a valid Draft 2020-12 schema."""
    jsonschema.Draft202012Validator.check_schema(json.loads((SCHEMAS / schema).read_text()))


@pytest.mark.parametrize("schema, file", CRDS)
def test_custom_resources_are_valid_for_their_api(schema: str, file: str) -> None:
    """The AnalysisTemplate, the Canary and the Flux Kustomization validate against their API."""
    assert schema_errors(schema, doc(file)) == []


def _metric(d: dict[str, Any]) -> dict[str, Any]:
    return d["spec"]["metrics"][0]


BROKEN: list[Any] = [
    pytest.param("analysistemplate_v1alpha1.schema.json", "argo-rollouts/analysistemplate.yaml",
                 lambda d: _metric(d).update(failureLimt=0), "'failureLimt' was unexpected",
                 id="misspelt-metric-field"),
    pytest.param("analysistemplate_v1alpha1.schema.json", "argo-rollouts/analysistemplate.yaml",
                 lambda d: _metric(d)["provider"].update(web={}), "has too many properties",
                 id="two-providers"),
    pytest.param("canary_v1beta1.schema.json", "flagger/canary.yaml",
                 lambda d: d["spec"]["analysis"]["webhooks"][0].update(type="post-promotion"),
                 "'post-promotion' is not one of", id="unknown-webhook-type"),
    pytest.param("canary_v1beta1.schema.json", "flagger/canary.yaml",
                 lambda d: d["spec"]["analysis"]["webhooks"][0]["metadata"].update(maxAge=30),
                 "30 is not of type 'string'", id="metadata-not-a-string"),
    pytest.param("flux_kustomization_v1.schema.json", "flux/slogate-postsync.yaml",
                 lambda d: d["spec"].pop("prune"), "'prune' is a required property",
                 id="flux-without-prune"),
]


@pytest.mark.parametrize("schema, file, breaks, expect", BROKEN)
def test_schemas_reject_a_broken_copy(schema: str, file: str,
                                      breaks: Callable[[dict[str, Any]], Any], expect: str) -> None:
    """A misspelt field, a second provider, an unknown webhook type, a non-string metadata
    value or a missing required field is refused."""
    broken = copy.deepcopy(doc(file))
    breaks(broken)
    assert any(expect in error for error in schema_errors(schema, broken))


@pytest.mark.parametrize("name, spec", [
    pytest.param("analysis", doc("argo-rollouts/analysistemplate.yaml")["spec"]["metrics"][0]
                 ["provider"]["job"]["spec"], id="analysis-job"),
    pytest.param("postsync", doc("postsync/job.yaml")["spec"], id="postsync-job"),
])
def test_job_specs_are_valid_batch_v1(name: str, spec: dict[str, Any]) -> None:
    """The Job specs (the analysis Job and the post-sync Job) are valid batch/v1, never retried."""
    assert k8s_error(as_job(name, spec)) is None
    assert spec["backoffLimit"] == 0 and spec["template"]["spec"]["restartPolicy"] == "Never"


@pytest.mark.parametrize("kind", ["Deployment", "Service"])
def test_gate_is_valid_kubernetes(kind: str) -> None:
    """The gate's Deployment and Service are valid for the Kubernetes API (strict)."""
    assert k8s_error(doc("gate/gate.yaml", kind)) is None


def _args(pod_spec: dict[str, Any]) -> list[str]:
    return list(pod_spec["containers"][0]["args"])


def test_command_lines_parse_with_the_slogate_cli() -> None:
    """The analysis Job and the post-sync Job run `slogate run` on the mounted experiment; the
    gate serves the results volume it mounts: slogate's own parser accepts each."""
    analysis = doc("argo-rollouts/analysistemplate.yaml")["spec"]["metrics"][0]["provider"][
        "job"]["spec"]["template"]["spec"]
    postsync = doc("postsync/job.yaml")["spec"]["template"]["spec"]
    for pod in (analysis, postsync):
        name, params = parse_slogate(_args(pod))
        assert (name, str(params["spec_path"])) == ("run", "/config/experiment.yaml")
        mounts = {m["mountPath"]: m["name"] for m in pod["containers"][0]["volumeMounts"]}
        assert mounts["/config"] == "experiment"
    gate = doc("gate/gate.yaml", "Deployment")["spec"]["template"]["spec"]
    name, params = parse_slogate(_args(gate))
    assert (name, params["source"], params["listen"]) == ("gate-serve", "/results", "0.0.0.0:8788")
    assert gate["volumes"][0]["persistentVolumeClaim"]["claimName"] == "slogate-results"


@pytest.mark.parametrize("folder, service", [
    pytest.param("argo-rollouts", "hello-canary.shop.svc", id="canary"),
    pytest.param("postsync", "hello.shop.svc", id="stable"),
])
def test_built_folders_mount_a_valid_experiment(folder: str, service: str, tmp_path: Path) -> None:
    """`kubectl kustomize` builds each folder; the ConfigMap the Job mounts is the one built,
    and its experiment.yaml is a valid slogate spec loading the right Service."""
    built = _kustomize(CONTROLLERS / folder)
    (config_map,) = [d for d in built if d["kind"] == "ConfigMap"]
    (path := tmp_path / "experiment.yaml").write_text(config_map["data"]["experiment.yaml"])
    assert urlsplit(load_spec(path).target_url).hostname == service
    holders = [d for d in built if d["kind"] in ("Job", "AnalysisTemplate")]
    (holder,) = holders
    pod = (holder["spec"]["metrics"][0]["provider"]["job"]["spec"] if holder["kind"] ==
           "AnalysisTemplate" else holder["spec"])["template"]["spec"]
    volume = next(v for v in pod["volumes"] if v["name"] == "experiment")
    assert volume["configMap"]["name"] == config_map["metadata"]["name"]


def test_canary_webhook_asks_the_gate_for_the_canary_experiment() -> None:
    """Flagger's rollout webhook points at the gate Service's port and /v1/flagger, names the
    canary experiment and a maxAge slogate parses."""
    (hook,) = doc("flagger/canary.yaml")["spec"]["analysis"]["webhooks"]
    service = doc("gate/gate.yaml", "Service")
    url = urlsplit(hook["url"])
    assert url.hostname == f"{service['metadata']['name']}.{service['metadata']['namespace']}.svc"
    assert (url.port, url.path, hook["type"]) == (service["spec"]["ports"][0]["port"],
                                                  "/v1/flagger", "rollout")
    assert hook["metadata"]["experiment"] == "hello-canary"
    assert parse_duration_s(hook["metadata"]["maxAge"]) == 1800


def test_postsync_job_is_a_hook_for_argo_cd_and_forced_by_flux() -> None:
    """Argo CD runs the Job as a PostSync hook (recreated before each); Flux applies its folder
    after the app's Kustomization, waits for it and recreates it (force)."""
    annotations = doc("postsync/job.yaml")["metadata"]["annotations"]
    assert annotations["argocd.argoproj.io/hook"] == "PostSync"
    assert annotations["argocd.argoproj.io/hook-delete-policy"] == "BeforeHookCreation"
    assert annotations["kustomize.toolkit.fluxcd.io/force"] == "enabled"
    flux = doc("flux/slogate-postsync.yaml")["spec"]
    assert (REPO_ROOT / flux["path"] / "kustomization.yaml").is_file()
    assert (flux["wait"], flux["force"], flux["dependsOn"]) == (True, True, [{"name": "hello"}])
