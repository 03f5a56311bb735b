"""The errors the coordinator raises, and :data:`EXPECTED`, every error slogate raises on purpose.

Each package owns the errors it raises (:mod:`analysis.errors`, :mod:`promote.errors`,
:mod:`deploy.errors`; workers raise none: a failed request is data), so no package imports one
from a package above it. Every class carries a one-line, user-facing message; foreign
exceptions are translated at the boundary with ``raise Ours(...) from exc``. Only
:mod:`coordinator.cli` turns them into exit codes (:func:`exit_code`).
"""

from __future__ import annotations

from analysis.errors import ResultsError
from deploy.errors import KubernetesError
from promote.errors import PromotionError


class CoordinatorError(Exception):
    """Base class of the coordinator's own errors: a failure it expects and can explain in one
    line."""


class SpecError(CoordinatorError):
    """The experiment spec (or another user-supplied file) is invalid."""


class ClusterError(CoordinatorError):
    """Ray could not be started or joined, or the workers could not be placed."""


class Interrupted(CoordinatorError):
    """Ctrl-C or SIGTERM before any load was sent (Ray or the workers were starting); exit 130,
    the shell's code for a command ended by SIGINT."""


class ExampleError(CoordinatorError):
    """The bundled sample app could not be started."""


class HistoryError(CoordinatorError):
    """The run archive cannot be read or written (a missing directory or git repository, a git
    command that failed), or it holds no run to show."""


# every error slogate raises on purpose, whichever package owns it
EXPECTED: tuple[type[Exception], ...] = (CoordinatorError, ResultsError, PromotionError,
                                         KubernetesError)


def exit_code(exc: Exception) -> int:
    """Return the exit code of an expected error: 130 for an interrupted start, the class's own
    ``exit_code`` where it has one (3 for a wait that timed out: nothing was verified), else 2."""
    return 130 if isinstance(exc, Interrupted) else int(getattr(exc, "exit_code", 2))
