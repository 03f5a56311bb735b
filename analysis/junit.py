"""JUnit XML report: each objective a test case, so CI systems show SLOs as tests.

PASS is a passing case; FAIL a ``<failure>``; INCONCLUSIVE an ``<error type="inconclusive">``
(not a pass, and not a measured violation); a dry-run objective is ``<skipped>``. One more case,
``run``, carries the run's own verdict (INVALID runs, generator bottlenecks), so a run without
objectives still shows up.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from analysis.results import Results


def _case(suite: ET.Element, name: str, classname: str, verdict: str, message: str,
          dry_run: bool = False) -> None:
    case = ET.SubElement(suite, "testcase", name=name, classname=classname, time="0")
    if dry_run:
        ET.SubElement(case, "skipped", message=f"dry run: {verdict}: {message}")
    elif verdict == "FAIL":
        ET.SubElement(case, "failure", type="FAIL", message=message).text = message
    elif verdict != "PASS":
        ET.SubElement(case, "error", type=verdict.lower(), message=message).text = message


def render_junit(results: Results) -> str:
    """Return the run as a JUnit XML document (one testsuite)."""
    classname = f"slogate.{results.name}"
    suite = ET.Element("testsuite", name=f"slogate {results.name}", timestamp=results.start_time,
                       time=f"{results.duration_s:.3f}")
    for o in results.objectives:
        name = o.metric + (f" [{o.endpoint}]" if o.endpoint else "")
        _case(suite, name, classname, o.verdict, o.reason, o.dry_run)
    _case(suite, "run", classname, results.verdict, "; ".join(results.reasons))
    cases = suite.findall("testcase")
    suite.set("tests", str(len(cases)))
    for tag, attr in (("failure", "failures"), ("error", "errors"), ("skipped", "skipped")):
        suite.set(attr, str(sum(1 for c in cases if c.find(tag) is not None)))
    ET.indent(suite)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suite, encoding="unicode") + "\n"
