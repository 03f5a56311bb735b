"""The promotion service: a small HTTP server that alone holds the GitHub token.

Load workers and nightly runners post a results.json to ``POST /v1/promotions`` with
``Authorization: Bearer <shared secret>``; the service re-judges the run itself (through
:func:`promote.flow.decide`: a PASS is promoted, a FAIL reverted when the block says
``onFail: revert-pr``), checks every name that reaches a GitHub URL against a strict grammar
(:mod:`promote.names`), checks the repository (and the ``upstream`` the pull request would go
to), the base branch and the manifest paths against its allow-list, and the objectives against
the ones pinned for the repository, if any, and opens or updates the pull request with its own
token. ``GET /healthz`` answers 200.

Invariants:

- the request never carries a GitHub token, and none it names is used: a promotion block's
  ``tokenFile``/``tokenSecret`` is ignored, ``provider`` must be ``github`` and ``baseUrl`` must
  equal the service's own GitHub API URL (otherwise a caller could send the token to a server of
  its own); no file the request names (``bodyFile``, ``target.kubernetes.manifests``,
  ``tokenFile``) is ever opened;
- no GitHub call is made for a name outside the grammar, and none for a path outside the allowed
  repositories (the provider's own guard, :func:`promote.github.url_error`);
- with objectives pinned for the repository (``--objectives``), a run judged against other
  objectives, another ``analysis`` or other ``errorRanges`` is refused (403): a holder of the
  secret cannot loosen the SLOs (it can still post made-up measurements: the secret is trust);
- the decisions (auth, size, names, allow-list, pinning) are small pure functions returning a
  :class:`Rejection` or ``None``; the aiohttp handlers only read, call them and answer;
- the token and the shared secret appear in no response and no log line; one log line per
  request: method, path, status, repository;
- slow clients are cut off: request headers must arrive within ``header_timeout_s`` (aiohttp's
  keep-alive timer, which also runs from the connection's start), the body within
  ``body_timeout_s`` (408), and it may not exceed ``max_body_bytes`` (413); JSON nested deeper
  than :data:`MAX_JSON_DEPTH` is a 400, every histogram is decoded (each inflating to at most
  ``workers.histogram.MAX_PAYLOAD_BYTES``, all together to :data:`MAX_HISTOGRAM_BYTES`) before
  anything else is done with the run;
- one promotion at a time (PyGithub is blocking and runs in a thread; two runs on one branch
  would race).

Status codes: 200 updated/already promoted/nothing to revert/merged, 201 opened, 400 not a
results document, no promotion block, a name outside the grammar or a corrupt histogram, 401
bad shared secret, 403 not allowed (or objectives not the pinned ones), 408 body too slow, 409
neither PASS nor (with revert-pr) FAIL when re-judged, 413 body over the size limit, 502 GitHub
failed.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from analysis.catalog import DEFAULT_ERROR_RANGES
from analysis.errors import ResultsError
from analysis.results import SCHEMA, JSONTooDeep, Results, check_histograms, load_json
from analysis.verdict import Limits, Slo
from promote.errors import PromotionError
from promote.evidence import leave_evidence
from promote.flow import PromotionOutcome, carry_out, decide
from promote.flow import check_names as flow_check_names
from promote.names import branch_error, path_error, repository_error
from promote.provider import Provider
from promote.spec import PromotionSpec

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 8 * 1024 * 1024
MAX_JSON_DEPTH = 64
MAX_HISTOGRAM_BYTES = 32 * 1024 * 1024  # inflated, all histograms of a document together
HEADER_TIMEOUT_S = 10.0
BODY_TIMEOUT_S = 30.0
ProviderFactory = Callable[[PromotionSpec, str], Provider]
REPOSITORY = web.RequestKey("repository", str)  # for the log line


@dataclass(frozen=True, slots=True, kw_only=True)
class Allowed:
    """One repository the service may promote to, its base branches and manifest paths
    (``None``: any).

    Parsed from ``owner/name[#branch,branch][:path,path]`` by :func:`parse_allowed`.
    """

    repository: str
    paths: frozenset[str] | None = None
    branches: frozenset[str] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Pinned:
    """The objectives and limits a repository's promotions must have been judged with (an
    ``--objectives OWNER/NAME=FILE`` of the service), in the analysis' plain values."""

    objectives: tuple[Slo, ...]
    limits: Limits = field(default_factory=Limits)


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
    objectives: Mapping[str, Pinned] = field(default_factory=dict)  # lower-case owner/name
    header_timeout_s: float = HEADER_TIMEOUT_S
    body_timeout_s: float = BODY_TIMEOUT_S

    def __repr__(self) -> str:  # never print the token or the secret
        return (f"ServiceConfig(allowed={self.allowed!r}, github_url={self.github_url!r}, "
                f"max_body_bytes={self.max_body_bytes}, pinned={sorted(self.objectives)})")


@dataclass(frozen=True, slots=True, kw_only=True)
class Rejection:
    """Why a request is refused: the HTTP status and a one-line error for the JSON answer."""

    status: int
    error: str


