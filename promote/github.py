"""The GitHub adapter: the one module of slogate that imports PyGithub (``github``).

It reads and commits files on a branch and opens or updates the promotion pull request, through
GitHub's REST API (github.com or GitHub Enterprise via ``base_url``). With ``upstream`` the
branch and its commits go to the fork (``repo``) and the pull request to the upstream, head
``<fork-owner>:<branch>``; the base branch (its files, its history, its commit that the fork
branch starts from) is then the upstream's, so the diff is against where the pull request lands.
The run archive (``github:OWNER/NAME#BRANCH``, :mod:`coordinator.archive`) uses the same provider
to create a branch, commit one file per run and read every file of the branch back.

Invariants:

- every PyGithub or transport error is translated here into :class:`PromotionError` with a
  one-line message; the token never appears in a message or a log line;
- PyGithub's own retries and request throttling are off: the backoff on 5xx, transport errors
  and rate limits is ours, and takes ``sleep`` and ``clock`` as arguments so tests pass time in;
- every operation is idempotent: running a promotion twice updates the same branch and pull
  request, an existing branch is never force-moved, and a merged or closed pull request is
  reported as it is, never reopened;
- reads (files, history, the base branch) and pull requests are of the base repository (the
  upstream when there is one); branches and commits are only ever written to ``repo``, and
  :meth:`GitHubProvider.read_tree` reads the branches it wrote, of ``repo``;
- no request leaves for a path outside ``/repos/<repo>`` and ``/repos/<upstream>`` (under the
  API URL's own path): every request PyGithub makes, URLs the server hands back and redirects
  included, passes :func:`url_error` first, which also refuses a ``.``/``..`` segment and an
  encoded dot, slash or backslash, so no name can climb into another repository the token can
  reach. (The names themselves are checked earlier, by :mod:`promote.names`.)
"""

from __future__ import annotations

import base64
import logging
import re
import time
from collections.abc import Callable, Sequence
from itertools import islice
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests
from github import Auth, Consts, Github
from github.GithubException import GithubException, RateLimitExceededException
from github.GitRef import GitRef
from github.PullRequest import PullRequest
from github.Repository import Repository

from promote.errors import PromotionError
from promote.evidence import CheckReport, Published
from promote.provider import FileCommit, PullInfo

log = logging.getLogger(__name__)

T = TypeVar("T")

_BACKOFF_S = 0.5
_CLOCK_SKEW_S = 1.0


class _Retryable(Exception):
    """An attempt failed in a way worth repeating after ``wait_s``."""

    def __init__(self, reason: str, wait_s: float) -> None:
        super().__init__(reason)
        self.reason, self.wait_s = reason, wait_s


