"""Live progress of a run: a one-line rich display on a terminal, plain periodic lines otherwise.

Fed with :class:`~coordinator.ray_pool.LiveView` values (running totals over every worker);
prints elapsed / total, achieved against target rate, errors and running p50/p99. With a
baseline, each version's rate is shown against its own target (the spec's rate is per version).

Invariant: while the live line shows, every other message goes through :meth:`message` (the
CLI's log does, via :meth:`ProgressPrinter.showing`), which ends the line first, so a message
never lands on the tail of the progress line.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from typing import Any, ClassVar, TextIO

from rich.console import Console
from rich.live import Live
from rich.text import Text


class ProgressPrinter:
    """Shows progress; use as a context manager around the run.

    Example::

        with ProgressPrinter(total_s=30, target_rps=500) as show:
            pool = RayPool(..., on_progress=show.update)
    """

    _entered: ClassVar[list[ProgressPrinter]] = []  # innermost last

    def __init__(self, *, total_s: float | None, target_rps: float | None,
                 excluded_s: float = 0.0, stream: TextIO | None = None,
                 every_s: float = 5.0, versions: int = 1) -> None:
        self._total_s = total_s
        self._excluded_s = excluded_s
        self._target = target_rps
        self._versions = versions
        self._stream = stream or sys.stderr
        self._interactive = self._stream.isatty()
        self._every_s = every_s
        self._last_line = 0.0
        self._live: Live | None = None

    @classmethod
    def showing(cls) -> ProgressPrinter | None:
        """Return the printer whose progress is on screen now (the innermost), or None."""
        return cls._entered[-1] if cls._entered else None

    def __enter__(self) -> ProgressPrinter:
        if self._interactive:
            console = Console(file=self._stream, markup=False, emoji=False, highlight=False)
            self._live = Live(Text(""), console=console, transient=True, refresh_per_second=4)
            self._live.__enter__()
        ProgressPrinter._entered.append(self)
        return self

    def __exit__(self, *exc: Any) -> None:
        ProgressPrinter._entered.remove(self)
        if self._live is not None:
            self._live.__exit__(*exc)

    def message(self, line: str) -> None:
        """Print one message line: above the live progress line on a terminal (which ends the
        progress line first and redraws it below), else as a plain line."""
        if self._live is not None:
            self._live.console.print(Text(line), soft_wrap=True)
        else:
            print(line, file=self._stream, flush=True)

    def _rate_text(self, view: Any, measured_s: float) -> str:
        """Return ``1,234/1,500 req/s``, or per version ``baseline 129/150, candidate
        128/150 req/s`` when the view counts requests per version."""
        def rate(requests: int) -> float:
            return requests / measured_s if measured_s > 0.5 else 0.0

        target = f"/{self._target:g}" if self._target else ""
        by_version: Mapping[str, int] = getattr(view, "by_version", None) or {}
        if len(by_version) > 1:
            return ", ".join(f"{version} {rate(n):,.0f}{target}"
                             for version, n in sorted(by_version.items())) + " req/s"
        if self._versions > 1 and self._target:  # no per-version counts: both together
            target = f"/{self._target * self._versions:g}"
            return f"{rate(view.requests):,.0f}{target} req/s for {self._versions} versions"
        return f"{rate(view.requests):,.0f}{target} req/s"

    def line(self, view: Any) -> str:
        """Return the progress line for a view."""
        total = f"/{self._total_s:.0f}" if self._total_s else ""
        measured_s = view.elapsed_s - self._excluded_s  # warm-up and ramp are not counted
        p50 = "-" if view.latency_p50_ms is None else f"{view.latency_p50_ms:.3g}"
        p99 = "-" if view.latency_p99_ms is None else f"{view.latency_p99_ms:.3g}"
        lost = f", {view.lost} lost" if view.lost else ""
        return (f"slogate: {view.elapsed_s:.0f}{total} s, {view.requests:,} requests "
                f"({self._rate_text(view, measured_s)}), {view.errors:,} errors, in flight "
                f"{view.in_flight}, p50 {p50} ms, p99 {p99} ms, {view.workers} workers{lost}")

    def update(self, view: Any) -> None:
        """Show a new view (rate-limited to one plain line every ``every_s`` seconds)."""
        if self._live is not None:
            self._live.update(Text(self.line(view)), refresh=True)
            return
        now = time.monotonic()
        if now - self._last_line >= self._every_s:
            self._last_line = now
            print(self.line(view), file=self._stream, flush=True)
