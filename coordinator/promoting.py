"""Wiring the promotion: the provider a spec asks for, its token, and what to print.

The token comes from ``promotion.tokenFile`` or the ``GITHUB_TOKEN`` environment variable; it is
handed to the provider and never printed, logged or written.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from analysis.results import Results
from coordinator.errors import PromotionError
from coordinator.spec import PromotionSpec
from promote.flow import Outcome, promote
from promote.provider import Provider


def read_token(promotion: PromotionSpec) -> str:
    """Return the GitHub token (tokenFile, else GITHUB_TOKEN); raise PromotionError if none."""
    if promotion.token_file:
        path = Path(promotion.token_file)
        try:
            token = path.read_text().strip()
        except OSError as exc:
            raise PromotionError(f"promotion.tokenFile {path}: cannot read it "
                                 f"({exc.__class__.__name__})") from None
        if not token:
            raise PromotionError(f"promotion.tokenFile {path}: the file is empty")
        return token
    token = os.environ.get("GITHUB_TOKEN", "").strip()
    if not token:
        raise PromotionError("no GitHub token: set GITHUB_TOKEN or promotion.tokenFile")
    return token


def make_provider(promotion: PromotionSpec) -> Provider:
    """Return the provider of a promotion block (GitHub or a local repository)."""
    if promotion.provider == "local":
        from promote.local_git import LocalGitProvider

        return LocalGitProvider(promotion.repository)
    from promote.github import GitHubProvider

    return GitHubProvider(promotion.repository, read_token(promotion), base_url=promotion.base_url)


def run_promotion(results: Results, promotion: PromotionSpec, *, dry_run: bool,
                  log: Callable[[str], None], show: Callable[[str], None],
                  show_body: bool = False) -> Outcome:
    """Promote, then show the diff and the pull request (its body on a dry run or when asked)."""
    outcome = promote(results, promotion, make_provider(promotion), dry_run=dry_run, log=log)
    for change in outcome.changes:
        show(change.diff)
    if outcome.status == "dry-run":
        show(f"would open: {outcome.title} ({outcome.branch} -> {promotion.base_branch})\n")
        show(outcome.body)
    elif outcome.pull is not None:
        show(f"{outcome.title}: {outcome.status} {outcome.pull.url}\n")
        if show_body:
            show(outcome.body)
    return outcome
