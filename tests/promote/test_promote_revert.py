"""Revert on FAIL (``onFail: revert-pr``): a FAIL of the stable version opens a pull request that
restores the manifests to what they were before it was promoted; nothing else reverts.

Against a real local git repository and, through the real PyGithub, the GitHub emulator backed by
a real bare repository; the restored files are read back with git and compared byte for byte.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from analysis.results import Results
from coordinator.cli import main, promote_after_run
from coordinator.demo import EXAMPLE_DIR, make_gitops_repo
from promote.errors import PromotionError
from promote.flow import REVERT_HISTORY, PromotionOutcome, act, promote, revert
from promote.github import GitHubProvider
from promote.local_git import LocalGitProvider, identity
from promote.spec import PromotionSpec
from tests.analysis.test_reports import OBJECTIVES, synthetic_results
from tests.support.github_emulator import git, github_emulator

BASELINE = "samples/deployments/baseline.yaml"
CANDIDATE = "samples/deployments/candidate.yaml"
REVERT = "slogate/revert-hello-2.0"
ORIGINAL = (EXAMPLE_DIR / "baseline.yaml").read_text()


def _promotion(repository: str, **extra: object) -> PromotionSpec:
    return PromotionSpec.model_validate({
        "repository": repository, "app": "hello", "version": "2.0", "onFail": "revert-pr",
        "manifests": [{"path": BASELINE, "strategy": "copy", "from": CANDIDATE}], **extra})


def _failing() -> Results:
    """A run whose p99 objective (1 ms) the synthetic ~16 ms p99 clearly fails."""
    return synthetic_results(["p(99)<1ms"])


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *identity(repo), *args], check=True,
                          capture_output=True, text=True).stdout


def _commit(repo: Path, path: str, text: str, message: str) -> str:
    (repo / path).write_text(text)
    _git(repo, "commit", "--quiet", "-am", message)
    return _git(repo, "rev-parse", "HEAD").strip()


def _stable_repo(tmp_path: Path) -> tuple[Path, str]:
    """Return a repository where 2.0 was promoted and merged (with a merge commit) on main, and
    the sha of the promotion's commit; the promotion's branch and pull request file are gone."""
    repo = make_gitops_repo(tmp_path / "gitops")
    first = promote(synthetic_results(OBJECTIVES), _promotion(str(repo), provider="local"),
                    LocalGitProvider(repo))
    promoted = _git(repo, "rev-parse", first.branch).strip()
    _git(repo, "merge", "--quiet", "--no-ff", "-m", "Merge promotion", first.branch)
    _git(repo, "branch", "-D", first.branch)
    Path(_pull_url(first).removeprefix("file://")).unlink()
    return repo, promoted


def _results_file(tmp_path: Path, results: Results, promotion: PromotionSpec) -> Path:
    data = json.loads(results.to_json())
    data["spec"]["promotion"] = json.loads(promotion.model_dump_json(by_alias=True))
    path = tmp_path / "results.json"
    path.write_text(json.dumps(data))
    return path


def test_fail_of_the_stable_version_opens_a_revert_restoring_the_file_byte_for_byte(
        tmp_path: Path) -> None:
    """On the revert branch baseline.yaml is, byte for byte, what it was before the promotion
    commit; one commit; the pull request names that commit and carries the FAIL report."""
    repo, promoted = _stable_repo(tmp_path)
    main_before = _git(repo, "rev-parse", "main")
    outcome = act(_failing(), _promotion(str(repo), provider="local"), LocalGitProvider(repo))
    assert (outcome.status, outcome.branch) == ("opened", REVERT)
    assert _git(repo, "show", f"{REVERT}:{BASELINE}") == ORIGINAL
    assert _git(repo, "show", f"{promoted}^:{BASELINE}") == ORIGINAL
    assert _git(repo, "rev-list", "--count", f"main..{REVERT}").strip() == "1"
    assert _git(repo, "rev-parse", "main") == main_before
    pull = Path(_pull_url(outcome).removeprefix("file://")).read_text()
    assert pull.startswith("# Revert hello 2.0: SLOs failed\n")
    assert f"reverts {promoted[:12]} (Promote hello to 2.0)" in pull and "**FAIL**" in pull
    assert outcome.changes[0].reverts[-1].sha == promoted


def test_reverting_again_updates_the_same_pull_request(tmp_path: Path) -> None:
    """A second revert run: same branch, still one commit, the pull request updated."""
    repo, _ = _stable_repo(tmp_path)
    spec = _promotion(str(repo), provider="local")
    act(_failing(), spec, LocalGitProvider(repo))
    again = act(_failing(), spec, LocalGitProvider(repo))
    assert again.status == "updated"
    assert _git(repo, "rev-list", "--count", f"main..{REVERT}").strip() == "1"
    assert _git(repo, "branch", "--list", "slogate/*").split() == [REVERT]


def _image_promotion(repository: str, **extra: object) -> PromotionSpec:
    """A ``set`` promotion (the image tag only), so later edits of other fields keep 2.0."""
    return PromotionSpec.model_validate({
        "repository": repository, "provider": "local", "app": "hello", "version": "2.0",
        "onFail": "revert-pr", "manifests": [{
            "path": BASELINE, "strategy": "set", "document": "Deployment/hello",
            "edits": [{"path": "spec.template.spec.containers[name=hello].image",
                       "value": "ghcr.io/slogate/hello:{{ version }}"}]}], **extra})


def _promoted_by_hand(repo: Path) -> str:
    """Commit the 2.0 image on main, as a merged promotion would; return the commit."""
    text = (repo / BASELINE).read_text()
    return _commit(repo, BASELINE, text.replace("hello:1.0", "hello:2.0"), "Promote hello to 2.0")


def test_later_edits_carrying_the_version_are_walked_past(tmp_path: Path) -> None:
    """When later commits changed the file but kept 2.0, the revert goes back to before the
    promotion, and the pull request says which later commits it undoes too."""
    repo = make_gitops_repo(tmp_path / "gitops")
    promoted = _promoted_by_hand(repo)
    text = (repo / BASELINE).read_text()
    later = _commit(repo, BASELINE, text.replace("replicas: 1", "replicas: 3"), "Scale hello")
    _commit(repo, CANDIDATE, "# unrelated\n", "Unrelated")
    outcome = revert(_failing(), _image_promotion(str(repo)), LocalGitProvider(repo))
    assert _git(repo, "show", f"{REVERT}:{BASELINE}") == ORIGINAL
    assert [c.sha for c in outcome.changes[0].reverts] == [later, promoted]
    assert f"and with it the later {later[:12]}" in outcome.body


def test_the_walk_back_is_bounded(tmp_path: Path) -> None:
    """More than REVERT_HISTORY later commits that keep 2.0: an error naming the bound."""
    repo = make_gitops_repo(tmp_path / "gitops")
    _promoted_by_hand(repo)
    text = (repo / BASELINE).read_text()
    for n in range(REVERT_HISTORY):
        _commit(repo, BASELINE, text.replace("replicas: 1", f"replicas: {n + 2}"), f"Scale {n}")
    with pytest.raises(PromotionError, match=f"none of its last {REVERT_HISTORY} commits on main "
                                             "has it without hello 2.0"):
        revert(_failing(), _image_promotion(str(repo)), LocalGitProvider(repo))


def test_history_without_an_earlier_version_is_a_clear_error(tmp_path: Path) -> None:
    """A file that was created already holding 2.0 has nothing to go back to: one-line error."""
    repo = make_gitops_repo(tmp_path / "gitops")
    _promoted_by_hand(repo)
    _git(repo, "checkout", "--quiet", "--orphan", "fresh")
    _git(repo, "commit", "--quiet", "-m", "Created with 2.0")
    with pytest.raises(PromotionError, match=r"created it already with hello 2.0; nothing to "
                                             r"revert to$"):
        revert(_failing(), _image_promotion(str(repo), baseBranch="fresh"),
               LocalGitProvider(repo))


def test_fail_of_a_version_that_is_not_stable_reverts_nothing(tmp_path: Path) -> None:
    """2.0 never promoted: "nothing to revert" is logged, no branch, no pull request."""
    repo = make_gitops_repo(tmp_path / "gitops")
    said: list[str] = []
    outcome = act(_failing(), _promotion(str(repo), provider="local"), LocalGitProvider(repo),
                  log=said.append)
    assert outcome.status == "nothing-to-revert" and outcome.pull is None
    assert said == ["hello 2.0 is not the stable version on main: nothing to revert"]
    assert _git(repo, "branch", "--list", "slogate/*") == ""
    assert not (tmp_path / "gitops.pull-requests").exists()


@pytest.mark.parametrize("results, on_fail, error", [
    pytest.param(synthetic_results(["rate<1%"]), "revert-pr",
                 "the run's verdict is INCONCLUSIVE, not PASS", id="inconclusive"),
    pytest.param(_failing(), "none", "the run's verdict is FAIL, not PASS: nothing is promoted",
                 id="fail-without-onFail"),
    pytest.param(synthetic_results(OBJECTIVES).model_copy(update={"verdict": "FAIL"}),
                 "revert-pr", "the run's verdict is FAIL, not PASS", id="tampered-fail"),
])
def test_only_a_rejudged_fail_with_revert_pr_reverts(tmp_path: Path, results: Results,
                                                     on_fail: str, error: str) -> None:
    """INCONCLUSIVE, a FAIL without onFail, and a "FAIL" field over passing data revert nothing."""
    assert results.verdict in ("INCONCLUSIVE", "FAIL")
    repo, _ = _stable_repo(tmp_path)
    with pytest.raises(PromotionError, match=error):
        act(results, _promotion(str(repo), provider="local", onFail=on_fail),
            LocalGitProvider(repo))
    with pytest.raises(PromotionError, match="not FAIL: nothing is reverted"):
        revert(synthetic_results(OBJECTIVES), _promotion(str(repo), provider="local"),
               LocalGitProvider(repo))
    assert _git(repo, "branch", "--list", "slogate/*") == ""


def test_slogate_promote_dry_run_prints_the_revert_and_touches_nothing(tmp_path: Path) -> None:
    """`slogate promote --dry-run` on a FAIL run: the diff back to 1.0 and the pull request it
    would open are printed; no branch, no pull request file, main unchanged."""
    repo, promoted = _stable_repo(tmp_path)
    main_before = _git(repo, "rev-parse", "main")
    path = _results_file(tmp_path, _failing(), _promotion(str(repo), provider="local"))
    out = CliRunner().invoke(main, ["promote", str(path), "--dry-run"])
    assert out.exit_code == 0, out.stderr
    assert "-          image: ghcr.io/slogate/hello:2.0" in out.stdout
    assert "+          image: ghcr.io/slogate/hello:1.0" in out.stdout
    assert f"would open: Revert hello 2.0: SLOs failed ({REVERT} -> main)" in out.stdout
    assert promoted[:12] in out.stdout
    assert _git(repo, "branch", "--list", "slogate/*") == ""
    assert _git(repo, "rev-parse", "main") == main_before
    assert list((tmp_path / "gitops.pull-requests").iterdir()) == []  # the promotion's: gone


def test_slogate_promote_refuses_a_fail_when_onfail_is_none(tmp_path: Path) -> None:
    """Without onFail, `slogate promote` on a FAIL run keeps refusing: one line, exit 1 (the
    verdict's code, not the input error's 2)."""
    repo, _ = _stable_repo(tmp_path)
    path = _results_file(tmp_path, _failing(), _promotion(str(repo), provider="local",
                                                          onFail="none"))
    out = CliRunner().invoke(main, ["promote", str(path)])
    assert out.exit_code == 1
    assert out.stderr.strip() == (
        f"slogate: not promoted: {path}: the run is FAIL (re-judged from its histograms): only "
        "a PASS run is promoted (a FAIL of the stable version is reverted with onFail: "
        "revert-pr)")


@pytest.mark.parametrize("on_fail, stable, expected", [
    pytest.param("revert-pr", True, "opened", id="revert-stable"),
    pytest.param("revert-pr", False, "nothing to revert", id="not-stable"),
    pytest.param("none", True, "not promoted: the verdict is FAIL", id="onFail-none"),
])
def test_after_a_failed_run_the_spec_decides(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                             on_fail: str, stable: bool, expected: str) -> None:
    """What `slogate run` does after a FAIL: revert the stable version, log "nothing to revert"
    for one that is not, and only log when onFail is none."""
    repo = _stable_repo(tmp_path)[0] if stable else make_gitops_repo(tmp_path / "gitops")
    promote_after_run(_failing(), _promotion(str(repo), provider="local", onFail=on_fail))
    out, err = capsys.readouterr()
    assert expected in out + err
    reverted = _git(repo, "branch", "--list", "slogate/*").split()
    assert reverted == ([REVERT] if expected == "opened" else [])


@pytest.mark.github
def test_revert_through_pygithub_restores_the_file_and_updates_on_rerun(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Promote, merge (a merge commit), then FAIL: `slogate promote` opens a labelled revert PR
    whose branch holds the pre-promotion file byte for byte; again: updated, no second PR; a
    dry run first sends no write; the token is in no output."""
    files = {BASELINE: ORIGINAL, CANDIDATE: (EXAMPLE_DIR / "candidate.yaml").read_text()}
    with github_emulator(tmp_path, files) as gh:
        monkeypatch.setenv("GITHUB_TOKEN", gh.token)
        spec = _promotion(gh.full_name, baseUrl=gh.base_url)
        promote(synthetic_results(OBJECTIVES), spec,
                GitHubProvider(gh.full_name, gh.token, base_url=gh.base_url))
        gh.merge_pull(1)
        path = _results_file(tmp_path, _failing(), spec)
        writes = len([r for r in gh.requests if r.method != "GET"])
        dry = CliRunner().invoke(main, ["promote", str(path), "--dry-run"])
        assert dry.exit_code == 0, dry.stderr
        assert len([r for r in gh.requests if r.method != "GET"]) == writes
        assert gh.branch_sha(REVERT) is None and gh.pull_count() == 1
        out = CliRunner().invoke(main, ["promote", str(path)])
        again = CliRunner().invoke(main, ["promote", str(path)])
        assert out.exit_code == 0 and again.exit_code == 0, out.stderr + again.stderr
        assert gh.pull_count() == 2 and gh.pull_labels(2) == ["slogate"]
        title, body = gh.pull_text(2)
        assert title == "Revert hello 2.0: SLOs failed" and "**FAIL**" in (body or "")
        promoted = git(gh.bare, "rev-parse", "slogate/promote-hello-2.0")
        assert f"reverts {promoted[:12]}" in (body or "")
        assert git(gh.bare, "show", f"{REVERT}:{BASELINE}") + "\n" == ORIGINAL
        assert git(gh.bare, "rev-list", "--count", f"main..{REVERT}") == "1"
        assert gh.calls("GET commits") >= 2
        for text in (dry.stdout, dry.stderr, out.stdout, out.stderr, again.stdout, again.stderr,
                     body or ""):
            assert gh.token not in text


