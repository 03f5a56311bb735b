"""One promotion re-judges the saved run once: the verdict is carried, not recomputed."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import promote.flow
from analysis.rejudge import rejudge
from coordinator.cli import main
from coordinator.demo import make_gitops_repo
from promote.local_git import LocalGitProvider
from promote.service import run_checked
from promote.spec import PromotionSpec
from tests.analysis.test_reports import OBJECTIVES, synthetic_results

BASELINE = "samples/deployments/baseline.yaml"
CANDIDATE = "samples/deployments/candidate.yaml"


def _promotion(repo: Path, on_fail: str) -> PromotionSpec:
    return PromotionSpec.model_validate({
        "provider": "local", "repository": str(repo), "app": "hello", "version": "2.0",
        "onFail": on_fail, "manifests": [{"path": BASELINE, "strategy": "copy",
                                          "from": CANDIDATE}]})


@pytest.fixture
def rejudged(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Returns the verdicts of every re-judging the promotion flow does (the real rejudge)."""
    verdicts: list[str] = []

    def counting(*args: Any, **kwargs: Any) -> Any:
        judged = rejudge(*args, **kwargs)
        verdicts.append(judged.verdict)
        return judged

    monkeypatch.setattr(promote.flow, "rejudge", counting)
    return verdicts


@pytest.mark.parametrize("on_fail", [pytest.param("none", id="pass"),
                                     pytest.param("revert-pr", id="pass-with-revert-pr")])
def test_slogate_promote_rejudges_once(tmp_path: Path, rejudged: list[str], on_fail: str
                                       ) -> None:
    """`slogate promote --dry-run` of a PASS run re-judges it once (the refusal's verdict is
    carried to the flow), and still shows the pull request it would open."""
    repo = make_gitops_repo(tmp_path / "gitops")
    data = json.loads(synthetic_results(OBJECTIVES).to_json())
    data["spec"]["promotion"] = json.loads(_promotion(repo, on_fail).model_dump_json(
        by_alias=True))
    path = tmp_path / "results.json"
    path.write_text(json.dumps(data))
    out = CliRunner().invoke(main, ["promote", str(path), "--dry-run"])
    assert out.exit_code == 0, out.stderr
    assert "would open: Promote hello to 2.0" in out.stdout
    assert rejudged == ["PASS"]


@pytest.mark.parametrize(("objectives", "on_fail", "status", "verdicts"), [
    pytest.param(OBJECTIVES, "none", "opened", ["PASS"], id="pass-promoted"),
    pytest.param(["p(99)<1ms"], "revert-pr", "nothing-to-revert", ["FAIL"], id="fail-reverted"),
])
def test_the_service_rejudges_once(tmp_path: Path, rejudged: list[str], objectives: list[object],
                                   on_fail: str, status: str, verdicts: list[str]) -> None:
    """The service's decide-then-act path re-judges the run once, then promotes or reverts."""
    repo = make_gitops_repo(tmp_path / "gitops")
    provider: Callable[[], LocalGitProvider] = lambda: LocalGitProvider(repo)  # noqa: E731
    outcome = run_checked(synthetic_results(objectives), _promotion(repo, on_fail), provider)
    assert getattr(outcome, "status", outcome) == status
    assert rejudged == verdicts
