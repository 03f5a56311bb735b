"""Archives of past runs: a directory, or a branch of a local git repository (the I/O edge).

Where (``DEST`` of ``slogate run --archive``, ``SOURCE`` of ``slogate history``):

- a directory: scanning reads every ``*.json`` below it (``results.json`` of the default
  ``results/NAME-STAMP/`` layout, and the ``NAME/STAMP-VERDICT.json`` copies that storing writes,
  atomically). A file that is not a readable Results document is a warning line, not an error;
- ``git:PATH[#BRANCH]`` (default branch ``slogate/history``): storing commits
  ``NAME/STAMP-VERDICT.json`` onto the branch with git plumbing only (hash-object, a temporary
  index, write-tree, commit-tree, update-ref with the old value), so the working tree, the index
  and the checked-out branch are never touched, and a concurrent writer makes ``update-ref`` fail
  rather than lose a commit (then it is retried on the new tip). Reading uses ``git ls-tree`` and
  one ``git cat-file --batch``.

Invariants: a run found twice (the same name, start and verdict) counts once; the first source
in path order wins, and the duplicate is a warning. Plain ``git`` is the only program run.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from analysis.history import start_of
from analysis.results import Results, load_results, parse_results, write_atomic
from coordinator.errors import HistoryError, ResultsError

GIT_PREFIX = "git:"
DEFAULT_BRANCH = "slogate/history"
_RETRIES = 3


@dataclass(frozen=True, slots=True, kw_only=True)
class ArchivedRun:
    """A run read from an archive and where it was found (a path, or ``git:REPO#BRANCH:PATH``)."""

    source: str
    results: Results


@dataclass(frozen=True, slots=True, kw_only=True)
class Scan:
    """What scanning an archive found: runs, and one warning line per file it skipped."""

    runs: tuple[ArchivedRun, ...]
    warnings: tuple[str, ...]


class Archive(Protocol):
    """A place runs are stored in and read back from."""

    location: str

    def store(self, results: Results) -> str:
        """Store the run; return where it went."""

    def scan(self) -> Scan:
        """Return every run in the archive."""


def _segment(text: str) -> str:
    """Return ``text`` as one safe path segment (no slashes, no leading dots)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).lstrip(".-") or "run"


def archive_path(results: Results) -> str:
    """Return the run's path inside an archive: ``NAME/YYYYMMDDTHHMMSS.mmmZ-VERDICT.json``."""
    start = start_of(results)
    stamp = start.strftime("%Y%m%dT%H%M%S.") + f"{start.microsecond // 1000:03d}Z"
    return f"{_segment(results.name)}/{stamp}-{results.verdict}.json"


def _collect(found: list[tuple[str, Results | str]]) -> Scan:
    """Return a scan from (source, document or error message) pairs, duplicates dropped."""
    runs: list[ArchivedRun] = []
    warnings: list[str] = []
    seen: dict[tuple[str, str, str], str] = {}
    for source, item in found:
        if isinstance(item, str):
            warnings.append(f"skipped {item}")
            continue
        try:
            key = (item.name, start_of(item, source).isoformat(), item.verdict)
        except ResultsError as exc:
            warnings.append(f"skipped {exc}")
            continue
        if key in seen:
            warnings.append(f"skipped {source}: the same run as {seen[key]}")
            continue
        seen[key] = source
        runs.append(ArchivedRun(source=source, results=item))
    return Scan(runs=tuple(runs), warnings=tuple(warnings))


class DirectoryArchive:
    """Runs as JSON files below a directory (see the module docstring)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.location = str(self.root)

    def store(self, results: Results) -> str:
        """Write the run as ``ROOT/NAME/STAMP-VERDICT.json`` (atomically); return its path."""
        try:
            return str(write_atomic(self.root / archive_path(results), results.to_json()))
        except OSError as exc:
            raise HistoryError(f"{self.root}: cannot store the run ({exc.strerror or exc})") from None

    def scan(self) -> Scan:
        """Return every Results document below the directory, oldest path first."""
        if not self.root.is_dir():
            raise HistoryError(f"{self.root}: no such directory (the run archive)")
        found: list[tuple[str, Results | str]] = []
        for path in sorted(self.root.rglob("*.json")):
            if any(part.startswith(".") for part in path.relative_to(self.root).parts):
                continue  # hidden folders and write_atomic's temporary files
            try:
                found.append((str(path), load_results(path)))
            except ResultsError as exc:
                found.append((str(path), str(exc)))
        return _collect(found)


class GitArchive:
    """Runs as files on a branch of a local git repository (see the module docstring)."""

    def __init__(self, repo: str | Path, branch: str = DEFAULT_BRANCH) -> None:
        self.repo = Path(repo).resolve()
        self.branch = branch
        self.ref = f"refs/heads/{branch}"
        self.location = f"{GIT_PREFIX}{self.repo}#{branch}"
        if not self.repo.is_dir() or self._run("rev-parse", "--git-dir", check=False)[0] != 0:
            raise HistoryError(f"{self.repo}: not a git repository ({self.location})")
        if self._run("check-ref-format", self.ref, check=False)[0] != 0:
            raise HistoryError(f"{branch!r} is not a valid branch name ({self.location})")

    def _run(self, *args: str, check: bool = True, stdin: bytes | None = None,
             env: dict[str, str] | None = None) -> tuple[int, bytes]:
        """Run ``git -C REPO args``; return (exit status, stdout); HistoryError when it fails."""
        proc = subprocess.run(["git", "-C", str(self.repo), *args], input=stdin,
                              capture_output=True, env=env)
        if check and proc.returncode != 0:
            detail = proc.stderr.decode(errors="replace").strip().splitlines()
            verb = next(a for a in args if not a.startswith("-") and "=" not in a)
            raise HistoryError(f"git {verb} failed in {self.repo}: "
                               f"{detail[-1] if detail else f'exit status {proc.returncode}'}")
        return proc.returncode, proc.stdout

    def tip(self) -> str | None:
        """Return the branch's commit, None when the branch does not exist yet."""
        code, out = self._run("rev-parse", "--verify", "--quiet", f"{self.ref}^{{commit}}",
                              check=False)
        return out.decode().strip() if code == 0 else None

    def store(self, results: Results) -> str:
        """Commit the run onto the branch; return ``git:REPO#BRANCH:PATH@COMMIT``."""
        path = archive_path(results)
        blob = self._run("hash-object", "-w", "--stdin",
                         stdin=results.to_json().encode())[1].decode().strip()
        message = (f"slogate: {results.name} {results.verdict} "
                   f"{start_of(results).strftime('%Y%m%dT%H%M%SZ')}")
        for _ in range(_RETRIES):
            old = self.tip()
            commit = self._commit_onto(old, path, blob, message)
            if commit == old:
                return f"{self.location}:{path}@{old} (already archived)"
            code, _ = self._run("update-ref", "-m", message, self.ref, commit, old or "",
                                check=False)
            if code == 0:
                return f"{self.location}:{path}@{commit}"
        raise HistoryError(f"{self.location}: the branch kept moving while storing the run "
                           f"({_RETRIES} tries)")

    def _commit_onto(self, old: str | None, path: str, blob: str, message: str) -> str:
        """Return a commit of ``old``'s tree plus ``path`` = ``blob`` (``old`` when unchanged)."""
        from promote.local_git import identity

        with tempfile.TemporaryDirectory(prefix="slogate-index-") as tmp:
            env = {**os.environ, "GIT_INDEX_FILE": str(Path(tmp) / "index")}
            self._run("read-tree", *([old] if old else ["--empty"]), env=env)
            self._run("update-index", "--add", "--cacheinfo", f"100644,{blob},{path}", env=env)
            tree = self._run("write-tree", env=env)[1].decode().strip()
        if old and self._run("rev-parse", f"{old}^{{tree}}")[1].decode().strip() == tree:
            return old
        parents = ["-p", old] if old else []
        return self._run(*identity(self.repo), "commit-tree", tree, *parents, "-m",
                         message)[1].decode().strip()

    def scan(self) -> Scan:
        """Return every Results document on the branch, in path order."""
        if self.tip() is None:
            raise HistoryError(f"{self.location}: the branch does not exist (nothing archived "
                               "there yet)")
        names = [n for n in self._run("ls-tree", "-r", "-z", "--name-only", self.ref)[1]
                 .decode().split("\0") if n.endswith(".json")]
        request = "".join(f"{self.ref}:{n}\n" for n in names).encode()
        out = self._run("cat-file", "--batch", stdin=request)[1] if names else b""
        found: list[tuple[str, Results | str]] = []
        for name, text in zip(names, _batch_contents(out), strict=True):
            source = f"{self.location}:{name}"
            try:
                found.append((source, parse_results(text.decode("utf-8"), source=source)))
            except (ResultsError, UnicodeDecodeError) as exc:
                found.append((source, str(exc) if isinstance(exc, ResultsError)
                              else f"{source}: not UTF-8 text"))
        return _collect(found)


def _batch_contents(out: bytes) -> list[bytes]:
    """Return the objects' contents from ``git cat-file --batch`` output, in order."""
    contents, at = [], 0
    while at < len(out):
        header_end = out.index(b"\n", at)
        size = int(out[at:header_end].split()[2])
        contents.append(out[header_end + 1:header_end + 1 + size])
        at = header_end + 1 + size + 1  # the content is followed by a newline
    return contents


def open_archive(where: str) -> Archive:
    """Return the archive ``where`` names: ``git:PATH[#BRANCH]`` or a directory path."""
    if where.startswith(GIT_PREFIX):
        path, _, branch = where[len(GIT_PREFIX):].partition("#")
        if not path:
            raise HistoryError(f"{where!r}: say which repository (git:PATH[#BRANCH])")
        return GitArchive(path, branch or DEFAULT_BRANCH)
    return DirectoryArchive(where)
