"""The human format: each diagnostic as hvconf.lint.render draws it, then one summary line.

Colour is the caller's decision (NO_COLOR, a terminal or not); this module
never looks at the environment. Tested by tests/test_formats.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hvconf.lint.render import render as render_one
from hvconf.lint.render import summary

if TYPE_CHECKING:
    from hvconf.lint.driver import LintResult


def render(result: "LintResult", *, colour: bool = False, with_summary: bool = True) -> str:
    report = result.report
    lines = [render_one(d, report.sources, colour=colour) for d in report]
    if with_summary:
        fixable = sum(1 for d in report.diagnostics if d.fix is not None)
        if fixable:  # before the summary, which stays the last line
            lines.append(f"{fixable} fixable with `hvconf check --fix` (`--diff` to see the edits)")
        lines.append(summary(report, files=result.files, colour=colour))
    return "".join(f"{line}\n" for line in lines)
