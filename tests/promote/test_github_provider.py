"""GitHubProvider: real PyGithub against the in-process GitHub emulator and a real bare git repository."""

from __future__ import annotations

import ast
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from coordinator.errors import EXPECTED, exit_code
from promote.errors import PromotionError
from promote.github import GitHubProvider, PullInfo
from tests.support.github_emulator import GitHubEmulator, git, github_emulator

REPO_ROOT = Path(__file__).resolve().parents[2]
MANIFEST = "deploy/app.yaml"
V1 = "image: registry.example.com/app:v1\nreplicas: 3\n"
V2 = "image: registry.example.com/app:v2\nreplicas: 3\n"
BRANCH = "slogate/promote-v2"
NOW = 1_800_000_000.0


@pytest.fixture
def gh(tmp_path: Path) -> Iterator[GitHubEmulator]:
    """An emulated acme/gitops whose main branch holds the v1 manifest and a README."""
    with github_emulator(tmp_path, {MANIFEST: V1, "README.md": "# gitops\n"}) as emulator:
        yield emulator


class Sleeps(list[float]):
    """A fake ``sleep`` that records how long it was asked to wait."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def provider(gh: GitHubEmulator, sleeps: Sleeps | None = None, **kwargs: object) -> GitHubProvider:
    """Return a provider for the emulated repository with time passed in (no real sleeps)."""
    options: dict[str, object] = {"token": gh.token, "base_url": gh.base_url,
                                  "sleep": sleeps if sleeps is not None else Sleeps(), "clock": lambda: NOW}
    options.update(kwargs)
    return GitHubProvider(str(options.pop("repo", gh.full_name)), **options)  # type: ignore[arg-type]


def promote(p: GitHubProvider, text: str = V2, body: str = "SLOs passed.") -> PullInfo:
    """Run one promotion: branch, commit the manifest, open or update the labelled pull request."""
    p.ensure_branch(BRANCH, "main")
    p.put_file(BRANCH, MANIFEST, text, "Promote app to v2")
    return p.open_or_update_pull(BRANCH, "main", "Promote app to v2", body, ["slogate", "promotion"])


def test_first_run_commits_on_a_new_branch_and_opens_a_labelled_pull(gh: GitHubEmulator) -> None:
    """A first promotion creates the branch from main, commits the manifest once and opens a labelled PR."""
    main_before = gh.branch_sha("main")
    info = promote(provider(gh))
    assert info == PullInfo(number=1, url=f"{gh.base_url.removesuffix('/api/v3')}/acme/gitops/pull/1",
                            state="open", created=True, merged=False)
    assert git(gh.bare, "show", f"{BRANCH}:{MANIFEST}") + "\n" == V2
    assert git(gh.bare, "rev-parse", f"{BRANCH}^") == main_before
    assert git(gh.bare, "log", "-1", "--format=%s", BRANCH) == "Promote app to v2"
    assert git(gh.bare, "show", f"main:{MANIFEST}") + "\n" == V1
    assert gh.pull_labels(1) == ["slogate", "promotion"]


def test_second_run_updates_the_same_pull_and_branch(gh: GitHubEmulator) -> None:
    """Running the promotion twice updates the one PR's body and makes no second branch, commit or PR."""
    p = provider(gh)
    first = promote(p, body="first report")
    head_after_first = gh.branch_sha(BRANCH)
    second = promote(provider(gh), body="second report")
    assert (second.number, second.created, second.state) == (first.number, False, "open")
    assert gh.pull_count() == 1
    assert gh.calls("POST pulls") == 1 and gh.calls("PATCH pull") == 1
    assert gh.calls("POST labels") == 1
    assert git(gh.bare, "for-each-ref", "--format=%(refname)").splitlines() == [
        "refs/heads/main", f"refs/heads/{BRANCH}"]
    assert gh.branch_sha(BRANCH) == head_after_first
    assert gh.pull_text(first.number) == ("Promote app to v2", "second report")


