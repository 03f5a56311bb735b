"""The gRPC part of the spec: an endpoint's call fields and the top-level ``grpc`` block.

An endpoint with ``call`` is a unary gRPC call; its server is the version's URL when that is
``grpc://`` (plaintext) or ``grpcs://`` (TLS), else ``grpc.target`` (and ``grpc.baseline``), so
one experiment may mix HTTP and gRPC endpoints. Example::

    target: grpc://127.0.0.1:50051
    grpc:
      proto: [hello.proto]          # or protoset: hello.pb, or reflection: true
      importPaths: [protos]
      tls: {ca: ca.pem, serverName: hello.local}   # grpcs:// only
      errorCodes: [UNAVAILABLE, DEADLINE_EXCEEDED] # default: every code but OK
    endpoints:
      - call: hello.Greeter/SayHello
        data: {name: slogate}
        metadata: {x-team: sre}
        deadline: 500ms

What can be checked without the schema is checked here (pure); the schema itself (compiling
the protos, reflection, the messages against their types) is :mod:`coordinator.grpc_schema`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

from analysis.catalog import GRPC_STATUS_CODES as STATUS_CODES
from analysis.catalog import ok_outcomes
from coordinator import units
from promote.spec import SpecModel
from workers.plan import GrpcChannels

GRPC_SCHEMES = ("grpc", "grpcs")
_CALL = re.compile(r"^([A-Za-z_]\w*\.)*[A-Za-z_]\w*/[A-Za-z_]\w*$")
_METADATA_KEY = re.compile(r"^[0-9a-z_.\-]+$")
_Deadline = Annotated[float, BeforeValidator(units.parse_duration_s), Field(gt=0, le=3600.0)]


class GrpcCallFields(BaseModel):
    """An endpoint's gRPC fields (mixed into ``EndpointSpec``): with ``call`` set, the endpoint
    is a unary call and its HTTP fields (path, method, body, json, query) stay unset."""

    call: str | None = Field(None, description="A unary gRPC call: package.Service/Method.")
    data: Any = Field(None, description="The request message as JSON (a mapping).")
    data_file: str | None = Field(None, alias="dataFile", description="A file of JSON lines, "
                                  "one request message each, sent in turn (relative to the spec).")
    metadata: dict[str, str] = Field(default_factory=dict, description="gRPC metadata.")
    deadline: _Deadline | None = Field(None, description="The call's deadline; default "
                                       "load.timeout.")

    @field_validator("call")
    @classmethod
    def _call_names_a_method(cls, call: str | None) -> str | None:
        if call is not None and not _CALL.match(call):
            raise ValueError(f"{call!r} is not package.Service/Method")
        return call

    @field_validator("metadata")
    @classmethod
    def _metadata_keys(cls, metadata: dict[str, str]) -> dict[str, str]:
        for key, value in metadata.items():
            if not _METADATA_KEY.match(key.lower()) or key.lower().startswith("grpc-"):
                raise ValueError(f"{key!r} is not a gRPC metadata key (lower case letters, "
                                 "digits, '-', '_', '.'; not grpc-)")
            if re.search(r"[\x00-\x1f\x7f]", value):
                raise ValueError(f"the value of {key!r} contains a control character")
        return metadata

    @model_serializer(mode="wrap")
    def _http_endpoints_as_before(self, handler: SerializerFunctionWrapHandler) -> Any:
        """An HTTP endpoint is saved without the gRPC fields, as it was before they existed."""
        data = handler(self)
        if self.call is None and isinstance(data, dict):
            for key in ("call", "data", "data_file", "dataFile", "metadata", "deadline"):
                data.pop(key, None)
        return data

    def grpc_field_errors(self, http_fields: dict[str, object]) -> str | None:
        """Return why the call and HTTP fields do not go together, or None."""
        grpc_set = [k for k, v in (("data", self.data), ("dataFile", self.data_file),
                                   ("metadata", self.metadata), ("deadline", self.deadline)) if v]
        if self.call is None:
            return f"{grpc_set[0]}: set call as well (a gRPC field)" if grpc_set else None
        clash = [k for k, v in http_fields.items() if v]
        if clash:
            return f"{clash[0]}: an HTTP field; a gRPC endpoint (call) has none"
        if self.data is not None and self.data_file is not None:
            return "dataFile: set data or dataFile, not both"
        if self.data is not None and not isinstance(self.data, dict):
            return "data: the request message as a JSON mapping ({field: value})"
        return None


class GrpcTls(SpecModel):
    """TLS of a ``grpcs://`` server: a CA file, or ``insecure`` (trust its certificate as it
    is), and the name checked in the certificate."""

    ca: str | None = Field(None, description="PEM file of the CA (relative to the spec).")
    insecure: bool = Field(False, description="Skip verification: trust the certificate the "
                           "server shows (test setups only).")
    server_name: str | None = Field(None, description="Name to check in the certificate; "
                                    "default the host of the URL.")

    @model_validator(mode="after")
    def _ca_or_insecure(self) -> GrpcTls:
        if self.ca is not None and self.insecure:
            raise ValueError("insecure: set ca or insecure, not both")
        return self


class GrpcSpec(SpecModel):
    """Where the schema comes from, TLS, channels and which status codes are errors."""

    proto: list[str] = Field(default_factory=list, description=".proto files, compiled at "
                             "start (relative to the spec).")
    import_paths: list[str] = Field(default_factory=list, description="Import paths of the "
                                    "protos; default the folder of each.")
    protoset: str | None = Field(None, description="A compiled FileDescriptorSet file.")
    reflection: bool = Field(False, description="Ask the server for its schema.")
    tls: GrpcTls | None = Field(None, description="TLS settings of grpcs:// servers.")
    channels: int = Field(1, ge=1, le=64, description="Channels (HTTP/2 connections) per "
                          "worker and server; calls are multiplexed on them.")
    error_codes: tuple[str, ...] | None = Field(None, description="Status codes counted as "
                                                "errors; default every code but OK.")
    target: str | None = Field(None, description="grpc[s]://host:port of the candidate's gRPC "
                               "endpoints when target is an HTTP URL.")
    baseline: str | None = Field(None, description="grpc[s]://host:port of the baseline's gRPC "
                                 "endpoints when baseline is an HTTP URL.")

    @field_validator("target", "baseline")
    @classmethod
    def _grpc_urls(cls, url: str | None) -> str | None:
        return None if url is None else check_grpc_url(url)

    @field_validator("error_codes")
    @classmethod
    def _known_codes(cls, codes: tuple[str, ...] | None) -> tuple[str, ...] | None:
        for code in codes or ():
            if code not in STATUS_CODES:
                raise ValueError(f"{code!r} is not a gRPC status code ({', '.join(STATUS_CODES)})")
        return codes

    @model_validator(mode="after")
    def _one_schema_source(self) -> GrpcSpec:
        given = [k for k, v in (("proto", self.proto), ("protoset", self.protoset),
                                ("reflection", self.reflection)) if v]
        if len(given) > 1:
            raise ValueError(f"{given[1]}: give one schema source: proto, protoset or "
                             "reflection")
        return self

    def ok_outcomes(self) -> tuple[str, ...]:
        """Return the outcomes that are no error: ``grpc:OK`` and codes not in errorCodes."""
        return ok_outcomes(self.error_codes)


def is_grpc_url(url: str | None) -> bool:
    """Return True for a ``grpc://`` or ``grpcs://`` URL."""
    return url is not None and urlsplit(url).scheme in GRPC_SCHEMES


