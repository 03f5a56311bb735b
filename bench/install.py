"""Makes the benchmark's tools present: Debian's nginx, wrk and hey, Locust in this venv, and
the floor client (``bench/floor.c``) built with the system C compiler.

Debian packages: one ``apt-get update``, then one ``apt-get install -y`` of the missing ones (this
needs root, as on the project's machines). Locust: ``pip install 'locust>=2.20'`` into the running
interpreter when ``import locust`` fails. Each step has a timeout; a failure is returned as a
message per tool, so the caller can go on without that peer.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

Log = Callable[[str], None]

# binary -> Debian package; nginx lives in /usr/sbin, which a non-root PATH may lack.
DEBIAN_TOOLS = {"nginx": "nginx", "wrk": "wrk", "hey": "hey",
                "prometheus": "prometheus"}  # make test: the custom-metrics tests
_SBIN = ("/usr/sbin", "/sbin")
LOCUST_REQUIREMENT = "locust>=2.20"
APT_TIMEOUT_S = 900.0
PIP_TIMEOUT_S = 600.0


def find_tool(name: str) -> str | None:
    """Return the path of executable ``name`` on PATH or in an sbin folder, or None."""
    return shutil.which(name) or shutil.which(name, path=os.pathsep.join(_SBIN))


def ensure_debian_tools(names: list[str], log: Log) -> dict[str, str]:
    """Install the missing ones of ``names``; return {name: problem} for those still missing."""
    missing = [n for n in names if find_tool(n) is None]
    if not missing:
        return {}
    packages = [DEBIAN_TOOLS[n] for n in missing]
    problem = _apt_install(packages, log)
    still = [n for n in missing if find_tool(n) is None]
    return {n: problem or f"{n} not found after apt-get install" for n in still}


def _apt_install(packages: list[str], log: Log) -> str | None:
    """Run apt-get update once, then install ``packages``; return a problem or None."""
    if shutil.which("apt-get") is None:
        return "no apt-get on this machine"
    if os.geteuid() != 0:
        return "apt-get install needs root"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update"], ["apt-get", "install", "-y", *packages]):
        log(f"installing: {' '.join(cmd)}")
        try:
            done = subprocess.run(cmd, env=env, capture_output=True, text=True,
                                  timeout=APT_TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired:
            return f"{' '.join(cmd[:2])} timed out after {APT_TIMEOUT_S:g} s"
        if done.returncode != 0:
            return f"{' '.join(cmd[:2])} failed: {_tail(done.stderr)}"
    return None


FLOOR_SOURCE = Path(__file__).with_name("floor.c")
CC_TIMEOUT_S = 120.0


def build_floor(folder: Path, log: Log) -> tuple[Path | None, str | None]:
    """Build the floor client (``bench/floor.c``, a bare C epoll loop) into ``folder`` with the
    system C compiler; return its path, or None and the problem."""
    compiler = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if compiler is None:
        return None, "no C compiler (cc, gcc or clang) on PATH"
    binary = folder / "floor"
    cmd = [compiler, "-O2", "-o", str(binary), str(FLOOR_SOURCE)]
    log(f"building: {' '.join(cmd)}")
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=CC_TIMEOUT_S,
                              check=False)
    except subprocess.TimeoutExpired:
        return None, f"{compiler} timed out after {CC_TIMEOUT_S:g} s"
    if done.returncode != 0:
        return None, f"{compiler} failed: {_tail(done.stderr)}"
    return binary, None


def ensure_locust(log: Log) -> str | None:
    """Install Locust into this interpreter when it is missing; return a problem or None."""
    if importlib.util.find_spec("locust") is not None:
        return None
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", LOCUST_REQUIREMENT]
    log(f"installing: {' '.join(cmd[1:])}")
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT_S,
                              check=False)
    except subprocess.TimeoutExpired:
        return f"pip install timed out after {PIP_TIMEOUT_S:g} s"
    if done.returncode != 0:
        return f"pip install failed: {_tail(done.stderr)}"
    importlib.invalidate_caches()
    return None if importlib.util.find_spec("locust") is not None else "locust not importable"


def _tail(text: str, lines: int = 3) -> str:
    return " | ".join(text.strip().splitlines()[-lines:])
