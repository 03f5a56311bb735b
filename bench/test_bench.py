"""Tests of the benchmark harness: parsers on real tool output, ratio and soak logic, a real nginx.

Run with ``.venv/bin/python -m pytest bench`` (``make test`` collects ``tests/`` only). The
nginx tests skip where Debian's nginx is not installed (``python -m bench`` installs it).
"""

from __future__ import annotations

import dataclasses
import http.client
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench import cli, install, peers, report, scaling
from bench.measure import ChildRun, Pinning, run_child, run_sampled, run_together
from bench.nginx import nginx_target, parse_stub_status, render_config
from tests.support.helpers import present

REPO = Path(__file__).resolve().parents[1]

WRK_OUT = """\
Running 1s test @ http://127.0.0.1:48997/hello
  1 threads and 10 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   126.27us  249.17us   4.15ms   98.41%
    Req/Sec    71.01k     8.39k   93.86k    90.00%
  Latency Distribution
     50%  106.00us
     99%    1.15ms
  70508 requests in 1.00s, 10.29MB read
{extra}Requests/sec:  70404.08
Transfer/sec:     10.27MB
"""

HEY_OUT = """\

Summary:
  Total:\t1.0026 secs
  Slowest:\t0.0053 secs
  Requests/sec:\t23649.2655

Response time histogram:
  0.000 [1]\t|
  0.001 [20651]\t|■■■■■■■■■■■■■■■■■■■■■■■■■■■■■■■■■■■■■■■■

Latency distribution:
  10% in 0.0001 secs
  99% in 0.0035 secs

Status code distribution:
{statuses}
{errors}
"""

LOCUST_CSV = (
    "Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,"
    "Min Response Time,Max Response Time,Average Content Size,Requests/s,Failures/s,50%,66%,"
    "75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%\n"
    "GET,/hello,8361,2,1,0.68,0.11,30.38,6.0,8362.82,0.0,1,1,1,1,1,1,1,1,5,30,30\n"
    ",Aggregated,8361,2,1,0.68,0.11,30.38,6.0,8362.82,0.0,1,1,1,1,1,1,1,1,5,30,30\n"
)


@pytest.mark.parametrize(("extra", "errors"), [
    pytest.param("", 0, id="clean"),
    pytest.param("  Socket errors: connect 1, read 2, write 0, timeout 3\n", 6, id="socket"),
    pytest.param("  Non-2xx or 3xx responses: 7\n", 7, id="non2xx"),
])
def test_parse_wrk_reads_total_duration_and_errors(extra: str, errors: int) -> None:
    """wrk's "N requests in T" line gives requests and duration; error lines add up."""
    count = peers.parse_wrk(WRK_OUT.format(extra=extra))
    assert (count.requests, count.measured_s, count.errors) == (70508, 1.0, errors)


def test_parse_wrk_converts_minutes() -> None:
    """A duration printed in minutes is converted to seconds."""
    text = WRK_OUT.format(extra="").replace("in 1.00s", "in 1.50m")
    assert peers.parse_wrk(text).measured_s == pytest.approx(90.0)


@pytest.mark.parametrize(("statuses", "errors", "requests", "error_count"), [
    pytest.param("  [200]\t23711 responses", "", 23711, 0, id="ok"),
    pytest.param("  [200]\t100 responses\n  [503]\t5 responses", "", 105, 5, id="non200"),
    pytest.param("  [200]\t100 responses",
                 'Error distribution:\n  [3]\tGet "http://127.0.0.1:1/hello": EOF\n'
                 "  [2]\tcontext deadline exceeded\n", 100, 5, id="transport-errors"),
])
def test_parse_hey_sums_status_and_error_distributions(
        statuses: str, errors: str, requests: int, error_count: int) -> None:
    """Requests are the status-code total; errors are non-200 statuses plus transport errors."""
    count = peers.parse_hey(HEY_OUT.format(statuses=statuses, errors=errors))
    assert (count.requests, count.errors, count.measured_s) == (requests, error_count, 1.0026)


def test_parse_hey_rejects_output_without_statuses() -> None:
    """Output with no status line (hey failed) is an error, not zero requests."""
    with pytest.raises(ValueError, match="Status code"):
        peers.parse_hey("Error: something")


