"""Notifications: telling a Slack-compatible or a generic JSON webhook of the verdict, the
promotion, the verification and a revert (the spec's ``notify`` block,
:mod:`coordinator.notify_spec`).

The notices and payloads are pure (:func:`verdict_notice` ... :func:`slack_payload`,
:func:`webhook_payload`); :class:`Notifier` reads the secrets once, when it is made (so a
missing one fails before the run, exit 2), and posts with bounded retries.

Invariants:

- a webhook URL and a token are secrets: they appear in no log line, message or document (a
  failure names the receiver as ``notify[INDEX] (KIND)``, and any text from the transport is
  scrubbed of them); a redirect is never followed (it would carry them elsewhere);
- a 5xx, a 429 (its Retry-After honoured up to :data:`MAX_WAIT_S`) or a transport error is
  retried at most ``retries`` times with exponential backoff; any other answer but a 2xx is not;
- a notification that fails is one warning line: it never changes the exit code, which is the
  verdict's.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from analysis.results import Results
from coordinator.errors import SpecError
from coordinator.notify_spec import NotifyTarget

SCHEMA = "slogate/notification/v1"
BACKOFF_S = 0.5
MAX_WAIT_S = 30.0
Log = Callable[[str], None]


@dataclass(frozen=True, slots=True, kw_only=True)
class Notice:
    """What happened, in one line and a few facts: ``event`` is verdict, promotion,
    verification or revert."""

    event: str
    experiment: str
    verdict: str
    headline: str
    app: str | None = None
    version: str | None = None
    url: str | None = None
    reasons: tuple[str, ...] = ()


def verdict_notice(results: Results) -> Notice:
    """Return the notice of a run's verdict."""
    return Notice(event="verdict", experiment=results.name, verdict=results.verdict,
                  headline=f"{results.name}: {results.verdict} against {results.target_url}",
                  reasons=tuple(results.reasons))


def pull_notice(results: Results, *, event: str, app: str, version: str, url: str,
                status: str) -> Notice:
    """Return the notice of a promotion or revert pull request (``status``: opened, updated)."""
    what = "promote" if event == "promotion" else "revert"
    return Notice(event=event, experiment=results.name, verdict=results.verdict, app=app,
                  version=version, url=url, reasons=tuple(results.reasons),
                  headline=f"{app} {version}: pull request to {what} it {status} "
                           f"({results.name} {results.verdict})")


def pull_notices(results: Results, outcome: Any, *, app: str, version: str,
                 revert_branch: str) -> list[Notice]:
    """Return the notice of a promotion (or revert) ``outcome`` that opened or updated its pull
    request; none for a dry run, a merged one or nothing to do."""
    if outcome is None or outcome.pull is None or outcome.status not in ("opened", "updated"):
        return []
    event = "revert" if outcome.branch == revert_branch else "promotion"
    return [pull_notice(results, event=event, app=app, version=version, url=outcome.pull.url,
                        status=outcome.status)]


def verification_notice(checked: Results, *, app: str, version: str,
                        revert_url: str | None) -> Notice:
    """Return the notice of the verification of the stable version after the sync."""
    tail = {"PASS": "verified as the stable version",
            "FAIL": "failed as the stable version" + ("; revert opened" if revert_url else "")}
    return Notice(event="verification", experiment=checked.name, verdict=checked.verdict,
                  app=app, version=version, url=revert_url, reasons=tuple(checked.reasons),
                  headline=f"{app} {version}: {tail.get(checked.verdict, 'not verified')} "
                           f"({checked.verdict})")


