"""Archives of past runs: a directory, or a branch of a git repository, local or on GitHub (the
I/O edge).

Where (``DEST`` of ``slogate run --archive``, ``SOURCE`` of ``slogate history``):

- a directory: scanning reads every ``*.json`` below it (``results.json`` of the default
  ``results/NAME-STAMP/`` layout, and the ``NAME/STAMP-VERDICT.json`` copies that storing writes,
  atomically). A file that is not a readable Results document is a warning line, not an error;
- ``git:PATH[#BRANCH]`` (default branch ``slogate/history``): storing commits
  ``NAME/STAMP-VERDICT.json`` onto the branch with git plumbing only (hash-object, a temporary
  index, write-tree, commit-tree, update-ref with the old value), so the working tree, the index
  and the checked-out branch are never touched, and a concurrent writer makes ``update-ref`` fail
  rather than lose a commit (then it is retried on the new tip). Reading uses ``git ls-tree`` and
  one ``git cat-file --batch``;
- ``github:OWNER/NAME[#BRANCH]`` (default branch ``slogate/history``): the same files on a branch
  of a GitHub repository, through :class:`promote.github.GitHubProvider` (its retries, its error
  translation). A missing branch is created at the head of the repository's default branch, then
  each run is one commit of the contents API; a run whose file is already there with the same
  text adds no commit. Reading lists the branch's tree once and fetches each JSON blob.

Invariants: a run found twice (the same name, start and verdict) counts once; the first source
in path order wins, and the duplicate is a warning. Plain ``git`` is the only program run. The
GitHub token is handed to the provider only; GitHub's failures become one-line HistoryErrors
naming the archive (and the HTTP status), never the token.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from analysis.errors import ResultsError
from analysis.history import start_of
from analysis.results import Results, load_results, parse_results, write_atomic
from coordinator.errors import HistoryError
from promote.errors import PromotionError

GIT_PREFIX = "git:"
GITHUB_PREFIX = "github:"
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


def safe_segment(text: str) -> str:
    """Return ``text`` as one safe path segment (no slashes, no leading dots): an experiment's
    name where it names a folder, here and in ``slogate run``'s default ``results/NAME-STAMP``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).lstrip(".-") or "run"


# What archive_path writes; on a GitHub branch (made from the default branch) other files are
# the GitOps repository's own, and are neither read nor warned about.
ARCHIVED_NAME = re.compile(r"^[A-Za-z0-9._-]+/\d{8}T\d{6}\.\d{3}Z-[A-Z]+\.json$")


def archive_path(results: Results) -> str:
    """Return the run's path inside an archive: ``NAME/YYYYMMDDTHHMMSS.mmmZ-VERDICT.json``."""
    start = start_of(results)
    stamp = start.strftime("%Y%m%dT%H%M%S.") + f"{start.microsecond // 1000:03d}Z"
    return f"{safe_segment(results.name)}/{stamp}-{results.verdict}.json"


def _commit_message(results: Results) -> str:
    """Return the message of the commit that archives ``results``."""
    return (f"slogate: {results.name} {results.verdict} "
            f"{start_of(results).strftime('%Y%m%dT%H%M%SZ')}")


def _parsed(source: str, raw: bytes) -> Results | str:
    """Return the Results document in ``raw``, or why it is not one (a warning's text)."""
    try:
        return parse_results(raw.decode("utf-8"), source=source)
    except ResultsError as exc:
        return str(exc)
    except UnicodeDecodeError:
        return f"{source}: not UTF-8 text"


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
        message = _commit_message(results)
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
        sources = [f"{self.location}:{name}" for name in names]
        return _collect([(source, _parsed(source, raw)) for source, raw
                         in zip(sources, _batch_contents(out), strict=True)])


def _batch_contents(out: bytes) -> list[bytes]:
    """Return the objects' contents from ``git cat-file --batch`` output, in order."""
    contents, at = [], 0
    while at < len(out):
        header_end = out.index(b"\n", at)
        size = int(out[at:header_end].split()[2])
        contents.append(out[header_end + 1:header_end + 1 + size])
        at = header_end + 1 + size + 1  # the content is followed by a newline
    return contents


