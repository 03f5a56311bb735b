"""``slogate demo``: the whole loop on the bundled sample app, with no cluster and no account.

Starts ``examples/hello/app.py`` (version 2.0) on a free loopback port, runs
``examples/hello/experiment.yaml`` against it on an embedded local Ray, prints the report and the
verdict, and stops the app. It says what it is doing as it goes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from coordinator.sample_app import REPO_ROOT, start_hello
from coordinator.spec import load_spec

EXAMPLE_DIR = REPO_ROOT / "examples" / "hello"
DEMO_APP_ARGS = ("--version", "2.0", "--latency", "4ms", "--jitter", "2ms",
                 "--distribution", "uniform", "--seed", "7")


def run_demo(*, out: Path | None, log: Callable[[str], None],
             execute: Callable[..., int]) -> int:
    """Run the demo and return the verdict's exit code."""
    spec_path = EXAMPLE_DIR / "experiment.yaml"
    spec = load_spec(spec_path)
    begun = time.monotonic()
    log(f"starting the sample app hello 2.0 ({' '.join(DEMO_APP_ARGS[2:])})")
    with start_hello(*DEMO_APP_ARGS) as url:
        log(f"sample app listening at {url}")
        spec = spec.with_target(str(url))
        code = execute(spec, spec_dir=EXAMPLE_DIR, out=out, address=None, fmt_name="text")
        log("stopping the sample app")
    log(f"demo finished in {time.monotonic() - begun:.1f} s")
    return code

