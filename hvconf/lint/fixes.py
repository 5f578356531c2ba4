"""Machine-applicable fixes: the exact edit a finding's help states, as (span, replacement).

A fixer reads a diagnostic and the text of its file and returns the Fix its help
describes, or None when the edit is not certain (a help offering several choices
that are not equivalent, a statement with a block the edit would drop). FIXERS is
the table of fixable codes (explain pages and docs/diagnostics.md name them from
it). `fix_text` applies fixes until none is left, so applying it again changes
nothing; edits replace spans of one line and never touch the comments or layout
around them. Tested by tests/test_fixes.py, one case per fixable code.
"""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable

from hvconf.diagnostics import Diagnostic, Edit, Fix, Report, Span

if TYPE_CHECKING:
    from hvconf.lint.settings import Settings

MAX_PASSES = 10  # a fix can uncover another (two codes in one suppression): apply until none is left
_DID_YOU_MEAN = re.compile(r"did you mean '([^'\n]+)'\?$")
_WRITE = re.compile(r"`([^`\n]+)`")
_WORD = re.compile(r"[A-Za-z0-9_.\-]+")
_SUPPRESSION = re.compile(r"#\s*hvconf\s*:\s*ignore\[([^\]\n]*)\]\s*$")


def _line(text: str, number: int) -> str | None:
    lines = text.split("\n")  # the parser's line breaks: '\n' only (a form feed is no line end)
    return lines[number - 1] if 0 < number <= len(lines) else None


def _span_text(d: Diagnostic, text: str) -> tuple[str, str] | None:
    """(the span's line, the span's text) for a span on one line."""
    s = d.span
    if s is None or s.line != s.end_line:
        return None
    line = _line(text, s.line)
    if line is None or s.end_col - 1 > len(line):
        return None
    return line, line[s.col - 1: s.end_col - 1]


def _replace_span(d: Diagnostic, start: int, end: int, content: str, message: str) -> Fix:
    """Replace columns [start, end) of the diagnostic's line (0-based offsets into the line)."""
    assert d.span is not None
    s = d.span
    return Fix(message, (Edit(Span(s.file, s.line, start + 1, s.line, end + 1), content),))


def did_you_mean(d: Diagnostic, text: str) -> Fix | None:
    """`did you mean 'X'?`: the misspelt word of the span becomes X (the span itself when it is
    one word, else its word closest to X)."""
    found = _DID_YOU_MEAN.search(d.help or "")
    got = _span_text(d, text)
    if found is None or got is None or d.span is None:
        return None
    wanted, (_, inside) = found.group(1), got
    words = [m for m in _WORD.finditer(inside) if m.group() != wanted]
    if not words:
        return None
    best = max(words, key=lambda m: difflib.SequenceMatcher(None, m.group(), wanted).ratio())
    if len(words) > 1 and difflib.SequenceMatcher(None, best.group(), wanted).ratio() < 0.6:
        return None
    base = d.span.col - 1
    return _replace_span(d, base + best.start(), base + best.end(), wanted, f"write '{wanted}'")


def write_choice(index: int) -> Callable[[Diagnostic, str], Fix | None]:
    """"write `X`" (the `index`th such choice): the statement of the span becomes X when X starts
    with the same keyword, or the `keyword value` inside it does. None for a span with a block."""

    def fixer(d: Diagnostic, text: str) -> Fix | None:
        help_text = (d.help or "").split(";")[0]
        if not help_text.startswith("write "):
            return None
        choices = _WRITE.findall(help_text)
        got = _span_text(d, text)
        if not choices or got is None or d.span is None:
            return None
        wanted = choices[index]
        keyword, inside, base = wanted.split()[0], got[1], d.span.col - 1
        if inside.split()[:1] == [keyword]:
            if "{" in inside:  # the statement has a block the replacement would drop
                return None
            return _replace_span(d, base, base + len(inside), wanted, f"write `{wanted}`")
        inner = re.search(rf"(?<![\w-]){re.escape(keyword)}\s+[^\s{{}}]+", inside)
        if inner is None or len(wanted.split()) != 2:
            return None
        return _replace_span(d, base + inner.start(), base + inner.end(), wanted, f"write `{wanted}`")

    return fixer


