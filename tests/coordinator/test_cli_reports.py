"""``slogate report`` as a real process: user text never breaks a report, a report that cannot
be rendered exits 4 (never a verdict's code) in one line, and piped text is not wrapped."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from click.testing import CliRunner

from analysis.results import write_atomic
from coordinator.cli import main
from tests.analysis.test_report_text import LONG, run_with
from tests.support.helpers import REPO_ROOT
from workers import histogram as h


def _report(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "coordinator.cli", "report", *args],
                          capture_output=True, text=True, cwd=REPO_ROOT, timeout=120)


@pytest.mark.parametrize("fmt_name", ["text", "markdown", "json", "junit", "html"])
def test_report_of_a_pass_run_with_bracketed_labels_exits_0(tmp_path: Path, fmt_name: str) -> None:
    """A PASS run with endpoints named /items and create-order renders in every format with
    exit 0 and nothing on stderr (it crashed with exit 1, the FAIL code, before)."""
    results = run_with(["/items", "create-order"], error_limit="10%")
    assert results.verdict == "PASS"
    path = write_atomic(tmp_path / "results.json", results.to_json())
    done = CliRunner().invoke(main, ["report", str(path), "--format", fmt_name],
                              catch_exceptions=False)
    assert (done.exit_code, done.stderr) == (0, "")
    if fmt_name == "text":
        assert "latency-p95 [/items]" in done.stdout
        assert "latency-p95 [create-order]" in done.stdout


def test_a_report_that_cannot_be_rendered_exits_4_in_one_line(tmp_path: Path) -> None:
    """A results file whose first window starts 1e308 s into the run still reads and its text
    report renders, but its HTML report (whose time axis cannot hold it) cannot: exit 4, one
    line naming the format and the error, no traceback, and the --out copy is written first."""
    doc = json.loads(run_with(["/a"], error_limit="10%").to_json())
    doc["windows"][0]["startS"] = 1e308
    path = tmp_path / "results.json"
    path.write_text(json.dumps(doc))
    assert _report(str(path)).returncode == 0
    done = _report(str(path), "--format", "html", "--out", str(tmp_path / "copy.json"))
    assert done.returncode == 4
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith("slogate: error: the html report could not be rendered (")
    assert done.stderr.rstrip().endswith(f"the results are in {tmp_path / 'copy.json'}; exit code 4")
    assert json.loads((tmp_path / "copy.json").read_text())["windows"] == doc["windows"]


@pytest.mark.parametrize("fmt_name", ["text", "html"])
def test_a_window_histogram_with_counts_past_the_layout_is_refused_when_read(
        tmp_path: Path, fmt_name: str) -> None:
    """A window histogram whose headers are right but whose counts run past the layout is an
    input error when the file is read: one line naming the file and the window's histogram,
    exit 2, nothing on stdout (the HTML report used to meet it and exit 4)."""
    doc = json.loads(run_with(["/a"], error_limit="10%").to_json())
    doc["windows"][0]["latency"][0]["hdr"] = _counts_past_the_layout()
    series = doc["windows"][0]["latency"][0]
    path = tmp_path / "results.json"
    path.write_text(json.dumps(doc))
    done = _report(str(path), "--format", fmt_name)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.splitlines() == [
        f"slogate: error: {path}: windows[0].latency[0] ({series['endpoint']}, "
        f"{series['outcome']}): histogram decode: more tokens than this layout's "
        f"{h.COUNTS_LEN} buckets"]


def _counts_past_the_layout() -> str:
    """Return an encoded histogram whose headers are right but whose varint stream holds one
    count more than the layout has buckets."""
    buckets = h.Histogram().counts.size
    stream = b"\x02" * (buckets + 1)  # zigzag varint 1: one count in each of buckets + 1 slots
    payload = h._PAYLOAD_HEADER.pack(h._ENCODING_COOKIE, len(stream), 0, h.SIGNIFICANT_FIGURES,
                                     h.LOWEST_TRACKABLE_NS, 10**12, 1.0) + stream
    body = zlib.compress(payload)
    return base64.b64encode(h._OUTER_HEADER.pack(h._COMPRESSION_COOKIE, len(body)) + body).decode()


def test_piped_text_report_keeps_each_reason_on_one_line(tmp_path: Path) -> None:
    """Piped into a file, the text report of a FAIL run with a long endpoint name has the
    failing objective's row, wider than 110 columns, and the run's reasons whole on one line."""
    results = run_with([LONG])
    assert results.verdict == "FAIL"
    path = write_atomic(tmp_path / "results.json", results.to_json())
    done = _report(str(path))
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert f"  - {results.reasons[0]}" in lines
    failing = next(o for o in results.objectives if o.verdict == "FAIL")
    row = next(line for line in lines if failing.reason in line)
    assert len(row) > 110  # where the old fixed width broke the reason cell over lines
