"""Tests for the spec's target: a URL, or a Kubernetes dark launch (``target.kubernetes``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from ruamel.yaml import YAML

from coordinator.errors import SpecError
from coordinator.spec import ExperimentSpec, json_schema, load_spec, parse_spec

REPO_ROOT = Path(__file__).resolve().parents[2]
K8S_EXAMPLE = REPO_ROOT / "examples" / "hello" / "experiment-k8s.yaml"
LOAD = {"rate": 10, "duration": 1}


def spec_with(target: Any, **extra: Any) -> ExperimentSpec:
    """Returns the spec validated from a minimal document with this target."""
    return parse_spec({"name": "t", "target": target, "load": LOAD, **extra})


def test_k8s_example_loads_with_its_defaults() -> None:
    """The bundled dark-launch example loads; unset fields take their documented defaults."""
    spec = load_spec(K8S_EXAMPLE)
    kubernetes = spec.target.kubernetes
    assert kubernetes is not None and spec.target.url is None
    assert (kubernetes.namespace, kubernetes.service, kubernetes.port) == \
        ("default", "hello-candidate", 8080)
    assert kubernetes.manifests == ["candidate.yaml"]
    assert kubernetes.rollout_timeout == 120.0 and kubernetes.cleanup == "on_fail"
    assert kubernetes.kubeconfig is None and kubernetes.context is None


def test_k8s_example_follows_the_json_schema() -> None:
    """The JSON Schema accepts both forms of target: the example's mapping and a URL string."""
    validator = jsonschema.Draft202012Validator(json_schema())
    validator.validate(YAML(typ="safe", pure=True).load(K8S_EXAMPLE.read_text()))
    validator.validate({"name": "t", "target": "http://h:1", "load": LOAD})
    with pytest.raises(jsonschema.ValidationError):
        validator.validate({"name": "t", "target": {"kubernetes": {"namespace": "x"}},
                            "load": LOAD})


def test_url_target_is_saved_as_the_string_it_was_written_as() -> None:
    """A plain URL target dumps back to a string, so results.json keeps its v1 shape."""
    spec = spec_with("http://127.0.0.1:8080/")
    assert spec.model_dump(mode="json", by_alias=True)["target"] == "http://127.0.0.1:8080"
    assert spec_with({"url": "http://h:1"}).model_dump(mode="json", by_alias=True)["target"] \
        == "http://h:1"


def test_kubernetes_target_round_trips_through_its_dump() -> None:
    """A Kubernetes target dumps as a mapping that validates back to the same spec."""
    spec = spec_with({"kubernetes": {"manifests": ["c.yaml"], "rolloutTimeout": "90s",
                                     "cleanup": "always"}})
    dumped = json.loads(json.dumps(spec.model_dump(mode="json", by_alias=True)))
    assert dumped["target"] == {"kubernetes": {
        "namespace": "default", "manifests": ["c.yaml"], "rolloutTimeout": 90.0,
        "cleanup": "always"}}
    assert ExperimentSpec.model_validate(dumped) == spec


def test_with_target_sets_the_url_and_keeps_the_kubernetes_block() -> None:
    """Resolving the launched Service's URL keeps the launch settings in the spec."""
    spec = spec_with({"kubernetes": {"manifests": ["c.yaml"], "namespace": "shop"}})
    with pytest.raises(SpecError, match="no URL yet"):
        _ = spec.target_url
    resolved = spec.with_target("http://hello.shop.svc:8080/")
    assert resolved.target_url == "http://hello.shop.svc:8080"
    assert resolved.target.kubernetes == spec.target.kubernetes
    assert resolved.versions() == [("candidate", "http://hello.shop.svc:8080")]


@pytest.mark.parametrize(("target", "message"), [
    pytest.param({}, "target: give url, kubernetes, or both", id="empty-mapping"),
    pytest.param({"kubernetes": {"namespace": "x"}}, "target.kubernetes.manifests: required field is missing",
                 id="no-manifests"),
    pytest.param({"kubernetes": {"manifests": []}}, "target.kubernetes.manifests:",
                 id="empty-manifests"),
    pytest.param({"kubernetes": {"manifests": ["c.yaml"], "namespace": "Shop_1"}},
                 "target.kubernetes.namespace:", id="namespace-not-dns-label"),
    pytest.param({"kubernetes": {"manifests": ["c.yaml"], "cleanup": "sometimes"}},
                 "target.kubernetes.cleanup:", id="unknown-cleanup"),
    pytest.param({"kubernetes": {"manifests": ["c.yaml"], "port": 70000}},
                 "target.kubernetes.port:", id="port-out-of-range"),
    pytest.param({"kubernetes": {"manifests": ["c.yaml"], "servce": "x"}},
                 "target.kubernetes.servce: unknown field (did you mean service?)", id="typo"),
    pytest.param({"url": "ftp://h", "kubernetes": {"manifests": ["c.yaml"]}},
                 "target.url: 'ftp://h' is not an http(s) URL", id="bad-url-beside-kubernetes"),
    pytest.param("ftp://h", "target: 'ftp://h' is not an http(s) URL", id="bad-short-form"),
])
def test_bad_targets_name_the_field(target: Any, message: str) -> None:
    """Each bad target is one line naming the field, in the short or the mapping form."""
    with pytest.raises(SpecError) as caught:
        spec_with(target)
    assert message in str(caught.value)


def test_missing_manifest_file_is_named_with_its_path(tmp_path: Path) -> None:
    """A manifest that does not exist beside the spec fails at load time, naming the path."""
    path = tmp_path / "spec.yaml"
    path.write_text("name: t\ntarget:\n  kubernetes:\n    manifests: [there.yaml, gone.yaml]\n"
                    "load: {rate: 1, duration: 1}\n")
    (tmp_path / "there.yaml").write_text("kind: Service\n")
    with pytest.raises(SpecError, match=r"target\.kubernetes\.manifests\[1\]: file not found: "
                                        + str(tmp_path / "gone.yaml")):
        load_spec(path)


def test_aa_of_a_kubernetes_target_needs_a_running_url(tmp_path: Path) -> None:
    """--aa loads one running version twice: a launch-only target without a URL is refused."""
    (tmp_path / "c.yaml").write_text("kind: Service\n")
    path = tmp_path / "spec.yaml"
    path.write_text("name: t\ntarget:\n  kubernetes: {manifests: [c.yaml]}\n"
                    "load: {rate: 1, duration: 1}\n")
    with pytest.raises(SpecError, match=r"--aa .* needs target\.url or baseline"):
        load_spec(path, one_version_as_both=True)
    path.write_text("name: t\ntarget:\n  url: http://127.0.0.1:9\n  kubernetes: "
                    "{manifests: [c.yaml]}\nload: {rate: 1, duration: 1}\n")
    spec = load_spec(path, one_version_as_both=True)
    assert spec.versions() == [("baseline", "http://127.0.0.1:9"),
                               ("candidate", "http://127.0.0.1:9")]
    assert spec.target.kubernetes is None
