"""Request data rows: which rendered request an endpoint sends next (pure, no I/O, no clock).

The coordinator reads a data file once, renders one request per row and splits the rows between
workers: worker ``i`` of ``W`` holds rows ``i, i + W, i + 2W, ...`` of the file, in file order
(its slice). Within its slice each endpoint of a worker sends, request after request:

- ``sequential``: the rows in file order, from the first again after the last;
- ``shuffle``: each pass over the slice in a new random order (every row once per pass);
- ``random``: rows drawn with replacement.

The random orders are seeded by the template's ``stream`` (the spec's seed, the worker and the
endpoint), so a run with the same spec sends the same rows in the same order, and the baseline
and the candidate of a two-version run (which strictly alternate) get the same rows.

Engines take an endpoint's next request with ``payloads[endpoint]()`` (:func:`per_endpoint`):
a C-level call, about as cheap for a fixed request as for rows.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

import numpy as np

from workers.plan import RequestTemplate

T = TypeVar("T")
_DRAWS = 4096  # random order: rows drawn per call into the generator


def row_stream(items: Sequence[T], order: str, stream: str) -> Callable[[], T]:
    """Return a function giving the next item of ``items`` in ``order`` (see the module)."""
    if not items:
        raise ValueError("a row stream needs at least one row")
    if order == "sequential":
        return itertools.cycle(items).__next__
    # the same seed in every process (str hash() is salted per process; sha256 is not)
    rng = np.random.default_rng(int.from_bytes(hashlib.sha256(stream.encode()).digest()[:8],
                                               "little"))
    # chain's __next__ reads a list in C; Python runs once per pass (or per _DRAWS draws)
    if order == "shuffle":
        return itertools.chain.from_iterable(_passes(list(items), rng)).__next__
    if order == "random":
        return itertools.chain.from_iterable(_draws(list(items), rng)).__next__
    raise ValueError(f"unknown row order {order!r} (sequential, random or shuffle)")


def _passes(items: list[T], rng: np.random.Generator) -> Iterator[list[T]]:
    table = _objects(items)
    while True:
        yield table[rng.permutation(len(items))].tolist()


def _draws(items: list[T], rng: np.random.Generator) -> Iterator[list[T]]:
    table = _objects(items)
    while True:
        yield table[rng.integers(0, len(items), _DRAWS)].tolist()


def _objects(items: list[T]) -> np.ndarray:
    """Return ``items`` as a 1-D object array (indexed by a permutation in one C call)."""
    table = np.empty(len(items), dtype=object)
    table[:] = items
    return table


def per_endpoint(templates: Sequence[RequestTemplate],
                 build: Callable[[RequestTemplate], T]) -> list[Callable[[], T]]:
    """Return, per endpoint, a function giving its next request: ``build(template)`` built once
    and repeated, or (request data) its rows built once each and sent in the template's order.
    Each function is a C-level ``__next__`` (itertools, or a generator's)."""
    nexts: list[Callable[[], T]] = []
    for template in templates:
        if template.rows:
            built = [build(row) for row in template.rows]
            nexts.append(row_stream(built, template.order, template.stream))
        else:
            nexts.append(itertools.repeat(build(template)).__next__)
    return nexts
