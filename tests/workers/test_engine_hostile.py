"""Hostile requests and responses: every scheduled request ends as exactly one outcome, and
nothing a spec says can put a second request on the wire (real servers on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from coordinator.errors import SpecError
from coordinator.spec import parse_spec
from coordinator.split import worker_plans
from tests.support import servers
from tests.workers.conftest import spec_transport
from tests.workers.test_engine import MODELS, TRANSPORTS, outcomes, plan_for
from workers.load_worker import LoadWorker, WorkerReport
from workers.plan import WorkerPlan
from workers.raw_engine import encode_request

ROOT = Path(__file__).resolve().parents[2]
SMUGGLING = ("X-A", "v\r\nX-Injected: yes")


def run_plan(plan: WorkerPlan) -> WorkerReport:
    """Run one worker of ``plan`` from a moment from now and return its report."""
    return LoadWorker(plan).run(start_at=time.time() + 0.2)


def with_header(plan: WorkerPlan, name: str, value: str) -> WorkerPlan:
    """Return ``plan`` whose templates carry one more header, past the spec's checks."""
    requests = tuple(dataclasses.replace(t, headers=(*t.headers, (name, value)))
                     for t in plan.requests)
    return dataclasses.replace(plan, requests=requests)


def assert_one_outcome_each(report: WorkerReport, n: int) -> None:
    """Every one of the ``n`` scheduled requests ended as exactly one outcome."""
    assert sum(outcomes(report).values()) == n
    assert sum(w.scheduled for w in report.windows) == n
    assert (report.unsent, report.warmup_requests) == (0, 0)


# --- item: outcomes == scheduled ----------------------------------------------------------------


@pytest.mark.parametrize("model", MODELS)
def test_a_request_aiohttp_refuses_is_an_error_outcome_not_lost(model: dict[str, Any]) -> None:
    """A header aiohttp raises ValueError on (CR/LF) gives 40 ``error:ValueError`` outcomes for
    40 scheduled requests (the open model lost them all, the closed model crashed the worker)."""
    with servers.wire_server() as server:
        plan = plan_for(server.url, {**model, "requests": 40}, transport="aiohttp")
        report = run_plan(with_header(plan, *SMUGGLING))
    assert outcomes(report) == {"error:ValueError": 40}
    assert_one_outcome_each(report, 40)
    assert b"X-Injected" not in server.wire


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_response_the_parser_raises_on_still_ends_each_request(transport: str,
                                                                 model: dict[str, Any]) -> None:
    """Against a server answering 101 Switching Protocols (httptools raises HttpParserUpgrade,
    not an HttpParserError), 30 scheduled requests give 30 outcomes, none a timeout."""
    with servers.upgrade_server() as server:
        plan = plan_for(server.url, {**model, "requests": 30, "timeout": "5s"},
                        transport=transport)
        report = run_plan(plan)
    assert_one_outcome_each(report, 30)
    assert set(outcomes(report)) <= {"status:101", "error:HttpParserUpgrade"}
    assert outcomes(report).get("status:101", 0) >= 15  # each answered request is seen as such


class StuckSender:
    """A Sender (the engine's seam) whose requests never finish, or raise ``error``."""

    def __init__(self, error: Exception | None = None) -> None:
        self.error = error

    async def send(self, endpoint: int) -> tuple[str, int]:
        """Wait forever, or raise the given error."""
        if self.error is not None:
            raise self.error
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        """Nothing to close."""


@pytest.mark.parametrize(("error", "outcome"), [
    pytest.param(None, "timeout", id="never-answers"),
    pytest.param(RuntimeError("boom"), "error:RuntimeError", id="raises"),
])
@pytest.mark.parametrize("model", MODELS)
def test_the_coroutine_engine_records_whatever_its_sender_does(error: Exception | None,
                                                               outcome: str,
                                                               model: dict[str, Any]) -> None:
    """A Sender that raises gives error:<Name>; one that never returns is given up a second
    after the request timeout and recorded as a timeout (a closed-model user used to wait on it
    for ever, past the hard stop)."""
    plan = plan_for("http://127.0.0.1:9", {**model, "requests": 8, "timeout": "200ms"},
                    transport="aiohttp")
    worker = LoadWorker(plan, sender_factory=lambda _plan: StuckSender(error))
    report = worker.run(start_at=time.time() + 0.1)
    assert outcomes(report) == {outcome: 8}
    assert_one_outcome_each(report, 8)


# --- item: request smuggling from the spec -----------------------------------------------------

BASE = {"name": "t", "target": "http://127.0.0.1:8080", "load": {"rate": 10, "duration": "1s"}}

