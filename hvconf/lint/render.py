"""Render diagnostics as text: `file:line:col: severity[code]: message`,
the source line, a caret under the span, then notes and help.

Control characters from hostile input are shown as '?' so a diagnostic can
never drive the terminal. Colour is the caller's choice (cli decides from
NO_COLOR and isatty). Tested by tests/test_diagnostics.py.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Mapping

from hvconf.diagnostics import Diagnostic, Report, Severity

def use_colour(stream: object, choice: str = "auto", env: Mapping[str, str] | None = None) -> bool:
    """Whether to colour what goes to `stream`: `--color always|never` decides; with `auto`,
    NO_COLOR (set and not empty) says no, FORCE_COLOR or CLICOLOR_FORCE (set, not empty and
    not 0) say yes, as CI logs that render colour want (https://no-color.org,
    https://force-color.org; CPython's Lib/_colorize.py keeps the same order); else a terminal
    unless TERM is dumb."""
    import os

    if choice != "auto":
        return choice == "always"
    env = os.environ if env is None else env
    if env.get("NO_COLOR"):
        return False
    if any(env.get(name, "") not in ("", "0") for name in ("FORCE_COLOR", "CLICOLOR_FORCE")):
        return True
    isatty = getattr(stream, "isatty", None)
    return env.get("TERM") != "dumb" and bool(isatty and isatty())


_COLOURS = {Severity.ERROR: "\x1b[1;31m", Severity.WARNING: "\x1b[1;33m", Severity.NOTE: "\x1b[1;36m"}
_BOLD, _BLUE, _RESET = "\x1b[1m", "\x1b[1;34m", "\x1b[0m"


def printable(text: str) -> str:
    """`text` with control characters (except tab) replaced, width preserved."""
    return "".join("?" if (ord(c) < 0x20 and c != "\t") or 0x7F <= ord(c) < 0xA0 else c for c in text)


# A source line longer than this is shown as a window around the span, so one
# 256 KiB line with many findings cannot make the output quadratic.
_WINDOW = 120
_BEFORE = 40


@lru_cache(maxsize=16)
def _line_starts(text: str) -> list[int]:
    """Where each line of `text` starts. Lines end at '\n' only, as the parser counts them
    (str.splitlines also splits at \f, \x1c-\x1e, \x85, U+2028 and U+2029, so a comment holding
    one showed the wrong line). Cached by the text (its hash is cached too): a report with many
    findings in one file indexes it once, not once per finding."""
    starts = [0]
    at = text.find("\n")
    while at >= 0:
        starts.append(at + 1)
        at = text.find("\n", at + 1)
    return starts


def line_bounds(text: str, line: int) -> tuple[int, int] | None:
    """Where line `line` (from 1) of `text` starts and ends, without its line ending; None if
    there is no such line (nothing follows a final newline, as for str.splitlines)."""
    starts = _line_starts(text)
    if not 1 <= line <= len(starts) - (starts[-1] == len(text)):
        return None
    start, end = starts[line - 1], starts[line] - 1 if line < len(starts) else len(text)
    return start, end - 1 if end > start and text[end - 1] == "\r" else end


def source_line(text: str, line: int) -> str | None:
    """Line `line` (from 1) of `text` without its line ending, or None."""
    bounds = line_bounds(text, line)
    return text[bounds[0]:bounds[1]] if bounds else None


def _clip(text: str, start: int, end: int, col: int, end_col: int) -> tuple[str, int, int, str, str]:
    """The part of the line text[start:end] to show, the span's columns in it, and the elision
    marks. Only that part is copied: findings on one long line each copied all of it."""
    if end - start <= _WINDOW:
        return text[start:end], col, end_col, "", ""
    first = max(col - 1 - _BEFORE, 0)
    last = min(first + _WINDOW, end - start)
    head, tail = ("..." if first else ""), ("..." if last < end - start else "")
    shift = first - len(head)
    return text[start + first:start + last], col - shift, min(end_col, last + 1) - shift, head, tail


def _source_lines(diag: Diagnostic, sources: Mapping[str, str], colour: bool) -> list[str]:
    span = diag.span
    if span is None or span.file not in sources:
        return []
    text = sources[span.file]
    bounds = line_bounds(text, span.line)
    if bounds is None:
        return []
    end_col = span.end_col if span.end_line == span.line else bounds[1] - bounds[0] + 1
    raw, col, end_col, head, tail = _clip(text, *bounds, span.col, end_col)
    raw = head + raw + tail if head or tail else raw
    text = printable(raw).expandtabs(4)
    # Column positions count characters of the raw line; map them through tab expansion.
    start = len(printable(raw[: col - 1]).expandtabs(4))
    end = len(printable(raw[: max(end_col - 1, col)]).expandtabs(4))
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


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def summary(report: Report, *, files: int | None = None, colour: bool = False) -> str:
    """`1 error, 2 warnings`, prefixed by `checked N files: ` when `files` is given."""
    errors, warnings = len(report.errors), len(report.warnings)
    counts = f"{_plural(errors, 'error')}, {_plural(warnings, 'warning')}"
    if colour:
        tint = _COLOURS[Severity.ERROR] if errors else _COLOURS[Severity.WARNING] if warnings else "\x1b[1;32m"
        counts = f"{tint}{counts}{_RESET}"
    return counts if files is None else f"checked {_plural(files, 'file')}: {counts}"
