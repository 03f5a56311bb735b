"""slogate report --objectives re-judges custom metrics from a saved run's stored values."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from analysis.results import parse_results
from coordinator.cli import main
from tests.support.runs import custom_document


@pytest.mark.parametrize(("objectives", "code", "verdicts"), [
    pytest.param("- {metric: server-mean, upperLimit: 25ms}\n", 0, ["PASS"], id="pass"),
    pytest.param("- {metric: server-mean, upperLimit: 0.02s}\n", 1, ["FAIL"], id="fail-in-unit"),
    pytest.param("- {metric: ghost, upperLimit: 1}\n- {metric: latency-p99, upperLimit: 1s}\n",
                 3, ["INCONCLUSIVE", "PASS"], id="no-data"),
])
def test_report_rejudges_custom_objectives_from_stored_values(
        tmp_path: Path, objectives: str, code: int, verdicts: list[str]) -> None:
    """slogate report --objectives judges custom metrics from the values results.json holds
    (limits in each metric's unit), beside built-in ones, and exits with the new verdict."""
    (tmp_path / "results.json").write_text(custom_document().to_json())
    (tmp_path / "objectives.yaml").write_text(objectives)
    done = CliRunner().invoke(main, ["report", str(tmp_path / "results.json"), "--objectives",
                                     str(tmp_path / "objectives.yaml"), "--format", "json",
                                     "--out", str(tmp_path / "again.json")])
    assert done.exit_code == code, done.output
    again = parse_results((tmp_path / "again.json").read_text(), source="again.json")
    assert [o.verdict for o in again.objectives] == verdicts
