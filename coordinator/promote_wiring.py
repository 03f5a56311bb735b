"""Wiring the promotion (:mod:`promote`) into the CLI: the provider a spec asks for, its token,
the one re-judging of ``slogate promote`` carried to the flow, and what to print.

The token comes from ``promotion.tokenFile`` or the ``GITHUB_TOKEN`` environment variable; it is
handed to the provider and never printed, logged or written. With a promotion service
(:mod:`promote.service`) the token stays there: :func:`post_to_service` sends the results with
the shared secret only, to the URL given and nowhere else: a redirect is never followed (it
would carry the secret to the redirect's target) and, like any answer but a 2xx, is an error.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from analysis.formatting import limits_text
from analysis.results import Results
from analysis.verdict import Slo, Verdict
from coordinator.spec import ExperimentSpec
from promote.errors import PromotionError
from promote.flow import PromotionOutcome, act, check_names
from promote.provider import Provider
from promote.spec import PromotionSpec, TokenSecret


def read_secret(path: Path | None, env: str, option: str, missing: str | None = None) -> str:
    """Return the secret in the file ``path``, else in ``$env``; raise PromotionError naming
    ``option`` when the file is unreadable or empty, or ``missing`` when there is none."""
    if path is not None:
        try:
            text = path.read_text().strip()
        except OSError as exc:
            raise PromotionError(f"{option} {path}: cannot read it "
                                 f"({exc.__class__.__name__})") from None
        if not text:
            raise PromotionError(f"{option} {path}: the file is empty")
        return text
    text = os.environ.get(env, "").strip()
    if not text:
        raise PromotionError(missing or f"no {env}: set it or pass {option}")
    return text


SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def pod_namespace(path: Path = SERVICE_ACCOUNT_NAMESPACE) -> str:
    """Return the namespace this pod runs in (its service account's), or ``default``."""
    try:
        return path.read_text().strip() or "default"
    except OSError:
        return "default"


def read_kubernetes_token(secret: TokenSecret) -> str:
    """Return the token in the Kubernetes Secret ``secret`` names; KubernetesError otherwise."""
    from deploy.launch import read_kubernetes_secret

    value = read_kubernetes_secret(secret.name, secret.key, secret.namespace or pod_namespace(),
                                   kubeconfig=secret.kubeconfig, context=secret.context).strip()
    if not value:
        raise PromotionError(f"secret {secret.namespace or pod_namespace()}/{secret.name}: "
                             f"key {secret.key} is empty")
    return value


def read_token(promotion: PromotionSpec) -> str:
    """Return the GitHub token: tokenFile, else tokenSecret (Kubernetes), else GITHUB_TOKEN;
    raise PromotionError (KubernetesError for the Secret) if there is none."""
    if promotion.token_secret is not None:
        return read_kubernetes_token(promotion.token_secret)
    return read_secret(Path(promotion.token_file) if promotion.token_file else None,
                       "GITHUB_TOKEN", "promotion.tokenFile",
                       "no GitHub token: set GITHUB_TOKEN, promotion.tokenFile or "
                       "promotion.tokenSecret")


def make_provider(promotion: PromotionSpec) -> Provider:
    """Return the provider of a promotion block (GitHub or a local repository)."""
    if promotion.provider == "local":
        from promote.local_git import LocalGitProvider

        return LocalGitProvider(promotion.repository)
    from promote.github import GitHubProvider

    return GitHubProvider(promotion.repository, read_token(promotion), base_url=promotion.base_url,
                          upstream=promotion.upstream)


def run_promotion(results: Results, promotion: PromotionSpec, *, dry_run: bool,
                  log: Callable[[str], None], show: Callable[[str], None],
                  show_body: bool = False, again: str | None = None,
                  provider: Provider | None = None) -> PromotionOutcome:
    """Promote a PASS (or revert on a FAIL, as ``onFail`` says), then show the diff and the pull
    request (its body on a dry run or when asked). ``again``: the verdict the caller re-judged
    already (:func:`promotion_refusal`'s), so the run is not re-judged twice; ``provider``
    default: the spec's."""
    check_names(promotion)  # before the provider exists: no call for a name outside the grammar
    outcome = act(results, promotion, provider or make_provider(promotion), again=again,
                  dry_run=dry_run,
                  log=log)
    for change in outcome.changes:
        show(change.diff)
    if outcome.status == "dry-run":
        head, base = outcome.branch, promotion.base_branch
        if promotion.upstream:
            head = f"{promotion.repository.split('/')[0]}:{head}"
            base = f"{promotion.upstream}:{base}"
        show(f"would open: {outcome.title} ({head} -> {base})\n")
        show(outcome.body)
    elif outcome.pull is not None:
        show(f"{outcome.title}: {outcome.status} {outcome.pull.url}\n")
        if show_body:
            show(outcome.body)
    return outcome


def spec_mismatch(results: Results, spec: ExperimentSpec) -> str | None:
    """Return why ``spec`` is not the one ``results`` was run and judged with (another
    experiment's name, other objectives), or None when it is."""
    if spec.name != results.name:
        return f"the spec is experiment {spec.name!r}, but the run is of {results.name!r}"
    ours = [o.to_core() for o in spec.objectives]
    theirs = list(results.saved.objectives)
    only_ours = [o for o in ours if o not in theirs]
    only_theirs = [o for o in theirs if o not in ours]
    if not only_ours and not only_theirs:
        return None
    parts = [f"{where}: {', '.join(_objective_text(o) for o in which)}" for where, which in
             (("only in the spec", only_ours), ("only in the run", only_theirs)) if which]
    return f"the spec's objectives are not those the run was judged on ({'; '.join(parts)})"


def _objective_text(objective: Slo) -> str:
    endpoint = f" [{objective.endpoint}]" if objective.endpoint else ""
    versus = f" vs {objective.vs}" if objective.vs else ""
    return f"{objective.metric}{endpoint} {limits_text(objective, plain=True)}{versus}"


def promotion_refusal(results: Results, on_fail: str, again: str) -> tuple[int, str] | None:
    """Return ``(exit code, why)`` when the run, re-judged from its own histograms (``again``,
    :func:`~promote.flow.rejudged_verdict`'s answer, carried on to :func:`run_promotion`), may be
    neither promoted (PASS) nor reverted (FAIL with ``on_fail`` ``revert-pr``); None otherwise.
    The exit code is the verdict's (1 FAIL, 3 INCONCLUSIVE or INVALID), never the input
    error's 2."""
    if again == "FAIL" and on_fail == "revert-pr":
        return None
    if again == "PASS" and results.verdict == "PASS":
        return None
    shown = again if again != "PASS" else results.verdict
    saved = "" if results.verdict == again else f"; the file says {results.verdict}"
    return Verdict(shown).exit_code, (
        f"the run is {shown} (re-judged from its histograms{saved}): only a PASS run is "
        "promoted" + ("" if on_fail == "revert-pr" else
                      " (a FAIL of the stable version is reverted with onFail: revert-pr)"))


def post_to_service(results: Results, url: str, secret: str, *,
                    timeout_s: float = 120.0) -> dict[str, Any]:
    """Return the promotion service's answer to ``results`` (status, pullRequest, branch).

    ``url`` is the service's base URL (``http://host:8787``) or its ``/v1/promotions`` URL.
    Raise PromotionError with a one-line message naming the HTTP status on any failure.
    """
    if not secret:
        raise PromotionError("no shared secret for the promotion service: set "
                             "SLOGATE_PROMOTE_SECRET")
    endpoint = url if url.rstrip("/").endswith("/v1/promotions") else \
        url.rstrip("/") + "/v1/promotions"
    request = urllib.request.Request(
        endpoint, data=results.to_json().encode(), method="POST",
        headers={"Authorization": f"Bearer {secret}", "Content-Type": "application/json"})
    try:
        with _OPENER.open(request, timeout=timeout_s) as response:
            answer = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        if 300 <= exc.code < 400:
            raise PromotionError(f"promotion service {endpoint}: HTTP {exc.code}: a redirect "
                                 "(to " + _location(exc) + "), not followed: give the "
                                 "service's own URL") from None
        raise PromotionError(f"promotion service {endpoint}: HTTP {exc.code}: "
                             f"{_error_of(exc)}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise PromotionError(f"promotion service {endpoint}: cannot reach it ({reason})") from None
    except json.JSONDecodeError:
        raise PromotionError(f"promotion service {endpoint}: the answer is not JSON") from None
    if not isinstance(answer, dict):
        raise PromotionError(f"promotion service {endpoint}: the answer is not a JSON object")
    return answer


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """Follows no redirect: urllib then raises the 3xx as an HTTPError."""

    def redirect_request(self, *_args: Any, **_kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


def _location(exc: urllib.error.HTTPError) -> str:
    """Return where a redirect pointed (scheme, host and path only: no userinfo, no query)."""
    target = urlsplit((exc.headers.get("Location") if exc.headers else None) or "")
    host = target.hostname or ""
    try:
        port = f":{target.port}" if target.port else ""
    except ValueError:
        port = ""
    return f"{target.scheme}://{host}{port}{target.path}" if host else (target.path or "nowhere")


def _error_of(exc: urllib.error.HTTPError) -> str:
    """Return the ``error`` of a JSON error answer, else the HTTP reason."""
    try:
        error = json.loads(exc.read()).get("error")
    except (OSError, ValueError, AttributeError):
        error = None
    return str(error) if error else str(exc.reason)