def test_parse_locust_json_sums_entries() -> None:
    """The final JSON's entries add up; duration spans first start to last request."""
    entries = [
        {"name": "/hello", "num_requests": 6337, "num_failures": 1, "start_time": 100.0,
         "last_request_timestamp": 102.5},
        {"name": "/other", "num_requests": 3, "num_failures": 0, "start_time": 100.5,
         "last_request_timestamp": 103.0},
    ]
    text = "some log line\n" + json.dumps(entries, indent=4) + "\n"
    count = peers.parse_locust_json(text)
    assert (count.requests, count.errors, count.measured_s) == (6340, 1, 3.0)


def test_parse_locust_stats_reads_aggregated_row() -> None:
    """The CSV's Aggregated row gives requests and failures; duration = requests / Requests/s."""
    count = peers.parse_locust_stats(LOCUST_CSV)
    assert (count.requests, count.errors) == (8361, 2)
    assert count.measured_s == pytest.approx(8361 / 8362.82)


@pytest.mark.parametrize(("text", "expected"), [
    pytest.param('noise\n{"requests": 5, "errors": 1, "elapsed_s": 2.0}\n', (5, 1, 2.0), id="ok"),
    pytest.param('{"error": "ImportError: x"}\n', None, id="failed"),
    pytest.param("Traceback ...\n", None, id="no-json"),
])
def test_parse_slogate(text: str, expected: tuple[int, int, float] | None) -> None:
    """The last JSON line is the result; an error line or no line is a ValueError."""
    if expected is None:
        with pytest.raises(ValueError):
            peers.parse_slogate(text)
    else:
        count = peers.parse_slogate(text)
        assert (count.requests, count.errors, count.measured_s) == expected


def test_parse_stub_status() -> None:
    """The third number under "server accepts handled requests" is the request total."""
    text = ("Active connections: 1 \nserver accepts handled requests\n 3 3 146189 \n"
            "Reading: 0 Writing: 1 Waiting: 0 \n")
    assert parse_stub_status(text) == 146189


def _run(returncode: int | None, stdout: str, cpu_s: float = 2.0) -> ChildRun:
    return ChildRun(command=("x",), returncode=returncode, stdout=stdout, stderr="boom",
                    wall_s=3.0, cpu_s=cpu_s)


def test_client_result_derives_rates_from_tool_duration() -> None:
    """req/s uses the tool's own duration, req/CPU-s the child's CPU time."""
    result = report.client_result("wrk", _run(0, WRK_OUT.format(extra="")), peers.parse_wrk)
    assert result.ok
    assert result.rps == pytest.approx(70508 / 1.0)
    assert result.req_per_cpu_s == pytest.approx(70508 / 2.0)


@pytest.mark.parametrize(("returncode", "stdout"), [
    pytest.param(None, WRK_OUT.format(extra=""), id="timeout"),
    pytest.param(1, "", id="no-output"),
])
def test_client_result_failure_is_a_value(returncode: int | None, stdout: str) -> None:
    """A timed-out or unparseable run is a result with an error and no numbers."""
    result = report.client_result("wrk", _run(returncode, stdout), peers.parse_wrk)
    assert not result.ok and result.requests is None


def _result(name: str, per_cpu: float | None) -> report.ClientResult:
    if per_cpu is None:
        return report.failed_result(name, "not installed")
    return report.ClientResult(name=name, command="", wall_s=1.0, cpu_s=1.0, requests=1,
                               rps=per_cpu, req_per_cpu_s=per_cpu)


def test_ratios_hold_slogate_to_each_goal() -> None:
    """Each peer's goal is checked against slogate's figure; a failed peer is "not measured"."""
    results = [_result("wrk", 100.0), _result("hey", 27.5), _result("locust", None),
               _result("slogate[fast]", 110.0)]
    verdicts = {(r.metric, r.denominator): (r.value, r.verdict) for r in report.ratios(results)}
    wrk_value, wrk_verdict = verdicts[("req_per_cpu_s", "wrk")]
    assert wrk_value == pytest.approx(1.1) and wrk_verdict == "met"
    assert verdicts[("req_per_cpu_s", "hey")] == (4.0, "met")
    assert verdicts[("req_per_cpu_s", "locust")] == (None, "not measured")
    assert verdicts[("rps", "hey")] == (4.0, "")


