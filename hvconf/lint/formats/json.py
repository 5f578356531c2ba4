"""The json format: a JSON array with one object per diagnostic, in report order.

Field names are a stable interface (docs/ci.md): new fields may be added,
none renamed or removed. Positions count from 1; `end_column` is exclusive,
as in the text format and SARIF. Tested by tests/test_formats.py.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from hvconf.diagnostics import Diagnostic, Fix, Span

if TYPE_CHECKING:
    from hvconf.lint.driver import LintResult


def location(span: Span | None) -> dict[str, Any] | None:
    if span is None:
        return None
    return {"file": span.file, "line": span.line, "column": span.col,
            "end_line": span.end_line, "end_column": span.end_col}


def fix(f: Fix | None) -> dict[str, Any] | None:
    if f is None:
        return None
    return {"message": f.message, "edits": [{"location": location(e.span), "content": e.content} for e in f.edits]}


def diagnostic(d: Diagnostic) -> dict[str, Any]:
    where = location(d.span) or dict.fromkeys(("file", "line", "column", "end_line", "end_column"))
    return {"code": d.code, "severity": d.severity.value, "message": d.message, **where,
            "notes": [{"message": n.message, "location": location(n.span)} for n in d.notes],
            "help": d.help, "fix": fix(d.fix)}


def render(result: "LintResult", *, colour: bool = False) -> str:
    return json.dumps([diagnostic(d) for d in result.report], indent=2) + "\n"
