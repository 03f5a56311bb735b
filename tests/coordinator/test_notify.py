"""Notifications: the spec's notify block posts to real HTTP receivers on 127.0.0.1 (Slack-
compatible and generic JSON), retries what is worth retrying, and never shows its secrets."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from coordinator.cli import main
from coordinator.errors import SpecError
from coordinator.notify import (
    Notice,
    Notifier,
    slack_payload,
    verdict_notice,
    webhook_payload,
)
from coordinator.notify_spec import NotifyTarget
from tests.analysis.test_reports import OBJECTIVES, synthetic_results
from tests.promote.test_pr_evidence import promotion_block
from tests.support.github_emulator import GitHubEmulator, git, github_emulator
from tests.support.servers import json_body, webhook_receiver

SECRET_PATH = "/services/T000/B000/s3cr3tW3bh00kPath"
TOKEN = "hook-token-0123456789abcdef"


class Sleeps(list[float]):
    """A fake ``sleep`` that records how long it was asked to wait."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def notifier(url: str, logged: list[str], sleeps: Sleeps | None = None, **target: Any) -> Notifier:
    """Return a notifier of one target whose URL (and token) come from the environment given."""
    spec = NotifyTarget.model_validate({"kind": "webhook", "urlEnv": "HOOK_URL", **target})
    environ = {"HOOK_URL": url, "HOOK_TOKEN": TOKEN}
    return Notifier([spec], log=logged.append, environ=environ,
                    sleep=sleeps if sleeps is not None else Sleeps())


NOTICE = Notice(event="verdict", experiment="nightly", verdict="PASS", headline="nightly: PASS")


@pytest.mark.parametrize("statuses, delivered, attempts, sleeps", [
    pytest.param((), True, 1, [], id="first-time"),
    pytest.param((500, 502), True, 3, [0.5, 1.0], id="5xx-retried-with-backoff"),
    pytest.param((503,) * 4, False, 4, [0.5, 1.0, 2.0], id="retries-bounded"),
    pytest.param((404,), False, 1, [], id="4xx-not-retried"),
    pytest.param((302,), False, 1, [], id="redirect-not-followed"),
])
def test_retries(statuses: tuple[int, ...], delivered: bool, attempts: int,
                 sleeps: list[float]) -> None:
    """5xx and transport errors are retried (3 retries, backoff 0.5 s doubling); 4xx and
    redirects are not; the receiver sees exactly the attempts made."""
    logged: list[str] = []
    waits = Sleeps()
    with webhook_receiver(statuses, headers={"Location": "http://127.0.0.1:9/elsewhere"}) as hook:
        done = notifier(hook.url + SECRET_PATH, logged, waits).send(NOTICE)
    assert (bool(done), len(hook.requests), waits) == (delivered, attempts, sleeps)
    if not delivered:
        last = statuses[min(attempts, len(statuses)) - 1]
        assert logged == [(f"warning: notify[0] (webhook) not notified of the verdict: HTTP "
                           f"{last} ({attempts} attempt{'s' if attempts > 1 else ''})")]


def test_a_429_waits_as_long_as_retry_after_says() -> None:
    """A 429 with Retry-After: 7 waits 7 s (time passed in) before the next attempt."""
    waits = Sleeps()
    with webhook_receiver((429,), headers={"Retry-After": "7"}) as hook:
        assert notifier(hook.url, [], waits).send(NOTICE) == ["notify[0] (webhook)"]
    assert waits == [7.0] and len(hook.requests) == 2


def test_an_unreachable_receiver_is_one_warning_without_the_url() -> None:
    """Nothing listening: retried, then one warning naming the receiver, not its URL."""
    logged: list[str] = []
    url = "http://127.0.0.1:9" + SECRET_PATH
    assert notifier(url, logged, retries=1).send(NOTICE) == []
    assert logged == [("warning: notify[0] (webhook) not notified of the verdict: cannot reach "
                       "it (ConnectionRefusedError) (2 attempts)")]


