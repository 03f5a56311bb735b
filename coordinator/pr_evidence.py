"""Wiring the evidence on the pull request: after a promotion (or revert) opened or updated its
pull request, the check on its head commit and the comment with the comparison and the drift.

Nothing here decides: :mod:`promote.evidence` builds the texts, the provider
(:mod:`promote.github`) puts them on GitHub. A local repository has no checks or comments; that
is said in one line and nothing else happens. A dry run, a pull request merged already and a
promotion with nothing to do leave no evidence.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from urllib.parse import urlsplit

from analysis.results import Results
from coordinator.promote_wiring import make_provider, run_promotion
from promote.errors import PromotionError
from promote.evidence import Published, drift_history, leave_evidence
from promote.flow import PromotionOutcome, check_names
from promote.provider import Provider
from promote.spec import PromotionSpec

Log = Callable[[str], None]
Runs = Sequence[tuple[Results, str]]
NO_HISTORY = ("no run history given (slogate run --archive DEST, or slogate promote "
              "--history SOURCE)")


def check_report_url(url: str | None) -> str | None:
    """Return ``url`` when it is an http(s) URL without credentials (it is shown on the pull
    request); raise PromotionError otherwise."""
    if url is None:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PromotionError(f"--report-url {url!r}: not an http(s) URL")
    if parts.username is not None or parts.password is not None:
        raise PromotionError("--report-url: credentials in the URL are refused (it is shown on "
                             "the pull request)")
    return url


def publish_evidence(results: Results, promotion: PromotionSpec, outcome: PromotionOutcome,
                     provider: Provider, *, report_url: str | None, runs: Runs | None,
                     log: Log) -> list[Published]:
    """Put the check and the comment on ``outcome``'s pull request, the drift judged against
    ``runs`` (None: not judged); return where they landed (:func:`leave_evidence`)."""
    history = drift_history(results, runs) if runs is not None and outcome.pull is not None \
        else None
    return leave_evidence(results, promotion, outcome, provider, report_url=report_url,
                          history=history, why_no_history=NO_HISTORY, log=log)


def promote_with_evidence(results: Results, promotion: PromotionSpec, *, dry_run: bool,
                          log: Log, show: Callable[[str], None], show_body: bool = False,
                          report_url: str | None = None, runs: Runs | None = None,
                          again: str | None = None) -> PromotionOutcome:
    """Promote (or revert) as :func:`coordinator.promote_wiring.run_promotion` does (``again``:
    the verdict the caller re-judged already), then leave the evidence on the pull request."""
    check_names(promotion)
    check_report_url(report_url)
    provider = make_provider(promotion)
    outcome = run_promotion(results, promotion, dry_run=dry_run, log=log, show=show,
                            show_body=show_body, again=again, provider=provider)
    publish_evidence(results, promotion, outcome, provider, report_url=report_url, runs=runs,
                     log=log)
    return outcome
