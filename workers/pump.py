"""Which pump drives the raw-socket engine (closed-model users, or the open model): the compiled
one or the pure-Python one.

The compiled pump (``workers._pump``, Cython, built by ``pip install`` from ``setup.py``) does
the per-response work of :class:`workers.raw_engine.RawUsersEngine` without a Python call
per response: read, parse, record, write the next request (open model: take the oldest queued
one, with a timerfd that wakes the pacer when a request is due). Where it is not built (no C
compiler) or ``SLOGATE_PUMP=python`` is set (tests, bisecting), the engine's pure-Python
``_pump`` runs. Each engine logs which one at INFO.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Protocol

PUMP_ENV = "SLOGATE_PUMP"  # "python": force the pure-Python pump

log = logging.getLogger(__name__)


def compiled_available() -> bool:
    """Return whether the compiled pump is built, importable and current."""
    try:
        from workers._pump import Pump
    except ImportError:
        return False
    return _current(Pump)


def _current(pump: type) -> bool:
    """Return whether ``pump`` is this source's (a build from before the open model's pacer
    timer has no ``arm``: ``pip install -e .`` rebuilds it)."""
    return hasattr(pump, "arm")


class _PyConnFields:
    """The numeric fields of a raw-socket connection, where the compiled pump is not built."""

    __slots__ = ("busy", "code", "fd", "got", "intended", "sent", "seq", "user")


class _PyEngineFields:
    """The engine state the compiled pump reads on every batch, where it is not built."""

    __slots__ = ("backstop", "finished", "in_flight", "launched", "measured_end_ns",
                 "next_due_ns", "stopping", "users_stop_ns")


try:  # C members the compiled pump reads without a Python lookup, where it is built
    from workers._pump import ConnFields, EngineFields
except ImportError:
    ConnFields = _PyConnFields  # type: ignore[misc, assignment]
    EngineFields = _PyEngineFields  # type: ignore[misc, assignment]


def forced_python() -> bool:
    """Return whether ``SLOGATE_PUMP=python`` asks for the pure-Python pump."""
    return os.environ.get(PUMP_ENV, "").strip().lower() == "python"


def pump_name() -> str:
    """Return which pump a raw-socket engine built now runs: ``compiled`` or ``python``."""
    return "compiled" if compiled_available() and not forced_python() else "python"


class CompiledPump(Protocol):
    """The compiled pump of one engine (``workers._pump.Pump``)."""

    def pump(self) -> None:
        """Handle every ready connection (and the pacer's timer)."""

    def arm(self, deadline_ns: int) -> None:
        """Open model: wake the pump at ``deadline_ns`` (monotonic ns) to pump the pacer."""

    def send(self, conn: Any, seq: int, intended: int) -> None:
        """Send request ``seq`` (intended at ``intended``, monotonic ns) on a free connection."""

    reserve: int  # rows one GIL-free stretch may record (tests set fewer)

    def close(self) -> None:
        """Close the pump's timers."""


def compiled_pump(engine: Any) -> CompiledPump | None:
    """Return the compiled pump of ``engine`` (a :class:`RawUsersEngine`), or None where the
    pure-Python one runs; say which in the log."""
    if forced_python():
        log.info("load engine: pure-Python pump (%s=python)", PUMP_ENV)
        return None
    try:
        from workers._pump import Pump
    except ImportError as exc:
        log.info("load engine: pure-Python pump (compiled pump not built: %s)", exc)
        return None
    if not _current(Pump):
        log.info("load engine: pure-Python pump (compiled pump out of date: pip install -e .)")
        return None
    log.info("load engine: compiled pump (workers._pump)")
    return Pump(engine)
