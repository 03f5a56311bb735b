"""Promotion: from a PASS to a pull request that makes the candidate the stable version, and
from a FAIL of the stable version to one that takes it back out (``onFail: revert-pr``).

Three steps, kept apart: :func:`check_pass` (and :func:`check_fail`) re-judge the saved run from
its own histograms and objectives (a verdict field alone is never trusted), :func:`plan_changes`
(and :func:`plan_revert`) compute the files from the base branch (pure but for reading through
the provider), and :func:`promote` (and :func:`revert`) put them on the branch
``slogate/promote-<app>-<version>`` (``slogate/revert-...``) and open or update the pull request,
with the markdown report as its body. :func:`act` picks one from the re-judged verdict.

Invariants: running again updates the same branch and pull request; a change that is already
on the base branch is "already promoted"; only a re-judged FAIL of the version that is stable on
the base branch (the promotion would change nothing) is reverted, never an INCONCLUSIVE or
INVALID run; a revert restores each file byte for byte to its content before the commit that
brought the version, looking back at most :data:`REVERT_HISTORY` commits of that file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from analysis.rejudge import rejudge
from analysis.report import md_text, render_markdown
from analysis.results import Results
from promote import patch
from promote.errors import PromotionError
from promote.names import check_promotion_names
from promote.provider import FileCommit, Provider, PullInfo
from promote.spec import ManifestPatch, PromotionSpec

Log = Callable[[str], None]
REVERT_HISTORY = 20


@dataclass(frozen=True, slots=True, kw_only=True)
class FileChange:
    """One file of the repository before and after the promotion."""

    path: str
    before: str
    after: str
    reverts: tuple[FileCommit, ...] = ()  # revert: the commits undone, newest first

    @property
    def diff(self) -> str:
        """Return the unified diff of the change."""
        return patch.unified_diff(self.before, self.after, self.path)


@dataclass(frozen=True, slots=True, kw_only=True)
class PromotionOutcome:
    """What the promotion (or revert) did: ``opened``, ``updated``, ``already-promoted``,
    ``nothing-to-revert``, ``merged`` (an earlier pull request was merged already) or
    ``dry-run``."""

    status: str
    branch: str
    title: str
    changes: tuple[FileChange, ...]
    pull: PullInfo | None = None
    body: str = ""


def branch_name(promotion: PromotionSpec) -> str:
    """Return the promotion branch: ``slogate/promote-<app>-<version>``."""
    return f"slogate/promote-{promotion.app}-{promotion.version}"


def revert_branch_name(promotion: PromotionSpec) -> str:
    """Return the revert branch: ``slogate/revert-<app>-<version>``."""
    return f"slogate/revert-{promotion.app}-{promotion.version}"


def check_names(promotion: PromotionSpec) -> None:
    """Raise PromotionError unless every name of ``promotion`` that reaches a URL, the two
    branches made from it included, keeps to :mod:`promote.names`' grammar."""
    check_promotion_names(promotion, (branch_name(promotion), revert_branch_name(promotion)))


def rejudged_verdict(results: Results) -> str:
    """Return the run's verdict re-judged from its own histograms and objectives.

    The histograms of a document from outside were checked where it was read
    (:func:`analysis.results.parse_results`, the service's ``parse_request``); checking them
    again for each re-judging decoded every histogram two or three times per promotion. The
    objectives and limits come from the typed view of the saved spec (:attr:`Results.saved`),
    parsed when the document was loaded."""
    return rejudge(results, results.saved.objectives, results.saved.limits).verdict


def check_pass(results: Results) -> None:
    """Raise PromotionError unless the run, re-judged from its own data, is PASS."""
    _saved_pass(results)
    _passed(rejudged_verdict(results))


def _saved_pass(results: Results) -> None:
    """Raise PromotionError unless the saved verdict is PASS (checked before re-judging)."""
    if results.verdict != "PASS":
        raise PromotionError(f"the run's verdict is {results.verdict}, not PASS: nothing is "
                             "promoted")


def _passed(again: str) -> None:
    """Raise PromotionError unless the re-judged verdict ``again`` is PASS."""
    if again != "PASS":
        raise PromotionError(f"re-judged from its histograms the run is {again}, not "
                             "PASS: nothing is promoted")