def test_identical_content_makes_no_commit(gh: GitHubEmulator) -> None:
    """Putting the text a file already has returns None and leaves the branch where it was."""
    p = provider(gh)
    p.ensure_branch(BRANCH, "main")
    assert p.put_file(BRANCH, MANIFEST, V1, "no-op") is None
    sha = p.put_file(BRANCH, MANIFEST, V2, "change")
    assert sha == gh.branch_sha(BRANCH)
    assert p.put_file(BRANCH, MANIFEST, V2, "again") is None
    assert git(gh.bare, "rev-list", "--count", BRANCH) == "2"
    assert gh.calls("PUT contents") == 1


def test_new_file_is_created(gh: GitHubEmulator) -> None:
    """A file missing on the branch is created in a commit and read back as written."""
    p = provider(gh)
    p.ensure_branch(BRANCH, "main")
    assert p.read_file("deploy/new.yaml", BRANCH) is None
    sha = p.put_file(BRANCH, "deploy/new.yaml", "a: 1\n", "add")
    assert git(gh.bare, "show", f"{sha}:deploy/new.yaml") == "a: 1"
    assert p.read_file("deploy/new.yaml", BRANCH) == "a: 1\n"
    assert p.read_file(MANIFEST, "main") == V1


@pytest.mark.parametrize("merged", [pytest.param(True, id="merged"), pytest.param(False, id="closed")])
def test_finished_pull_is_reported_not_reopened(gh: GitHubEmulator, merged: bool) -> None:
    """A merged or closed promotion PR is returned as such, and neither reopened nor edited nor duplicated."""
    p = provider(gh)
    number = promote(p).number
    if merged:
        gh.merge_pull(number)
    else:
        gh.close_pull(number)
    info = promote(provider(gh), body="another report")
    assert info == PullInfo(number=number, url=info.url, state="closed", created=False, merged=merged)
    assert provider(gh).find_pull(BRANCH) == info
    assert gh.pull_count() == 1 and gh.calls("PATCH pull") == 0
    if merged:
        assert git(gh.bare, "show", f"main:{MANIFEST}") + "\n" == V2


def test_missing_things_are_none(gh: GitHubEmulator) -> None:
    """A missing branch, file or pull request is None, not an error."""
    p = provider(gh)
    assert p.branch_sha("nope") is None
    assert p.read_file("nope.yaml", "main") is None
    assert p.find_pull("nope") is None
    assert p.branch_sha("main") == gh.branch_sha("main")


def test_branch_with_its_own_commits_is_never_moved(gh: GitHubEmulator) -> None:
    """ensure_branch fast-forwards a branch without commits of its own, and leaves one with commits alone."""
    p = provider(gh)
    p.ensure_branch(BRANCH, "main")
    p.put_file("main", "README.md", "# gitops v2\n", "main moves on")
    p.ensure_branch(BRANCH, "main")
    assert gh.branch_sha(BRANCH) == gh.branch_sha("main")  # fast-forwarded
    ours = p.put_file(BRANCH, MANIFEST, V2, "ours")
    p.put_file("main", "README.md", "# gitops v3\n", "main moves again")
    p.ensure_branch(BRANCH, "main")
    assert gh.branch_sha(BRANCH) == ours
    assert [r.endpoint for r in gh.requests].count("PATCH ref") == 2


def test_server_errors_are_retried_with_backoff(gh: GitHubEmulator) -> None:
    """Two 500s on opening the PR are retried after 0.5 s and 1 s, and the third call succeeds."""
    sleeps = Sleeps()
    p = provider(gh, sleeps)
    p.ensure_branch(BRANCH, "main")
    p.put_file(BRANCH, MANIFEST, V2, "Promote")
    gh.fail_next("POST pulls", 2, status=500)
    info = p.open_or_update_pull(BRANCH, "main", "t", "b", [])
    assert info.created and gh.calls("POST pulls") == 3
    assert sleeps == [0.5, 1.0]
    assert gh.pull_count() == 1


