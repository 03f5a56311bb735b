"""The ``slogate`` CLI end to end: exit codes 0/1/2/3 from real scenarios, results.json, report."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from coordinator.cli import main
from tests.support.helpers import REPO_ROOT, free_port, start_hello

pytestmark = [pytest.mark.ray, pytest.mark.usefixtures("ray_local")]


def _write_spec(tmp_path: Path, target: str, objectives: list[dict], **load: object) -> Path:
    load = {"rate": 200, "duration": "1s", "workers": 2, "timeout": "1s", **load}
    # These tests are about objectives and exit codes, not generator health: a 2-core CI box
    # shared with Ray and the app can delay 1% of sends by >10 ms (the default bound).
    spec = {"name": "cli", "target": target, "load": load,
            "endpoints": [{"path": "/hello"}], "objectives": objectives,
            "analysis": {"maxScheduleLag": "1s"}}
    path = tmp_path / "spec.yaml"
    path.write_text(json.dumps(spec))  # JSON is YAML
    return path


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr



def test_pass_exits_0_writes_results_and_report_rerenders(tmp_path: Path) -> None:
    """Objectives the app meets give exit 0, a results.json, and `report` re-renders it alike."""
    with start_hello("--latency", "2ms") as url:
        # 800 requests: enough for 95% intervals on p99 (>= 299) and on a 0% error rate (< 1%)
        spec = _write_spec(tmp_path, url, [{"metric": "error-rate", "upperLimit": "1%"},
                                           {"metric": "latency-p99", "upperLimit": "500ms"}],
                           rate=400, duration="2s")
        code, out, err = _run("run", str(spec), "--out", str(tmp_path / "out"))
    assert code == 0, (err, out)
    assert "Verdict: PASS" in out
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert saved["schema"] == "slogate/results/v1"
    assert saved["verdict"] == "PASS"
    assert saved["metrics"]["*"]["request-count"] == 800
    assert [w["requests"] for w in saved["workers"]] == [400, 400]
    assert saved["specFile"] == str(spec) and saved["slogateVersion"]
    assert f"spec <code>{spec}</code>" in (tmp_path / "out" / "report.html").read_text()
    code, again, _ = _run("report", str(tmp_path / "out" / "results.json"))
    assert code == 0
    assert again == out
    code, as_json, _ = _run("report", str(tmp_path / "out" / "results.json"), "--format", "json")
    assert json.loads(as_json) == saved
    code, markdown, _ = _run("report", str(tmp_path / "out" / "results.json"), "--format", "markdown")
    assert "| latency-p99 |" in markdown and "**PASS**" in markdown


def test_violated_objective_exits_1(tmp_path: Path) -> None:
    """A p50 limit of 1 ms against an app that takes 20 ms fails with exit code 1."""
    with start_hello("--latency", "20ms") as url:
        spec = _write_spec(tmp_path, url, [{"metric": "latency-p50", "upperLimit": "1ms"}])
        code, _out, err = _run("run", str(spec), "--out", str(tmp_path / "out"))
    assert code == 1, (err, (tmp_path / "out" / "results.json").read_text()[-3000:])
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert saved["verdict"] == "FAIL"
    assert saved["objectives"][0]["verdict"] == "FAIL"
    assert saved["objectives"][0]["value"] >= 20.0


def test_bad_spec_exits_2_with_one_line_naming_the_field(tmp_path: Path) -> None:
    """A negative rate is refused before any load: exit 2, one line naming load.rate."""
    spec = _write_spec(tmp_path, "http://127.0.0.1:9", [], rate=-1)
    code, out, err = _run("run", str(spec), "--out", str(tmp_path / "out"))
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1 and "load.rate" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_all_errors_is_invalid_and_exits_3(tmp_path: Path) -> None:
    """When every request gets HTTP 500 the run is INVALID (no successful response): exit 3."""
    with start_hello("--error-rate", "1") as url:
        spec = _write_spec(tmp_path, url, [{"metric": "latency-p99", "upperLimit": "1s"}])
        code, _out, _ = _run("run", str(spec), "--out", str(tmp_path / "out"))
    assert code == 3
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert saved["verdict"] == "INVALID"
    assert saved["metrics"]["*"]["error-rate"] == 1.0
    assert any("no request got a successful" in r for r in saved["reasons"])


def test_unreachable_target_counts_connect_errors_and_exits_3(tmp_path: Path) -> None:
    """A closed port is no crash: every request is a `connect` error and the run is INVALID."""
    spec = _write_spec(tmp_path, f"http://127.0.0.1:{free_port()}",
                       [{"metric": "error-rate", "upperLimit": "1%"}], rate=50)
    code, _, _ = _run("run", str(spec), "--out", str(tmp_path / "out"))
    assert code == 3
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert {s["outcome"] for s in saved["histograms"]["latency"]} == {"connect"}
    assert saved["metrics"]["*"]["error-count"] == 50
    assert saved["metrics"]["*"]["latency-p50"] is None


def test_objective_without_data_is_inconclusive(tmp_path: Path) -> None:
    """An objective on an endpoint that got no responses is INCONCLUSIVE, never PASS: exit 3."""
    with start_hello() as url:
        spec_data = {"name": "cli", "target": url,
                     "load": {"rate": 100, "duration": "1s", "workers": 1},
                     "endpoints": [{"path": "/hello"}, {"path": "/healthz", "weight": 1e-9}],
                     "objectives": [{"metric": "latency-p99", "upperLimit": "1s",
                                     "endpoint": "GET /healthz"}]}
        spec = tmp_path / "spec.yaml"
        spec.write_text(json.dumps(spec_data))
        code, _out, _ = _run("run", str(spec), "--out", str(tmp_path / "out"))
    assert code == 3
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert saved["verdict"] == "INCONCLUSIVE"
    assert saved["objectives"][0]["reason"] == "no data for latency-p99"


@pytest.mark.parametrize("content, message", [
    pytest.param(None, "results file not found", id="missing"),
    pytest.param("{not json", "not valid JSON", id="not-json"),
    pytest.param('{"schema": "slogate/results/v9"}', "is not supported", id="other-schema"),
    pytest.param('{"schema": "slogate/results/v1", "name": "x"}', "spec", id="incomplete"),
])
def test_report_of_a_bad_results_file_exits_2(tmp_path: Path, content: str | None, message: str) -> None:
    """`slogate report` on a missing or malformed file says what is wrong in one line: exit 2."""
    path = tmp_path / "results.json"
    if content is not None:
        path.write_text(content)
    code, _out, err = _run("report", str(path))
    assert code == 2
    assert message in err and err.count("\n") == 1


def test_schema_command_prints_the_spec_json_schema() -> None:
    """`slogate schema` prints a JSON Schema with the spec's camelCase fields."""
    code, out, _ = _run("schema")
    assert code == 0
    schema = json.loads(out)
    assert "load" in schema["properties"] and "upperLimit" in json.dumps(schema)


def test_real_process_bad_spec_has_no_traceback(tmp_path: Path) -> None:
    """The installed console script prints one line and exits 2 for a missing spec file."""
    proc = subprocess.run([sys.executable, "-m", "coordinator.cli", "run", str(tmp_path / "nope.yaml")],
                          capture_output=True, text=True, cwd=REPO_ROOT, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"slogate: error: {tmp_path / 'nope.yaml'}: spec file not found"


def test_unreachable_ray_address_fails_fast_with_one_line(tmp_path: Path) -> None:
    """--address of a port nobody listens on: exit 2 within seconds, one line, no traceback
    (ray.init alone would retry for minutes)."""
    spec = _write_spec(tmp_path, "http://127.0.0.1:9", [], rate=10)
    begun = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "coordinator.cli", "run", str(spec),
                           "--address", f"127.0.0.1:{free_port()}"],
                          capture_output=True, text=True, cwd=REPO_ROOT, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "cannot reach Ray at 127.0.0.1:" in proc.stderr
    assert time.monotonic() - begun < 20