def parse_allowed(text: str) -> Allowed:
    """Return the allow-list entry of ``owner/name[#branch,...][:path,...]``; raise
    PromotionError if bad (each name held to :mod:`promote.names`' grammar)."""
    head, colon, paths = text.partition(":")
    repository, hash_, branches = head.partition("#")
    if repository_error(repository):
        raise PromotionError(f"--allow {text!r}: the repository must be owner/name")
    allowed_branches = _items(text, branches, "branch", branch_error) if hash_ else None
    allowed_paths = _items(text, paths, "path", path_error) if colon else None
    return Allowed(repository=repository, paths=allowed_paths, branches=allowed_branches)


def _items(text: str, listed: str, what: str, error_of: Callable[[str], str | None]
           ) -> frozenset[str]:
    items = frozenset(p.strip() for p in listed.split(",") if p.strip())
    if not items:
        raise PromotionError(f"--allow {text!r}: no {what} after the "
                             f"{'colon' if what == 'path' else '#'}")
    for item in sorted(items):
        if (error := error_of(item)) is not None:
            raise PromotionError(f"--allow {text!r}: {what} {item!r} {error}")
    return items


def parse_pinned(text: str, load: Callable[[Path], Pinned]) -> tuple[str, Pinned]:
    """Return (lower-case ``owner/name``, objectives) of ``--objectives OWNER/NAME=FILE``; the
    file is an objectives file or a whole spec, read by ``load`` (the CLI's, which parses it
    with the experiment spec's rules)."""
    repository, equals, path = text.partition("=")
    if not equals or repository_error(repository.strip()) or not path.strip():
        raise PromotionError(f"--objectives {text!r}: give OWNER/NAME=FILE")
    return repository.strip().lower(), load(Path(path.strip()))


def check_auth(header: str | None, secret: str) -> Rejection | None:
    """Return a 401 rejection unless ``header`` is ``Bearer <secret>`` (constant-time compare;
    a header that is not UTF-8 is compared as its raw bytes, and refused)."""
    scheme, _, given = (header or "").partition(" ")
    if not secret or scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode("utf-8", "surrogateescape"), secret.encode()):
        return Rejection(status=401, error="missing or wrong shared secret")
    return None


def check_size(content_length: int | None, limit: int) -> Rejection | None:
    """Return a 413 rejection if the declared body size is over ``limit`` bytes."""
    if content_length is not None and content_length > limit:
        return Rejection(status=413, error=f"the body is over {limit} bytes")
    return None


def check_names(promotion: PromotionSpec) -> Rejection | None:
    """Return a 400 rejection naming the first name of ``promotion`` (repository, upstream,
    app, version, base branch, paths, ``from``, labels, the branches made from them) outside
    :mod:`promote.names`' grammar."""
    try:
        flow_check_names(promotion)
    except PromotionError as exc:
        return Rejection(status=400, error=str(exc))
    return None


def check_allowed(promotion: PromotionSpec, config: ServiceConfig) -> Rejection | None:
    """Return a 403 rejection unless the provider, API URL, repository (and the upstream the
    pull request goes to), base branch and paths are allowed."""
    if promotion.provider != "github":
        return Rejection(status=403, error="this service promotes to GitHub only")
    if (promotion.base_url or None) != (config.github_url or None):
        return Rejection(status=403, error="promotion.baseUrl is not this service's GitHub")
    wanted = {m.path for m in promotion.manifests}  # the files written; ``from`` is only read
    for repository in filter(None, (promotion.repository, promotion.upstream)):
        rejected = _check_repository(repository, wanted, promotion.base_branch, config)
        if rejected:
            return rejected
    return None


def _check_repository(repository: str, wanted: set[str], base: str, config: ServiceConfig
                      ) -> Rejection | None:
    entries = [a for a in config.allowed if a.repository.lower() == repository.lower()]
    if not entries:
        return Rejection(status=403, error=f"repository {repository} is not allowed")
    entries = [e for e in entries if e.branches is None or base in e.branches]
    if not entries:
        return Rejection(status=403, error=f"base branch {base} of {repository} is not allowed")
    for entry in entries:
        if entry.paths is None or wanted <= entry.paths:
            return None
    refused = sorted(wanted - set().union(*(e.paths or set() for e in entries)))
    return Rejection(status=403, error=f"path {', '.join(refused)} of {repository} is "
                                       "not allowed")


def check_pinned(results: Results, promotion: PromotionSpec, config: ServiceConfig
                 ) -> Rejection | None:
    """Return a 403 rejection when objectives are pinned for the repository the pull request
    goes to and the run was judged against other objectives, analysis or errorRanges."""
    target = promotion.upstream or promotion.repository
    pinned = config.objectives.get(target.lower())
    if pinned is None:
        return None
    saved = results.saved  # parsed and checked when parse_request read the document
    same = (sorted(map(repr, saved.objectives)) == sorted(map(repr, pinned.objectives))
            and saved.limits == pinned.limits and saved.error_ranges == DEFAULT_ERROR_RANGES)
    if same:
        return None
    return Rejection(status=403, error=f"the run's objectives, analysis or errorRanges are not "
                                       f"the ones pinned for {target}")


