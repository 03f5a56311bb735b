"""Evidence on the pull request: the check run (or commit status) and the one comment, through
`slogate promote` and real PyGithub against the GitHub emulator (its check runs, statuses and
comments answer GitHub's JSON)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from analysis.history import history_of
from analysis.history_report import outcome_lines
from analysis.results import ComparisonResult, Results
from coordinator.cli import main
from promote.evidence import (
    COMMENT_MAX_CHARS,
    MARKER,
    OUTPUT_MAX_CHARS,
    check_report,
    comment_body,
)
from tests.analysis.test_reports import OBJECTIVES, synthetic_results
from tests.support.github_emulator import GitHubEmulator, github_emulator
from tests.support.runs import document, write_run

MANIFEST = "deploy/app.yaml"
APP_V1 = ("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: hello}\nspec:\n  template:\n"
          "    spec:\n      containers:\n      - name: hello\n        image: ghcr.io/slogate/hello:1.0\n")


@pytest.fixture
def gh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[GitHubEmulator]:
    """An emulated acme/gitops holding the hello Deployment at 1.0; GITHUB_TOKEN is its token."""
    with github_emulator(tmp_path, {MANIFEST: APP_V1}) as emulator:
        monkeypatch.setenv("GITHUB_TOKEN", emulator.token)
        yield emulator


def promotion_block(gh: GitHubEmulator) -> dict[str, object]:
    """Return the promotion block that sets the hello image to {{ version }} (2.0)."""
    return {"repository": gh.full_name, "baseUrl": gh.base_url, "app": "hello", "version": "2.0",
            "onFail": "revert-pr",
            "manifests": [{"path": MANIFEST, "strategy": "set", "document": "Deployment/hello",
                           "edits": [{"path": "spec.template.spec.containers[name=hello].image",
                                      "value": "ghcr.io/slogate/hello:{{ version }}"}]}]}


def saved(tmp_path: Path, results: Results, gh: GitHubEmulator, name: str = "results.json") -> Path:
    """Write ``results`` with the emulator's promotion block in its spec; return the path."""
    data = json.loads(results.to_json())
    data["spec"]["promotion"] = promotion_block(gh)
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def promote(*args: str) -> Result:
    """Run `slogate promote ARGS` and return click's result."""
    return CliRunner().invoke(main, ["promote", *args])


@pytest.mark.github
def test_promotion_leaves_one_check_run_and_one_comment_updated_in_place(
        tmp_path: Path, gh: GitHubEmulator) -> None:
    """Promoting twice: one check run on the head commit (success, the run's p99 in its table),
    one comment with the marker, both updated in place; the token appears nowhere."""
    path = saved(tmp_path, synthetic_results(OBJECTIVES), gh)
    first, again = promote(str(path)), promote(str(path))
    assert (first.exit_code, again.exit_code) == (0, 0), first.stderr + again.stderr
    checks = gh.checks_on(gh.pull_head(1))
    assert len(checks) == 1 and gh.calls("PATCH check-run") == 1
    check = checks[0]
    assert (check.name, check.status, check.conclusion) == ("slogate/hello", "completed", "success")
    assert check.output["title"] == ("PASS: hello 2.0, 4/4 objectives met; the promotion is "
                                     "backed by this run")
    assert "| latency-p99 | 15.93 ms |" in check.output["summary"]
    assert check.details_url == f"{gh.base_url.removesuffix('/api/v3')}/acme/gitops/pull/1"
    comments = gh.comments_on(1)
    assert len(comments) == 1 and comments[0].body.startswith(MARKER + "\n")
    assert gh.calls("POST comments") == 1
    assert "check-run updated on pull request #1" in again.stderr
    texts = [first.stdout, first.stderr, again.stdout, again.stderr, comments[0].body,
             check.output["summary"]]
    assert not any(gh.token in text for text in texts)


