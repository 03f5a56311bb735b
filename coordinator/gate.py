"""The gate of rollout controllers: answer a Flagger webhook (or any HTTP check, such as an
Argo Rollouts ``web`` metric) with the verdict of the newest run of an experiment.

Pure: :func:`gate_decision` takes the runs of a run archive and returns the HTTP status and
the answer; :func:`parse_flagger` reads Flagger's webhook payload. The server is
:mod:`coordinator.gate_server`.

Invariants: only a PASS, re-judged from the run's own histograms and objectives (a verdict
field alone is never trusted), answers 2xx; a FAIL answers 412, an INCONCLUSIVE or INVALID run
or one older than ``max_age_s`` 409, no run of the experiment 404, a malformed request 400. The
answer names the run, its verdict and why, never anything from a secret.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from analysis.history import start_of
from analysis.results import Results
from coordinator.units import parse_duration_s
from promote.flow import rejudged_verdict

STATUS_OF = {"PASS": 200, "FAIL": 412, "INCONCLUSIVE": 409, "INVALID": 409}


@dataclass(frozen=True, slots=True, kw_only=True)
class GateQuery:
    """What a caller asks: the experiment's name and how old its newest run may be."""

    experiment: str
    max_age_s: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class GateAnswer:
    """The HTTP status and the JSON answer."""

    status: int
    body: dict[str, Any]


def parse_flagger(body: bytes, *, default_max_age_s: float | None) -> GateQuery | GateAnswer:
    """Return the query in Flagger's webhook payload (``{name, namespace, phase, metadata}``):
    ``metadata.experiment`` (default: the canary's ``name``) and ``metadata.maxAge`` (default:
    the server's); a 400 answer when it is not such a payload."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return _bad("the body is not JSON")
    if not isinstance(data, dict):
        return _bad("the body is not a JSON object")
    metadata = data.get("metadata") or {}
    if not isinstance(metadata, dict):
        return _bad("metadata is not an object")
    name = metadata.get("experiment") or data.get("name")
    if not isinstance(name, str) or not name:
        return _bad("no experiment: give metadata.experiment, or the canary's name")
    max_age_s = default_max_age_s
    if metadata.get("maxAge") is not None:
        try:
            max_age_s = parse_duration_s(metadata["maxAge"])
        except ValueError as exc:
            return _bad(f"metadata.maxAge: {exc}")
    return GateQuery(experiment=name, max_age_s=max_age_s)


def _bad(why: str) -> GateAnswer:
    return GateAnswer(status=400, body={"error": why})


def gate_decision(runs: Sequence[tuple[Results, str]], query: GateQuery, *,
                  now: datetime) -> GateAnswer:
    """Return the answer for the newest run of ``query.experiment`` among ``runs`` (with
    where each came from)."""
    mine = [(start_of(r, s), s, r) for r, s in runs if r.name == query.experiment]
    if not mine:
        return GateAnswer(status=404, body={"experiment": query.experiment, "verdict": None,
                                            "reason": "no run of this experiment"})
    started, source, newest = max(mine, key=lambda item: (item[0], item[1]))
    verdict = rejudged_verdict(newest)
    age_s = (now - started).total_seconds()
    body = {"experiment": query.experiment, "verdict": verdict, "run": source,
            "startTime": newest.start_time, "ageS": round(age_s, 1),
            "reasons": list(newest.reasons)}
    if query.max_age_s is not None and age_s > query.max_age_s:
        return GateAnswer(status=409, body={**body, "reason": (
            f"the newest run is {age_s:.0f} s old, more than {query.max_age_s:g} s")})
    status = STATUS_OF.get(verdict, 409)
    return GateAnswer(status=status, body={**body, "reason": (
        "the newest run passed" if status == 200 else f"the newest run is {verdict}")})
