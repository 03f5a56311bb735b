"""The ``slogate`` command line; the only place that turns exceptions into exit codes.

Exit codes: 0 every objective passed, 1 an objective failed, 2 usage or spec error (any
an error in :data:`~coordinator.errors.EXPECTED`), 3 inconclusive or invalid run, 4 a report could not be
rendered (the results were written first; the verdict is in them).
Progress goes to stderr, reports to stdout, so ``slogate run spec.yaml > report.txt`` works; on a
terminal every message goes through the live progress line, so it never lands on its tail.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from coordinator.errors import EXPECTED, exit_code
from coordinator.out_dir import writable_out

F = TypeVar("F", bound=Callable[..., Any])
FORMATS = ["text", "markdown", "json", "junit", "html"]
EXIT_USAGE = 2
EXIT_REPORT = 4  # a report could not be rendered: not a verdict
EXIT_INTERRUPTED = 130  # as a shell reports a command ended by SIGINT
EXIT_INTERNAL = 5  # a bug: never 1, which would read as a FAIL verdict
DEBUG_ENV = "SLOGATE_DEBUG"  # set (to anything but 0): an internal error shows its traceback


def _log(message: str) -> None:
    from coordinator.progress import ProgressPrinter

    line = f"slogate: {message}"
    showing = ProgressPrinter.showing()
    if showing is not None:  # ends the live line first, so the message gets its own line
        showing.message(line)
    else:
        click.echo(line, err=True)


def _errors_to_exit_codes(func: F) -> F:
    """Turn an expected error (any package's, :data:`~coordinator.errors.EXPECTED`) into a one-line
    message and its exit code (2, or 130 for an interrupted start), and a Ctrl-C outside a run into
    130; no traceback, no click "Aborted!".

    What no check foresaw still ends in one line and never in exit 1, which a pipeline reads as
    a FAIL verdict: a file the system refuses (a full disk, a path under /proc) exits 2 naming
    it, anything else is a bug and exits 5 (its traceback with SLOGATE_DEBUG=1)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except EXPECTED as exc:
            click.echo(f"slogate: error: {exc}", err=True)
            sys.exit(exit_code(exc))
        except KeyboardInterrupt:
            click.echo("slogate: interrupted", err=True)
            sys.exit(EXIT_INTERRUPTED)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except OSError as exc:
            if os.environ.get(DEBUG_ENV, "0") != "0":
                raise
            where = f"{exc.filename}: " if exc.filename is not None else ""
            click.echo(f"slogate: error: {where}{exc.strerror or exc}", err=True)
            sys.exit(EXIT_USAGE)
        except Exception as exc:  # the last line of defence of the exit code
            if os.environ.get(DEBUG_ENV, "0") != "0":
                raise
            first = (str(exc).strip().splitlines() or [""])[0]
            click.echo(f"slogate: internal error (a bug; {DEBUG_ENV}=1 shows the traceback): "
                       f"{type(exc).__name__}: {first}", err=True)
            sys.exit(EXIT_INTERNAL)

    return wrapper  # type: ignore[return-value]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="slogate")
def main() -> None:
    """Validate a candidate version's SLOs under load, with evidence."""


def _default_out(name: str) -> Path:
    """Return ``results/NAME-STAMP``, the name made one safe segment (``../../x`` stays inside)."""
    from coordinator.archive import safe_segment

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return Path("results") / f"{safe_segment(name)}-{stamp}"


def _save_results(out_dir: Path, text: str) -> Path:
    """Write results.json in ``out_dir``; when that fails after all (a disk that filled up
    during the run), write it in a new directory under the system's temporary one and say so:
    the run's evidence is never lost."""
    import tempfile

    from analysis.results import write_atomic

    try:
        return write_atomic(out_dir / "results.json", text)
    except OSError as exc:
        spare = Path(tempfile.mkdtemp(prefix="slogate-results-"))
        _log(f"warning: cannot write {out_dir / 'results.json'} ({exc.strerror or exc}); "
             f"writing the results to {spare} instead")
        return write_atomic(spare / "results.json", text)


def _rendered(render: Callable[[], str], what: str, saved: str) -> str | None:
    """Return ``render()``, or None after one line saying the report could not be rendered
    (the caller then exits with EXIT_REPORT: a rendering bug must not read as a verdict)."""
    try:
        return render()
    except Exception as exc:  # noqa: BLE001 - any failure of a pure renderer is a bug report
        detail = " ".join(str(exc).split())[:300]
        _log(f"error: the {what} could not be rendered ({type(exc).__name__}: {detail}); "
             f"{saved}; exit code {EXIT_REPORT}")
        return None


def _emit_report(results: Any, fmt_name: str, saved: str) -> bool:
    """Print the report on stdout (a terminal's width, unwrapped when piped); return False when
    it could not be rendered, after saying so in one line."""
    import shutil

    from analysis.report import render

    tty = sys.stdout.isatty()
    width = shutil.get_terminal_size().columns if tty else None
    text = _rendered(lambda: render(results, fmt_name, color=tty, width=width),
                     f"{fmt_name} report", saved)
    if text is not None:
        click.echo(text, nl=False)
    return text is not None


def execute_spec(spec: Any, *, spec_dir: Path, out: Path | None, address: str | None,
                 fmt_name: str, one_version_as_both: bool = False,
                 show_pull_body: bool = False, archive: Any = None, spec_file: Path | None = None,
                 dashboard: bool = False, report_url: str | None = None,
                 notifier: Any = None) -> int:
    """Run a validated spec, write results.json, print the report; return the exit code
    (EXIT_REPORT when a report could not be rendered; the results are written first).

    With ``archive`` (a :class:`coordinator.archive.Archive`) the results are stored there too.

    A Kubernetes target is dark-launched first and cleaned up as its ``cleanup`` says.

    The first Ctrl-C (or SIGTERM) stops the workers and keeps partial results, marked aborted;
    a second one exits at once. Before the load (Ray or the workers starting) the first one
    shuts Ray down and exits 130. ``dashboard`` starts the embedded Ray's dashboard.
    """
    from coordinator.dark_launch import LaunchOutcome
    from coordinator.errors import Interrupted
    from coordinator.ray_pool import RayPool

    load = spec.load
    with writable_out(out or _default_out(spec.name)) as out_dir:
        local_cpus = int(max(load.workers * load.cpus_per_worker, 1) + 0.999)
        total_s = (load.duration or 0) + (load.warmup or 0) + (load.ramp.duration if load.ramp else 0)
        excluded_s = (load.warmup or 0) + (load.ramp.duration if load.ramp else 0)
        launch = LaunchOutcome()
        pool = RayPool(address, log=_log, num_cpus=local_cpus, cpus_per_worker=load.cpus_per_worker,
                       placement=load.placement, on_worker_loss=load.on_worker_loss,
                       run_name=spec.name, dashboard=dashboard, workers=load.workers, linger=True)
        try:
            # The embedded Ray starts (seconds) while the target is launched and checked; its
            # shutdown (about a second) runs while the results and reports are written.
            # A Ctrl-C meanwhile asks the pool to stop rather than raising KeyboardInterrupt in the
            # middle of an import while Ray's thread starts it (a run hung so once).
            with _stop_on_signals(pool):
                pool.start()
                from analysis.stats import warm_up

                warm_up()
            if pool.stopping:
                raise Interrupted("interrupted while Ray was starting; Ray is shut down")
            results, path, page = _run_on(pool, spec, spec_dir, out_dir, launch,
                                          one_version_as_both=one_version_as_both,
                                          spec_file=spec_file, total_s=total_s,
                                          excluded_s=excluded_s)
            shown = _emit_report(results, fmt_name, f"the results are in {path}")
        finally:
            pool.wait_closed()
        _log(f"results written to {path}" + (" (and report.html beside it)" if page else ""))
        return _after_run(results, spec, rendered=page is not None and shown, archive=archive,
                          notifier=notifier, show_pull_body=show_pull_body, report_url=report_url)


def _after_run(results: Any, spec: Any, *, rendered: bool, archive: Any, notifier: Any,
               show_pull_body: bool, report_url: str | None) -> int:
    """Archive the run, announce its verdict, promote it (a PASS, or a revert) unless a report
    could not be rendered; return the exit code."""
    from analysis.verdict import Verdict

    if archive is not None:
        _log(f"archived as {archive.store(results)}")
    if notifier is not None:
        from coordinator.notify import verdict_notice

        notifier.send(verdict_notice(results))
    if not rendered:
        if spec.promotion is not None and spec.promotion.auto:
            _log("not promoted: a report could not be rendered")
        return EXIT_REPORT
    if spec.promotion is not None and spec.promotion.auto:
        promote_after_run(results, spec.promotion, show_pull_body=show_pull_body,
                          archive=archive, report_url=report_url, notifier=notifier)
    return Verdict(results.verdict).exit_code


def _run_on(pool: Any, spec: Any, spec_dir: Path, out_dir: Path, launch: Any, *,
            one_version_as_both: bool, spec_file: Path | None, total_s: float,
            excluded_s: float) -> tuple[Any, Path, Any]:
    """Dark-launch the target, run the load on ``pool``, write results.json and report.html;
    return the results, the results path and the HTML page (None when it failed to render)."""
    from analysis.results import write_atomic
    from coordinator.dark_launch import dark_launch
    from coordinator.progress import ProgressPrinter
    from coordinator.run import run_experiment

    load = spec.load
    with dark_launch(spec, spec_dir, _log, launch) as spec:
        with ProgressPrinter(total_s=total_s or None, target_rps=load.rate,
                             excluded_s=excluded_s, versions=len(spec.versions())) as progress:
            pool.on_progress = progress.update
            # Signals are ours before Ray starts, so a Ctrl-C then is not lost in ray.init; and
            # again once it has started, since ray.init puts in its own SIGTERM handler (abort).
            with _stop_on_signals(pool) as take_signals, pool:
                take_signals()
                results = run_experiment(spec, pool, base_dir=spec_dir, log=_log,
                                         one_version_as_both=one_version_as_both)
        launch.verdict = results.verdict
        results = results.model_copy(update={"slogate_version": _version(), "spec_file": (
            str(spec_file) if spec_file is not None else None)})
        # Written before any cleanup, so a cluster that refuses the delete loses nothing.
        path = _save_results(out_dir, results.to_json())
        from analysis.html import render_html

        page = _rendered(lambda: render_html(results), "HTML report",
                         f"the results are in {path}")
        if page is not None:
            write_atomic(path.parent / "report.html", page)
    return results, path, page


def _find_max_rate(spec: Any, *, spec_dir: Path, out: Path | None, address: str | None,
                   fmt_name: str) -> int:
    """Run the max-rate search on one Ray pool (coordinator.max_rate), write the results of the
    run at the rate found (the evidence) and print its report and the search; return 0 when a
    rate passed, else 3."""
    from coordinator.max_rate import at_rate, find_max_rate, summary_lines
    from coordinator.ray_pool import RayPool
    from coordinator.run import run_experiment

    at_rate(spec, spec.load.rate or 0.0)  # a spec the search cannot start from fails first
    with writable_out(out or _default_out(spec.name)) as out_dir:
        load = spec.load
        pool = RayPool(address, log=_log, num_cpus=int(max(load.workers * load.cpus_per_worker, 1)
                                                       + 0.999),
                       cpus_per_worker=load.cpus_per_worker, placement=load.placement,
                       on_worker_loss=load.on_worker_loss, run_name=spec.name, workers=load.workers)
        try:
            with _stop_on_signals(pool) as take_signals, pool:
                take_signals()
                found = find_max_rate(spec, lambda at: run_experiment(at, pool, base_dir=spec_dir,
                                                                      log=_log), log=_log)
        finally:
            pool.wait_closed()
        for line in summary_lines(found):
            _log(line)
        if found.evidence is None:
            return 3  # no rate passed: inconclusive, as a run without a verdict to act on
        path = _save_results(out_dir, found.evidence.model_copy(
            update={"slogate_version": _version()}).to_json())
        _emit_report(found.evidence, fmt_name, f"the results are in {path}")
        _log(f"results of the run at {found.rate_rps:g} {found.unit} written to {path}")
        return 0


def _version() -> str | None:
    """Return the installed slogate's version, or None when it is not installed."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("slogate")
    except PackageNotFoundError:
        return None


def _run_archive(where: str, promotion: Any, github_url: str | None) -> Any:
    """Return the archive ``where`` names; a ``github:`` one uses the token and baseUrl of the
    spec's GitHub promotion block (``github_url`` first), without one GITHUB_TOKEN."""
    from coordinator.archive import open_archive
    from coordinator.promote_wiring import read_token

    if promotion is None or promotion.provider != "github":
        return open_archive(where, github_url=github_url)
    return open_archive(where, github_url=github_url or promotion.base_url,
                        github_token=lambda: read_token(promotion))


def promote_after_run(results: Any, promotion: Any, *, show_pull_body: bool = False,
                      archive: Any = None, report_url: str | None = None,
                      notifier: Any = None) -> None:
    """Promote a PASS; on a FAIL with ``onFail: revert-pr``, revert the version if it is the
    stable one; anything else is only logged. The run's exit code is not changed by it. The
    pull request gets its check and comment, the drift judged against ``archive``'s runs."""
    reverting = results.verdict == "FAIL" and promotion.on_fail == "revert-pr"
    if results.verdict != "PASS" and not reverting:
        _log(f"not promoted: the verdict is {results.verdict}")
        return
    from coordinator.pr_evidence import promote_with_evidence

    where = f"({promotion.provider}: {promotion.repository})"
    _log(f"the verdict is FAIL: reverting {promotion.app} {promotion.version} if it is the "
         f"stable version {where}" if reverting else
         f"promoting {promotion.app} {promotion.version} {where}")
    runs = [(r.results, r.source) for r in archive.scan().runs] if archive is not None else None
    outcome = promote_with_evidence(results, promotion, dry_run=False, log=_log,
                                    show=lambda text: click.echo(text, nl=False),
                                    show_body=show_pull_body, report_url=report_url, runs=runs)
    _notify_pull(notifier, results, promotion, outcome)


def _notifier(spec: Any, base: Path) -> Any:
    """Return the notifier of the spec's ``notify`` block (its secrets read now: a missing one
    fails before anything runs), or None when there is none."""
    if not spec.notify:
        return None
    from coordinator.notify import Notifier

    return Notifier(spec.notify, log=_log, base=base)


def _notify_pull(notifier: Any, results: Any, promotion: Any, outcome: Any) -> None:
    """Tell the notifier of the pull request ``outcome`` opened or updated, if any."""
    if notifier is None:
        return
    from coordinator.notify import pull_notices
    from promote.flow import revert_branch_name

    for notice in pull_notices(results, outcome, app=promotion.app, version=promotion.version,
                               revert_branch=revert_branch_name(promotion)):
        notifier.send(notice)


@contextlib.contextmanager
def _stop_on_signals(pool: Any) -> Iterator[Callable[[], None]]:
    """First SIGINT/SIGTERM: ask the pool to stop and keep partial results; second: exit now.

    Yields a function that puts the handlers in again (after a library replaced them)."""
    asked = {"count": 0}

    def handler(signum: int, _frame: object) -> None:
        asked["count"] += 1
        if asked["count"] > 1:
            _log("stopped at once (second interrupt)")
            os._exit(EXIT_INTERRUPTED)  # Ray's leftovers: see coordinator/reaper.py
        _log(f"{signal.Signals(signum).name}: stopping (again to exit at once)")
        pool.abort()

    def take() -> None:
        for sig in previous:
            signal.signal(sig, handler)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield take
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _report_url_option(func: F) -> F:
    """The ``--report-url`` option: where the check and the comment on the pull request link."""
    return click.option(
        "--report-url", default=None, metavar="URL", envvar="SLOGATE_REPORT_URL",
        show_envvar=True, help="Link of the report in the pull request's check and comment "
        "(e.g. the CI run that keeps report.html; default: the pull request, whose body is the "
        "report).")(func)


def _duration_option(name: str, default: str, help_text: str) -> Callable[[F], F]:
    """A duration option (``30m``, ``10s``, a bare number of seconds), given to the command in
    seconds."""
    def parse(_ctx: click.Context, _param: click.Parameter, value: str) -> float:
        from coordinator.units import parse_duration_s

        try:
            seconds = parse_duration_s(value)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None
        if seconds <= 0:
            raise click.BadParameter(f"{value!r} must be above 0")
        return seconds

    return click.option(name, default=default, show_default=True, callback=parse,
                        metavar="DURATION", help=help_text)


def _verify_options(func: F) -> F:
    """The options saying where the promoted version runs and how long to wait for it."""
    options = [
        click.option("--deployment", default=None, metavar="[NAMESPACE/]NAME",
                     help="The stable Deployment the GitOps controller syncs (namespace "
                          "default: default)."),
        click.option("--target", "target_url", default=None, metavar="URL",
                     help="The stable Service's URL, which the verification loads."),
        click.option("--kubeconfig", default=None, type=click.Path(path_type=Path),
                     help="Kubeconfig of the cluster (default: $KUBECONFIG, in-cluster, "
                          "~/.kube/config)."),
        click.option("--context", default=None, help="Kubeconfig context (default: current)."),
        _duration_option("--merge-timeout", "1h", "How long to wait for the pull request's "
                         "merge."),
        _duration_option("--sync-timeout", "10m", "How long to wait, once merged, until the "
                         "stable Deployment runs the version and its rollout is complete."),
        _duration_option("--poll", "10s", "How often the pull request and the Deployment are "
                         "read."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@main.command()
@click.argument("spec_path", metavar="SPEC", type=click.Path(path_type=Path))
@click.option("--out", "out", type=click.Path(path_type=Path), default=None,
              help="Directory for results.json (default: results/NAME-TIMESTAMP).")
@click.option("--address", default=None, envvar="RAY_ADDRESS", show_envvar=True,
              help="Ray cluster to join (auto, HOST:PORT, ray://HOST:10001); "
                   "default: start an embedded local Ray.")
@click.option("--format", "fmt_name", type=click.Choice(FORMATS), default="text",
              show_default=True, help="Report format on stdout.")
@click.option("--aa", "--one-version-as-both", "one_version_as_both", is_flag=True,
              help="A/A run: load the baseline (or the target) as both versions, "
              "interleaved, to measure the noise floor of a comparison.")
@click.option("--archive", "archive_to", default=None, metavar="DEST",
              help="Also store the results in this run archive: a directory, "
                   "git:REPO[#BRANCH] (a commit on BRANCH, default slogate/history; the working "
                   "tree is not touched) or github:OWNER/NAME[#BRANCH] (a commit on a GitHub "
                   "branch, with the spec's GitHub promotion token, else GITHUB_TOKEN). Read it "
                   "back with slogate history.")
@click.option("--github-url", default=None, metavar="URL", envvar="SLOGATE_GITHUB_URL",
              show_envvar=True, help="GitHub Enterprise API URL of a github: archive (default: "
              "the spec's promotion.baseUrl, else api.github.com).")
@click.option("--dashboard", is_flag=True, help="Start the embedded Ray's dashboard (on "
              "127.0.0.1; about 2 s more start-up). A joined cluster has its own.")
@_report_url_option
@click.option("--verify", "then_verify", is_flag=True,
              help="After a PASS that slogate run promoted (promotion.auto), wait for the merge "
                   "and the sync and verify the stable version, as slogate verify does (needs "
                   "--deployment and --target); the exit code is then the verification's.")
@_verify_options
@click.option("--find-max-rate", "find_rate", is_flag=True, help="Search for the highest "
              "load.rate (or load.concurrency: users) at which every objective PASSes (from "
              "the spec's: double, halve, then bisect to within 5 %); results.json holds the "
              "run at the load found.")
@_errors_to_exit_codes
def run(spec_path: Path, out: Path | None, address: str | None, fmt_name: str,
        one_version_as_both: bool, archive_to: str | None, github_url: str | None,
        dashboard: bool, report_url: str | None, then_verify: bool, find_rate: bool,
        **where: Any) -> None:
    """Run the experiment in SPEC, judge its objectives and write results.json."""
    from coordinator.errors import SpecError
    from coordinator.spec import load_spec

    spec = load_spec(spec_path, one_version_as_both=one_version_as_both)
    if spec.grpc is not None and not spec.grpc.reflection:  # a bad proto fails before Ray starts
        from coordinator.errors import SpecError
        from coordinator.run import grpc_schema_of

        try:
            grpc_schema_of(spec, spec_path.parent)
        except SpecError as exc:
            raise SpecError(f"{spec_path}: {exc}") from None
    if find_rate:
        sys.exit(_find_max_rate(spec, spec_dir=spec_path.parent, out=out, address=address,
                                fmt_name=fmt_name))
    if spec.promotion is not None:  # a promotion name outside the grammar fails before the load
        from coordinator.pr_evidence import check_report_url
        from promote.flow import check_names

        check_names(spec.promotion)
        check_report_url(report_url)
    if then_verify:
        if spec.promotion is None or not spec.promotion.auto or one_version_as_both:
            raise SpecError("--verify follows the promotion slogate run makes by itself: the "
                            "spec needs a promotion block with auto: true (and no --aa)")
        _check_where(where)
    # a bad DEST (or a missing token) fails before the load
    archive = _run_archive(archive_to, spec.promotion, github_url) if archive_to else None
    if spec.metrics is not None:  # an unreachable Prometheus or a bad query: exit 2, no load
        from coordinator.custom_metrics import check_metrics

        checked = check_metrics(spec, base_dir=spec_path.parent)
        _log(f"custom metrics: {checked} quer{'y' if checked == 1 else 'ies'} answered")
    notifier = _notifier(spec, spec_path.parent)  # a missing webhook secret fails before the load
    if one_version_as_both:
        _log(f"A/A run: {spec.target_url} as both baseline and candidate")
    out_dir = out or _default_out(spec.name)
    code = execute_spec(spec, spec_dir=spec_path.parent, out=out_dir, address=address,
                        fmt_name=fmt_name, one_version_as_both=one_version_as_both,
                        archive=archive, spec_file=spec_path, dashboard=dashboard,
                        report_url=report_url, notifier=notifier)
    if then_verify and code == 0:
        from analysis.results import load_results

        code = _verify_after(load_results(out_dir / "results.json"), spec, where,
                             spec_dir=spec_path.parent, out=None, address=address,
                             fmt_name=fmt_name, report_url=report_url)
    sys.exit(code)


@main.command()
@click.argument("results_path", metavar="RESULTS", type=click.Path(path_type=Path))
@click.option("--format", "fmt_name", type=click.Choice(FORMATS), default="text",
              show_default=True)
@click.option("--objectives", "objectives_path", type=click.Path(path_type=Path), default=None,
              help="Re-judge the saved run against the objectives in this YAML file (a list, or "
                   "a mapping with objectives and optional analysis) without rerunning load.")
@click.option("--out", "out", type=click.Path(path_type=Path), default=None,
              help="Write the (re-judged) results document here as well.")
@_errors_to_exit_codes
def report(results_path: Path, fmt_name: str, objectives_path: Path | None,
           out: Path | None) -> None:
    """Re-render (or re-judge) a saved results.json; the exit code follows its verdict."""
    from analysis.results import load_results, write_atomic
    from analysis.verdict import Verdict

    results = load_results(results_path)
    if objectives_path is not None:
        from analysis.rejudge import rejudge
        from coordinator.spec import load_objectives

        wanted = load_objectives(objectives_path,
                                 {c.name: c.unit for c in results.custom_metrics})
        results = rejudge(results, [o.to_core() for o in wanted.objectives],
                          wanted.analysis.to_core())
        _log(f"re-judged {results_path} against {objectives_path}: {results.verdict}")
    if out is not None:
        write_atomic(out, results.to_json())
    saved = f"the results are in {out or results_path}"
    if not _emit_report(results, fmt_name, saved):
        sys.exit(EXIT_REPORT)
    sys.exit(Verdict(results.verdict).exit_code)


@main.command()
@click.argument("results_path", metavar="RESULTS", type=click.Path(path_type=Path))
@click.option("--spec", "spec_path", type=click.Path(path_type=Path), default=None,
              help="Take the promotion block from this spec instead of the one saved in RESULTS.")
@click.option("--dry-run", is_flag=True, help="Print the diff and the pull request; change nothing.")
@click.option("--service", "service_url", default=None, metavar="URL",
              help="Ask a promotion service (slogate promote-serve) to promote instead, with the "
                   "shared secret from SLOGATE_PROMOTE_SECRET; no GitHub token needed here. It "
                   "uses the promotion block saved in RESULTS (not --spec, not --dry-run).")
@click.option("--history", "history_source", default=None, metavar="SOURCE",
              help="Judge the run's drift against this run archive (as slogate history SOURCE "
                   "does) in the pull request's comment.")
@_report_url_option
@click.option("--verify", "then_verify", is_flag=True,
              help="Then wait for the merge and the sync and verify the stable version, as "
                   "slogate verify does (needs --deployment and --target).")
@_verify_options
@_errors_to_exit_codes
def promote(results_path: Path, spec_path: Path | None, dry_run: bool,
            service_url: str | None, history_source: str | None,
            report_url: str | None, then_verify: bool, **where: Any) -> None:
    """Promote a saved PASS run: branch, commit and pull request in the GitOps repository.

    With ``onFail: revert-pr`` a FAIL run of the version already stable opens a revert pull
    request instead (a FAIL of a version that is not stable: nothing to revert).
    """
    from analysis.results import load_results
    from coordinator.errors import SpecError
    from coordinator.pr_evidence import promote_with_evidence
    from coordinator.promote_wiring import promotion_refusal, spec_mismatch
    from coordinator.spec import load_spec, parse_spec
    from promote.errors import PromotionError
    from promote.flow import rejudged_verdict

    if service_url is not None and (spec_path is not None or dry_run):
        raise SpecError("--service takes the promotion block saved in RESULTS; it cannot be "
                        "combined with --spec or --dry-run")
    if then_verify and (dry_run or service_url is not None):
        raise SpecError("--verify follows a promotion made here: not with --dry-run or --service")
    if then_verify:
        _check_where(where)
    results = load_results(results_path)
    saved = parse_spec(results.spec, source=str(results_path))
    spec = load_spec(spec_path) if spec_path else saved
    mismatch = spec_mismatch(results, spec) if spec_path else None
    if mismatch:
        raise SpecError(f"{spec_path}: not the spec of {results_path}: {mismatch}; promote the "
                        "run with the spec it ran with (or without --spec), or run this spec")
    if spec.promotion is None and service_url is None:
        raise PromotionError(f"{spec_path or results_path}: the spec has no promotion block")
    again = rejudged_verdict(results)  # once: the verdict is carried to the flow
    refused = promotion_refusal(results, spec.promotion.on_fail if spec.promotion else "none",
                                again)
    if refused is not None:
        click.echo(f"slogate: not promoted: {results_path}: {refused[1]}", err=True)
        sys.exit(refused[0])
    if service_url is not None:
        _promote_through_service(results, service_url)
        return
    assert spec.promotion is not None  # refused above when there is none and no --service
    runs = None
    if history_source is not None:
        archive = _run_archive(history_source, spec.promotion, None)
        runs = [(r.results, r.source) for r in archive.scan().runs]
    notifier = None if dry_run else _notifier(spec, (spec_path or results_path).parent)
    outcome = promote_with_evidence(results, spec.promotion, dry_run=dry_run, log=_log,
                                    show=lambda text: click.echo(text, nl=False),
                                    report_url=report_url, runs=runs, again=again)
    _notify_pull(notifier, results, spec.promotion, outcome)
    if then_verify and outcome.status in ("opened", "updated", "merged"):
        sys.exit(_verify_after(results, spec, where, spec_dir=(spec_path or results_path).parent,
                               out=None, address=None, fmt_name="text", report_url=report_url))


def _pinned_objectives(path: Path) -> Any:
    """Return the service's pinned objectives of an objectives file (or a whole spec)."""
    from coordinator.spec import load_objectives
    from promote.service import Pinned

    loaded = load_objectives(path)
    return Pinned(objectives=tuple(o.to_core() for o in loaded.objectives),
                  limits=loaded.analysis.to_core())


def _promote_through_service(results: Any, url: str) -> None:
    """Post ``results`` to the promotion service and print its answer."""
    from coordinator.promote_wiring import post_to_service

    answer = post_to_service(results, url, os.environ.get("SLOGATE_PROMOTE_SECRET", "").strip())
    click.echo(f"{answer.get('status')}: {answer.get('pullRequest')} ({answer.get('branch')})")


def _check_where(where: dict[str, Any]) -> None:
    """Raise SpecError unless the verify options name the Deployment and the target."""
    from coordinator.errors import SpecError

    missing = [name for name, key in (("--deployment", "deployment"), ("--target", "target_url"))
               if not where.get(key)]
    if missing:
        raise SpecError(f"verifying needs {' and '.join(missing)}")


def _verify_after(results: Any, spec: Any, where: dict[str, Any], *, spec_dir: Path,
                  out: Path | None, address: str | None, fmt_name: str,
                  report_url: str | None) -> int:
    """Verify the promotion of ``results`` (see ``slogate verify``); return the exit code."""
    from analysis.results import load_results
    from analysis.verdict import Verdict
    from coordinator.pr_evidence import check_report_url
    from coordinator.verify_wiring import VerifyOptions
    from coordinator.verify_wiring import verify as verify_promotion
    from deploy.sync_wait import StableDeployment

    _check_where(where)
    namespace, _, name = where["deployment"].rpartition("/")
    options = VerifyOptions(
        stable=StableDeployment(namespace=namespace or "default", name=name,
                                kubeconfig=str(where["kubeconfig"]) if where["kubeconfig"]
                                else None, context=where["context"]),
        target=where["target_url"], merge_timeout_s=where["merge_timeout"],
        sync_timeout_s=where["sync_timeout"], poll_s=where["poll"],
        report_url=check_report_url(report_url))

    def run_it(checking: Any) -> Any:
        out_dir = out or _default_out(f"{checking.name}-verify")
        execute_spec(checking, spec_dir=spec_dir, out=out_dir, address=address,
                     fmt_name=fmt_name)
        return load_results(out_dir / "results.json")

    notifier = _notifier(spec, spec_dir)
    verified = verify_promotion(results, spec, options, run=run_it, log=_log)
    if notifier is not None and spec.promotion is not None:
        from coordinator.notify import verification_notice

        revert = verified.revert
        revert_url = revert.pull.url if revert is not None and revert.pull is not None else None
        notifier.send(verification_notice(verified.checked, app=spec.promotion.app,
                                          version=spec.promotion.version, revert_url=revert_url))
        _notify_pull(notifier, verified.checked, spec.promotion, revert)
    return Verdict(verified.checked.verdict).exit_code


@main.command()
@click.argument("results_path", metavar="RESULTS", type=click.Path(path_type=Path))
@click.option("--spec", "spec_path", type=click.Path(path_type=Path), default=None,
              help="Take the experiment and promotion block from this spec instead of the one "
                   "saved in RESULTS.")
@_verify_options
@click.option("--out", "out", type=click.Path(path_type=Path), default=None,
              help="Directory for the verification's results.json (default: "
                   "results/NAME-verify-TIMESTAMP).")
@click.option("--address", default=None, envvar="RAY_ADDRESS", show_envvar=True,
              help="Ray cluster to join (as for run).")
@click.option("--format", "fmt_name", type=click.Choice(FORMATS), default="text",
              show_default=True, help="Report format on stdout.")
@_report_url_option
@_errors_to_exit_codes
def verify(results_path: Path, spec_path: Path | None, out: Path | None, address: str | None,
           fmt_name: str, report_url: str | None, **where: Any) -> None:
    """Verify a promotion after the GitOps sync: wait for the pull request's merge and for the
    stable Deployment (--deployment) to run the version, then run the experiment against the
    stable Service (--target).

    Exit 0 PASS, 1 FAIL (with onFail: revert-pr, the revert pull request is opened), 3
    INCONCLUSIVE or INVALID, or not merged / not synced in time; 2 for a pull request closed
    without merging and any input error.
    """
    from analysis.results import load_results
    from coordinator.spec import load_spec, parse_spec

    results = load_results(results_path)
    spec = load_spec(spec_path) if spec_path else parse_spec(results.spec, source=str(results_path))
    sys.exit(_verify_after(results, spec, where, spec_dir=(spec_path or results_path).parent,
                           out=out, address=address, fmt_name=fmt_name, report_url=report_url))


@main.command("gate-serve")
@click.argument("source", metavar="SOURCE", default="results")
@click.option("--listen", default="127.0.0.1:8788", show_default=True, metavar="HOST:PORT",
              help="Address to listen on.")
@click.option("--max-age", "max_age", default=None, metavar="DURATION",
              help="Answer 409 when the newest run is older than this (a webhook's "
                   "metadata.maxAge wins).")
@click.option("--github-url", default=None, metavar="URL", envvar="SLOGATE_GITHUB_URL",
              show_envvar=True, help="GitHub Enterprise API URL of a github: SOURCE.")
@_errors_to_exit_codes
def gate_serve(source: str, listen: str, max_age: str | None, github_url: str | None) -> None:
    """Answer rollout controllers with the newest run's verdict in SOURCE (a run archive, as
    for slogate history): POST /v1/flagger (Flagger's webhook: 200 PASS, 412 FAIL, 409
    INCONCLUSIVE/INVALID or too old, 404 no run), GET /v1/verdict?experiment=NAME."""
    from coordinator.archive import open_archive
    from coordinator.gate_server import make_server
    from coordinator.units import parse_duration_s

    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit():
        raise click.BadParameter(f"{listen!r} is not HOST:PORT", param_hint="--listen")
    try:
        max_age_s = parse_duration_s(max_age) if max_age is not None else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--max-age") from None
    archive = open_archive(source, github_url=github_url,
                           github_token=lambda: _github_token(None, None))
    archive.scan()  # an archive that cannot be read fails here, not at the first webhook

    def runs() -> list[tuple[Any, str]]:
        return [(r.results, r.source) for r in archive.scan().runs]

    server = make_server(host.strip("[]"), int(port), runs, default_max_age_s=max_age_s,
                         log=_log)
    _log(f"gate on http://{listen} for the runs in {archive.location}")
    server.serve_forever()


@main.command("promote-serve")
@click.option("--listen", default="127.0.0.1:8787", show_default=True, metavar="HOST:PORT",
              help="Address to listen on.")
@click.option("--allow", "allow", multiple=True, required=True,
              metavar="OWNER/NAME[#BRANCH,...][:PATH,PATH...]",
              help="A repository the service may promote to, optionally only into these base "
                   "branches and only these manifest paths; repeatable.")
@click.option("--objectives", "pinned", multiple=True, metavar="OWNER/NAME=FILE",
              help="Pin the objectives (and analysis) of pull requests to OWNER/NAME to those "
                   "in FILE: a run judged against others is refused; repeatable.")
@click.option("--token-file", type=click.Path(path_type=Path), default=None,
              help="File holding the GitHub token (default: the GITHUB_TOKEN environment "
                   "variable).")
@click.option("--token-secret", default=None, metavar="[NAMESPACE/]NAME[:KEY]",
              help="Read the GitHub token from this Kubernetes Secret (e.g. ghtoken:token; "
                   "namespace default: the pod's own) instead of --token-file/GITHUB_TOKEN.")
@click.option("--shared-secret-file", type=click.Path(path_type=Path), default=None,
              help="File holding the shared secret callers send as 'Authorization: Bearer' "
                   "(default: the SLOGATE_PROMOTE_SECRET environment variable).")
@click.option("--github-url", default=None, metavar="URL",
              help="GitHub Enterprise API URL; a promotion whose baseUrl differs is refused.")
@_errors_to_exit_codes
def promote_serve(listen: str, allow: tuple[str, ...], pinned: tuple[str, ...],
                  token_file: Path | None, token_secret: str | None,
                  shared_secret_file: Path | None, github_url: str | None) -> None:
    """Serve promotions over HTTP, the only holder of the GitHub token.

    A separate command beside ``slogate promote`` (which is unchanged): runners post results.json
    to POST /v1/promotions with 'Authorization: Bearer <shared secret>'; the service re-judges the
    run, checks the allow-list and opens the pull request with its own token. GET /healthz
    answers 200. Promote through it with ``slogate promote RESULTS --service URL``.
    """
    from promote.service import ServiceConfig, parse_allowed, parse_pinned, serve

    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit():
        raise click.BadParameter(f"{listen!r} is not HOST:PORT", param_hint="--listen")
    config = ServiceConfig(
        allowed=tuple(parse_allowed(a) for a in allow),
        objectives=dict(parse_pinned(p, _pinned_objectives) for p in pinned),
        token=_github_token(token_file, token_secret),
        secret=_secret(shared_secret_file, "SLOGATE_PROMOTE_SECRET", "--shared-secret-file"),
        github_url=github_url)
    import logging

    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="slogate: %(asctime)s %(name)s %(message)s")
    _log(f"promotion service on http://{listen} for "
         f"{', '.join(a.repository for a in config.allowed)}")
    serve(config, host.strip("[]"), int(port))


def _github_token(token_file: Path | None, token_secret: str | None) -> str:
    """Return the GitHub token of promote-serve (or of history's github: archive): a Kubernetes
    Secret, a file, or GITHUB_TOKEN."""
    if token_secret is None:
        return _secret(token_file, "GITHUB_TOKEN", "--token-file")
    if token_file is not None:
        raise click.UsageError("give one of --token-file, --token-secret")
    from coordinator.promote_wiring import read_kubernetes_token
    from promote.spec import TokenSecret

    where, _, key = token_secret.partition(":")
    namespace, _, name = where.rpartition("/")
    if not name or (_ and not namespace):
        raise click.BadParameter(f"{token_secret!r} is not [NAMESPACE/]NAME[:KEY]",
                                 param_hint="--token-secret")
    return read_kubernetes_token(TokenSecret.model_validate(
        {"name": name, "key": key or "token", "namespace": namespace or None}))


def _secret(path: Path | None, env: str, option: str) -> str:
    """Return the secret in ``path``, else in ``$env``; raise PromotionError if there is none."""
    from coordinator.promote_wiring import read_secret

    return read_secret(path, env, option)


@main.command()
@click.argument("spec_path", metavar="SPEC", type=click.Path(path_type=Path))
@click.option("--delete", is_flag=True,
              help="Delete the objects the spec's manifests describe instead.")
@_errors_to_exit_codes
def launch(spec_path: Path, delete: bool) -> None:
    """Dark-launch SPEC's target.kubernetes and wait until it is ready; print its URL. No load.

    The same apply and rollout wait that ``slogate run`` does first, for trying a spec's
    manifests, kubeconfig and RBAC on their own.
    """
    from coordinator.dark_launch import launch_plan
    from coordinator.errors import SpecError
    from coordinator.spec import load_spec
    from deploy.launch import delete_manifests
    from deploy.launch import launch as dark_launch

    spec = load_spec(spec_path)
    if spec.target.kubernetes is None:
        raise SpecError(f"{spec_path}: target has no kubernetes block; nothing to launch")
    plan = launch_plan(spec.target.kubernetes, spec_path.parent)
    if delete:
        delete_manifests(plan, _log)
        return
    launched = dark_launch(plan, _log)
    click.echo(spec.target.url or launched.url)


@main.command()
@click.argument("spec_path", metavar="SPEC", type=click.Path(path_type=Path))
@_errors_to_exit_codes
def check(spec_path: Path) -> None:
    """Validate SPEC without running it (no Ray, no load) and warn about likely unit mistakes.

    Exit 0 when SPEC would run (warnings included), 2 with the same one-line error as run.
    """
    from coordinator.errors import SpecError
    from coordinator.run import grpc_schema_of
    from coordinator.spec import load_spec_document, where_in
    from coordinator.spec_check import check_spec
    from coordinator.split import worker_plans

    spec, document = load_spec_document(spec_path)
    if spec.target.kubernetes is not None and spec.target.url is None:
        spec = spec.with_target(_service_url(spec.target.kubernetes, spec_path.parent))
    try:
        # the plan's own refusals and the gRPC schema's, as run would meet them
        worker_plans(spec, spec_path.parent, grpc_schema_of(spec, spec_path.parent))
    except SpecError as exc:
        raise SpecError(f"{spec_path}: {exc}") from None
    findings = check_spec(spec, document)
    for finding in findings:
        click.echo(f"slogate: warning: {where_in(document, list(finding.loc), str(spec_path))}: "
                   f"{finding.message}", err=True)
    versions = " against the baseline" if spec.baseline else ""
    click.echo(f"{spec_path}: valid: {spec.name}, {len(spec.endpoints)} endpoint(s), "
               f"{len(spec.objectives)} objective(s), {_load_summary(spec)} on "
               f"{spec.load.workers} worker(s){versions}; {len(findings)} warning(s)")


def _load_summary(spec: Any) -> str:
    """Return the load of a spec as ``check`` shows it: ``100 req/s for 10 s``, a ramp first,
    or each stage as reports name it (``2 stages (warm 4 users for 10 s, stage 2 16 users for
    20 s)``)."""
    from analysis.stages import stage_load, stages_of

    load = spec.load
    if load.stages:
        stages = stages_of(spec.model_dump(mode="json", by_alias=True))
        return f"{len(stages)} stages (" + ", ".join(
            f"{stage.name} {stage_load(stage)} for {stage.duration_s:g} s" for stage in stages) + ")"
    model = (f"{load.rate:g} req/s" if load.rate is not None else f"{load.concurrency} users")
    stop = " and ".join(part for part in (
        f"{load.duration:g} s" if load.duration is not None else "",
        f"{load.requests:,} requests" if load.requests is not None else "") if part)
    if load.ramp is None:
        return f"{model} for {stop}"
    ramp = load.ramp
    return (f"a ramp from {ramp.from_:g} to {ramp.to or load.rate:g} req/s over "
            f"{ramp.duration:g} s, then {model} for {stop}")


def _service_url(kubernetes: Any, spec_dir: Path) -> str:
    """Return the in-cluster URL a dark launch would load, from the manifests alone (they are
    read and their Service and port checked, as the launch does first; nothing is applied)."""
    from deploy.manifests import load_manifests, service_port, service_url

    docs = load_manifests([spec_dir / m for m in kubernetes.manifests])
    service, port = service_port(docs, kubernetes.service, kubernetes.port)
    doc = next(d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == service)
    return service_url(doc["metadata"].get("namespace") or kubernetes.namespace, service, port)


@main.command()
@click.option("--results", "which", flag_value="results",
              help="Print the schema of results.json instead of the experiment spec's.")
@_errors_to_exit_codes
def schema(which: str | None) -> None:
    """Print the JSON Schema of the experiment spec (for editors and linters)."""
    if which == "results":
        from analysis.results import Results

        click.echo(json.dumps(Results.model_json_schema(by_alias=True), indent=2))
    else:
        from coordinator.spec import dump_schema

        click.echo(dump_schema())


@main.command()
@click.option("--out", "out", type=click.Path(path_type=Path), default=None,
              help="Directory for results.json, report.html and the demo's GitOps repository "
                   "(default: results/hello-2.0-TIMESTAMP).")
@click.option("--prometheus", is_flag=True, help="Also start Debian's prometheus (installed) "
              "scraping the app every second, and judge one custom objective from it: the "
              "app's own server-side p99 (about 6 s more).")
@_errors_to_exit_codes
def demo(out: Path | None, prometheus: bool) -> None:
    """Run the whole loop on the bundled sample app (version 2.0) on loopback."""
    from coordinator.demo import run_demo

    sys.exit(run_demo(out=out, log=_log, execute=execute_spec, default_out=_default_out,
                      prometheus=prometheus))


def _tolerance(_ctx: click.Context, _param: click.Parameter, value: str) -> float:
    from coordinator.units import parse_ratio

    try:
        tolerance = parse_ratio(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    if tolerance >= 1.0:
        raise click.BadParameter(f"{value!r} must be below 100%")
    return tolerance


@main.command()
@click.argument("source", metavar="SOURCE", default="results")
@click.option("--name", default=None, help="Experiment name (default: the newest run's).")
@click.option("--last", type=click.IntRange(min=1), default=10, show_default=True,
              help="How many runs the trend shows.")
@click.option("--against", type=click.IntRange(min=1), default=5, show_default=True,
              help="Compare the newest run with this many earlier PASS runs.")
@click.option("--tolerance", default="10%", show_default=True, callback=_tolerance,
              help="How much worse than the reference a metric may be (10% or 0.1).")
@click.option("--aggregate", type=click.Choice(["median", "mean"]), default="median",
              show_default=True, help="How the earlier runs make the reference.")
@click.option("--format", "fmt_name", type=click.Choice(["text", "markdown", "json"]),
              default="text", show_default=True)
@click.option("--fail-on-regression", is_flag=True,
              help="Exit 1 when the newest run regressed against its reference.")
@click.option("--github-url", default=None, metavar="URL", envvar="SLOGATE_GITHUB_URL",
              show_envvar=True,
              help="GitHub Enterprise API URL of a github: SOURCE (default: api.github.com).")
@click.option("--token-file", type=click.Path(path_type=Path), default=None,
              help="File holding the GitHub token of a github: SOURCE (default: GITHUB_TOKEN).")
@click.option("--token-secret", default=None, metavar="[NAMESPACE/]NAME[:KEY]",
              help="Read the token of a github: SOURCE from this Kubernetes Secret instead.")
@_errors_to_exit_codes
def history(source: str, name: str | None, last: int, against: int, tolerance: float,
            aggregate: str, fmt_name: str, fail_on_regression: bool, github_url: str | None,
            token_file: Path | None, token_secret: str | None) -> None:
    """Show the trend of archived runs and whether the newest drifted (SOURCE: a directory,
    default results, git:REPO[#BRANCH] or github:OWNER/NAME[#BRANCH])."""
    from analysis.history import DriftPolicy, history_of
    from analysis.history_report import render_history
    from coordinator.archive import open_archive
    from coordinator.errors import HistoryError

    archive = open_archive(source, github_url=github_url,
                           github_token=lambda: _github_token(token_file, token_secret))
    scan = archive.scan()
    for warning in scan.warnings:
        _log(warning)
    runs = [(r.results, r.source) for r in scan.runs]
    if not runs:
        raise HistoryError(f"{archive.location}: no runs in the archive")
    if name is not None and all(r.name != name for r, _ in runs):
        raise HistoryError(f"{archive.location}: no run named {name!r} (there are: "
                           f"{', '.join(sorted({r.name for r, _ in runs}))})")
    policy = DriftPolicy(against=against, tolerance=tolerance, aggregate=aggregate)
    past = history_of(runs, name=name, policy=policy)
    if past.other_names and name is None:
        _log(f"several experiments in {archive.location}; showing {past.name}, the newest "
             f"(others: {', '.join(past.other_names)}; choose with --name)")
    if past.drift.no_reference:
        _log(f"drift not judged: {past.drift.no_reference}")
    import shutil

    tty = sys.stdout.isatty()
    text = _rendered(lambda: render_history(
        past, fmt_name, location=archive.location, last=last, color=tty,
        width=shutil.get_terminal_size().columns if tty else None),
        f"{fmt_name} history report", f"the archive {archive.location} is unchanged")
    if text is None:
        sys.exit(EXIT_REPORT)
    click.echo(text, nl=False)
    sys.exit(1 if fail_on_regression and past.drift.regressed else 0)


if __name__ == "__main__":  # pragma: no cover
    main()
