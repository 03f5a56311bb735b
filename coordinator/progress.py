"""Live progress of a run: a one-line rich display on a terminal, plain periodic lines otherwise.

Fed with :class:`~coordinator.cluster.LiveView` values (running totals over every worker);
prints elapsed / total, achieved against target rate, errors and running p50/p99.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from rich.console import Console
from rich.live import Live
from rich.text import Text


class ProgressPrinter:
    """Shows progress; use as a context manager around the run.

    Example::

        with ProgressPrinter(total_s=30, target_rps=500) as show:
            pool = RayPool(..., on_progress=show.update)
    """

    def __init__(self, *, total_s: float | None, target_rps: float | None,
                 excluded_s: float = 0.0, stream: TextIO | None = None,
                 every_s: float = 5.0) -> None:
        self._total_s = total_s
        self._excluded_s = excluded_s
        self._target = target_rps
        self._stream = stream or sys.stderr
        self._interactive = self._stream.isatty()
        self._every_s = every_s
        self._last_line = 0.0
        self._live: Live | None = None

    def __enter__(self) -> ProgressPrinter:
        if self._interactive:
            self._live = Live(Text(""), console=Console(file=self._stream), transient=True,
                              refresh_per_second=4)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._live is not None:
            self._live.__exit__(*exc)

    def line(self, view: Any) -> str:
        """Return the progress line for a view."""
        total = f"/{self._total_s:.0f}" if self._total_s else ""
        measured_s = view.elapsed_s - self._excluded_s  # warm-up and ramp are not counted
        rate = view.requests / measured_s if measured_s > 0.5 else 0.0
        target = f"/{self._target:g}" if self._target else ""
        p50 = "-" if view.latency_p50_ms is None else f"{view.latency_p50_ms:.3g}"
        p99 = "-" if view.latency_p99_ms is None else f"{view.latency_p99_ms:.3g}"
        lost = f", {view.lost} lost" if view.lost else ""
        return (f"slogate: {view.elapsed_s:.0f}{total} s, {view.requests:,} requests "
                f"({rate:,.0f}{target} req/s), {view.errors:,} errors, in flight "
                f"{view.in_flight}, p50 {p50} ms, p99 {p99} ms, {view.workers} workers{lost}")

    def update(self, view: Any) -> None:
        """Show a new view (rate-limited to one plain line every ``every_s`` seconds)."""
        if self._live is not None:
            self._live.update(Text(self.line(view)))
            return
        now = time.monotonic()
        if now - self._last_line >= self._every_s:
            self._last_line = now
            print(self.line(view), file=self._stream, flush=True)
