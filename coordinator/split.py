"""Splitting an experiment into exact per-worker plans (pure).

Splitting rules (the sums always equal what the user asked for):
- rate: every worker gets ``rate / W`` and the phase ``i / rate``, so worker ``i`` owns slots
  ``i, i + W, ...`` of the single global schedule ``n / rate``;
- requests, warm-up requests and concurrency: ``N // W`` each, and the first ``N % W`` workers one
  more (for requests this is the same as counting the slots ``n < N`` that worker ``i`` owns);
- stages of users: each stage's users as concurrency, stage by stage.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Literal
from urllib.parse import urlencode, urlsplit

from analysis.catalog import DEFAULT_OK_OUTCOMES, VERSION_SEPARATOR
from coordinator.errors import SpecError
from coordinator.grpc_spec import ResolvedGrpc, grpc_url_of
from coordinator.request_data import (
    MAX_RENDERED_BYTES,
    rendered_bytes,
    rendered_endpoints,
    with_rows,
)
from coordinator.spec import EndpointSpec, ExperimentSpec, LoadSpec
from workers.checks import ResponseChecks
from workers.plan import GRPC_METHOD, GrpcChannels, RequestTemplate, WorkerPlan


def split_count(total: int, parts: int) -> list[int]:
    """Return ``parts`` integers that sum to ``total``, differing by at most one, larger first."""
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def request_template(endpoint: EndpointSpec, target: str, base_dir: Path) -> RequestTemplate:
    """Return the endpoint as a ready-to-send template (absolute URL, headers, body bytes)."""
    url = target + endpoint.path
    if endpoint.query:
        url += ("&" if "?" in url else "?") + urlencode(endpoint.query)
    headers = dict(endpoint.headers)
    body: bytes | None = None
    content_type = endpoint.content_type
    if endpoint.body is not None:
        body = endpoint.body.encode()
    elif endpoint.body_file is not None:
        path = base_dir / endpoint.body_file
        try:
            body = path.read_bytes()
        except OSError as exc:
            raise SpecError(f"endpoints: bodyFile {path}: {exc.strerror or exc}") from None
    elif endpoint.json_body is not None:
        body = json.dumps(endpoint.json_body, separators=(",", ":")).encode()
        content_type = content_type or "application/json"
    if content_type and not any(k.lower() == "content-type" for k in headers):
        headers["Content-Type"] = content_type
    return RequestTemplate(
        label=endpoint.label, method=endpoint.method.value, url=url,
        headers=tuple(headers.items()), body=body, weight=endpoint.weight,
    )


def grpc_template(endpoint: EndpointSpec, server: str, bodies: tuple[bytes, ...],
                  timeout_s: float) -> RequestTemplate:
    """Return a gRPC endpoint as a template: its call's URL, metadata and serialized bodies."""
    return RequestTemplate(
        label=endpoint.label, method=GRPC_METHOD, url=f"{server}/{endpoint.call}",
        headers=tuple(endpoint.metadata.items()), body=bodies[0], bodies=bodies,
        deadline_s=endpoint.deadline or timeout_s, weight=endpoint.weight,
    )


def _templates(spec: ExperimentSpec, base_dir: Path, grpc: ResolvedGrpc | None
               ) -> tuple[RequestTemplate, ...]:
    """Return every endpoint's template, version by version (labelled when there are two)."""
    versions = spec.versions()
    out = []
    for version, url in versions:
        for index, endpoint in enumerate(spec.endpoints):
            if endpoint.call is None:
                template = request_template(endpoint, url, base_dir)
            else:
                server = grpc_url_of(url, spec.grpc, version)  # type: ignore[arg-type]
                if grpc is None or server is None:
                    raise SpecError(f"endpoints[{index}].call: the gRPC schema was not "
                                    "resolved (coordinator.grpc_schema.resolve_grpc)")
                template = grpc_template(endpoint, server, grpc.bodies[index], spec.load.timeout)
            out.append(_labelled(template, version if len(versions) > 1 else None))
    return tuple(out)


def _labelled(template: RequestTemplate, version: str | None) -> RequestTemplate:
    if version is None:
        return template
    return dataclasses.replace(template, label=f"{version}{VERSION_SEPARATOR}{template.label}")


