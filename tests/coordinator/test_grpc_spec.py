"""The gRPC spec: what is refused before any load, with one line naming the field.

Pure checks (``parse_spec``), then the schema (:func:`resolve_grpc`): protos compiled by
grpcio-tools' protoc, a protoset, server reflection from a real grpcio server; and
``slogate check`` on a proto that does not compile (exit 2, one line, the proto's file:line).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from coordinator.errors import SpecError
from coordinator.grpc_schema import compile_protos, resolve_grpc
from coordinator.spec import parse_spec
from coordinator.split import worker_plans
from tests.support.grpc_servers import PROTOS, grpc_server
from tests.support.helpers import REPO_ROOT

CALL = "hello.Greeter/SayHello"


def _doc(**more: Any) -> dict[str, Any]:
    endpoint = more.pop("endpoint", {})
    doc: dict[str, Any] = {"name": "g", "target": "grpc://127.0.0.1:50051",
                           "load": {"rate": 10, "duration": "1s"},
                           "grpc": {"proto": ["hello.proto"]},
                           "endpoints": [{"call": CALL, "data": {"name": "a"}, **endpoint}]}
    doc.update(more)
    return doc


@pytest.mark.parametrize(("doc", "message"), [
    pytest.param(_doc(endpoint={"call": "Greeter.SayHello"}),
                 "endpoints[0].call: 'Greeter.SayHello' is not package.Service/Method",
                 id="call-not-service-slash-method"),
    pytest.param(_doc(endpoint={"path": "/x"}),
                 "path: an HTTP field; a gRPC endpoint (call) has none", id="call-with-path"),
    pytest.param(_doc(endpoint={"data": [1, 2]}),
                 "data: the request message as a JSON mapping", id="data-not-a-mapping"),
    pytest.param(_doc(endpoint={"call": None}), "data: set call as well", id="data-without-call"),
    pytest.param(_doc(endpoint={"metadata": {"Grpc-Timeout": "1"}}),
                 "'Grpc-Timeout' is not a gRPC metadata key", id="reserved-metadata-key"),
    pytest.param(_doc(grpc={"proto": ["a.proto"], "reflection": True}),
                 "grpc.reflection: give one schema source", id="two-schema-sources"),
    pytest.param(_doc(grpc={}), "grpc: give the schema of the calls", id="no-schema-source"),
    pytest.param(_doc(grpc=None), "grpc: an endpoint has call", id="no-grpc-block"),
    pytest.param(_doc(grpc={"proto": ["a.proto"], "errorCodes": ["NOT_A_CODE"]}),
                 "'NOT_A_CODE' is not a gRPC status code", id="unknown-status-code"),
    pytest.param(_doc(grpc={"proto": ["a.proto"], "tls": {"insecure": True}}),
                 "grpc.tls: the gRPC server is plaintext", id="tls-on-plaintext"),
    pytest.param(_doc(target="http://127.0.0.1:8080"),
                 "target: http://127.0.0.1:8080 is not grpc[s]://host:port and grpc.target",
                 id="grpc-call-on-http-target"),
    pytest.param(_doc(endpoints=[{"path": "/hello"}]),
                 "an endpoint is HTTP", id="http-endpoint-on-grpc-target"),
    pytest.param(_doc(target="grpc://127.0.0.1:50051/x"),
                 "a gRPC server URL is grpc[s]://host:port, nothing more", id="path-in-url"),
    pytest.param(_doc(target="grpc://127.0.0.1"), "is not grpc://host:port", id="no-port"),
    pytest.param(_doc(endpoint={"deadline": "20s"}),
                 "endpoints[0].deadline: 20 s is longer than load.timeout (10 s)",
                 id="deadline-past-timeout"),
])
def test_bad_grpc_specs_are_one_line(doc: dict[str, Any], message: str) -> None:
    """Each mistake in the gRPC part of a spec is refused with a line naming what is wrong."""
    with pytest.raises(SpecError) as caught:
        parse_spec(doc, source="spec.yaml")
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_iter8_grpc_metric_names_are_aliases() -> None:
    """Iter8's grpc/... names are accepted and judged as the built-in metrics they stand for."""
    spec = parse_spec(_doc(objectives=[
        {"metric": "grpc/error-rate", "upperLimit": "1%"},
        {"metric": "grpc/latency/p99.9", "upperLimit": "80ms"},
        {"metric": "grpc/latency/mean", "upperLimit": 20},
        {"metric": "grpc/request-count", "lowerLimit": 10},
        "p(95)<200ms"]))
    assert [(o.metric, o.upper_limit or o.lower_limit) for o in spec.objectives] == [
        ("error-rate", 0.01), ("latency-p99.9", 80.0), ("latency-mean", 20.0),
        ("request-count", 10.0), ("latency-p95", 200.0)]


