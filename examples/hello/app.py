"""The `hello` sample app used by the slogate demo and tests.

It plays the part of Iter8's `hello` app: version 1.0 is the baseline and 2.0 the
candidate. It answers ``GET /hello`` (and ``POST /hello``, whatever the body) with
``Hello from version <version>`` and ``GET /healthz`` with ``ok``, exposes Prometheus
metrics on ``GET /metrics`` (with ``prometheus_client``, every series labelled with the
version: ``hello_requests_total{version,method,code}``, the request-duration histogram
``hello_request_duration_seconds{version,method}`` and the process' CPU and memory), and can be
told to misbehave on ``/hello`` so that SLO validation has something to catch:

* ``--latency`` / ``--jitter`` / ``--distribution``: added latency, drawn per request
  (fixed; latency + U(0, jitter); max(0, N(latency, jitter)); latency + Exp(mean=jitter)).
  It is waited out with ``asyncio.sleep`` against a monotonic deadline, so a request
  never answers before its latency has elapsed.
* ``--error-rate``: probability of answering HTTP 500 instead (``0.05`` or ``5%``).
* ``--stall-after`` / ``--stall-for``: one global stall. Once the server has been up
  for stall-after, every ``/hello`` request arriving during the next stall-for is held
  until the stall ends (and so is any response that would have gone out during it),
  like a GC pause. Used to test coordinated-omission correction.
* ``--close-every N``: every Nth ``/hello`` response carries ``Connection: close``,
  to test reconnects.
* ``--cpu-per-request``: CPU time each ``/hello`` burns (a busy loop on process time),
  for a version that keeps its latency by spending more CPU.
* ``--seed``: makes the random draws reproducible.

Every option can also come from an environment variable (HELLO_VERSION, HELLO_HOST,
HELLO_PORT, HELLO_LATENCY, ...); a flag wins over its variable. Durations take a
``us``, ``ms`` or ``s`` suffix, or are plain seconds.

Once listening it prints exactly one line to stdout, ``READY http://HOST:PORT`` (the
real port, which matters with ``--port 0``). SIGTERM or SIGINT shuts it down cleanly
with exit status 0. Invalid options give a one-line error on stderr and exit status 2.

    python examples/hello/app.py --version 2.0 --port 0 --latency 20ms --jitter 5ms
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import re
import signal
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from aiohttp import web
# aiohttp itself is imported in HelloApp/serve, after the options are parsed, so that an
# option error or --help answers at once.

try:  # optional: faster event loop
    import uvloop
except ImportError:  # pragma: no cover - depends on the environment
    uvloop = None  # type: ignore[assignment]  # mypy's idiom for an optional import

try:  # optional: GET /metrics
    import prometheus_client
except ImportError:  # pragma: no cover - depends on the environment
    prometheus_client = None  # type: ignore[assignment]  # mypy's idiom for an optional import

# Seconds; fine around the latencies the tests inject (1-50 ms), coarse beyond.
DURATION_BUCKETS_S = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05,
                      0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

DISTRIBUTIONS = ("fixed", "uniform", "normal", "exponential")
SHUTDOWN_GRACE_S = 1.0  # on SIGTERM, how long in-flight /hello requests may finish before being cut off

_DURATION_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(us|µs|ms|s)?\s*$")
_UNIT_S = {None: 1.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6}


# ---------------------------------------------------------------------------
# Option parsing
# ---------------------------------------------------------------------------


def parse_duration(text: str) -> float:
    """Parse ``"20ms"``, ``"0.5s"``, ``"250us"`` or plain seconds (``"1.5"``) to seconds."""
    m = _DURATION_RE.match(str(text))
    if not m:
        raise ValueError(f"not a duration: {text!r} (use e.g. 20ms, 0.5s, 250us or plain seconds)")
    value = float(m.group(1)) * _UNIT_S[m.group(2)]
    if not math.isfinite(value):
        raise ValueError(f"not a finite duration: {text!r}")
    return value


def parse_probability(text: str) -> float:
    """Parse ``"0.05"`` or ``"5%"`` to a probability in [0, 1]."""
    s = str(text).strip()
    try:
        value = float(s[:-1]) / 100.0 if s.endswith("%") else float(s)
    except ValueError:
        raise ValueError(f"not a probability: {text!r} (use e.g. 0.05 or 5%)") from None
    if not (0.0 <= value <= 1.0):
        raise ValueError(f"probability out of range [0, 1]: {text!r}")
    return value


def parse_port(text: str) -> int:
    try:
        value = int(str(text).strip())
    except ValueError:
        raise ValueError(f"not a port number: {text!r}") from None
    if not (0 <= value <= 65535):
        raise ValueError(f"port out of range [0, 65535]: {text!r}")
    return value


def parse_positive_int(text: str) -> int:
    try:
        value = int(str(text).strip())
    except ValueError:
        raise ValueError(f"not an integer: {text!r}") from None
    if value < 1:
        raise ValueError(f"must be at least 1: {text!r}")
    return value


def parse_int(text: str) -> int:
    try:
        return int(str(text).strip())
    except ValueError:
        raise ValueError(f"not an integer: {text!r}") from None


def parse_distribution(text: str) -> str:
    value = str(text).strip().lower()
    if value not in DISTRIBUTIONS:
        raise ValueError(f"unknown distribution {text!r} (choose from {', '.join(DISTRIBUTIONS)})")
    return value


def parse_text(text: str) -> str:
    value = str(text).strip()
    if not value:
        raise ValueError("must not be empty")
    return value


@dataclass(frozen=True)
class Config:
    version: str = "1.0"
    host: str = "127.0.0.1"
    port: int = 8080
    latency_s: float = 0.0
    jitter_s: float = 0.0
    distribution: str = "fixed"
    error_rate: float = 0.0
    seed: int | None = None
    stall_after_s: float | None = None
    stall_for_s: float | None = None
    close_every: int | None = None
    cpu_per_request_s: float = 0.0


# (flag, env var, parser, default, help)
_OPTIONS: list[tuple[str, str, Callable[[str], object], object, str]] = [
    ("--version", "HELLO_VERSION", parse_text, "1.0", "version reported by /hello (default 1.0)"),
    ("--host", "HELLO_HOST", parse_text, "127.0.0.1", "address to bind (default 127.0.0.1)"),
    ("--port", "HELLO_PORT", parse_port, 8080, "port to bind; 0 picks a free port (default 8080)"),
    ("--latency", "HELLO_LATENCY", parse_duration, 0.0, "added latency on /hello, e.g. 20ms (default 0)"),
    ("--jitter", "HELLO_JITTER", parse_duration, 0.0, "latency spread, e.g. 5ms (default 0)"),
    (
        "--distribution",
        "HELLO_DISTRIBUTION",
        parse_distribution,
        None,
        "fixed | uniform | normal | exponential (default: uniform if jitter is set, else fixed)",
    ),
    ("--error-rate", "HELLO_ERROR_RATE", parse_probability, 0.0, "probability of HTTP 500, e.g. 0.05 or 5%"),
    ("--seed", "HELLO_SEED", parse_int, None, "seed for reproducible random draws"),
    ("--stall-after", "HELLO_STALL_AFTER", parse_duration, None,
     "start one global stall this long after startup"),
    ("--stall-for", "HELLO_STALL_FOR", parse_duration, None, "how long the stall lasts"),
    ("--close-every", "HELLO_CLOSE_EVERY", parse_positive_int, None,
     "send Connection: close on every Nth /hello"),
    ("--cpu-per-request", "HELLO_CPU_PER_REQUEST", parse_duration, 0.0,
     "CPU time burnt by each /hello, e.g. 5ms (default 0)"),
]


class _OneLineParser(argparse.ArgumentParser):
    """argparse, but errors are a single line on stderr and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def _usage_error(prog: str, message: str) -> NoReturn:
    sys.stderr.write(f"{prog}: error: {message}\n")
    sys.exit(2)


