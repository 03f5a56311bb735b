"""`slogate check`: a spec validated without running it, and warnings about likely unit mistakes."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from coordinator.spec import load_spec, load_spec_document
from coordinator.spec_check import check_spec
from tests.support.helpers import REPO_ROOT

HEAD = "name: t\ntarget: http://127.0.0.1:8080\n"  # lines 1 and 2
LOAD = "load: {rate: 100, duration: 10s}\n"  # line 3
ONE = "objectives: [rate<1%]\n"
TWO = "endpoints:\n  - {name: read, path: /a, weight: 3}\n  - {name: write, path: /b}\n"


def findings_of(tmp_path: Path, text: str) -> list[tuple[tuple[str | int, ...], str]]:
    """Return (location, message) of each warning about the spec ``text``."""
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    spec, document = load_spec_document(path)
    return [(f.loc, f.message) for f in check_spec(spec, document)]


@pytest.mark.parametrize(("text", "loc", "fragment"), [
    pytest.param(HEAD + LOAD + "objectives:\n  - {metric: latency-p99, upperLimit: 0.5}\n",
                 ("objectives", 0, "upperLimit"), "0.5 ms is under 1 ms: a latency limit without "
                 "a unit is milliseconds (did you mean 0.5s?)", id="bare-latency-under-1ms"),
    pytest.param(HEAD + LOAD + "objectives:\n  - p(95)<0.3\n", ("objectives", 0),
                 "0.3 ms is under 1 ms", id="k6-latency-under-1ms"),
    pytest.param(HEAD + LOAD + "objectives:\n  - {metric: latency-p50, upperLimit: 200us}\n",
                 ("objectives", 0, "upperLimit"), "0.2 ms is under 1 ms", id="microseconds"),
    pytest.param(HEAD + "load: {rate: 100, duration: 10s, timeout: 60}\n" + ONE, ("load", "timeout"),
                 "60 without a unit is 60 s (1 min); write 60ms if you meant milliseconds",
                 id="bare-timeout"),
    pytest.param(HEAD + "load: {rate: 100, duration: 5000}\n" + ONE, ("load", "duration"),
                 "5000 without a unit is 5000 s (1.39 h)", id="bare-long-duration"),
    pytest.param(HEAD + LOAD + "objectives:\n  - {metric: error-rate, upperLimit: 1}\n",
                 ("objectives", 0, "upperLimit"), "1 is 100 % of requests; a bare number is a "
                 "fraction (did you mean 1%?)", id="error-rate-one"),
    pytest.param(HEAD + LOAD + TWO + "objectives:\n"
                 "  - {metric: throughput, endpoint: write, lowerLimit: 30/s}\n",
                 ("objectives", 0, "lowerLimit"), "30 req/s can never be met: the load sends "
                 "25 req/s to write", id="throughput-above-the-endpoint-share"),
    pytest.param(HEAD + LOAD + "objectives:\n  - {metric: latency-max, upperLimit: 10s}\n",
                 ("objectives", 0, "upperLimit"), "10000 ms is not under load.timeout (10 s)",
                 id="latency-limit-at-the-timeout"),
    pytest.param(HEAD + LOAD, ("objectives",), "none given: the run measures but judges nothing, "
                 "so its verdict is INCONCLUSIVE (exit 3)", id="no-objectives"),
])
def test_likely_unit_mistakes_are_warned_about(tmp_path: Path, text: str,
                                               loc: tuple[str | int, ...], fragment: str) -> None:
    """Each likely mistake gives one warning at its field, saying what the value means."""
    [(where, message)] = findings_of(tmp_path, text)
    assert where == loc and fragment in message


@pytest.mark.parametrize("text", [
    pytest.param(HEAD + "load: {rate: 100, duration: 10s, timeout: 2s}\nobjectives:\n"
                 "  - {metric: latency-p99, upperLimit: 1ms}\n  - rate<1%\n"
                 "  - throughput>=95/s\n", id="units-written"),
    pytest.param(HEAD + "load: {rate: 100, duration: 600, timeout: 30}\nobjectives:\n"
                 "  - {metric: latency-p99, upperLimit: 250}\n  - {metric: error-rate, "
                 "upperLimit: 0.01}\n", id="bare-numbers-in-range"),
    pytest.param(HEAD + "baseline: http://127.0.0.1:8081\n" + LOAD + "objectives:\n"
                 "  - {metric: latency-p99, vs: baseline, upperLimit: 0.9}\n", id="ratios"),
])
def test_plausible_specs_draw_no_warning(tmp_path: Path, text: str) -> None:
    """Limits with units, bare numbers in plausible ranges and vs-baseline ratios pass quietly."""
    assert findings_of(tmp_path, text) == []


@pytest.mark.parametrize("example", [
    pytest.param("examples/hello/experiment.yaml", id="hello"),
    pytest.param("examples/quickstart/experiment.yaml", id="quickstart"),
])
def test_shipped_examples_check_clean(example: str) -> None:
    """The shipped example specs validate and draw no warning."""
    spec, document = load_spec_document(REPO_ROOT / example)
    assert check_spec(spec, document) == []


def test_the_readme_five_minute_spec_is_the_quickstart_example() -> None:
    """The README's five-minute spec is examples/quickstart/experiment.yaml, which parses to two
    endpoints weighted 3:1 (one a POST with a JSON body) and the k6-style objectives' metrics."""
    readme = (REPO_ROOT / "README.md").read_text()
    section = readme.split("## Your own service in five minutes", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert block is not None
    example = REPO_ROOT / "examples/quickstart/experiment.yaml"
    shown = yaml.safe_load(re.sub(r"(?m)^   ", "", block.group(1)))
    assert shown == yaml.safe_load(example.read_text())
    spec = load_spec(example)
    assert [(e.label, e.method.value, e.weight) for e in spec.endpoints] == [
        ("read", "GET", 3.0), ("write", "POST", 1.0)]
    assert spec.endpoints[1].json_body == {"item": "book", "quantity": 2}
    assert [(o.metric, o.endpoint, o.upper_limit, o.lower_limit) for o in spec.objectives] == [
        ("latency-p95", None, 50.0, None), ("error-rate", None, 0.01, None),
        ("throughput", None, None, 95.0), ("latency-p95", "write", 100.0, None)]


def run_check(*args: str) -> subprocess.CompletedProcess[str]:
    """Run `slogate check` in a fresh interpreter that reports whether Ray got imported."""
    code = ("import sys\nfrom coordinator.cli import main\ntry:\n    main(['check', *sys.argv[1:]])"
            "\nfinally:\n    print('ray imported' if 'ray' in sys.modules else 'no ray')")
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          cwd=REPO_ROOT, timeout=60)


