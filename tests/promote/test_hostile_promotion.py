"""Hostile input to the promotion (issue 12): names that climb out of the allowed repository,
decompression bombs, redirects that would carry the secret, slow or malformed requests,
loosened objectives, markup in names.

The GitHub side is the in-process emulator (real PyGithub, real git), serving ``acme/gitops``
and a ``victim/gitops`` the same token can reach; it collapses ``..`` in request paths as the
HTTP stacks in front of real servers do. The service runs on 127.0.0.1 as in
``test_promote_service``.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import socket
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from analysis.results import Results, json_depth
from coordinator.cli import main
from coordinator.demo import EXAMPLE_DIR
from coordinator.promote_wiring import post_to_service
from coordinator.spec import ObjectivesFile
from promote.errors import PromotionError
from promote.github import GitHubProvider, url_error
from promote.names import branch_error, check_promotion_names, label_error, path_error
from promote.service import (
    Allowed,
    Pinned,
    ServiceConfig,
    check_allowed,
    make_app,
    parse_allowed,
    server_options,
)
from promote.spec import PromotionSpec
from tests.analysis.test_reports import OBJECTIVES, synthetic_results
from tests.promote.test_promote_service import LIMIT, SECRET, Answer, _document, _post, _serving
from tests.support.github_emulator import GitHubEmulator, git, github_emulator
from workers.histogram import MAX_PAYLOAD_BYTES, Histogram

BASELINE = "samples/deployments/baseline.yaml"
CANDIDATE = "samples/deployments/candidate.yaml"
ORIGINAL = (EXAMPLE_DIR / "baseline.yaml").read_text()
FILES = {BASELINE: ORIGINAL, CANDIDATE: (EXAMPLE_DIR / "candidate.yaml").read_text()}
BRANCH = "slogate/promote-hello-2.0"
PRIVATE = "private/x.yaml"
PRIVATE_TEXT = FILES[CANDIDATE].replace("ghcr.io/slogate/hello", "ghcr.io/victim/private-image")


@dataclass(frozen=True, slots=True, kw_only=True)
class World:
    """The emulated GitHub (acme/gitops, and victim/gitops beside it) and the service's URL."""

    gh: GitHubEmulator
    victim: GitHubEmulator
    url: str


@contextlib.contextmanager
def _world(tmp_path: Path, allow: str, **config: Any) -> Iterator[World]:
    """acme/gitops and a victim/gitops that holds a private file, a ``release`` branch that acme's
    main could fast-forward, and a promotion branch of its own; the service allows ``allow``."""
    with github_emulator(tmp_path, FILES) as gh:
        victim = gh.add_fork("victim")
        seed = gh.branch_sha("main") or ""
        victim.commit("main", {PRIVATE: PRIVATE_TEXT, "deploy/app.yaml": ORIGINAL}, "private")
        victim.create_branch("release", seed)
        victim.create_branch(BRANCH, victim.branch_sha("main") or "")
        gh.commit("main", {"README.md": "acme\n"})  # acme's main is ahead of victim's release
        settings_ = ServiceConfig(allowed=(parse_allowed(allow),), token=gh.token, secret=SECRET,
                                  github_url=gh.base_url, max_body_bytes=LIMIT, **config)
        app = make_app(settings_)
        with _serving(app) as url:
            yield World(gh=gh, victim=victim, url=url)


def _block(gh: GitHubEmulator, **extra: Any) -> dict[str, Any]:
    block = {"repository": gh.full_name, "app": "hello", "version": "2.0", "baseUrl": gh.base_url,
             "manifests": [{"path": BASELINE, "strategy": "copy", "from": CANDIDATE}], **extra}
    return json.loads(PromotionSpec.model_validate(block).model_dump_json(by_alias=True))


def _body(gh: GitHubEmulator, results: Results | None = None, **extra: Any) -> bytes:
    return json.dumps(_document(results or synthetic_results(OBJECTIVES),
                                _block(gh, **extra))).encode()


def _victim_requests(world: World) -> list[str]:
    return [r.path for r in world.gh.requests if r.path.startswith("/api/v3/repos/victim/")]


