"""Evidence on the pull request: the check (run or commit status) and the comment slogate leaves.

Pure: it takes a run (and, for the drift, the earlier runs of the archive) and returns the texts
and states; :mod:`promote.github` puts them on the pull request's head commit and thread.

Invariants:

- the check's conclusion is ``success`` only when the run backs the pull request: a PASS on a
  promotion, a FAIL of the stable version on a revert; anything else is ``failure`` (never
  ``neutral``: GitHub lets a neutral check satisfy a required one);
- the comment starts with :data:`MARKER`, an HTML comment GitHub does not render, by which a
  re-run finds it (among the comments of the pull request's author) and edits it in place;
- text from the run (names, reasons, paths) is escaped by the report's markdown helpers and no
  ``@`` in it notifies anyone; every text fits GitHub's limits (65,535 characters of check
  output, 65,536 of comment, 140 of status description).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from analysis.history import DriftPolicy, History, history_of, start_of
from analysis.history_report import outcome_lines, reference_line
from analysis.history_report import render_markdown as history_markdown
from analysis.report import comparison_markdown, md_text, objectives_markdown
from analysis.results import Results
from promote.flow import PromotionOutcome, revert_branch_name
from promote.spec import PromotionSpec

MARKER = "<!-- slogate:evidence -->"
OUTPUT_MAX_CHARS = 65_535
COMMENT_MAX_CHARS = 65_536
DESCRIPTION_MAX_CHARS = 140
THIS_RUN = "this run"


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckReport:
    """What the check on the pull request's head commit says.

    ``conclusion`` is the check run's (success or failure), ``state`` the commit status's
    (success, failure or error) when the token cannot create check runs.
    """

    name: str
    title: str
    summary: str
    conclusion: str
    state: str
    description: str
    details_url: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Published:
    """Where a piece of evidence landed: ``check-run``, ``status`` or ``comment``, its URL and
    whether it was created (else updated in place)."""

    kind: str
    url: str
    created: bool


@runtime_checkable
class EvidenceSink(Protocol):
    """A pull-request host that takes checks and comments (GitHub; not a local repository)."""

    def publish_check(self, number: int, check: CheckReport) -> Published: ...

    def upsert_comment(self, number: int, marker: str, body: str) -> Published: ...


def check_name(app: str) -> str:
    """Return the check's name, stable across versions so branch protection can require it."""
    return f"slogate/{app}"


def backs(verdict: str, *, revert: bool) -> bool:
    """Return whether a run of ``verdict`` backs the pull request (PASS a promotion, FAIL a
    revert)."""
    return verdict == ("FAIL" if revert else "PASS")


def _state(verdict: str, *, revert: bool) -> str:
    if backs(verdict, revert=revert):
        return "success"
    return "failure" if verdict in ("PASS", "FAIL") else "error"


def no_mentions(text: str) -> str:
    """Return ``text`` with a zero-width space after every ``@`` (no one is notified)."""
    return text.replace("@", "@\u200b")


def bounded(text: str, limit: int, tail: str) -> str:
    """Return ``text``, or its head cut so that with ``tail`` it fits in ``limit`` characters."""
    if len(text) <= limit:
        return text
    return text[: max(limit - len(tail), 0)] + tail


def _counts(results: Results) -> str:
    judged = [o for o in results.objectives if not o.dry_run]
    met = sum(o.verdict == "PASS" for o in judged)
    return f"{met}/{len(judged)} objectives met"


def check_report(results: Results, *, app: str, version: str, revert: bool,
                 details_url: str) -> CheckReport:
    """Return the check for the pull request of ``app`` ``version`` (a revert's when
    ``revert``): the verdict, the objectives table and the link to the report."""
    verdict = results.verdict
    what = (f"the {'revert' if revert else 'promotion'} is backed by this run"
            if backs(verdict, revert=revert) else "this run does not back the pull request")
    title = f"{verdict}: {app} {version}, {_counts(results)}; {what}"
    link = f"\n\n[The full report]({details_url})\n"
    summary = no_mentions("\n".join([
        (f"**{verdict}**: {md_text(results.name)} judged {md_text(app)} {md_text(version)} "
         f"({md_text(results.start_time)})."), "",
        *(f"- {md_text(reason)}" for reason in results.reasons), "",
        *objectives_markdown(results)]))
    return CheckReport(
        name=check_name(app), title=bounded(no_mentions(title), 1000, "…"),
        summary=bounded(summary, OUTPUT_MAX_CHARS - len(link), "\n\n… (cut)") + link,
        conclusion="success" if backs(verdict, revert=revert) else "failure",
        state=_state(verdict, revert=revert),
        description=bounded(f"{verdict}: {app} {version}, {_counts(results)}",
                            DESCRIPTION_MAX_CHARS, "…"),
        details_url=details_url)


