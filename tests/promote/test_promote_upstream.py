"""Fork → upstream pull requests (``promotion.upstream``): the branch and commit go to the fork,
the pull request to the upstream with head ``<fork-owner>:<branch>``.

Through the real PyGithub against the GitHub emulator serving two repositories: the upstream and
its fork, a ``git clone --bare --shared`` of it (objects shared, as in a GitHub fork network).
Where the commits live is read back with git.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from github import Auth, Github

from coordinator.cli import main
from coordinator.demo import EXAMPLE_DIR
from coordinator.errors import SpecError
from coordinator.spec import parse_spec
from promote.errors import PromotionError
from promote.flow import promote
from promote.github import GitHubProvider
from promote.service import ServiceConfig, check_allowed, parse_allowed
from promote.spec import PromotionSpec
from tests.analysis.test_reports import OBJECTIVES, synthetic_results
from tests.support.github_emulator import GitHubEmulator, git, github_emulator

BASELINE = "samples/deployments/baseline.yaml"
CANDIDATE = "samples/deployments/candidate.yaml"
BRANCH = "slogate/promote-hello-2.0"
ORIGINAL = (EXAMPLE_DIR / "baseline.yaml").read_text()
FILES = {BASELINE: ORIGINAL, CANDIDATE: (EXAMPLE_DIR / "candidate.yaml").read_text()}


def _block(gh: GitHubEmulator, **extra: object) -> dict[str, Any]:
    return {"repository": "octo/gitops", "upstream": gh.full_name, "baseUrl": gh.base_url,
            "app": "hello", "version": "2.0", "onFail": "revert-pr",
            "manifests": [{"path": BASELINE, "strategy": "copy", "from": CANDIDATE}], **extra}


def _results_file(tmp_path: Path, verdict_objectives: Sequence[object], block: dict[str, Any],
                  name: str = "results.json") -> Path:
    data = json.loads(synthetic_results(verdict_objectives).to_json())
    data["spec"]["promotion"] = block
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def _has_object(bare: Path, sha: str) -> bool:
    return subprocess.run(["git", "-C", str(bare), "cat-file", "-e", sha],
                          capture_output=True).returncode == 0


@pytest.mark.github
def test_the_pull_request_goes_upstream_and_the_commit_stays_in_the_fork(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`slogate promote` twice (after a dry run that names head and base and writes nothing):
    one labelled PR on acme/gitops, head octo:<branch>, base main; the branch and its commit
    exist only in the fork and start at upstream's main (newer than the fork's own main); the
    fork has no PR; the token is in no output."""
    with github_emulator(tmp_path, FILES) as gh:
        fork = gh.add_fork("octo")
        gh._commit_file("main", "README.md", b"# gitops\n", "Upstream moves on")
        monkeypatch.setenv("GITHUB_TOKEN", gh.token)
        path = _results_file(tmp_path, OBJECTIVES, _block(gh))
        dry = CliRunner().invoke(main, ["promote", str(path), "--dry-run"])
        assert f"would open: Promote hello to 2.0 (octo:{BRANCH} -> acme/gitops:main)" in dry.stdout
        assert fork.branch_sha(BRANCH) is None and gh.pull_count() == 0
        out = CliRunner().invoke(main, ["promote", str(path)])
        again = CliRunner().invoke(main, ["promote", str(path)])
        assert out.exit_code == 0 and again.exit_code == 0, out.stderr + again.stderr
        assert "opened" in out.stdout and "updated" in again.stdout
        api = Github(base_url=gh.base_url, auth=Auth.Token(gh.token))
        pull = api.get_repo("acme/gitops").get_pull(1)
        assert (pull.head.label, pull.head.repo.full_name) == (f"octo:{BRANCH}", "octo/gitops")
        assert (pull.base.ref, pull.base.repo.full_name) == ("main", "acme/gitops")
        assert gh.pull_count() == 1 and fork.pull_count() == 0 and gh.pull_labels(1) == ["slogate"]
        head = fork.branch_sha(BRANCH)
        assert head is not None and gh.branch_sha(BRANCH) is None
        assert not _has_object(gh.bare, head) and _has_object(fork.bare, head)
        assert git(fork.bare, "rev-parse", f"{head}^") == gh.branch_sha("main")
        assert git(fork.bare, "rev-parse", "main") != gh.branch_sha("main")
        assert "ghcr.io/slogate/hello:2.0" in git(fork.bare, "show", f"{BRANCH}:{BASELINE}")
        fork_json = api.get_repo("octo/gitops")
        assert fork_json.fork and fork_json.parent.full_name == "acme/gitops"
        for text in (dry.stdout, dry.stderr, out.stdout, out.stderr, again.stdout, again.stderr,
                     pull.body):
            assert gh.token not in text


