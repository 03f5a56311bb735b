"""How an objective's values and limits are written, the same in every report and reason.

One formatter for a value in an objective's terms (:func:`objective_value_text`: the metric's
unit, or for a relative objective a ratio ``x1.05`` or, for error-rate, a difference ``+0.1 pp``)
and one for its limits (:func:`limits_text`), shared by the verdict's reasons, the text,
markdown and HTML reports and the promotion's objective check. They read any object with the
fields of :class:`Limited`: the judged :class:`~analysis.verdict.Slo` and the saved
:class:`~analysis.results.ObjectiveResult` both have them.

Pure; imports only :mod:`analysis.catalog` and :mod:`analysis.custom` (which imports nothing of
analysis), so every report module can import it without a loop.
"""

from __future__ import annotations

from typing import Protocol

from analysis.catalog import format_value
from analysis.custom import format_custom


class Limited(Protocol):
    """An objective's metric, what it is relative to (None: absolute) and its limits."""

    @property
    def metric(self) -> str: ...

    @property
    def vs(self) -> str | None: ...

    @property
    def lower_limit(self) -> float | None: ...

    @property
    def upper_limit(self) -> float | None: ...


def objective_value_text(objective: Limited, value: float | None,
                         unit: str | None = None) -> str:
    """Return a value in an objective's terms: the metric's unit (``unit``: a custom metric's),
    or for a relative objective a ratio (``x1.05``) or, for error-rate, a difference in
    percentage points (``+0.1 pp``)."""
    if unit is not None and objective.vs is None:
        return format_custom(value, unit)
    if objective.vs is None or value is None:
        return format_value(objective.metric, value)
    return comparison_value_text("difference" if objective.metric == "error-rate" else "ratio",
                                 value)


def comparison_value_text(kind: str, value: float | None) -> str:
    """Return a comparison value: a ratio ``x1.05`` or a difference ``+0.1 pp``; ``—`` for
    None."""
    if value is None:
        return "—"
    return f"{value * 100:+.3g} pp" if kind == "difference" else f"x{value:.3g}"


def limits_text(objective: Limited, *, plain: bool = False, unit: str | None = None) -> str:
    """Return an objective's limits in its terms, for a table (``≥ 900.0 req/s, ≤ 200 ms``) or,
    ``plain``, for a sentence (``>= 900.0 req/s and <= 200 ms``); empty without limits
    (``unit``: a custom metric's)."""
    (low_sign, high_sign), joiner = ((">=", "<="), " and ") if plain else (("≥", "≤"), ", ")
    return joiner.join(
        f"{sign} {objective_value_text(objective, limit, unit)}"
        for sign, limit in ((low_sign, objective.lower_limit), (high_sign, objective.upper_limit))
        if limit is not None)
