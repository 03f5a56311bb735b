"""The ``github:OWNER/NAME[#BRANCH]`` run archive: real PyGithub against the in-process GitHub
emulator, the branch read back with real ``git`` from the emulator's bare repository."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from coordinator.archive import GitHubArchive, archive_path, open_archive
from coordinator.cli import _run_archive, main
from coordinator.errors import HistoryError
from coordinator.spec import parse_spec
from promote.errors import PromotionError
from promote.github import GitHubProvider
from tests.promote.test_github_provider import Sleeps
from tests.support.github_emulator import GitHubEmulator, git, github_emulator
from tests.support.runs import document

pytestmark = pytest.mark.github

BRANCH = "slogate/history"
SEED = {"deploy/app.yaml": "image: app:1.0\n", "renovate.json": '{"extends": ["config:base"]}\n'}


@pytest.fixture
def gh(tmp_path: Path) -> Iterator[GitHubEmulator]:
    """An emulated acme/gitops whose main branch holds a manifest and a foreign JSON file."""
    with github_emulator(tmp_path, SEED) as emulator:
        yield emulator


@pytest.fixture(autouse=True)
def _no_ambient_github(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests say which token and URL they use; none leaks in from the environment."""
    for name in ("GITHUB_TOKEN", "SLOGATE_GITHUB_URL"):
        monkeypatch.delenv(name, raising=False)


def archive(gh: GitHubEmulator, branch: str = BRANCH, sleeps: Sleeps | None = None,
            token: str | None = None) -> GitHubArchive:
    """Return the archive on ``branch`` of the emulated repository, time passed in."""
    provider = GitHubProvider(gh.full_name, token or gh.token, base_url=gh.base_url,
                              sleep=sleeps if sleeps is not None else Sleeps())
    return GitHubArchive(provider, branch)


def _history(gh: GitHubEmulator, *args: str, env: dict[str, str] | None = None
             ) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["history", *args],
                                env={"GITHUB_TOKEN": gh.token, **(env or {})},
                                catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_two_runs_make_two_commits_on_a_branch_created_from_main(gh: GitHubEmulator) -> None:
    """The missing branch is created at main's head, then each run is one commit adding
    NAME/STAMP-VERDICT.json with the run's JSON; main is untouched."""
    main_head = gh.branch_sha("main")
    first, second = document(day=1), document(day=2, verdict="FAIL")
    store = archive(gh)
    where = [store.store(first), store.store(second)]
    assert gh.calls("POST refs") == 1
    log = git(gh.bare, "log", "--format=%H %P|%s", BRANCH).splitlines()
    assert [line.split("|")[1] for line in log] == [
        "slogate: nightly FAIL 20261103T020000Z", "slogate: nightly PASS 20261102T020000Z", "seed"]
    assert git(gh.bare, "rev-parse", f"{BRANCH}~2") == main_head == gh.branch_sha("main")
    for results, stored in zip((first, second), where, strict=True):
        path = archive_path(results)
        assert git(gh.bare, "show", f"{BRANCH}:{path}") == results.to_json().strip()
        assert stored.startswith(f"github:acme/gitops#{BRANCH}:{path}@")
    assert where[1].endswith(gh.branch_sha(BRANCH) or "no branch")


def test_storing_the_same_run_again_adds_no_commit(gh: GitHubEmulator) -> None:
    """A run whose file is on the branch with the same text is not committed again, and the
    existing branch is neither created nor moved."""
    archive(gh).store(document(day=1))
    tip = gh.branch_sha(BRANCH)
    again = archive(gh).store(document(day=1))
    assert again.endswith("(already archived)")
    assert gh.branch_sha(BRANCH) == tip
    assert (gh.calls("POST refs"), gh.calls("PUT contents"), gh.calls("PATCH ref")) == (1, 1, 0)


def test_an_existing_branch_keeps_its_history(gh: GitHubEmulator) -> None:
    """Storing onto a branch that already exists commits on its tip, whatever main does."""
    archive(gh, "ci/runs").store(document(day=1))
    tip = gh.branch_sha("ci/runs")
    git(gh.bare, "update-ref", "refs/heads/main",
        git(gh.bare, "commit-tree", f"{gh.branch_sha('main')}^{{tree}}", "-p",
            gh.branch_sha("main") or "", "-m", "main moves on"))
    archive(gh, "ci/runs").store(document(day=2))
    assert git(gh.bare, "rev-parse", "ci/runs^") == tip


