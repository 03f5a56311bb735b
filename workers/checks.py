"""Response checks: what a response must hold besides a good status (pure, no I/O).

An endpoint's checks run, in order, on every response whose status is not already an error
(an error status stays ``status:NNN``); the first that fails makes the request's outcome
``check:<name>``, so each request still ends as exactly one outcome. Kinds:

- ``statuses``: the status is in one of the ranges (``[(200, 200), (204, 204)]``);
- ``contains``: the body contains these bytes; ``matches``: a regular expression (Python
  ``re``, searched in the body's bytes) matches somewhere in the body;
- ``json_path`` (with ``json_equals``, JSON text of the expected value, or ``json_exists``):
  the body is JSON and the path leads to a value (equal to the expected one);
- ``min_bytes`` / ``max_bytes``: the body's length is within the range;
- ``header``: the response has this header (any value; names compare case-insensitively).

JSON paths (a small grammar, no filters or wildcards): ``$`` then any number of ``.key``
(letters, digits, ``_``, ``-``) or ``[index]`` (a non-negative integer), e.g.
``$.items[0].id``. Equality is JSON's: ``1`` equals ``1.0``, ``true`` does not equal ``1``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

_JSON_STEP = re.compile(r"\.([A-Za-z0-9_\-]+)|\[(\d+)\]")
_MISSING = object()


def parse_json_path(path: str) -> tuple[str | int, ...]:
    """Return the steps of a JSON path (``$.a[0]`` -> ``("a", 0)``); ValueError names what
    is wrong."""
    if not path.startswith("$"):
        raise ValueError(f"{path!r}: a JSON path starts with '$' (e.g. $.items[0].id)")
    steps: list[str | int] = []
    at = 1
    while at < len(path):
        match = _JSON_STEP.match(path, at)
        if match is None:
            raise ValueError(f"{path!r}: expected .key or [index] at character {at + 1} "
                             "(keys: letters, digits, _ and -)")
        steps.append(match.group(1) if match.group(1) is not None else int(match.group(2)))
        at = match.end()
    return tuple(steps)


@dataclass(frozen=True, slots=True, kw_only=True)
class Check:
    """One check of one endpoint; exactly one kind is set (see the module docstring)."""

    name: str
    statuses: tuple[tuple[int, int], ...] | None = None
    contains: bytes | None = None
    matches: str | None = None
    json_path: tuple[str | int, ...] | None = None
    json_equals: str | None = None  # JSON text; None: the path must (not) exist
    json_exists: bool = True
    min_bytes: int | None = None
    max_bytes: int | None = None
    header: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ResponseChecks:
    """An endpoint's checks and the statuses they skip (the run's error ranges)."""

    checks: tuple[Check, ...]
    error_ranges: tuple[tuple[int, int], ...] = ((400, 599),)


class Checker:
    """Runs one endpoint's checks on responses; built once per worker.

    Example::

        checker = Checker(ResponseChecks(checks=(Check(name="ok", contains=b"ok"),)))
        checker.first_failure(200, [b"Content-Type"], b"not fine")  # -> "ok"
    """

    __slots__ = ("_checks", "_errors", "_expected", "_patterns")

    def __init__(self, spec: ResponseChecks) -> None:
        self._checks = spec.checks
        self._errors = spec.error_ranges
        self._patterns = {c.name: re.compile(c.matches.encode(), re.DOTALL)
                          for c in spec.checks if c.matches is not None}
        self._expected = {c.name: json.loads(c.json_equals)
                          for c in spec.checks if c.json_equals is not None}

    def first_failure(self, status: int, header_names: Iterable[bytes | str],
                      body: bytes) -> str | None:
        """Return the name of the first check ``status``, the headers and ``body`` fail, or
        None when all pass or the status is an error already (it is its own outcome)."""
        if any(lo <= status <= hi for lo, hi in self._errors):
            return None
        names: set[str] | None = None
        document: Any = _MISSING
        for check in self._checks:
            if check.statuses is not None:
                ok = any(lo <= status <= hi for lo, hi in check.statuses)
            elif check.contains is not None:
                ok = check.contains in body
            elif check.matches is not None:
                ok = self._patterns[check.name].search(body) is not None
            elif check.json_path is not None:
                if document is _MISSING:
                    document = _json_or_missing(body)
                ok = self._json_ok(check, document)
            elif check.header is not None:
                if names is None:
                    names = {_lower(n) for n in header_names}
                ok = check.header.lower() in names
            else:
                ok = ((check.min_bytes is None or len(body) >= check.min_bytes)
                      and (check.max_bytes is None or len(body) <= check.max_bytes))
            if not ok:
                return check.name
        return None

    def _json_ok(self, check: Check, document: Any) -> bool:
        value = _at(document, check.json_path or ())
        if check.json_equals is not None:
            return value is not _MISSING and _json_equal(value, self._expected[check.name])
        return (value is not _MISSING) == check.json_exists


def _lower(name: bytes | str) -> str:
    return (name.decode("latin-1") if isinstance(name, bytes) else name).lower()


def _json_or_missing(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:  # not JSON (UnicodeDecodeError is a ValueError too)
        return _MISSING


def _at(document: Any, steps: Sequence[str | int]) -> Any:
    node = document
    for step in steps:
        in_list = isinstance(step, int) and isinstance(node, list) and step < len(node)
        if in_list or (isinstance(step, str) and isinstance(node, dict) and step in node):
            node = node[step]
        else:
            return _MISSING
    return node


def _json_equal(a: Any, b: Any) -> bool:
    """Return JSON equality: numbers by value, but a boolean equals only a boolean."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    return type(a) is type(b) and a == b
