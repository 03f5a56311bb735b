"""The directory a run writes its results to (``--out``): made and proven writable before any
load, so that a run is never spent to find at its end that its evidence has nowhere to go."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path

from coordinator.errors import SpecError


@contextlib.contextmanager
def writable_out(out_dir: Path) -> Iterator[Path]:
    """Yield ``out_dir``, created where it is missing, once a file can be written in it; raise
    SpecError naming it otherwise. Checked before any load, so that a run is not spent to find
    at its end that its results have nowhere to go. A directory made here and left empty (the
    run failed before writing) is removed again."""
    made = not out_dir.exists()
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out_dir):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        if out_dir.exists() and not out_dir.is_dir():
            reason = "not a directory"
        raise SpecError(f"--out {out_dir}: cannot write results there ({reason})") from None
    try:
        yield out_dir
    finally:
        if made:
            with contextlib.suppress(OSError):
                out_dir.rmdir()  # only when empty