def unused_suppression(d: Diagnostic, text: str) -> Fix | None:
    """`remove the code from the suppression`: the code and its separator go; the whole
    `# hvconf: ignore[...]` comment goes with its last code (its line too, when it has nothing else)."""
    if d.help is not None and _DID_YOU_MEAN.search(d.help):
        return did_you_mean(d, text)  # a misspelt code: the right one
    if d.help != "remove the code from the suppression":
        return None
    got = _span_text(d, text)
    if got is None or d.span is None:
        return None
    line, _ = got
    comment = _SUPPRESSION.search(line)
    if comment is None or not comment.start(1) <= d.span.col - 1 < comment.end(1):
        return None  # other text after the comment, or a form this fixer does not know
    codes = [m for m in re.finditer(r"[^\s,]+", comment.group(1))]
    if len(codes) <= 1:
        head = line[: comment.start()].rstrip()
        if not head:  # the comment is the whole line: the line goes
            s = d.span
            return Fix("remove the suppression", (Edit(Span(s.file, s.line, 1, s.line + 1, 1), ""),))
        return _replace_span(d, len(head), len(line), "", "remove the suppression")
    inner = comment.start(1)
    index = next(i for i, m in enumerate(codes) if inner + m.start() == d.span.col - 1)
    if index + 1 < len(codes):  # `a, b` -> `b`: the code up to the next one
        start, end = inner + codes[index].start(), inner + codes[index + 1].start()
    else:  # the last: from the end of the one before
        start, end = inner + codes[index - 1].end(), inner + codes[index].end()
    return _replace_span(d, start, end, "", f"remove '{codes[index].group()}' from the suppression")


# The fixable codes and how each is fixed. Codes whose help names several unequal choices
# (threads-not-power-of-two: 2 or 4) or an edit elsewhere (cap-required) are not here.
FIXERS: dict[str, Callable[[Diagnostic, str], Fix | None]] = {
    "unknown-keyword": did_you_mean,
    "unknown-base": did_you_mean,
    "unknown-key": did_you_mean,
    "unknown-cap": did_you_mean,
    "unknown-hcall": did_you_mean,
    "unknown-preset": did_you_mean,
    "unknown-pv-feature": did_you_mean,
    "unknown-mode": did_you_mean,
    "unknown-console": did_you_mean,
    "invalid-value": did_you_mean,
    "cap-bad-args": did_you_mean,
    "cap-vm-wide": write_choice(0),
    "cap-wrong-fd": write_choice(0),
    "htab-order-range": write_choice(0),
    "htab-too-small": write_choice(0),
    "htab-too-large": write_choice(0),
    "mmu-radix-needs-hv": write_choice(0),
    "rma-obsolete": write_choice(0),
    "memory-too-small": write_choice(0),
    "memory-granularity": write_choice(-1),  # rounds up: the guest never gets less than it asked for
    "vsmt-below-threads": write_choice(0),
    "threads-wrong-flavour": write_choice(0),
    "unused-suppression": unused_suppression,
}
FIXABLE = frozenset(FIXERS)


def fix_of(d: Diagnostic, sources: dict[str, str]) -> Fix | None:
    fixer = FIXERS.get(d.code)
    text = sources.get(d.span.file) if d.span is not None else None
    return fixer(d, text) if fixer is not None and text is not None else None


def attach(report: Report) -> Report:
    """`report` with each finding's fix attached, where it has one."""
    out = Report(sources=report.sources)
    for d in report.diagnostics:
        fix = fix_of(d, report.sources) if d.fix is None else d.fix
        out.diagnostics.append(d if fix is None else d._replace(fix=fix))
    return out


def _offset(starts: list[int], line: int, col: int) -> int:
    return starts[line - 1] + col - 1 if line <= len(starts) else starts[-1]


def apply_edits(text: str, edits: Iterable[Edit]) -> str:
    """`text` with `edits` applied; an edit overlapping one before it (in text order) is left
    for the next pass."""
    starts = [0]
    for line in text.split("\n"):
        starts.append(starts[-1] + len(line) + 1)
    spans = sorted({(_offset(starts, e.span.line, e.span.col), _offset(starts, e.span.end_line, e.span.end_col),
                     e.content) for e in edits})
    out, at = [], 0
    for start, end, content in spans:
        if start < at:
            continue
        out += [text[at:start], content]
        at = end
    return "".join(out) + text[at:]


def fix_text(text: str, path: str, settings: "Settings | None" = None, *, root: str | None = None,
             allow: tuple[str, ...] = ()) -> str:
    """`text` (the file at `path`) with every fix of its own findings applied, pass after pass
    until none is left: applying it to its result changes nothing."""
    from hvconf.lint.driver import check_text

    for _ in range(MAX_PASSES):
        report = check_text(text, path, settings, root=root, allow=allow)
        own = report.sources.get(_display(path))
        edits = [e for d in report.diagnostics if d.fix is not None for e in d.fix.edits
                 if e.span.file == _display(path)]
        if not edits or own is None:
            break
        fixed = apply_edits(text, edits)
        if fixed == text:
            break
        text = fixed
    return text


def _display(path: str) -> str:
    from hvconf.syntax.loader import display_path

    return display_path(Path(os.path.abspath(path)))


def unified_diff(before: str, after: str, name: str) -> str:
    return "".join(difflib.unified_diff(before.splitlines(keepends=True), after.splitlines(keepends=True),
                                        f"a/{name}", f"b/{name}"))
