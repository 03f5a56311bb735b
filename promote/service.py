"""The promotion service: a small HTTP server that alone holds the GitHub token.

Load workers and nightly runners post a results.json to ``POST /v1/promotions`` with
``Authorization: Bearer <shared secret>``; the service re-judges the run itself (through
:func:`promote.flow.decide`: a PASS is promoted, a FAIL reverted when the block says
``onFail: revert-pr``), checks the repository (and the ``upstream`` the pull request would go
to) and manifest paths against its allow-list and opens or updates the pull request with its own
token. ``GET /healthz`` answers 200.

Invariants:

- the request never carries a GitHub token, and none it names is used: a promotion block's
  ``tokenFile`` is ignored, ``provider`` must be ``github`` and ``baseUrl`` must equal the
  service's own GitHub API URL (otherwise a caller could send the token to a server of its own);
- the decisions (auth, size, allow-list) are small pure functions returning a :class:`Rejection`
  or ``None``; the aiohttp handlers only read, call them and answer;
- the token and the shared secret appear in no response and no log line; one log line per
  request: method, path, status, repository;
- one promotion at a time (PyGithub is blocking and runs in a thread; two runs on one branch
  would race).

Status codes: 200 updated/already promoted/nothing to revert/merged, 201 opened, 400 not a
results document or no promotion block, 401 bad shared secret, 403 not allowed, 409 neither PASS
nor (with revert-pr) FAIL when re-judged, 413 body over the size limit, 502 GitHub failed.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from analysis.results import SCHEMA, Results
from coordinator.errors import PromotionError, SlogateError
from coordinator.spec import PromotionSpec
from promote.flow import Outcome, decide, promote, revert
from promote.provider import Provider

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 8 * 1024 * 1024
ProviderFactory = Callable[[PromotionSpec, str], Provider]
REPOSITORY = web.RequestKey("repository", str)  # for the log line


@dataclass(frozen=True, slots=True, kw_only=True)
class Allowed:
    """One repository the service may promote to, and the manifest paths (``None``: any path).

    Parsed from ``owner/name`` or ``owner/name:path,path`` by :func:`parse_allowed`.
    """

    repository: str
    paths: frozenset[str] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceConfig:
    """What the service trusts: its allow-list, token, shared secret and GitHub API URL.

    Example::

        ServiceConfig(allowed=(parse_allowed("acme/gitops:deploy/app.yaml"),),
                      token=token, secret=secret)
    """

    allowed: tuple[Allowed, ...]
    token: str
    secret: str
    github_url: str | None = None
    max_body_bytes: int = MAX_BODY_BYTES

    def __repr__(self) -> str:  # never print the token or the secret
        return (f"ServiceConfig(allowed={self.allowed!r}, github_url={self.github_url!r}, "
                f"max_body_bytes={self.max_body_bytes})")


@dataclass(frozen=True, slots=True, kw_only=True)
class Rejection:
    """Why a request is refused: the HTTP status and a one-line error for the JSON answer."""

    status: int
    error: str


def parse_allowed(text: str) -> Allowed:
    """Return the allow-list entry of ``owner/name[:path,path...]``; raise PromotionError if bad."""
    repository, colon, paths = text.partition(":")
    if repository.count("/") != 1 or not all(repository.split("/")):
        raise PromotionError(f"--allow {text!r}: the repository must be owner/name")
    if not colon:
        return Allowed(repository=repository)
    items = frozenset(p.strip() for p in paths.split(",") if p.strip())
    if not items:
        raise PromotionError(f"--allow {text!r}: no path after the colon")
    return Allowed(repository=repository, paths=items)


def check_auth(header: str | None, secret: str) -> Rejection | None:
    """Return a 401 rejection unless ``header`` is ``Bearer <secret>`` (constant-time compare)."""
    scheme, _, given = (header or "").partition(" ")
    if not secret or scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), secret.encode()):
        return Rejection(status=401, error="missing or wrong shared secret")
    return None


def check_size(content_length: int | None, limit: int) -> Rejection | None:
    """Return a 413 rejection if the declared body size is over ``limit`` bytes."""
    if content_length is not None and content_length > limit:
        return Rejection(status=413, error=f"the body is over {limit} bytes")
    return None


def check_allowed(promotion: PromotionSpec, config: ServiceConfig) -> Rejection | None:
    """Return a 403 rejection unless the provider, API URL, repository (and the upstream the
    pull request goes to) and paths are allowed."""
    if promotion.provider != "github":
        return Rejection(status=403, error="this service promotes to GitHub only")
    if (promotion.base_url or None) != (config.github_url or None):
        return Rejection(status=403, error="promotion.baseUrl is not this service's GitHub")
    wanted = {m.path for m in promotion.manifests}  # the files written; ``from`` is only read
    for repository in filter(None, (promotion.repository, promotion.upstream)):
        rejected = _check_repository(repository, wanted, config)
        if rejected:
            return rejected
    return None


def _check_repository(repository: str, wanted: set[str], config: ServiceConfig
                      ) -> Rejection | None:
    entries = [a for a in config.allowed if a.repository.lower() == repository.lower()]
    if not entries:
        return Rejection(status=403, error=f"repository {repository} is not allowed")
    for entry in entries:
        if entry.paths is None or wanted <= entry.paths:
            return None
    refused = sorted(wanted - set().union(*(e.paths or set() for e in entries)))
    return Rejection(status=403, error=f"path {', '.join(refused)} of {repository} is "
                                       "not allowed")


def parse_request(body: bytes) -> tuple[Results, PromotionSpec] | Rejection:
    """Return the results and its promotion block, or a 400 rejection naming what is wrong."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return Rejection(status=400, error=f"not valid JSON ({exc.__class__.__name__})")
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        return Rejection(status=400, error=f"not a results document (schema {SCHEMA})")
    try:
        results = Results.model_validate(data)
    except ValidationError as exc:
        return Rejection(status=400, error=f"not a results document: {_first_error(exc)}")
    block = results.spec.get("promotion")
    if not block:
        return Rejection(status=400, error="the results' spec has no promotion block")
    try:
        promotion = PromotionSpec.model_validate(block)
    except ValidationError as exc:
        return Rejection(status=400, error=f"promotion: {_first_error(exc)}")
    return results, promotion


