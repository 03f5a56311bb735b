"""A spec's gRPC schema, resolved once at start, and each call's request messages serialized.

The one module that imports ``grpc_tools`` and ``google.protobuf``. The schema comes from the
spec's ``.proto`` files (compiled with grpcio-tools' protoc into a temporary folder), a compiled
``protoset``, or the server's reflection service. Then every gRPC endpoint is checked against
it before any load is sent: the service and method exist, the method is unary, and each request
message (``data``, or every line of ``dataFile``) parses as the method's input type. Anything
wrong is one :class:`SpecError` line naming the field (``grpc.proto: hello.proto:7:3: Expected
";".``, ``endpoints[0].data: Message type "hello.HelloRequest" has no field named "nmae"``).

Workers receive the serialized bytes only: they never see a descriptor.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from importlib.resources import files
from pathlib import Path
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
from google.protobuf.descriptor import MethodDescriptor

from coordinator.errors import SpecError
from coordinator.grpc_spec import GrpcSpec, ResolvedGrpc, grpc_url_of
from coordinator.spec import EndpointSpec, ExperimentSpec
from workers.plan import GrpcChannels

MAX_DATA_LINES = 100_000
PROTOC_TIMEOUT_S = 60.0


def resolve_grpc(spec: ExperimentSpec, base_dir: Path) -> ResolvedGrpc | None:
    """Return the spec's gRPC requests checked and serialized, None when it has no gRPC
    endpoint; raise :class:`SpecError` (one line) for anything that would fail the calls."""
    grpc = spec.grpc
    calls = {i: e for i, e in enumerate(spec.endpoints) if e.call is not None}
    if not calls or grpc is None:
        return None
    channels = _channels(grpc, base_dir)
    protos = _descriptor_files(spec, grpc, base_dir, channels, calls)
    pool, services = _pool(protos), service_names(protos)
    bodies = {i: _requests(pool, services, e, i, base_dir) for i, e in calls.items()}
    return ResolvedGrpc(bodies=bodies, channels=channels, ok_outcomes=grpc.ok_outcomes())


def _channels(grpc: GrpcSpec, base_dir: Path) -> GrpcChannels:
    tls = grpc.tls
    ca_pem = None
    if tls is not None and tls.ca is not None:
        try:
            ca_pem = (base_dir / tls.ca).read_bytes()
        except OSError as exc:
            raise SpecError(f"grpc.tls.ca: cannot read {base_dir / tls.ca}: "
                            f"{exc.strerror or exc}") from None
        if b"-----BEGIN CERTIFICATE-----" not in ca_pem:
            raise SpecError(f"grpc.tls.ca: {base_dir / tls.ca} holds no PEM certificate")
    return GrpcChannels(channels=grpc.channels, ca_pem=ca_pem,
                        server_name=tls.server_name if tls else None,
                        insecure=bool(tls and tls.insecure))


def _descriptor_files(spec: ExperimentSpec, grpc: GrpcSpec, base_dir: Path,
                      channels: GrpcChannels, calls: Mapping[int, EndpointSpec]
                      ) -> list[descriptor_pb2.FileDescriptorProto]:
    if grpc.proto:
        return list(compile_protos(grpc.proto, grpc.import_paths, base_dir).file)
    if grpc.protoset is not None:
        return list(_read_protoset(base_dir / grpc.protoset).file)
    from workers.transport_grpc import ReflectionError, reflect_files

    services = sorted({e.call.partition("/")[0] for e in calls.values() if e.call})
    out: list[descriptor_pb2.FileDescriptorProto] = []
    for version, url in spec.versions():
        where = grpc_url_of(url, grpc, version)  # type: ignore[arg-type]
        assert where is not None  # the spec checked every version has a gRPC server
        try:
            raw = reflect_files(where, services, channels)
        except ReflectionError as exc:
            raise SpecError(f"grpc.reflection: {exc}") from None
        out += [descriptor_pb2.FileDescriptorProto.FromString(r) for r in raw]
        break  # baseline and candidate serve one schema; the first one answers for both
    return out


def compile_protos(protos: list[str], import_paths: list[str], base_dir: Path
                   ) -> descriptor_pb2.FileDescriptorSet:
    """Return the FileDescriptorSet of ``protos`` (imports included), compiled by protoc into
    a temporary folder; raise SpecError with protoc's first error (``file:line:col: ...``)."""
    paths = [base_dir / p for p in import_paths] or sorted({(base_dir / p).parent
                                                          for p in protos})
    for index, proto in enumerate(protos):
        if not (base_dir / proto).is_file():
            raise SpecError(f"grpc.proto[{index}]: file not found: {base_dir / proto}")
    include = str(files("grpc_tools") / "_proto")
    with tempfile.TemporaryDirectory(prefix="slogate-proto-") as tmp:
        out = Path(tmp) / "set.pb"
        command = [sys.executable, "-m", "grpc_tools.protoc", *(f"-I{p}" for p in paths),
                   f"-I{include}", f"--descriptor_set_out={out}", "--include_imports",
                   *(str(base_dir / p) for p in protos)]
        try:
            done = subprocess.run(command, capture_output=True, text=True,
                                  timeout=PROTOC_TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired:
            raise SpecError(f"grpc.proto: protoc did not finish in {PROTOC_TIMEOUT_S:g} s") \
                from None
        if done.returncode != 0 or not out.is_file():
            lines = [ln for ln in (done.stderr or done.stdout).splitlines() if ln.strip()]
            first = lines[0] if lines else f"protoc exited with {done.returncode}"
            raise SpecError(f"grpc.proto: {first}")
        return descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())


