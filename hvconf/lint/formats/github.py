"""The github format: GitHub Actions workflow commands, one per diagnostic.

`::error file=F,line=L,col=C,endLine=L2,endColumn=C2,title=T::message`
(`::warning` and `::notice` for the other severities). Escaping follows the
Actions toolkit: `%`, CR and LF in the message; also `:` and `,` in
properties. Annotations do not fail a job: the exit status does.

GitHub places an annotation on a pull request's file only when F is relative to
the repository root, whatever folder hvconf ran in: F is relative to
$GITHUB_WORKSPACE (the checkout a workflow runs in) when it is set, else to the
nearest folder above the file that holds `.git`; as given outside of both.
Tested by tests/test_formats.py.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from hvconf.diagnostics import Diagnostic, Severity

if TYPE_CHECKING:
    from hvconf.lint.driver import LintResult

COMMANDS = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.NOTE: "notice"}
_DATA = {"%": "%25", "\r": "%0D", "\n": "%0A"}
_PROPERTY = _DATA | {":": "%3A", ",": "%2C"}


def escape_data(text: str) -> str:
    return "".join(_DATA.get(c, c) for c in text)


def escape_property(text: str) -> str:
    return "".join(_PROPERTY.get(c, c) for c in text)


@lru_cache(maxsize=1024)
def _git_top(folder: str) -> str | None:
    """The nearest folder from `folder` up that holds `.git` (a folder, or a file in worktrees)."""
    start = Path(folder)
    return next((os.fspath(f) for f in (start, *start.parents) if os.path.lexists(f / ".git")), None)


def repository_root(file: str) -> str | None:
    """Where annotation paths start: $GITHUB_WORKSPACE when set, else the file's git top level."""
    workspace = os.environ.get("GITHUB_WORKSPACE")
    return os.path.abspath(workspace) if workspace else _git_top(os.path.dirname(os.path.abspath(file)))


def annotation_path(file: str) -> str:
    """`file` relative to the repository root (with symlinks resolved on both sides if the
    plain paths do not nest), or as given when it is outside the root or there is none."""
    root = repository_root(file)
    if root is None:
        return file
    for path, base in ((os.path.abspath(file), root), (os.path.realpath(file), os.path.realpath(root))):
        rel = os.path.relpath(path, base)
        if rel != os.pardir and not rel.startswith(os.pardir + os.sep):
            return Path(rel).as_posix()
    return file


def command(d: Diagnostic) -> str:
    props: list[tuple[str, object]] = []
    if d.span is not None:
        s = d.span
        props += [("file", annotation_path(s.file)), ("line", s.line), ("col", s.col), ("endLine", s.end_line),
                  ("endColumn", s.end_col)]
    props.append(("title", f"hvconf ({d.code})"))
    lines = [d.message]
    lines += [f"note: {n.message}" + (f" ({n.span})" if n.span else "") for n in d.notes]
    lines += [f"help: {d.help}"] if d.help else []
    head = ",".join(f"{key}={escape_property(str(value))}" for key, value in props)
    return f"::{COMMANDS[d.severity]} {head}::{escape_data(chr(10).join(lines))}"


def summary(result: "LintResult") -> str:
    """One `::notice` after the annotations: GitHub shows at most ten annotations of each kind
    per step on a pull request, so the counts say how many more the log holds."""
    from hvconf.lint.render import summary as counts

    shown = {s: min(10, sum(1 for d in result.report.diagnostics if d.severity is s)) for s in COMMANDS}
    hidden = sum(sum(1 for d in result.report.diagnostics if d.severity is s) - shown[s] for s in COMMANDS)
    tail = f"; {hidden} more than GitHub annotates: see this step's log" if hidden else ""
    text = counts(result.report, files=result.files) + tail
    return f"::notice title=hvconf check::{escape_data(text)}"


def render(result: "LintResult", *, colour: bool = False) -> str:
    return "".join(command(d) + "\n" for d in result.report) + summary(result) + "\n"