def choose_transport(spec: ExperimentSpec) -> Literal["fast", "aiohttp", "grpc"]:
    """Return ``grpc`` when an endpoint is a gRPC call, else :func:`http_transport`."""
    if any(e.call is not None for e in spec.endpoints):
        return "grpc"
    return http_transport(spec)


def http_transport(spec: ExperimentSpec) -> Literal["fast", "aiohttp"]:
    """Return ``fast`` or ``aiohttp``: the spec's choice, or for ``auto`` fast unless a request
    needs aiohttp (redirects, HEAD responses, which the fast path's parser cannot frame)."""
    origins = {urlsplit(url)[:2] for _, url in spec.versions()}
    needs_aiohttp = [reason for reason, needed in (
        ("baseline and candidate on different origins", len(origins) > 1),
        ("http.followRedirects", spec.http.follow_redirects),
        ("a HEAD endpoint", any(e.method.value == "HEAD" for e in spec.endpoints)),
    ) if needed]
    if spec.http.transport == "fast" and needs_aiohttp:
        raise SpecError(f"http.transport: fast cannot serve {needs_aiohttp[0]}; "
                        "use transport: aiohttp or auto")
    if spec.http.transport == "auto":
        return "aiohttp" if needs_aiohttp else "fast"
    return spec.http.transport


def _worker_templates(spec: ExperimentSpec, base_dir: Path, grpc: ResolvedGrpc | None
                      ) -> list[tuple[RequestTemplate, ...]]:
    """Return each worker's templates (:func:`_templates`, with each endpoint's response
    checks): the same for all, but an endpoint with request data carries worker ``i``'s slice
    of its rows, rows ``i, i + W, ...`` (workers.rows)."""
    workers, versions, count = spec.load.workers, spec.versions(), len(spec.endpoints)
    rows = _rendered_rows(spec, base_dir)
    out: list[list[RequestTemplate]] = [[] for _ in range(workers)]
    for position, template in enumerate(_templates(spec, base_dir, grpc)):
        version_index, index = divmod(position, count)
        endpoint = spec.endpoints[index]
        if endpoint.checks:
            template = dataclasses.replace(template, checks=ResponseChecks(
                checks=tuple(c.to_core(spec.error_ranges) for c in endpoint.checks),
                error_ranges=spec.error_ranges))
        if index not in rows:
            for templates in out:
                templates.append(template)
            continue
        version, url = versions[version_index]
        shown = version if len(versions) > 1 else None
        rendered = [_labelled(request_template(r, url, base_dir), shown) for r in rows[index]]
        if rendered_bytes(rendered) > MAX_RENDERED_BYTES:
            raise SpecError(f"endpoints[{index}].dataset: the rendered requests take "
                            f"{rendered_bytes(rendered) / 2**20:.0f} MiB, over the "
                            f"{MAX_RENDERED_BYTES // 2**20} MiB a plan may carry")
        data = endpoint.dataset
        assert data is not None
        seed = data.seed if data.seed is not None else (spec.load.seed or 0)
        for i, templates in enumerate(out):
            templates.append(with_rows(template, rendered[i::workers], data.order,
                                       f"{seed}/{i}/{index}"))
    return [tuple(templates) for templates in out]


def _rendered_rows(spec: ExperimentSpec, base_dir: Path) -> dict[int, list[EndpointSpec]]:
    """Return each data endpoint's rows, rendered (by endpoint index)."""
    rows: dict[int, list[EndpointSpec]] = {}
    for index, endpoint in enumerate(spec.endpoints):
        if endpoint.call is not None and (endpoint.dataset is not None or endpoint.checks):
            raise SpecError(f"endpoints[{index}]: dataset and checks are for HTTP endpoints, not "
                            "gRPC calls")
        if endpoint.dataset is not None:
            rows[index] = rendered_endpoints(endpoint, base_dir, index)
            if len(rows[index]) < spec.load.workers:
                raise SpecError(f"endpoints[{index}].dataset: {len(rows[index])} rows of "
                                f"{endpoint.dataset.file} cannot be split over "
                                f"{spec.load.workers} workers (each worker needs at least one "
                                "row)")
    return rows


