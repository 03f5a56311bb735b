"""The errors analysis raises: a saved document it cannot read (drawn in :mod:`analysis`).

Each carries a one-line, user-facing message; :mod:`coordinator.cli` maps it to exit 2.
"""

from __future__ import annotations


class ResultsError(Exception):
    """A results file cannot be read, or does not follow the results schema."""
