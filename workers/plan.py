"""What one LoadWorker is asked to do: frozen values built by the coordinator, read by the engine.

A plan is this worker's share of the experiment. In the open model, worker ``i`` of ``W`` sends the
requests ``i, i + W, i + 2W, ...`` of the one global schedule at ``rate`` requests/s, so the workers
together send exactly the schedule the user asked for, interleaved, from one common start time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from workers.checks import ResponseChecks


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestTemplate:
    """One endpoint, ready to send: absolute URL, headers and body bytes."""

    label: str
    method: str
    url: str
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes | None = None
    weight: float = 1.0
    # gRPC (method "GRPC", url grpc[s]://host:port/package.Service/Method, headers = metadata):
    # the request messages already serialized, sent in turn; the call's deadline
    bodies: tuple[bytes, ...] = ()
    deadline_s: float | None = None
    # Request data (workers.rows): this worker's rows, each rendered as a template of its own
    # (same label, method and weight); sent in ``order``, seeded by ``stream``.
    rows: tuple[RequestTemplate, ...] = ()
    order: Literal["sequential", "random", "shuffle"] = "sequential"
    stream: str = ""
    checks: ResponseChecks | None = None  # what a response must hold (workers.checks)


GRPC_METHOD = "GRPC"


@dataclass(frozen=True, slots=True, kw_only=True)
class GrpcChannels:
    """How a worker connects to gRPC servers: ``channels`` per origin (each one HTTP/2
    connection, calls multiplexed on it) and, for ``grpcs://``, the TLS settings."""

    channels: int = 1
    ca_pem: bytes | None = None  # trust these roots instead of the system's
    server_name: str | None = None  # the name checked in the server certificate
    insecure: bool = False  # trust whatever certificate the server shows (test setups only)


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerPlan:
    """One worker's share of the load; times in seconds from the common start.

    Example: worker 1 of 2 of a 100 req/s run has ``rate_rps=50.0`` and ``phase_s=0.01``.
    """

    worker_index: int
    worker_count: int
    requests: tuple[RequestTemplate, ...]  # version by version when versions > 1
    model: Literal["open", "closed"]
    rate_rps: float | None = None  # this worker's share (open model)
    phase_s: float = 0.0  # intended time of this worker's first request (open model)
    concurrency: int = 0  # this worker's virtual users (closed model)
    duration_s: float | None = None  # measured phase length, warm-up excluded
    request_limit: int | None = None  # this worker's measured requests, warm-up excluded
    warmup_s: float = 0.0
    warmup_requests: int = 0
    timeout_s: float = 10.0
    window_s: float = 1.0
    max_in_flight: int = 1000
    max_duration_s: float = 3600.0
    schedule_rate_rps: float | None = None  # the global rate this worker's slots belong to
    arrival: Literal["constant", "poisson"] = "constant"
    seed: int | None = None
    ramp_s: float = 0.0  # ramp stage length; its requests are excluded like warm-up
    ramp_from_rps: float = 0.0  # global rates at the ramp's start and end
    ramp_to_rps: float | None = None
    think_s: float = 0.0  # closed model: pause between a user's requests
    error_ranges: tuple[tuple[int, int], ...] = ((400, 599),)  # for live error counts only
    resume_s: float = 0.0  # a replacement worker: skip the slots intended before this time
    transport: Literal["fast", "aiohttp", "grpc"] = "fast"  # grpc: gRPC endpoints (and aiohttp)
    grpc: GrpcChannels = GrpcChannels()
    ok_outcomes: tuple[str, ...] = ("grpc:OK",)  # outcomes other than a status that are no error
    verify_tls: bool = True
    follow_redirects: bool = False
    versions: int = 1  # baseline and candidate: 2, each version's endpoints strictly alternating
    # load stages: (global rate, duration) steps from the start; the first includes warm-up
    stages: tuple[tuple[float, float], ...] = ()
    # closed model, stages of users: (this worker's users, duration) steps from the start, the
    # first including warm-up; ``concurrency`` is the peak (workers.user_stages)
    user_stages: tuple[tuple[int, float], ...] = ()

    @property
    def excluded_s(self) -> float:
        """Return the leading time whose requests are excluded from metrics (ramp + warm-up)."""
        return self.ramp_s + self.warmup_s

    @property
    def expected_s(self) -> float:
        """Return how long this worker is expected to run, warm-up and stop time included."""
        limits = [self.max_duration_s]
        if self.duration_s is not None:
            limits.append(self.excluded_s + self.duration_s)
        if self.request_limit is not None and self.rate_rps:
            total = self.request_limit + self.warmup_requests
            limits.append(self.excluded_s + self.phase_s + total / self.rate_rps)
        return min(limits) + self.timeout_s
