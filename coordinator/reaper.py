"""Kills what the embedded Ray left behind when the slogate process dies without shutting it down.

Ray ties its GCS server and raylet to the driver (the kernel kills them when it dies), but the
raylet's agents outlive a ``kill -9`` of the driver by about a minute, listening all the while.
:class:`RayPool <coordinator.ray_pool.RayPool>` starts this script (standard library only, in a
session of its own so a terminal's Ctrl-C does not reach it) before it starts Ray, with the
driver's pid and a pipe on stdin. Every second it notes the driver's descendants (pid and start
time). When the pipe closes without a ``done`` line first, the driver is gone: it SIGKILLs those
of them still running (the same pid *and* start time, so a reused pid is never hit) and exits.
After ``done`` it exits without touching anything.

    python coordinator/reaper.py DRIVER_PID
"""

from __future__ import annotations

import os
import select
import signal
import sys

SCAN_EVERY_S = 1.0


def _stat(pid: int) -> tuple[int, str] | None:
    """Return (parent pid, start time in clock ticks) of ``pid``, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            text = file.read().decode(errors="replace")
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    return int(fields[1]), fields[19]


def descendants(root: int) -> dict[int, str]:
    """Return ``{pid: start time}`` of every process below ``root`` now."""
    children: dict[int, list[int]] = {}
    started: dict[int, str] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            stat = _stat(int(name))
            if stat is not None:
                children.setdefault(stat[0], []).append(int(name))
                started[int(name)] = stat[1]
    found: dict[int, str] = {}
    todo = list(children.get(root, ()))
    while todo:
        pid = todo.pop()
        if pid not in found and pid in started:
            found[pid] = started[pid]
            todo.extend(children.get(pid, ()))
    return found


def reap(seen: dict[int, str]) -> int:
    """SIGKILL each process of ``seen`` still running with its start time; return how many."""
    killed = 0
    for pid, started in seen.items():
        stat = _stat(pid)
        if pid != os.getpid() and stat is not None and stat[1] == started:
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except OSError:
                pass
    return killed


def watch(driver_pid: int, stdin_fd: int = 0) -> int:
    """Note the driver's descendants until stdin closes; reap them unless ``done`` came first."""
    seen: dict[int, str] = {}
    said = b""
    while True:
        seen.update(descendants(driver_pid))
        ready, _, _ = select.select([stdin_fd], [], [], SCAN_EVERY_S)
        if not ready:
            continue
        chunk = os.read(stdin_fd, 64)
        if chunk:
            said += chunk
            continue
        if b"done" in said:
            return 0
        reap(seen)
        return 0


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.exit(watch(int(sys.argv[1])))
