"""Hostile files and names: results, archives, specs and URLs that once gave a traceback, a
hang, a file outside ``results/`` or a leaked password, now give one line (real files, real CLI)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from analysis.errors import ResultsError
from analysis.results import MAX_JSON_DEPTH, load_results
from coordinator.archive import DirectoryArchive, open_archive
from coordinator.cli import _default_out, _errors_to_exit_codes, _save_results, main
from coordinator.errors import SpecError
from coordinator.out_dir import writable_out
from coordinator.spec import MAX_ENDPOINTS, MAX_SPEC_BYTES, load_spec, parse_spec
from tests.support.runs import document, write_run

ROOT = Path(__file__).resolve().parents[2]
HEAD = "name: t\ntarget: http://127.0.0.1:8080\nload: {rate: 10, duration: 1s}\n"


def cli(*args: str) -> tuple[int, str, str]:
    """Run slogate's CLI in-process, letting any exception through (a traceback fails the
    test); return exit code, stdout and stderr."""
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def cli_process(*args: str) -> tuple[int, str, str]:
    """Run slogate in a child process, as users do; return exit code, stdout and stderr."""
    done = subprocess.run([sys.executable, "-m", "coordinator.cli", *args], capture_output=True,
                          text=True, timeout=120, cwd=ROOT)
    return done.returncode, done.stdout, done.stderr


def corrupt_histogram(path: Path, where: str) -> Path:
    """Rewrite the results file at ``path`` with one histogram cut short; return the path."""
    data = json.loads(path.read_text())
    series = data["histograms"]["latency"][0] if where == "totals" else \
        data["windows"][0]["service"][0]
    series["hdr"] = series["hdr"][:24]
    path.write_text(json.dumps(data))
    return path


def deep_json(levels: int) -> str:
    """Return a JSON document of ``levels`` nested lists."""
    return "[" * levels + "]" * levels


# --- item 7: results files ---------------------------------------------------------------------


@pytest.mark.parametrize("levels", [MAX_JSON_DEPTH + 1, 100_000])
@pytest.mark.parametrize("command", [["report"], ["promote", "--dry-run"],
                                     ["report", "--format", "html"]])
def test_deeply_nested_json_is_one_line_exit_2(tmp_path: Path, command: list[str],
                                               levels: int) -> None:
    """JSON nested past the bound (or past Python's recursion limit) is refused in one line
    naming the file, exit 2; it used to be a RecursionError traceback and exit 1."""
    path = tmp_path / "deep.json"
    path.write_text(deep_json(levels))
    code, _, err = cli(command[0], str(path), *command[1:])
    assert (code, err.splitlines()) == (2, [
        f"slogate: error: {path}: JSON nested more than {MAX_JSON_DEPTH} levels deep: not a "
        "results document"])


@pytest.mark.parametrize(("where", "named"), [
    pytest.param("totals", "histograms.latency[0] (GET /hello, status:200)", id="totals"),
    pytest.param("window", "windows[0].service[0] (GET /hello, status:200)", id="window"),
])
@pytest.mark.parametrize("fmt", ["html", "text"])
def test_a_corrupt_histogram_is_named_in_one_line(tmp_path: Path, where: str, named: str,
                                                  fmt: str) -> None:
    """`report` (html included) on a results file with one truncated histogram names the file
    and the histogram and exits 2, instead of a ValueError traceback and exit 1."""
    path = corrupt_histogram(write_run(tmp_path, document(day=1)), where)
    code, out, err = cli("report", str(path), "--format", fmt)
    assert code == 2 and out == ""
    [line] = err.splitlines()
    assert line.startswith(f"slogate: error: {path}: {named}: histogram decode: ")


def test_a_fifo_named_json_is_refused_not_waited_on(tmp_path: Path) -> None:
    """`report` on a FIFO called results.json says what it is, exit 2 (it used to hang)."""
    fifo = tmp_path / "results.json"
    os.mkfifo(fifo)
    code, _, err = cli_process("report", str(fifo))
    assert (code, err.splitlines()) == (2, [
        f"slogate: error: {fifo}: cannot read results file: a FIFO, not a regular file"])
    with pytest.raises(ResultsError, match="a directory, not a regular file"):
        load_results(tmp_path)


def test_history_skips_each_hostile_file_with_a_warning_naming_it(tmp_path: Path) -> None:
    """A directory archive holding five good runs plus a corrupt histogram, a deeply nested
    file and a FIFO shows the five runs and warns once per bad file, naming it."""
    for day in range(5):
        write_run(tmp_path, document(day=day))
    bad = corrupt_histogram(write_run(tmp_path, document(day=9)), "totals")
    (tmp_path / "deep.json").write_text(deep_json(100_000))
    os.mkfifo(tmp_path / "pipe.json")
    scan = DirectoryArchive(tmp_path).scan()
    assert len(scan.runs) == 5
    assert sorted(w.split(":")[0] for w in scan.warnings) == sorted(
        f"skipped {p}" for p in (bad, tmp_path / "deep.json", tmp_path / "pipe.json"))
    result = CliRunner().invoke(main, ["history", str(tmp_path), "--format", "json"],
                                catch_exceptions=False)
    assert result.exit_code == 0
    assert len(json.loads(result.stdout)["runs"]) == 5
    assert f"skipped {bad}: histograms.latency" in result.stderr


def test_a_git_archive_skips_a_deeply_nested_file(tmp_path: Path) -> None:
    """A JSON blob nested too deep on a git archive's branch is a warning naming it, and the
    other runs are still read (the RecursionError used to stop the scan)."""
    repo = tmp_path / "repo"
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    archive = open_archive(f"git:{repo}")
    archive.store(document(day=1))
    subprocess.run([*git, "checkout", "-q", "slogate/history"], check=True)
    (repo / "nightly" / "deep.json").write_text(deep_json(100_000))
    subprocess.run([*git, "add", "nightly/deep.json"], check=True)
    subprocess.run([*git, "commit", "-qm", "deep"], check=True)
    scan = archive.scan()
    assert len(scan.runs) == 1
    [warning] = scan.warnings
    assert "nightly/deep.json" in warning and "nested more than 200 levels" in warning


# --- item 8: bounds on specs -------------------------------------------------------------------


def test_endpoints_are_bounded_and_counted_in_linear_time() -> None:
    """MAX_ENDPOINTS endpoints validate (duplicate labels found by counting once); one more is
    refused naming the bound."""
    data = {"name": "t", "target": "http://127.0.0.1:8080", "load": {"rate": 1, "duration": 1}}
    spec = parse_spec({**data, "endpoints": [{"path": f"/{i}"} for i in range(MAX_ENDPOINTS)]})
    assert len({e.label for e in spec.endpoints}) == MAX_ENDPOINTS
    with pytest.raises(SpecError) as caught:
        parse_spec({**data, "endpoints": [{"path": f"/{i}"} for i in range(MAX_ENDPOINTS + 1)]})
    assert str(caught.value) == ("spec: endpoints: at most 10,000 items (slogate's upper bound, "
                                 "see the README), got 10,001")
    with pytest.raises(SpecError, match=r"labels must be unique; give a name to: \['GET /a'\]"):
        parse_spec({**data, "endpoints": [{"path": "/a"}, {"path": "/b"}, {"path": "/a"}]})


def test_a_spec_file_over_the_size_bound_is_refused_before_parsing(tmp_path: Path) -> None:
    """A spec of 300,000 endpoints (5 MiB) is refused at once by size; a FIFO spec too."""
    path = tmp_path / "huge.yaml"
    path.write_text(HEAD + "endpoints:\n" + "".join(f"  - path: /p{i}\n" for i in range(300_000)))
    assert path.stat().st_size > MAX_SPEC_BYTES
    with pytest.raises(SpecError, match="cannot read spec file: larger than 4 MiB"):
        load_spec(path)
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    with pytest.raises(SpecError, match="cannot read spec file: a FIFO, not a regular file"):
        load_spec(fifo)


# --- item 10: names that would leave results/ ---------------------------------------------------


@pytest.mark.parametrize(("name", "folder"), [
    pytest.param("../../x", "x-", id="parent-dirs"),
    pytest.param("/etc/passwd", "etc-passwd-", id="absolute"),
    pytest.param("..", "run-", id="only-dots"),
    pytest.param("hello-2.0", "hello-2.0-", id="ordinary"),
])
def test_default_out_stays_inside_results(name: str, folder: str) -> None:
    """`slogate run` without --out writes to results/NAME-STAMP with the archive's sanitising."""
    out = _default_out(name)
    assert out.parent == Path("results") and out.name.startswith(folder)


@given(st.text(min_size=1, max_size=40))
def test_any_name_gives_one_folder_under_results(name: str) -> None:
    """Whatever the experiment name, the default output is exactly one folder below results/."""
    out = _default_out(name)
    assert out.parent == Path("results")
    assert out.name not in ("", ".", "..") and "/" not in out.name and not out.name.startswith(".")


# --- item 11: credentials in URLs ---------------------------------------------------------------


@pytest.mark.parametrize("field", ["target", "baseline", "kubernetes-url"])
def test_credentials_in_a_url_are_refused_without_repeating_them(field: str) -> None:
    """user:password@ in the target or baseline URL is a spec error whose message names the
    field and never contains the password."""
    url = "http://alice:s3cret@127.0.0.1:8080"
    data: dict[str, object] = {"name": "t", "target": "http://127.0.0.1:8080",
                               "load": {"rate": 1, "duration": 1}}
    if field == "kubernetes-url":
        data["target"] = {"url": url, "kubernetes": {"manifests": ["c.yaml"]}}
    else:
        data[field] = url
    with pytest.raises(SpecError) as caught:
        parse_spec(data)
    message = str(caught.value)
    where = {"target": "target", "baseline": "baseline", "kubernetes-url": "target.url"}[field]
    assert message.startswith(f"spec: {where}: credentials in the URL (user:password@) are "
                              "refused")
    assert "s3cret" not in message and "alice" not in message


def test_cli_refuses_credentials_and_prints_no_password(tmp_path: Path) -> None:
    """`slogate run` on a spec with user:pass@ exits 2 with one line and no password anywhere."""
    path = tmp_path / "spec.yaml"
    path.write_text("name: t\ntarget: http://bob:hunter2@127.0.0.1:9\n"
                    "load: {rate: 1, duration: 1s}\n")
    code, out, err = cli_process("run", str(path))
    assert code == 2 and "hunter2" not in out + err
    assert err.splitlines() == [
        f"slogate: error: {path}:2: target: credentials in the URL (user:password@) are refused: "
        "they would be shown and saved with the results; send an Authorization header "
        "(endpoints[].headers) instead"]


@pytest.mark.parametrize(("out", "reason"), [
    pytest.param("a-file", "not a directory", id="a-file"),
    pytest.param("/proc/slogate-none/out", "No such file or directory", id="under-proc"),
])
def test_an_out_directory_that_cannot_be_written_is_refused_before_any_load(
        tmp_path: Path, out: str, reason: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """`run --out` where nothing can be written exits 2 in one line naming --out, before Ray
    starts (the target, port 9, is never loaded); it used to run the whole load and end in a
    traceback and exit 1, which a pipeline reads as FAIL."""
    (tmp_path / "a-file").write_text("kept\n")
    spec = tmp_path / "spec.yaml"
    spec.write_text(HEAD + "endpoints: [{path: /}]\nobjectives: ['p(99)<1s']\n")
    monkeypatch.chdir(tmp_path)
    code, _out, err = cli("run", str(spec), "--out", out)
    assert (code, err) == (2, f"slogate: error: --out {out}: cannot write results there ({reason})\n")
    assert (tmp_path / "a-file").read_text() == "kept\n"
    assert "starting" not in err


def test_an_out_directory_made_for_a_run_that_failed_first_is_removed(tmp_path: Path) -> None:
    """A run that fails before writing anything leaves no empty directory behind; one it made
    and wrote to stays."""
    with writable_out(tmp_path / "made" / "deep") as out_dir:
        (out_dir / "results.json").write_text("{}")
    assert (tmp_path / "made" / "deep" / "results.json").exists()
    with pytest.raises(SpecError), writable_out(tmp_path / "empty") as out_dir:
        raise SpecError("failed before writing")
    assert not (tmp_path / "empty").exists()


def test_results_that_cannot_be_written_at_the_end_go_to_a_spare_directory(tmp_path: Path) -> None:
    """If the --out directory became unwritable during the run (here replaced by a file), the
    results are written in a new temporary directory, and a warning says where: never lost."""
    out_dir = tmp_path / "out"
    out_dir.write_text("not a directory any more")
    path = _save_results(out_dir, '{"verdict": "PASS"}')
    assert path.parent != out_dir and path.read_text() == '{"verdict": "PASS"}'
    shutil.rmtree(path.parent)


def test_a_file_the_system_refuses_after_the_checks_is_one_line_exit_2(tmp_path: Path) -> None:
    """`report --out` into /proc (no check foresees every path) exits 2 naming the path, after
    the re-judged verdict was computed; not a traceback and exit 1."""
    saved = write_run(tmp_path, document(day=1))
    objectives = tmp_path / "objectives.yaml"
    objectives.write_text("objectives: ['p(99)<1s']\n")
    code, _out, err = cli("report", str(saved), "--objectives", str(objectives),
                          "--out", "/proc/slogate-none/results.json")
    assert code == 2
    assert err.splitlines()[-1] == "slogate: error: /proc/slogate-none: No such file or directory"


def test_an_unforeseen_error_exits_5_in_one_line_never_1(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug (any exception no check names) ends in one line and exit 5, since exit 1 is the
    FAIL verdict a pipeline acts on; SLOGATE_DEBUG=1 lets the traceback through."""
    @click.command()
    @_errors_to_exit_codes
    def broken() -> None:
        raise ZeroDivisionError("division by zero\nsecond line")

    result = CliRunner().invoke(broken, [], catch_exceptions=False)
    assert result.exit_code == 5
    assert result.stderr == ("slogate: internal error (a bug; SLOGATE_DEBUG=1 shows the traceback): "
                             "ZeroDivisionError: division by zero\n")
    monkeypatch.setenv("SLOGATE_DEBUG", "1")
    with pytest.raises(ZeroDivisionError):
        CliRunner().invoke(broken, [], catch_exceptions=False)