def check_fail(results: Results) -> None:
    """Raise PromotionError unless the run, re-judged from its own data, is FAIL."""
    again = rejudged_verdict(results)
    if again != "FAIL":
        raise PromotionError(f"re-judged from its histograms the run is {again}, not FAIL: "
                             "nothing is reverted")


def decide(results: Results, promotion: PromotionSpec, again: str | None = None) -> str:
    """Return ``"revert"`` for a re-judged FAIL when ``onFail: revert-pr``, else ``"promote"``
    once :func:`check_pass` holds; raise PromotionError (check_pass's message) otherwise.

    ``again`` is the run's verdict when the caller re-judged it already
    (:func:`rejudged_verdict`): carried, so one promotion re-judges the run once."""
    if again is None and promotion.on_fail == "revert-pr":
        again = rejudged_verdict(results)
    if again == "FAIL" and promotion.on_fail == "revert-pr":
        return "revert"
    _saved_pass(results)
    _passed(again or rejudged_verdict(results))
    return "promote"


def act(results: Results, promotion: PromotionSpec, provider: Provider, *,
        again: str | None = None, dry_run: bool = False, log: Log = lambda _m: None) -> PromotionOutcome:
    """Promote a PASS, or revert the stable version on a FAIL when the spec asks for it (the
    run is re-judged once, by :func:`decide`, unless ``again`` carries its verdict)."""
    check_names(promotion)
    return carry_out(decide(results, promotion, again), results, promotion, provider,
                     dry_run=dry_run, log=log)


def carry_out(action: str, results: Results, promotion: PromotionSpec, provider: Provider, *,
              dry_run: bool = False, log: Log = lambda _m: None) -> PromotionOutcome:
    """Do what :func:`decide` chose (``"promote"`` or ``"revert"``), without re-judging."""
    if action == "revert":
        return _revert(results, promotion, provider, dry_run=dry_run, log=log)
    return _promote(results, promotion, provider, dry_run=dry_run, log=log)


def _render(text: str, promotion: PromotionSpec) -> str:
    return text.replace("{{ version }}", promotion.version).replace("{{ app }}", promotion.app)


def _patched(item: ManifestPatch, before: str, promotion: PromotionSpec,
             read: Callable[[str], str]) -> str:
    """Return ``before`` patched by ``item``; raise PromotionError naming the repository file
    (``path:LINE: malformed YAML: …`` for text that is not YAML, the ``from`` file's line
    when that is the one)."""
    candidate = read(item.from_ or "") if item.strategy == "copy" else ""
    try:
        return _patch(item, before, candidate, promotion)
    except patch.MalformedYAML as exc:
        raise exc.in_file((item.from_ or item.path) if exc.of_candidate else item.path) from None
    except PromotionError as exc:
        raise PromotionError(f"{item.path}: {exc}") from None


def _patch(item: ManifestPatch, before: str, candidate: str, promotion: PromotionSpec) -> str:
    if item.strategy == "copy":
        return patch.copy_manifest(before, candidate, keep_names=item.keep_names)
    if item.strategy == "set":
        edits = [patch.Edit(path=e.path, value=_render(e.value, promotion)) for e in item.edits]
        return patch.set_values(before, edits, document=item.document)
    if item.strategy == "kustomize-image":
        image = {k: _render(v, promotion) for k, v in (item.image or {}).items()}
        return patch.kustomize_image(before, name=image.get("name", ""),
                                     new_tag=image.get("newTag"), new_name=image.get("newName"),
                                     digest=image.get("digest"))
    return patch.helm_value(before, key=item.key or "", value=_render(item.value or "", promotion))


def _base_reader(promotion: PromotionSpec, provider: Provider) -> Callable[[str], str]:
    """Return a reader of files on the base branch that raises PromotionError on a missing one."""
    check_names(promotion)
    base = promotion.base_branch
    where = promotion.upstream or promotion.repository

    def read(path: str) -> str:
        text = provider.read_file(path, base)
        if text is None:
            raise PromotionError(f"{path}: not found on branch {base} of {where}")
        return text

    return read