@pytest.mark.parametrize(("samples", "flat"), [
    pytest.param([(t, 100) for t in range(10)], True, id="constant"),
    pytest.param([(0, 50), (1, 100), (2, 100), (5, 105), (9, 109)], True, id="warm-up-then-9pct"),
    pytest.param([(0, 100), (1, 100), (2, 100), (5, 105), (9, 111)], False, id="grows-11pct"),
])
def test_soak_flat_means_under_10pct_growth_after_first_fifth(
        samples: list[tuple[float, int]], flat: bool) -> None:
    """Growth during the first 20 % is warm-up; after it the peak may grow by at most 10 %."""
    client = _result("slogate[fast] soak", 1.0)
    assert report.soak_result(client, samples).flat is flat


def test_rss_marks_are_placed_by_time_proportion() -> None:
    """Mark k of N requests falls at k/N of the run; its RSS is the peak up to then."""
    soak = report.SoakResult(requests=10, wall_s=10.0, peak_bytes=9, peak_early_bytes=1, flat=False,
                             samples=tuple((float(t), t) for t in range(11)))
    marks = report.rss_at_requests(soak, [1, 5, 10, 20])
    assert marks == [(1, 1.0, 1), (5, 5.0, 5), (10, 10.0, 10)]


def test_write_json_replaces_atomically(tmp_path: Path) -> None:
    """The file holds the data and no temporary file is left beside it."""
    path = tmp_path / "out" / "results.json"
    report.write_json(path, {"a": 1})
    report.write_json(path, {"a": 2})
    assert json.loads(path.read_text()) == {"a": 2}
    assert [p.name for p in path.parent.iterdir()] == ["results.json"]


def test_run_child_counts_the_childs_cpu_time() -> None:
    """A child that burns ~0.3 s of CPU is charged about that, not its sleep time."""
    burn = ("import time\nt = time.process_time()\n"
            "while time.process_time() - t < 0.3: pass\ntime.sleep(0.3)")
    run = run_child([sys.executable, "-c", burn], timeout_s=30)
    assert run.returncode == 0
    assert 0.3 <= run.cpu_s < run.wall_s


def test_run_together_charges_each_child_its_own_cpu_time() -> None:
    """Children run at once; each is charged what it burned (0.3 s, 0.8 s), not their sum, and
    one past the timeout is killed and marked timed out."""
    burn = ("import time\nt = time.process_time()\n"
            "while time.process_time() - t < {}: pass\nprint('done')")
    began = time.perf_counter()
    runs = run_together([[sys.executable, "-c", burn.format(0.3)],
                         [sys.executable, "-c", burn.format(0.8)],
                         [sys.executable, "-c", "import time; time.sleep(30)"]], timeout_s=4)
    assert time.perf_counter() - began < 10
    short, long, stuck = runs
    assert (short.returncode, long.returncode, stuck.returncode) == (0, 0, None)
    assert short.stdout == long.stdout == "done\n"
    assert 0.3 <= short.cpu_s < 0.6 and 0.8 <= long.cpu_s < 1.1
    assert short.user_s > 0 and short.sys_s >= 0 and short.user_s + short.sys_s == short.cpu_s
    assert stuck.timed_out and stuck.cpu_s < 0.3


def test_paired_result_takes_the_median_round_and_keeps_failed_rounds() -> None:
    """Three rounds with ratios 0.8, 1.1, 0.9 give 0.9 (not met against wrk's 1.10); a round
    where one side failed gives no ratio but is listed with its reason."""
    def pair(mine: float | None, theirs: float) -> tuple[report.ClientResult, report.ClientResult]:
        ours = report.ClientResult(name="slogate[fast]", command="", wall_s=1, cpu_s=1,
                                   req_per_cpu_s=mine, error=None if mine else "exit 1: boom")
        return ours, report.ClientResult(name="wrk", command="", wall_s=1, cpu_s=1,
                                         req_per_cpu_s=theirs)

    result = report.paired_result("wrk", [pair(80.0, 100.0), pair(110.0, 100.0),
                                          pair(None, 100.0), pair(90.0, 100.0)])
    assert result.ratios == (0.8, 1.1, 0.9)
    assert result.median == pytest.approx(0.9) and result.verdict == "not met"
    assert result.errors == ("slogate[fast]: exit 1: boom",)
    text = report.format_paired([result], numerator="slogate[fast]", duration_s=4, connections=50)
    assert "4 rounds of 4 s" in text
    assert "slogate[fast]/wrk" in text and "0.90x (0.80-1.10)" in text and "not met" in text
    assert "round failed: slogate[fast]: exit 1: boom" in text
    assert report.as_json(result)["median"] == pytest.approx(0.9)