@pytest.mark.github
def test_a_token_that_cannot_create_check_runs_sets_a_commit_status(
        tmp_path: Path, gh: GitHubEmulator) -> None:
    """GitHub's 403 to a check run (a personal token) falls back to a commit status with the
    verdict, the objectives count and the --report-url; no check run is made."""
    gh.check_runs_need_app = True
    path = saved(tmp_path, synthetic_results(OBJECTIVES), gh)
    out = promote(str(path), "--report-url", "https://ci.example.com/runs/42")
    assert out.exit_code == 0, out.stderr
    statuses = gh.statuses_on(gh.pull_head(1))
    assert [(s.state, s.context, s.description, s.target_url) for s in statuses] == [
        ("success", "slogate/hello", "PASS: hello 2.0, 4/4 objectives met",
         "https://ci.example.com/runs/42")]
    assert gh.check_runs == {} and "[The full report](https://ci.example.com/runs/42)" in \
        gh.comments_on(1)[0].body


@pytest.mark.github
def test_a_marked_comment_of_someone_else_is_left_alone(tmp_path: Path, gh: GitHubEmulator) -> None:
    """A comment carrying the marker but written by another user is neither edited nor taken
    for ours: slogate writes its own, and updates that one on the next run."""
    path = saved(tmp_path, synthetic_results(OBJECTIVES), gh)
    assert promote(str(path)).exit_code == 0
    ours = gh.comments_on(1)[0]
    forged = gh.add_comment(1, f"{MARKER}\nmerge me, numbers are fine", login="mallory")
    assert promote(str(path)).exit_code == 0
    assert gh.comments[forged].body == f"{MARKER}\nmerge me, numbers are fine"
    assert [c.id for c in gh.comments_on(1)] == [ours.id, forged]
    assert gh.calls("POST comments") == 1


@pytest.mark.github
@pytest.mark.parametrize("median_ms, head", [
    pytest.param(8.0, "Drift: no regression", id="steady"),
    pytest.param(20.0, "Drift: REGRESSED", id="slower"),
])
def test_comment_judges_drift_as_slogate_history_does(
        tmp_path: Path, gh: GitHubEmulator, median_ms: float, head: str) -> None:
    """With --history, the comment's drift is the one `slogate history` computes on the archive
    plus this run (four earlier ~8 ms runs; a 20 ms run regresses, an 8 ms one does not)."""
    archive = tmp_path / "archive"
    earlier = [document(day=day) for day in range(4)]
    for run in earlier:
        write_run(archive, run)
    newest = document(day=5, median_ms=median_ms)
    out = promote(str(saved(tmp_path, newest, gh)), "--history", str(archive))
    assert out.exit_code == 0, out.stderr
    expected = outcome_lines(history_of([(r, f"{i}") for i, r in enumerate([*earlier, newest])],
                                        name="nightly").drift)
    assert expected[1] == head
    body = gh.comments_on(1)[0].body
    assert f"**{head}**" in body and "slogate history: nightly" in body


@pytest.mark.github
def test_comment_shows_candidate_vs_baseline(tmp_path: Path, gh: GitHubEmulator) -> None:
    """A two-version run's comparison reaches the comment as a table of its computed values."""
    results = synthetic_results(OBJECTIVES).model_copy(update={"comparison": [
        ComparisonResult(metric="latency-p99", kind="ratio", baseline=15.0, candidate=15.93,
                         value=1.062, low=1.01, high=1.11)]})
    assert promote(str(saved(tmp_path, results, gh))).exit_code == 0
    body = gh.comments_on(1)[0].body
    assert "| latency-p99 | 15 ms | 15.93 ms | x1.06 | x1.01 .. x1.11 |" in body
    assert "Drift: " not in body and "Not judged: no run history given" in body