def plan_changes(promotion: PromotionSpec, provider: Provider) -> list[FileChange]:
    """Return the files the promotion changes on the base branch (unchanged ones left out)."""
    read = _base_reader(promotion, provider)
    changes = []
    for item in promotion.manifests:
        before = read(item.path)
        after = _patched(item, before, promotion, read)
        if patch.changed(before, after):
            changes.append(FileChange(path=item.path, before=before, after=after))
    return changes


def promote(results: Results, promotion: PromotionSpec, provider: Provider, *,
            dry_run: bool = False, log: Log = lambda _m: None) -> PromotionOutcome:
    """Promote a PASS run: branch, one commit per changed file, and the pull request."""
    check_names(promotion)
    check_pass(results)
    return _promote(results, promotion, provider, dry_run=dry_run, log=log)


def _promote(results: Results, promotion: PromotionSpec, provider: Provider, *,
             dry_run: bool, log: Log) -> PromotionOutcome:
    """:func:`promote` once the run is known to pass."""
    branch, title = branch_name(promotion), f"Promote {promotion.app} to {promotion.version}"
    body = _body(results, promotion)
    existing = provider.find_pull(branch)
    if existing is not None and existing.merged:
        log(f"{title}: already merged ({existing.url})")
        return PromotionOutcome(status="merged", branch=branch, title=title, changes=(),
                                pull=existing)
    changes = tuple(plan_changes(promotion, provider))
    if not changes and existing is None:
        log(f"{promotion.app} {promotion.version} is already promoted on {promotion.base_branch}")
        return PromotionOutcome(status="already-promoted", branch=branch, title=title, changes=())
    if dry_run:
        return PromotionOutcome(status="dry-run", branch=branch, title=title, changes=changes,
                                body=body)
    return _publish(provider, promotion, PromotionOutcome(status="", branch=branch, title=title,
                                                 changes=changes, body=body),
                    lambda change: f"slogate: {results.name} passed its SLOs "
                                   f"({results.start_time}); {change.path} updated.", log)


def _publish(provider: Provider, promotion: PromotionSpec, planned: PromotionOutcome,
             message: Callable[[FileChange], str], log: Log) -> PromotionOutcome:
    """Put the planned changes on the branch, one commit each, and open or update the PR."""
    provider.ensure_branch(planned.branch, promotion.base_branch)
    for change in planned.changes:
        provider.put_file(planned.branch, change.path, change.after,
                          f"{planned.title}\n\n{message(change)}")
    pull = provider.open_or_update_pull(planned.branch, promotion.base_branch, planned.title,
                                        planned.body, list(promotion.labels))
    status = "opened" if pull.created else "updated"
    log(f"pull request {status}: {pull.url}")
    return PromotionOutcome(status=status, branch=planned.branch, title=planned.title,
                   changes=planned.changes, pull=pull, body=planned.body)


_ZERO_WIDTH_SPACE = "\u200b"


def _no_mentions(body: str) -> str:
    """Return ``body`` with a zero-width space after every ``@``, so no name from the run
    notifies a user or team (GitHub mentions need a letter or digit right after the ``@``);
    it reads the same. slogate's own text has no ``@``."""
    return body.replace("@", "@" + _ZERO_WIDTH_SPACE)


def _body(results: Results, promotion: PromotionSpec) -> str:
    """Return the pull request body: the evidence (the markdown report, its texts escaped and
    no @mention in them) and what to do."""
    return _no_mentions(
        f"slogate validated **{promotion.app} {promotion.version}** against its SLOs and found "
        f"it ready to become the stable version.\n\n{render_markdown(results)}\n"
        f"Merging this pull request promotes {promotion.app} to {promotion.version}; a "
        "GitOps controller (Argo CD, Flux) then syncs the change.\n")


def revert(results: Results, promotion: PromotionSpec, provider: Provider, *,
           dry_run: bool = False, log: Log = lambda _m: None) -> PromotionOutcome:
    """Revert a FAILing stable version: branch, one commit per file, and the pull request.

    Nothing happens (``nothing-to-revert``) unless the version is the stable one on the base
    branch, that is unless the promotion would change nothing there.
    """
    check_names(promotion)
    check_fail(results)
    return _revert(results, promotion, provider, dry_run=dry_run, log=log)


