"""The gRPC flavour of the sample app (examples/hello-grpc): the server as a real process with its
known latency and reflection, its experiment valid as shipped, its manifests valid Kubernetes."""

from __future__ import annotations

import time
from pathlib import Path

import kubernetes_validate
import pytest
from ruamel.yaml import YAML

from coordinator.grpc_schema import resolve_grpc
from coordinator.spec import load_spec, parse_spec
from coordinator.split import worker_plans
from tests.support.grpc_servers import HELLO_GRPC as APP
from tests.support.grpc_servers import hello_grpc
from workers.histogram import Histogram
from workers.load_worker import LoadWorker


@pytest.mark.parametrize(("version", "latency_ms"), [
    pytest.param("1.0", 5.0, id="baseline-5ms"), pytest.param("2.0", 8.0, id="candidate-8ms")])
def test_each_version_answers_after_its_known_latency(version: str, latency_ms: float) -> None:
    """Version 1.0 answers after 5 ms and 2.0 after 8 ms: the median of 100 calls lies in
    [latency, latency + 5 ms], the schema coming from the server's own reflection."""
    with hello_grpc("--version", version) as url:
        spec = parse_spec({"name": "h", "target": url, "load": {"rate": 100, "requests": 100},
                           "grpc": {"reflection": True},
                           "endpoints": [{"call": "hello.Greeter/SayHello",
                                          "data": {"name": "t"}}]})
        [plan] = worker_plans(spec, APP, resolve_grpc(spec, APP))
        report = LoadWorker(plan).run(start_at=time.time() + 0.2)
    keys = {key for window in report.windows for key in window.latency}
    hist = Histogram.sum(h for window in report.windows for h in window.latency.values())
    assert keys == {("hello.Greeter/SayHello", "grpc:OK")} and hist.total == 100
    median_ns = hist.percentile_ns(50)
    assert median_ns is not None and latency_ms <= median_ns / 1e6 <= latency_ms + 5.0


def test_the_example_experiment_is_valid_as_shipped() -> None:
    """examples/hello-grpc/experiment.yaml loads and its proto resolves: baseline and candidate
    call hello.Greeter/SayHello with the serialized message, objectives in Iter8's names."""
    spec = load_spec(APP / "experiment.yaml")
    resolved = resolve_grpc(spec, APP)
    assert resolved is not None and resolved.bodies == {0: (b"\n\x07slogate",)}
    assert [o.metric for o in spec.objectives] == ["error-rate", "latency-p99", "latency-mean"]


@pytest.mark.parametrize("name", ["baseline.yaml", "candidate.yaml"])
def test_the_manifests_are_valid_kubernetes(name: str) -> None:
    """Each manifest is valid Kubernetes 1.25 (strict) with the image tag of its version."""
    docs = list(YAML(typ="safe").load_all(Path(APP / name).read_text()))
    for doc in docs:
        kubernetes_validate.validate(doc, "1.25", strict=True)
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    version = deployment["metadata"]["labels"]["version"]
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"] == f"ghcr.io/slogate/hello-grpc:{version}"


def test_the_dark_launch_experiment_calls_the_service_over_grpc() -> None:
    """examples/hello-grpc/experiment-k8s.yaml: once the candidate's Service is known, its
    in-cluster URL is grpc:// (every endpoint is a call), and the experiment is valid so."""
    spec = load_spec(APP / "experiment-k8s.yaml")
    launched = spec.with_target("http://hello-grpc-candidate.default.svc:50051")
    assert launched.target_url == "grpc://hello-grpc-candidate.default.svc:50051"
    assert launched.target.kubernetes == spec.target.kubernetes