REFUSED = [
    pytest.param({"headers": {"X-A": "v\r\nX-Injected: yes"}},
                 "endpoints[0].headers.X-A: the value contains CR", id="crlf-in-value"),
    pytest.param({"headers": {"X-A": "v\nX-Injected: yes"}},
                 "endpoints[0].headers.X-A: the value contains LF", id="lf-in-value"),
    pytest.param({"headers": {"X-A": "v\x00"}},
                 "endpoints[0].headers.X-A: the value contains NUL", id="nul-in-value"),
    pytest.param({"headers": {"X-A\r\nX-Injected": "yes"}},
                 "endpoints[0].headers: 'X-A\\r\\nX-Injected' is not a header name", id="crlf-name"),
    pytest.param({"headers": {"X A": "v"}}, "endpoints[0].headers: 'X A' is not a header name",
                 id="space-in-name"),
    pytest.param({"headers": {"X-A": "5 €"}},
                 "endpoints[0].headers.X-A: the value has U+20AC, not ASCII", id="euro"),
    pytest.param({"headers": {"X-A": "caf\u00e9"}},
                 "endpoints[0].headers.X-A: the value has U+00E9, not ASCII", id="latin-1"),
    pytest.param({"headers": {"Content-Length": "0"}},
                 "endpoints[0].headers.Content-Length: slogate sets the body's framing",
                 id="content-length"),
    pytest.param({"headers": {"transfer-encoding": "chunked"}},
                 "endpoints[0].headers.transfer-encoding: slogate sets the body's framing",
                 id="transfer-encoding"),
    pytest.param({"contentType": "text/plain\r\nX-Injected: yes"},
                 "endpoints[0].contentType: Content-Type: the value contains CR", id="content-type"),
    pytest.param({"path": "/hello HTTP/1.0\r\nX-Injected: yes"},
                 "endpoints[0].path: '/hello HTTP/1.0\\r\\nX-Injected: yes' contains CR",
                 id="crlf-in-path"),
    pytest.param({"path": "/a#frag"}, "endpoints[0].path: '/a#frag' has a fragment", id="fragment"),
    pytest.param({"path": "/100%"}, "endpoints[0].path: '/100%': '%' must start an escape",
                 id="lone-percent"),
]


@pytest.mark.parametrize(("endpoint", "message"), REFUSED)
def test_what_could_split_a_request_is_a_spec_error(endpoint: dict[str, Any], message: str) -> None:
    """Header names that are not tokens, values with CR/LF/NUL or beyond ASCII, framing
    headers and paths no encoding mends are refused at validation, naming the field."""
    with pytest.raises(SpecError) as caught:
        parse_spec({**BASE, "endpoints": [endpoint]})
    assert str(caught.value).startswith(f"spec: {message}")


ENCODED = [
    pytest.param("/hello world", "/hello%20world", id="space"),
    pytest.param("/grüße", "/gr%C3%BC%C3%9Fe", id="non-ascii"),
    pytest.param("/a b?q=x y&r=%2F", "/a%20b?q=x%20y&r=%2F", id="query-in-path"),
    pytest.param("/already%20encoded", "/already%20encoded", id="escapes-kept"),
    pytest.param("/<x>|{y}", "/%3Cx%3E%7C%7By%7D", id="unsafe-ascii"),
]


@pytest.mark.parametrize(("path", "sent"), ENCODED)
def test_paths_are_percent_encoded_once(path: str, sent: str) -> None:
    """A space, a non-ASCII or an unsafe character in a path is percent-encoded (UTF-8), and a
    validated spec validates again to itself."""
    spec = parse_spec({**BASE, "endpoints": [{"path": path}]})
    assert spec.endpoints[0].path == sent
    again = parse_spec(spec.model_dump(mode="json", by_alias=True))
    assert again.endpoints[0].path == sent


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_nothing_smuggled_reaches_the_wire(transport: str) -> None:
    """The tricky-but-valid endpoint (spaces, non-ASCII, CR/LF in a query value, a tab in a
    header) sends exactly 6 requests, each with the encoded request line."""
    endpoint = {"path": "/hello wörld", "query": {"q": "a\r\nX-Injected: yes"},
                "headers": {"X-Note": "a\tb ~!"}}
    with servers.wire_server() as server:
        spec = parse_spec({**BASE, "target": server.url,
                           "load": {"concurrency": 2, "requests": 6},
                           "endpoints": [endpoint],
                           "http": {"transport": spec_transport(transport)}})
        [plan] = worker_plans(spec)
        report = run_plan(plan)
    assert outcomes(report) == {"status:200": 6}
    assert len(server.requests) == 6
    [line] = {str(r["head"]).split("\r\n")[0] for r in server.requests}
    # yarl (aiohttp) writes the query's ':' plainly, which a query allows; CR and LF stay escaped
    assert line in ("GET /hello%20w%C3%B6rld?q=a%0D%0AX-Injected%3A+yes HTTP/1.1",
                    "GET /hello%20w%C3%B6rld?q=a%0D%0AX-Injected:+yes HTTP/1.1")
    assert all("\r\nX-Note: a\tb ~!" in str(r["head"]) for r in server.requests)
    assert b"\r\nX-Injected" not in server.wire


@pytest.mark.parametrize(("name", "value"), [SMUGGLING, ("X A", "v"), ("X-A", "\u20ac")])
def test_a_template_built_past_the_spec_is_refused_before_any_connection(name: str,
                                                                         value: str) -> None:
    """encode_request refuses a header that would split the request, so the fast worker fails
    at once and the server never sees a byte."""
    with servers.wire_server() as server:
        plan = with_header(plan_for(server.url, {"concurrency": 1, "requests": 3},
                                    transport="fast"), name, value)
        with pytest.raises(ValueError):
            run_plan(plan)
    assert (server.connections, bytes(server.wire)) == (0, b"")
    with pytest.raises(ValueError):
        encode_request(plan.requests[0], "127.0.0.1")


def test_cli_names_the_field_and_line_of_a_smuggling_header(tmp_path: Path) -> None:
    """`slogate run` on a spec whose header value holds CR/LF prints one line with the file,
    line and field, and exits 2."""
    path = tmp_path / "spec.yaml"
    path.write_text("name: t\ntarget: http://127.0.0.1:9\nload: {rate: 1, duration: 1s}\n"
                    "endpoints:\n  - path: /hello\n    headers:\n"
                    '      X-A: "v\\r\\nX-Injected: yes"\n', encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "coordinator.cli", "run", str(path)],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert (done.returncode, done.stderr.splitlines()) == (2, [
        f"slogate: error: {path}:7: endpoints[0].headers.X-A: the value contains CR (a control "
        "character could split the request)"])
