"""The promotion service: real HTTP on 127.0.0.1, the GitHub emulator behind it, real PyGithub.

The service runs in-process (its own event loop in a daemon thread, as the emulator does); the
tests talk to it with urllib and read the emulated repository back with git.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from click.testing import CliRunner

from analysis.results import Results
from coordinator.cli import main
from coordinator.demo import EXAMPLE_DIR
from coordinator.promote_wiring import post_to_service
from promote.errors import PromotionError
from promote.service import (
    Allowed,
    Rejection,
    ServiceConfig,
    check_allowed,
    check_auth,
    check_size,
    make_app,
    parse_allowed,
)
from promote.spec import PromotionSpec
from tests.analysis.test_reports import OBJECTIVES, synthetic_results
from tests.support.github_emulator import GitHubEmulator, git, github_emulator

BASELINE = "samples/deployments/baseline.yaml"
CANDIDATE = "samples/deployments/candidate.yaml"
BRANCH = "slogate/promote-hello-2.0"
SECRET = "s3cret-shared-0123456789abcdef"
LIMIT = 256 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class Answer:
    """One HTTP answer of the service: status and parsed JSON body (raw text kept)."""

    status: int
    text: str

    @property
    def json(self) -> Any:
        return json.loads(self.text)


@dataclass(frozen=True, slots=True, kw_only=True)
class Rig:
    """The service's URL and the emulated GitHub it promotes to."""

    url: str
    gh: GitHubEmulator


def _promotion(gh: GitHubEmulator, **extra: Any) -> dict[str, Any]:
    block = {"repository": gh.full_name, "app": "hello", "version": "2.0", "baseUrl": gh.base_url,
             "manifests": [{"path": BASELINE, "strategy": "copy", "from": CANDIDATE}]}
    block.update(extra)
    return json.loads(PromotionSpec.model_validate(block).model_dump_json(by_alias=True))


def _document(results: Results, promotion: dict[str, Any] | None) -> dict[str, Any]:
    data = json.loads(results.to_json())
    data["spec"]["promotion"] = promotion
    return data


def _post(url: str, body: bytes, secret: str | None = SECRET) -> Answer:
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers["Authorization"] = f"Bearer {secret}"
    request = urllib.request.Request(f"{url}/v1/promotions", data=body, headers=headers,
                                     method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return Answer(status=response.status, text=response.read().decode())
    except urllib.error.HTTPError as exc:
        return Answer(status=exc.code, text=exc.read().decode())


def _branches(gh: GitHubEmulator) -> list[str]:
    return git(gh.bare, "for-each-ref", "--format=%(refname:short)", "refs/heads").splitlines()


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    """The service (allowed: acme/gitops, baseline.yaml only) in front of an emulated fork."""
    files = {BASELINE: (EXAMPLE_DIR / "baseline.yaml").read_text(),
             CANDIDATE: (EXAMPLE_DIR / "candidate.yaml").read_text()}
    with github_emulator(tmp_path, files) as gh:
        config = ServiceConfig(allowed=(parse_allowed(f"{gh.full_name}:{BASELINE}"),),
                               token=gh.token, secret=SECRET, github_url=gh.base_url,
                               max_body_bytes=LIMIT)
        with _serving(make_app(config)) as url:
            yield Rig(url=url, gh=gh)


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Every log record, PyGithub's debug lines included."""
    caplog.set_level(logging.DEBUG)
    return caplog


def _serving(app: web.Application, **options: Any) -> Any:
    """Serve ``app`` on 127.0.0.1 from a daemon thread (aiohttp server ``options``, default no
    access log); yield its base URL."""
    import contextlib

    @contextlib.contextmanager
    def run() -> Iterator[str]:
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="promote-service", daemon=True)
        thread.start()

        async def start() -> tuple[web.AppRunner, int]:
            runner = web.AppRunner(app, **(options or {"access_log": None}))
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            return runner, runner.addresses[0][1]

        runner, port = asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=10)
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=10)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)
            loop.close()

    return run()


def _assert_no_secrets(rig: Rig, answers: list[Answer], caplog: pytest.LogCaptureFixture) -> None:
    for text in [a.text for a in answers] + [caplog.text]:
        assert rig.gh.token not in text and SECRET not in text


# ----------------------------------------------------------------------- the pure decisions


