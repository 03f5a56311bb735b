"""Tests for the hello sample app (examples/hello/app.py), run as a real process."""

from __future__ import annotations

import concurrent.futures
import http.client
import importlib.util
import random
import signal
import subprocess
import sys
import time
import urllib.parse

import pytest

from coordinator.errors import ExampleError
from tests.support.helpers import HELLO_APP, start_hello


def _load_app_module():
    spec = importlib.util.spec_from_file_location("hello_app_under_test", HELLO_APP)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look the module up while it executes
    spec.loader.exec_module(module)
    return module


app = _load_app_module()


def get(base_url: str, path: str = "/hello", conn: http.client.HTTPConnection | None = None):
    """GET base_url+path; return (status, headers, body text, elapsed seconds)."""
    own = conn is None
    if own:
        u = urllib.parse.urlsplit(base_url)
        conn = http.client.HTTPConnection(str(u.hostname), u.port, timeout=10)
    assert conn is not None
    try:
        t0 = time.perf_counter()
        conn.request("GET", path)
        resp = conn.getresponse()
        body = resp.read().decode()
        elapsed = time.perf_counter() - t0
        return resp.status, resp.headers, body, elapsed
    finally:
        if own:
            conn.close()


def run_app(*args: str, timeout: float = 10) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(HELLO_APP), *args], capture_output=True, text=True,
                          timeout=timeout)


# --- as a process -----------------------------------------------------------------------


def test_default_version_and_healthz():
    """/hello answers the default version as text/plain and /healthz answers 200 "ok"."""
    with start_hello() as url:
        assert url.startswith("http://127.0.0.1:") and not url.endswith(":0")
        status, headers, body, _ = get(url)
        assert (status, body) == (200, "Hello from version 1.0\n")
        assert headers["Content-Type"].startswith("text/plain")
        status, _, body, _ = get(url, "/healthz")
        assert (status, body) == (200, "ok")
        assert get(url, "/nope")[0] == 404


def test_version_from_env_and_flag_wins():
    """HELLO_VERSION sets the version, and --version overrides it."""
    with start_hello(env={"HELLO_VERSION": "2.0"}) as url:
        assert get(url)[2] == "Hello from version 2.0\n"
    with start_hello("--version", "3.1", env={"HELLO_VERSION": "2.0"}) as url:
        assert get(url)[2] == "Hello from version 3.1\n"


def test_fixed_latency_is_observed():
    """With --latency 30ms every /hello takes at least 30 ms while /healthz stays fast."""
    with start_hello("--latency", "30ms", "--distribution", "fixed") as url:
        u = urllib.parse.urlsplit(url)
        conn = http.client.HTTPConnection(str(u.hostname), u.port, timeout=10)
        try:
            elapsed = [get(url, conn=conn)[3] for _ in range(5)]
            health = get(url, "/healthz", conn=conn)[3]
        finally:
            conn.close()
        assert min(elapsed) >= 0.030, elapsed
        assert max(elapsed) < 1.0, elapsed
        assert health < 0.030


def test_error_rate_one_gives_500():
    """--error-rate 1 answers every /hello with HTTP 500."""
    with start_hello("--error-rate", "1") as url:
        assert [get(url)[0] for _ in range(5)] == [500] * 5
        assert get(url, "/healthz")[0] == 200


def test_error_rate_zero_gives_200():
    """--error-rate 0 (here written as 0%) answers every /hello with HTTP 200."""
    with start_hello("--error-rate", "0%") as url:
        assert [get(url)[0] for _ in range(5)] == [200] * 5


def test_close_every_sends_connection_close():
    """--close-every 2 marks every second /hello response with Connection: close."""
    with start_hello("--close-every", "2") as url:
        u = urllib.parse.urlsplit(url)
        conn = http.client.HTTPConnection(str(u.hostname), u.port, timeout=10)
        try:
            first = get(url, conn=conn)[1].get("Connection")
            second = get(url, conn=conn)[1].get("Connection")
        finally:
            conn.close()
        assert first is None or first.lower() != "close"
        assert second is not None and second.lower() == "close"


def test_stall_holds_requests_until_it_ends():
    """A request arriving during the stall is held until it ends, /healthz is not, and later
    requests are fast."""
    with start_hello("--stall-after", "0", "--stall-for", "600ms") as url:
        health = get(url, "/healthz")[3]
        status, _, _, held = get(url)
        assert status == 200
        assert health < 0.2
        assert held >= 0.2, held  # unstalled it takes about a millisecond
        assert get(url)[3] < 0.3