class GitHubFiles(Protocol):
    """The GitHub calls an archive makes (:class:`promote.github.GitHubProvider` has them)."""

    repo_name: str

    def create_branch(self, branch: str) -> bool:
        """Create ``branch`` at the default branch's head unless it exists."""

    def put_file(self, branch: str, path: str, text: str, message: str) -> str | None:
        """Commit ``text`` at ``path``; return the commit, None when it was there already."""

    def read_tree(self, branch: str, keep: Callable[[str], object] = ...,
                  ) -> list[tuple[str, bytes]] | None:
        """Return (path, content) of the branch's files ``keep`` accepts; None: no branch."""


class GitHubArchive:
    """Runs as files on a branch of a GitHub repository (see the module docstring).

    Example::

        GitHubArchive(GitHubProvider("acme/gitops", token), "slogate/history").store(results)
    """

    def __init__(self, files: GitHubFiles, branch: str = DEFAULT_BRANCH) -> None:
        self.files, self.branch = files, branch
        self.location = f"{GITHUB_PREFIX}{files.repo_name}#{branch}"

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """Turn the provider's PromotionError into a HistoryError naming the archive."""
        try:
            yield
        except PromotionError as exc:
            raise HistoryError(f"{self.location}: {exc}") from None

    def store(self, results: Results) -> str:
        """Commit the run onto the branch (created if missing); return ``github:...:PATH@COMMIT``."""
        path = archive_path(results)
        with self._errors():
            self.files.create_branch(self.branch)
            commit = self.files.put_file(self.branch, path, results.to_json(),
                                         _commit_message(results))
        if commit is None:
            return f"{self.location}:{path} (already archived)"
        return f"{self.location}:{path}@{commit}"

    def scan(self) -> Scan:
        """Return every Results document on the branch, in path order."""
        with self._errors():
            files = self.files.read_tree(self.branch, ARCHIVED_NAME.match)
        if files is None:
            raise HistoryError(f"{self.location}: the branch does not exist (nothing archived "
                               "there yet)")
        sources = [(f"{self.location}:{path}", raw) for path, raw in files]
        return _collect([(source, _parsed(source, raw)) for source, raw in sources])


def _github_archive(where: str, url: str | None, token: Callable[[], str] | None) -> GitHubArchive:
    """Return the archive ``github:OWNER/NAME[#BRANCH]`` names, with ``token()`` (default:
    GITHUB_TOKEN) for the API at ``url`` (default: api.github.com)."""
    from coordinator.promote_wiring import read_secret
    from promote.github import GitHubProvider

    name, _, branch = where[len(GITHUB_PREFIX):].partition("#")
    if name.count("/") != 1 or not all(name.split("/")):
        raise HistoryError(f"{where!r}: say which repository (github:OWNER/NAME[#BRANCH])")
    secret = token() if token is not None else read_secret(
        None, "GITHUB_TOKEN", "", f"no GitHub token for {where}: set GITHUB_TOKEN")
    return GitHubArchive(GitHubProvider(name, secret, base_url=url), branch or DEFAULT_BRANCH)


def open_archive(where: str, *, github_url: str | None = None,
                 github_token: Callable[[], str] | None = None) -> Archive:
    """Return the archive ``where`` names: ``git:PATH[#BRANCH]``, ``github:OWNER/NAME[#BRANCH]``
    (with ``github_token()``, default GITHUB_TOKEN, at ``github_url``, default api.github.com)
    or a directory path. The token is read only for a ``github:`` archive."""
    if where.startswith(GITHUB_PREFIX):
        return _github_archive(where, github_url, github_token)
    if where.startswith(GIT_PREFIX):
        path, _, branch = where[len(GIT_PREFIX):].partition("#")
        if not path:
            raise HistoryError(f"{where!r}: say which repository (git:PATH[#BRANCH])")
        return GitArchive(path, branch or DEFAULT_BRANCH)
    return DirectoryArchive(where)
