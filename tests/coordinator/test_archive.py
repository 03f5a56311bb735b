"""Run archives (a directory, a branch of a real git repository) and ``slogate history`` /
``slogate run --archive`` end to end with their exit codes."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from coordinator.archive import DirectoryArchive, GitArchive, archive_path, open_archive
from coordinator.cli import main
from coordinator.errors import HistoryError
from tests.support.runs import document, write_run


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t",
                           *args], check=True, capture_output=True, text=True).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A real git repository on main with one commit, a staged change and an untracked file."""
    root = tmp_path / "gitops"
    subprocess.run(["git", "init", "-q", "-b", "main", str(root)], check=True)
    (root / "app.yaml").write_text("image: app:1.0\n")
    _git(root, "add", "app.yaml")
    _git(root, "commit", "-q", "-m", "init")
    (root / "app.yaml").write_text("image: app:1.1\n")
    _git(root, "add", "app.yaml")
    (root / "notes.txt").write_text("work in progress\n")
    return root


def _state(repo: Path) -> tuple[str, str, str, str]:
    """Return what a user sees: the branch, HEAD, the status and the staged diff."""
    return (_git(repo, "branch", "--show-current"), _git(repo, "rev-parse", "HEAD"),
            _git(repo, "status", "--porcelain"), _git(repo, "diff", "--cached"))


def test_git_archive_commits_on_its_branch_and_leaves_the_checkout_alone(repo: Path) -> None:
    """Two runs make two commits on slogate/history, the second with the first as parent; the
    checked-out branch, HEAD, index and working tree are as they were; reading gives both back."""
    before = _state(repo)
    archive = open_archive(f"git:{repo}")
    first, second = document(day=1), document(day=2, verdict="FAIL")
    archive.store(first)
    archive.store(second)
    assert _state(repo) == before
    log = _git(repo, "log", "--format=%H %P|%s", "slogate/history").splitlines()
    (_tip, parent), (root_commit, no_parent) = (line.split("|")[0].split(" ", 1) for line in log)
    assert parent == root_commit and no_parent == ""
    assert [line.split("|")[1] for line in log] == [
        "slogate: nightly FAIL 20261103T020000Z", "slogate: nightly PASS 20261102T020000Z"]
    assert _git(repo, "ls-tree", "-r", "--name-only", "slogate/history").split() == [
        "nightly/20261102T020000.000Z-PASS.json", "nightly/20261103T020000.000Z-FAIL.json"]
    scan = archive.scan()
    assert [r.results for r in scan.runs] == [first, second] and scan.warnings == ()


def test_storing_the_same_run_twice_adds_no_commit(repo: Path) -> None:
    """Archiving a run already on the branch leaves the branch where it was."""
    archive = GitArchive(repo, "ci/history")
    archive.store(document(day=1))
    tip = archive.tip()
    assert "(already archived)" in archive.store(document(day=1))
    assert archive.tip() == tip


def test_a_concurrent_writer_loses_no_commit(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """When another writer moves the branch between our commit and update-ref, the update is
    refused (old-value check) and retried on the new tip: both runs stay on the branch."""
    archive, other = GitArchive(repo), GitArchive(repo)
    archive.store(document(day=1))
    real = GitArchive._commit_onto
    raced: list[str] = []

    def commit_then_race(self: GitArchive, *args: object) -> str:
        commit = real(self, *args)
        if self is archive and not raced:
            raced.append(other.store(document(day=2)))  # lands first, on the old tip
        return commit

    monkeypatch.setattr(GitArchive, "_commit_onto", commit_then_race)
    archive.store(document(day=3))
    assert sorted(r.results.start_time[:10] for r in archive.scan().runs) == [
        "2026-11-02", "2026-11-03", "2026-11-04"]
    assert len(_git(repo, "rev-list", "slogate/history").split()) == 3


def test_git_archive_of_a_bare_repository(tmp_path: Path) -> None:
    """A bare repository (no working tree at all) archives and reads back alike."""
    bare = tmp_path / "history.git"
    subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True)
    archive = open_archive(f"git:{bare}#nightly")
    archive.store(document(day=1))
    assert len(archive.scan().runs) == 1


@pytest.mark.parametrize("where, message", [
    pytest.param("git:{tmp}", "not a git repository", id="not-a-repo"),
    pytest.param("git:", "say which repository", id="no-path"),
    pytest.param("git:{repo}#bad..name", "is not a valid branch name", id="bad-branch"),
])
def test_git_archive_errors_are_one_line(tmp_path: Path, repo: Path, where: str,
                                         message: str) -> None:
    """A missing repository, an empty path or a bad branch name is a HistoryError up front."""
    with pytest.raises(HistoryError, match=message):
        open_archive(where.format(tmp=tmp_path, repo=repo))


def test_reading_a_branch_that_does_not_exist_says_so(repo: Path) -> None:
    """Scanning a branch nothing was archived on is an error naming the branch."""
    with pytest.raises(HistoryError, match="slogate/history: the branch does not exist"):
        open_archive(f"git:{repo}").scan()