def test_generic_webhook_carries_the_notice_and_the_token() -> None:
    """The generic webhook gets slogate's JSON and the token as a Bearer header."""
    with webhook_receiver() as hook:
        notifier(hook.url + "/hook", [], tokenEnv="HOOK_TOKEN").send(
            verdict_notice(synthetic_results(OBJECTIVES)))
    (request,) = hook.requests
    headers = request["headers"]
    assert isinstance(headers, dict) and headers["authorization"] == f"Bearer {TOKEN}"
    body = json_body(request)
    assert body == {"schema": "slogate/notification/v1", "event": "verdict",
                    "experiment": "golden", "verdict": "PASS", "app": None, "version": None,
                    "url": None, "headline": "golden: PASS against http://127.0.0.1:8080",
                    "reasons": ["all 4 objectives met at 95% confidence"]}


def test_slack_text_cannot_mention_or_link() -> None:
    """Slack's mrkdwn specials from the run are escaped: no @channel, no forged link."""
    notice = Notice(event="verdict", experiment="x", verdict="FAIL",
                    headline="<!channel> & <https://evil.example|click>", reasons=("a<b",))
    payload = slack_payload(notice)
    text = payload["blocks"][0]["text"]["text"]
    assert "<!channel>" not in text and "&lt;!channel&gt; &amp; &lt;https://evil.example|click&gt;" \
        in text and "• a&lt;b" in text
    assert payload["text"].startswith("slogate verdict: &lt;!channel&gt;")


def test_events_not_asked_for_are_not_sent() -> None:
    """A receiver with on: [revert] hears nothing of a verdict."""
    with webhook_receiver() as hook:
        assert notifier(hook.url, [], on=["revert"]).send(NOTICE) == []
    assert hook.requests == []


@pytest.mark.parametrize("target, environ, message", [
    pytest.param({"kind": "slack", "urlEnv": "NOPE"}, {}, "notify[0] URL: the environment "
                 "variable NOPE is not set", id="missing-env"),
    pytest.param({"kind": "webhook", "urlEnv": "U"}, {"U": "ftp://x/" + SECRET_PATH},
                 "notify[0]: the webhook URL is not an http(s) URL", id="not-http"),
])
def test_missing_or_bad_secret_is_a_spec_error_naming_no_value(
        target: dict[str, str], environ: dict[str, str], message: str) -> None:
    """A missing or malformed webhook URL fails when the notifier is made, without the value."""
    with pytest.raises(SpecError) as caught:
        Notifier([NotifyTarget.model_validate(target)], log=print, environ=environ)
    assert str(caught.value) == message


@pytest.fixture
def gh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[GitHubEmulator]:
    """The emulated GitOps repository of the evidence tests; GITHUB_TOKEN is its token."""
    from tests.promote.test_pr_evidence import APP_V1, MANIFEST

    with github_emulator(tmp_path, {MANIFEST: APP_V1}) as emulator:
        monkeypatch.setenv("GITHUB_TOKEN", emulator.token)
        yield emulator


def _promote_with(tmp_path: Path, gh: GitHubEmulator, notify: list[dict[str, Any]]) -> Any:
    data = json.loads(synthetic_results(OBJECTIVES).to_json())
    data["spec"]["promotion"] = promotion_block(gh)
    data["spec"]["notify"] = notify
    path = tmp_path / "results.json"
    path.write_text(json.dumps(data))
    return CliRunner().invoke(main, ["promote", str(path)]), path


