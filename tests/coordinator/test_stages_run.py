"""Load stages and the max-rate search against a real server of known capacity on 127.0.0.1:
a server with a fixed number of workers and a fixed service time serves at most
``workers / service time`` requests per second; past that its queue, and latency, grow."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

from coordinator.max_rate import find_max_rate, summary_lines
from coordinator.run import run_experiment
from coordinator.spec import ExperimentSpec, parse_spec
from tests.support.pools import InProcessPool

# A long service time keeps the server's own overheads (timer slack, a busy shared machine) a
# few percent of it, so the capacity it serves is the one computed here.
WORKERS, SERVICE_S = 8, 0.080
CAPACITY_RPS = WORKERS / SERVICE_S  # 100 req/s


@contextlib.contextmanager
def fixed_capacity_server() -> Iterator[str]:
    """Yield the URL of a server (a process of its own, so it does not share this process's
    interpreter lock with the load) that answers 200 after 80 ms, at most 8 requests at once."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.support.capacity_server", str(WORKERS), str(SERVICE_S)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        yield f"http://127.0.0.1:{int(process.stdout.readline())}"
    finally:
        process.kill()
        process.wait()


def spec_for(url: str, load: dict[str, Any]) -> ExperimentSpec:
    """Return a spec judging p90 <= 200 ms (2.5 service times) and errors <= 5 % (80 requests
    without an error decide that). The server shares the machine's two cores with the load,
    and an overloaded one accepts new connections late: the wait for a connection counts as
    schedule lag, so its bound is 1 s here (the generator's health is not what is tested)."""
    return parse_spec({"name": "capacity", "target": url, "load": {"timeout": 5, **load},
                       "http": {"transport": "fast"}, "analysis": {"maxScheduleLag": "1s"},
                       "objectives": ["p(90)<200ms", {"metric": "error-rate", "upperLimit": "5%"}]})


def test_a_stage_that_overloads_the_server_fails_only_that_stage() -> None:
    """Stages of 40, 60 and 200 req/s against a 100 req/s server: the first two PASS, the
    overloading one FAILs on its p90, and the run FAILs naming it."""
    with fixed_capacity_server() as url:
        spec = spec_for(url, {"warmup": 0.5, "stages": [
            {"rate": 40, "duration": 2}, {"rate": 60, "duration": 2},
            {"rate": 200, "duration": 2, "name": "overload"}]})
        results = run_experiment(spec, InProcessPool())
    assert results.stages is not None
    assert [(s.name, s.verdict) for s in results.stages] == [
        ("stage 1", "PASS"), ("stage 2", "PASS"), ("overload", "FAIL")]
    assert [s.requests for s in results.stages][:2] == [80, 120]
    assert results.verdict == "FAIL"
    assert results.reasons[0].startswith("stage 3 (overload, 200 req/s): latency-p90")


def test_the_max_rate_search_finds_the_servers_capacity_within_10_percent() -> None:
    """From 60 req/s the search brackets the 100 req/s capacity: the highest passing rate it
    reports is within 10 % of it, with the passing run as evidence."""
    with fixed_capacity_server() as url:
        spec = spec_for(url, {"rate": 60, "duration": 2, "warmup": 0.5})
        pool = InProcessPool()
        found = find_max_rate(spec, lambda at: run_experiment(at, pool), max_steps=9)
    print("\n".join(summary_lines(found)))
    assert found.rate_rps is not None
    assert abs(found.rate_rps - CAPACITY_RPS) <= 0.10 * CAPACITY_RPS, summary_lines(found)
    assert found.evidence is not None and found.evidence.verdict == "PASS"
    assert found.evidence.spec["load"]["rate"] == found.rate_rps
    assert found.bracket[1] is not None and found.bracket[1] > found.rate_rps


def test_every_report_format_has_a_section_per_stage(tmp_path: Any) -> None:
    """Text, markdown and HTML reports of a staged run show each stage's verdict; the results
    document keeps the stages through a save and a load, and a re-judge gives them again."""
    from analysis.rejudge import rejudge
    from analysis.report import render
    from analysis.results import load_results, write_atomic

    with fixed_capacity_server() as url:
        spec = spec_for(url, {"stages": [{"rate": 25, "duration": 1},
                                         {"rate": 50, "duration": 1, "name": "second"}]})
        results = run_experiment(spec, InProcessPool())
    saved = load_results(write_atomic(tmp_path / "results.json", results.to_json()))
    assert saved.stages == results.stages and saved.stages is not None
    for fmt in ("text", "markdown", "html"):
        page = render(saved, fmt, width=200)
        assert "Stages" in page and "second" in page, fmt
    again = rejudge(saved, list(saved.saved.objectives), saved.saved.limits)
    assert [s.verdict for s in again.stages or []] == [s.verdict for s in saved.stages]


def test_stages_of_users_are_judged_one_by_one() -> None:
    """Two workers run 4 then 24 users against the 8-worker server: 4 users are served at once
    (80 ms, PASS), 24 queue three deep (about 240 ms, FAIL on p90 <= 200 ms); the first stage
    cannot have sent more than its 4 users can (one request per user per 80 ms)."""
    with fixed_capacity_server() as url:
        spec = spec_for(url, {"workers": 2, "stages": [{"users": 4, "duration": 2},
                                                       {"users": 24, "duration": 2}]})
        results = run_experiment(spec, InProcessPool())
    assert results.stages is not None
    assert [(s.users, s.verdict) for s in results.stages] == [(4, "PASS"), (24, "FAIL")]
    assert results.stages[0].requests <= 4 * 2 / SERVICE_S + 4
    assert results.verdict == "FAIL"
    assert results.reasons[0].startswith("stage 2 (stage 2, 24 users): latency-p90")


def test_the_max_rate_search_over_users_finds_how_many_the_server_holds() -> None:
    """A closed-model spec from 8 users against the 8-worker, 80 ms server, which serves users
    in rounds of 80 ms: 16 users wait 160 ms, 17 to 24 up to 240 ms, so p90 <= 200 ms holds up
    to 16. The search doubles 8, 16 (PASS), 32 (FAIL), then bisects in whole users; the answer
    passed and lies at the boundary or below, with the run at that many users as evidence."""
    with fixed_capacity_server() as url:
        spec = spec_for(url, {"concurrency": 8, "duration": 1.5, "warmup": 0.3})
        found = find_max_rate(spec, lambda at: run_experiment(at, InProcessPool()), max_steps=5)
    lines = summary_lines(found)
    assert found.unit == "users" and [s.rate_rps for s in found.steps][:3] == [8, 16, 32], lines
    assert found.rate_rps is not None and 16 <= found.rate_rps <= 20, lines
    assert found.bracket[1] is not None and found.bracket[1] <= 32, lines
    assert found.evidence is not None and found.evidence.verdict == "PASS"
    assert found.evidence.spec["load"]["concurrency"] == found.rate_rps
    assert lines[0].startswith(f"find-max-rate: {found.rate_rps:g} users is the highest number")
