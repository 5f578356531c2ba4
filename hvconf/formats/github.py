"""The github format: GitHub Actions workflow commands, one per diagnostic.

`::error file=F,line=L,col=C,endLine=L2,endColumn=C2,title=T::message`
(`::warning` and `::notice` for the other severities). Escaping follows the
Actions toolkit: `%`, CR and LF in the message; also `:` and `,` in
properties. Annotations do not fail a job: the exit status does.
Tested by tests/test_formats.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hvconf.diagnostics import Diagnostic, Severity

if TYPE_CHECKING:
    from hvconf.lint import LintResult

COMMANDS = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.NOTE: "notice"}
_DATA = {"%": "%25", "\r": "%0D", "\n": "%0A"}
_PROPERTY = _DATA | {":": "%3A", ",": "%2C"}


def escape_data(text: str) -> str:
    return "".join(_DATA.get(c, c) for c in text)


def escape_property(text: str) -> str:
    return "".join(_PROPERTY.get(c, c) for c in text)


def command(d: Diagnostic) -> str:
    props: list[tuple[str, object]] = []
    if d.span is not None:
        s = d.span
        props += [("file", s.file), ("line", s.line), ("col", s.col), ("endLine", s.end_line),
                  ("endColumn", s.end_col)]
    props.append(("title", f"hvconf ({d.code})"))
    lines = [d.message]
    lines += [f"note: {n.message}" + (f" ({n.span})" if n.span else "") for n in d.notes]
    lines += [f"help: {d.help}"] if d.help else []
    head = ",".join(f"{key}={escape_property(str(value))}" for key, value in props)
    return f"::{COMMANDS[d.severity]} {head}::{escape_data(chr(10).join(lines))}"


def render(result: "LintResult", *, colour: bool = False) -> str:
    return "".join(command(d) + "\n" for d in result.report)