def test_directory_scan_reads_the_default_layout_and_warns_about_the_rest(tmp_path: Path) -> None:
    """results/NAME-STAMP/results.json and stored copies are read; foreign or broken JSON files
    are one warning each; the same run found twice counts once."""
    root = tmp_path / "results"
    runs = [document(day=day) for day in range(3)]
    for results in runs:
        write_run(root, results)
    (root / "nightly-20261101T020000Z" / "report.html").write_text("<html></html>")
    stored = DirectoryArchive(root / "archive").store(runs[0])
    assert stored.endswith("archive/nightly/20261101T020000.000Z-PASS.json")
    (root / "package.json").write_text('{"name": "x"}')
    (root / "broken.json").write_text("{")
    scan = DirectoryArchive(root).scan()
    assert sorted(r.results.start_time for r in scan.runs) == [r.start_time for r in runs]
    assert len(scan.warnings) == 3
    assert any("broken.json:1: not valid JSON" in w for w in scan.warnings)
    assert any("package.json" in w for w in scan.warnings)
    assert any("the same run as" in w for w in scan.warnings)


def test_archive_path_is_safe_for_any_experiment_name() -> None:
    """Slashes, spaces and leading dots in a name never leave the archive's folder."""
    results = document(day=1, name="../team a/svc")
    assert archive_path(results) == "team-a-svc/20261102T020000.000Z-PASS.json"


def _history(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["history", *args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def _nightlies(root: Path, newest_median_ms: float) -> None:
    for day in range(4):
        write_run(root, document(day=day))
    write_run(root, document(day=4, median_ms=newest_median_ms))


@pytest.mark.parametrize("newest_ms, flag, code, outcome", [
    pytest.param(8.0, "--fail-on-regression", 0, "Drift: no regression", id="steady-exit-0"),
    pytest.param(10.0, "--fail-on-regression", 1, "Drift: REGRESSED", id="regressed-exit-1"),
    pytest.param(10.0, "--last=10", 0, "Drift: REGRESSED", id="regressed-without-flag-exit-0"),
])
def test_history_exit_codes(tmp_path: Path, newest_ms: float, flag: str, code: int,
                            outcome: str) -> None:
    """Exit 1 only when asked to fail and the newest run regressed; the report says either way."""
    _nightlies(tmp_path, newest_ms)
    exit_code, out, _ = _history(str(tmp_path), flag)
    assert exit_code == code and outcome in out


@pytest.mark.parametrize("args, message", [
    pytest.param([], "no runs in the archive", id="empty-archive"),
    pytest.param(["--name", "other"], "no run named 'other'", id="unknown-name"),
    pytest.param(["--tolerance", "150%"], "Invalid value for '--tolerance'", id="bad-tolerance"),
])
def test_history_usage_errors_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    """An empty archive, an unknown experiment or a bad option exits 2 with one clear line."""
    if args:
        write_run(tmp_path, document(day=1))
    exit_code, _, err = _history(str(tmp_path), *args)
    assert exit_code == 2 and message in err


def test_history_missing_directory_exits_2(tmp_path: Path) -> None:
    """A SOURCE that does not exist is named in the error."""
    exit_code, _, err = _history(str(tmp_path / "nope"))
    assert exit_code == 2 and "nope: no such directory" in err


def test_history_from_git_says_when_there_is_no_reference(repo: Path) -> None:
    """Two archived runs are too few to judge drift: stderr and the report say so; exit 0."""
    archive = open_archive(f"git:{repo}")
    for day in (1, 2):
        archive.store(document(day=day))
    exit_code, out, err = _history(f"git:{repo}", "--fail-on-regression", "--format", "markdown")
    assert exit_code == 0
    assert "drift not judged: no reference: 1 earlier PASS run, need 3+" in err
    assert "**Drift: NO REFERENCE (not judged)**" in out


def test_history_json_with_several_experiments_shows_the_newest(tmp_path: Path) -> None:
    """Without --name the newest run's experiment is shown and the others are named."""
    write_run(tmp_path, document(day=1, name="checkout"))
    write_run(tmp_path, document(day=2, name="search"))
    exit_code, out, err = _history(str(tmp_path), "--format", "json")
    assert exit_code == 0 and json.loads(out)["name"] == "search"
    assert "showing search, the newest (others: checkout; choose with --name)" in err


@pytest.mark.ray
@pytest.mark.slow
def test_run_with_archive_commits_the_results(tmp_path: Path, repo: Path, ray_local: None) -> None:
    """A real ``slogate run --archive git:REPO`` stores the run it wrote on the history branch."""
    from tests.support.helpers import start_hello

    with start_hello() as url:
        spec = {"name": "archived", "target": url,
                "load": {"rate": 100, "duration": "1s", "workers": 1, "timeout": "1s"},
                "endpoints": [{"path": "/hello"}],
                "objectives": [{"metric": "latency-p99", "upperLimit": "1s"}],
                "analysis": {"maxScheduleLag": "1s"}}
        (tmp_path / "spec.yaml").write_text(json.dumps(spec))
        result = CliRunner().invoke(main, ["run", str(tmp_path / "spec.yaml"), "--out",
                                           str(tmp_path / "out"), "--archive", f"git:{repo}"],
                                    catch_exceptions=False)
    assert "archived as git:" in result.stderr, result.stderr
    written = json.loads((tmp_path / "out" / "results.json").read_text())
    [run] = open_archive(f"git:{repo}").scan().runs
    assert json.loads(run.results.to_json()) == written