@pytest.mark.github
def test_github_history_pages_through_the_commits_of_a_file(tmp_path: Path) -> None:
    """file_history follows GitHub's Link pages (33 commits of the file, 30 a page) and agrees
    with git log: newest first, each commit's first parent (None for the root) and subject."""
    with github_emulator(tmp_path, {"app.yaml": "v: 0\n", "other.yaml": "x\n"}) as gh:
        for n in range(1, 41):
            path = "other.yaml" if n % 5 == 0 else "app.yaml"
            gh._commit_file("main", path, f"v: {n}\n".encode(), f"Change {n}\n\nwhy")
        history = GitHubProvider(gh.full_name, gh.token, base_url=gh.base_url).file_history(
            "app.yaml", "main", 100)
        expected = [line.split("\0") for line in git(
            gh.bare, "log", "--format=%H%x00%P%x00%s", "main", "--", "app.yaml").splitlines()]
        assert [[c.sha, c.parent or "", c.subject] for c in history] == expected
        assert len(history) == 33 and history[0].subject == "Change 39"
        assert gh.calls("GET commits") == 2


@pytest.mark.github
def test_the_promotion_service_reverts_a_fail_and_refuses_an_inconclusive(tmp_path: Path) -> None:
    """Posted to the service: a FAIL of the stable version with revert-pr opens the revert (201);
    an INCONCLUSIVE run is 409 and changes nothing."""
    from promote.service import ServiceConfig, make_app, parse_allowed
    from tests.promote.test_promote_service import SECRET, _post, _serving

    files = {BASELINE: ORIGINAL, CANDIDATE: (EXAMPLE_DIR / "candidate.yaml").read_text()}
    with github_emulator(tmp_path, files) as gh:
        spec = _promotion(gh.full_name, baseUrl=gh.base_url)
        promote(synthetic_results(OBJECTIVES), spec,
                GitHubProvider(gh.full_name, gh.token, base_url=gh.base_url))
        gh.merge_pull(1)
        config = ServiceConfig(allowed=(parse_allowed(f"{gh.full_name}:{BASELINE}"),),
                               token=gh.token, secret=SECRET, github_url=gh.base_url)
        with _serving(make_app(config)) as url:
            unsure = _post(url, _results_file(tmp_path, synthetic_results(["rate<1%"]),
                                              spec).read_bytes())
            assert unsure.status == 409 and "INCONCLUSIVE" in unsure.json["error"]
            assert gh.pull_count() == 1
            answer = _post(url, _results_file(tmp_path, _failing(), spec).read_bytes())
        assert answer.status == 201, answer.text
        assert answer.json["status"] == "opened" and answer.json["branch"] == REVERT
        assert gh.pull_text(2)[0] == "Revert hello 2.0: SLOs failed"
        assert git(gh.bare, "show", f"{REVERT}:{BASELINE}") + "\n" == ORIGINAL


def _pull_url(outcome: PromotionOutcome) -> str:
    """Return the URL of the pull request a promotion opened (there must be one)."""
    assert outcome.pull is not None
    return outcome.pull.url