def _revert(results: Results, promotion: PromotionSpec, provider: Provider, *,
            dry_run: bool, log: Log) -> PromotionOutcome:
    """:func:`revert` once the run is known to fail."""
    branch = revert_branch_name(promotion)
    title = f"Revert {promotion.app} {promotion.version}: SLOs failed"
    existing = provider.find_pull(branch)
    if existing is not None and existing.merged:
        log(f"{title}: already merged ({existing.url})")
        return PromotionOutcome(status="merged", branch=branch, title=title, changes=(),
                                pull=existing)
    if plan_changes(promotion, provider):
        log(f"{promotion.app} {promotion.version} is not the stable version on "
            f"{promotion.base_branch}: nothing to revert")
        return PromotionOutcome(status="nothing-to-revert", branch=branch, title=title, changes=())
    changes = tuple(plan_revert(promotion, provider))
    body = _revert_body(results, promotion, changes)
    if dry_run:
        return PromotionOutcome(status="dry-run", branch=branch, title=title, changes=changes,
                                body=body)
    return _publish(provider, promotion, PromotionOutcome(status="", branch=branch, title=title,
                                                 changes=changes, body=body),
                    lambda change: f"slogate: {results.name} failed its SLOs "
                                   f"({results.start_time}); {change.path} restored to its "
                                   f"content before {change.reverts[-1].sha}.", log)


def plan_revert(promotion: PromotionSpec, provider: Provider) -> list[FileChange]:
    """Return, for each patched file, the change back to its content before the version.

    For each path: the newest commit of the base branch that changed it, the file at that
    commit's parent, and, while that content still carries the version (the promotion would
    change nothing in it), the next older commit, at most :data:`REVERT_HISTORY` of them.
    """
    read = _base_reader(promotion, provider)
    by_path: dict[str, list[ManifestPatch]] = {}
    for item in promotion.manifests:
        by_path.setdefault(item.path, []).append(item)
    changes = []
    for path, items in by_path.items():
        undone: list[FileCommit] = []
        for commit in provider.file_history(path, promotion.base_branch, REVERT_HISTORY):
            undone.append(commit)
            earlier = provider.read_file(path, commit.parent) if commit.parent else None
            if earlier is None:
                raise PromotionError(f"{path}: commit {commit.sha[:12]} created it already with "
                                     f"{promotion.app} {promotion.version}; nothing to revert to")
            if not _carries(earlier, items, promotion, read):
                changes.append(FileChange(path=path, before=read(path), after=earlier,
                                          reverts=tuple(undone)))
                break
        else:
            raise PromotionError(f"{path}: none of its last {len(undone)} commits on "
                                 f"{promotion.base_branch} has it without {promotion.app} "
                                 f"{promotion.version}; nothing to revert to")
    return changes


def _carries(text: str, items: list[ManifestPatch], promotion: PromotionSpec,
             read: Callable[[str], str]) -> bool:
    """Return whether ``text`` already holds the version: no patch of the path changes it."""
    return not any(patch.changed(text, _patched(item, text, promotion, read)) for item in items)


def _revert_body(results: Results, promotion: PromotionSpec,
                 changes: tuple[FileChange, ...]) -> str:
    """Return the revert pull request's body: what is undone, and the failing run's report."""
    lines = []
    for change in changes:
        brought = change.reverts[-1]
        line = (f"- {md_text(change.path)}: reverts {md_text(brought.sha[:12])} "
                f"({md_text(brought.subject)})")
        if len(change.reverts) > 1:
            later = ", ".join(md_text(c.sha[:12]) for c in change.reverts[:-1])
            line += f", and with it the later {later}"
        lines.append(line)
    return _no_mentions(
        f"slogate found **{promotion.app} {promotion.version}**, the stable version on "
        f"{md_text(promotion.base_branch)}, failing its SLOs. This pull request restores the "
        "manifests to what they were before it was promoted:\n\n" + "\n".join(lines)
        + f"\n\n{render_markdown(results)}\nMerging it takes {promotion.app} back to its "
        "previous version; a GitOps controller (Argo CD, Flux) then syncs the change.\n")
