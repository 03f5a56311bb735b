"""The one exception tree of slogate (drawn in :mod:`coordinator`'s docstring).

Every class carries a one-line, user-facing message. Foreign exceptions are translated at the
boundary with ``raise Ours(...) from exc`` so the CLI can print the message without a traceback.
"""

from __future__ import annotations


class SlogateError(Exception):
    """Base class: a failure slogate expects and can explain in one line."""

    exit_code: int = 2


class SpecError(SlogateError):
    """The experiment spec (or another user-supplied file) is invalid."""


class ResultsError(SlogateError):
    """A results file cannot be read, or does not follow the results schema."""


class ClusterError(SlogateError):
    """Ray could not be started or joined, or the workers could not be placed."""


class Interrupted(SlogateError):
    """Ctrl-C or SIGTERM before any load was sent (Ray or the workers were starting); exit 130,
    the shell's code for a command ended by SIGINT."""

    exit_code = 130


class ExampleError(SlogateError):
    """The bundled sample app could not be started."""


class PromotionError(SlogateError):
    """The promotion cannot be prepared or done (a manifest that cannot be patched, a bad path)."""


class KubernetesError(SlogateError):
    """The Kubernetes API refused or failed an operation (kubeconfig, RBAC, apply, a Secret), or
    the candidate never became ready (the message says why, from its pods' status)."""


class HistoryError(SlogateError):
    """The run archive cannot be read or written (a missing directory or git repository, a git
    command that failed), or it holds no run to show."""