def _first_error(exc: ValidationError) -> str:
    first = exc.errors(include_url=False)[0]
    return f"{'.'.join(str(p) for p in first['loc']) or 'document'}: {first['msg']}"


def github_factory(promotion: PromotionSpec, token: str) -> Provider:
    """Return the GitHub provider of ``promotion`` with the service's token."""
    from promote.github import GitHubProvider

    return GitHubProvider(promotion.repository, token, base_url=promotion.base_url,
                          upstream=promotion.upstream)


def run_checked(results: Results, promotion: PromotionSpec, provider: Callable[[], Provider]
                ) -> Outcome | Rejection:
    """Re-judge the run (409 unless PASS, or FAIL with revert-pr), then promote or revert it
    (502 if GitHub fails)."""
    try:
        action = decide(results, promotion)
    except SlogateError as exc:
        return Rejection(status=409, error=str(exc))
    try:
        return (revert if action == "revert" else promote)(results, promotion, provider())
    except SlogateError as exc:
        return Rejection(status=502, error=str(exc))


def make_app(config: ServiceConfig, factory: ProviderFactory = github_factory) -> web.Application:
    """Return the aiohttp application of the service (``make_app(config)`` for production)."""
    lock = asyncio.Lock()

    async def promotions(request: web.Request) -> web.Response:
        rejected = (check_auth(request.headers.get("Authorization"), config.secret)
                    or check_size(request.content_length, config.max_body_bytes))
        if rejected:
            return _refuse(rejected)
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _refuse(Rejection(status=413, error=f"the body is over "
                                                       f"{config.max_body_bytes} bytes"))
        parsed = parse_request(body)
        if isinstance(parsed, Rejection):
            return _refuse(parsed)
        results, promotion = parsed
        request[REPOSITORY] = promotion.repository
        rejected = check_allowed(promotion, config)
        if rejected:
            return _refuse(rejected)
        async with lock:
            done = await asyncio.get_running_loop().run_in_executor(
                None, run_checked, results, promotion, lambda: factory(promotion, config.token))
        if isinstance(done, Rejection):
            return _refuse(done)
        return web.json_response({"status": done.status, "branch": done.branch,
                                  "pullRequest": done.pull.url if done.pull else None},
                                 status=201 if done.status == "opened" else 200)

    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application(middlewares=[_log_requests],
                          client_max_size=config.max_body_bytes)
    app.add_routes([web.post("/v1/promotions", promotions), web.get("/healthz", healthz)])
    return app


def _refuse(rejection: Rejection) -> web.Response:
    return web.json_response({"error": rejection.error}, status=rejection.status)


@web.middleware
async def _log_requests(request: web.Request, handler: Any) -> web.StreamResponse:
    """Log one line per request: method, path, status, repository (never a header or body)."""
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        log.info("%s %s %d %s", request.method, request.path, exc.status,
                 request.get(REPOSITORY, "-"))
        raise
    except Exception:
        log.info("%s %s 500 %s", request.method, request.path, request.get(REPOSITORY, "-"))
        raise
    log.info("%s %s %d %s", request.method, request.path, response.status,
             request.get(REPOSITORY, "-"))
    return response


def serve(config: ServiceConfig, host: str, port: int, *,
          factory: ProviderFactory = github_factory) -> None:
    """Serve the promotion service on ``host:port`` until interrupted."""
    try:
        web.run_app(make_app(config, factory), host=host, port=port, access_log=None,
                    print=None, shutdown_timeout=5)
    except OSError as exc:
        raise PromotionError(f"promotion service: cannot listen on {host}:{port} "
                             f"({exc.strerror or exc.__class__.__name__})") from None