def parse_config(argv: list[str] | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """Build the Config from flags, falling back to HELLO_* environment variables."""
    environ = os.environ if environ is None else environ
    parser = _OneLineParser(
        prog="hello",
        description="The hello sample app for slogate (see module docstring).",
        epilog="Every option can also be set by the environment variable shown; a flag wins.",
    )
    for flag, env, _parse, _default, help_text in _OPTIONS:
        # Keep the raw string: flags and env vars go through the same parser below.
        parser.add_argument(flag, dest=flag[2:].replace("-", "_"), metavar=env, default=None,
                            help=f"{help_text} [{env}]".replace("%", "%%"))
    args = parser.parse_args(argv)

    values: dict[str, object] = {}
    for flag, env, parse, default, _help in _OPTIONS:
        key = flag[2:].replace("-", "_")
        raw = getattr(args, key)
        source = flag
        if raw is None:
            raw = environ.get(env)
            source = env
            if raw is not None and raw.strip() == "":
                raw = None  # an empty variable counts as unset
        if raw is None:
            values[key] = default
            continue
        try:
            values[key] = parse(raw)
        except ValueError as exc:
            _usage_error(parser.prog, f"invalid {source} value: {exc}")

    for key in ("latency", "jitter", "stall_after", "stall_for", "cpu_per_request"):
        if values[key] is not None and values[key] < 0:  # type: ignore[operator]
            _usage_error(parser.prog, f"--{key.replace('_', '-')} must not be negative")
    if (values["stall_after"] is None) != (values["stall_for"] is None):
        _usage_error(parser.prog, "--stall-after and --stall-for must be given together")
    distribution = values["distribution"]
    if distribution is None:
        distribution = "uniform" if values["jitter"] else "fixed"
    elif distribution == "fixed" and values["jitter"]:
        _usage_error(parser.prog, "--jitter has no effect with --distribution fixed")

    return Config(
        version=values["version"],  # type: ignore[arg-type]
        host=values["host"],  # type: ignore[arg-type]
        port=values["port"],  # type: ignore[arg-type]
        latency_s=values["latency"],  # type: ignore[arg-type]
        jitter_s=values["jitter"],  # type: ignore[arg-type]
        distribution=distribution,  # type: ignore[arg-type]
        error_rate=values["error_rate"],  # type: ignore[arg-type]
        seed=values["seed"],  # type: ignore[arg-type]
        stall_after_s=values["stall_after"],  # type: ignore[arg-type]
        stall_for_s=values["stall_for"],  # type: ignore[arg-type]
        close_every=values["close_every"],  # type: ignore[arg-type]
        cpu_per_request_s=values["cpu_per_request"],  # type: ignore[arg-type]
    )


# ---------------------------------------------------------------------------
# Behaviour
# ---------------------------------------------------------------------------


def make_latency_sampler(cfg: Config, rng: random.Random) -> Callable[[], float]:
    """Return a function drawing one request's added latency in seconds."""
    lat, jit = cfg.latency_s, cfg.jitter_s
    if cfg.distribution == "fixed" or jit == 0:
        return lambda: lat
    if cfg.distribution == "uniform":
        return lambda: lat + rng.uniform(0.0, jit)
    if cfg.distribution == "normal":
        return lambda: max(0.0, rng.gauss(lat, jit))
    if cfg.distribution == "exponential":
        rate = 1.0 / jit
        return lambda: lat + rng.expovariate(rate)
    raise ValueError(f"unknown distribution {cfg.distribution!r}")


async def sleep_until(deadline: float) -> None:
    """Sleep until time.monotonic() >= deadline; never returns early (timer rounding aside)."""
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        await asyncio.sleep(remaining)


class HelloApp:
    """Request handlers plus the per-process state (random generator, counters, stall window)."""

    def __init__(self, cfg: Config) -> None:
        from aiohttp import web

        self.web = web
        self.cfg = cfg
        self.rng = random.Random(cfg.seed)
        self.draw_latency = make_latency_sampler(cfg, self.rng)
        self.body = f"Hello from version {cfg.version}\n"
        self.requests = 0
        self.inflight: set[asyncio.Task] = set()  # /hello handlers running now, for shutdown
        self.stall_start = math.inf  # set by mark_started()
        self.stall_end = -math.inf
        self.registry, self.requests_total, self.duration_s = _metrics(cfg.version)

    def mark_started(self) -> None:
        """Start the clock for --stall-after; call once the server is listening."""
        if self.cfg.stall_after_s is not None and self.cfg.stall_for_s is not None:
            self.stall_start = time.monotonic() + self.cfg.stall_after_s
            self.stall_end = self.stall_start + self.cfg.stall_for_s

    def _in_stall(self) -> bool:
        return self.stall_start <= time.monotonic() < self.stall_end

    async def hello(self, request: web.Request) -> web.Response:
        task = asyncio.current_task()
        assert task is not None  # a handler runs in a task
        self.inflight.add(task)
        started = time.monotonic()
        code = "500"
        try:
            response = await self._hello()
            code = str(response.status)
            return response
        finally:
            self.inflight.discard(task)
            if self.registry is not None:
                self.requests_total.labels(self.cfg.version, request.method, code).inc()
                self.duration_s.labels(self.cfg.version, request.method).observe(
                    time.monotonic() - started)

    async def metrics(self, request: web.Request) -> web.Response:
        body = prometheus_client.generate_latest(self.registry)
        return self.web.Response(body=body, headers={"Content-Type": prometheus_client.CONTENT_TYPE_LATEST})

    async def _hello(self) -> web.Response:
        self.requests += 1
        n = self.requests
        if self._in_stall():  # arrived during the stall: held until it ends
            await sleep_until(self.stall_end)
        if self.cfg.cpu_per_request_s > 0:  # a version that burns CPU (process time, not wall)
            burnt_by = time.process_time() + self.cfg.cpu_per_request_s
            while time.process_time() < burnt_by:
                pass
        delay = self.draw_latency()
        rate = self.cfg.error_rate
        failed = rate >= 1.0 or (rate > 0.0 and self.rng.random() < rate)
        if delay > 0:
            await sleep_until(time.monotonic() + delay)
        if self._in_stall():  # would have answered during the stall: held too
            await sleep_until(self.stall_end)
        if failed:
            resp = self.web.Response(status=500, text="injected error\n", content_type="text/plain")
        else:
            resp = self.web.Response(text=self.body, content_type="text/plain")
        if self.cfg.close_every and n % self.cfg.close_every == 0:
            resp.force_close()  # aiohttp then sends "Connection: close"
        return resp

    async def healthz(self, request: web.Request) -> web.Response:
        return self.web.Response(text="ok", content_type="text/plain")

    def make_app(self) -> web.Application:
        app = self.web.Application()
        app.router.add_get("/hello", self.hello)
        app.router.add_post("/hello", self.hello)  # any body; the README's two-endpoint spec
        app.router.add_get("/healthz", self.healthz)
        if self.registry is not None:
            app.router.add_get("/metrics", self.metrics)
        return app


def _metrics(version: str) -> tuple[Any, Any, Any]:  # prometheus_client's types, optional here
    """Return (registry, requests counter, duration histogram), or Nones without
    prometheus_client. A registry of the app's own: the process collector gives CPU seconds
    and memory of this process."""
    if prometheus_client is None:
        return None, None, None
    registry = prometheus_client.CollectorRegistry()
    prometheus_client.ProcessCollector(registry=registry)
    requests_total = prometheus_client.Counter(
        "hello_requests", "Requests to /hello by version, method and status code.",
        ["version", "method", "code"], registry=registry)
    duration_s = prometheus_client.Histogram(
        "hello_request_duration_seconds", "Time from a /hello request's arrival to its response.",
        ["version", "method"], buckets=DURATION_BUCKETS_S, registry=registry)
    # The version as a series of its own, like kube-state-metrics' *_info series.
    info = prometheus_client.Info("hello_build", "The app's version.", registry=registry)
    info.info({"version": version})
    # Series exist from the start (at 0), so that increase() and rate() count the first requests.
    requests_total.labels(version, "GET", "200")
    duration_s.labels(version, "GET")
    return registry, requests_total, duration_s


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


async def serve(cfg: Config) -> int:
    from aiohttp import web

    hello = HelloApp(cfg)
    runner = web.AppRunner(hello.make_app(), access_log=None, shutdown_timeout=SHUTDOWN_GRACE_S)
    await runner.setup()
    try:
        site = web.TCPSite(runner, cfg.host, cfg.port)
        try:
            await site.start()
        except OSError as exc:
            sys.stderr.write(f"hello: error: cannot listen on {cfg.host}:{cfg.port}: {exc.strerror or exc}\n")
            return 1
        port = runner.addresses[0][1]

        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)

        hello.mark_started()
        sys.stdout.write(f"READY http://{_url_host(cfg.host)}:{port}\n")
        sys.stdout.flush()
        await stop.wait()

        # Stop accepting, let in-flight requests finish for a moment, then cut off the rest
        # (a request held by a long stall would otherwise delay the exit).
        await site.stop()
        if hello.inflight:
            await asyncio.wait(set(hello.inflight), timeout=SHUTDOWN_GRACE_S)
            for task in list(hello.inflight):
                task.cancel()
    finally:
        await runner.cleanup()
    return 0


def main(argv: list[str] | None = None) -> int:
    cfg = parse_config(argv)
    if uvloop is not None:
        return uvloop.run(serve(cfg))
    return asyncio.run(serve(cfg))


if __name__ == "__main__":
    sys.exit(main())