@pytest.mark.parametrize(
    "args",
    [
        ["--latency", "fast"],
        ["--error-rate", "150%"],
        ["--port", "70000"],
        ["--distribution", "pareto"],
        ["--stall-after", "1s"],
        ["--close-every", "0"],
        ["--no-such-option"],
    ],
)
def test_bad_option_exits_2_with_one_line(args):
    """An invalid option exits 2 with a single-line stderr message and no traceback."""
    proc = run_app(*args)
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "error" in lines[0] and "Traceback" not in proc.stderr


def test_help_lists_options_and_env_vars():
    """--help exits 0 and names every option together with its environment variable."""
    proc = run_app("--help")
    assert proc.returncode == 0 and proc.stderr == ""
    for flag, env in [("--version", "HELLO_VERSION"), ("--error-rate", "HELLO_ERROR_RATE"),
                      ("--close-every", "HELLO_CLOSE_EVERY")]:
        assert flag in proc.stdout and env in proc.stdout


def test_sigterm_exits_zero():
    """SIGTERM stops the app cleanly with exit status 0."""
    with start_hello() as url:
        assert get(url)[0] == 200
        url.process.send_signal(signal.SIGTERM)
        assert url.process.wait(timeout=5) == 0
        assert "Traceback" not in url.stderr()


def test_sigterm_lets_inflight_request_finish():
    """A /hello request in flight when SIGTERM arrives still gets its 200 before the app exits 0."""
    with start_hello("--latency", "300ms") as url:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pending = pool.submit(get, url)
            time.sleep(0.1)
            url.process.send_signal(signal.SIGTERM)
            assert pending.result(timeout=5)[:3:2] == (200, "Hello from version 1.0\n")
        assert url.process.wait(timeout=5) == 0


def test_start_hello_reports_stderr_when_app_fails():
    """start_hello raises a clear error (with the app's stderr) when the app exits or READY comes too late."""
    with (pytest.raises(ExampleError, match=r"exited with status 2(.|\n)*HELLO_LATENCY"),
          start_hello(env={"HELLO_LATENCY": "soon"})):
        pass
    with pytest.raises(ExampleError, match="did not print READY within"), start_hello(timeout_s=0.001):
        pass


# --- option parsing and latency draws, in process ------------------------------------------


@pytest.mark.parametrize(
    "text, seconds",
    [("20ms", 0.020), ("0.5s", 0.5), ("250us", 250e-6), ("0", 0.0), ("1.5", 1.5), (" 5 ms ", 0.005)],
)
def test_parse_duration(text, seconds):
    """Durations accept us/ms/s suffixes or plain seconds."""
    assert app.parse_duration(text) == pytest.approx(seconds)


def test_parse_probability():
    """Error rates accept a fraction or a percentage and reject values outside [0, 1]."""
    assert app.parse_probability("5%") == pytest.approx(0.05)
    assert app.parse_probability("0.25") == 0.25
    for bad in ("-0.1", "1.5", "x"):
        with pytest.raises(ValueError):
            app.parse_probability(bad)


def test_distributions_respect_their_bounds_and_seed():
    """Each distribution's draws stay within its documented bounds and a seed makes them reproducible."""
    lat, jit = 0.010, 0.004
    for dist in app.DISTRIBUTIONS:
        cfg = app.Config(latency_s=lat, jitter_s=jit, distribution=dist, seed=7)
        draw = app.make_latency_sampler(cfg, random.Random(7))
        xs = [draw() for _ in range(2000)]
        again = app.make_latency_sampler(cfg, random.Random(7))
        assert xs[:50] == [again() for _ in range(50)]
        assert min(xs) >= 0.0
        if dist == "fixed":
            assert set(xs) == {lat}
        elif dist == "uniform":
            assert lat <= min(xs) and max(xs) <= lat + jit
        elif dist == "exponential":
            assert min(xs) >= lat
            assert sum(xs) / len(xs) == pytest.approx(lat + jit, rel=0.1)
        else:
            assert sum(xs) / len(xs) == pytest.approx(lat, rel=0.1)


def test_env_and_defaults_resolve():
    """Env vars fill unset flags, flags win, and jitter without a distribution means uniform."""
    cfg = app.parse_config(["--latency", "5ms"],
                           {"HELLO_LATENCY": "1s", "HELLO_JITTER": "2ms", "HELLO_SEED": "3"})
    assert cfg.latency_s == pytest.approx(0.005) and cfg.jitter_s == pytest.approx(0.002)
    assert cfg.distribution == "uniform" and cfg.seed == 3
    assert app.parse_config([], {}) == app.Config()
