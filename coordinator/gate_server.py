"""``slogate gate-serve``: the gate of :mod:`coordinator.gate` over HTTP (the standard
library's threading server; read-only, one archive scan per request).

Routes: ``POST /v1/flagger`` (Flagger's webhook payload), ``GET /v1/verdict?experiment=NAME
[&maxAge=DURATION]`` (for an Argo Rollouts ``web`` metric or a script), ``GET /healthz``.
Bodies over :data:`MAX_BODY_BYTES` answer 413; an archive that cannot be read answers 503
with one line.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from coordinator.errors import EXPECTED
from coordinator.gate import GateAnswer, GateQuery, gate_decision, parse_flagger
from coordinator.units import parse_duration_s

MAX_BODY_BYTES = 64 * 1024
Runs = Callable[[], list[tuple[Any, str]]]


def _query(url: str, default_max_age_s: float | None) -> GateQuery | GateAnswer:
    params = parse_qs(urlsplit(url).query)
    name = (params.get("experiment") or [""])[0]
    if not name:
        return GateAnswer(status=400, body={"error": "give ?experiment=NAME"})
    max_age_s = default_max_age_s
    if params.get("maxAge"):
        try:
            max_age_s = parse_duration_s(params["maxAge"][0])
        except ValueError as exc:
            return GateAnswer(status=400, body={"error": f"maxAge: {exc}"})
    return GateQuery(experiment=name, max_age_s=max_age_s)


def make_server(host: str, port: int, runs: Runs, *, default_max_age_s: float | None,
                log: Callable[[str], None],
                now: Callable[[], datetime] = lambda: datetime.now(UTC),
                ) -> ThreadingHTTPServer:
    """Return the gate's HTTP server bound to ``host:port`` (0: any free port); serve it with
    ``serve_forever``."""

    class Handler(BaseHTTPRequestHandler):
        server_version = "slogate-gate"

        def do_GET(self) -> None:
            if self.path == "/healthz":
                self._answer(GateAnswer(status=200, body={"status": "ok"}))
            elif urlsplit(self.path).path == "/v1/verdict":
                self._decide(_query(self.path, default_max_age_s))
            else:
                self._answer(GateAnswer(status=404, body={"error": "not found"}))

        def do_POST(self) -> None:
            if urlsplit(self.path).path != "/v1/flagger":
                self._answer(GateAnswer(status=404, body={"error": "not found"}))
                return
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY_BYTES:
                self._answer(GateAnswer(status=413, body={"error": "body too large"}))
                return
            self._decide(parse_flagger(self.rfile.read(length),
                                       default_max_age_s=default_max_age_s))

        def _decide(self, query: GateQuery | GateAnswer) -> None:
            if isinstance(query, GateAnswer):
                self._answer(query)
                return
            try:
                answer = gate_decision(runs(), query, now=now())
            except EXPECTED as exc:
                answer = GateAnswer(status=503, body={"error": str(exc)})
            self._answer(answer)

        def _answer(self, answer: GateAnswer) -> None:
            verdict = answer.body.get("verdict") or answer.body.get("error") or ""
            log(f"{self.command} {urlsplit(self.path).path} -> {answer.status} {verdict}")
            data = json.dumps(answer.body).encode()
            self.send_response(answer.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *_args: Any) -> None:  # one line per request, ours
            return None

    return ThreadingHTTPServer((host, port), Handler)
