"""Promotion end to end: a PASS becomes a branch, a commit and a pull request; nothing else does.

Against a real local git repository (the offline provider) and, through the real PyGithub, the
in-process GitHub emulator backed by a real bare repository. Commits are read back with git.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from analysis.results import Results
from coordinator.cli import main
from coordinator.demo import EXAMPLE_DIR, make_gitops_repo
from promote.errors import PromotionError
from promote.flow import PromotionOutcome, branch_name, promote
from promote.local_git import LocalGitProvider
from promote.spec import PromotionSpec
from tests.analysis.test_reports import OBJECTIVES, synthetic_results
from tests.support.github_emulator import git, github_emulator

BASELINE = "samples/deployments/baseline.yaml"
CANDIDATE = "samples/deployments/candidate.yaml"


def _promotion(repository: str, **extra: object) -> PromotionSpec:
    return PromotionSpec.model_validate({
        "repository": repository, "app": "hello", "version": "2.0",
        "manifests": [{"path": BASELINE, "strategy": "copy", "from": CANDIDATE}], **extra})


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True).stdout


def _failing() -> Results:
    """A run whose p99 objective (1 ms) the synthetic ~15 ms p99 clearly fails."""
    return synthetic_results(["p(99)<1ms"])


def test_pass_opens_a_branch_commit_and_pull_request_locally(tmp_path: Path) -> None:
    """A PASS run promotes: the branch's baseline.yaml is the candidate's (names kept), one
    commit, a pull request file with the report; the base branch is untouched."""
    repo = make_gitops_repo(tmp_path / "gitops")
    outcome = promote(synthetic_results(OBJECTIVES), _promotion(str(repo), provider="local"),
                      LocalGitProvider(repo))
    assert outcome.status == "opened"
    branch = branch_name(_promotion(str(repo)))
    promoted = _git(repo, "show", f"{branch}:{BASELINE}")
    assert "ghcr.io/slogate/hello:2.0" in promoted and "name: hello\n" in promoted
    assert "# the tag is the app version" in promoted  # comments kept
    assert _git(repo, "rev-list", "--count", f"main..{branch}").strip() == "1"
    assert _git(repo, "show", f"main:{BASELINE}") == (EXAMPLE_DIR / "baseline.yaml").read_text()
    pull = Path(_pull_url(outcome).removeprefix("file://")).read_text()
    assert pull.startswith("# Promote hello to 2.0") and "**PASS**" in pull


def test_promoting_again_updates_the_same_pull_request_without_new_commits(tmp_path: Path) -> None:
    """Running the promotion twice: same branch, still one commit, the pull request updated."""
    repo = make_gitops_repo(tmp_path / "gitops")
    spec, results = _promotion(str(repo), provider="local"), synthetic_results(OBJECTIVES)
    promote(results, spec, LocalGitProvider(repo))
    again = promote(results, spec, LocalGitProvider(repo))
    assert again.status == "updated"
    assert _git(repo, "rev-list", "--count", f"main..{branch_name(spec)}").strip() == "1"
    assert len(_git(repo, "branch", "--list", "slogate/*").splitlines()) == 1


def test_fail_never_promotes(tmp_path: Path) -> None:
    """A FAIL run raises PromotionError and leaves no branch behind."""
    repo = make_gitops_repo(tmp_path / "gitops")
    with pytest.raises(PromotionError, match="verdict is FAIL, not PASS"):
        promote(_failing(), _promotion(str(repo), provider="local"), LocalGitProvider(repo))
    assert _git(repo, "branch", "--list", "slogate/*") == ""


def test_a_tampered_pass_is_rejudged_and_refused(tmp_path: Path) -> None:
    """A results file edited to say PASS is re-judged from its histograms and refused."""
    repo = make_gitops_repo(tmp_path / "gitops")
    tampered = _failing().model_copy(update={"verdict": "PASS"})
    with pytest.raises(PromotionError, match="re-judged from its histograms the run is FAIL"):
        promote(tampered, _promotion(str(repo), provider="local"), LocalGitProvider(repo))


def test_already_promoted_is_reported_not_committed(tmp_path: Path) -> None:
    """When the base branch already holds the candidate, nothing is committed or opened."""
    repo = make_gitops_repo(tmp_path / "gitops")
    spec = _promotion(str(repo), provider="local")
    first = promote(synthetic_results(OBJECTIVES), spec, LocalGitProvider(repo))
    _git(repo, "merge", "--quiet", "--ff-only", first.branch)  # the user merged it
    _git(repo, "branch", "-D", first.branch)
    Path(_pull_url(first).removeprefix("file://")).unlink()
    again = promote(synthetic_results(OBJECTIVES), spec, LocalGitProvider(repo))
    assert again.status == "already-promoted" and again.changes == ()


def test_dry_run_prints_the_diff_and_changes_nothing(tmp_path: Path) -> None:
    """`slogate promote --dry-run` prints the unified diff and the PR text; no branch appears."""
    repo = make_gitops_repo(tmp_path / "gitops")
    results = synthetic_results(OBJECTIVES)
    data = json.loads(results.to_json())
    data["spec"]["promotion"] = json.loads(_promotion(str(repo), provider="local")
                                           .model_dump_json(by_alias=True))
    path = tmp_path / "results.json"
    path.write_text(json.dumps(data))
    out = CliRunner().invoke(main, ["promote", str(path), "--dry-run"])
    assert out.exit_code == 0, out.stderr
    assert f"--- a/{BASELINE}" in out.stdout and "+          image: ghcr.io/slogate/hello:2.0" in out.stdout
    assert "would open: Promote hello to 2.0" in out.stdout
    assert _git(repo, "branch", "--list", "slogate/*") == ""


@pytest.mark.github
def test_pass_opens_a_labelled_pull_request_on_github_through_pygithub(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Through `slogate promote` and real PyGithub: the emulated fork gets the branch, the commit
    (read back with git) and a labelled PR whose body is the report; the token is in no output."""
    files = {BASELINE: (EXAMPLE_DIR / "baseline.yaml").read_text(),
             CANDIDATE: (EXAMPLE_DIR / "candidate.yaml").read_text()}
    with github_emulator(tmp_path, files) as gh:
        monkeypatch.setenv("GITHUB_TOKEN", gh.token)
        data = json.loads(synthetic_results(OBJECTIVES).to_json())
        data["spec"]["promotion"] = json.loads(_promotion(gh.full_name, baseUrl=gh.base_url)
                                               .model_dump_json(by_alias=True))
        path = tmp_path / "results.json"
        path.write_text(json.dumps(data))
        out = CliRunner().invoke(main, ["promote", str(path)])
        again = CliRunner().invoke(main, ["promote", str(path)])
        assert out.exit_code == 0 and again.exit_code == 0, out.stderr
        assert gh.pull_count() == 1 and gh.pull_labels(1) == ["slogate"]
        title, body = gh.pull_text(1)
        assert title == "Promote hello to 2.0" and "**PASS**" in (body or "")
        promoted = git(gh.bare, "show", f"slogate/promote-hello-2.0:{BASELINE}")
        assert "ghcr.io/slogate/hello:2.0" in promoted
        for text in (out.stdout, out.stderr, again.stdout, again.stderr, body or ""):
            assert gh.token not in text
        assert not any(gh.token.encode() in (r.body or b"") for r in gh.requests)


