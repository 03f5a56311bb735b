"""Runs one client as a child process and measures it: wall time, CPU time, and (optionally) RSS.

CPU time is the delta of ``getrusage(RUSAGE_CHILDREN)`` (user + sys) around the child's run. That
counts only children that have been waited for, so it is exact as long as no other child of this
process is reaped meanwhile: nginx, the only long-lived child, is reaped after every client ran.
``taskset`` exec's the tool, so the measured child *is* the tool (same pid, same rusage).

Every run has a wall-clock timeout; a child past it is killed, reaped, and reported as timed out.
"""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

SAMPLE_EVERY_S = 0.5


@dataclass(frozen=True, slots=True, kw_only=True)
class ChildRun:
    """One finished child process: exit status, output, wall and CPU seconds, RSS samples."""

    command: tuple[str, ...]
    returncode: int | None  # None: killed at the timeout
    stdout: str
    stderr: str
    wall_s: float
    cpu_s: float
    user_s: float = 0.0  # cpu_s split: user time
    sys_s: float = 0.0  # and system (kernel) time
    rss_samples: tuple[tuple[float, int], ...] = field(default=())  # (seconds, VmRSS bytes)

    @property
    def timed_out(self) -> bool:
        """Return whether the child ran past its timeout and was killed."""
        return self.returncode is None


@dataclass(frozen=True, slots=True, kw_only=True)
class Pinning:
    """CPU pinning: the command prefixes for the target and for clients, or none."""

    target: tuple[str, ...]
    client: tuple[str, ...]
    note: str


def pinning() -> Pinning:
    """Return ``taskset`` prefixes: target on CPU 0, clients on CPU 1; unpinned where impossible."""
    cpus = os.sched_getaffinity(0)
    taskset = shutil.which("taskset")
    if taskset and {0, 1} <= cpus:
        return Pinning(target=(taskset, "-c", "0"), client=(taskset, "-c", "1"),
                       note="nginx on CPU 0, each client on CPU 1 (taskset)")
    why = "no taskset" if not taskset else f"CPUs {sorted(cpus)} lack 0 and 1"
    return Pinning(target=(), client=(), note=f"unpinned ({why})")


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _children_user_sys_s() -> tuple[float, float]:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime, usage.ru_stime


def run_child(command: list[str], *, timeout_s: float, cwd: Path | None = None) -> ChildRun:
    """Run ``command`` to completion (or kill it at ``timeout_s``); return what it did."""
    (user0, sys0), wall0 = _children_user_sys_s(), time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s,
                              cwd=cwd, check=False)
        returncode, stdout, stderr = done.returncode, done.stdout, done.stderr
    except subprocess.TimeoutExpired as exc:  # run() killed and reaped the child
        returncode, stdout, stderr = None, _text(exc.stdout), _text(exc.stderr)
    user1, sys1 = _children_user_sys_s()
    return ChildRun(command=tuple(command), returncode=returncode, stdout=stdout, stderr=stderr,
                    wall_s=time.perf_counter() - wall0, cpu_s=user1 - user0 + sys1 - sys0,
                    user_s=user1 - user0, sys_s=sys1 - sys0)


def run_sampled(command: list[str], *, timeout_s: float, cwd: Path | None = None,
                every_s: float = SAMPLE_EVERY_S) -> ChildRun:
    """Run ``command`` like :func:`run_child`, sampling its VmRSS every ``every_s`` seconds.

    Output goes to temporary files, not pipes, so a chatty child cannot block on a full pipe
    while this loop only polls.
    """
    cpu0, wall0 = _children_cpu_s(), time.perf_counter()
    samples: list[tuple[float, int]] = []
    with _Spool() as out, _Spool() as err:
        proc = subprocess.Popen(command, stdout=out.file, stderr=err.file, cwd=cwd, text=True)
        deadline = wall0 + timeout_s
        while proc.poll() is None and time.perf_counter() < deadline:
            rss = vm_rss_bytes(proc.pid)
            if rss is not None:
                samples.append((time.perf_counter() - wall0, rss))
            time.sleep(every_s)
        killed = proc.poll() is None
        if killed:
            proc.kill()
        proc.wait()
        returncode = None if killed else proc.returncode
        stdout, stderr = out.read(), err.read()
    return ChildRun(command=tuple(command), returncode=returncode, stdout=stdout, stderr=stderr,
                    wall_s=time.perf_counter() - wall0, cpu_s=_children_cpu_s() - cpu0,
                    rss_samples=tuple(samples))


def run_together(commands: Sequence[list[str]], *, timeout_s: float,
                 cwd: Path | None = None) -> list[ChildRun]:
    """Run ``commands`` at the same time; return one :class:`ChildRun` each, in order.

    Each child's CPU time is its own: it is reaped with ``os.wait4``, which returns the rusage of
    that child alone (``RUSAGE_CHILDREN`` would add them up). A child still running at
    ``timeout_s`` is killed and reported as timed out. Output goes to temporary files.
    """
    wall0 = time.perf_counter()
    deadline = wall0 + timeout_s
    with contextlib.ExitStack() as stack:
        spools = [(stack.enter_context(_Spool()), stack.enter_context(_Spool()))
                  for _ in commands]
        procs = [subprocess.Popen(cmd, stdout=out.file, stderr=err.file, cwd=cwd, text=True)
                 for cmd, (out, err) in zip(commands, spools, strict=True)]
        finished: dict[int, tuple[int | None, float, float, float]] = {}  # (code, wall, us, sy)
        while len(finished) < len(procs):
            for proc in procs:
                if proc.pid in finished:
                    continue
                killed = time.perf_counter() >= deadline
                if killed:
                    proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0 if killed else os.WNOHANG)
                if pid == 0:
                    continue
                proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
                finished[pid] = (None if killed else proc.returncode,
                                 time.perf_counter() - wall0, usage.ru_utime, usage.ru_stime)
            time.sleep(0.02)
        runs = []
        for cmd, proc, (out, err) in zip(commands, procs, spools, strict=True):
            returncode, wall_s, user_s, sys_s = finished[proc.pid]
            runs.append(ChildRun(command=tuple(cmd), returncode=returncode, stdout=out.read(),
                                 stderr=err.read(), wall_s=wall_s, cpu_s=user_s + sys_s,
                                 user_s=user_s, sys_s=sys_s))
    return runs


def vm_rss_bytes(pid: int) -> int | None:
    """Return the resident set size of process ``pid`` from ``/proc``, or None once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return None


class _Spool:
    """A temporary file to catch a child's output; read back as text once the child is done."""

    def __enter__(self) -> _Spool:
        self.file = tempfile.TemporaryFile(mode="w+")
        return self

    def read(self) -> str:
        self.file.seek(0)
        return self.file.read()

    def __exit__(self, *exc: object) -> None:
        self.file.close()


def _text(data: bytes | str | None) -> str:
    if data is None:
        return ""
    return data if isinstance(data, str) else data.decode(errors="replace")