@pytest.mark.parametrize("header, refused", [
    pytest.param(f"Bearer {SECRET}", False, id="right"),
    pytest.param(f"bearer {SECRET}", False, id="scheme-case-insensitive"),
    pytest.param(f"Bearer {SECRET}x", True, id="longer"),
    pytest.param(f"Bearer {SECRET[:-1]}", True, id="shorter"),
    pytest.param(f"token {SECRET}", True, id="wrong-scheme"),
    pytest.param("Bearer ", True, id="empty"),
    pytest.param(None, True, id="missing"),
])
def test_check_auth_accepts_only_the_bearer_secret(header: str | None, refused: bool) -> None:
    """Only ``Bearer <secret>`` passes; anything else is a 401."""
    assert (check_auth(header, SECRET) is not None) == refused
    if refused:
        assert check_auth(header, SECRET) == Rejection(status=401,
                                                       error="missing or wrong shared secret")


def test_an_empty_configured_secret_lets_nobody_in() -> None:
    """A service with no secret refuses every request, even one sending an empty bearer."""
    assert check_auth("Bearer ", "") is not None and check_auth("Bearer x", "") is not None


@pytest.mark.parametrize("length, refused", [
    pytest.param(None, False, id="chunked"), pytest.param(100, False, id="small"),
    pytest.param(100, False, id="at-limit"), pytest.param(101, True, id="over")])
def test_check_size_refuses_a_declared_body_over_the_limit(length: int | None,
                                                           refused: bool) -> None:
    """A Content-Length over the limit is a 413; none declared is left to the reader."""
    rejection = check_size(length, 100)
    assert (rejection is not None and rejection.status == 413) == refused


@pytest.mark.parametrize("allow, extra, error", [
    pytest.param("acme/gitops", {}, None, id="any-path"),
    pytest.param(f"ACME/GitOps:{BASELINE},x.yaml", {}, None, id="listed-path"),
    pytest.param("acme/other", {}, "repository acme/gitops is not allowed", id="other-repo"),
    pytest.param("acme/gitops:x.yaml", {}, f"path {BASELINE} of acme/gitops is not allowed",
                 id="other-path"),
    pytest.param("acme/gitops", {"provider": "local"}, "this service promotes to GitHub only",
                 id="local-provider"),
    pytest.param("acme/gitops", {"baseUrl": "http://evil.example/api/v3"},
                 "promotion.baseUrl is not this service's GitHub", id="other-github"),
])
def test_check_allowed_follows_the_allow_list(allow: str, extra: dict[str, Any],
                                              error: str | None) -> None:
    """Repository (case-insensitive), written paths, provider and API URL must all be allowed."""
    promotion = PromotionSpec.model_validate({
        "repository": "acme/gitops", "version": "2.0", "baseUrl": "http://gh/api/v3",
        "manifests": [{"path": BASELINE, "strategy": "copy", "from": CANDIDATE}], **extra})
    config = ServiceConfig(allowed=(parse_allowed(allow),), token="t", secret="s",
                           github_url="http://gh/api/v3")
    rejection = check_allowed(promotion, config)
    assert (rejection.error if rejection else None) == error
    assert rejection is None or rejection.status == 403


@pytest.mark.parametrize("text, expected", [
    pytest.param("a/b", Allowed(repository="a/b"), id="repo"),
    pytest.param("a/b:x.yaml, y/z.yaml", Allowed(repository="a/b",
                                                 paths=frozenset({"x.yaml", "y/z.yaml"})),
                 id="paths"),
    pytest.param("ab", None, id="no-owner"), pytest.param("a/b/c", None, id="too-deep"),
    pytest.param("a/b:", None, id="empty-paths"),
])
def test_parse_allowed(text: str, expected: Allowed | None) -> None:
    """``owner/name[:path,path]`` parses; anything else is a PromotionError."""
    if expected is None:
        with pytest.raises(PromotionError, match="--allow"):
            parse_allowed(text)
    else:
        assert parse_allowed(text) == expected


def test_the_config_repr_shows_neither_token_nor_secret() -> None:
    """Printing the configuration never prints the token or the secret."""
    config = ServiceConfig(allowed=(), token="ghp_tokenvalue", secret="the-secret")
    assert "ghp_tokenvalue" not in repr(config) and "the-secret" not in repr(config)


# ----------------------------------------------------------------------- over HTTP


@pytest.mark.github
def test_pass_opens_the_pull_request_with_the_services_token(
        rig: Rig, logs: pytest.LogCaptureFixture) -> None:
    """A PASS run posted with the secret: 201, the branch and commit exist in the emulated fork,
    the pull request is the one answered; posting again is 200 "updated" on the same PR."""
    body = json.dumps(_document(synthetic_results(OBJECTIVES), _promotion(rig.gh))).encode()
    first, again = _post(rig.url, body), _post(rig.url, body)
    assert first.status == 201, first.text
    assert first.json == {"status": "opened", "branch": BRANCH,
                          "pullRequest": f"{rig.gh.base_url.removesuffix('/api/v3')}"
                                         "/acme/gitops/pull/1"}
    assert again.status == 200 and again.json["status"] == "updated"
    assert rig.gh.pull_count() == 1 and rig.gh.pull_text(1)[0] == "Promote hello to 2.0"
    assert "ghcr.io/slogate/hello:2.0" in git(rig.gh.bare, "show", f"{BRANCH}:{BASELINE}")
    assert rig.gh.requests and all(r.authorized for r in rig.gh.requests)
    lines = [r.getMessage() for r in logs.records if r.name == "promote.service"]
    assert lines == ["POST /v1/promotions 201 acme/gitops", "POST /v1/promotions 200 acme/gitops"]
    _assert_no_secrets(rig, [first, again], logs)


