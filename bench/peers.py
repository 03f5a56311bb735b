"""The clients under comparison: the command line of each, and a parser of what it printed.

Pure module: commands are lists of strings, parsers take text and return a :class:`Count` or raise
``ValueError`` naming what was missing. ``requests`` counts finished requests (any status);
``errors`` counts non-200 responses plus transport errors, where the tool reports them;
``measured_s`` is the tool's own measured duration when it prints one (else ``None``).
"""

from __future__ import annotations

import csv
import io
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

LOCUSTFILE = Path(__file__).with_name("locustfile.py")


@dataclass(frozen=True, slots=True, kw_only=True)
class Count:
    """What one client says it did."""

    requests: int
    errors: int | None
    measured_s: float | None
    extra: dict[str, object] = field(default_factory=dict)


# --- commands --------------------------------------------------------------------------------

def wrk_command(url: str, *, connections: int, duration_s: int) -> list[str]:
    """Return wrk's command: one thread, ``connections`` keep-alive connections, ``duration_s``."""
    return ["wrk", "-t1", f"-c{connections}", f"-d{duration_s}s", "--latency", url]


def floor_command(binary: str, url: str, *, connections: int, duration_s: int) -> list[str]:
    """Return the floor client's command (bench/floor.c, built by ``install.build_floor``)."""
    return [binary, url, str(connections), str(duration_s)]


def hey_command(url: str, *, connections: int, duration_s: int) -> list[str]:
    """Return hey's command: ``connections`` workers for ``duration_s`` on one Go P."""
    return ["hey", "-c", str(connections), "-z", f"{duration_s}s", "-cpus", "1", url]


def locust_command(host: str, *, users: int, duration_s: int, csv_prefix: str,
                   path: str = "/hello") -> list[str]:
    """Return a headless one-process Locust run of ``bench/locustfile.py`` (FastHttpUser) on
    ``path`` (given through ``BENCH_PATH``: ``env`` exec's Locust, so the child is still it)."""
    return ["env", f"BENCH_PATH={path}", sys.executable, "-m", "locust", "-f", str(LOCUSTFILE),
            "--headless",
            "-u", str(users), "-r", str(users), "-t", f"{duration_s}s", "--host", host,
            "--only-summary", "--json", "--csv", csv_prefix, "--loglevel", "WARNING"]


def slogate_command(url: str, *, model: str, connections: int = 0, duration_s: float | None = None,
                    requests: int | None = None, rate_rps: float | None = None,
                    transport: str = "fast", max_duration_s: float | None = None,
                    warmup_s: float | None = None) -> list[str]:
    """Return the ``bench.slogate_client`` command for one closed or open run."""
    cmd = [sys.executable, "-m", "bench.slogate_client", "--url", url, "--model", model,
           "--transport", transport]
    if connections:
        cmd += ["--connections", str(connections)]
    if duration_s is not None:
        cmd += ["--duration", f"{duration_s:g}"]
    if requests is not None:
        cmd += ["--requests", str(requests)]
    if rate_rps is not None:
        cmd += ["--rate", f"{rate_rps:g}"]
    if max_duration_s is not None:
        cmd += ["--max-duration", f"{max_duration_s:g}"]
    if warmup_s:
        cmd += ["--warmup", f"{warmup_s:g}"]
    return cmd


# --- parsers ---------------------------------------------------------------------------------