def test_scan_reads_the_runs_back_and_warns_about_broken_ones(gh: GitHubEmulator) -> None:
    """Every run comes back equal to what was stored; a file named as a run but broken is one
    warning; files not named as runs (the repository's own, from main) are not even read."""
    runs = [document(day=day) for day in range(3)]
    store = archive(gh)
    for results in runs:
        store.store(results)
    provider = store.files
    assert isinstance(provider, GitHubProvider)
    provider.put_file(BRANCH, "nightly/20260101T000000.000Z-PASS.json", "{", "a broken file")
    provider.put_file(BRANCH, "nightly/notes.json", "{", "not a run's name: never read")
    blobs_before = gh.calls("GET blob")
    scan = store.scan()
    assert [r.results for r in scan.runs] == runs
    assert [r.source for r in scan.runs] == [
        f"github:acme/gitops#{BRANCH}:{archive_path(r)}" for r in runs]
    (warning,) = scan.warnings
    assert "nightly/20260101T000000.000Z-PASS.json:1: not valid JSON" in warning
    assert gh.calls("GET tree") == 1 and gh.calls("GET blob") - blobs_before == 4


def test_scan_of_a_missing_branch_says_so(gh: GitHubEmulator) -> None:
    """Reading a branch nothing was archived on is an error naming the archive."""
    with pytest.raises(HistoryError, match="github:acme/gitops#slogate/history: the branch does "
                                           "not exist"):
        archive(gh).scan()


def test_server_errors_are_retried_with_backoff(gh: GitHubEmulator,
                                                caplog: pytest.LogCaptureFixture) -> None:
    """5xx answers to the commit and to the tree listing are retried (0.5 s, then 1 s) and the
    run is stored and read once; the retry log lines carry no token."""
    sleeps = Sleeps()
    gh.fail_next("PUT contents", 2)
    gh.fail_next("GET tree", 1)
    caplog.set_level(logging.WARNING)
    store = archive(gh, sleeps=sleeps)
    store.store(document(day=1))
    assert len(store.scan().runs) == 1
    assert sleeps == [0.5, 1.0, 0.5]
    assert gh.calls("PUT contents") == 3
    assert len(git(gh.bare, "rev-list", f"main..{BRANCH}").split()) == 1
    assert "HTTP 500 while creating nightly/" in caplog.text and gh.token not in caplog.text


def test_a_commit_whose_answer_was_lost_is_not_made_twice(gh: GitHubEmulator) -> None:
    """A PUT that landed but answered 500 is retried; GitHub's 422 for the file now there is
    recognised as the same text, so the run is on the branch once and nothing fails."""
    gh.fail_next("PUT contents", 1, after_handling=True)
    stored = archive(gh).store(document(day=1))
    assert stored.endswith("(already archived)")
    assert gh.calls("PUT contents") == 2
    assert len(git(gh.bare, "rev-list", f"main..{BRANCH}").split()) == 1


def test_a_server_that_keeps_failing_is_one_line(gh: GitHubEmulator) -> None:
    """After the retries a 5xx is a HistoryError naming the archive and the status."""
    gh.fail_next("GET ref", 10)
    with pytest.raises(HistoryError) as caught:
        archive(gh).store(document(day=1))
    message = str(caught.value)
    assert message.startswith(f"github:acme/gitops#{BRANCH}: GitHub kept failing")
    assert "HTTP 500; 4 attempts" in message and "\n" not in message