def test_retries_are_bounded(gh: GitHubEmulator) -> None:
    """A server that keeps failing is tried 1 + retries times, then a PromotionError says so."""
    sleeps = Sleeps()
    p = provider(gh, sleeps, retries=2)
    gh.fail_next("GET contents", 10, status=502)
    with pytest.raises(PromotionError,
                       match=r"kept failing while reading deploy/app.yaml at main .*HTTP 502"):
        p.read_file(MANIFEST, "main")
    assert gh.calls("GET contents") == 3 and sleeps == [0.5, 1.0]


def test_rate_limit_waits_until_the_reset_time(gh: GitHubEmulator) -> None:
    """A primary rate-limit 403 is retried after sleeping until X-RateLimit-Reset plus one second of skew."""
    sleeps = Sleeps()
    p = provider(gh, sleeps)
    gh.fail_next("GET contents", 1, status=403, rate_limit_reset_epoch=int(NOW) + 4)
    assert p.read_file(MANIFEST, "main") == V1
    assert sleeps == [pytest.approx(5.0)]
    assert gh.calls("GET contents") == 2


def test_rate_limit_wait_is_capped(gh: GitHubEmulator) -> None:
    """A reset time an hour away waits at most max_wait_s per attempt."""
    sleeps = Sleeps()
    p = provider(gh, sleeps, max_wait_s=3.0)
    gh.fail_next("GET contents", 1, status=403, rate_limit_reset_epoch=int(NOW) + 3600)
    assert p.read_file(MANIFEST, "main") == V1
    assert sleeps == [3.0]


def test_bad_token_is_a_promotion_error_without_the_token(gh: GitHubEmulator) -> None:
    """A refused token raises PromotionError (exit code 2) naming the repo and status but not the token."""
    wrong = "ghp_wrongTokenThatMustNotLeak42"
    with pytest.raises(PromotionError) as caught:
        provider(gh, token=wrong).read_file(MANIFEST, "main")
    assert str(caught.value) == "GitHub refused the token (HTTP 401) for acme/gitops"
    assert isinstance(caught.value, EXPECTED) and exit_code(caught.value) == 2
    assert wrong not in repr(caught.value.__cause__) and gh.token not in str(caught.value)
    assert gh.requests and not any(r.authorized for r in gh.requests)


def test_missing_repository(gh: GitHubEmulator) -> None:
    """An unknown repository is reported by name."""
    with pytest.raises(PromotionError, match=r"^repository acme/nope not found$"):
        provider(gh, repo="acme/nope").branch_sha("main")


def test_token_never_leaks(gh: GitHubEmulator, caplog: pytest.LogCaptureFixture) -> None:
    """The token appears in no request body, no log line (PyGithub's debug log included) and no error."""
    caplog.set_level(logging.DEBUG)
    p = provider(gh)
    gh.fail_next("PUT contents", 1, status=500)
    gh.fail_next("GET pulls", 1, status=403, rate_limit_reset_epoch=int(NOW) + 1)
    promote(p, body=f"report mentioning {gh.token[:4]}")
    messages = []
    for bad in (lambda: provider(gh, token=gh.token + "x").branch_sha("main"),
                lambda: p.ensure_branch(BRANCH, "no-such-base")):
        with pytest.raises(PromotionError) as caught:
            bad()
        messages += [str(caught.value), repr(caught.value.__cause__)]
    assert [r.endpoint for r in gh.requests if not r.authorized] == ["GET repo"]
    assert not [r for r in gh.requests if gh.token.encode() in r.body]
    assert gh.token not in caplog.text and "promote.github" in {r.name for r in caplog.records}
    assert not [m for m in messages if gh.token in m]


def test_only_the_adapter_imports_pygithub() -> None:
    """No module of slogate except promote/github.py imports the ``github`` package."""
    offenders = []
    for package in ("coordinator", "workers", "analysis", "promote", "deploy"):
        for path in sorted((REPO_ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(), str(path))
            names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
            names += [n.module or "" for n in ast.walk(tree)
                      if isinstance(n, ast.ImportFrom) and n.level == 0]
            if any(name == "github" or name.startswith("github.") for name in names):
                offenders.append(str(path.relative_to(REPO_ROOT)))
    assert offenders == ["promote/github.py"]