_WRK_TOTAL = re.compile(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m|h),", re.MULTILINE)
_WRK_SOCKET = re.compile(
    r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
_WRK_NON2XX = re.compile(r"Non-2xx or 3xx responses: (\d+)")
_TIME_UNITS_S = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_wrk(text: str) -> Count:
    """Return wrk's totals from its report ("N requests in 10.00s, ...")."""
    total = _WRK_TOTAL.search(text)
    if total is None:
        raise ValueError("wrk printed no 'N requests in' line")
    socket = _WRK_SOCKET.search(text)
    socket_errors = sum(int(g) for g in socket.groups()) if socket else 0
    non2xx = _WRK_NON2XX.search(text)
    errors = socket_errors + (int(non2xx.group(1)) if non2xx else 0)
    return Count(requests=int(total.group(1)),
                 measured_s=float(total.group(2)) * _TIME_UNITS_S[total.group(3)],
                 errors=errors, extra={"socket_errors": socket_errors})


_HEY_TOTAL_S = re.compile(r"^\s*Total:\s+([\d.]+) secs", re.MULTILINE)
_HEY_STATUS = re.compile(r"^\s*\[(\d+)\]\s+(\d+) responses", re.MULTILINE)
_HEY_ERROR = re.compile(r"^\s*\[(\d+)\]\s+(.+)$", re.MULTILINE)


def parse_hey(text: str) -> Count:
    """Return hey's totals: the sum of its "Status code distribution" and "Error distribution"."""
    statuses = {int(code): int(n) for code, n in _HEY_STATUS.findall(text)}
    if not statuses:
        raise ValueError("hey printed no 'Status code distribution' lines")
    _, _, error_part = text.partition("Error distribution:")
    transport_errors = {msg.strip(): int(n) for n, msg in _HEY_ERROR.findall(error_part)}
    total = _HEY_TOTAL_S.search(text)
    non200 = sum(n for code, n in statuses.items() if code != 200)
    return Count(requests=sum(statuses.values()),
                 errors=non200 + sum(transport_errors.values()),
                 measured_s=float(total.group(1)) if total else None,
                 extra={"status": statuses, "transport_errors": transport_errors})


def parse_locust_json(text: str) -> Count:
    """Return Locust's final totals from the stats JSON that ``--json`` prints at exit.

    This, not the ``*_stats.csv`` file, is the final count: Locust rewrites the CSV from a greenlet
    once a second and does not rewrite it at exit, so the CSV misses the last second or more (far
    more when the process is CPU-bound and that greenlet rarely runs).
    """
    start = text.find("[")
    if start < 0:
        raise ValueError("Locust printed no stats JSON (--json)")
    entries = json.loads(text[start:text.rindex("]") + 1])
    if not entries:
        raise ValueError("Locust's stats JSON has no entries (no request finished)")
    requests = sum(int(e["num_requests"]) for e in entries)
    began = min(float(e["start_time"]) for e in entries)
    ended = max(float(e["last_request_timestamp"] or began) for e in entries)
    return Count(requests=requests, errors=sum(int(e["num_failures"]) for e in entries),
                 measured_s=ended - began if ended > began else None)


def parse_locust_stats(csv_text: str) -> Count:
    """Return Locust's totals from the "Aggregated" row of its ``*_stats.csv`` (may be stale)."""
    for row in csv.DictReader(io.StringIO(csv_text)):
        if row.get("Name") == "Aggregated":
            requests = int(row["Request Count"])
            rps = float(row["Requests/s"])
            return Count(requests=requests, errors=int(row["Failure Count"]),
                         measured_s=requests / rps if rps > 0 else None,
                         extra={"locust_rps": rps,
                                "p50_ms": _float_or_none(row.get("50%")),
                                "p99_ms": _float_or_none(row.get("99%"))})
    raise ValueError("Locust's stats CSV has no 'Aggregated' row")


_FLOOR_TOTAL = re.compile(r"^requests (\d+) errors (\d+) ", re.MULTILINE)


def parse_floor(text: str) -> Count:
    """Return the floor client's totals ("requests N errors E ...")."""
    total = _FLOOR_TOTAL.search(text)
    if total is None:
        raise ValueError("the floor client printed no 'requests N errors E' line")
    return Count(requests=int(total.group(1)), errors=int(total.group(2)), measured_s=None)


def parse_slogate(text: str) -> Count:
    """Return slogate_client's totals from the last JSON line it printed."""
    for line in reversed(text.strip().splitlines()):
        if line.startswith("{"):
            data = json.loads(line)
            if "error" in data:
                raise ValueError(f"slogate_client failed: {data['error']}")
            return Count(requests=int(data["requests"]), errors=int(data["errors"]),
                         measured_s=float(data["elapsed_s"]), extra=data)
    raise ValueError("slogate_client printed no JSON line")


def _float_or_none(text: str | None) -> float | None:
    try:
        return float(text) if text not in (None, "", "N/A") else None
    except ValueError:
        return None
