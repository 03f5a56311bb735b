"""Promotion: from a PASS to a pull request that makes the candidate the stable version.

Three steps, kept apart: :func:`check_pass` re-judges the saved run from its own histograms and
objectives (a "PASS" field alone is never trusted), :func:`plan_changes` computes the patched
files from the base branch (pure but for reading files through the provider), and
:func:`promote` puts them on the branch ``slogate/promote-<app>-<version>`` and opens or updates
the pull request, with the markdown report as its body. Running it again updates the same
branch and pull request; a change that is already on the base branch is "already promoted".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from analysis.rejudge import rejudge
from analysis.report import render_markdown
from analysis.results import Results
from coordinator.errors import PromotionError
from coordinator.spec import ManifestPatch, PromotionSpec, parse_spec
from promote import patch
from promote.provider import Provider, PullInfo

Log = Callable[[str], None]


@dataclass(frozen=True, slots=True, kw_only=True)
class FileChange:
    """One file of the repository before and after the promotion."""

    path: str
    before: str
    after: str

    @property
    def diff(self) -> str:
        """Return the unified diff of the change."""
        return patch.unified_diff(self.before, self.after, self.path)


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    """What the promotion did: ``opened``, ``updated``, ``already-promoted``, ``merged``
    (an earlier pull request was merged already) or ``dry-run``."""

    status: str
    branch: str
    title: str
    changes: tuple[FileChange, ...]
    pull: PullInfo | None = None
    body: str = ""


def branch_name(promotion: PromotionSpec) -> str:
    """Return the promotion branch: ``slogate/promote-<app>-<version>``."""
    return f"slogate/promote-{promotion.app}-{promotion.version}"


def check_pass(results: Results) -> None:
    """Raise PromotionError unless the run, re-judged from its own data, is PASS."""
    if results.verdict != "PASS":
        raise PromotionError(f"the run's verdict is {results.verdict}, not PASS: nothing is "
                             "promoted")
    spec = parse_spec(results.spec, source="results.json spec")
    again = rejudge(results, [o.to_core() for o in spec.objectives], spec.analysis.to_core())
    if again.verdict != "PASS":
        raise PromotionError(f"re-judged from its histograms the run is {again.verdict}, not "
                             "PASS: nothing is promoted")


def _render(text: str, promotion: PromotionSpec) -> str:
    return text.replace("{{ version }}", promotion.version).replace("{{ app }}", promotion.app)


def _patched(item: ManifestPatch, before: str, promotion: PromotionSpec,
             read: Callable[[str], str]) -> str:
    if item.strategy == "copy":
        return patch.copy_manifest(before, read(item.from_ or ""), keep_names=item.keep_names)
    if item.strategy == "set":
        edits = [patch.Edit(path=e.path, value=_render(e.value, promotion)) for e in item.edits]
        return patch.set_values(before, edits, document=item.document)
    if item.strategy == "kustomize-image":
        image = {k: _render(v, promotion) for k, v in (item.image or {}).items()}
        return patch.kustomize_image(before, name=image.get("name", ""),
                                     new_tag=image.get("newTag"), new_name=image.get("newName"),
                                     digest=image.get("digest"))
    return patch.helm_value(before, key=item.key or "", value=_render(item.value or "", promotion))


def plan_changes(promotion: PromotionSpec, provider: Provider) -> list[FileChange]:
    """Return the files the promotion changes on the base branch (unchanged ones left out)."""
    base = promotion.base_branch

    def read(path: str) -> str:
        text = provider.read_file(path, base)
        if text is None:
            raise PromotionError(f"{path}: not found on branch {base} of {promotion.repository}")
        return text

    changes = []
    for item in promotion.manifests:
        before = read(item.path)
        after = _patched(item, before, promotion, read)
        if patch.changed(before, after):
            changes.append(FileChange(path=item.path, before=before, after=after))
    return changes


def promote(results: Results, promotion: PromotionSpec, provider: Provider, *,
            dry_run: bool = False, log: Log = lambda _m: None) -> Outcome:
    """Promote a PASS run: branch, one commit per changed file, and the pull request."""
    check_pass(results)
    branch, title = branch_name(promotion), f"Promote {promotion.app} to {promotion.version}"
    body = _body(results, promotion)
    existing = provider.find_pull(branch)
    if existing is not None and existing.merged:
        log(f"{title}: already merged ({existing.url})")
        return Outcome(status="merged", branch=branch, title=title, changes=(), pull=existing)
    changes = tuple(plan_changes(promotion, provider))
    if not changes and existing is None:
        log(f"{promotion.app} {promotion.version} is already promoted on {promotion.base_branch}")
        return Outcome(status="already-promoted", branch=branch, title=title, changes=())
    if dry_run:
        return Outcome(status="dry-run", branch=branch, title=title, changes=changes, body=body)
    provider.ensure_branch(branch, promotion.base_branch)
    for change in changes:
        provider.put_file(branch, change.path, change.after,
                          f"{title}\n\nslogate: {results.name} passed its SLOs "
                          f"({results.start_time}); {change.path} updated.")
    pull = provider.open_or_update_pull(branch, promotion.base_branch, title, body,
                                        list(promotion.labels))
    status = "opened" if pull.created else "updated"
    log(f"pull request {status}: {pull.url}")
    return Outcome(status=status, branch=branch, title=title, changes=changes, pull=pull,
                   body=body)


def _body(results: Results, promotion: PromotionSpec) -> str:
    """Return the pull request body: the evidence (the markdown report) and what to do."""
    return (f"slogate validated **{promotion.app} {promotion.version}** against its SLOs and "
            f"found it ready to become the stable version.\n\n{render_markdown(results)}\n"
            f"Merging this pull request promotes {promotion.app} to {promotion.version}; a "
            "GitOps controller (Argo CD, Flux) then syncs the change.\n")
