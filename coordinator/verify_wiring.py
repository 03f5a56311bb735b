"""``slogate verify``: after the promotion pull request, close the loop.

Wait until the pull request is merged (:func:`promote.verify.wait_merged`), until the stable
Deployment runs what the merged manifest says (:func:`deploy.sync_wait.wait_synced`), then run
the experiment against the stable Service. A FAIL with ``onFail: revert-pr`` opens the revert
pull request with both runs in its body; the verdict is left on the merged pull request as a
comment, and the revert gets its check and comment like any pull request slogate opens.

The verification run is the experiment's, single-version: against the stable Service's URL,
without the baseline (gone once promoted) and the objectives relative to it, without a dark
launch and without promoting by itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from analysis.results import Results
from coordinator.errors import SpecError
from coordinator.pr_evidence import publish_evidence
from coordinator.promote_wiring import make_provider
from coordinator.spec import ExperimentSpec
from deploy.sync_state import wanted_images
from deploy.sync_wait import StableDeployment, wait_synced
from promote.errors import PromotionError
from promote.evidence import EvidenceSink
from promote.flow import PromotionOutcome, act, branch_name, check_names
from promote.provider import Provider, PullInfo
from promote.spec import PromotionSpec
from promote.verify import VERIFY_MARKER, both_runs, verification_comment, wait_merged

Log = Callable[[str], None]


@dataclass(frozen=True, slots=True, kw_only=True)
class Verified:
    """The verification run and the revert it opened (None: no revert)."""

    checked: Results
    revert: PromotionOutcome | None


@dataclass(frozen=True, slots=True, kw_only=True)
class VerifyOptions:
    """Where the stable version runs and how long to wait for each step.

    Example: ``VerifyOptions(stable=StableDeployment(namespace="shop", name="checkout"),
    target="http://checkout.shop:8080", merge_timeout_s=3600, sync_timeout_s=600, poll_s=10)``
    """

    stable: StableDeployment
    target: str
    merge_timeout_s: float
    sync_timeout_s: float
    poll_s: float
    report_url: str | None = None


def verification_spec(spec: ExperimentSpec, target: str) -> ExperimentSpec:
    """Return ``spec`` as the verification runs it: against ``target`` alone, the objectives
    relative to the baseline and the dark launch left out, no promotion by itself."""
    dumped = spec.model_dump(mode="json", by_alias=True, exclude_none=True)
    dumped["target"] = target
    dumped.pop("baseline", None)
    dumped["objectives"] = [o for o in dumped.get("objectives", []) if not o.get("vs")]
    if not dumped["objectives"]:
        raise SpecError("every objective is relative to the baseline: the stable version alone "
                        "cannot be verified against them")
    if dumped.get("promotion"):
        dumped["promotion"]["auto"] = False
    try:
        return ExperimentSpec.model_validate(dumped)
    except ValueError as exc:
        raise SpecError(f"the verification spec: {exc}".splitlines()[0]) from None


def merged_images(provider: Provider, promotion: PromotionSpec,
                  deployment: str) -> dict[str, str] | None:
    """Return the images the merged manifests give ``deployment`` (None: no patched file holds
    that Deployment; the version's tag is then looked for)."""
    for path in dict.fromkeys(item.path for item in promotion.manifests):
        text = provider.read_file(path, promotion.base_branch)
        found = wanted_images(text, deployment) if text is not None else None
        if found is not None:
            return found
    return None


def verify(results: Results, spec: ExperimentSpec, options: VerifyOptions, *,
           run: Callable[[ExperimentSpec], Results], log: Log) -> Verified:
    """Wait for the merge and the sync, run the experiment against the stable version; revert
    on a FAIL when ``onFail: revert-pr``; return the verification run and the revert."""
    promotion = spec.promotion
    if promotion is None:
        raise PromotionError("the spec has no promotion block: nothing to verify")
    check_names(promotion)
    checking = verification_spec(spec, options.target)  # a spec error before any wait
    provider = make_provider(promotion)
    pull = wait_merged(provider, branch_name(promotion), timeout_s=options.merge_timeout_s,
                       poll_s=options.poll_s, log=log)
    images = merged_images(provider, promotion, options.stable.name)
    wait_synced(options.stable, images=images, version=promotion.version,
                timeout_s=options.sync_timeout_s, poll_s=options.poll_s, log=log)
    log(f"{options.stable.label} runs {promotion.app} {promotion.version}: verifying "
        f"against {options.target}")
    checked = run(checking)
    revert = _revert_if_failed(results, checked, promotion, provider, options, log)
    _comment(provider, pull, checked, promotion, options, revert, log)
    return Verified(checked=checked, revert=revert)


def _revert_if_failed(promoted: Results, checked: Results, promotion: PromotionSpec,
                      provider: Provider, options: VerifyOptions, log: Log) -> PromotionOutcome | None:
    """Open the revert pull request for a FAIL when the spec asks for it, both runs in it."""
    if checked.verdict != "FAIL" or promotion.on_fail != "revert-pr":
        if checked.verdict == "FAIL":
            log("the stable version FAILs its SLOs; no revert (set onFail: revert-pr)")
        return None
    outcome = act(checked, promotion, provider, log=log)
    if outcome.pull is None or outcome.status not in ("opened", "updated"):
        return outcome
    body = outcome.body + both_runs(promoted, checked)
    pull = provider.open_or_update_pull(outcome.branch, promotion.base_branch, outcome.title,
                                        body, list(promotion.labels))
    outcome = replace(outcome, pull=pull, body=body)
    publish_evidence(checked, promotion, outcome, provider, report_url=options.report_url,
                     runs=None, log=log)
    return outcome


def _comment(provider: Provider, pull: PullInfo, checked: Results, promotion: PromotionSpec,
             options: VerifyOptions, revert: PromotionOutcome | None, log: Log) -> None:
    """Leave the verification's verdict on the merged promotion pull request."""
    if not isinstance(provider, EvidenceSink):
        return
    revert_url = revert.pull.url if revert is not None and revert.pull is not None else None
    body = verification_comment(checked, app=promotion.app, version=promotion.version,
                                where=options.stable.label, revert_url=revert_url)
    done = provider.upsert_comment(pull.number, VERIFY_MARKER, body)
    log(f"verification {'reported' if done.created else 'updated'} on pull request "
        f"#{pull.number}: {done.url}")