def test_paired_result_says_where_the_time_goes_per_body() -> None:
    """Two rounds against the dynamic body give the median user and system microseconds per
    request of each side, printed beside the ratio under the body's name, and slogate's figures
    without its start-up (its own run_user_s and run_sys_s)."""
    def side(name: str, requests: int, user_s: float, sys_s: float) -> report.ClientResult:
        return report.ClientResult(name=name, command="", wall_s=1, cpu_s=user_s + sys_s,
                                   requests=requests, req_per_cpu_s=requests / (user_s + sys_s),
                                   user_s=user_s, sys_s=sys_s)

    rounds = [(side("slogate[fast]", 100_000, 0.10, 0.60), side("wrk", 100_000, 0.07, 0.66)),
              (side("slogate[fast]", 200_000, 0.30, 1.20), side("wrk", 200_000, 0.14, 1.30))]
    rounds[0][0].extra.update(run_user_s=0.05, run_sys_s=0.55)  # start-up: 0.1 CPU-s
    rounds[1][0].extra.update(run_user_s=0.16, run_sys_s=1.14)
    result = report.paired_result("wrk", rounds, "dynamic")
    assert result.mine_run_us == pytest.approx((0.65, 5.6))
    assert result.run_ratios == pytest.approx((0.73 / 0.60, 1.44 / 1.30))
    assert result.body == "dynamic"
    assert result.mine_us == pytest.approx((1.25, 6.0)) and result.peer_us == pytest.approx((0.7, 6.55))
    text = report.format_paired([result], numerator="slogate[fast]", duration_s=8, connections=50)
    assert "body dynamic" in text and "slogate[fast]/wrk [dynamic]" in text
    assert "slogate 1.25 + 6.00 = 7.25, wrk 0.70 + 6.55 = 7.25" in text
    assert "without slogate's start-up: slogate 0.65 + 5.60 = 6.25; ratio 1.16x (1.11-1.22)" in text


def test_run_sampled_samples_rss_and_kills_at_timeout() -> None:
    """A child past its timeout is killed and marked timed out; RSS samples were taken."""
    run = run_sampled([sys.executable, "-c", "import time; time.sleep(30)"], timeout_s=1.2,
                      every_s=0.2)
    assert run.timed_out
    assert run.rss_samples and all(rss > 0 for _, rss in run.rss_samples)


needs_nginx = pytest.mark.skipif(present(install.find_tool("nginx")) is None, reason="no nginx installed")


