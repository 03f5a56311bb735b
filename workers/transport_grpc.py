"""The gRPC ``Sender`` on ``grpc.aio``: the one module of slogate that imports grpc.

Requests reach here already serialized (the coordinator turned each endpoint's JSON ``data`` into
protobuf bytes when it checked the spec), so a call sends bytes and reads bytes: no message
classes in the worker, no serialization on the hot path. The response is not decoded.

Outcomes are ``grpc:<CODE>`` for every call (``grpc:OK``, ``grpc:UNAVAILABLE``,
``grpc:DEADLINE_EXCEEDED``...); an exception that is not an RPC error is ``error:<Name>``.

Channels: ``GrpcChannels.channels`` per origin and per worker (default 1, as ghz's default
``--connections 1``). One channel is one HTTP/2 connection with every call multiplexed on it;
calls go round-robin over the channels of their origin. ``grpc.use_local_subchannel_pool``
keeps two channels of one process from sharing a connection.

Also here, for the coordinator: :func:`reflect_files`, a server reflection client (the schema of
a target that serves reflection), and :func:`server_certificate` for ``tls.insecure``.
"""

from __future__ import annotations

import itertools
import ssl
import time
from collections.abc import Iterator, Sequence
from urllib.parse import urlsplit

import grpc
from grpc import aio
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from workers.plan import GrpcChannels, RequestTemplate

OK = "grpc:OK"
_CHANNEL_OPTIONS = (("grpc.use_local_subchannel_pool", 1), ("grpc.enable_retries", 0))


def split_grpc_url(url: str) -> tuple[str, str, str]:
    """Return (scheme, host:port, /package.Service/Method) of a ``grpc[s]://`` template URL."""
    parts = urlsplit(url)
    return parts.scheme, parts.netloc, parts.path


def credentials(settings: GrpcChannels, address: str) -> grpc.ChannelCredentials:
    """Return the TLS credentials of a ``grpcs://`` origin: the spec's CA, else the server's
    own certificate when ``insecure``, else the system's roots."""
    roots = settings.ca_pem
    if roots is None and settings.insecure:
        roots = server_certificate(address).encode()
    return grpc.ssl_channel_credentials(root_certificates=roots)


def server_certificate(address: str, timeout_s: float = 5.0) -> str:
    """Return the PEM certificate a TLS server at ``host:port`` presents, unverified."""
    host, _, port = address.rpartition(":")
    return ssl.get_server_certificate((host.strip("[]"), int(port)), timeout=timeout_s)


def _options(settings: GrpcChannels) -> list[tuple[str, object]]:
    options: list[tuple[str, object]] = list(_CHANNEL_OPTIONS)
    if settings.server_name:
        options.append(("grpc.ssl_target_name_override", settings.server_name))
    return options


def open_channel(scheme: str, address: str, settings: GrpcChannels) -> aio.Channel:
    """Return a new ``grpc.aio`` channel (call inside the event loop that will use it)."""
    if scheme == "grpcs":
        return aio.secure_channel(address, credentials(settings, address), _options(settings))
    return aio.insecure_channel(address, _options(settings))


class GrpcSender:
    """Sends the templates' unary calls over ``grpc.aio`` channels; raw bytes both ways.

    Example::

        sender = GrpcSender(templates, timeout_s=2.0, settings=GrpcChannels(channels=2))
        outcome, sent_ns = await sender.send(0)  # ("grpc:OK", ...)
        await sender.aclose()
    """

    def __init__(self, templates: Sequence[RequestTemplate], *, timeout_s: float,
                 settings: GrpcChannels) -> None:
        self._channels: dict[tuple[str, str], list[aio.Channel]] = {}
        self._calls: list[_Call | None] = []
        for template in templates:
            if not template.url.startswith(("grpc://", "grpcs://")):
                self._calls.append(None)
                continue
            scheme, address, path = split_grpc_url(template.url)
            channels = self._channels.get((scheme, address))
            if channels is None:
                channels = self._channels[(scheme, address)] = [
                    open_channel(scheme, address, settings)
                    for _ in range(max(1, settings.channels))]
            self._calls.append(_Call(channels, path, template, timeout_s))

    async def send(self, endpoint: int) -> tuple[str, int]:
        """Make one call; return (``grpc:<CODE>``, send time in monotonic ns)."""
        call = self._calls[endpoint]
        if call is None:
            raise ValueError(f"endpoint {endpoint} is not a gRPC call")
        method = next(call.methods)
        body = next(call.bodies)
        sent_ns = time.monotonic_ns()
        try:
            await method(body, timeout=call.deadline_s, metadata=call.metadata)
            return OK, sent_ns
        except aio.AioRpcError as exc:
            return f"grpc:{exc.code().name}", sent_ns
        except Exception as exc:  # noqa: BLE001 - every call ends as one outcome
            return f"error:{type(exc).__name__}", sent_ns

    async def aclose(self) -> None:
        """Close every channel (calls still in flight are cancelled)."""
        for channels in self._channels.values():
            for channel in channels:
                await channel.close()


class _Call:
    """One template bound to its channels: multicallables round-robin, bodies in turn."""

    __slots__ = ("bodies", "deadline_s", "metadata", "methods")

    def __init__(self, channels: list[aio.Channel], path: str, template: RequestTemplate,
                 timeout_s: float) -> None:
        # No serializers: the request is bytes already and the response stays bytes.
        self.methods: Iterator[aio.UnaryUnaryMultiCallable] = itertools.cycle(
            [c.unary_unary(path) for c in channels])
        bodies = template.bodies or (template.body or b"",)
        self.bodies: Iterator[bytes] = itertools.cycle(bodies)
        self.metadata = tuple((k.lower(), v) for k, v in template.headers) or None
        self.deadline_s = template.deadline_s or timeout_s


def reflect_files(url: str, symbols: Sequence[str], settings: GrpcChannels,
                  timeout_s: float = 5.0) -> list[bytes]:
    """Return the serialized ``FileDescriptorProto`` files (dependencies included) that define
    ``symbols`` (service names) and every service the server lists, asked of the server at
    ``grpc[s]://host:port`` by reflection.

    Raises :class:`ReflectionError` with one line when the server cannot be asked.
    """
    scheme, address, _ = split_grpc_url(url)
    if scheme == "grpcs":
        channel = grpc.secure_channel(address, credentials(settings, address), _options(settings))
    else:
        channel = grpc.insecure_channel(address, _options(settings))
    try:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        listing = [reflection_pb2.ServerReflectionRequest(list_services="")]
        served = [s.name for answer in stub.ServerReflectionInfo(iter(listing), timeout=timeout_s)
                  for s in answer.list_services_response.service]
        asks = [reflection_pb2.ServerReflectionRequest(file_containing_symbol=s)
                for s in dict.fromkeys([*symbols, *served])]
        found: list[bytes] = []
        for answer in stub.ServerReflectionInfo(iter(asks), timeout=timeout_s):
            if answer.HasField("error_response"):
                continue  # an unknown service: the schema check names it
            found += [raw for raw in answer.file_descriptor_response.file_descriptor_proto
                      if raw not in found]
        return found
    except grpc.RpcError as exc:
        code = exc.code().name if isinstance(exc, grpc.Call) else "error"
        raise ReflectionError(f"server reflection at {address} failed: {code}") from None
    finally:
        channel.close()


class ReflectionError(Exception):
    """The server could not be asked for its schema (down, no reflection service, TLS)."""