def _resolve(doc: dict[str, Any], base_dir: Path = PROTOS) -> Any:
    return resolve_grpc(parse_spec(doc), base_dir)


@pytest.mark.parametrize(("endpoint", "message"), [
    pytest.param({"call": "hello.Greetr/SayHello"},
                 "endpoints[0].call: unknown service 'hello.Greetr' (services: hello.Greeter)",
                 id="unknown-service"),
    pytest.param({"call": "hello.Greeter/SayHi"},
                 "endpoints[0].call: hello.Greeter has no method 'SayHi' (its methods: Chat, "
                 "SayHello)", id="unknown-method"),
    pytest.param({"call": "hello.Greeter/Chat"}, "is a streaming method", id="streaming"),
    pytest.param({"data": {"nmae": "a"}},
                 'endpoints[0].data: not a hello.HelloRequest: Message type "hello.HelloRequest" '
                 'has no field named "nmae"', id="unknown-field"),
    pytest.param({"data": {"times": "many"}}, "endpoints[0].data: not a hello.HelloRequest: "
                 "Failed to parse times field", id="wrong-value-type"),
    pytest.param({"data": {"sent": "yesterday"}}, "Failed to parse sent field",
                 id="wrong-well-known-type"),
])
def test_calls_and_messages_are_checked_against_the_schema(endpoint: dict[str, Any],
                                                           message: str) -> None:
    """An unknown service or method, a streaming method, or a message that is not the method's
    input type is one SpecError line naming the endpoint's field."""
    with pytest.raises(SpecError) as caught:
        _resolve(_doc(endpoint=endpoint))
    assert str(caught.value).startswith("endpoints[0].")
    assert message in str(caught.value)


def test_messages_are_serialized_as_their_type() -> None:
    """data becomes the method's input message, well-known types included (Timestamp)."""
    resolved = _resolve(_doc(endpoint={"data": {"name": "a", "times": 3,
                                                "sent": "1970-01-01T00:00:10Z"}}))
    assert resolved.bodies == {0: (b"\n\x01a\x10\x03\x1a\x02\x08\x0a",)}
    assert resolved.ok_outcomes == ("grpc:OK",)


def test_a_proto_that_does_not_compile_names_its_file_and_line(tmp_path: Path) -> None:
    """protoc's first error, with the proto's file:line:column, is the one line."""
    (tmp_path / "broken.proto").write_text('syntax = "proto3";\npackage b;\n'
                                           "message M {\n  string name = 1\n}\n")
    with pytest.raises(SpecError) as caught:
        compile_protos(["broken.proto"], [], tmp_path)
    assert str(caught.value).startswith("grpc.proto: ")
    assert "broken.proto:5:1: Expected \";\"." in str(caught.value)


def test_a_bad_data_file_line_is_named(tmp_path: Path) -> None:
    """A dataFile line that is not the input type is named by file and line number."""
    (tmp_path / "hello.proto").write_text((PROTOS / "hello.proto").read_text())
    (tmp_path / "req.jsonl").write_text('{"name": "a"}\n{"name": 1}\n')
    with pytest.raises(SpecError) as caught:
        _resolve(_doc(endpoint={"data": None, "dataFile": "req.jsonl"}), tmp_path)
    assert f"endpoints[0].dataFile: {tmp_path / 'req.jsonl'}:2: not a hello.HelloRequest" \
        in str(caught.value)


def test_a_protoset_is_a_schema(tmp_path: Path) -> None:
    """A compiled FileDescriptorSet serves as the schema as the protos would."""
    (tmp_path / "hello.pb").write_bytes(compile_protos(["hello.proto"], [], PROTOS)
                                        .SerializeToString())
    resolved = _resolve(_doc(grpc={"protoset": "hello.pb"}), tmp_path)
    assert resolved.bodies == {0: (b"\n\x01a",)}