PROBES = [
    pytest.param(f"acme/gitops:{BASELINE}", {"manifests": [
        {"path": BASELINE, "strategy": "copy", "from": "../../../victim/gitops/contents/" + PRIVATE}]},
        "manifests[0].from", id="a-read-another-repo-via-from"),
    pytest.param(f"acme/gitops:{BASELINE}",
                 {"version": "x/../../../../../../../victim/gitops/git/ref/heads/release"},
                 "version", id="b-move-another-repos-ref-via-version"),
    pytest.param("acme/gitops", {"manifests": [
        {"path": "../../../victim/gitops/contents/deploy/app.yaml", "strategy": "copy",
         "from": CANDIDATE}]}, "manifests[0].path", id="c-commit-into-another-repo-via-path"),
]


# ----------------------------------------------------------------------- item 1: the three probes


@pytest.mark.github
@pytest.mark.parametrize("allow, extra, field", PROBES)
def test_the_service_refuses_names_that_climb_into_another_repository(
        tmp_path: Path, allow: str, extra: dict[str, Any], field: str) -> None:
    """Each probe of the security review is a 400 naming the field; GitHub is never called, the
    victim's branches do not move and nothing of it is read or written."""
    with _world(tmp_path, allow) as world:
        before = world.victim.refs()
        answer = _post(world.url, _body(world.gh, **extra))
        assert answer.status == 400, answer.text
        assert answer.json["error"].startswith(f"promotion.{field}: ")
        assert world.victim.refs() == before
        assert world.gh.requests == []
        assert git(world.gh.bare, "for-each-ref", "--format=%(refname:short)",
                   "refs/heads").splitlines() == ["main"]


@pytest.mark.github
@pytest.mark.parametrize("allow, extra, field", PROBES)
def test_slogate_promote_refuses_the_same_names_before_any_call(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, allow: str, extra: dict[str, Any],
        field: str) -> None:
    """`slogate promote` with the token itself: one line naming the field, exit 2, no request."""
    with _world(tmp_path, allow) as world:
        monkeypatch.setenv("GITHUB_TOKEN", world.gh.token)
        path = tmp_path / "results.json"
        path.write_bytes(_body(world.gh, **extra))
        before = world.victim.refs()
        out = CliRunner().invoke(main, ["promote", str(path)])
        assert out.exit_code == 2, out.stderr
        assert out.stderr.startswith(f"slogate: error: promotion.{field}: ")
        assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
        assert world.gh.requests == [] and world.victim.refs() == before


@pytest.mark.github
def test_the_provider_refuses_any_request_path_outside_its_repository(tmp_path: Path) -> None:
    """Defence in depth: the provider itself, given names no grammar checked, sends no request
    whose path leaves /repos/acme/gitops, and the victim stays untouched."""
    with _world(tmp_path, "acme/gitops") as world:
        provider = GitHubProvider(world.gh.full_name, world.gh.token, base_url=world.gh.base_url)
        before = world.victim.refs()
        climbs = [
            lambda: provider.read_file("../../../victim/gitops/contents/" + PRIVATE, "main"),
            lambda: provider.ensure_branch(
                "x/../../../../../../victim/gitops/git/ref/heads/release", "main"),
            lambda: provider.put_file(BRANCH, "../../../victim/gitops/contents/deploy/app.yaml",
                                      "pwned\n", "pwn"),
        ]
        for climb in climbs:
            with pytest.raises(PromotionError, match=r"^refused to send (GET|PUT|PATCH) "
                                                     r"/api/v3/repos/acme/gitops/.*\.\."):
                climb()
        assert _victim_requests(world) == [] and world.victim.refs() == before