@pytest.mark.github
def test_promotion_is_announced_on_slack_and_the_url_is_a_secret(
        tmp_path: Path, gh: GitHubEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    """`slogate promote` posts the opened pull request to the Slack-compatible webhook; the
    webhook URL appears in no output, document or pull request text."""
    with webhook_receiver() as hook:
        url = hook.url + SECRET_PATH
        monkeypatch.setenv("SLACK_WEBHOOK_URL", url)
        out, path = _promote_with(tmp_path, gh, [{"kind": "slack", "urlEnv": "SLACK_WEBHOOK_URL"}])
    assert out.exit_code == 0, out.stderr
    (request,) = hook.requests
    assert request["target"] == SECRET_PATH
    payload = json_body(request)
    pull = f"{gh.base_url.removesuffix('/api/v3')}/acme/gitops/pull/1"
    assert payload["text"] == ("slogate promotion: hello 2.0: pull request to promote it opened "
                               "(golden PASS)")
    assert f"<{pull}|{pull}>" in payload["blocks"][0]["text"]["text"]
    assert "notified notify[0] (slack) of the promotion" in out.stderr
    texts = [out.stdout, out.stderr, path.read_text(), *(gh.pull_text(1)[1] or "",),
             *(c.body for c in gh.comments_on(1))]
    assert not any(SECRET_PATH in text for text in texts)


@pytest.mark.github
def test_a_failing_receiver_never_changes_the_exit_code(
        tmp_path: Path, gh: GitHubEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    """A receiver answering 500 to every attempt: the pull request is opened, exit 0, one
    warning naming notify[0], never its URL or token."""
    with webhook_receiver((500,) * 10) as hook:
        monkeypatch.setenv("HOOK_URL", hook.url + SECRET_PATH)
        monkeypatch.setenv("HOOK_TOKEN", TOKEN)
        out, _ = _promote_with(tmp_path, gh, [{"kind": "webhook", "urlEnv": "HOOK_URL",
                                               "tokenEnv": "HOOK_TOKEN", "retries": 1}])
    assert out.exit_code == 0 and gh.pull_count() == 1 and len(hook.requests) == 2
    assert "warning: notify[0] (webhook) not notified of the promotion: HTTP 500 (2 attempts)" \
        in out.stderr
    assert SECRET_PATH not in out.stderr + out.stdout and TOKEN not in out.stderr + out.stdout


@pytest.mark.github
def test_a_missing_webhook_secret_stops_before_the_pull_request(
        tmp_path: Path, gh: GitHubEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    """The notify block names an unset variable: one line, exit 2, no pull request."""
    monkeypatch.delenv("SLACK_WEBHOOK_URL", raising=False)
    out, _ = _promote_with(tmp_path, gh, [{"kind": "slack", "urlEnv": "SLACK_WEBHOOK_URL"}])
    assert (out.exit_code, out.stderr.strip()) == (
        2, "slogate: error: notify[0] URL: the environment variable SLACK_WEBHOOK_URL is not set")
    assert gh.pull_count() == 0


def test_webhook_payload_is_plain_json_of_the_notice() -> None:
    """The generic payload carries every field of the notice, and only those."""
    assert set(webhook_payload(NOTICE)) == {"schema", "event", "experiment", "verdict", "app",
                                            "version", "url", "headline", "reasons"}


@pytest.mark.ray
@pytest.mark.github
def test_run_with_archive_notifies_and_leaves_evidence(
        tmp_path: Path, gh: GitHubEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    """`slogate run --archive DIR` on a PASS: the webhook hears of the verdict, then of the
    promotion; the pull request gets its check and a comment judging drift against DIR (four
    earlier runs of the experiment there)."""
    from tests.promote.test_pr_evidence import MANIFEST
    from tests.support.helpers import start_hello
    from tests.support.runs import document, write_run

    archive = tmp_path / "archive"
    objectives: list[object] = [{"metric": "error-rate", "upperLimit": "5%"},
                  {"metric": "latency-p50", "upperLimit": "200ms"}]
    for day in range(4):
        write_run(archive, document(day=day, name="loop", objectives=objectives))
    with webhook_receiver() as hook, start_hello() as hello:
        monkeypatch.setenv("HOOK_URL", hook.url + "/hook")
        spec = {"name": "loop", "target": str(hello), "endpoints": [{"path": "/hello"}],
                "load": {"rate": 100, "duration": "2s", "workers": 1},
                "analysis": {"maxScheduleLag": "200ms"},  # a shared, loaded test machine
                "objectives": objectives, "promotion": promotion_block(gh),
                "notify": [{"kind": "webhook", "urlEnv": "HOOK_URL"}]}
        (path := tmp_path / "spec.json").write_text(json.dumps(spec))
        out = CliRunner().invoke(main, ["run", str(path), "--out", str(tmp_path / "run"),
                                        "--archive", str(archive)])
    assert out.exit_code == 0, out.stderr
    events = [json_body(r)["event"] for r in hook.requests]
    assert events == ["verdict", "promotion"]
    assert gh.checks_on(gh.pull_head(1))[0].conclusion == "success"
    (comment,) = gh.comments_on(1)
    assert "slogate history: loop" in comment.body and "Not judged" not in comment.body
    assert "ghcr.io/slogate/hello:2.0" in git(gh.bare, "show", f"slogate/promote-hello-2.0:{MANIFEST}")