def grpc_scheme_for(url: str, calls_only: bool) -> str:
    """Return a Service URL (``http://<service>.<namespace>.svc:<port>``) as the endpoints
    reach it: ``grpc://`` (plaintext gRPC) when they are all gRPC calls, else unchanged."""
    if calls_only and url.startswith("http://"):
        return "grpc://" + url.removeprefix("http://")
    return url


def check_grpc_url(url: str) -> str:
    """Return ``url`` without a trailing slash; raise ValueError unless it is grpc[s]://host:port
    with nothing after the port."""
    parts = urlsplit(url)
    if parts.scheme not in GRPC_SCHEMES or not parts.hostname or parts.port is None:
        raise ValueError(f"{url!r} is not grpc://host:port or grpcs://host:port")
    if parts.path.strip("/") or parts.query or parts.fragment or parts.username:
        raise ValueError(f"{url!r}: a gRPC server URL is grpc[s]://host:port, nothing more")
    return url.rstrip("/")


def grpc_url_of(version_url: str, grpc: GrpcSpec | None, version: Literal["baseline",
                "candidate"]) -> str | None:
    """Return the gRPC server of a version: its URL when gRPC, else ``grpc.target`` or
    ``grpc.baseline``; None when there is none."""
    if is_grpc_url(version_url):
        return version_url
    if grpc is None:
        return None
    return grpc.baseline if version == "baseline" else grpc.target


def deadline_problem(deadlines: list[float | None], timeout_s: float) -> str | None:
    """Return why an endpoint's deadline cannot be kept (one line), or None: a call still
    running ``load.timeout`` after the schedule ends is cut and counted as ``timeout``, so a
    deadline may not exceed it."""
    for index, deadline in enumerate(deadlines):
        if deadline is not None and deadline > timeout_s:
            return (f"endpoints[{index}].deadline: {deadline:g} s is longer than load.timeout "
                    f"({timeout_s:g} s); raise load.timeout or shorten the deadline")
    return None


def check_versions(versions: list[tuple[str, str]], grpc: GrpcSpec | None, *, has_grpc: bool,
                   has_http: bool) -> str | None:
    """Return why the endpoints cannot reach their servers (one line), or None."""
    for version, url in versions:
        where = "target" if version == "candidate" else "baseline"
        if has_http and is_grpc_url(url):
            return f"{where}: {url} is a gRPC server but an endpoint is HTTP (give it call, " \
                   f"or an http(s) {where} with grpc.{where} for the calls)"
        if has_grpc and grpc_url_of(url, grpc, version) is None:  # type: ignore[arg-type]
            return f"{where}: {url} is not grpc[s]://host:port and grpc.{where} is not set, " \
                   "but an endpoint has call"
    if grpc is not None and has_grpc and not (grpc.proto or grpc.protoset or grpc.reflection):
        return "grpc: give the schema of the calls: proto, protoset or reflection: true"
    if has_grpc and grpc is None:
        return "grpc: an endpoint has call; give the schema: grpc.proto, grpc.protoset or " \
               "grpc.reflection"
    tls = grpc.tls if grpc is not None else None
    urls = [grpc_url_of(u, grpc, v) for v, u in versions]  # type: ignore[arg-type]
    if tls is not None and not any(u and u.startswith("grpcs://") for u in urls):
        return "grpc.tls: the gRPC server is plaintext (grpc://); write grpcs:// for TLS"
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class ResolvedGrpc:
    """What the plans need of the gRPC schema (:func:`coordinator.grpc_schema.resolve_grpc`):
    each call's serialized requests by endpoint index, how workers connect, which outcomes
    are no error."""

    bodies: Mapping[int, tuple[bytes, ...]]
    channels: GrpcChannels
    ok_outcomes: tuple[str, ...] = ("grpc:OK",)
