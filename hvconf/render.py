"""Render diagnostics as text: `file:line:col: severity[code]: message`,
the source line, a caret under the span, then notes and help.

Control characters from hostile input are shown as '?' so a diagnostic can
never drive the terminal. Colour is the caller's choice (cli decides from
NO_COLOR and isatty). Tested by tests/test_diagnostics.py.
"""

from __future__ import annotations

from typing import Mapping

from hvconf.diagnostics import Diagnostic, Report, Severity

_COLOURS = {Severity.ERROR: "\x1b[1;31m", Severity.WARNING: "\x1b[1;33m", Severity.NOTE: "\x1b[1;36m"}
_BOLD, _BLUE, _RESET = "\x1b[1m", "\x1b[1;34m", "\x1b[0m"


def printable(text: str) -> str:
    """`text` with control characters (except tab) replaced, width preserved."""
    return "".join("?" if (ord(c) < 0x20 and c != "\t") or 0x7F <= ord(c) < 0xA0 else c for c in text)


def _source_lines(diag: Diagnostic, sources: Mapping[str, str], colour: bool) -> list[str]:
    span = diag.span
    if span is None or span.file not in sources:
        return []
    lines = sources[span.file].splitlines()
    if not 1 <= span.line <= len(lines):
        return []
    raw = lines[span.line - 1]
    text = printable(raw).expandtabs(4)
    # Column positions count characters of the raw line; map them through tab expansion.
    start = len(printable(raw[: span.col - 1]).expandtabs(4))
    end_col = span.end_col if span.end_line == span.line else len(raw) + 1
    end = len(printable(raw[: max(end_col - 1, span.col)]).expandtabs(4))
    width = len(str(span.line))
    gutter = " " * width + " |"
    caret = " " * start + "^" * max(end - start, 1)
    if colour:
        gutter, caret = f"{_BLUE}{gutter}{_RESET}", f"{_COLOURS[diag.severity]}{caret}{_RESET}"
        number = f"{_BLUE}{span.line} |{_RESET}"
    else:
        number = f"{span.line} |"
    return [gutter, f"{number} {text}", f"{gutter} {caret}"]


def render(diag: Diagnostic, sources: Mapping[str, str], *, colour: bool = False) -> str:
    where = f"{diag.span}: " if diag.span else ""
    head = f"{diag.severity.value}[{diag.code}]"
    if colour:
        head = f"{_COLOURS[diag.severity]}{head}{_RESET}"
        where = f"{_BOLD}{where}{_RESET}"
    out = [f"{where}{head}: {printable(diag.message)}"]
    out += _source_lines(diag, sources, colour)
    pad = " " * (len(str(diag.span.line)) + 1 if diag.span else 1)
    for note in diag.notes:
        at = f" ({note.span})" if note.span else ""
        out.append(f"{pad}= note: {printable(note.message)}{at}")
    if diag.help:
        out.append(f"{pad}= help: {printable(diag.help)}")
    return "\n".join(out)


def render_report(report: Report, *, colour: bool = False) -> str:
    return "\n".join(render(d, report.sources, colour=colour) for d in report)


def summary(report: Report) -> str:
    errors, warnings = len(report.errors), len(report.warnings)
    plural = lambda n, word: f"{n} {word}{'' if n == 1 else 's'}"  # noqa: E731
    return f"{plural(errors, 'error')}, {plural(warnings, 'warning')}"