@pytest.mark.github
def test_a_token_file_in_the_request_is_ignored(rig: Rig, tmp_path: Path) -> None:
    """A promotion block naming a tokenFile (here: a wrong token) still promotes with the
    service's own token; the file's token is never sent to GitHub."""
    wrong = tmp_path / "token"
    wrong.write_text("ghp_callerSuppliedToken\n")
    promotion = _promotion(rig.gh, tokenFile=str(wrong))
    answer = _post(rig.url, json.dumps(_document(synthetic_results(OBJECTIVES), promotion)).encode())
    assert answer.status == 201, answer.text
    assert all(r.authorized for r in rig.gh.requests)


def _refusals(gh: GitHubEmulator) -> list[Any]:
    passing, failing = synthetic_results(OBJECTIVES), synthetic_results(["p(99)<1ms"])
    tampered = json.loads(failing.to_json())
    tampered.update(verdict="PASS", reasons=[])
    for item in tampered["objectives"]:
        item["verdict"] = "PASS"
    tampered["spec"]["promotion"] = _promotion(gh)
    doc = lambda promotion: json.dumps(_document(passing, promotion)).encode()  # noqa: E731
    return [
        pytest.param(doc(_promotion(gh)), "wrong-secret", 401, "missing or wrong shared secret",
                     id="wrong-secret"),
        pytest.param(doc(_promotion(gh)), None, 401, "missing or wrong shared secret",
                     id="no-secret"),
        pytest.param(doc(_promotion(gh, repository="acme/other")), SECRET, 403,
                     "repository acme/other is not allowed", id="repo-not-allowed"),
        pytest.param(doc(_promotion(gh, manifests=[{"path": CANDIDATE, "strategy": "copy",
                                                    "from": BASELINE}])), SECRET, 403,
                     f"path {CANDIDATE} of acme/gitops is not allowed", id="path-not-allowed"),
        pytest.param(doc(_promotion(gh, baseUrl="http://127.0.0.1:9/api/v3")), SECRET, 403,
                     "promotion.baseUrl is not this service's GitHub", id="other-github"),
        pytest.param(json.dumps(_document(failing, _promotion(gh))).encode(), SECRET, 409,
                     "the run's verdict is FAIL, not PASS: nothing is promoted", id="fail"),
        pytest.param(json.dumps(tampered).encode(), SECRET, 409,
                     "re-judged from its histograms the run is FAIL, not PASS: nothing is "
                     "promoted", id="tampered-pass"),
        pytest.param(doc(None), SECRET, 400, "the results' spec has no promotion block",
                     id="no-promotion"),
        pytest.param(b'{"schema": "slogate/results/v1", "name": ', SECRET, 400,
                     "not valid JSON (JSONDecodeError)", id="malformed-json"),
        pytest.param(b'{"hello": 1}', SECRET, 400,
                     "not a results document (schema slogate/results/v1)", id="not-results"),
        pytest.param(b" " * (LIMIT + 1), SECRET, 413, f"the body is over {LIMIT} bytes",
                     id="oversized"),
    ]


@pytest.mark.github
@pytest.mark.parametrize("case", range(11), ids=[
    "wrong-secret", "no-secret", "repo-not-allowed", "path-not-allowed", "other-github", "fail",
    "tampered-pass", "no-promotion", "malformed-json", "not-results", "oversized"])
def test_refusals_change_nothing_and_name_the_reason(
        rig: Rig, logs: pytest.LogCaptureFixture, case: int) -> None:
    """Each bad request gets its status and a JSON error; no branch, no PR, no call with the
    token to GitHub, and neither the token nor the secret in the answer or any log line."""
    body, secret, status, error = _refusals(rig.gh)[case].values
    answer = _post(rig.url, body, secret)
    assert (answer.status, answer.json) == (status, {"error": error})
    assert _branches(rig.gh) == ["main"] and rig.gh.pull_count() == 0
    assert not [r for r in rig.gh.requests if r.authorized and r.method != "GET"]
    lines = [r.getMessage() for r in logs.records if r.name == "promote.service"]
    assert len(lines) == 1 and lines[0].startswith(f"POST /v1/promotions {status} ")
    _assert_no_secrets(rig, [answer], logs)