@needs_nginx
def test_rendered_config_passes_nginx_t(tmp_path: Path) -> None:
    """nginx -t accepts the rendered config."""
    conf = tmp_path / "nginx.conf"
    conf.write_text(render_config(prefix=tmp_path, port=1))
    done = subprocess.run([present(install.find_tool("nginx")), "-t", "-e", str(tmp_path / "e.log"),
                           "-p", str(tmp_path), "-c", str(conf)],
                          capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr


@needs_nginx
def test_nginx_target_serves_hello_and_counts_requests() -> None:
    """/hello answers "hello"; stub_status counts 10 requests plus its own query."""
    with nginx_target(present(install.find_tool("nginx"))) as target:
        before = present(target.served())
        for _ in range(10):
            conn = http.client.HTTPConnection("127.0.0.1", target.port, timeout=5)
            conn.request("GET", "/hello")
            assert conn.getresponse().read() == b"hello\n"
            conn.close()
        assert present(target.served()) - before == 11


@needs_nginx
def test_nginx_dynamic_body_differs_on_every_request() -> None:
    """/dynamic answers $request_id: 32 hex digits, a different one each time."""
    bodies = []
    with nginx_target(present(install.find_tool("nginx"))) as target:
        conn = http.client.HTTPConnection("127.0.0.1", target.port, timeout=5)
        for _ in range(5):
            conn.request("GET", "/dynamic")
            bodies.append(conn.getresponse().read())
        conn.close()
    assert len(set(bodies)) == 5
    assert all(len(b) == 32 and int(b, 16) >= 0 for b in bodies)


@needs_nginx
def test_slogate_client_on_the_dynamic_body_says_its_pump_and_cpu_split() -> None:
    """Against /dynamic, 3000 closed-model requests are what nginx counts, on the compiled
    pump, with the run's user and system seconds adding up to its CPU seconds."""
    with nginx_target(present(install.find_tool("nginx"))) as target:
        before = present(target.served())
        cmd = peers.slogate_command(target.dynamic_url, model="closed", connections=8,
                                    requests=3000, max_duration_s=30)
        run = run_child(cmd, timeout_s=60, cwd=REPO)
        served = present(target.served()) - before - 1
    count = peers.parse_slogate(run.stdout)
    assert (count.requests, count.errors, served) == (3000, 0, 3000), run.stderr
    assert count.extra["pump"] == "compiled"
    user_s, sys_s, cpu_s = (count.extra[k] for k in ("run_user_s", "run_sys_s", "run_cpu_s"))
    assert isinstance(user_s, float) and isinstance(sys_s, float) and isinstance(cpu_s, float)
    assert user_s + sys_s == pytest.approx(cpu_s)


@needs_nginx
@pytest.mark.parametrize("transport", ["fast", "aiohttp"])
def test_slogate_client_request_count_matches_nginx(transport: str) -> None:
    """slogate_client's closed run of 2000 requests is what nginx counts, all status 200."""
    with nginx_target(present(install.find_tool("nginx"))) as target:
        before = present(target.served())
        cmd = peers.slogate_command(target.url, model="closed", connections=8, requests=2000,
                                    transport=transport, max_duration_s=30)
        run = run_child(cmd, timeout_s=60, cwd=REPO)
        served = present(target.served()) - before - 1
    count = peers.parse_slogate(run.stdout)
    assert (count.requests, count.errors, served) == (2000, 0, 2000), run.stderr


def test_parse_floor() -> None:
    """The floor client's one line gives its requests and errors; anything else is refused."""
    count = peers.parse_floor("requests 812345 errors 3 p99_below_us 262.1\n")
    assert (count.requests, count.errors, count.measured_s) == (812345, 3, None)
    with pytest.raises(ValueError, match="no 'requests N errors E' line"):
        peers.parse_floor("floor: connect: Connection refused\n")


def test_the_floor_client_refuses_what_it_cannot_read(tmp_path: Path) -> None:
    """A URL that is not http://<IPv4>:<port>/..., or a connection count out of range: usage
    on stderr, exit 2, before any connection."""
    binary, problem = install.build_floor(tmp_path, lambda _: None)
    assert problem is None and binary is not None
    for args in (["https://127.0.0.1:1/x", "1", "1"], ["http://localhost:1/x", "1", "1"],
                 ["http://127.0.0.1:1/x", "0", "1"], ["http://127.0.0.1:1/x", "1"]):
        done = subprocess.run([str(binary), *args], capture_output=True, text=True, timeout=10,
                              check=False)
        assert done.returncode == 2 and done.stderr.startswith("usage: floor"), args


@needs_nginx
@pytest.mark.parametrize("body", ["fixed", "dynamic"])
def test_the_floor_client_sends_what_nginx_counts(body: str, tmp_path: Path) -> None:
    """Built with the system compiler, the floor client's 1 s run with 4 connections is what
    nginx counts, all 200s, on either body; its command is the one the pairs run."""
    binary, problem = install.build_floor(tmp_path, lambda _: None)
    assert problem is None and binary is not None
    with nginx_target(present(install.find_tool("nginx"))) as target:
        url = target.url if body == "fixed" else target.dynamic_url
        before = present(target.served())
        run = run_child(peers.floor_command(str(binary), url, connections=4, duration_s=1),
                        timeout_s=30)
        served = present(target.served()) - before - 1
    count = peers.parse_floor(run.stdout)
    assert run.returncode == 0, run.stderr
    assert count.requests > 1000 and count.errors == 0
    # the 4 requests in flight when the run ends reached nginx but were never read back
    assert served - count.requests == 4


# --- bench.scaling: pure helpers ----------------------------------------------------------------

PROC_STAT = """\
cpu  100 10 50 800 5 0 20 3 0 0
cpu0 60 5 30 300 2 0 15 1 0 0
cpu1 40 5 20 500 3 0 5 2 0 0
intr 1 2 3
"""


def test_parse_cpu_times_reads_machine_and_cores() -> None:
    """busy = user+nice+system+irq+softirq+steal; total adds idle and iowait."""
    cpus = scaling.parse_cpu_times(PROC_STAT)
    assert sorted(cpus) == ["cpu", "cpu0", "cpu1"]
    assert (cpus["cpu"].busy, cpus["cpu"].total) == (183, 988)
    assert cpus["cpu1"].softirq == 5


def test_parse_cpu_times_rejects_text_without_cpu_line() -> None:
    """Text with no aggregate line is an error, not an empty machine."""
    with pytest.raises(ValueError):
        scaling.parse_cpu_times("intr 1 2 3\n")


@pytest.mark.parametrize(("comm", "expected"), [
    pytest.param("nginx", "nginx", id="plain"),
    pytest.param("ray::RayLoadWor", "ray::RayLoadWor", id="colons"),
    pytest.param("we) (ird x", "we) (ird x", id="parens-and-spaces"),
])
def test_parse_pid_stat_counts_fields_after_the_last_paren(comm: str, expected: str) -> None:
    """Parent pid is field 4, utime and stime fields 14 and 15, whatever the command name."""
    line = (f"4242 ({comm}) S 17 4242 4242 0 -1 4194560 100 0 0 0 123 45 0 0 20 0 1 0 "
            "999 1000 200 18446744073709551615\n")
    assert scaling.parse_pid_stat(line) == (expected, 17, 168)


def test_descendants_walks_the_whole_tree_from_root() -> None:
    """Children, grandchildren, and the root itself; not siblings or parents."""
    parents = {1: 0, 10: 1, 11: 10, 12: 11, 20: 1, 21: 20, 30: 12}
    assert scaling.descendants(parents, 10) == {10, 11, 12, 30}
    assert scaling.descendants(parents, 99) == {99}


def _sample(at: float, procs: dict[int, tuple[int, int]], cpu: tuple[int, ...],
            cores: tuple[tuple[int, ...], ...]) -> scaling.Sample:
    cpus = {"cpu": scaling.CpuTimes(*cpu)}
    cpus.update({f"cpu{i}": scaling.CpuTimes(*c) for i, c in enumerate(cores)})
    return scaling.Sample(at=at, cpus=cpus, procs={
        pid: scaling.ProcStat(f"p{pid}", ppid, ticks) for pid, (ppid, ticks) in procs.items()})


def test_bracket_takes_the_samples_inside_the_phase() -> None:
    """The first sample at or after the start and the last at or before the end."""
    samples = [_sample(t, {}, (0, 0, 0, 0), ()) for t in (0.9, 1.1, 1.3, 2.0, 2.1)]
    first, last = present(scaling.bracket(samples, 1.0, 2.0))
    assert (first.at, last.at) == (1.1, 2.0)
    assert scaling.bracket(samples, 1.4, 1.9) is None


def test_cpu_budget_attributes_ticks_to_nginx_actors_ray_and_others() -> None:
    """Over 2 s at 100 ticks/s: nginx = master+worker, actors by pid, the driver's tree minus
    both, irq from /proc/stat, and "other" the rest of the machine's busy time."""
    driver, raylet, actor, nginx, worker, stranger, newborn = 100, 101, 102, 200, 201, 300, 103
    before = {driver: (1, 0), raylet: (driver, 0), actor: (raylet, 0), nginx: (driver, 0),
              worker: (nginx, 0), stranger: (1, 0)}
    after = {driver: (1, 10), raylet: (driver, 10), actor: (raylet, 140), nginx: (driver, 2),
             worker: (nginx, 150), stranger: (1, 20), newborn: (raylet, 10)}
    first = _sample(10.0, before, (0,) * 8, ((0,) * 8, (0,) * 8))
    # 2 cores busy for 2 s at 100 ticks/s: 360 user+system, 40 softirq; core 0 idle 10 ticks
    last = _sample(12.0, after, (220, 0, 140, 10, 0, 0, 40, 0),
                   ((110, 0, 60, 10, 0, 0, 20, 0), (110, 0, 80, 0, 0, 0, 20, 0)))
    budget = scaling.cpu_budget(first, last, hz=100, nginx_pid=nginx, actor_pids=[actor],
                                driver_pid=driver)
    assert budget.span_s == pytest.approx(2.0) and budget.cores == 2
    assert budget.machine == pytest.approx(2.0)
    assert budget.nginx == pytest.approx(0.76)
    assert budget.actors == pytest.approx(0.7) and budget.per_actor == {actor: pytest.approx(0.7)}
    assert budget.ray_driver == pytest.approx(0.15)  # driver 10 + raylet 10 + newborn 10
    assert budget.irq == pytest.approx(0.2)
    assert budget.other == pytest.approx(2.0 - 0.76 - 0.7 - 0.15 - 0.2)
    assert budget.per_core == {"cpu0": pytest.approx(0.95), "cpu1": pytest.approx(1.0)}
    [(pid, name, cpu_s)] = budget.top_other
    assert (pid, name) == (stranger, f"p{stranger}") and cpu_s == pytest.approx(0.1)


def test_scaling_spec_splits_connections_over_actors() -> None:
    """The spec parses, and worker_plans gives each actor its share of the connections."""
    from coordinator.spec import parse_spec
    from coordinator.split import worker_plans

    spec = parse_spec(scaling.scaling_spec("http://127.0.0.1:8080", connections=51,
                                           duration_s=5, actors=2))
    plans = worker_plans(spec)
    assert [p.concurrency for p in plans] == [26, 25]
    assert {(p.model, p.duration_s, p.timeout_s) for p in plans} == {("closed", 5.0, 5.0)}
    assert plans[0].requests[0].url == "http://127.0.0.1:8080/hello"


def _report(index: int, ok: int, errors: int, cpu: tuple[float, ...]) -> object:
    from workers.histogram import Histogram
    from workers.load_worker import WorkerReport
    from workers.recorder import Window

    windows = []
    for i, cpu_s in enumerate(cpu):
        latency = {("GET /hello", "status:200"): Histogram.from_values([1000] * (ok // len(cpu)))}
        if errors and i == 0:
            latency[("GET /hello", "status:503")] = Histogram.from_values([1000] * errors)
        windows.append(Window(index=i, start_s=float(i), latency=latency, service={},
                              lag=Histogram(), scheduled=0, sent=0, cpu_s=cpu_s))
    return WorkerReport(worker_index=index, host="h", pid=1000 + index, started_at=0.0,
                        measured_s=5.0, windows=tuple(windows), warmup_requests=0, unsent=0)


def test_scaling_run_sums_windows_per_actor() -> None:
    """Requests and load CPU are sums over each actor's windows; rates follow from them."""
    run = scaling.scaling_run(2, 50, [_report(1, 300, 0, (1.0, 1.0)), _report(0, 600, 4, (2.0,))],
                              [25, 25])
    assert run.ok
    assert [(a.index, a.requests, a.errors, a.load_cpu_s, a.connections) for a in run.per_actor] \
        == [(0, 604, 4, 2.0, 25), (1, 300, 0, 2.0, 25)]
    assert (run.requests, run.errors, run.measured_s) == (904, 4, 5.0)
    assert run.rps == pytest.approx(904 / 5.0)
    assert run.req_per_load_cpu_s == pytest.approx(904 / 4.0)


def test_scaling_run_with_a_lost_actor_fails() -> None:
    """A WorkerLost makes the run FAILED, with its reason; no rates are computed."""
    from coordinator.ray_pool import WorkerLost  # imports ray

    lost = WorkerLost(worker_index=1, reason="actor died: boom")
    run = scaling.scaling_run(2, 50, [_report(0, 100, 0, (1.0,)), lost], [25, 25])
    assert not run.ok and "actor died: boom" in present(run.error) and run.rps is None
    assert "FAILED: actor #1" in scaling.format_table([run])


def test_scaling_ratios_are_last_over_first() -> None:
    """2-actor over 1-actor; a failed run gives None."""
    one = scaling.ScalingRun(actors=1, connections=50, rps=100.0, req_per_load_cpu_s=50.0)
    two = scaling.ScalingRun(actors=2, connections=50, rps=150.0, req_per_load_cpu_s=45.0)
    assert scaling.scaling_ratios([one, two]) == {"rps": 1.5, "req_per_load_cpu_s": 0.9}
    failed = scaling.ScalingRun(actors=2, connections=50, error="x")
    assert scaling.scaling_ratios([one, failed]) == {"rps": None, "req_per_load_cpu_s": None}


def _budget(machine: float, nginx: float, other: float = 0.0) -> scaling.CpuBudget:
    return scaling.CpuBudget(span_s=5.0, cores=2, machine=machine, nginx=nginx, actors=0.5,
                             ray_driver=0.05, irq=0.2, other=other, per_core={"cpu0": 0.99},
                             top_other=((7, "pytest", other),) if other else ())


@pytest.mark.parametrize(("budget", "load_cpu_s", "verdict"), [
    pytest.param(_budget(1.96, 0.7), 3.0, "bounded by the machine, not by slogate", id="machine"),
    pytest.param(_budget(1.5, 0.95), 3.0, "bounded by the target", id="nginx"),
    pytest.param(_budget(1.5, 0.5), 9.5, "bounded by slogate's CPU", id="actors"),
    pytest.param(_budget(0.8, 0.3), 2.0, "bounded by round trips", id="waiting"),
])
def test_bound_note_names_what_saturated(budget: scaling.CpuBudget, load_cpu_s: float,
                                         verdict: str) -> None:
    """The machine first (>= 90 % of its cores), then nginx's one core, then the actors."""
    run = scaling.ScalingRun(actors=2, connections=50, requests=1, measured_s=5.0,
                             load_cpu_s=load_cpu_s, cpu=budget)
    note = scaling.bound_note(run)
    assert note.startswith("2 actors + nginx on 2 cores: nginx used ")
    assert verdict in note


def test_bound_note_names_busy_other_processes() -> None:
    """Other processes above 10 % of the machine are named, with their CPU-seconds."""
    run = scaling.ScalingRun(actors=1, connections=50, requests=1, measured_s=5.0,
                             load_cpu_s=2.0, cpu=_budget(1.96, 0.5, other=0.6))
    assert "other processes took 3.0 CPU-s: pytest [7] 3.0)" in scaling.bound_note(run)
    gone = dataclasses.replace(run, cpu=dataclasses.replace(present(run.cpu), top_other=()))
    assert "the rest from processes that ended during the phase" in scaling.bound_note(gone)


def test_imbalance_note_only_when_actors_differ() -> None:
    """Actors within 20 % of each other get no note; further apart they do."""
    def run(a: int, b: int) -> scaling.ScalingRun:
        per_actor = tuple(scaling.ActorResult(index=i, pid=i, connections=25, requests=n,
                                              errors=0, load_cpu_s=n / 100) for i, n in
                          enumerate((a, b)))
        return scaling.ScalingRun(actors=2, connections=50, requests=a + b, per_actor=per_actor)
    assert scaling.imbalance_note(run(100, 115)) is None
    note = present(scaling.imbalance_note(run(100, 150)))
    assert "requests 100 vs 150" in note and "about the same work" in note


def test_cli_pairs_three_rounds_unless_told() -> None:
    """python -m bench runs 3 same-time rounds per peer by default; --paired 0 runs none, and a
    negative count is a usage error."""
    assert cli.parse_args([]).paired == 3
    assert cli.parse_args(["--paired", "0"]).paired == 0
    with pytest.raises(SystemExit) as exit_info:
        cli.parse_args(["--paired", "-1"])
    assert exit_info.value.code == 2


def test_cli_scaling_flag_defaults_off() -> None:
    """python -m bench runs the scaling benchmark only when asked."""
    assert cli.parse_args([]).scaling is False
    assert cli.parse_args(["--scaling"]).scaling is True


def test_format_table_shows_per_actor_split_and_nginx_efficiency() -> None:
    """Per-actor connections and requests are joined with '+'; req/nginx-CPU-s = req/s / cores."""
    per_actor = tuple(scaling.ActorResult(index=i, pid=i, connections=25, requests=n, errors=0,
                                          load_cpu_s=1.0) for i, n in enumerate((300, 200)))
    run = scaling.ScalingRun(actors=2, connections=50, requests=500, errors=0, measured_s=5.0,
                             rps=100.0, load_cpu_s=2.0, req_per_load_cpu_s=250.0,
                             per_actor=per_actor, cpu=_budget(1.9, 0.5))
    table = scaling.format_table([run])
    assert "25+25" in table and "300+200" in table and "1.00+1.00" in table
    assert table.splitlines()[-1].split()[7] == "200"  # 100 req/s over 0.5 nginx cores


def test_notes_point_to_the_same_time_pairs_only_when_they_ran() -> None:
    """With --paired the notes say which figure is the steadier one; without, they do not."""
    pin = Pinning(target=(), client=(), note="unpinned (test)")
    assert not any("same-time" in n for n in cli.notes([], pin))
    assert any("same-time pairs saw the same state" in n for n in cli.notes([], pin, paired=True))