@pytest.mark.parametrize("status, token", [
    pytest.param(401, "ghp_wrongTokenNeverShown000000000000", id="bad-token-401"),
    pytest.param(403, None, id="forbidden-403"),
])
def test_refused_token_exits_2_with_one_line(gh: GitHubEmulator, status: int,
                                             token: str | None) -> None:
    """A refused token (401) or a forbidden repository (403) exits 2 with one line naming the
    HTTP status; neither token appears anywhere in the output."""
    if status == 403:
        gh.fail_next("GET ref", 1, status=403)
    exit_code, out, err = _history(gh, "github:acme/gitops", "--github-url", gh.base_url,
                                   env={"GITHUB_TOKEN": token or gh.token})
    assert exit_code == 2 and out == ""
    assert err == (f"slogate: error: github:acme/gitops#{BRANCH}: GitHub refused the token "
                   f"(HTTP {status}) for acme/gitops\n")
    assert gh.token not in err and (token is None or token not in err)


@pytest.mark.parametrize("url_from", [
    pytest.param("option", id="github-url-option"),
    pytest.param("env", id="SLOGATE_GITHUB_URL"),
])
def test_history_command_reads_the_branch_and_judges_drift(gh: GitHubEmulator,
                                                           url_from: str) -> None:
    """``slogate history github:...`` reads the archived runs, shows the trend and exits 1 on a
    regressed newest run with --fail-on-regression; the token is in no output."""
    store = archive(gh, "nightly")
    for day in range(4):
        store.store(document(day=day))
    store.store(document(day=4, median_ms=10.0))
    where = ["--github-url", gh.base_url] if url_from == "option" else []
    env = {"SLOGATE_GITHUB_URL": gh.base_url} if url_from == "env" else {}
    exit_code, out, err = _history(gh, "github:acme/gitops#nightly", "--fail-on-regression",
                                   *where, env=env)
    assert exit_code == 1, err
    assert "Drift: REGRESSED" in out and "github:acme/gitops#nightly" in out
    assert "renovate.json" not in err  # the repository's own files are not runs
    assert gh.token not in out + err


def test_history_token_from_a_file(gh: GitHubEmulator, tmp_path: Path) -> None:
    """--token-file is used instead of GITHUB_TOKEN for a github: SOURCE."""
    archive(gh).store(document(day=1))
    (tmp_path / "token").write_text(gh.token + "\n")
    exit_code, _, err = _history(gh, "github:acme/gitops", "--github-url", gh.base_url,
                                 "--token-file", str(tmp_path / "token"),
                                 env={"GITHUB_TOKEN": "ghp_notThisOne"})
    assert exit_code == 0, err


def test_run_archive_takes_token_and_url_from_the_promotion_block(
        gh: GitHubEmulator, tmp_path: Path) -> None:
    """``run --archive github:...`` with a GitHub promotion block uses its tokenFile and baseUrl
    (no GITHUB_TOKEN, no --github-url); without a block it needs GITHUB_TOKEN."""
    (tmp_path / "token").write_text(gh.token)
    spec = parse_spec({"name": "nightly", "target": "http://127.0.0.1:8080",
                       "load": {"rate": 10, "duration": "1s"}, "endpoints": [{"path": "/"}],
                       "objectives": [{"metric": "error-rate", "upperLimit": "5%"}],
                       "promotion": {"repository": "acme/gitops", "baseUrl": gh.base_url,
                                     "tokenFile": str(tmp_path / "token"), "app": "app",
                                     "version": "2.0", "manifests": [
                                         {"path": "deploy/app.yaml", "strategy": "copy",
                                          "from": "deploy/candidate.yaml"}]}})
    _run_archive("github:acme/gitops", spec.promotion, None).store(document(day=1))
    assert gh.branch_sha(BRANCH) is not None
    with pytest.raises(PromotionError, match="no GitHub token for github:acme/gitops: set "
                                           "GITHUB_TOKEN"):
        _run_archive("github:acme/gitops", None, gh.base_url)


@pytest.mark.parametrize("where, message", [
    pytest.param("github:acme", "say which repository (github:OWNER/NAME[#BRANCH])", id="no-name"),
    pytest.param("github:", "say which repository", id="empty"),
    pytest.param("github:a/b/c#x", "say which repository", id="too-many-slashes"),
])
def test_bad_github_locations_are_one_line(where: str, message: str) -> None:
    """A location that is not OWNER/NAME is a HistoryError before any token is read."""
    with pytest.raises(HistoryError, match=re.escape(message)):
        open_archive(where, github_token=lambda: pytest.fail("token read"))