@pytest.mark.github
def test_a_chunked_body_over_the_limit_is_413(rig: Rig) -> None:
    """A body sent without Content-Length is still cut at the limit while it is read: 413."""
    import http.client

    connection = http.client.HTTPConnection(rig.url.removeprefix("http://"), timeout=30)
    chunks = iter([b"{" + b" " * 65536] * (LIMIT // 65536 + 2))
    connection.request("POST", "/v1/promotions", body=chunks, encode_chunked=True,
                       headers={"Authorization": f"Bearer {SECRET}"})
    response = connection.getresponse()
    assert response.status == 413
    assert json.loads(response.read()) == {"error": f"the body is over {LIMIT} bytes"}
    connection.close()


@pytest.mark.github
def test_healthz_answers_without_the_secret(rig: Rig) -> None:
    """GET /healthz is 200 with no Authorization header."""
    with urllib.request.urlopen(f"{rig.url}/healthz", timeout=10) as response:
        assert response.status == 200 and json.loads(response.read()) == {"status": "ok"}


@pytest.mark.github
def test_post_to_service_returns_the_answer_or_names_the_status(rig: Rig) -> None:
    """The coordinator's client returns the service's JSON; a refusal is a one-line
    PromotionError naming the HTTP status and the service's reason."""
    results = Results.model_validate(_document(synthetic_results(OBJECTIVES), _promotion(rig.gh)))
    assert post_to_service(results, rig.url, SECRET)["status"] == "opened"
    with pytest.raises(PromotionError) as caught:
        post_to_service(results, rig.url, "nope")
    assert str(caught.value) == (f"promotion service {rig.url}/v1/promotions: HTTP 401: "
                                 "missing or wrong shared secret")
    with pytest.raises(PromotionError, match=r"cannot reach it"):
        post_to_service(results, "http://127.0.0.1:9", SECRET, timeout_s=5)


@pytest.mark.github
def test_slogate_promote_service_needs_no_github_token(
        rig: Rig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`slogate promote RESULTS --service URL` promotes with only SLOGATE_PROMOTE_SECRET set;
    a FAIL run is refused before anything is posted, with the verdict's exit code 1."""
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    monkeypatch.setenv("SLOGATE_PROMOTE_SECRET", SECRET)
    path, failing = tmp_path / "results.json", tmp_path / "failing.json"
    path.write_text(json.dumps(_document(synthetic_results(OBJECTIVES), _promotion(rig.gh))))
    failing.write_text(json.dumps(_document(synthetic_results(["p(99)<1ms"]), _promotion(rig.gh))))
    out = CliRunner().invoke(main, ["promote", str(path), "--service", rig.url])
    assert out.exit_code == 0, out.stderr
    assert out.stdout.startswith(f"opened: {rig.gh.base_url.removesuffix('/api/v3')}/acme/gitops/pull/1")
    refused = CliRunner().invoke(main, ["promote", str(failing), "--service", rig.url])
    assert refused.exit_code == 1
    assert refused.stderr.startswith(f"slogate: not promoted: {failing}: the run is FAIL")
    both = CliRunner().invoke(main, ["promote", str(path), "--service", rig.url, "--dry-run"])
    assert both.exit_code == 2 and "cannot be combined" in both.stderr


def test_promote_serve_refuses_to_start_without_a_secret(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No shared secret (file or environment): one line, exit 2, nothing served."""
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_x")
    monkeypatch.delenv("SLOGATE_PROMOTE_SECRET", raising=False)
    out = CliRunner().invoke(main, ["promote-serve", "--allow", "acme/gitops"])
    assert out.exit_code == 2
    assert out.stderr.strip() == ("slogate: error: no SLOGATE_PROMOTE_SECRET: set it or pass "
                                  "--shared-secret-file")


@pytest.mark.github
def test_the_service_leaves_the_check_and_one_comment_on_its_pull_request(rig: Rig) -> None:
    """A PASS posted twice to the service: its pull request gets the slogate/hello check run
    (success) and one comment, updated in place, saying no history was judged there."""
    body = json.dumps(_document(synthetic_results(OBJECTIVES), _promotion(rig.gh))).encode()
    assert [_post(rig.url, body).status for _ in range(2)] == [201, 200]
    (check,) = rig.gh.checks_on(rig.gh.pull_head(1))
    assert (check.name, check.conclusion) == ("slogate/hello", "success")
    (comment,) = rig.gh.comments_on(1)
    assert "Not judged: the promotion service keeps no run history." in comment.body
    assert rig.gh.calls("PATCH check-run") == 1