@pytest.mark.github
def test_a_fail_after_the_upstream_merge_opens_the_revert_upstream(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Promotion merged upstream, then a FAIL: the revert branch is in the fork, its file the
    pre-promotion one byte for byte, the PR on acme/gitops from octo:slogate/revert-hello-2.0."""
    with github_emulator(tmp_path, FILES) as gh:
        fork = gh.add_fork("octo")
        monkeypatch.setenv("GITHUB_TOKEN", gh.token)
        spec = PromotionSpec.model_validate(_block(gh))
        promote(synthetic_results(OBJECTIVES), spec,
                GitHubProvider("octo/gitops", gh.token, base_url=gh.base_url, upstream=gh.full_name))
        gh.merge_pull(1)
        out = CliRunner().invoke(main, ["promote", str(_results_file(tmp_path, ["p(99)<1ms"],
                                                                     _block(gh)))])
        assert out.exit_code == 0, out.stderr
        api = Github(base_url=gh.base_url, auth=Auth.Token(gh.token))
        pull = api.get_repo("acme/gitops").get_pull(2)
        assert pull.title == "Revert hello 2.0: SLOs failed"
        assert pull.head.label == "octo:slogate/revert-hello-2.0" and pull.base.ref == "main"
        assert git(fork.bare, "show", f"slogate/revert-hello-2.0:{BASELINE}") + "\n" == ORIGINAL
        assert gh.branch_sha("slogate/revert-hello-2.0") is None


@pytest.mark.github
def test_a_fork_that_lacks_upstreams_base_commit_is_a_clear_error(tmp_path: Path) -> None:
    """A fork not sharing objects, behind the upstream: one-line error saying to sync the fork;
    no branch, no pull request."""
    with github_emulator(tmp_path, FILES) as gh:
        fork = gh.add_fork("octo", shared=False)
        gh._commit_file("main", "README.md", b"# gitops\n", "Upstream moves on")
        spec = PromotionSpec.model_validate(_block(gh))
        provider = GitHubProvider("octo/gitops", gh.token, base_url=gh.base_url,
                                  upstream=gh.full_name)
        with pytest.raises(PromotionError, match=r"cannot create branch .* in octo/gitops: .*"
                                                 r"the fork lacks [0-9a-f]{12} of acme/gitops: "
                                                 r"sync the fork\)$"):
            promote(synthetic_results(OBJECTIVES), spec, provider)
        assert fork.branch_sha(BRANCH) is None and gh.pull_count() == 0


def test_upstream_with_the_local_provider_is_a_spec_error(tmp_path: Path) -> None:
    """provider local has no forks: the spec is refused with one line naming upstream."""
    block = {"provider": "local", "repository": str(tmp_path), "upstream": "acme/gitops",
             "version": "2.0", "manifests": [{"path": BASELINE, "strategy": "copy",
                                              "from": CANDIDATE}]}
    spec = {"name": "x", "target": "http://127.0.0.1:8080", "load": {"rate": 1, "duration": "1s"},
            "promotion": block}
    with pytest.raises(SpecError, match="upstream is for provider github; a local repository "
                                        "has no forks"):
        parse_spec(spec)
    out = CliRunner().invoke(main, ["promote", str(_results_file(tmp_path, OBJECTIVES, block))])
    assert out.exit_code == 2 and len(out.stderr.strip().splitlines()) == 1
    assert "upstream is for provider github" in out.stderr


@pytest.mark.parametrize("allow, error", [
    pytest.param(("octo/gitops", "acme/gitops"), None, id="both-allowed"),
    pytest.param(("octo/gitops",), "repository acme/gitops is not allowed", id="upstream-not"),
    pytest.param(("acme/gitops",), "repository octo/gitops is not allowed", id="fork-not"),
    pytest.param(("octo/gitops", "acme/gitops:other.yaml"),
                 f"path {BASELINE} of acme/gitops is not allowed", id="upstream-path-not"),
])
def test_the_service_allows_an_upstream_only_on_its_allow_list(
        allow: tuple[str, ...], error: str | None) -> None:
    """The promotion service writes to the fork and opens the PR upstream: both must be allowed."""
    promotion = PromotionSpec.model_validate({
        "repository": "octo/gitops", "upstream": "acme/gitops", "version": "2.0",
        "manifests": [{"path": BASELINE, "strategy": "copy", "from": CANDIDATE}]})
    config = ServiceConfig(allowed=tuple(parse_allowed(a) for a in allow), token="t", secret="s")
    rejection = check_allowed(promotion, config)
    assert (rejection.error if rejection else None) == error