def test_missing_token_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No GITHUB_TOKEN and no tokenFile: one line, exit 2."""
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    data = json.loads(synthetic_results(OBJECTIVES).to_json())
    data["spec"]["promotion"] = json.loads(_promotion("acme/gitops").model_dump_json(by_alias=True))
    path = tmp_path / "results.json"
    path.write_text(json.dumps(data))
    out = CliRunner().invoke(main, ["promote", str(path)])
    assert out.exit_code == 2
    assert out.stderr.strip() == ("slogate: error: no GitHub token: set GITHUB_TOKEN, promotion.tokenFile "
                                  "or promotion.tokenSecret")


def _results_with_promotion(tmp_path: Path, results: Results, repo: Path) -> Path:
    """Write ``results`` with a local promotion block into ``tmp_path/results.json``."""
    promotion = _promotion(str(repo), provider="local").model_dump(mode="json", by_alias=True)
    path = tmp_path / "results.json"
    path.write_text(results.model_copy(
        update={"spec": {**results.spec, "promotion": promotion}}).to_json())
    return path


def _spec_file(tmp_path: Path, results_path: Path, **changes: object) -> Path:
    """Write the spec saved in ``results_path``, with ``changes`` applied, as spec.yaml."""
    path = tmp_path / "spec.yaml"
    path.write_text(json.dumps({**json.loads(results_path.read_text())["spec"], **changes}))
    return path


@pytest.mark.parametrize(("changes", "fragment"), [
    pytest.param({"name": "checkout-3.1"}, "the spec is experiment 'checkout-3.1', but the run is "
                 "of 'golden'", id="other-experiment"),
    pytest.param({"objectives": [{"metric": "latency-p99", "upperLimit": "900ms"}]},
                 "the spec's objectives are not those the run was judged on (only in the spec: "
                 "latency-p99 <= 900 ms; only in the run: ", id="other-objectives"),
])
def test_promote_with_another_experiments_spec_is_refused(
        tmp_path: Path, changes: dict[str, object], fragment: str) -> None:
    """`promote --spec` with a spec whose name or objectives differ from the run's: one line
    naming the difference, exit 2, and no branch."""
    repo = make_gitops_repo(tmp_path / "gitops")
    results = synthetic_results(OBJECTIVES)
    path = _results_with_promotion(tmp_path, results, repo)
    spec = _spec_file(tmp_path, path, **changes)
    out = CliRunner().invoke(main, ["promote", str(path), "--spec", str(spec)])
    assert out.exit_code == 2
    [line] = out.stderr.splitlines()
    assert line.startswith(f"slogate: error: {spec}: not the spec of {path}: ")
    assert fragment in line
    assert _git(repo, "branch", "--list", "slogate/*") == ""


def test_promote_with_the_runs_own_spec_promotes(tmp_path: Path) -> None:
    """`promote --spec` with the spec the run was judged on promotes as without it."""
    repo = make_gitops_repo(tmp_path / "gitops")
    path = _results_with_promotion(tmp_path, synthetic_results(OBJECTIVES), repo)
    spec = _spec_file(tmp_path, path)
    out = CliRunner().invoke(main, ["promote", str(path), "--spec", str(spec)])
    assert out.exit_code == 0, out.stderr
    assert "Promote hello to 2.0: opened" in out.stdout


@pytest.mark.parametrize(("results", "code", "verdict"), [
    pytest.param(_failing, 1, "FAIL", id="fail-exits-1"),
    pytest.param(lambda: synthetic_results(["p(99.99)<1s"]), 3, "INCONCLUSIVE",
                 id="inconclusive-exits-3"),
])
def test_refusing_a_run_that_did_not_pass_exits_with_its_verdicts_code(
        tmp_path: Path, results: object, code: int, verdict: str) -> None:
    """`slogate promote` of a FAIL run exits 1 and of an INCONCLUSIVE one 3 (not 2, which
    means a mistake in the input), saying why in one line."""
    repo = make_gitops_repo(tmp_path / "gitops")
    path = _results_with_promotion(tmp_path, results(), repo)  # type: ignore[operator]
    out = CliRunner().invoke(main, ["promote", str(path)])
    assert out.exit_code == code
    assert out.stderr.splitlines() == [
        f"slogate: not promoted: {path}: the run is {verdict} (re-judged from its histograms): "
        "only a PASS run is promoted (a FAIL of the stable version is reverted with onFail: "
        "revert-pr)"]


KUSTOMIZATION = "samples/kustomization.yaml"
_BOMB = "".join(f"l{i}: &a{i} [" + ", ".join([f"*a{i - 1}" if i else "x"] * 10) + "]\n"
                for i in range(9))  # a billion laughs: its 4th anchor passes the node budget


@pytest.mark.parametrize(("files", "manifest", "error"), [
    pytest.param({KUSTOMIZATION: "resources: [deployments/baseline.yaml]\n" + _BOMB},
                 {"path": KUSTOMIZATION, "strategy": "kustomize-image",
                  "image": {"name": "hello", "newTag": "2.0"}},
                 f"{KUSTOMIZATION}:5: malformed YAML: aliases expand to more than 10,000 nodes",
                 id="alias-bomb-in-kustomization"),
    pytest.param({KUSTOMIZATION: "resources: [deployments/baseline.yaml]\nimages:\n"
                  "  - {name: hello, newTag: '1.0'\n"},
                 {"path": KUSTOMIZATION, "strategy": "kustomize-image",
                  "image": {"name": "hello", "newTag": "2.0"}},
                 f"{KUSTOMIZATION}:4: malformed YAML: expected ',' or '}}'",
                 id="unclosed-flow-mapping"),
    pytest.param({CANDIDATE: "kind: Deployment\nmetadata:\n  name: hello\n name: x\n"},
                 {"path": BASELINE, "strategy": "copy", "from": CANDIDATE},
                 f"{CANDIDATE}:4: malformed YAML: ", id="malformed-candidate-of-a-copy"),
])
def test_malformed_yaml_in_a_patched_file_names_the_file_and_line(
        tmp_path: Path, files: dict[str, str], manifest: dict[str, object], error: str) -> None:
    """`slogate promote` meeting a file of the GitOps repository that is not YAML (an alias
    bomb, a syntax error; the patched file or the copy's source) prints one line starting with
    that file's repository path and line, exits 2, and creates no branch."""
    repo = make_gitops_repo(tmp_path / "gitops")
    for name, text in files.items():
        (repo / name).write_text(text)
    _git(repo, "add", ".")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "files")
    promotion = _promotion(str(repo), provider="local", manifests=[manifest])
    path = tmp_path / "results.json"
    results = synthetic_results(OBJECTIVES)
    path.write_text(results.model_copy(update={"spec": {
        **results.spec, "promotion": promotion.model_dump(mode="json", by_alias=True)}}).to_json())
    out = CliRunner().invoke(main, ["promote", str(path)])
    assert out.exit_code == 2
    [line] = out.stderr.splitlines()
    assert line.startswith(f"slogate: error: {error}"), line
    assert _git(repo, "branch", "--list", "slogate/*") == ""


def _pull_url(outcome: PromotionOutcome) -> str:
    """Return the URL of the pull request a promotion opened (there must be one)."""
    assert outcome.pull is not None
    return outcome.pull.url
