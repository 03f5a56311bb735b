"""An in-process GitHub REST v3 emulator backed by real bare git repositories, for PyGithub tests.

It speaks real HTTP on 127.0.0.1 (an aiohttp app on an event loop of its own, in a daemon thread),
so PyGithub runs unchanged against it. Branches, refs, file contents and commits live in a real
bare repository made with the ``git`` CLI, so tests read the results back with ``git`` itself.
Pull requests and labels are kept in memory, as GitHub keeps them outside git. A fork
(:meth:`GitHubEmulator.add_fork`) is a second repository on the same server, a ``git clone --bare
--shared`` of the upstream (objects shared, as in a GitHub fork network); pull requests on the
upstream take a head from a fork as ``owner:branch``, as GitHub does.

Invariants:

- every request is recorded (method, path, query, whether it carried the token, raw body) before
  anything else happens, so a test sees the calls that were refused too;
- a request without ``Authorization: token <T>`` / ``Bearer <T>`` gets 401 "Bad credentials";
- :meth:`GitHubEmulator.fail_next` makes the next N calls of one endpoint answer 500, or 403 with
  the primary rate-limit headers, without touching the repository (or, ``after_handling``, after
  doing what was asked: a write that landed but whose answer was lost);
- :meth:`GitHubEmulator.redirect_next` makes the next call of one endpoint answer a redirect
  (GitHub's 301 for a renamed repository) to any location;
- every URL in a response starts with the base URL, as PyGithub refuses to follow any other;
- a request path is percent-decoded and its ``.`` and ``..`` segments collapsed (RFC 3986
  remove_dot_segments) before it is routed, as the HTTP stacks in front of real servers do, so
  ``/repos/acme/gitops/contents/../../../victim/gitops/contents/x`` reaches ``victim/gitops``;
- a fork shares the request log, the injected failures, the lock and the token of its upstream;
- check runs, commit statuses and issue comments answer GitHub's JSON (ids, URLs, the
  ``total_count``/``check_runs`` list shape); with ``check_runs_need_app`` every check-run call
  answers 403 "You must authenticate via a GitHub App." as GitHub does to a personal token.

Usage::

    with github_emulator(tmp_path, {"deploy/app.yaml": "image: v1\\n"}) as gh:
        Github(base_url=gh.base_url, auth=Auth.Token(gh.token)).get_repo(gh.full_name)
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import json
import os
import re
import subprocess
import tempfile
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

_TIME = "2026-01-01T00:00:00Z"
_CONCLUSIONS = ("action_required", "cancelled", "failure", "neutral", "success", "skipped",
                "stale", "timed_out")
_OUTPUT_MAX_CHARS = 65535  # GitHub's limit on a check run's output.summary and output.text
_COMMENT_MAX_CHARS = 65536
_STATUS_DESCRIPTION_MAX_CHARS = 140


@dataclass(frozen=True, slots=True, kw_only=True)
class Recorded:
    """One request as the emulator received it."""

    method: str
    path: str
    query: str
    endpoint: str
    authorized: bool
    body: bytes


@dataclass(slots=True, kw_only=True)
class _Failure:
    status: int
    remaining: int
    reset_epoch: int | None
    after: bool = False
    location: str | None = None


@dataclass(slots=True, kw_only=True)
class _Pull:
    number: int
    head_owner: str
    head: str
    base: str
    title: str
    body: str | None
    state: str = "open"
    merged: bool = False
    merge_commit_sha: str | None = None
    labels: list[str] = field(default_factory=list)


@dataclass(slots=True, kw_only=True)
class CheckRun:
    """A check run as the emulator keeps it (the JSON GitHub answers is built from it)."""

    id: int
    name: str
    head_sha: str
    status: str
    conclusion: str | None
    details_url: str | None
    output: dict[str, Any]


@dataclass(slots=True, kw_only=True)
class Status:
    """A commit status (newest last per sha)."""

    id: int
    sha: str
    state: str
    context: str
    description: str | None
    target_url: str | None


@dataclass(slots=True, kw_only=True)
class Comment:
    """An issue (pull request) comment."""

    id: int
    number: int
    body: str
    login: str


def git(repo: Path, *args: str, stdin: bytes | None = None,
        env: Mapping[str, str] | None = None, check: bool = True) -> str:
    """Run ``git`` in ``repo`` and return its stdout, stripped."""
    full_env = {**os.environ, "GIT_AUTHOR_NAME": "emulator", "GIT_AUTHOR_EMAIL": "emu@example.com",
                "GIT_COMMITTER_NAME": "emulator", "GIT_COMMITTER_EMAIL": "emu@example.com",
                **(env or {})}
    done = subprocess.run(["git", "-C", str(repo), *args], input=stdin, env=full_env,
                          capture_output=True, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)}: {done.stderr.decode().strip()}")
    return done.stdout.decode().strip()


class GitHubEmulator:
    """The emulated GitHub: repository ``owner/name`` in a real bare git repository (and its
    forks, from :meth:`add_fork`)."""

    def __init__(self, root: Path, files: Mapping[str, str], *, owner: str = "acme",
                 name: str = "gitops", token: str = "ghp_emulatorSecretToken0123456789",
                 default_branch: str = "main") -> None:
        self.owner, self.name, self.token = owner, name, token
        self.default_branch = default_branch
        self.full_name = f"{owner}/{name}"
        self.bare = root / f"{name}.git"
        self.base_url = ""
        self.parent: GitHubEmulator | None = None
        self.requests: list[Recorded] = []
        self._pulls: dict[int, _Pull] = {}
        self._next_number = 1
        self._failures: dict[str, list[_Failure]] = {}
        self._lock = threading.Lock()
        self._endpoints: dict[tuple[str, str], tuple[str, str]] = {}
        self._repos: dict[str, GitHubEmulator] = {self.full_name: self}
        self.check_runs: dict[int, CheckRun] = {}
        self.statuses: list[Status] = []
        self.comments: dict[int, Comment] = {}
        self.check_runs_need_app = False
        self._next_id = 1
        self._seed(root, files)

    # ---------------------------------------------------------------- set-up and test helpers

    def add_fork(self, owner: str, *, shared: bool = True) -> GitHubEmulator:
        """Return the fork ``owner/<name>`` of this repository, served by the same server.

        ``shared`` (as GitHub's fork network): the fork sees every object of the upstream, the
        commits made after the fork included; without it the fork has the objects of the moment
        it was made only (a fork that is behind).
        """
        fork = copy.copy(self)  # shares token, request log, failures, lock and repository table
        fork.owner, fork.full_name, fork.parent = owner, f"{owner}/{self.name}", self
        fork.bare = self.bare.parent / f"{owner}.{self.name}.git"
        fork._pulls, fork._next_number = {}, 1
        fork.check_runs, fork.statuses, fork.comments, fork._next_id = {}, [], {}, 1
        git(self.bare.parent, "clone", "--bare", "-q", *(["--shared"] if shared else []),
            str(self.bare), str(fork.bare))
        self._repos[fork.full_name] = fork
        return fork

    def commit(self, branch: str, files: Mapping[str, str], message: str = "commit") -> str:
        """Commit ``files`` (path -> text) on ``branch``, creating it at the default branch's
        head if missing; return the new commit's sha."""
        if self.branch_sha(branch) is None:
            self.create_branch(branch, self.branch_sha(self.default_branch) or "")
        sha = ""
        for path, text in files.items():
            sha = self._commit_file(branch, path, text.encode(), message)
        return sha

    def create_branch(self, branch: str, sha: str) -> None:
        """Point the new ``branch`` at commit ``sha`` (as a push would)."""
        git(self.bare, "update-ref", f"refs/heads/{branch}", sha, "0" * 40)

    def refs(self) -> dict[str, str]:
        """Return every branch of this repository and the commit it points at."""
        out = git(self.bare, "for-each-ref", "--format=%(refname:short) %(objectname)", "refs/heads")
        return dict(line.split(" ", 1) for line in out.splitlines())

    def _seed(self, root: Path, files: Mapping[str, str]) -> None:
        git(root, "init", "--bare", "-q", f"--initial-branch={self.default_branch}", str(self.bare))
        index = {"GIT_INDEX_FILE": str(root / "seed.index")}
        for path, text in files.items():
            blob = git(self.bare, "hash-object", "-w", "--stdin", stdin=text.encode())
            git(self.bare, "update-index", "--add", "--cacheinfo", f"100644,{blob},{path}", env=index)
        tree = git(self.bare, "write-tree", env=index)
        commit = git(self.bare, "commit-tree", tree, "-m", "seed")
        git(self.bare, "update-ref", f"refs/heads/{self.default_branch}", commit)

    def fail_next(self, endpoint: str, count: int, *, status: int = 500,
                  rate_limit_reset_epoch: int | None = None, after_handling: bool = False) -> None:
        """Make the next ``count`` calls of ``endpoint`` (e.g. ``"POST pulls"``) fail with ``status``.

        With ``rate_limit_reset_epoch`` the answer is GitHub's primary rate-limit 403; with
        ``after_handling`` the request is carried out first and only its answer is the failure.
        """
        with self._lock:
            self._failures.setdefault(endpoint, []).append(
                _Failure(status=status, remaining=count, reset_epoch=rate_limit_reset_epoch,
                         after=after_handling))

    def redirect_next(self, endpoint: str, location: str, *, status: int = 301) -> None:
        """Make the next call of ``endpoint`` answer ``status`` with ``Location: location``
        (as GitHub does for a renamed repository), without touching the repository."""
        with self._lock:
            self._failures.setdefault(endpoint, []).append(
                _Failure(status=status, remaining=1, reset_epoch=None, location=location))

    def calls(self, endpoint: str) -> int:
        """Return how many requests of ``endpoint`` were received (refused ones included)."""
        return sum(1 for r in self.requests if r.endpoint == endpoint)

    def merge_pull(self, number: int) -> str:
        """Merge pull ``number`` as GitHub's merge button does: a merge commit on the base branch
        (a fork's head is fetched first, as GitHub keeps it in ``refs/pull/<number>/head``)."""
        pull = self._pulls[number]
        head_repo = self._head_repo(pull.head_owner)
        assert head_repo is not None
        if head_repo is not self:
            git(self.bare, "fetch", "-q", str(head_repo.bare),
                f"+refs/heads/{pull.head}:refs/pull/{number}/head")
        base_sha, head_sha = self.branch_sha(pull.base), head_repo.branch_sha(pull.head)
        assert base_sha and head_sha
        tree = git(self.bare, "rev-parse", f"{head_sha}^{{tree}}")
        merge = git(self.bare, "commit-tree", tree, "-p", base_sha, "-p", head_sha,
                    "-m", f"Merge pull request #{number}")
        git(self.bare, "update-ref", f"refs/heads/{pull.base}", merge, base_sha)
        pull.state, pull.merged, pull.merge_commit_sha = "closed", True, merge
        return merge

    def close_pull(self, number: int) -> None:
        """Close pull ``number`` without merging it."""
        self._pulls[number].state = "closed"

    def pull_labels(self, number: int) -> list[str]:
        """Return the label names of pull ``number``."""
        return list(self._pulls[number].labels)

    def pull_text(self, number: int) -> tuple[str, str | None]:
        """Return the title and body of pull ``number``."""
        return self._pulls[number].title, self._pulls[number].body

    def add_comment(self, number: int, body: str, *, login: str) -> int:
        """Post ``body`` on pull ``number`` as the user ``login`` (someone else); return its id."""
        comment = Comment(id=self._new_id(), number=number, body=body, login=login)
        self.comments[comment.id] = comment
        return comment.id

    def comments_on(self, number: int) -> list[Comment]:
        """Return the comments on pull ``number``, oldest first."""
        return [c for c in self.comments.values() if c.number == number]

    def checks_on(self, sha: str) -> list[CheckRun]:
        """Return the check runs on commit ``sha``, oldest first."""
        return [c for c in self.check_runs.values() if c.head_sha == sha]

    def statuses_on(self, sha: str) -> list[Status]:
        """Return the commit statuses of ``sha``, oldest first."""
        return [s for s in self.statuses if s.sha == sha]

    def pull_head(self, number: int) -> str:
        """Return the commit the head branch of pull ``number`` points at."""
        pull = self._pulls[number]
        head_repo = self._head_repo(pull.head_owner)
        assert head_repo is not None
        sha = head_repo.branch_sha(pull.head)
        assert sha is not None
        return sha

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id - 1

    def pull_count(self) -> int:
        """Return how many pull requests exist, in any state."""
        return len(self._pulls)

    def branch_sha(self, branch: str) -> str | None:
        """Return the commit ``branch`` points at in the bare repository, or None."""
        out = git(self.bare, "rev-parse", "--verify", "-q", f"refs/heads/{branch}", check=False)
        return out or None

    # ---------------------------------------------------------------- JSON shapes

    def _api(self, tail: str = "") -> str:
        return f"{self.base_url}/repos/{self.full_name}{tail}"

    def _html(self, tail: str = "") -> str:
        return f"{self.base_url.removesuffix('/api/v3')}/{self.full_name}{tail}"

    def _user(self) -> dict[str, Any]:
        return {"login": self.owner, "id": 1, "type": "User", "url": f"{self.base_url}/users/{self.owner}",
                "html_url": self._html().rsplit("/", 1)[0]}

    def _repo_json(self) -> dict[str, Any]:
        number = list(self._repos).index(self.full_name) + 1
        out: dict[str, Any] = {
            "id": number, "node_id": f"R_{number}", "name": self.name, "full_name": self.full_name,
            "owner": self._user(), "private": True, "default_branch": self.default_branch,
            "url": self._api(), "html_url": self._html(), "archived": False,
            "fork": self.parent is not None,
            "permissions": {"admin": False, "push": True, "pull": True}}
        if self.parent is not None:
            out["parent"] = out["source"] = self.parent._repo_json()
        return out

    def _commit_json(self, sha: str) -> dict[str, Any]:
        return {"sha": sha, "node_id": f"C_{sha}", "url": self._api(f"/commits/{sha}"),
                "html_url": self._html(f"/commit/{sha}")}

    def _ref_json(self, branch: str, sha: str) -> dict[str, Any]:
        return {"ref": f"refs/heads/{branch}", "node_id": f"REF_{branch}",
                "url": self._api(f"/git/refs/heads/{branch}"),
                "object": {"sha": sha, "type": "commit", "url": self._api(f"/git/commits/{sha}")}}

    def _side(self, branch: str) -> dict[str, Any]:
        return {"label": f"{self.owner}:{branch}", "ref": branch, "sha": self.branch_sha(branch) or "",
                "user": self._user(), "repo": self._repo_json()}

    def _label_json(self, label: str) -> dict[str, Any]:
        return {"name": label, "color": "ededed", "url": self._api(f"/labels/{label}")}

    def _pull_json(self, pull: _Pull, *, full: bool) -> dict[str, Any]:
        out = {"id": pull.number, "node_id": f"PR_{pull.number}", "number": pull.number,
               "url": self._api(f"/pulls/{pull.number}"), "html_url": self._html(f"/pull/{pull.number}"),
               "issue_url": self._api(f"/issues/{pull.number}"), "state": pull.state,
               "title": pull.title, "body": pull.body, "draft": False, "locked": False,
               "user": self._user(), "base": self._side(pull.base),
               "head": (self._head_repo(pull.head_owner) or self)._side(pull.head),
               "labels": [self._label_json(name) for name in pull.labels],
               "created_at": _TIME, "updated_at": _TIME,
               "merged_at": _TIME if pull.merged else None, "merge_commit_sha": pull.merge_commit_sha}
        if full:  # like GitHub, only the single-pull answer carries "merged"
            out.update({"merged": pull.merged, "mergeable": None, "comments": 0, "commits": 1})
        return out

    def _commit_list_json(self, sha: str, parents: list[str], tree: str, message: str) -> dict[str, Any]:
        person = {"name": "emulator", "email": "emu@example.com", "date": _TIME}
        return {**self._commit_json(sha), "comments_url": self._api(f"/commits/{sha}/comments"),
                "commit": {"url": self._api(f"/git/commits/{sha}"), "message": message,
                           "author": person, "committer": person, "comment_count": 0,
                           "tree": {"sha": tree, "url": self._api(f"/git/trees/{tree}")}},
                "author": None, "committer": None,
                "parents": [self._commit_json(p) for p in parents]}

    # ---------------------------------------------------------------- git plumbing

    def _head_repo(self, owner: str) -> GitHubEmulator | None:
        """Return this repository (``owner`` is its own) or its fork owned by ``owner``."""
        return next((r for r in self._repos.values()
                     if r.owner == owner and (r is self or r.parent is self)), None)

    def _resolve(self, ref: str) -> str | None:
        for name in (f"refs/heads/{ref}", ref):
            out = git(self.bare, "rev-parse", "--verify", "-q", f"{name}^{{commit}}", check=False)
            if out:
                return out
        return None

    def _object_at(self, commit: str, path: str) -> tuple[str, str] | None:
        out = git(self.bare, "ls-tree", commit, "--", path, check=False)
        if not out:
            return None
        meta = out.split("\t", 1)[0].split()
        return meta[1], meta[2]  # (type, sha)

    def _commit_file(self, branch: str, path: str, text: bytes, message: str) -> str:
        parent = self.branch_sha(branch)
        assert parent is not None
        blob = git(self.bare, "hash-object", "-w", "--stdin", stdin=text)
        with tempfile.TemporaryDirectory() as tmp:
            env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
            git(self.bare, "read-tree", parent, env=env)
            git(self.bare, "update-index", "--add", "--cacheinfo", f"100644,{blob},{path}", env=env)
            tree = git(self.bare, "write-tree", env=env)
        commit = git(self.bare, "commit-tree", tree, "-p", parent, "-m", message)
        git(self.bare, "update-ref", f"refs/heads/{branch}", commit, parent)
        return commit

    # ---------------------------------------------------------------- routing

    def app(self) -> web.Application:
        """Return the aiohttp application serving the emulated endpoints."""
        repo = r"/api/v3/repos/{owner}/{repo}"
        routes = [
            ("GET", "/api/v3/user", "user", self._get_user),
            ("GET", "/api/v3/rate_limit", "rate_limit", self._get_rate_limit),
            ("GET", repo, "repo", self._get_repo),
            ("GET", repo + "/branches/{branch:.+}", "branch", self._get_branch),
            ("GET", repo + "/git/ref/heads/{branch:.+}", "ref", self._get_ref),
            ("GET", repo + "/git/refs/heads/{branch:.+}", "ref", self._get_ref),
            ("POST", repo + "/git/refs", "refs", self._post_ref),
            ("PATCH", repo + "/git/refs/heads/{branch:.+}", "ref", self._patch_ref),
            ("GET", repo + "/commits", "commits", self._list_commits),
            ("GET", repo + "/git/trees/{sha}", "tree", self._get_tree),
            ("GET", repo + "/git/blobs/{sha}", "blob", self._get_blob),
            ("GET", repo + "/contents/{path:.+}", "contents", self._get_contents),
            ("PUT", repo + "/contents/{path:.+}", "contents", self._put_contents),
            ("GET", repo + "/pulls", "pulls", self._list_pulls),
            ("POST", repo + "/pulls", "pulls", self._post_pull),
            ("GET", repo + "/pulls/{number:\\d+}", "pull", self._get_pull),
            ("PATCH", repo + "/pulls/{number:\\d+}", "pull", self._patch_pull),
            ("GET", repo + "/issues/{number:\\d+}/labels", "labels", self._get_labels),
            ("POST", repo + "/issues/{number:\\d+}/labels", "labels", self._post_labels),
            ("GET", repo + "/commits/{sha}", "commit", self._get_commit),
            ("POST", repo + "/check-runs", "check-runs", self._post_check_run),
            ("PATCH", repo + "/check-runs/{id:\\d+}", "check-run", self._patch_check_run),
            ("GET", repo + "/commits/{sha}/check-runs", "check-runs", self._list_check_runs),
            ("POST", repo + "/statuses/{sha}", "statuses", self._post_status),
            ("GET", repo + "/commits/{sha}/statuses", "statuses", self._list_statuses),
            ("GET", repo + "/issues/{number:\\d+}/comments", "comments", self._list_comments),
            ("POST", repo + "/issues/{number:\\d+}/comments", "comments", self._post_comment),
            ("PATCH", repo + "/issues/comments/{id:\\d+}", "comment", self._patch_comment),
        ]
        app = web.Application(middlewares=[self._middleware])
        for method, path, endpoint, handler in routes:
            route = app.router.add_route(method, path, handler)
            self._endpoints[(method, route.resource.canonical)] = (f"{method} {endpoint}",
                                                                   handler.__name__)
        return app

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        body = await request.read()
        collapsed = _remove_dot_segments(request.path)
        if collapsed != request.path:
            request = await _rerouted(request, collapsed)
        resource = request.match_info.route.resource
        canonical = resource.canonical if resource is not None else request.path
        endpoint, name = self._endpoints.get((request.method, canonical), (f"{request.method} ?", ""))
        header = request.headers.get("Authorization", "")
        authorized = header in (f"token {self.token}", f"Bearer {self.token}")
        self.requests.append(Recorded(method=request.method, path=request.path,
                                      query=request.query_string, endpoint=endpoint,
                                      authorized=authorized, body=body))
        if not authorized:
            return _error(401, "Bad credentials")
        if not name:
            return _error(404, "Not Found")
        injected = self._take_failure(endpoint)
        if injected is not None:
            return injected
        target = self._repos.get(f"{request.match_info['owner']}/{request.match_info['repo']}") \
            if "owner" in request.match_info else self
        if target is None:
            return _error(404, "Not Found")
        try:
            with self._lock:  # the repository in the URL answers: the upstream or a fork
                response = await getattr(target, name)(request, json.loads(body) if body else None)
            return self._take_failure(endpoint, after=True) or response
        except web.HTTPException as exc:
            if exc.status >= 400:
                return _error(exc.status, exc.reason)
            raise

    def _take_failure(self, endpoint: str, *, after: bool = False) -> web.Response | None:
        with self._lock:
            queue = self._failures.get(endpoint, [])
            if not queue or queue[0].after != after:
                return None
            failure = queue[0]
            failure.remaining -= 1
            if failure.remaining <= 0:
                queue.pop(0)
        if failure.location is not None:
            return web.json_response({"message": "Moved Permanently", "url": failure.location},
                                     status=failure.status, headers={"Location": failure.location})
        if failure.reset_epoch is not None:
            headers = {"X-RateLimit-Limit": "5000", "X-RateLimit-Remaining": "0",
                       "X-RateLimit-Used": "5000", "X-RateLimit-Reset": str(failure.reset_epoch)}
            return _error(failure.status, "API rate limit exceeded for user ID 1.", headers=headers)
        return _error(failure.status, "Server Error")

    # ---------------------------------------------------------------- handlers

    async def _get_user(self, request: web.Request, _: Any) -> web.Response:
        return web.json_response(self._user())

    async def _get_rate_limit(self, request: web.Request, _: Any) -> web.Response:
        core = {"limit": 5000, "remaining": 5000, "reset": 0, "used": 0}
        return web.json_response({"resources": {"core": core}, "rate": core})

    async def _get_repo(self, request: web.Request, _: Any) -> web.Response:
        return web.json_response(self._repo_json())

    async def _get_branch(self, request: web.Request, _: Any) -> web.Response:
        branch = request.match_info["branch"]
        sha = self.branch_sha(branch)
        if sha is None:
            return _error(404, "Branch not found")
        return web.json_response({"name": branch, "commit": self._commit_json(sha), "protected": False,
                                  "_links": {"self": self._api(f"/branches/{branch}"),
                                             "html": self._html(f"/tree/{branch}")}})

    async def _get_ref(self, request: web.Request, _: Any) -> web.Response:
        branch = request.match_info["branch"]
        sha = self.branch_sha(branch)
        if sha is None:
            return _error(404, "Not Found")
        return web.json_response(self._ref_json(branch, sha))

    async def _post_ref(self, request: web.Request, data: Any) -> web.Response:
        ref, sha = str(data.get("ref", "")), str(data.get("sha", ""))
        if not ref.startswith("refs/heads/") or ref.count("/") < 2:
            return _error(422, "Reference name is not valid")
        branch = ref.removeprefix("refs/heads/")
        if self.branch_sha(branch) is not None:
            return _error(422, "Reference already exists")
        if not re.fullmatch(r"[0-9a-f]{40}", sha) or self._resolve(sha) != sha:
            return _error(422, "Object does not exist")
        git(self.bare, "update-ref", ref, sha, "0" * 40)
        return web.json_response(self._ref_json(branch, sha), status=201)

    async def _patch_ref(self, request: web.Request, data: Any) -> web.Response:
        branch = request.match_info["branch"]
        old, new = self.branch_sha(branch), str(data.get("sha", ""))
        if old is None:
            return _error(422, "Reference does not exist")
        if self._resolve(new) != new:
            return _error(422, "Object does not exist")
        fast_forward = subprocess.run(["git", "-C", str(self.bare), "merge-base", "--is-ancestor",
                                       old, new], check=False).returncode == 0
        if not fast_forward and not data.get("force", False):
            return _error(422, "Update is not a fast forward")
        git(self.bare, "update-ref", f"refs/heads/{branch}", new, old)
        return web.json_response(self._ref_json(branch, new))

    async def _get_contents(self, request: web.Request, _: Any) -> web.Response:
        path = request.match_info["path"].strip("/")
        ref = request.query.get("ref", self.default_branch)
        commit = self._resolve(ref)
        found = self._object_at(commit, path) if commit else None
        if found is None:
            return _error(404, "Not Found" if commit else f"No commit found for the ref {ref}")
        kind, sha = found
        if kind == "tree":
            entries = git(self.bare, "ls-tree", sha).splitlines()
            return web.json_response([self._content_json(f"{path}/{line.split(chr(9))[1]}",
                                                         line.split()[2], with_content=False,
                                                         kind="dir" if line.split()[1] == "tree" else "file")
                                      for line in entries])
        return web.json_response(self._content_json(path, sha, with_content=True, kind="file"))

    def _content_json(self, path: str, sha: str, *, with_content: bool, kind: str) -> dict[str, Any]:
        out: dict[str, Any] = {"type": kind, "name": path.rsplit("/", 1)[-1], "path": path, "sha": sha,
                               "url": self._api(f"/contents/{path}"),
                               "html_url": self._html(f"/blob/{self.default_branch}/{path}"),
                               "git_url": self._api(f"/git/blobs/{sha}")}
        if kind == "file":
            raw = subprocess.run(["git", "-C", str(self.bare), "cat-file", "blob", sha],
                                 capture_output=True, check=True).stdout
            out["size"] = len(raw)
            if with_content:
                out["encoding"] = "base64"
                out["content"] = base64.encodebytes(raw).decode()  # GitHub wraps at 60 columns too
        return out

    async def _put_contents(self, request: web.Request, data: Any) -> web.Response:
        path = request.match_info["path"].strip("/")
        branch = str(data.get("branch") or self.default_branch)
        if not data.get("message") or "content" not in data:
            return _error(422, "Invalid request.\n\n\"message\" and \"content\" are required.")
        head = self.branch_sha(branch)
        if head is None:
            return _error(404, f"Branch {branch} not found")
        found = self._object_at(head, path)
        if found is not None and found[0] != "blob":
            return _error(422, f"{path} is a directory")
        if found is not None and "sha" not in data:
            return _error(422, "Invalid request.\n\n\"sha\" wasn't supplied.")
        if found is not None and data["sha"] != found[1]:
            return _error(409, f"{path} does not match {data['sha']}")
        commit = self._commit_file(branch, path, base64.b64decode(data["content"]), str(data["message"]))
        blob = self._object_at(commit, path)
        assert blob is not None
        content = self._content_json(path, blob[1], with_content=False, kind="file")
        return web.json_response({"content": content,
                                  "commit": {**self._commit_json(commit), "message": data["message"]}},
                                 status=200 if found else 201)

    async def _list_commits(self, request: web.Request, _: Any) -> web.Response:
        ref = request.query.get("sha", self.default_branch)
        commit = self._resolve(ref)
        if commit is None:
            return _error(404, f"No commit found for SHA: {ref}")
        path = request.query.get("path")
        per_page = min(int(request.query.get("per_page", 30)), 100)
        page = int(request.query.get("page", 1))
        out = git(self.bare, "log", "--format=%H%x00%P%x00%T%x00%B%x1e", commit,
                  *(["--", path] if path else []))
        records = [r.strip("\n") for r in out.split("\x1e") if r.strip("\n")]
        found = []
        for record in records[(page - 1) * per_page: page * per_page]:
            sha, parents, tree, message = record.split("\0", 3)
            found.append(self._commit_list_json(sha, parents.split(), tree, message.strip()))
        headers = {}
        if page * per_page < len(records):  # GitHub pages with a Link header; PyGithub follows it
            query = urlencode({**request.query, "page": page + 1, "per_page": per_page})
            headers["Link"] = f'<{self._api("/commits")}?{query}>; rel="next"'
        return web.json_response(found, headers=headers)

    async def _get_tree(self, request: web.Request, _: Any) -> web.Response:
        """GitHub's tree of a tree, commit or branch; ``recursive`` lists every level (the
        entries of sub-trees included, as GitHub does), never truncated here."""
        wanted = request.match_info["sha"]
        tree = git(self.bare, "rev-parse", "--verify", "-q", f"{wanted}^{{tree}}", check=False)
        if not tree:
            return _error(404, "Not Found")
        recursive = request.query.get("recursive") not in (None, "", "0", "false")
        out = git(self.bare, "ls-tree", "-z", "--long", *(["-r", "-t"] if recursive else []), tree)
        entries = []
        for line in filter(None, out.split("\0")):
            meta, path = line.split("\t", 1)
            mode, kind, sha, size = meta.split()
            entry = {"path": path, "mode": mode, "type": kind, "sha": sha,
                     "url": self._api(f"/git/{kind}s/{sha}")}
            if kind == "blob":
                entry["size"] = int(size)
            entries.append(entry)
        return web.json_response({"sha": tree, "url": self._api(f"/git/trees/{tree}"),
                                  "tree": entries, "truncated": False})

    async def _get_blob(self, request: web.Request, _: Any) -> web.Response:
        sha = request.match_info["sha"]
        kind = git(self.bare, "cat-file", "-t", sha, check=False) if re.fullmatch(
            r"[0-9a-f]{40}", sha) else ""
        if kind != "blob":
            return _error(404, "Not Found")
        raw = subprocess.run(["git", "-C", str(self.bare), "cat-file", "blob", sha],
                             capture_output=True, check=True).stdout
        return web.json_response({"sha": sha, "node_id": f"B_{sha}", "size": len(raw),
                                  "url": self._api(f"/git/blobs/{sha}"), "encoding": "base64",
                                  "content": base64.encodebytes(raw).decode()})

    def _matches(self, pull: _Pull, query: Mapping[str, str]) -> bool:
        state = query.get("state", "open")
        head = query.get("head")
        if head is not None and head != f"{pull.head_owner}:{pull.head}":
            return False
        if "base" in query and query["base"] != pull.base:
            return False
        return state == "all" or state == pull.state

    async def _list_pulls(self, request: web.Request, _: Any) -> web.Response:
        found = [self._pull_json(p, full=False) for p in self._pulls.values()
                 if self._matches(p, request.query)]
        return web.json_response(found)

    async def _post_pull(self, request: web.Request, data: Any) -> web.Response:
        owner, _, head = str(data.get("head", "")).rpartition(":")
        owner, base = owner or self.owner, str(data.get("base", ""))
        if not data.get("title"):
            return _validation("PullRequest", "missing_field", "title")
        head_repo = self._head_repo(owner)  # this repository, or its fork owned by ``owner``
        head_sha = head_repo.branch_sha(head) if head_repo is not None else None
        if head_sha is None or self.branch_sha(base) is None:
            return _validation("PullRequest", "invalid", "head" if head_sha is None else "base")
        if any(p.head_owner == owner and p.head == head and p.base == base and p.state == "open"
               for p in self._pulls.values()):
            return _validation("PullRequest", "custom", None,
                               f"A pull request already exists for {owner}:{head}.")
        if head_sha == self.branch_sha(base):
            return _validation("PullRequest", "custom", None, f"No commits between {base} and {head}")
        pull = _Pull(number=self._next_number, head_owner=owner, head=head, base=base,
                     title=str(data["title"]), body=data.get("body"))
        self._pulls[pull.number] = pull
        self._next_number += 1
        return web.json_response(self._pull_json(pull, full=True), status=201)

    def _pull(self, request: web.Request) -> _Pull:
        pull = self._pulls.get(int(request.match_info["number"]))
        if pull is None:
            raise web.HTTPNotFound(reason="Not Found")
        return pull

    async def _get_pull(self, request: web.Request, _: Any) -> web.Response:
        return web.json_response(self._pull_json(self._pull(request), full=True))

    async def _patch_pull(self, request: web.Request, data: Any) -> web.Response:
        pull = self._pull(request)
        if data.get("state") == "open" and pull.merged:
            return _validation("PullRequest", "custom", None, "A merged pull request cannot be reopened")
        pull.title = str(data.get("title", pull.title))
        pull.body = data.get("body", pull.body)
        pull.state = str(data.get("state", pull.state))
        pull.base = str(data.get("base", pull.base))
        return web.json_response(self._pull_json(pull, full=True))

    async def _get_labels(self, request: web.Request, _: Any) -> web.Response:
        return web.json_response([self._label_json(n) for n in self._pull(request).labels])

    async def _post_labels(self, request: web.Request, data: Any) -> web.Response:
        pull = self._pull(request)
        names = data.get("labels", []) if isinstance(data, dict) else data
        for name in names:
            if name not in pull.labels:
                pull.labels.append(str(name))
        return web.json_response([self._label_json(n) for n in pull.labels])

    # ---------------------------------------------------------------- checks, statuses, comments

    def _known_commit(self, sha: str) -> bool:
        """Return whether ``sha`` is a full commit sha of this repository or of one of its forks
        (GitHub shows a fork's head commit on the upstream's pull request)."""
        if not re.fullmatch(r"[0-9a-f]{40}", sha):
            return False
        return any(r._resolve(sha) == sha for r in self._repos.values()
                   if r is self or r.parent is self)

    async def _get_commit(self, request: web.Request, _: Any) -> web.Response:
        wanted = request.match_info["sha"]
        holder = next((r for r in self._repos.values() if (r is self or r.parent is self)
                       and r._resolve(wanted) is not None), None)  # a fork's head commit too
        sha = holder._resolve(wanted) if holder is not None else None
        if holder is None or sha is None:
            return _error(422, f"No commit found for SHA: {wanted}")
        out = git(holder.bare, "log", "-1", "--format=%P%x00%T%x00%B", sha)
        parents, tree, message = out.split("\0", 2)
        return web.json_response(self._commit_list_json(sha, parents.split(), tree, message.strip()))

    def _check_run_json(self, run: CheckRun) -> dict[str, Any]:
        done = run.status == "completed"
        return {"id": run.id, "node_id": f"CR_{run.id}", "name": run.name, "head_sha": run.head_sha,
                "external_id": "", "url": self._api(f"/check-runs/{run.id}"),
                "html_url": self._html(f"/runs/{run.id}"), "details_url": run.details_url,
                "status": run.status, "conclusion": run.conclusion, "started_at": _TIME,
                "completed_at": _TIME if done else None,
                "output": {"title": run.output.get("title"), "summary": run.output.get("summary"),
                           "text": run.output.get("text"), "annotations_count": 0,
                           "annotations_url": self._api(f"/check-runs/{run.id}/annotations")},
                "check_suite": {"id": 1}, "app": None, "pull_requests": []}

    def _check_run_error(self, data: Mapping[str, Any]) -> web.Response | None:
        """Return GitHub's 422 for a check run it would refuse, or None."""
        status = data.get("status", "queued")
        conclusion = data.get("conclusion")
        if status not in ("queued", "in_progress", "completed"):
            return _validation("CheckRun", "invalid", "status")
        if conclusion is not None and conclusion not in _CONCLUSIONS:
            return _validation("CheckRun", "invalid", "conclusion")
        if status == "completed" and conclusion is None:
            return _validation("CheckRun", "missing_field", "conclusion")
        output = data.get("output")
        if output is not None and (not output.get("title") or not output.get("summary")):
            return _validation("CheckRun", "missing_field", "output")
        for key in ("summary", "text"):
            if output is not None and len(output.get(key) or "") > _OUTPUT_MAX_CHARS:
                return _validation("CheckRun", "custom", None,
                                   f"Invalid request.\n\nOnly {_OUTPUT_MAX_CHARS} characters "
                                   f"are allowed; {len(output[key])} were supplied.")
        return None

    async def _post_check_run(self, request: web.Request, data: Any) -> web.Response:
        if self.check_runs_need_app:
            return _error(403, "You must authenticate via a GitHub App.")
        if not data.get("name") or not self._known_commit(str(data.get("head_sha", ""))):
            return _validation("CheckRun", "invalid", "head_sha" if data.get("name") else "name")
        refused = self._check_run_error(data)
        if refused is not None:
            return refused
        conclusion = data.get("conclusion")
        run = CheckRun(id=self._new_id(), name=str(data["name"]), head_sha=str(data["head_sha"]),
                       status="completed" if conclusion else str(data.get("status", "queued")),
                       conclusion=conclusion, details_url=data.get("details_url"),
                       output=dict(data.get("output") or {}))
        self.check_runs[run.id] = run
        return web.json_response(self._check_run_json(run), status=201)

    async def _patch_check_run(self, request: web.Request, data: Any) -> web.Response:
        if self.check_runs_need_app:
            return _error(403, "You must authenticate via a GitHub App.")
        run = self.check_runs.get(int(request.match_info["id"]))
        if run is None:
            return _error(404, "Not Found")
        merged = {"status": run.status, "conclusion": run.conclusion, **data}
        refused = self._check_run_error(merged)
        if refused is not None:
            return refused
        run.status = "completed" if merged.get("conclusion") else str(merged["status"])
        run.conclusion = merged.get("conclusion")
        run.details_url = data.get("details_url", run.details_url)
        run.output = dict(data.get("output") or run.output)
        run.name = str(data.get("name", run.name))
        return web.json_response(self._check_run_json(run))

    async def _list_check_runs(self, request: web.Request, _: Any) -> web.Response:
        if self.check_runs_need_app:
            return _error(403, "You must authenticate via a GitHub App.")
        sha = self._resolve(request.match_info["sha"])
        if sha is None and self._known_commit(request.match_info["sha"]):
            sha = request.match_info["sha"]
        if sha is None:
            return _error(422, f"No commit found for SHA: {request.match_info['sha']}")
        name = request.query.get("check_name")
        runs = [self._check_run_json(r) for r in reversed(self.checks_on(sha))
                if name is None or r.name == name]  # newest first, as GitHub lists them
        return web.json_response({"total_count": len(runs), "check_runs": runs})

    def _status_json(self, status: Status) -> dict[str, Any]:
        return {"id": status.id, "node_id": f"S_{status.id}", "state": status.state,
                "context": status.context, "description": status.description,
                "target_url": status.target_url, "url": self._api(f"/statuses/{status.sha}"),
                "avatar_url": None, "created_at": _TIME, "updated_at": _TIME,
                "creator": self._user()}

    async def _post_status(self, request: web.Request, data: Any) -> web.Response:
        sha = request.match_info["sha"]
        if not self._known_commit(sha):
            return _validation("Status", "custom", None, f"No commit found for SHA: {sha}")
        if data.get("state") not in ("error", "failure", "pending", "success"):
            return _validation("Status", "invalid", "state")
        if len(data.get("description") or "") > _STATUS_DESCRIPTION_MAX_CHARS:
            return _validation("Status", "custom", None, "description is too long (maximum "
                               f"is {_STATUS_DESCRIPTION_MAX_CHARS} characters)")
        status = Status(id=self._new_id(), sha=sha, state=str(data["state"]),
                        context=str(data.get("context") or "default"),
                        description=data.get("description"), target_url=data.get("target_url"))
        self.statuses.append(status)
        return web.json_response(self._status_json(status), status=201)

    async def _list_statuses(self, request: web.Request, _: Any) -> web.Response:
        sha = request.match_info["sha"]
        return web.json_response([self._status_json(s) for s in reversed(self.statuses_on(sha))])

    def _comment_json(self, comment: Comment) -> dict[str, Any]:
        user = {**self._user(), "login": comment.login}
        return {"id": comment.id, "node_id": f"IC_{comment.id}",
                "url": self._api(f"/issues/comments/{comment.id}"),
                "html_url": self._html(f"/pull/{comment.number}#issuecomment-{comment.id}"),
                "issue_url": self._api(f"/issues/{comment.number}"), "body": comment.body,
                "user": user, "created_at": _TIME, "updated_at": _TIME,
                "author_association": "OWNER" if comment.login == self.owner else "NONE"}

    async def _list_comments(self, request: web.Request, _: Any) -> web.Response:
        number = self._pull(request).number
        per_page = min(int(request.query.get("per_page", 30)), 100)
        page = int(request.query.get("page", 1))
        mine = self.comments_on(number)
        headers = {}
        if page * per_page < len(mine):
            query = urlencode({**request.query, "page": page + 1, "per_page": per_page})
            headers["Link"] = f'<{self._api(f"/issues/{number}/comments")}?{query}>; rel="next"'
        return web.json_response([self._comment_json(c) for c in
                                  mine[(page - 1) * per_page: page * per_page]], headers=headers)

    async def _post_comment(self, request: web.Request, data: Any) -> web.Response:
        number = self._pull(request).number
        if not data.get("body"):
            return _validation("IssueComment", "missing_field", "body")
        if len(data["body"]) > _COMMENT_MAX_CHARS:
            return _validation("IssueComment", "custom", "body", "Body is too long (maximum is "
                               f"{_COMMENT_MAX_CHARS} characters)")
        comment = Comment(id=self._new_id(), number=number, body=str(data["body"]), login=self.owner)
        self.comments[comment.id] = comment
        return web.json_response(self._comment_json(comment), status=201)

    async def _patch_comment(self, request: web.Request, data: Any) -> web.Response:
        comment = self.comments.get(int(request.match_info["id"]))
        if comment is None:
            return _error(404, "Not Found")
        if comment.login != self.owner:  # only its author (the token's user here) may edit it
            return _error(403, "Resource not accessible by personal access token")
        if not data.get("body") or len(data["body"]) > _COMMENT_MAX_CHARS:
            return _validation("IssueComment", "invalid", "body")
        comment.body = str(data["body"])
        return web.json_response(self._comment_json(comment))


def _remove_dot_segments(path: str) -> str:
    """Return ``path`` with its ``.`` and ``..`` segments collapsed (RFC 3986, 5.2.4)."""
    out: list[str] = []
    parts = path.split("/")
    for part in parts:
        if part == "..":
            if len(out) > 1:
                out.pop()
        elif part != ".":
            out.append(part)
    if parts[-1] in (".", ".."):
        out.append("")
    return "/".join(out) or "/"


async def _rerouted(request: web.Request, path: str) -> web.Request:
    """Return ``request`` routed again as if it had asked for ``path``.

    aiohttp routes before middlewares run and has no public re-dispatch, so the clone gets the
    router's new match through the private ``_match_info`` (test code only)."""
    clone = request.clone(rel_url=request.rel_url.with_path(path))
    match = await request.app.router.resolve(clone)
    match.add_app(request.app)
    clone._match_info = match
    return clone


def _error(status: int, message: str, *, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.json_response({"message": message, "documentation_url": "https://docs.github.com/rest"},
                             status=status, headers=dict(headers or {}))


def _validation(resource: str, code: str, fieldname: str | None, message: str | None = None) -> web.Response:
    error: dict[str, Any] = {"resource": resource, "code": code}
    if fieldname:
        error["field"] = fieldname
    if message:
        error["message"] = message
    return web.json_response({"message": "Validation Failed", "errors": [error],
                              "documentation_url": "https://docs.github.com/rest"}, status=422)


@contextlib.contextmanager
def github_emulator(root: Path, files: Mapping[str, str], **kwargs: Any) -> Iterator[GitHubEmulator]:
    """Serve a :class:`GitHubEmulator` seeded with ``files`` on 127.0.0.1; yield it once it listens."""
    emulator = GitHubEmulator(root, files, **kwargs)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="github-emulator", daemon=True)
    thread.start()

    async def start() -> tuple[web.AppRunner, int]:
        runner = web.AppRunner(emulator.app(), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        return runner, port

    runner, port = asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=10)
    emulator.base_url = f"http://127.0.0.1:{port}/api/v3"
    try:
        yield emulator
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
