"""`slogate demo` (what `make demo` runs) as a real process: sample app, embedded Ray, verdict."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import REPO_ROOT

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def test_demo_runs_the_whole_loop_in_under_a_minute(tmp_path: Path) -> None:
    """The demo prints its steps, the report and a PASS verdict, writes results.json, promotes
    2.0 into its temporary GitOps repository (diff and pull request printed), exits 0 within 60 s."""
    begun = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "coordinator.cli", "demo", "--out", str(tmp_path)],
        capture_output=True, text=True, cwd=REPO_ROOT, timeout=120,
    )
    elapsed = time.monotonic() - begun
    assert proc.returncode == 0, proc.stderr
    assert "Verdict: PASS" in proc.stdout
    for step in ("starting the sample app", "starting an embedded local Ray", "loading http://127.0.0.1:",
                 "results written to", "stopping the sample app"):
        assert step in proc.stderr
    assert "Traceback" not in proc.stderr
    assert "+          image: ghcr.io/slogate/hello:2.0" in proc.stdout
    assert "Promote hello to 2.0: opened" in proc.stdout
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["verdict"] == "PASS" and saved["metrics"]["*"]["request-count"] == 1600
    assert elapsed < 60