@pytest.mark.parametrize("url, refused", [
    pytest.param("/api/v3/repos/acme/gitops", None, id="the-repository"),
    pytest.param("/api/v3/repos/acme/gitops/contents/a.yaml?ref=main", None, id="a-file"),
    pytest.param("/api/v3/repos/ACME/GitOps/pulls", None, id="case-insensitive"),
    pytest.param("/api/v3/repos/octo/gitops/git/refs", None, id="the-fork"),
    pytest.param("/api/v3/repos/acme/gitops-other/contents", "is outside", id="name-prefix"),
    pytest.param("/api/v3/repos/victim/gitops/git/refs/heads/release", "is outside",
                 id="another-repository"),
    pytest.param("/api/v3/repos/acme/gitops/contents/../../../victim/gitops/contents/x",
                 "has a . or .. segment", id="dot-dot"),
    pytest.param("/api/v3/repos/acme/gitops/./contents", "has a . or .. segment", id="dot"),
    pytest.param("/api/v3/repos/acme/gitops/contents/%2e%2e/x", "encoded", id="encoded-dots"),
    pytest.param("/api/v3/repos/acme/gitops/contents/a%2Fb", "encoded", id="encoded-slash"),
    pytest.param("/api/v3/repos/acme/gitops/contents/a\\b", "backslash", id="backslash"),
    pytest.param("/repos/acme/gitops", "is outside", id="without-the-api-prefix"),
    pytest.param("/api/v3/user", "is outside", id="not-a-repository"),
])
def test_url_error_keeps_requests_under_the_allowed_repositories(url: str,
                                                                 refused: str | None) -> None:
    """Only paths under /api/v3/repos/<repo or fork> with no dot segment or encoded separator
    pass."""
    error = url_error(url, "/api/v3", ["acme/gitops", "octo/gitops"])
    assert error is None if refused is None else refused in (error or "")


def _spec(**extra: Any) -> PromotionSpec:
    block = {"repository": "acme/gitops", "app": "hello", "version": "2.0",
             "manifests": [{"path": BASELINE, "strategy": "copy", "from": CANDIDATE}]}
    return PromotionSpec.model_validate({**block, **extra})


@pytest.mark.parametrize("extra, message", [
    pytest.param({}, None, id="plain"),
    pytest.param({"version": "1.2.3-rc.1+build.7", "app": "shop_api", "baseBranch": "release/2026",
                  "labels": ["slogate", "area/deploy"]}, None, id="rich-but-fine"),
    pytest.param({"repository": "acme/.."}, "promotion.repository: 'acme/..'", id="repo-dotdot"),
    pytest.param({"repository": "acme/git ops"}, "promotion.repository", id="repo-space"),
    pytest.param({"upstream": "victim/.."}, "promotion.upstream", id="upstream-dotdot"),
    pytest.param({"app": "../x"}, "promotion.app", id="app-slash"),
    pytest.param({"version": "2.0/../../x"}, "promotion.version", id="version-slash"),
    pytest.param({"version": ".hidden"}, "promotion.version", id="version-leading-dot"),
    pytest.param({"baseBranch": "main/../../victim"}, "promotion.baseBranch", id="base-dotdot"),
    pytest.param({"baseBranch": "ma:in"}, "promotion.baseBranch", id="base-colon"),
    pytest.param({"baseBranch": "x.lock"}, "promotion.baseBranch", id="base-lock"),
    pytest.param({"baseBranch": "a%2e%2e"}, "promotion.baseBranch", id="base-percent"),
    pytest.param({"manifests": [{"path": "/etc/passwd", "strategy": "copy", "from": CANDIDATE}]},
                 "promotion.manifests[0].path: '/etc/passwd' is absolute", id="path-absolute"),
    pytest.param({"manifests": [{"path": "a//b.yaml", "strategy": "copy", "from": CANDIDATE}]},
                 "promotion.manifests[0].path", id="path-empty-segment"),
    pytest.param({"manifests": [{"path": "a\\..\\b", "strategy": "copy", "from": CANDIDATE}]},
                 "backslash", id="path-backslash"),
    pytest.param({"manifests": [{"path": "a/%2e%2e/b", "strategy": "copy", "from": CANDIDATE}]},
                 "percent-encoding", id="path-percent"),
    pytest.param({"manifests": [{"path": "a\nb", "strategy": "copy", "from": CANDIDATE}]},
                 "control character", id="path-newline"),
    pytest.param({"manifests": [{"path": BASELINE, "strategy": "copy", "from": "./x.yaml"}]},
                 "promotion.manifests[0].from", id="from-dot"),
    pytest.param({"labels": ["ok", "a/../b"]}, "promotion.labels[1]", id="label-dotdot"),
    pytest.param({"labels": ["x" * 51]}, "promotion.labels[0]", id="label-too-long"),
])
def test_check_promotion_names(extra: dict[str, Any], message: str | None) -> None:
    """Every name that reaches a URL keeps to its grammar; the first that does not is named."""
    spec = _spec(**extra)
    if message is None:
        check_promotion_names(spec, ("slogate/promote-hello-2.0",))
    else:
        anchor = "^" if message.startswith("promotion.") else ""
        with pytest.raises(PromotionError, match=anchor + re.escape(message)):
            check_promotion_names(spec)