def parse_request(body: bytes) -> tuple[Results, PromotionSpec] | Rejection:
    """Return the results and its promotion block, or a 400 rejection naming what is wrong
    (JSON, nesting, schema, promotion block, a histogram that does not decode)."""
    try:
        data = load_json(body, max_depth=MAX_JSON_DEPTH)
    except JSONTooDeep as exc:
        return Rejection(status=400, error=str(exc))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return Rejection(status=400, error=f"not valid JSON ({exc.__class__.__name__})")
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        return Rejection(status=400, error=f"not a results document (schema {SCHEMA})")
    try:
        results = Results.model_validate(data)
    except ValidationError as exc:
        return Rejection(status=400, error=f"not a results document: {_first_error(exc)}")
    block = results.saved.promotion
    if not block:
        return Rejection(status=400, error="the results' spec has no promotion block")
    try:
        promotion = PromotionSpec.model_validate(block)
    except ValidationError as exc:
        return Rejection(status=400, error=f"promotion: {_first_error(exc)}")
    try:
        check_histograms(results, budget_bytes=MAX_HISTOGRAM_BYTES)
    except ResultsError as exc:
        return Rejection(status=400, error=str(exc))
    return results, promotion


def _first_error(exc: ValidationError) -> str:
    first = exc.errors(include_url=False)[0]
    field = ".".join(str(p) for p in first["loc"])
    return f"{field}: {first['msg']}" if field else first["msg"]


def github_factory(promotion: PromotionSpec, token: str) -> Provider:
    """Return the GitHub provider of ``promotion`` with the service's token."""
    from promote.github import GitHubProvider

    return GitHubProvider(promotion.repository, token, base_url=promotion.base_url,
                          upstream=promotion.upstream)


def run_checked(results: Results, promotion: PromotionSpec, provider: Callable[[], Provider]
                ) -> PromotionOutcome | Rejection:
    """Re-judge the run (409 unless PASS, or FAIL with revert-pr), then promote or revert it
    and leave the check and the comment on its pull request (502 if GitHub fails)."""
    try:
        action = decide(results, promotion)  # re-judges once; carry_out does not again
    except (PromotionError, ResultsError) as exc:
        return Rejection(status=409, error=str(exc))
    try:
        made = provider()
        outcome = carry_out(action, results, promotion, made)
        leave_evidence(results, promotion, outcome, made, report_url=None, history=None,
                       why_no_history="the promotion service keeps no run history",
                       log=lambda _m: None)  # one log line per request, as documented
        return outcome
    except PromotionError as exc:
        return Rejection(status=502, error=str(exc))


def make_app(config: ServiceConfig, factory: ProviderFactory = github_factory) -> web.Application:
    """Return the aiohttp application of the service (``make_app(config)`` for production)."""
    lock = asyncio.Lock()

    async def promotions(request: web.Request) -> web.Response:
        rejected = (check_auth(request.headers.get("Authorization"), config.secret)
                    or check_size(request.content_length, config.max_body_bytes))
        if rejected:
            return _refuse(rejected)
        body = await _read_body(request, config)
        if isinstance(body, Rejection):
            return _refuse(body, close=True)
        loop = asyncio.get_running_loop()
        parsed = await loop.run_in_executor(None, parse_request, body)  # decoding takes CPU
        if isinstance(parsed, Rejection):
            return _refuse(parsed)
        results, promotion = parsed
        request[REPOSITORY] = promotion.repository
        rejected = (check_names(promotion) or check_allowed(promotion, config)
                    or check_pinned(results, promotion, config))
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


async def _read_body(request: web.Request, config: ServiceConfig) -> bytes | Rejection:
    """Return the request body, or a 413 over the size limit, or a 408 when it is slower
    than ``body_timeout_s``."""
    try:
        return await asyncio.wait_for(request.read(), config.body_timeout_s)
    except web.HTTPRequestEntityTooLarge:
        return Rejection(status=413, error=f"the body is over {config.max_body_bytes} bytes")
    except TimeoutError:
        return Rejection(status=408, error=f"the body did not arrive within "
                                           f"{config.body_timeout_s:g} s")


def server_options(config: ServiceConfig) -> dict[str, Any]:
    """Return the aiohttp server options of the service: no access log, and the header
    timeout (aiohttp's keep-alive timer runs from the connection's start, so a client that
    sends no complete request head within it is disconnected)."""
    return {"access_log": None, "keepalive_timeout": config.header_timeout_s}


def _refuse(rejection: Rejection, *, close: bool = False) -> web.Response:
    response = web.json_response({"error": rejection.error}, status=rejection.status)
    if close:  # the rest of the body is not read: the connection cannot be reused
        response.force_close()
    return response


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
        web.run_app(make_app(config, factory), host=host, port=port, print=None,
                    shutdown_timeout=5, **server_options(config))
    except OSError as exc:
        raise PromotionError(f"promotion service: cannot listen on {host}:{port} "
                             f"({exc.strerror or exc.__class__.__name__})") from None
