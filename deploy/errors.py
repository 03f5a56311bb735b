"""The error the dark launch raises (drawn in :mod:`deploy`).

It carries a one-line, user-facing message; :mod:`coordinator.cli` maps it to exit 2.
"""

from __future__ import annotations


class KubernetesError(Exception):
    """The Kubernetes API refused or failed an operation (kubeconfig, RBAC, apply, a Secret), or
    the candidate never became ready (the message says why, from its pods' status)."""