_NASTY = st.text(alphabet="ab./\\-_%@{}~^:?*[ \x01é", max_size=16)


@settings(max_examples=300, deadline=None)
@given(_NASTY)
def test_any_accepted_path_stays_in_the_repository_after_requests_normalises_it(text: str) -> None:
    """A path the grammar accepts, quoted as PyGithub quotes it and prepared by requests (which
    collapses dot segments), still lies under the repository's contents."""
    if path_error(text) is not None:
        return
    prepared = requests.Request(
        "GET", f"http://h/api/v3/repos/acme/gitops/contents/{quote(text)}").prepare()
    assert prepared.path_url.startswith("/api/v3/repos/acme/gitops/contents/")
    assert url_error(prepared.path_url, "/api/v3", ["acme/gitops"]) is None


@settings(max_examples=150, deadline=None)
@given(_NASTY)
def test_any_accepted_branch_is_a_valid_git_ref_that_stays_in_the_repository(text: str) -> None:
    """A branch the grammar accepts is one `git check-ref-format` accepts too, and its ref URL
    stays under the repository once requests has prepared it."""
    if branch_error(text) is not None:
        return
    assert subprocess.run(["git", "check-ref-format", f"refs/heads/{text}"]).returncode == 0
    prepared = requests.Request(
        "GET", f"http://h/api/v3/repos/acme/gitops/git/ref/heads/{quote(text)}").prepare()
    assert prepared.path_url.startswith("/api/v3/repos/acme/gitops/git/ref/heads/")


@pytest.mark.parametrize("branch", ["a..b", "a/.b", "a.lock", "a b", "a~1", "a^", "a:b", "a?",
                                    "a*", "a[b", "a\\b", "/a", "a/", "a//b", "a.", "a@{b",
                                    "a\x01b", ""])
def test_branches_git_refuses_are_refused(branch: str) -> None:
    """Names `git check-ref-format` refuses are refused by the grammar as well."""
    assert subprocess.run(["git", "check-ref-format", f"refs/heads/{branch}"]).returncode != 0
    assert branch_error(branch) is not None


@pytest.mark.parametrize("label, ok", [
    pytest.param("slogate", True, id="plain"), pytest.param("kind/deploy", True, id="slash"),
    pytest.param("", False, id="empty"), pytest.param("a\x00", False, id="control"),
    pytest.param("a%2F", False, id="percent")])
def test_label_grammar(label: str, ok: bool) -> None:
    """Labels: 1..50 characters, no control character, % or backslash, no dot segment."""
    assert (label_error(label) is None) == ok


# ----------------------------------------------------------------------- the base branch


@pytest.mark.parametrize("allow, base, error", [
    pytest.param("acme/gitops", "release", None, id="any-branch"),
    pytest.param(f"acme/gitops#main,release:{BASELINE}", "release", None, id="listed"),
    pytest.param("acme/gitops#main", "production", "base branch production of acme/gitops is "
                 "not allowed", id="not-listed"),
    pytest.param("acme/gitops#main", "main", None, id="main-listed"),
])
def test_the_allow_list_covers_the_base_branch(allow: str, base: str, error: str | None) -> None:
    """``owner/name#branch,...`` limits the base branches; without ``#`` any branch is allowed."""
    config = ServiceConfig(allowed=(parse_allowed(allow),), token="t", secret="s")
    rejection = check_allowed(_spec(baseBranch=base), config)
    assert (rejection.error if rejection else None) == error


@pytest.mark.parametrize("text, expected", [
    pytest.param("a/b#main,rel/1:x.yaml", Allowed(repository="a/b", paths=frozenset({"x.yaml"}),
                                                 branches=frozenset({"main", "rel/1"})),
                 id="branches-and-paths"),
    pytest.param("a/b#main", Allowed(repository="a/b", branches=frozenset({"main"})),
                 id="branches"),
    pytest.param("a/b#", "no branch", id="no-branch"),
    pytest.param("a/b#ma..in", "branch 'ma..in'", id="bad-branch"),
    pytest.param("a/b:../x.yaml", "path '../x.yaml'", id="bad-path"),
    pytest.param("a/..", "owner/name", id="bad-repo"),
])
def test_parse_allowed_with_branches(text: str, expected: Allowed | str) -> None:
    """The --allow syntax takes ``#branch,...`` before ``:path,...``; bad names are refused."""
    if isinstance(expected, Allowed):
        assert parse_allowed(text) == expected
    else:
        with pytest.raises(PromotionError, match=re.escape(expected)):
            parse_allowed(text)


