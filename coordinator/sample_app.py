"""Start the bundled sample app (examples/hello/app.py) as a real process on loopback.

Used by ``slogate demo`` and by the tests. The app prints ``READY http://HOST:PORT`` once it
listens; :func:`start_hello` waits for that line, yields the URL and stops the app on exit.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

from coordinator.errors import ExampleError

REPO_ROOT = Path(__file__).resolve().parent.parent
HELLO_APP = REPO_ROOT / "examples" / "hello" / "app.py"


class HelloURL(str):
    """The app's base URL ("http://127.0.0.1:PORT"), a plain str that also carries the process."""

    process: subprocess.Popen
    stderr_path: Path

    def __new__(cls, url: str, process: subprocess.Popen, stderr_path: Path) -> HelloURL:
        self = super().__new__(cls, url)
        self.process = process
        self.stderr_path = stderr_path
        return self

    def stderr(self) -> str:
        """What the app has written to stderr so far."""
        return self.stderr_path.read_text(errors="replace")


def _read_first_line(proc: subprocess.Popen, deadline: float) -> tuple[str | None, bool]:
    """Read stdout until a full line arrives: (line, False); (None, eof) on timeout or EOF."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    buf = b""
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        while b"\n" not in buf:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None, False
            if not sel.select(timeout=remaining):
                continue
            chunk = os.read(fd, 4096)
            if not chunk:  # EOF: the process closed stdout (usually: it is exiting)
                return None, True
            buf += chunk
    return buf.split(b"\n", 1)[0].decode(errors="replace").strip(), False


def _stop(proc: subprocess.Popen, grace_s: float = 3.0) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


@contextlib.contextmanager
def start_hello(*args: str, env: Mapping[str, str] | None = None,
                timeout_s: float = 10) -> Iterator[HelloURL]:
    """Run the hello app on 127.0.0.1 with a free port and yield its base URL "http://127.0.0.1:PORT".

    ``args`` are extra command-line options (they come last, so they win over the defaults
    given here). ``env`` is added to a copy of os.environ from which any HELLO_* variables
    have been removed. Raises ExampleError, including the app's stderr, if the READY line
    does not appear within ``timeout_s``. The process is stopped (SIGTERM, then SIGKILL) on
    exit. The yielded value is a str with ``.process`` and ``.stderr()`` attached.
    """
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("HELLO_")}
    full_env["PYTHONUNBUFFERED"] = "1"
    if env:
        full_env.update(env)
    cmd = [sys.executable, str(HELLO_APP), "--host", "127.0.0.1", "--port", "0", *args]

    if not HELLO_APP.is_file():
        raise ExampleError(f"{HELLO_APP}: sample app not found (run slogate from a source checkout)")
    with tempfile.TemporaryDirectory(prefix="hello-app-") as tmp:
        stderr_path = Path(tmp) / "stderr.txt"
        with open(stderr_path, "wb") as stderr_file:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=stderr_file, env=full_env,
                                    cwd=REPO_ROOT)
        try:
            line, eof = _read_first_line(proc, time.monotonic() + timeout_s)
            if line is None or not line.startswith("READY "):
                try:  # after EOF, give the exiting process a moment to be reaped
                    exited = proc.wait(timeout=2) if eof else proc.poll()
                except subprocess.TimeoutExpired:
                    exited = None
                if exited is None:
                    proc.kill()
                    proc.wait()
                why = (f"exited with status {exited}" if exited is not None
                       else f"did not print READY within {timeout_s}s")
                got = f"; stdout line: {line!r}" if line else ""
                stderr = stderr_path.read_text(errors="replace").strip()
                raise ExampleError(f"hello app {why}{got}\ncommand: {cmd}\nstderr:\n{stderr or '(empty)'}")
            yield HelloURL(line.split(" ", 1)[1].strip(), proc, stderr_path)
        finally:
            _stop(proc)