def _slack_text(text: str) -> str:
    """Return ``text`` escaped for Slack's mrkdwn (``&``, ``<``, ``>``), so nothing in it is a
    link or a mention."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_payload(notice: Notice) -> dict[str, Any]:
    """Return the body for a Slack-compatible incoming webhook: ``text`` (the fallback) and
    one mrkdwn section with the headline, the link and up to five reasons."""
    lines = [f"*slogate {notice.event}*: {_slack_text(notice.headline)}"]
    if notice.url:
        lines.append(f"<{notice.url}|{_slack_text(notice.url)}>")
    lines += [f"• {_slack_text(reason)}" for reason in notice.reasons[:5]]
    text = "\n".join(lines)
    return {"text": f"slogate {notice.event}: {_slack_text(notice.headline)}",
            "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}}]}


def webhook_payload(notice: Notice) -> dict[str, Any]:
    """Return the generic JSON body (schema ``slogate/notification/v1``)."""
    return {"schema": SCHEMA, "event": notice.event, "experiment": notice.experiment,
            "verdict": notice.verdict, "app": notice.app, "version": notice.version,
            "url": notice.url, "headline": notice.headline, "reasons": list(notice.reasons)}


@dataclass(frozen=True, slots=True, kw_only=True)
class _Receiver:
    index: int
    target: NotifyTarget
    url: str
    token: str | None

    @property
    def label(self) -> str:
        return f"notify[{self.index}] ({self.target.kind})"


def _secret(env: str | None, file: str | None, what: str, base: Path,
            environ: Mapping[str, str]) -> str | None:
    """Return the secret in ``$env`` or ``file`` (relative to ``base``); SpecError naming the
    variable or file (never the value) when it is missing or empty."""
    if env is not None:
        value = environ.get(env, "").strip()
        if not value:
            raise SpecError(f"{what}: the environment variable {env} is not set")
        return value
    if file is None:
        return None
    path = base / file
    try:
        value = path.read_text().strip()
    except OSError as exc:
        raise SpecError(f"{what}: cannot read {path} ({type(exc).__name__})") from None
    if not value:
        raise SpecError(f"{what}: {path} is empty")
    return value


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """Follows no redirect: urllib raises the 3xx as an HTTPError."""

    def redirect_request(self, *_args: Any, **_kwargs: Any) -> None:
        return None


class Notifier:
    """Posts notices to the spec's webhooks.

    Example::

        notifier = Notifier(spec.notify, log=print, base=spec_dir)
        notifier.send(verdict_notice(results))
    """

    def __init__(self, targets: Sequence[NotifyTarget], *, log: Log, base: Path = Path("."),
                 environ: Mapping[str, str] = os.environ,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._log, self._sleep = log, sleep
        self._receivers = []
        for index, target in enumerate(targets):
            where = f"notify[{index}]"
            url = _secret(target.url_env, target.url_file, f"{where} URL", base, environ)
            assert url is not None  # one URL source is required by the spec
            if not url.startswith(("https://", "http://")):
                raise SpecError(f"{where}: the webhook URL is not an http(s) URL")
            token = _secret(target.token_env, target.token_file, f"{where} token", base, environ)
            self._receivers.append(_Receiver(index=index, target=target, url=url, token=token))
        self._opener = urllib.request.build_opener(_NoRedirects)

    def send(self, notice: Notice) -> list[str]:
        """Post ``notice`` to every receiver that wants its event; return the labels of those
        that took it (a failure is one warning line, never an exception)."""
        done = []
        for receiver in self._receivers:
            if notice.event not in receiver.target.on:
                continue
            failure = self._deliver(receiver, notice)
            if failure is None:
                done.append(receiver.label)
                self._log(f"notified {receiver.label} of the {notice.event}")
            else:
                self._log(f"warning: {receiver.label} not notified of the {notice.event}: "
                          f"{self._scrub(receiver, failure)}")
        return done

    def _deliver(self, receiver: _Receiver, notice: Notice) -> str | None:
        """Return None once the receiver answered 2xx, else why it did not (after retries)."""
        payload = slack_payload(notice) if receiver.target.kind == "slack" else \
            webhook_payload(notice)
        body = json.dumps(payload).encode()
        attempts = receiver.target.retries + 1
        why = ""
        for attempt in range(attempts):
            why, wait_s = self._attempt(receiver, body)
            if not why:
                return None
            if wait_s is None or attempt == attempts - 1:
                break
            self._sleep(min(wait_s if wait_s > 0 else BACKOFF_S * 2 ** attempt, MAX_WAIT_S))
        return f"{why} ({attempt + 1} attempt{'' if attempt == 0 else 's'})"

    def _attempt(self, receiver: _Receiver, body: bytes) -> tuple[str, float | None]:
        """Return ('', None) on a 2xx, else (why, seconds to wait before a retry, None when
        retrying will not help; 0 for the backoff)."""
        headers = {"Content-Type": "application/json", "User-Agent": "slogate"}
        if receiver.token:
            headers["Authorization"] = f"Bearer {receiver.token}"
        request = urllib.request.Request(receiver.url, data=body, method="POST", headers=headers)
        try:
            with self._opener.open(request, timeout=receiver.target.timeout_s) as response:
                response.read()
                return "", None
        except urllib.error.HTTPError as exc:
            retry = exc.code >= 500 or exc.code == 429
            after = _retry_after_s(exc.headers.get("Retry-After") if exc.headers else None)
            return f"HTTP {exc.code}", (after if retry else None)
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            return f"cannot reach it ({type(reason).__name__})", 0.0

    @staticmethod
    def _scrub(receiver: _Receiver, text: str) -> str:
        for secret in filter(None, (receiver.url, receiver.token)):
            text = text.replace(secret, "***")
        return text


def _retry_after_s(value: str | None) -> float:
    """Return the seconds of a Retry-After header (0 when absent or a date)."""
    try:
        return max(float(value or 0), 0.0)
    except ValueError:
        return 0.0
