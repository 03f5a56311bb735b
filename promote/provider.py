"""The seam between the promotion flow and where pull requests live.

``Provider`` is what the flow needs from a GitOps repository host: read a file at a ref, make a
branch, commit a file on it, and open or update a pull request. GitHub (through PyGithub, in
:mod:`promote.github`) and a local git repository (:mod:`promote.local_git`) implement it.
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


class Provider(Protocol):
    """A repository host that takes promotion pull requests."""

    def read_file(self, path: str, ref: str) -> str | None: ...

    def ensure_branch(self, branch: str, base: str) -> None: ...

    def put_file(self, branch: str, path: str, text: str, message: str) -> str | None: ...

    def find_pull(self, head_branch: str) -> PullInfo | None: ...

    def open_or_update_pull(self, head: str, base: str, title: str, body: str,
                            labels: list[str]) -> PullInfo: ...
