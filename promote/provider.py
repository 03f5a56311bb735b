"""The seam between the promotion flow and where pull requests live.

``Provider`` is what the flow needs from a GitOps repository host: read a file at a ref (a
branch or a commit), list the commits of a branch that changed a file (for a revert), make a
branch, commit a file on it, and open or update a pull request. GitHub (through PyGithub, in
:mod:`promote.github`) and a local git repository (:mod:`promote.local_git`) implement it.

With a fork and an upstream (GitHub only), reads, history and pull requests are the upstream's,
branches and commits the fork's; the flow does not need to know.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True, kw_only=True)
class PullInfo:
    """A pull request as the promotion sees it."""

    number: int
    url: str
    state: str
    created: bool
    merged: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class FileCommit:
    """A commit that changed a file: its sha, its first parent (None for a root) and subject."""

    sha: str
    parent: str | None
    subject: str


class Provider(Protocol):
    """A repository host that takes promotion pull requests."""

    def read_file(self, path: str, ref: str) -> str | None: ...

    def file_history(self, path: str, ref: str, limit: int) -> list[FileCommit]: ...

    def ensure_branch(self, branch: str, base: str) -> None: ...

    def put_file(self, branch: str, path: str, text: str, message: str) -> str | None: ...

    def find_pull(self, head_branch: str) -> PullInfo | None: ...

    def open_or_update_pull(self, head: str, base: str, title: str, body: str,
                            labels: list[str]) -> PullInfo: ...
