"""The junit format: JUnit XML, which Jenkins, GitLab (artifacts:reports:junit), Azure
Pipelines and most CI test views read.

One <testsuite name="hvconf"> with one <testcase> per finding: classname the file, name
`file:line:col code`, and a <failure> (errors; warnings too, their type says which) whose
message is the finding's message and whose text is the rendered diagnostic without colour.
A clean run has one passing test case, `hvconf check`, so a report is never empty. Text
that XML 1.0 cannot hold (control characters a hostile file put in a message) is written as
`\\xNN`. Tested by tests/test_formats_ci.py.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING
from xml.etree import ElementTree as ET

from hvconf.diagnostics import Severity
from hvconf.lint.render import render as render_one

if TYPE_CHECKING:
    from hvconf.lint.driver import LintResult

# Characters XML 1.0 does not allow anywhere, even escaped (https://www.w3.org/TR/xml/#charsets).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


def _xml_text(text: str) -> str:
    return _NOT_XML.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def render(result: "LintResult", *, colour: bool = False) -> str:
    report = result.report
    findings = list(report)
    failures = sum(1 for d in findings if d.severity is not Severity.NOTE)
    suites = ET.Element("testsuites", name="hvconf check", tests=str(max(len(findings), 1)),
                        failures=str(failures), errors=str(len(result.unreadable)))
    suite = ET.SubElement(suites, "testsuite", name="hvconf", tests=str(max(len(findings), 1)),
                          failures=str(failures), errors=str(len(result.unreadable)))
    if not findings:
        ET.SubElement(suite, "testcase", classname="hvconf", name="hvconf check")
    for d in findings:
        where = f"{d.span.file}:{d.span.line}:{d.span.col}" if d.span is not None else "hvconf"
        case = ET.SubElement(suite, "testcase", classname=_xml_text(d.span.file if d.span else "hvconf"),
                             name=_xml_text(f"{where} {d.code}"))
        if d.severity is Severity.NOTE:
            continue
        failure = ET.SubElement(case, "failure", message=_xml_text(d.message), type=f"{d.severity.value}[{d.code}]")
        failure.text = _xml_text(render_one(d, report.sources, colour=False))
    for problem in result.unreadable:
        case = ET.SubElement(suite, "testcase", classname="hvconf", name=_xml_text(problem))
        ET.SubElement(case, "error", message=_xml_text(problem))
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"