def _read_protoset(path: Path) -> descriptor_pb2.FileDescriptorSet:
    try:
        return descriptor_pb2.FileDescriptorSet.FromString(path.read_bytes())
    except OSError as exc:
        raise SpecError(f"grpc.protoset: cannot read {path}: {exc.strerror or exc}") from None
    except Exception:  # noqa: BLE001 - protobuf's DecodeError
        raise SpecError(f"grpc.protoset: {path} is not a FileDescriptorSet (protoc "
                        "--descriptor_set_out --include_imports)") from None


def _pool(protos: list[descriptor_pb2.FileDescriptorProto]) -> descriptor_pool.DescriptorPool:
    pool = descriptor_pool.DescriptorPool()
    added: set[str] = set()
    pending = list(protos)
    while pending:  # dependencies first, whatever order the files came in
        ready = [p for p in pending if set(p.dependency) <= added]
        if not ready:
            missing = sorted(set(pending[0].dependency) - added)
            raise SpecError(f"grpc: {pending[0].name} imports {missing[0]}, which the schema "
                            "does not hold")
        for proto in ready:
            if proto.name not in added:
                pool.Add(proto)
                added.add(proto.name)
        pending = [p for p in pending if p.name not in added]
    return pool


def method_of(pool: descriptor_pool.DescriptorPool, call: str, field: str,
              services: list[str]) -> MethodDescriptor:
    """Return the unary method ``package.Service/Method``; SpecError names what is missing."""
    service_name, _, method_name = call.partition("/")
    try:
        service = pool.FindServiceByName(service_name)
    except KeyError:
        known = f"services: {', '.join(services)}" if services else "the schema has none"
        raise SpecError(f"{field}: unknown service {service_name!r} ({known})") from None
    method = service.methods_by_name.get(method_name)
    if method is None:
        names = ", ".join(sorted(service.methods_by_name))
        raise SpecError(f"{field}: {service_name} has no method {method_name!r} (its methods: "
                        f"{names})")
    if method.client_streaming or method.server_streaming:
        raise SpecError(f"{field}: {call} is a streaming method; slogate loads unary calls")
    return method


def service_names(protos: list[descriptor_pb2.FileDescriptorProto]) -> list[str]:
    """Return the full names of the services the files define."""
    return sorted(f"{p.package}.{s.name}" if p.package else s.name
                  for p in protos for s in p.service)


def _requests(pool: descriptor_pool.DescriptorPool, services: list[str], endpoint: EndpointSpec,
              index: int, base_dir: Path) -> tuple[bytes, ...]:
    assert endpoint.call is not None
    method = method_of(pool, endpoint.call, f"endpoints[{index}].call", services)
    message = message_factory.GetMessageClass(method.input_type)
    if endpoint.data_file is None:
        return (_encode(message, endpoint.data or {}, f"endpoints[{index}].data"),)
    path = base_dir / endpoint.data_file
    field = f"endpoints[{index}].dataFile"
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"{field}: cannot read {path}: {exc}") from None
    bodies = []
    for number, line in enumerate(lines[:MAX_DATA_LINES + 1], start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise SpecError(f"{field}: {path}:{number}: not JSON: {exc.msg}") from None
        bodies.append(_encode(message, value, f"{field}: {path}:{number}"))
    if not bodies:
        raise SpecError(f"{field}: {path} holds no request (one JSON object a line)")
    if len(lines) > MAX_DATA_LINES:
        raise SpecError(f"{field}: {path}: at most {MAX_DATA_LINES:,} lines")
    return tuple(bodies)


def _encode(message: Any, value: object, field: str) -> bytes:
    """Return ``value`` (JSON) serialized as ``message``; SpecError with protobuf's reason."""
    if not isinstance(value, dict):
        raise SpecError(f"{field}: the request message as a JSON mapping ({{field: value}}), "
                        f"got {type(value).__name__}")
    try:
        return bytes(json_format.ParseDict(value, message()).SerializeToString())
    except json_format.ParseError as exc:
        reason = str(exc).splitlines()[0]
        raise SpecError(f"{field}: not a {message.DESCRIPTOR.full_name}: {reason}") from None