def _stages(load: LoadSpec, per_version: int) -> tuple[tuple[float, float], ...]:
    """Return the global (rate, duration) steps from the start of stages of rates: the warm-up
    runs at the first stage's rate, its requests excluded as always."""
    stages = load.stages or []
    return tuple((stage.rate * per_version, _stage_s(load, index))
                 for index, stage in enumerate(stages) if stage.rate is not None)


def _user_stages(load: LoadSpec, workers: int) -> list[tuple[tuple[int, float], ...]]:
    """Return each worker's (users, duration) steps of stages of users: a stage's users split as
    concurrency is (:func:`split_count`, so the shares sum to the stage's users and worker
    ``i``'s share never exceeds its share of the peak); the warm-up runs the first stage's."""
    out: list[list[tuple[int, float]]] = [[] for _ in range(workers)]
    for index, stage in enumerate(load.stages or []):
        if stage.users is not None:
            for i, users in enumerate(split_count(stage.users, workers)):
                out[i].append((users, _stage_s(load, index)))
    return [tuple(steps) for steps in out]


def _stage_s(load: LoadSpec, index: int) -> float:
    """Return stage ``index``'s length from the start (the first includes the warm-up)."""
    assert load.stages is not None
    return load.stages[index].duration + (load.warmup or 0.0 if index == 0 else 0.0)


def worker_plans(spec: ExperimentSpec, base_dir: Path = Path("."),
                 grpc: ResolvedGrpc | None = None) -> list[WorkerPlan]:
    """Return one plan per worker; together they send exactly the spec's load. ``grpc``: the
    resolved schema of the gRPC endpoints, when there are any."""
    load = spec.load
    workers = load.workers
    versions = spec.versions()
    # Two versions: every endpoint once per version, version by version; the worker's picker
    # chooses an endpoint by weight and sends it to each version in turn, so baseline and
    # candidate strictly alternate with the same endpoint sequence. Rates and counts are per
    # version.
    per_worker = _worker_templates(spec, base_dir, grpc)
    per_version = len(versions)
    requests = None if load.requests is None else load.requests * per_version
    rate = None if load.rate is None else load.rate * per_version
    limits = split_count(requests, workers) if requests is not None else [None] * workers
    warmups = split_count((load.warmup_requests or 0) * per_version, workers)
    users = split_count(load.concurrency or 0, workers)
    if load.concurrency is not None and load.concurrency < workers:
        field = "load.stages: the peak of" if load.stages else "load.concurrency:"
        raise SpecError(f"{field} {load.concurrency} users cannot be split over "
                        f"{workers} workers (give at least one user per worker)")
    if requests is not None and requests < workers:
        raise SpecError(f"load.requests: {load.requests} requests cannot be split over "
                        f"{workers} workers (give at least one request per worker)")
    in_flight = split_count(max(load.max_in_flight, workers), workers)
    user_stages = _user_stages(load, workers)
    plans = []
    for i in range(workers):
        plans.append(WorkerPlan(
            worker_index=i,
            worker_count=workers,
            requests=per_worker[i],
            model=load.model,
            rate_rps=None if rate is None else rate / workers,
            phase_s=0.0 if rate is None else i / rate,
            concurrency=users[i],
            duration_s=load.duration,
            request_limit=limits[i],
            warmup_s=load.warmup or 0.0,
            warmup_requests=warmups[i],
            timeout_s=load.timeout,
            window_s=load.window,
            max_in_flight=in_flight[i],
            max_duration_s=load.max_duration,
            schedule_rate_rps=rate,
            arrival=load.arrival,
            seed=load.seed,
            ramp_s=load.ramp.duration if load.ramp else 0.0,
            ramp_from_rps=load.ramp.from_ * per_version if load.ramp else 0.0,
            ramp_to_rps=(load.ramp.to * per_version if load.ramp.to else rate) if load.ramp else None,
            think_s=load.think_time or 0.0,
            transport=choose_transport(spec),
            error_ranges=spec.error_ranges,
            verify_tls=not spec.http.insecure,
            follow_redirects=spec.http.follow_redirects,
            versions=per_version,
            grpc=grpc.channels if grpc else GrpcChannels(),
            ok_outcomes=grpc.ok_outcomes if grpc else DEFAULT_OK_OUTCOMES,
            stages=_stages(load, per_version),
            user_stages=user_stages[i],
        ))
    return plans
