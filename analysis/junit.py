"""JUnit XML report: each objective a test case, so CI systems show SLOs as tests.

PASS is a passing case; FAIL a ``<failure>``; INCONCLUSIVE an ``<error type="inconclusive">``
(not a pass, and not a measured violation); a dry-run objective is ``<skipped>``. A run with
load stages has each stage's objectives as cases of their own, named after the stage
(``stage 2 (peak, 6 users): latency-p99``), so CI shows which stage failed. One more case,
``run``, carries the run's own verdict (INVALID runs, generator bottlenecks), so a run without
objectives still shows up. The suite's ``<system-out>`` holds the outcomes by endpoint
(``GET /a: 1,000 requests, 13 errors (status:500 ×10, connect ×3), other outcomes:
status:200 ×987``).

Text from the document goes through ElementTree, which escapes it; characters XML 1.0 cannot
hold at all (most control characters) become U+FFFD, so the file always parses.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from analysis.custom_report import custom_text
from analysis.outcomes import outcome_rows
from analysis.results import ObjectiveResult, Results
from analysis.stages import stage_load
from analysis.verdict import counts_text

_NOT_XML = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml(text: str) -> str:
    """Return text with the characters XML 1.0 cannot hold replaced by U+FFFD."""
    return _NOT_XML.sub("\ufffd", text)


def _outcomes_text(results: Results) -> str:
    lines = []
    for row in outcome_rows(results):
        causes = counts_text(row.error_outcomes, top=None)
        lines.append(f"{row.endpoint}: {row.requests:,} requests, {row.errors:,} errors"
                     + (f" ({causes})" if causes else "")
                     + (f", other outcomes: {counts_text(row.other_outcomes, top=None)}"
                        if row.other_outcomes else ""))
    return "Outcomes by endpoint\n" + "\n".join(lines)


def _case(suite: ET.Element, name: str, classname: str, verdict: str, message: str,
          dry_run: bool = False) -> None:
    name, classname, message = _xml(name), _xml(classname), _xml(message)
    case = ET.SubElement(suite, "testcase", name=name, classname=classname, time="0")
    if dry_run:
        ET.SubElement(case, "skipped", message=f"dry run: {verdict}: {message}")
    elif verdict == "FAIL":
        ET.SubElement(case, "failure", type="FAIL", message=message).text = message
    elif verdict != "PASS":
        ET.SubElement(case, "error", type=verdict.lower(), message=message).text = message


def _name(objective: ObjectiveResult) -> str:
    return objective.metric + (f" [{objective.endpoint}]" if objective.endpoint else "")


def render_junit(results: Results) -> str:
    """Return the run as a JUnit XML document (one testsuite)."""
    classname = f"slogate.{results.name}"
    suite = ET.Element("testsuite", name=_xml(f"slogate {results.name}"),
                       timestamp=results.start_time, time=f"{results.duration_s:.3f}")
    for o in results.objectives:
        _case(suite, _name(o), classname, o.verdict, o.reason, o.dry_run)
    for stage in results.stages or []:
        prefix = f"stage {stage.index + 1} ({stage.name}, {stage_load(stage)}): "
        for o in stage.objectives:
            _case(suite, prefix + _name(o), classname, o.verdict, o.reason, o.dry_run)
    _case(suite, "run", classname, results.verdict, "; ".join(results.reasons))
    ET.SubElement(suite, "system-out").text = _xml(_outcomes_text(results) + custom_text(results))
    cases = suite.findall("testcase")
    suite.set("tests", str(len(cases)))
    for tag, attr in (("failure", "failures"), ("error", "errors"), ("skipped", "skipped")):
        suite.set(attr, str(sum(1 for c in cases if c.find(tag) is not None)))
    ET.indent(suite)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suite, encoding="unicode") + "\n"
