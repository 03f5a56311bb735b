"""The Sender of a plan with gRPC endpoints: :class:`~workers.transport_grpc.GrpcSender` alone,
or with aiohttp beside it (:class:`~workers.transport.Dispatch`) when the experiment mixes HTTP
and gRPC endpoints.

Both run on the coroutine engine (``AiohttpLoop`` in :mod:`workers.load_worker`): one task per
request, the same pacer, picker, recorder, bounds and coordinated-omission correction as HTTP.
grpc is imported only when a plan has gRPC endpoints.

A gRPC-only plan runs with ``sender_keeps_deadline``: every call carries its deadline (the
endpoint's, else the request timeout), which grpc enforces itself, and the Sender turns every
failure into an outcome, so no second ``asyncio.timeout`` guard wraps each call. That, and
outcome codes looked up once per (endpoint, outcome), took the gRPC path from 0.90x to 0.95x
the bare ``grpc.aio`` loop's calls per CPU-second (bench/grpc_bench.py).
"""

from __future__ import annotations

from collections.abc import Callable

from workers.plan import GRPC_METHOD, WorkerPlan
from workers.transport import Dispatch, Sender


def grpc_sender(plan: WorkerPlan, http: Callable[[WorkerPlan], Sender]) -> tuple[Sender, bool]:
    """Return the Sender of a plan with gRPC endpoints (call inside its event loop) and whether
    it keeps every request's deadline itself (gRPC alone); ``http`` makes the Sender of its
    HTTP endpoints, if it has any."""
    from workers.transport_grpc import GrpcSender

    grpc = GrpcSender(plan.requests, timeout_s=plan.timeout_s, settings=plan.grpc)
    flags = [t.method == GRPC_METHOD for t in plan.requests]
    if all(flags):
        return grpc, True
    return Dispatch(flags, grpc, http(plan)), False