class GitHubProvider:
    """Reads files, commits on a branch and opens or updates pull requests in one GitHub repository.

    Example::

        gh = GitHubProvider("me/gitops", token=os.environ["GITHUB_TOKEN"], upstream="acme/gitops")
        gh.ensure_branch("slogate/promote-v2", base="main")
        gh.put_file("slogate/promote-v2", "deploy/app.yaml", patched, "Promote v2")
        gh.open_or_update_pull("slogate/promote-v2", "main", "Promote v2", report_md, ["slogate"])
    """

    def __init__(self, repo: str, token: str, base_url: str | None = None, retries: int = 3, *,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.time,
                 max_wait_s: float = 60.0, timeout_s: int = 15, upstream: str | None = None) -> None:
        for name in filter(None, (repo, upstream)):
            if name.count("/") != 1 or not all(name.split("/")):
                raise PromotionError(f"repository must be given as owner/name, not {name!r}")
        if not token:
            raise PromotionError(f"no GitHub token given for {repo}")
        self.repo_name, self._token, self._retries = repo, token, retries
        self.base_name = upstream or repo
        self._owner = repo.split("/")[0]
        self._sleep, self._clock, self._max_wait_s = sleep, clock, max_wait_s
        api_url = base_url or Consts.DEFAULT_BASE_URL
        self._gh = Github(auth=Auth.Token(token), base_url=api_url,
                          timeout=timeout_s, retry=None, seconds_between_requests=None,
                          seconds_between_writes=None)
        _guard_requests(self._gh, urlsplit(api_url).path.rstrip("/"),
                        tuple(filter(None, (repo, upstream))))
        self._repos: dict[str, Repository] = {}

    # ---------------------------------------------------------------- reads

    def read_file(self, path: str, ref: str) -> str | None:
        """Return the text of ``path`` at ``ref`` (branch or sha) of the base repository, or None
        when it does not exist."""
        found = self._file(path, ref, self.base_name)
        return None if found is None else found[0]

    def file_history(self, path: str, ref: str, limit: int) -> list[FileCommit]:
        """Return the newest ``limit`` commits of ``ref`` in the base repository that changed
        ``path``, newest first."""
        repo = self._repository(self.base_name)

        def newest() -> list[FileCommit]:
            return [FileCommit(sha=c.sha, parent=c.parents[0].sha if c.parents else None,
                               subject=(c.commit.message or "").split("\n", 1)[0])
                    for c in islice(repo.get_commits(sha=ref, path=path), limit)]

        try:
            return self._call(f"listing the commits of {path} on {ref}", newest)
        except _NotFound:
            raise PromotionError(f"branch {ref} not found in {self.base_name}") from None

    def branch_sha(self, branch: str) -> str | None:
        """Return the commit sha ``branch`` points at in ``repo``, or None when there is none."""
        ref = self._ref(branch, self.repo_name)
        return None if ref is None else ref.object.sha

    def read_tree(self, branch: str, keep: Callable[[str], object] = lambda _p: True,
                  ) -> list[tuple[str, bytes]] | None:
        """Return (path, content) of every file on ``branch`` of ``repo`` whose path ``keep``
        accepts, in path order; None when the branch does not exist.

        One tree listing of the branch's commit (so a concurrent commit is all in or all out),
        then one blob request per file.
        """
        sha = self.branch_sha(branch)
        if sha is None:
            return None
        repo = self._repository(self.repo_name)
        try:
            tree = self._call(f"listing the files of {branch}",
                              lambda: repo.get_git_tree(sha, recursive=True))
        except _NotFound:
            raise PromotionError(f"commit {sha[:12]} of {branch} not found in "
                                 f"{self.repo_name}") from None
        if tree.truncated:
            raise PromotionError(f"branch {branch} of {self.repo_name} has too many files for "
                                 "one tree listing (GitHub truncated it)")
        paths = sorted((e.path, e.sha) for e in tree.tree
                       if e.type == "blob" and keep(e.path))
        return [(path, self._blob(path, blob_sha)) for path, blob_sha in paths]

    def find_pull(self, head_branch: str) -> PullInfo | None:
        """Return the newest pull request from ``head_branch`` (of ``repo``) in any state, or None."""
        found = self._find_pull(head_branch, state="all")
        return None if found is None else _info(found, created=False)

    # ---------------------------------------------------------------- writes

    def ensure_branch(self, branch: str, base: str) -> None:
        """Create ``branch`` at ``base``'s head (of the base repository) if missing; fast-forward
        it only if it has no own commits."""
        base_ref = self._ref(base, self.base_name)
        if base_ref is None:
            raise PromotionError(f"base branch {base} not found in {self.base_name}")
        base_sha = base_ref.object.sha
        ref = self._ref(branch, self.repo_name)
        if ref is None:
            self._create_ref(branch, base_sha)
        elif ref.object.sha != base_sha:
            self._fast_forward(ref, branch, base_sha)

    def create_branch(self, branch: str) -> bool:
        """Create ``branch`` in ``repo`` at the head of its default branch unless it exists;
        return whether it was created. An existing branch is never moved."""
        if self._ref(branch, self.repo_name) is not None:
            return False
        repo = self._repository(self.repo_name)
        default = self._ref(repo.default_branch, self.repo_name)
        if default is None:
            raise PromotionError(f"default branch {repo.default_branch} not found in "
                                 f"{self.repo_name}")
        self._create_ref(branch, default.object.sha)
        log.info("created branch %s of %s at %s", branch, self.repo_name, default.object.sha[:12])
        return True

    def put_file(self, branch: str, path: str, text: str, message: str) -> str | None:
        """Commit ``text`` at ``path`` on ``branch``; return the commit sha, or None when unchanged."""
        current = self._file(path, branch, self.repo_name)
        if current is not None and current[0] == text:
            return None
        repo = self._repository(self.repo_name)
        try:
            if current is None:
                done = self._call(f"creating {path} on {branch}",
                                  lambda: repo.create_file(path, message, text, branch=branch))
            else:
                blob_sha = current[1]
                done = self._call(f"updating {path} on {branch}",
                                  lambda: repo.update_file(path, message, text, blob_sha,
                                                           branch=branch))
        except _NotFound:
            raise PromotionError(f"branch {branch} not found in {self.repo_name}") from None
        except _Unprocessable as exc:  # a retried PUT that had landed, or a concurrent writer
            landed = self._file(path, branch, self.repo_name)
            if landed is not None and landed[0] == text:
                return None
            raise PromotionError(f"cannot commit {path} on {branch} in {self.repo_name}: "
                                 f"{exc}") from exc
        sha = done["commit"].sha
        log.info("committed %s on %s of %s as %s", path, branch, self.repo_name, sha[:12])
        return sha

    def open_or_update_pull(self, head: str, base: str, title: str, body: str,
                            labels: Sequence[str]) -> PullInfo:
        """Open a pull request from ``head`` (of ``repo``) into ``base`` (of the base repository),
        or update the open one; add ``labels``.

        A merged or closed pull request from ``head`` is returned as it is, never reopened.
        """
        found = self._find_pull(head, state="all")
        created = False
        if found is None:
            found, created = self._create_pull(head, base, title, body), True
        elif found.state == "open" and (found.title != title or found.body != body):
            pull = found
            self._call(f"updating pull request #{pull.number}", lambda: pull.edit(title=title, body=body))
        missing = [name for name in labels if name not in {label.name for label in found.labels}]
        if found.state == "open" and missing:
            pull = found
            self._call(f"labelling pull request #{pull.number}", lambda: pull.add_to_labels(*missing))
        info = _info(found, created=created)
        log.info("pull request #%d of %s is %s", info.number, self.base_name,
                 "merged" if info.merged else info.state)
        return info

    # ---------------------------------------------------------------- evidence

    def publish_check(self, number: int, check: CheckReport) -> Published:
        """Put ``check`` on the head commit of pull request ``number``: a check run (the one of
        that name on the commit updated in place), or a commit status when the token may not
        create check runs (GitHub answers 403 to a personal token)."""
        sha = self._pull(number).head.sha
        try:
            return self._evidence(f"the check on {sha[:12]}", lambda: self._check_run(sha, check))
        except _Forbidden:
            log.info("the token cannot create check runs in %s (HTTP 403); a commit status "
                     "instead", self.base_name)

        def status() -> Published:
            commit = self._call(f"reading commit {sha[:12]}",
                                lambda: self._repository(self.base_name).get_commit(sha))
            self._call(f"setting the status of {sha[:12]}", lambda: commit.create_status(
                check.state, target_url=check.details_url, description=check.description,
                context=check.name))
            return Published(kind="status", url=check.details_url, created=True)

        return self._evidence(f"the status of {sha[:12]}", status)

    def _evidence(self, what: str, fn: Callable[[], T]) -> T:
        """Return ``fn()``; a 404 or 422 on the way is a PromotionError naming ``what``."""
        try:
            return fn()
        except (_NotFound, _Unprocessable) as exc:
            raise PromotionError(f"cannot leave {what} in {self.base_name}: "
                                 f"{self._scrub(str(exc))}") from None

    def _check_run(self, sha: str, check: CheckReport) -> Published:
        repo = self._repository(self.base_name)
        commit = self._call(f"reading commit {sha[:12]}", lambda: repo.get_commit(sha))
        found = self._call(f"listing the check runs of {sha[:12]}", lambda: next(
            iter(commit.get_check_runs(check_name=check.name)), None))
        fields: dict[str, Any] = {
            "status": "completed", "conclusion": check.conclusion,
            "details_url": check.details_url,
            "output": {"title": check.title, "summary": check.summary}}
        if found is None:
            made = self._call(f"creating the check run {check.name}", lambda: repo.create_check_run(
                check.name, sha, **fields))
            return Published(kind="check-run", url=made.html_url, created=True)
        self._call(f"updating the check run {check.name}", lambda: found.edit(**fields))
        return Published(kind="check-run", url=found.html_url, created=False)

    def upsert_comment(self, number: int, marker: str, body: str) -> Published:
        """Edit the comment of pull request ``number`` that holds ``marker`` and was written by
        the pull request's author (slogate's token opened it), or create it; never a second."""
        return self._evidence(f"the comment on pull request #{number}",
                              lambda: self._upsert_comment(number, marker, body))

    def _upsert_comment(self, number: int, marker: str, body: str) -> Published:
        pull = self._pull(number)
        author = pull.user.login
        ours = self._call(f"listing the comments of pull request #{number}", lambda: [
            c for c in pull.get_issue_comments()
            if marker in (c.body or "") and c.user is not None and c.user.login == author])
        if not ours:
            made = self._call(f"commenting on pull request #{number}",
                              lambda: pull.create_issue_comment(body))
            return Published(kind="comment", url=made.html_url, created=True)
        oldest = min(ours, key=lambda c: c.id)
        if oldest.body != body:
            self._call(f"updating the comment on pull request #{number}",
                       lambda: oldest.edit(body))
        return Published(kind="comment", url=oldest.html_url, created=False)

    # ---------------------------------------------------------------- helpers

    def _pull(self, number: int) -> PullRequest:
        repo = self._repository(self.base_name)
        try:
            return self._call(f"reading pull request #{number}", lambda: repo.get_pull(number))
        except _NotFound:
            raise PromotionError(f"pull request #{number} not found in {self.base_name}") from None

    def _repository(self, name: str) -> Repository:
        if name not in self._repos:
            try:
                self._repos[name] = self._call(f"reading the repository {name}",
                                               lambda: self._gh.get_repo(name))
            except _NotFound:
                raise PromotionError(f"repository {name} not found") from None
        return self._repos[name]

    def _file(self, path: str, ref: str, name: str) -> tuple[str, str] | None:
        repo = self._repository(name)
        try:
            found = self._call(f"reading {path} at {ref}", lambda: repo.get_contents(path, ref=ref))
        except _NotFound:
            return None
        if isinstance(found, list) or found.type != "file":
            raise PromotionError(f"{path} at {ref} in {name} is a directory, not a file")
        return base64.b64decode(found.content or "").decode("utf-8"), found.sha

    def _blob(self, path: str, sha: str) -> bytes:
        repo = self._repository(self.repo_name)
        try:
            blob = self._call(f"reading {path}", lambda: repo.get_git_blob(sha))
        except _NotFound:
            raise PromotionError(f"blob {sha[:12]} of {path} not found in {self.repo_name}") from None
        if blob.encoding != "base64":
            return (blob.content or "").encode("utf-8")
        return base64.b64decode(blob.content or "")

    def _ref(self, branch: str, name: str) -> GitRef | None:
        repo = self._repository(name)
        try:
            return self._call(f"reading branch {branch}",
                              lambda: _completed(repo.get_git_ref(f"heads/{branch}")))
        except _NotFound:
            return None

    def _create_ref(self, branch: str, sha: str) -> None:
        repo = self._repository(self.repo_name)
        try:
            self._call(f"creating branch {branch}", lambda: repo.create_git_ref(f"refs/heads/{branch}", sha))
        except _Unprocessable as exc:  # someone created it meanwhile (or a retried POST had landed)
            if self._ref(branch, self.repo_name) is None:
                hint = (f" (the fork lacks {sha[:12]} of {self.base_name}: sync the fork)"
                        if self.base_name != self.repo_name else "")
                raise PromotionError(f"cannot create branch {branch} in {self.repo_name}: "
                                     f"{exc}{hint}") from exc

    def _fast_forward(self, ref: GitRef, branch: str, sha: str) -> None:
        try:
            self._call(f"updating branch {branch}", lambda: ref.edit(sha, force=False))
        except _Unprocessable:  # not a fast-forward: the branch has commits of its own; keep them
            log.info("branch %s of %s has its own commits; left where it is", branch, self.repo_name)

    def _find_pull(self, head: str, state: str) -> PullRequest | None:
        repo = self._repository(self.base_name)
        pulls = self._call(f"listing pull requests from {head}",
                           lambda: list(repo.get_pulls(state=state, head=f"{self._owner}:{head}")))
        if not pulls:
            return None
        newest = max(pulls, key=lambda p: p.number)
        self._call(f"reading pull request #{newest.number}", lambda: newest.merged)  # list lacks "merged"
        return newest

    def _create_pull(self, head: str, base: str, title: str, body: str) -> PullRequest:
        repo = self._repository(self.base_name)
        label = head if self.base_name == self.repo_name else f"{self._owner}:{head}"
        try:
            return self._call(f"opening a pull request from {label}",
                              lambda: repo.create_pull(base=base, head=label, title=title, body=body))
        except _Unprocessable as exc:
            found = self._find_pull(head, state="open")  # a retried POST had landed, or a race
            if found is None:
                raise PromotionError(f"cannot open a pull request from {label} into {base} "
                                     f"in {self.base_name}: {exc}") from exc
            return found

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        """Return ``fn()``, retrying 5xx, transport errors and rate limits; translate the rest."""
        attempt = 0
        while True:
            try:
                return self._attempt(what, fn)
            except _Retryable as exc:
                if attempt >= self._retries:
                    raise PromotionError(f"GitHub kept failing while {what} in {self.repo_name} "
                                         f"({exc.reason}; {attempt + 1} attempts)") from None
                wait_s = exc.wait_s if exc.wait_s > 0 else _BACKOFF_S * 2 ** attempt
                attempt += 1
                log.warning("%s while %s in %s; retry %d/%d in %.1f s", exc.reason, what,
                            self.repo_name, attempt, self._retries, wait_s)
                self._sleep(wait_s)

    def _attempt(self, what: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except GithubException as exc:
            raise self._translate(what, exc) from exc
        except requests.RequestException as exc:
            raise _Retryable(f"{type(exc).__name__}", 0.0) from None
        except RuntimeError as exc:  # PyGithub refusing a redirect to another host or scheme
            raise PromotionError(self._scrub(f"GitHub answered with a redirect slogate does not "
                                             f"follow while {what} in {self.repo_name}: {exc}")
                                 ) from None

    def _translate(self, what: str, exc: GithubException) -> Exception:
        status = exc.status
        wait_s = self._rate_limit_wait_s(exc)
        if wait_s is not None:
            return _Retryable(f"rate limited (HTTP {status})", wait_s)
        if status >= 500:
            return _Retryable(f"HTTP {status}", 0.0)
        if status == 403:
            return _Forbidden(f"GitHub refused the token (HTTP {status}) for {self.repo_name}")
        if status == 401:
            return PromotionError(f"GitHub refused the token (HTTP {status}) for {self.repo_name}")
        if status == 404:
            return _NotFound(what)
        if status == 422:
            return _Unprocessable(self._scrub(_message(exc)))
        return PromotionError(self._scrub(f"GitHub answered HTTP {status} while {what} "
                                          f"in {self.repo_name}: {_message(exc)}"))

    def _rate_limit_wait_s(self, exc: GithubException) -> float | None:
        headers = {k.lower(): v for k, v in (exc.headers or {}).items()}
        if exc.status not in (403, 429):
            return None
        if "retry-after" in headers:  # secondary rate limit
            return min(float(headers["retry-after"]), self._max_wait_s)
        if headers.get("x-ratelimit-remaining") == "0" and "x-ratelimit-reset" in headers:
            wait_s = float(headers["x-ratelimit-reset"]) - self._clock() + _CLOCK_SKEW_S
            return min(max(wait_s, _CLOCK_SKEW_S), self._max_wait_s)
        if isinstance(exc, RateLimitExceededException):
            return min(60.0, self._max_wait_s)
        return None

    def _scrub(self, text: str) -> str:
        return " ".join(text.replace(self._token, "***").split())


_ENCODED_SEPARATOR = re.compile(r"%(2e|2f|5c)", re.IGNORECASE)


def url_error(url: str, prefix: str, repositories: Sequence[str]) -> str | None:
    """Return why the request path ``url`` (with its query) must not be sent, or None when it
    lies under ``<prefix>/repos/<repository>`` of one of ``repositories`` (case-insensitive, as
    GitHub's names are) and has no dot segment, backslash or encoded dot, slash or backslash."""
    path = url.split("?", 1)[0].split("#", 1)[0]
    if "\\" in path or _ENCODED_SEPARATOR.search(path):
        return "has a backslash or an encoded dot, slash or backslash"
    if any(part in (".", "..") for part in path.split("/")):
        return "has a . or .. segment"
    lowered = path.lower()
    for repository in repositories:
        root = f"{prefix}/repos/{repository}".lower()
        if lowered == root or lowered.startswith(root + "/"):
            return None
    return f"is outside {', '.join(f'{prefix}/repos/{r}' for r in repositories)}"


def _guard_requests(gh: Github, prefix: str, repositories: tuple[str, ...]) -> None:
    """Make every request of ``gh`` pass :func:`url_error` before it is sent.

    PyGithub opens its connections through one class per requester; the guard is a subclass of
    it whose ``request`` refuses a path outside the repositories. PyGithub offers no public hook
    on the final request path (``injectConnectionClasses`` is global), hence the private
    attribute; if a PyGithub release renames it, the provider refuses to start rather than run
    unguarded.
    """
    requester = gh.requester
    attribute = "_Requester__connectionClass"
    base = getattr(requester, attribute, None)
    if base is None:
        raise PromotionError("this PyGithub release cannot be guarded (no connection class on "
                             "its requester); refusing to use it")

    class Guarded(base):  # type: ignore[misc, valid-type]
        def request(self, verb: str, url: str, *args: Any, **kwargs: Any) -> None:
            refused = url_error(url, prefix, repositories)
            if refused is not None:
                raise PromotionError(f"refused to send {verb} {url.split('?', 1)[0]} to GitHub: "
                                     f"the path {refused}")
            super().request(verb, url, *args, **kwargs)

    setattr(requester, attribute, Guarded)


class _NotFound(Exception):
    """A file, branch or pull request that does not exist (kept apart from errors)."""


class _Forbidden(PromotionError):
    """GitHub's 403: the token may not do this (a personal token creating a check run)."""


class _Unprocessable(Exception):
    """GitHub's 422: a validation failure the caller may know how to resolve."""


def _completed(ref: GitRef) -> GitRef:
    ref.object  # noqa: B018 - forces the lazy GET, so a missing branch raises here
    return ref


def _message(exc: GithubException) -> str:
    data = exc.data if isinstance(exc.data, dict) else {}
    details = [str(e.get("message") or e.get("code")) for e in data.get("errors", []) if isinstance(e, dict)]
    return "; ".join([str(data.get("message") or exc.message or ""), *details]).strip("; ")


def _info(pull: PullRequest, *, created: bool) -> PullInfo:
    return PullInfo(number=pull.number, url=pull.html_url, state=pull.state,
                    created=created, merged=bool(pull.merged))