def test_check_prints_warnings_with_lines_and_exits_0_without_ray(tmp_path: Path) -> None:
    """A valid spec with a likely mistake: a warning naming file, line and field on stderr, a
    summary on stdout, exit 0, and Ray never imported."""
    path = tmp_path / "spec.yaml"
    path.write_text(HEAD + LOAD + TWO + "objectives:\n  - metric: latency-p99\n"
                    "    upperLimit: 0.5\n")
    proc = run_check(str(path))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == (f"slogate: warning: {path}:9: objectives[0].upperLimit: 0.5 ms is "
                           "under 1 ms: a latency limit without a unit is milliseconds (did you "
                           "mean 0.5s?)\n")
    assert proc.stdout == (f"{path}: valid: t, 2 endpoint(s), 1 objective(s), 100 req/s for "
                           "10 s on 1 worker(s); 1 warning(s)\nno ray\n")


@pytest.mark.parametrize(("load", "shown"), [
    pytest.param("load:\n  stages:\n    - {name: warm, users: 4, duration: 10s}\n"
                 "    - {users: 16, duration: 20s}\n",
                 "2 stages (warm 4 users for 10 s, stage 2 16 users for 20 s)", id="stages"),
    pytest.param("load: {rate: 100, duration: 20s, ramp: {from: 10, duration: 5s}}\n",
                 "a ramp from 10 to 100 req/s over 5 s, then 100 req/s for 20 s", id="ramp"),
])
def test_check_shows_each_stage_and_a_ramp(tmp_path: Path, load: str, shown: str) -> None:
    """The summary of a staged spec lists its stages, not only the peak and the total time,
    and that of a ramped spec says the ramp comes first."""
    path = tmp_path / "spec.yaml"
    path.write_text(HEAD + load + TWO + "objectives:\n  - metric: latency-p99\n"
                    "    upperLimit: 300ms\n")
    proc = run_check(str(path))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == (f"{path}: valid: t, 2 endpoint(s), 1 objective(s), {shown} on 1 "
                           "worker(s); 0 warning(s)\nno ray\n")


@pytest.mark.parametrize(("text", "error"), [
    pytest.param(HEAD + "load: {rate: 10, duration: 1s, timeout: 2000}\n",
                 ":3: load.timeout: 2000 without a unit is 2000 s, more than the 100 s allowed "
                 "(slogate's upper bound, see the README); write 2000ms for milliseconds",
                 id="timeout-unit"),
    pytest.param(HEAD + LOAD + TWO + "objectives:\n  - metric: latency-p99\n    endpoint: wirte\n"
                 "    upperLimit: 10ms\n", ":9: objectives[0].endpoint: 'wirte' is not an "
                 "endpoint's label (did you mean 'write'?); the labels are 'read', 'write'",
                 id="unknown-endpoint-line"),
    pytest.param(HEAD + "load: {rate: 10, requests: 1, workers: 2}\n",
                 ": load.requests: 1 requests cannot be split over 2 workers (give at least one "
                 "request per worker)", id="plan-refusal"),
])
def test_check_refuses_what_run_would_refuse_in_one_line(tmp_path: Path, text: str,
                                                         error: str) -> None:
    """An invalid spec: the one-line error run would give (file, line, field), exit 2."""
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    proc = run_check(str(path))
    assert proc.returncode == 2
    assert proc.stderr == f"slogate: error: {path}{error}\n"
    assert "Traceback" not in proc.stderr and proc.stdout == "no ray\n"


def test_check_takes_a_kubernetes_target_from_its_manifests() -> None:
    """The dark-launch example has no URL until launched: check reads its manifests for the
    Service's in-cluster URL instead, plans the load, and never imports Ray."""
    proc = run_check("examples/hello/experiment-k8s.yaml")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ("examples/hello/experiment-k8s.yaml: valid: hello-2.0, 1 endpoint(s), "
                           "3 objective(s), 200 req/s for 30 s on 2 worker(s); 0 warning(s)\n"
                           "no ray\n")