# ----------------------------------------------------------------------- item 4: histogram bombs


def _bomb(inflated_bytes: int) -> str:
    """Return a V2 histogram encoding (valid cookies, our layout) whose payload inflates to
    ``inflated_bytes`` (zeros after a valid header)."""
    from workers import histogram as h

    header = h._PAYLOAD_HEADER.pack(h._ENCODING_COOKIE, inflated_bytes, 0, 3, 1, h.HIGHEST_NS, 1.0)
    packer = zlib.compressobj(9)
    chunks = [packer.compress(header)]
    chunk = b"\0" * (1 << 20)
    for _ in range(inflated_bytes // len(chunk)):
        chunks.append(packer.compress(chunk))
    chunks.append(packer.flush())
    compressed = b"".join(chunks)
    import base64

    return base64.b64encode(h._OUTER_HEADER.pack(h._COMPRESSION_COOKIE, len(compressed))
                            + compressed).decode()


def test_a_decompression_bomb_is_refused_without_inflating_it() -> None:
    """A histogram inflating to 256 MiB is refused, naming the bound, after inflating at most
    the bound (tracemalloc peak under 2 MB); a real one of the largest size still decodes."""
    import tracemalloc

    bomb = _bomb(256 << 20)
    tracemalloc.start()
    with pytest.raises(ValueError, match=f"inflates beyond {MAX_PAYLOAD_BYTES} bytes"):
        Histogram.decode(bomb)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert len(bomb) < 400_000 and peak < 2_000_000
    widest = Histogram()
    import numpy as np

    widest.record(np.unique(np.geomspace(1, 10**11, 200_000).astype(np.int64)))
    assert Histogram.decode(widest.encode()) == widest


def _bombed(results: Results) -> bytes:
    data = json.loads(results.to_json())
    data["histograms"]["latency"][0]["hdr"] = _bomb(64 << 20)
    return json.dumps(data).encode()


@pytest.mark.github
def test_the_service_answers_400_to_a_histogram_bomb(tmp_path: Path) -> None:
    """A results document with a bomb in a histogram: 400 naming the histogram, no GitHub call."""
    with _world(tmp_path, "acme/gitops") as world:
        data = json.loads(_body(world.gh))
        data["histograms"]["latency"][0]["hdr"] = _bomb(64 << 20)
        answer = _post(world.url, json.dumps(data).encode())
        assert answer.status == 400, answer.text
        assert answer.json["error"].startswith("histograms.latency[0] (GET /hello, ")
        assert f"inflates beyond {MAX_PAYLOAD_BYTES} bytes" in answer.json["error"]
        assert world.gh.requests == []


def test_slogate_promote_exits_2_naming_the_bombed_histogram(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`slogate promote` on a bombed results file: one line naming the histogram, exit 2."""
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_unused")
    data = json.loads(synthetic_results(OBJECTIVES).to_json())
    data["spec"]["promotion"] = json.loads(_spec().model_dump_json(by_alias=True))
    data["windows"][2]["lag"] = _bomb(64 << 20)
    path = tmp_path / "results.json"
    path.write_text(json.dumps(data))
    out = CliRunner().invoke(main, ["promote", str(path)])
    assert out.exit_code == 2, out.stderr
    assert out.stderr.startswith(f"slogate: error: {path}: windows[2].lag: histogram decode: "
                                 "inflates beyond")
    assert out.stderr.count("\n") == 1


# ----------------------------------------------------------------------- item 6: no redirects


class _Recorder(BaseHTTPRequestHandler):
    """Records the Authorization header of every request; answers 302 to ``target`` if set."""

    seen: list[str | None]
    target: str | None = None

    def do_POST(self) -> None:
        self.seen.append(self.headers.get("Authorization"))
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.target:
            self.send_response(302)
            self.send_header("Location", self.target)
        else:
            self.send_response(201)
        body = b'{"status": "opened", "pullRequest": "x", "branch": "y"}'
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: Any) -> None:
        pass


@contextlib.contextmanager
def _server(target: str | None) -> Iterator[tuple[str, list[str | None]]]:
    seen: list[str | None] = []
    handler = type("Handler", (_Recorder,), {"seen": seen, "target": target})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def test_the_service_client_never_follows_a_redirect_with_the_secret(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A service URL answering 302 to a second server: the secret reaches only the first, the
    client fails naming HTTP 302, and `slogate promote --service` exits 2 without "opened"."""
    results = synthetic_results(OBJECTIVES)
    with _server(None) as (elsewhere, stolen), _server(f"{elsewhere}/v1/promotions") as (url, seen):
        with pytest.raises(PromotionError, match=r"HTTP 302: a redirect \(to http://127\.0\.0\.1:"
                                                 r"\d+/v1/promotions\), not followed"):
            post_to_service(results, url, SECRET)
        path = tmp_path / "results.json"
        path.write_text(results.to_json())
        monkeypatch.setenv("SLOGATE_PROMOTE_SECRET", SECRET)
        out = CliRunner().invoke(main, ["promote", str(path), "--service", url])
        assert stolen == [] and seen == [f"Bearer {SECRET}"] * 2
    assert out.exit_code == 2 and "HTTP 302" in out.stderr and "opened" not in out.stdout


# ----------------------------------------------------------------------- item 7 and 12: the service


@contextlib.contextmanager
def _service(gh: GitHubEmulator, **config: Any) -> Iterator[tuple[str, str]]:
    """The service in front of ``gh`` with ``config``, served with its own server options;
    yields (URL, host:port)."""
    settings_ = ServiceConfig(allowed=(parse_allowed("acme/gitops"),), token=gh.token,
                              secret=SECRET, github_url=gh.base_url, max_body_bytes=LIMIT,
                              **config)
    with _serving(make_app(settings_), **server_options(settings_)) as url:
        yield url, url.removeprefix("http://")


@pytest.mark.github
@pytest.mark.parametrize("body", [
    pytest.param(b"[" * 100_000 + b"]" * 100_000, id="past-the-recursion-limit"),
    pytest.param(b'{"schema": "slogate/results/v1", "spec": ' + b'{"a": ' * 100 + b"1"
                 + b"}" * 101, id="deeper-than-64"),
])
def test_deeply_nested_json_is_a_400(tmp_path: Path, body: bytes,
                                     caplog: pytest.LogCaptureFixture) -> None:
    """JSON nested past the limit (or past Python's recursion limit) is a 400, no traceback."""
    with github_emulator(tmp_path, FILES) as gh, _service(gh) as (url, _):
        answer = _post(url, body)
    assert (answer.status, answer.json) == (400, {"error": "JSON nested deeper than 64 levels"})
    assert "Traceback" not in caplog.text and not any(r.exc_info for r in caplog.records)


def test_json_depth_counts_without_recursing() -> None:
    """Depth of scalars, flat and nested containers; 100,000 levels do not recurse."""
    assert [json_depth(1), json_depth([]), json_depth({"a": [1, {"b": 2}]})] == [0, 1, 3]
    deep: Any = 0
    for _ in range(100_000):
        deep = [deep]
    assert json_depth(deep) == 100_000


@pytest.mark.github
def test_a_non_utf8_authorization_header_is_a_401(tmp_path: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    """An Authorization header of bytes that are not UTF-8 is a plain 401, no traceback."""
    with github_emulator(tmp_path, FILES) as gh, _service(gh) as (_, where):
        connection = http.client.HTTPConnection(where, timeout=10)
        connection.putrequest("POST", "/v1/promotions")
        connection.putheader("Authorization", b"Bearer \xff\xfe" + SECRET.encode())
        connection.putheader("Content-Length", "2")
        connection.endheaders(b"{}")
        response = connection.getresponse()
        answer = Answer(status=response.status, text=response.read().decode())
        connection.close()
    assert (answer.status, answer.json) == (401, {"error": "missing or wrong shared secret"})
    assert "Traceback" not in caplog.text and not any(r.exc_info for r in caplog.records)


@pytest.mark.github
def test_a_client_that_never_finishes_its_headers_is_disconnected(tmp_path: Path) -> None:
    """Headers trickling in past the header timeout (0.5 s here): the service closes the
    connection instead of waiting for ever."""
    with github_emulator(tmp_path, FILES) as gh, _service(gh, header_timeout_s=0.5) as (_, where):
        host, port = where.split(":")
        with socket.create_connection((host, int(port)), timeout=30) as sock:
            sock.sendall(b"POST /v1/promotions HTTP/1.1\r\nHost: x\r\n")
            started = time.monotonic()
            assert sock.recv(1024) == b""  # closed by the service, not the 30 s socket timeout
            waited_s = time.monotonic() - started
    assert waited_s < 25


@pytest.mark.github
def test_a_body_slower_than_the_body_timeout_is_a_408(tmp_path: Path) -> None:
    """A body that stops arriving: 408 with a JSON error after the body timeout (0.5 s here)."""
    with github_emulator(tmp_path, FILES) as gh, _service(gh, body_timeout_s=0.5) as (_, where):
        host, port = where.split(":")
        with socket.create_connection((host, int(port)), timeout=30) as sock:
            sock.sendall(b"POST /v1/promotions HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n"
                         b"Authorization: Bearer " + SECRET.encode() + b"\r\n\r\n{\"sch")
            answer = sock.recv(65536).decode()
    assert answer.startswith("HTTP/1.1 408 ")
    assert answer.endswith('{"error": "the body did not arrive within 0.5 s"}')
    assert gh.requests == []


def _loosened(gh: GitHubEmulator) -> bytes:
    """A FAIL run (p99 < 1 ms) re-labelled by a holder of the secret: objectives loosened in its
    spec so that re-judging it gives PASS."""
    data = _document(synthetic_results(["p(99)<1ms"]), _block(gh))
    data["spec"]["objectives"] = [{"metric": "latency-p99", "upperLimit": 10_000.0}]  # as saved
    data.update(verdict="PASS", reasons=[])
    for item in data["objectives"]:
        item.update(verdict="PASS", upperLimit=10_000.0)
    return json.dumps(data).encode()


@pytest.mark.github
def test_pinned_objectives_refuse_a_loosened_run(tmp_path: Path) -> None:
    """Without pinning the service trusts the posted objectives (a loosened FAIL opens a pull
    request); with objectives pinned for the repository it is a 403 and nothing is written,
    while a run judged against the pinned objectives still opens its pull request."""
    with github_emulator(tmp_path, FILES) as gh:
        with _service(gh) as (url, _):
            trusted = _post(url, _loosened(gh))
        assert trusted.status == 201, trusted.text  # what pinning is for
    (tmp_path / "pinned").mkdir()
    with github_emulator(tmp_path / "pinned", FILES) as gh:
        objectives = ObjectivesFile.model_validate({"objectives": OBJECTIVES}).objectives
        pinned = {"acme/gitops": Pinned(objectives=tuple(o.to_core() for o in objectives))}
        with _service(gh, objectives=pinned) as (url, _):
            refused = _post(url, _loosened(gh))
            assert (refused.status, refused.json) == (403, {
                "error": "the run's objectives, analysis or errorRanges are not the ones "
                         "pinned for acme/gitops"})
            assert gh.pull_count() == 0 and [r for r in gh.requests if r.method != "GET"] == []
            accepted = _post(url, _body(gh))
        assert accepted.status == 201, accepted.text


@pytest.mark.github
def test_the_service_opens_no_file_the_request_names(tmp_path: Path) -> None:
    """bodyFile, target.kubernetes.manifests and tokenFile naming files on the service's host:
    the promotion goes through and none of those files is ever opened (audit hook on open)."""
    secret_dir = tmp_path / "host-files"
    secret_dir.mkdir()
    for name in ("body.bin", "manifest.yaml", "token"):
        (secret_dir / name).write_text("host secret\n")
    opened: list[str] = []
    watching = str(secret_dir)

    def audit(event: str, args: tuple[Any, ...]) -> None:
        if event == "open" and args and watching in str(args[0]):
            opened.append(str(args[0]))

    sys.addaudithook(audit)  # cannot be removed; it only looks at this test's directory
    (tmp_path / "gh").mkdir()
    with github_emulator(tmp_path / "gh", FILES) as gh, _service(gh) as (url, _):
        data = _document(synthetic_results(OBJECTIVES),
                         _block(gh, tokenFile=str(secret_dir / "token")))
        data["spec"]["endpoints"][0]["bodyFile"] = str(secret_dir / "body.bin")
        data["spec"]["target"] = {"url": data["spec"]["target"], "kubernetes": {
            "namespace": "shop", "manifests": [str(secret_dir / "manifest.yaml")]}}
        answer = _post(url, json.dumps(data).encode())
    assert answer.status in (201, 400), answer.text
    assert opened == []


# ----------------------------------------------------------------------- item 11: escaping


HOSTILE = "x | [click](http://evil.example) @admin <img src=x onerror=alert(1)> `code` \n| y"


def _hostile_results() -> Results:
    data = json.loads(synthetic_results(OBJECTIVES).to_json())
    data["name"] = HOSTILE
    data["reasons"] = [HOSTILE]
    data["objectives"][0]["endpoint"] = HOSTILE
    data["metrics"][HOSTILE] = data["metrics"].pop("GET /hello")
    data["startTime"] = "<!--"
    return Results.model_validate(data)


@pytest.mark.github
def test_the_pull_request_body_renders_hostile_names_as_text(tmp_path: Path) -> None:
    """Through the service, the pull request body rendered by a CommonMark parser with GFM
    tables: no link, image, raw HTML or @mention (the @ is followed by a zero-width space),
    every table row keeps its column count, and the name reads as written."""
    with _world(tmp_path, "acme/gitops") as world:
        data = _document(_hostile_results(), _block(world.gh))
        answer = _post(world.url, json.dumps(data).encode())
        assert answer.status == 201, answer.text
        body = world.gh.pull_text(1)[1] or ""
    html = MarkdownIt("commonmark").enable("table").render(body)
    assert "<a " not in html and "<img" not in html and "<!--" not in html
    assert "@admin" not in body and "@\u200badmin" in body
    for table in html.split("<table>")[1:]:
        rows = table.split("</table>")[0].split("<tr>")[1:]
        assert len({row.count("<td") + row.count("<th") for row in rows}) == 1
    assert "x | [click](http://evil.example) @\u200badmin &lt;img src=x onerror=alert(1)&gt;" \
           in html.replace("&quot;", '"')


def test_slogate_run_refuses_a_bad_promotion_name_before_the_load(tmp_path: Path) -> None:
    """`slogate run` with a promotion version that climbs out of the repository: exit 2 and one
    line before any request is sent (the target, port 9, is never contacted)."""
    spec = tmp_path / "spec.yaml"
    spec.write_text("name: x\ntarget: http://127.0.0.1:9\nload: {rate: 10, duration: 1s}\n"
                    "promotion:\n  repository: acme/gitops\n  version: 'x/../../../victim'\n"
                    "  manifests: [{path: a.yaml, strategy: copy, from: b.yaml}]\n")
    out = CliRunner().invoke(main, ["run", str(spec), "--out", str(tmp_path / "out")])
    assert out.exit_code == 2, out.stderr
    assert out.stderr == ("slogate: error: promotion.version: 'x/../../../victim' must be 1 to 128 "
                          "of letters, digits, . _ + - (not starting with . + -), no /\n")
    assert not (tmp_path / "out").exists()


@pytest.mark.github
@pytest.mark.parametrize("location, error", [
    pytest.param("{base}/repos/victim/gitops/contents/" + PRIVATE,
                 r"^refused to send GET /api/v3/repos/victim/gitops/contents/private/x\.yaml to "
                 r"GitHub: the path is outside /api/v3/repos/acme/gitops$", id="same-host"),
    pytest.param("http://198.18.0.1/api/v3/repos/acme/gitops/contents/" + BASELINE,
                 r"^GitHub answered with a redirect slogate does not follow while reading "
                 r"samples/deployments/baseline\.yaml at main in acme/gitops: Github server "
                 r"redirected from host 127\.0\.0\.1 to 198\.18\.0\.1", id="other-host"),
])
def test_a_redirect_out_of_the_repository_is_not_followed(tmp_path: Path, location: str,
                                                          error: str) -> None:
    """GitHub answering 301 (as for a renamed repository) towards another repository, or
    another host: one-line PromotionError, and the victim is never asked."""
    with _world(tmp_path, "acme/gitops") as world:
        provider = GitHubProvider(world.gh.full_name, world.gh.token, base_url=world.gh.base_url)
        world.gh.redirect_next("GET contents", location.format(base=world.gh.base_url))
        with pytest.raises(PromotionError, match=error):
            provider.read_file(BASELINE, "main")
        assert _victim_requests(world) == []