def test_reflection_gives_the_schema_and_checks_the_call() -> None:
    """With reflection, the server's own schema checks the call and serializes the message;
    a service it does not serve is named."""
    with grpc_server(reflection=True) as served:
        resolved = _resolve(_doc(target=served.url, grpc={"reflection": True}))
        with pytest.raises(SpecError) as caught:
            _resolve(_doc(target=served.url, grpc={"reflection": True},
                          endpoint={"call": "other.Svc/Do"}))
    assert resolved.bodies == {0: (b"\n\x01a",)}
    assert "endpoints[0].call: unknown service 'other.Svc' (services: hello.Greeter" \
        in str(caught.value)


def test_reflection_against_a_server_without_it_is_one_line() -> None:
    """A server that does not serve reflection: grpc.reflection says so, naming the address."""
    with grpc_server() as served, pytest.raises(SpecError) as caught:
        _resolve(_doc(target=served.url, grpc={"reflection": True}))
    assert str(caught.value) == (f"grpc.reflection: server reflection at "
                                 f"{served.url.removeprefix('grpc://')} failed: UNIMPLEMENTED")


def test_plans_carry_serialized_calls_and_error_codes() -> None:
    """Two versions: each gets its own server URL, the call's bytes and deadline, and the
    outcomes errorCodes leaves out of the errors."""
    spec = parse_spec(_doc(baseline="grpc://127.0.0.1:50052",
                           grpc={"proto": ["hello.proto"], "errorCodes": ["UNAVAILABLE"]},
                           endpoint={"deadline": "250ms"}))
    [plan] = worker_plans(spec, PROTOS, resolve_grpc(spec, PROTOS))
    assert [(t.label, t.url, t.bodies, t.deadline_s) for t in plan.requests] == [
        (f"baseline: {CALL}", f"grpc://127.0.0.1:50052/{CALL}", (b"\n\x01a",), 0.25),
        (f"candidate: {CALL}", f"grpc://127.0.0.1:50051/{CALL}", (b"\n\x01a",), 0.25)]
    assert plan.transport == "grpc"
    assert "grpc:OK" in plan.ok_outcomes and "grpc:NOT_FOUND" in plan.ok_outcomes
    assert "grpc:UNAVAILABLE" not in plan.ok_outcomes


def test_check_refuses_a_broken_proto_with_exit_2(tmp_path: Path) -> None:
    """slogate check on a spec whose proto does not compile: exit 2, one line naming the spec,
    the field and the proto's line; no traceback."""
    (tmp_path / "broken.proto").write_text('syntax = "proto3";\nmessage M { int32 x = 1; }\n'
                                           "service S { rpc Do (M) returns (Missing); }\n")
    spec = tmp_path / "spec.yaml"
    spec.write_text("name: g\ntarget: grpc://127.0.0.1:50051\nload: {rate: 1, duration: 1s}\n"
                    "grpc: {proto: [broken.proto]}\nendpoints:\n  - call: S/Do\n")
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.run([sys.executable, "-m", "coordinator.cli", "check", str(spec)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"slogate: error: {spec}: grpc.proto: ")
    assert 'broken.proto:3:33: "Missing" is not defined.' in lines[0]


def test_run_refuses_a_wrong_message_type_before_ray_starts(tmp_path: Path) -> None:
    """slogate run with data that is not the method's input type: exit 2 with one line naming
    the spec and the field, before Ray is started."""
    (tmp_path / "hello.proto").write_text((PROTOS / "hello.proto").read_text())
    spec = tmp_path / "spec.yaml"
    spec.write_text("name: g\ntarget: grpc://127.0.0.1:50051\nload: {rate: 1, duration: 1s}\n"
                    "grpc: {proto: [hello.proto]}\nendpoints:\n"
                    "  - {call: hello.Greeter/SayHello, data: {times: [1]}}\n")
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.run([sys.executable, "-m", "coordinator.cli", "run", str(spec), "--out",
                           str(tmp_path / "out")], capture_output=True, text=True, env=env,
                          timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"slogate: error: {spec}: endpoints[0].data: not a hello.HelloRequest: Failed to parse "
        "times field: int() argument must be a string, a bytes-like object or a real number, "
        "not 'list'."]
    assert not (tmp_path / "out").exists()
