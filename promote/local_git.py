"""A promotion provider for a git repository on disk: offline use, demos and tests.

Branches and commits are real (plain ``git``, the one outside program this module runs). A
repository on disk has no pull requests, so the "pull request" is a markdown file beside the
repository: ``<repo>.pull-requests/<branch>.md``, with the title, state and body; running again
updates the same file, as a PR would be updated.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from promote.errors import PromotionError
from promote.patch import safe_repo_path
from promote.provider import FileCommit, PullInfo


def identity(repo: Path) -> list[str]:
    """Return ``-c user.name=... -c user.email=...`` when git has no identity configured (a
    fresh CI machine), so commits work anywhere; empty when the user has one."""
    name = subprocess.run(["git", "-C", str(repo), "config", "user.name"], capture_output=True,
                          text=True).stdout.strip()
    if name:
        return []
    return ["-c", "user.name=slogate", "-c", "user.email=slogate@localhost"]


class LocalGitProvider:
    """Promotes into the git repository at ``path`` (a working tree).

    Example::

        provider = LocalGitProvider("/srv/gitops")
        provider.ensure_branch("slogate/promote-hello-2.0", "main")
    """

    def __init__(self, path: str | Path) -> None:
        self.root = Path(path).resolve()
        if not (self.root / ".git").exists():
            raise PromotionError(f"{self.root}: not a git repository (promotion.repository)")
        self.pulls_dir = self.root.parent / f"{self.root.name}.pull-requests"

    def _git(self, *args: str, check: bool = True) -> str:
        proc = subprocess.run(["git", "-C", str(self.root), *args], capture_output=True,
                              text=True)
        if check and proc.returncode != 0:
            raise PromotionError(f"git {args[0]} failed in {self.root}: "
                                 f"{(proc.stderr or proc.stdout).strip().splitlines()[-1:]}")
        return proc.stdout

    def _has_branch(self, branch: str) -> bool:
        return bool(self._git("branch", "--list", branch).strip())

    def read_file(self, path: str, ref: str) -> str | None:
        """Return the file's text at ``ref`` (a branch), or None when it or the ref is missing."""
        safe_repo_path(self.root, path)
        proc = subprocess.run(["git", "-C", str(self.root), "show", f"{ref}:{path}"],
                              capture_output=True, text=True)
        return proc.stdout if proc.returncode == 0 else None

    def file_history(self, path: str, ref: str, limit: int) -> list[FileCommit]:
        """Return the newest ``limit`` commits of ``ref`` that changed ``path``, newest first."""
        safe_repo_path(self.root, path)
        sha = self._git("rev-parse", "--verify", "-q", f"{ref}^{{commit}}", check=False).strip()
        if not sha:
            raise PromotionError(f"branch {ref!r} not found in {self.root} (promotion.baseBranch)")
        out = self._git("log", f"--max-count={limit}", "--format=%H%x00%P%x00%s", sha, "--", path)
        commits = []
        for line in out.splitlines():
            commit, parents, subject = line.split("\0", 2)
            commits.append(FileCommit(sha=commit, parent=next(iter(parents.split()), None),
                                      subject=subject))
        return commits

    def ensure_branch(self, branch: str, base: str) -> None:
        """Create ``branch`` from ``base`` unless it exists (an existing branch is never moved)."""
        if not self._has_branch(base):
            raise PromotionError(f"branch {base!r} not found in {self.root} (promotion.baseBranch)")
        if not self._has_branch(branch):
            self._git("branch", branch, base)

    def put_file(self, branch: str, path: str, text: str, message: str) -> str | None:
        """Commit ``text`` as ``path`` on ``branch``; return the commit, None when unchanged.

        Uses a temporary worktree, so the user's checkout and its uncommitted work are untouched.
        """
        if self.read_file(path, branch) == text:
            return None
        worktree = self.root.parent / f".{self.root.name}.slogate-worktree"
        self._git("worktree", "add", "--force", str(worktree), branch)
        try:
            target = safe_repo_path(worktree, path)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
            run = ["git", "-C", str(worktree)]
            subprocess.run([*run, "add", "--", path], check=True, capture_output=True)
            subprocess.run([*run, *identity(self.root), "commit", "--quiet", "-m", message],
                           check=True, capture_output=True)
            return subprocess.run([*run, "rev-parse", "HEAD"], check=True, capture_output=True,
                                  text=True).stdout.strip()
        except subprocess.CalledProcessError as exc:
            raise PromotionError(f"git commit failed in {self.root}: "
                                 f"{exc.stderr.decode(errors='replace').strip()}") from None
        finally:
            self._git("worktree", "remove", "--force", str(worktree), check=False)

    def _pull_file(self, head: str) -> Path:
        return self.pulls_dir / (re.sub(r"[^A-Za-z0-9._-]+", "-", head) + ".md")

    def find_pull(self, head_branch: str) -> PullInfo | None:
        """Return the "pull request" of ``head_branch`` (its markdown file), if any."""
        path = self._pull_file(head_branch)
        if not path.is_file():
            return None
        merged = self._is_merged(head_branch)
        return PullInfo(number=1, url=path.as_uri(), state="closed" if merged else "open",
                        created=False, merged=merged)

    def _is_merged(self, head: str) -> bool:
        text = self._pull_file(head).read_text() if self._pull_file(head).is_file() else ""
        match = re.search(r"^base: (\S+)$", text, re.MULTILINE)
        if not match or not self._has_branch(head):
            return False
        proc = subprocess.run(["git", "-C", str(self.root), "merge-base", "--is-ancestor", head,
                               match.group(1)], capture_output=True)
        return proc.returncode == 0 and self._git("rev-parse", head) != self._git(
            "rev-parse", match.group(1))

    def open_or_update_pull(self, head: str, base: str, title: str, body: str,
                            labels: list[str]) -> PullInfo:
        """Write (or rewrite) the markdown "pull request" of ``head``; a merged one is left."""
        existing = self.find_pull(head)
        if existing is not None and existing.merged:
            return existing
        path = self._pull_file(head)
        path.parent.mkdir(parents=True, exist_ok=True)
        header = (f"# {title}\n\nhead: {head}\nbase: {base}\nlabels: {', '.join(labels)}\n"
                  "state: open\n\n")
        tmp = path.with_suffix(".md.tmp")
        tmp.write_text(header + body)
        tmp.replace(path)
        return PullInfo(number=1, url=path.as_uri(), state="open", created=existing is None,
                        merged=False)
