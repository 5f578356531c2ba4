"""The gitlab format: a GitLab Code Quality report (a JSON array of issues).

Each issue has `description`, `check_name` (the code), `fingerprint` (the SARIF format's
stable digest, hvconf/lint/formats/sarif.py), `severity` (error: major, warning: minor,
note: info) and `location` {`path`, `positions` {`begin`, `end`} with line and column}.
GitLab shows an issue in a merge request only when its path is relative to the repository
root, so paths are made relative as the github format makes them (hvconf/lint/formats/github.py:
$CI_PROJECT_DIR when set, else the file's git top level). The fields follow GitLab's
"Code Quality report format" (docs.gitlab.com, ci/testing/code_quality). A finding about no
file is placed at line 1 of the file `hvconf`. Tested by tests/test_formats_ci.py.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

from hvconf.diagnostics import Diagnostic, Severity
from hvconf.lint.formats.github import annotation_path
from hvconf.lint.formats.sarif import fingerprints

if TYPE_CHECKING:
    from hvconf.lint.driver import LintResult

SEVERITIES = {Severity.ERROR: "major", Severity.WARNING: "minor", Severity.NOTE: "info"}


def _path(file: str) -> str:
    project = os.environ.get("CI_PROJECT_DIR")
    if project:
        rel = os.path.relpath(os.path.abspath(file), os.path.abspath(project))
        if rel != os.pardir and not rel.startswith(os.pardir + os.sep):
            return rel.replace(os.sep, "/")
    return annotation_path(file)


def issue(d: Diagnostic, fingerprint: str) -> dict[str, Any]:
    text = d.message + (f" (help: {d.help})" if d.help else "")
    if d.span is None:
        location: dict[str, Any] = {"path": "hvconf", "lines": {"begin": 1}}
    else:
        s = d.span
        location = {"path": _path(s.file), "positions": {"begin": {"line": s.line, "column": s.col},
                                                          "end": {"line": s.end_line, "column": s.end_col}}}
    return {"type": "issue", "description": f"[{d.code}] {text}", "check_name": d.code,
            "categories": ["Bug Risk"], "fingerprint": fingerprint, "severity": SEVERITIES[d.severity],
            "location": location}


def render(result: "LintResult", *, colour: bool = False) -> str:
    return json.dumps([issue(d, digest) for d, digest in fingerprints(result.report)], indent=2) + "\n"
