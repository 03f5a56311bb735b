"""Turns measured runs into results, ratios against goals, a printed table and ``results.json``.

Pure except :func:`write_json`. A failed client is a :class:`ClientResult` with ``error`` set and no
numbers; a ratio that involves one is ``None`` and its goal is "not measured", never "met".
The headline figure is requests per client CPU-second (``req_per_cpu_s``): on a shared machine a
client's throughput depends on what else runs, its CPU cost per request much less so.
"""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.measure import ChildRun
from bench.peers import Count

# peer -> slogate must do at least this many times as many requests per CPU-second
CPU_GOALS: dict[str, float] = {"wrk": 1.10, "hey": 4.0, "locust": 20.0}  # issue #20
OPEN_RATE_TOLERANCE = 0.01  # achieved rate within 1 % of target
OPEN_LAG_P99_GOAL_MS = 1.0
FLAT_AFTER_FRACTION = 0.2  # memory is "flat" if it grows < 10 % after the first 20 % of a run
FLAT_TOLERANCE = 0.10


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientResult:
    """One client's run: counts, times and derived rates, or the error that ended it."""

    name: str
    command: str
    wall_s: float
    cpu_s: float
    requests: int | None = None
    errors: int | None = None
    measured_s: float | None = None  # the tool's own duration; wall_s also counts start-up
    rps: float | None = None
    req_per_cpu_s: float | None = None
    user_s: float = 0.0  # cpu_s split into user time
    sys_s: float = 0.0  # and system (kernel) time
    error: str | None = None
    server_requests: int | None = None  # what nginx counted meanwhile (stub_status)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Return whether the run produced numbers."""
        return self.error is None


@dataclass(frozen=True, slots=True, kw_only=True)
class Ratio:
    """slogate's figure divided by a peer's, and the goal it is held to (if any)."""

    metric: str
    numerator: str
    denominator: str
    value: float | None
    goal: float | None

    @property
    def verdict(self) -> str:
        """Return "met", "not met", "not measured", or "" when there is no goal."""
        if self.goal is None:
            return ""
        if self.value is None:
            return "not measured"
        return "met" if self.value >= self.goal else "not met"


def client_result(name: str, run: ChildRun, parse: Callable[[str], Count]) -> ClientResult:
    """Return the result of one client run, parsed from its stdout by ``parse``."""
    base: dict[str, Any] = dict(name=name, command=" ".join(run.command), wall_s=run.wall_s,
                                cpu_s=run.cpu_s, user_s=run.user_s, sys_s=run.sys_s)
    if run.timed_out:
        return ClientResult(**base, error=f"killed after {run.wall_s:.0f} s (timeout)")
    try:
        count = parse(run.stdout)
    except (ValueError, KeyError, OSError) as exc:
        detail = _tail(run.stderr) or _tail(run.stdout)
        return ClientResult(**base, error=f"exit {run.returncode}: {exc}; {detail}")
    duration_s = count.measured_s or run.wall_s
    extra = dict(count.extra)
    if run.returncode != 0:
        extra["exit_status"] = run.returncode
    return ClientResult(**base, requests=count.requests, errors=count.errors,
                        measured_s=count.measured_s, rps=count.requests / duration_s,
                        req_per_cpu_s=count.requests / run.cpu_s if run.cpu_s > 0 else None,
                        extra=extra)


def failed_result(name: str, error: str) -> ClientResult:
    """Return the result of a client that could not be run at all."""
    return ClientResult(name=name, command="", wall_s=0.0, cpu_s=0.0, error=error)


def ratios(results: Sequence[ClientResult]) -> list[Ratio]:
    """Return every slogate-vs-peer ratio: CPU efficiency (with goals), then requests/s."""
    ours = [r for r in results if r.name.startswith("slogate")]
    peers = [r for r in results if not r.name.startswith("slogate")]
    out = []
    for metric in ("req_per_cpu_s", "rps"):
        for mine in ours:
            for peer in peers:
                goal = CPU_GOALS.get(peer.name) if metric == "req_per_cpu_s" else None
                out.append(Ratio(metric=metric, numerator=mine.name, denominator=peer.name,
                                 value=_divide(getattr(mine, metric), getattr(peer, metric)),
                                 goal=goal))
    return out


