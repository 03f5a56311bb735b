"""After the pull request: wait until it is merged, and the texts that report the verification.

:func:`wait_merged` polls the promotion pull request (through the :class:`Provider`) until it
is merged; the rest is pure: the comment the verification leaves on the merged pull request and
the section that puts the promoting run beside the failing one in a revert's body.

Invariants: a pull request closed without merging, or none at all, is an error (exit 2: nothing
was promoted, so there is nothing to verify); one not merged in time is a :class:`MergeTimeout`
(exit 3: neither verified nor found failing). Time is passed in (``clock``, ``sleep``).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from analysis.report import md_text, objectives_markdown, render_markdown
from analysis.results import Results
from promote.errors import PromotionError
from promote.evidence import no_mentions
from promote.provider import Provider, PullInfo

VERIFY_MARKER = "<!-- slogate:verification -->"


class MergeTimeout(PromotionError):
    """The promotion pull request was not merged in time: nothing was verified (exit 3)."""

    exit_code = 3


def wait_merged(provider: Provider, branch: str, *, timeout_s: float, poll_s: float,
                log: Callable[[str], None], clock: Callable[[], float] = time.monotonic,
                sleep: Callable[[float], None] = time.sleep) -> PullInfo:
    """Return the pull request from ``branch`` once it is merged; raise PromotionError when
    there is none or it was closed without merging, MergeTimeout after ``timeout_s``."""
    deadline, said = clock() + timeout_s, False
    while True:
        pull = provider.find_pull(branch)
        if pull is None:
            raise PromotionError(f"no pull request from {branch}: promote the run first")
        if pull.merged:
            log(f"pull request #{pull.number} is merged: {pull.url}")
            return pull
        if pull.state == "closed":
            raise PromotionError(f"pull request #{pull.number} ({pull.url}) was closed without "
                                 "merging: nothing to verify")
        if clock() >= deadline:
            raise MergeTimeout(f"pull request #{pull.number} ({pull.url}) not merged within "
                               f"{timeout_s:g} s: nothing verified")
        if not said:
            log(f"waiting for pull request #{pull.number} to be merged: {pull.url}")
            said = True
        sleep(poll_s)


def verification_comment(checked: Results, *, app: str, version: str, where: str,
                         revert_url: str | None) -> str:
    """Return the comment on the merged promotion pull request: the verification's verdict
    against the stable version, its objectives, and the revert pull request if one was
    opened."""
    verdict = checked.verdict
    if verdict == "PASS":
        line = f"{md_text(app)} {md_text(version)} is verified: it met its SLOs as the stable version."
    elif revert_url is not None:
        line = f"{md_text(app)} {md_text(version)} failed as the stable version: revert {revert_url}"
    else:
        line = f"{md_text(app)} {md_text(version)} was not verified as the stable version."
    return no_mentions("\n".join([
        VERIFY_MARKER,
        f"## slogate verification after sync: **{verdict}**", "",
        line, "",
        (f"Run {md_text(checked.start_time)} against {md_text(checked.target_url)} once "
         f"{md_text(where)} ran the merged manifest."), "",
        *objectives_markdown(checked), ""]))


def both_runs(promoted: Results, checked: Results) -> str:
    """Return the section a revert's body ends with: the run that promoted the version, after
    the verification run's report already in it."""
    return no_mentions(
        "\n---\n\nThe report above is the verification run against the stable version, after "
        f"the GitOps sync. The run that promoted it ({md_text(promoted.start_time)}, "
        f"**{promoted.verdict}** against {md_text(promoted.target_url)}):\n\n"
        f"{render_markdown(promoted)}")
