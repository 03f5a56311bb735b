"""The error promotion raises (drawn in :mod:`promote`).

It carries a one-line, user-facing message; :mod:`coordinator.cli` maps it to exit 2 and the
promotion service to an HTTP status.
"""

from __future__ import annotations


class PromotionError(Exception):
    """The promotion cannot be prepared or done (a manifest that cannot be patched, a bad path)."""
