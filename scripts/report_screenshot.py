"""Render a run's HTML report, screenshot it with headless Chromium, check that it renders cleanly.

Usage::

    .venv/bin/python scripts/report_screenshot.py [results.json] [--out out/report.png] [--height PX]

Without a results file it runs ``slogate demo`` into a temporary folder first (about 20 s). It
writes the report beside the PNG (``out/report.html``), takes a 1280 px wide screenshot (2400 px
high unless ``--height`` says otherwise; the report is made to fit that width) with Debian's
Chromium (installed with apt-get when missing and running as root) and then checks the page:

- Chromium loads the file and its DOM holds as many ``<svg>`` charts as the HTML and the verdict
  badge (so the page parsed, and Chromium did not show an error page instead);
- Chromium printed no console message for the page (``--enable-logging=stderr --v=0`` turns each
  console message into a ``:CONSOLE`` log line). The page has no script, so any message is a
  problem: the report's Content-Security-Policy (``default-src 'none'``) makes every attempt to
  fetch something, and every script, a logged violation;
- no element in the loaded DOM refers to anything outside the page (``src``/``href`` other than
  ``#...`` or ``data:``);
- the PNG has the requested size.

Exit codes: 0 the page rendered cleanly, 1 a check failed, 2 setup failed (no Chromium, no results).
"""

from __future__ import annotations

import argparse
import os
import shutil
import struct
import subprocess
import sys
import tempfile
from html.parser import HTMLParser
from pathlib import Path

from analysis.errors import ResultsError
from analysis.html import render_html
from analysis.results import Results, load_results

CHROMIUM = Path("/usr/bin/chromium")
WINDOW = (1280, 2400)
TIMEOUT_S = 180


class SetupError(Exception):
    """Chromium or the results file could not be had."""


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Return the command line: an optional results file and the PNG to write."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="?", type=Path,
                        help="results.json to render (default: run `slogate demo` first)")
    parser.add_argument("--out", type=Path, default=Path("out/report.png"),
                        help="PNG to write; the HTML goes beside it (default: out/report.png)")
    parser.add_argument("--height", type=int, default=WINDOW[1],
                        help=f"screenshot height in pixels (default: {WINDOW[1]})")
    return parser.parse_args(argv)


def demo_results(folder: Path) -> Path:
    """Run `slogate demo --out folder` and return the results.json it wrote."""
    slogate = Path(sys.executable).with_name("slogate")
    print(f"running {slogate} demo (about 20 s)", flush=True)
    done = subprocess.run([str(slogate), "demo", "--out", str(folder)], capture_output=True,
                          text=True, timeout=TIMEOUT_S, check=False)
    results = folder / "results.json"
    if not results.is_file():
        raise SetupError(f"slogate demo wrote no results (exit {done.returncode}):\n"
                         f"{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return results


def ensure_chromium() -> Path:
    """Return Chromium's path, installing Debian's package first when missing (root only)."""
    if CHROMIUM.exists():
        return CHROMIUM
    if os.geteuid() != 0:
        raise SetupError(f"{CHROMIUM} is missing; as root: apt-get update && "
                         "apt-get install -y chromium")
    print("installing chromium with apt-get", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update"], ["apt-get", "install", "-y", "chromium"]):
        done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
        if done.returncode != 0:
            raise SetupError(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    if not CHROMIUM.exists():
        raise SetupError(f"apt-get installed chromium but {CHROMIUM} is still missing")
    return CHROMIUM


def chromium_command(chromium: Path, profile: Path, *extra: str) -> list[str]:
    """Return a headless Chromium command line that stays off the network."""
    return [str(chromium), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", f"--user-data-dir={profile}", *extra]


def screenshot(chromium: Path, page: Path, png: Path, profile: Path,
               window: tuple[int, int] = WINDOW) -> None:
    """Write a ``window``-sized screenshot of the page to png; raise when Chromium fails."""
    png.unlink(missing_ok=True)
    command = chromium_command(chromium, profile, f"--window-size={window[0]},{window[1]}",
                               f"--screenshot={png.resolve()}", page.resolve().as_uri())
    done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
    if done.returncode != 0 or not png.is_file():
        raise SetupError(f"chromium screenshot failed (exit {done.returncode}):\n"
                         f"{done.stderr[-2000:]}")


class _DomScan(HTMLParser):
    """Counts <svg> elements and collects references out of the page in a dumped DOM."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.svgs = 0
        self.outside: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.svgs += tag == "svg"
        for name, value in attrs:
            if name in ("src", "href", "xlink:href", "action", "data") and value \
                    and not value.startswith(("#", "data:")):
                self.outside.append(f"<{tag} {name}={value!r}>")

    handle_startendtag = handle_starttag


def render_problems(chromium: Path, page: Path, results: Results, profile: Path) -> list[str]:
    """Return what is wrong with the page as Chromium loads it (empty: it renders cleanly)."""
    command = chromium_command(chromium, profile, "--enable-logging=stderr", "--v=0",
                               "--dump-dom", page.resolve().as_uri())
    done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
    problems = [f"chromium exited {done.returncode}"] if done.returncode else []
    problems += [f"console: {line.strip()}" for line in done.stderr.splitlines()
                 if ":CONSOLE" in line]
    scan = _DomScan()
    scan.feed(done.stdout)
    expected = page.read_text(encoding="utf-8").count("<svg")
    if scan.svgs != expected:
        problems.append(f"the loaded DOM has {scan.svgs} <svg> charts, the HTML {expected}")
    if f">{results.verdict}</span>" not in done.stdout:
        problems.append(f"the loaded DOM lacks the {results.verdict} verdict badge")
    problems += [f"reference out of the page: {ref}" for ref in scan.outside]
    return problems


def png_size(png: Path) -> tuple[int, int]:
    """Return (width, height) from a PNG's IHDR chunk."""
    head = png.read_bytes()[:24]
    if head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        raise SetupError(f"{png} is not a PNG")
    return struct.unpack(">II", head[16:24])


def run(args: argparse.Namespace, work: Path) -> int:
    """Render, screenshot and check; return the exit code."""
    results = load_results(args.results or demo_results(work / "demo"))
    page = args.out.with_suffix(".html")
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(render_html(results), encoding="utf-8")
    chromium = ensure_chromium()
    window = (WINDOW[0], args.height)
    screenshot(chromium, page, args.out, work / "profile", window)
    problems = render_problems(chromium, page, results, work / "profile")
    if png_size(args.out) != window:
        problems.append(f"{args.out} is {png_size(args.out)}, expected {window}")
    print(f"wrote {page} and {args.out} ({results.name}: {results.verdict})")
    for problem in problems:
        print(f"problem: {problem}", file=sys.stderr)
    print("the page renders cleanly" if not problems else f"{len(problems)} problem(s)")
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    """Run the script; return its exit code (see the module docstring)."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    work = Path(tempfile.mkdtemp(prefix="slogate-report-"))
    try:
        return run(args, work)
    except (SetupError, ResultsError, subprocess.TimeoutExpired) as exc:
        print(f"report-screenshot: {exc}", file=sys.stderr)
        return 2
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