def _divide(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenResult:
    """slogate's open-model run: achieved rate and schedule lag against their goals."""

    target_rps: float
    achieved_rps: float | None = None
    lag_p99_ms: float | None = None
    cpu_s: float = 0.0
    error: str | None = None
    server_requests: int | None = None  # what nginx counted meanwhile (stub_status)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rate_met(self) -> bool:
        """Return whether the achieved rate is within 1 % of the target."""
        return (self.achieved_rps is not None
                and abs(self.achieved_rps / self.target_rps - 1.0) <= OPEN_RATE_TOLERANCE)

    @property
    def lag_met(self) -> bool:
        """Return whether the schedule lag's p99 is at most 1 ms."""
        return self.lag_p99_ms is not None and self.lag_p99_ms <= OPEN_LAG_P99_GOAL_MS


def open_result(target_rps: float, client: ClientResult) -> OpenResult:
    """Return the open-model figures of a parsed ``slogate_client --model open`` run."""
    if not client.ok:
        return OpenResult(target_rps=target_rps, cpu_s=client.cpu_s, error=client.error)
    extra = client.extra
    return OpenResult(target_rps=target_rps, achieved_rps=extra.get("achieved_rps"),
                      lag_p99_ms=extra.get("lag_p99_ms"), cpu_s=client.cpu_s,
                      server_requests=client.server_requests, extra=extra)


@dataclass(frozen=True, slots=True, kw_only=True)
class SoakResult:
    """RSS of a long closed-model run, sampled from outside, and whether it stayed flat."""

    requests: int | None
    wall_s: float
    samples: tuple[tuple[float, int], ...]  # (seconds since start, VmRSS bytes)
    peak_bytes: int | None
    peak_early_bytes: int | None  # the peak over the first 20 % of the run
    flat: bool | None
    error: str | None = None


def soak_result(client: ClientResult, samples: Sequence[tuple[float, int]]) -> SoakResult:
    """Return peak RSS and flatness: flat iff the overall peak <= 1.1 x the peak by 20 % in."""
    if not samples:
        return SoakResult(requests=client.requests, wall_s=client.wall_s, samples=(),
                          peak_bytes=None, peak_early_bytes=None, flat=None,
                          error=client.error or "no RSS samples")
    end_s = samples[-1][0]
    early = [rss for t, rss in samples if t <= FLAT_AFTER_FRACTION * end_s] or [samples[0][1]]
    peak, peak_early = max(rss for _, rss in samples), max(early)
    return SoakResult(requests=client.requests, wall_s=client.wall_s, samples=tuple(samples),
                      peak_bytes=peak, peak_early_bytes=peak_early,
                      flat=peak <= (1.0 + FLAT_TOLERANCE) * peak_early, error=client.error)


def rss_at_requests(soak: SoakResult, marks: Sequence[int]) -> list[tuple[int, float, int]]:
    """Return (requests mark, time, peak RSS so far) per mark, placing marks by time proportion."""
    if not soak.samples or not soak.requests:
        return []
    end_s = soak.samples[-1][0]
    out = []
    for mark in marks:
        if mark > soak.requests:
            continue
        at_s = end_s * mark / soak.requests
        upto = [rss for t, rss in soak.samples if t <= at_s] or [soak.samples[0][1]]
        out.append((mark, at_s, max(upto)))
    return out


@dataclass(frozen=True, slots=True, kw_only=True)
class PairedResult:
    """slogate and one peer run *at the same time* on the same core, round after round.

    Both then see the same state of a shared machine (this one switches between a fast and a
    slow state for seconds at a time), so their ratio of requests per CPU-second moves much less
    than between runs one after the other. The median round is held to the peer's goal.
    """

    peer: str
    ratios: tuple[float, ...]  # slogate / peer, one per round where both ran
    goal: float | None
    errors: tuple[str, ...] = ()  # why a round gave no ratio
    body: str = "fixed"  # the target's body: "fixed" (/hello) or "dynamic" (/dynamic)
    # where the time goes, median over the rounds: (user us, system us) per request, start-up
    # included, for slogate and for the peer
    mine_us: tuple[float, float] | None = None
    peer_us: tuple[float, float] | None = None
    # slogate without its interpreter start-up and imports (its own run_user_s/run_sys_s): on a
    # machine so loaded that a round serves few requests, the fixed ~0.25 CPU-s of start-up
    # outweighs the per-request cost; the ratios then compare the run with the whole peer
    mine_run_us: tuple[float, float] | None = None
    run_ratios: tuple[float, ...] = ()

    @property
    def run_median(self) -> float | None:
        """Return the median run-only ratio over the rounds, or None with none."""
        return statistics.median(self.run_ratios) if self.run_ratios else None

    @property
    def median(self) -> float | None:
        """Return the median ratio over the rounds, or None with none."""
        return statistics.median(self.ratios) if self.ratios else None

    @property
    def verdict(self) -> str:
        """Return "met", "not met", "not measured", or "" when there is no goal."""
        return Ratio(metric="req_per_cpu_s", numerator="", denominator=self.peer,
                     value=self.median, goal=self.goal).verdict


def paired_result(peer: str, rounds: Sequence[tuple[ClientResult, ClientResult]],
                  body: str = "fixed") -> PairedResult:
    """Return the paired figures of ``(slogate, peer)`` results, one pair per round."""
    ratios, errors = [], []
    for mine, theirs in rounds:
        value = _divide(mine.req_per_cpu_s, theirs.req_per_cpu_s)
        if value is None:
            errors.append("; ".join(f"{r.name}: {r.error}" for r in (mine, theirs) if r.error)
                          or "no requests per CPU-second")
        else:
            ratios.append(value)
    both = [(m, t) for m, t in rounds if m.ok and t.ok and m.requests and t.requests]
    runs = [(m, t) for m, t in both if m.extra.get("run_user_s") is not None]
    run_only = [dataclasses.replace(m, user_s=float(m.extra["run_user_s"]),
                                    sys_s=float(m.extra["run_sys_s"])) for m, _ in runs]
    run_ratios = tuple(_divide((m.requests or 0) / (m.user_s + m.sys_s), t.req_per_cpu_s) or 0.0
                       for m, (_, t) in zip(run_only, runs, strict=True) if m.user_s + m.sys_s > 0)
    return PairedResult(peer=peer, ratios=tuple(ratios), goal=CPU_GOALS.get(peer),
                        errors=tuple(errors), body=body,
                        mine_us=_us_per_request([m for m, _ in both]),
                        peer_us=_us_per_request([t for _, t in both]),
                        mine_run_us=_us_per_request(run_only), run_ratios=run_ratios)


def _us_per_request(results: Sequence[ClientResult]) -> tuple[float, float] | None:
    """Return the median (user, system) microseconds per request of ``results``, or None."""
    if not results or not all(r.requests for r in results):
        return None
    return (statistics.median(1e6 * r.user_s / (r.requests or 1) for r in results),
            statistics.median(1e6 * r.sys_s / (r.requests or 1) for r in results))


# --- printing --------------------------------------------------------------------------------

def num(value: float | int | None, fmt: str) -> str:
    """Return value formatted with fmt, or "-" when there is none."""
    return "-" if value is None else format(value, fmt)


def format_table(results: Sequence[ClientResult]) -> str:
    """Return the closed-model results as a fixed-width text table."""
    head = (f"{'client':<18}{'requests':>10}{'nginx saw':>10}{'errors':>7}{'wall s':>7}"
            f"{'meas s':>7}{'req/s':>8}{'CPU s':>7}{'req/CPU-s':>10}")
    lines = [head, "-" * len(head)]
    for r in results:
        if not r.ok:
            lines.append(f"{r.name:<18}FAILED: {r.error}")
            continue
        lines.append(f"{r.name:<18}{r.requests:>10}{num(r.server_requests, 'd'):>10}"
                     f"{num(r.errors, 'd'):>7}{r.wall_s:>7.2f}{num(r.measured_s, '.2f'):>7}"
                     f"{num(r.rps, '.0f'):>8}{r.cpu_s:>7.2f}{num(r.req_per_cpu_s, '.0f'):>10}")
    return "\n".join(lines)


def format_ratios(items: Sequence[Ratio]) -> str:
    """Return the ratios, CPU efficiency first (with goals and verdicts), then requests/s."""
    titles = {"req_per_cpu_s": "requests per client CPU-second (the figure; higher is better)",
              "rps": "requests/s (no goal: both sides share this machine)"}
    lines: list[str] = []
    for metric, title in titles.items():
        lines.append(title)
        for ratio in (r for r in items if r.metric == metric):
            goal = f"goal >= {ratio.goal:g}x  {ratio.verdict}" if ratio.goal else ""
            name = f"{ratio.numerator}/{ratio.denominator}"
            lines.append(f"  {name:<26}{num(ratio.value, '.2f'):>8}x   {goal}".rstrip())
    return "\n".join(lines)


def format_open(result: OpenResult) -> str:
    """Return the open-model lines: rate vs target and schedule lag, each against its goal."""
    if result.error:
        return f"open model {result.target_rps:g} req/s: FAILED: {result.error}"
    rate = (f"achieved {num(result.achieved_rps, '.0f')} of {result.target_rps:g} req/s "
            f"({num(_percent(result), '+.2f')} %)  goal within 1 %  "
            f"{'met' if result.rate_met else 'not met'}")
    extra = result.extra
    by_window = " ".join(num(v, ".2f") for v in extra.get("lag_p99_ms_by_window") or [])
    lag = (f"schedule lag p99 {num(result.lag_p99_ms, '.3f')} ms  goal <= 1 ms  "
           f"{'met' if result.lag_met else 'not met'}\n"
           f"    (max {num(extra.get('lag_max_ms'), '.2f')} ms; p99 per 1 s window: {by_window})")
    health = (f"scheduled {extra.get('scheduled')}, sent {extra.get('sent')}, "
              f"unsent {extra.get('unsent')}, errors {extra.get('errors')}, "
              f"nginx saw {num(result.server_requests, 'd')}, client CPU {result.cpu_s:.2f} s")
    return "\n".join([f"open model, {result.target_rps:g} req/s:", f"  {rate}", f"  {lag}",
                      f"  {health}"])


def format_paired(results: Sequence[PairedResult], *, numerator: str, duration_s: int,
                  connections: int) -> str:
    """Return one line per peer: median ratio of the same-time rounds, range, goal, verdict."""
    rounds = max((len(r.ratios) + len(r.errors) for r in results), default=0)
    bodies = sorted({r.body for r in results}, key=("fixed", "dynamic").index)
    lines = [f"same-time pairs: {numerator} and the peer together on the client core, {rounds} "
             f"rounds of {duration_s} s, {connections} connections each (requests per CPU-second, "
             f"start-up included), body {' and '.join(bodies)}"]
    for r in results:
        name = f"{numerator}/{r.peer} [{r.body}]"
        span = (f"({min(r.ratios):.2f}-{max(r.ratios):.2f})" if r.ratios else "")
        goal = f"goal >= {r.goal:g}x  {r.verdict}" if r.goal else ""
        lines.append(f"  {name:<36}{num(r.median, '.2f'):>8}x {span:<12} {goal}".rstrip())
        if r.mine_us is not None and r.peer_us is not None:
            lines.append(f"    us per request (user + system): slogate {_us(r.mine_us)}, "
                         f"{r.peer} {_us(r.peer_us)}")
        if r.mine_run_us is not None and r.run_ratios:
            lines.append(f"    without slogate's start-up: slogate {_us(r.mine_run_us)}; ratio "
                         f"{num(r.run_median, '.2f')}x ({min(r.run_ratios):.2f}-"
                         f"{max(r.run_ratios):.2f})")
        lines.extend(f"    round failed: {e}" for e in r.errors)
    return "\n".join(lines)


def _us(user_sys: tuple[float, float]) -> str:
    return f"{user_sys[0]:.2f} + {user_sys[1]:.2f} = {sum(user_sys):.2f}"


def _percent(result: OpenResult) -> float | None:
    if result.achieved_rps is None:
        return None
    return 100.0 * (result.achieved_rps / result.target_rps - 1.0)


def format_soak(soak: SoakResult, marks: Sequence[int]) -> str:
    """Return the soak's RSS at request marks, its peak, and whether it stayed flat."""
    if soak.peak_bytes is None or soak.peak_early_bytes is None:  # set together
        return f"soak: FAILED: {soak.error}"
    lines = [f"soak: {num(soak.requests, 'd')} requests in {soak.wall_s:.0f} s"
             + (f" ({soak.error})" if soak.error else "")]
    for mark, at_s, rss in rss_at_requests(soak, marks):
        lines.append(f"  ~{mark:>10} requests (t={at_s:6.1f} s): peak RSS {rss / 2**20:8.1f} MiB")
    lines.append("  RSS MiB at 10 %, 20 %, ... of the run: " + " ".join(
        f"{rss / 2**20:.0f}" for rss in _rss_by_tenth(soak.samples)))
    verdict = "flat" if soak.flat else "NOT flat"
    lines.append(f"  peak RSS {soak.peak_bytes / 2**20:.1f} MiB; by 20 % of the run "
                 f"{soak.peak_early_bytes / 2**20:.1f} MiB -> {verdict} (goal: within 10 %)")
    return "\n".join(lines)


def _rss_by_tenth(samples: Sequence[tuple[float, int]]) -> list[int]:
    """Return the last RSS sample at or before each tenth of the run."""
    end_s = samples[-1][0]
    out = []
    for tenth in range(1, 11):
        upto = [rss for t, rss in samples if t <= end_s * tenth / 10] or [samples[0][1]]
        out.append(upto[-1])
    return out


def as_json(value: Any) -> Any:
    """Return a dataclass (or a structure of them) as JSON-ready data, derived verdicts included."""
    if isinstance(value, Ratio):
        return {**asdict(value), "verdict": value.verdict}
    if isinstance(value, OpenResult):
        return {**asdict(value), "rate_met": value.rate_met, "lag_met": value.lag_met}
    if isinstance(value, ClientResult):
        return {**asdict(value), "ok": value.ok}
    if isinstance(value, SoakResult):
        return asdict(value)
    if isinstance(value, PairedResult):
        return {**asdict(value), "median": value.median, "verdict": value.verdict}
    if isinstance(value, dict):
        return {k: as_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [as_json(v) for v in value]
    return value


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` to ``path`` atomically: a temporary file in the same folder, then replace."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, indent=2)
            handle.write("\n")
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _tail(text: str, chars: int = 400) -> str:
    return " ".join(text.strip().split())[-chars:]
