"""The live progress line: messages never land on its tail, and each version's rate is shown
against its own target.

The terminal test runs a real process on a pseudo-terminal and replays what it wrote through a
small screen model (the few control sequences rich uses), so it checks what a person sees.
"""

from __future__ import annotations

import fcntl
import io
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from types import SimpleNamespace

import numpy as np
import pytest

from coordinator.progress import ProgressPrinter
from coordinator.supervisor import _by_version
from tests.support.helpers import REPO_ROOT
from workers.recorder import CODE_SPAN, Recorder

_CHILD = """
from types import SimpleNamespace
from coordinator.cli import _log
from coordinator.progress import ProgressPrinter

view = SimpleNamespace(elapsed_s=3.0, requests=600, errors=0, in_flight=2, latency_p50_ms=1.0,
                       latency_p99_ms=2.0, workers=2, lost=0, by_version={})
with ProgressPrinter(total_s=10, target_rps=200) as progress:
    progress.update(view)
    _log("load finished; merging and judging")
    progress.update(view)
_log("results written")
"""


def _screen(output: str) -> list[str]:
    """Return the lines a terminal shows after ``output``: text overwrites at the cursor; \\r,
    \\n, erase line (ESC[2K) and cursor up (ESC[nA) move or clear; other sequences are ignored."""
    lines, row, col = [""], 0, 0
    for token in re.findall(r"\x1b\[[0-9;?]*[A-Za-z]|\r|\n|[^\x1b\r\n]+", output):
        if token == "\r":
            col = 0
        elif token == "\n":
            row += 1
            lines += [""] * (row + 1 - len(lines))
        elif token == "\x1b[2K":
            lines[row] = ""
        elif token.startswith("\x1b[") and token.endswith("A"):
            row = max(0, row - int(token[2:-1] or 1))
        elif not token.startswith("\x1b"):
            line = lines[row].ljust(col)
            lines[row] = line[:col] + token + line[col + len(token):]
            col += len(token)
    return [line.rstrip() for line in lines if line.strip()]


def _on_a_terminal(code: str) -> str:
    """Return what ``code`` wrote to stderr, a 200-column pseudo-terminal."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 200, 0, 0))
    env = {**os.environ, "TERM": "xterm", "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=slave, stdout=subprocess.DEVNULL,
                            cwd=REPO_ROOT, env=env)
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    assert proc.wait(timeout=60) == 0
    return b"".join(chunks).decode()


def test_log_messages_end_the_live_line_first() -> None:
    """On a terminal, a log message during the run gets a line of its own (it used to land on
    the progress line's tail: ``…2 workersslogate: load finished``), and the live line is gone
    once the run ends."""
    output = _on_a_terminal(_CHILD)
    assert "2 workers" in output  # the live line was drawn
    assert _screen(output) == ["slogate: load finished; merging and judging",
                               "slogate: results written"]


def test_message_without_a_terminal_is_a_plain_line() -> None:
    """Off a terminal, a message is one plain line in the progress stream."""
    stream = io.StringIO()
    with ProgressPrinter(total_s=10, target_rps=200, stream=stream) as progress:
        assert ProgressPrinter.showing() is progress
        progress.message("slogate: hello")
    assert ProgressPrinter.showing() is None
    assert stream.getvalue() == "slogate: hello\n"


def _view(requests: int, by_version: dict[str, int]) -> SimpleNamespace:
    return SimpleNamespace(elapsed_s=11.0, requests=requests, errors=0, in_flight=1,
                           latency_p50_ms=None, latency_p99_ms=None, workers=2, lost=0,
                           by_version=by_version)


@pytest.mark.parametrize("versions, by_version, expected", [
    pytest.param(2, {"baseline": 1290, "candidate": 1280},
                 "(baseline 129/150, candidate 128/150 req/s)", id="per-version"),
    pytest.param(2, {}, "(257/300 req/s for 2 versions)", id="no-per-version-counts"),
    pytest.param(1, {}, "(257/150 req/s)", id="one-version"),
])
def test_rate_is_shown_against_each_versions_target(versions: int, by_version: dict[str, int],
                                                    expected: str) -> None:
    """10 measured seconds (11 minus 1 of warm-up), 150 req/s per version: each version's
    rate against 150, or both together against 300 when the counts are not per version."""
    printer = ProgressPrinter(total_s=11, target_rps=150, excluded_s=1.0, versions=versions,
                              stream=io.StringIO())
    assert expected in printer.line(_view(2570, by_version))


def test_recorder_and_live_view_count_requests_per_version() -> None:
    """Workers count live requests per endpoint label, and the live view sums them per version
    over workers (3 + 1 baseline, 2 + 4 candidate)."""
    labels = ["baseline: GET /a", "candidate: GET /a"]
    progresses = []
    for baseline, candidate in ((3, 2), (1, 4)):
        recorder = Recorder(labels=labels, window_s=1.0)
        codes = [0 * CODE_SPAN + 200] * baseline + [1 * CODE_SPAN + 200] * candidate
        for i, code in enumerate(codes):
            recorder.record(code, i, i, i + 1_000_000)
        recorder.flush()
        progress = recorder.progress(elapsed_s=1.0, in_flight=0)
        assert progress.by_label == {labels[0]: baseline, labels[1]: candidate}
        progresses.append(progress)
    assert _by_version(progresses) == {"baseline": 4, "candidate": 6}
    single = Recorder(labels=["GET /a"], window_s=1.0)
    single.record(200, 0, 0, 1)
    single.flush()
    assert _by_version([single.progress(elapsed_s=1.0, in_flight=0)]) == {}
    assert int(np.sum(list(progresses[0].by_label.values()))) == progresses[0].requests