def drift_history(results: Results, runs: Sequence[tuple[Results, str]],
                  policy: DriftPolicy | None = None) -> History:
    """Return the history of ``results``' experiment up to it, as ``slogate history`` judges
    it with ``results`` the newest run: the archived runs of the same name that started no
    later, with ``results`` added when the archive does not hold it yet."""
    newest = start_of(results, THIS_RUN)
    mine = [(r, s) for r, s in runs if r.name == results.name and start_of(r, s) <= newest]
    if not any(r.start_time == results.start_time for r, _ in mine):
        mine.append((results, THIS_RUN))
    return history_of(mine, name=results.name, policy=policy or DriftPolicy())


def _drift_lines(history: History | None, why_not: str) -> list[str]:
    if history is None:
        return [f"Not judged: {md_text(why_not)}."]
    _verdict, head, *findings = outcome_lines(history.drift)
    return [f"**{md_text(head)}** ({md_text(reference_line(history.drift))})", "",
            *(f"- {md_text(line.strip().removeprefix('- '))}" for line in findings), "",
            "<details><summary>Trend and checks, as slogate history shows them</summary>", "",
            history_markdown(history, last=10), "</details>"]


def comment_body(results: Results, *, app: str, version: str, details_url: str,
                 history: History | None, why_no_history: str = "") -> str:
    """Return the pull request comment: candidate vs baseline, and the drift against the run
    history (or why it was not judged); :data:`MARKER` first."""
    comparison = comparison_markdown(results) or [
        "This run had no baseline: there is no candidate-vs-baseline comparison."]
    link = f"\n\n[The full report]({details_url})\n"
    text = "\n".join([
        MARKER,
        f"## slogate evidence: {md_text(app)} {md_text(version)}: **{results.verdict}**", "",
        (f"Run of {md_text(results.name)} started {md_text(results.start_time)}; "
         f"{_counts(results)}. This comment is updated in place on each run."), "",
        "### Candidate vs baseline", "", *comparison, "",
        "### Drift against the run history", "", *_drift_lines(history, why_no_history)])
    return bounded(no_mentions(text), COMMENT_MAX_CHARS - len(link), "\n\n… (cut)") + link


def leave_evidence(results: Results, promotion: PromotionSpec, outcome: PromotionOutcome,
                   provider: object, *, report_url: str | None, history: History | None,
                   why_no_history: str, log: Callable[[str], None]) -> list[Published]:
    """Put the check and the comment on ``outcome``'s pull request through ``provider`` (an
    :class:`EvidenceSink`); return where they landed. Nothing for a dry run, a pull request
    merged or closed already, or a provider without checks (a local repository: one line)."""
    pull = outcome.pull
    if pull is None or outcome.status in ("merged", "dry-run") or pull.state != "open":
        return []
    if not isinstance(provider, EvidenceSink):
        log(f"a {promotion.provider} repository has no checks or comments: the evidence is "
            f"the pull request's body ({pull.url})")
        return []
    url = report_url or pull.url
    revert = outcome.branch == revert_branch_name(promotion)
    check = check_report(results, app=promotion.app, version=promotion.version, revert=revert,
                         details_url=url)
    body = comment_body(results, app=promotion.app, version=promotion.version, details_url=url,
                        history=history, why_no_history=why_no_history)
    done = [provider.publish_check(pull.number, check),
            provider.upsert_comment(pull.number, MARKER, body)]
    for item in done:
        log(f"{item.kind} {'created' if item.created else 'updated'} on pull request "
            f"#{pull.number}: {item.url}")
    return done
