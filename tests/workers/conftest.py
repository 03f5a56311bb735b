"""The engine tests' transports: ``fast`` runs the closed model's raw-socket users on the
compiled pump (workers/_pump.pyx), ``fast-python`` on the pure-Python one, so every engine test
proves both record the same thing."""

from __future__ import annotations

import pytest

from workers.pump import PUMP_ENV, compiled_available

PURE = "fast-python"  # the fast transport with SLOGATE_PUMP=python


def spec_transport(transport: str) -> str:
    """Return the spec's ``http.transport`` for a test transport (``fast-python`` is ``fast``)."""
    return "fast" if transport == PURE else transport


@pytest.fixture(autouse=True)
def pump_of_transport(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Set the pump a test's ``transport`` parameter names; ``fast`` needs the compiled one built
    (``pip install -e .`` builds it; a test of it must not quietly run the fallback)."""
    callspec = getattr(request.node, "callspec", None)
    transport = callspec.params.get("transport") if callspec is not None else None
    if transport == PURE:
        monkeypatch.setenv(PUMP_ENV, "python")
        return
    monkeypatch.delenv(PUMP_ENV, raising=False)
    if transport == "fast" and not compiled_available():
        pytest.fail("the compiled pump is not built: run `pip install -e .` (or make test)")