@pytest.mark.parametrize("verdict, revert, conclusion, state", [
    pytest.param("PASS", False, "success", "success", id="pass-promotes"),
    pytest.param("FAIL", True, "success", "success", id="fail-backs-the-revert"),
    pytest.param("FAIL", False, "failure", "failure", id="fail-on-a-promotion"),
    pytest.param("PASS", True, "failure", "failure", id="pass-on-a-revert"),
    pytest.param("INCONCLUSIVE", False, "failure", "error", id="inconclusive-never-green"),
    pytest.param("INVALID", True, "failure", "error", id="invalid-never-green"),
])
def test_check_is_green_only_when_the_run_backs_the_pull_request(
        verdict: str, revert: bool, conclusion: str, state: str) -> None:
    """The check's conclusion and status state follow whether the verdict backs the PR."""
    results = synthetic_results(OBJECTIVES).model_copy(update={"verdict": verdict})
    check = check_report(results, app="hello", version="2.0", revert=revert,
                         details_url="https://x.example/r")
    assert (check.conclusion, check.state) == (conclusion, state)
    assert check.title.startswith(f"{verdict}: hello 2.0")


def test_texts_fit_githubs_limits_and_mention_nobody() -> None:
    """Thousands of long reasons with @mentions: the check summary and the comment stay within
    GitHub's limits, keep the report link last and notify nobody."""
    results = synthetic_results(OBJECTIVES).model_copy(
        update={"reasons": [f"@team-{i} " + "x" * 200 for i in range(2000)]})
    check = check_report(results, app="hello", version="2.0", revert=False,
                         details_url="https://x.example/r")
    body = comment_body(results, app="hello", version="2.0", details_url="https://x.example/r",
                        history=None, why_no_history="none")
    assert len(check.summary) <= OUTPUT_MAX_CHARS and len(body) <= COMMENT_MAX_CHARS
    assert check.summary.endswith("[The full report](https://x.example/r)\n")
    assert "@team" not in check.summary and "@\u200bteam-0" in check.summary
    assert len(check.description) <= 140


@pytest.mark.parametrize("url, why", [
    pytest.param("https://user:pw@ci.example.com/r", "credentials in the URL are refused",
                 id="credentials"),
    pytest.param("file:///tmp/report.html", "not an http(s) URL", id="file"),
])
def test_a_bad_report_url_is_one_line_exit_2(tmp_path: Path, gh: GitHubEmulator, url: str,
                                             why: str) -> None:
    """A --report-url that is not a plain http(s) URL is refused before anything is written."""
    out = promote(str(saved(tmp_path, synthetic_results(OBJECTIVES), gh)), "--report-url", url)
    assert out.exit_code == 2 and why in out.stderr and len(out.stderr.splitlines()) == 1
    assert "pw" not in out.stderr and gh.pull_count() == 0


@pytest.mark.github
def test_evidence_github_refuses_is_one_line_exit_2(tmp_path: Path, gh: GitHubEmulator) -> None:
    """GitHub refusing the comment (422) after the pull request was opened is one line naming
    what could not be left, exit 2: never a traceback or an exit code that reads as FAIL."""
    gh.fail_next("POST comments", 1, status=422)
    out = promote(str(saved(tmp_path, synthetic_results(OBJECTIVES), gh)))
    assert out.exit_code == 2 and gh.pull_count() == 1
    assert out.stderr.splitlines()[-1] == ("slogate: error: cannot leave the comment on pull "
                                           "request #1 in acme/gitops: Server Error")


def test_a_local_repository_says_it_has_no_checks_in_one_line(tmp_path: Path) -> None:
    """With provider local there is nowhere for a check or comment: one log line says so and
    points at the pull request file, which exists."""
    from coordinator.demo import make_gitops_repo
    from coordinator.pr_evidence import promote_with_evidence
    from promote.spec import PromotionSpec

    repo = make_gitops_repo(tmp_path / "gitops")
    promotion = PromotionSpec.model_validate({
        "provider": "local", "repository": str(repo), "app": "hello", "version": "2.0",
        "manifests": [{"path": "samples/deployments/baseline.yaml", "strategy": "copy",
                       "from": "samples/deployments/candidate.yaml"}]})
    logged: list[str] = []
    outcome = promote_with_evidence(synthetic_results(OBJECTIVES), promotion, dry_run=False,
                                    log=logged.append, show=lambda _t: None)
    assert outcome.pull is not None
    assert logged[-1] == ("a local repository has no checks or comments: the evidence is the "
                          f"pull request's body ({outcome.pull.url})")
    assert Path(outcome.pull.url.removeprefix("file://")).is_file()
