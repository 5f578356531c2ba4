"""Spans, diagnostics and the report every stage collects them into.

A Diagnostic has a stable kebab-case code, a severity, a span and optional
notes and help; stages append to a Report instead of raising, so every
finding of a run is shown at once. Rendering lives in hvconf/lint/render.py.
Tested by tests/test_diagnostics.py.
"""

from __future__ import annotations

from enum import Enum
from functools import lru_cache
from typing import Iterable, Iterator

from hvconf.record import Record, positional


@positional  # one per token
class Span(Record):
    """A region of one source file; lines and columns count from 1, end is exclusive."""

    __slots__ = ("file", "line", "col", "end_line", "end_col")
    file: str
    line: int
    col: int
    end_line: int
    end_col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"

    @classmethod
    def point(cls, file: str, line: int = 1, col: int = 1) -> "Span":
        return cls(file, line, col, line, col + 1)


class Severity(str, Enum):
    ERROR = "error"
    WARNING = "warning"
    NOTE = "note"


class Note(Record):
    __slots__ = ("message", "span")
    _defaults = {"span": None}
    message: str
    span: Span | None


class Edit(Record):
    """Replace the text of `span` with `content` (an empty span inserts, empty content deletes)."""

    __slots__ = ("span", "content")
    span: Span
    content: str


class Fix(Record):
    """The exact edit a finding's help states, which `hvconf check --fix` applies (hvconf/lint/fixes.py)."""

    __slots__ = ("message", "edits")
    message: str
    edits: tuple[Edit, ...]


class Diagnostic(Record):
    __slots__ = ("code", "severity", "message", "span", "notes", "help", "fix")
    _defaults = {"notes": (), "help": None, "fix": None}
    code: str
    severity: Severity
    message: str
    span: Span | None
    notes: tuple[Note, ...]
    help: str | None
    fix: Fix | None

    @property
    def sort_key(self) -> tuple[str, int, int, str, str]:
        s = self.span
        return (s.file if s else "", s.line if s else 0, s.col if s else 0, self.code, self.message)


class Report:
    """Diagnostics collected by a run, plus the source texts needed to show them."""

    __slots__ = ("diagnostics", "sources", "_keys", "_indexed", "_of")

    def __init__(self, diagnostics: list[Diagnostic] | None = None, sources: dict[str, str] | None = None) -> None:
        self.diagnostics: list[Diagnostic] = diagnostics if diagnostics is not None else []
        self.sources: dict[str, str] = sources if sources is not None else {}
        # add_new's index: (code, span, message) of the first `_indexed` diagnostics of `_of`.
        self._keys: set[tuple[str, Span | None, str]] = set()
        self._indexed = 0
        self._of: list[Diagnostic] | None = None

    def __repr__(self) -> str:
        return f"Report(diagnostics={self.diagnostics!r}, sources={list(self.sources)!r})"

    def add(self, diagnostic: Diagnostic) -> None:
        self.diagnostics.append(diagnostic)

    def add_new(self, diagnostic: Diagnostic) -> bool:
        """Add `diagnostic` unless the report has one with the same code, span and message;
        True if added. The index grows with the list (callers may append to `diagnostics`
        or replace it), so adding the findings of N VMs one VM at a time stays linear."""
        if self._of is not self.diagnostics or self._indexed > len(self.diagnostics):
            self._keys, self._indexed, self._of = set(), 0, self.diagnostics
        for d in self.diagnostics[self._indexed:]:
            self._keys.add((d.code, d.span, d.message))
        key = (diagnostic.code, diagnostic.span, diagnostic.message)
        if key in self._keys:
            self._indexed = len(self.diagnostics)
            return False
        self._keys.add(key)
        self.diagnostics.append(diagnostic)
        self._indexed = len(self.diagnostics)
        return True

    def error(self, code: str, message: str, span: Span | None, *,
              notes: Iterable[Note] = (), help: str | None = None) -> None:
        self.add(Diagnostic(code, Severity.ERROR, message, span, tuple(notes), help))

    def warning(self, code: str, message: str, span: Span | None, *,
                notes: Iterable[Note] = (), help: str | None = None) -> None:
        self.add(Diagnostic(code, Severity.WARNING, message, span, tuple(notes), help))

    def extend(self, other: "Report") -> None:
        self.diagnostics.extend(other.diagnostics)
        self.sources.update(other.sources)

    def __iter__(self) -> Iterator[Diagnostic]:
        return iter(sorted(self.diagnostics, key=lambda d: d.sort_key))

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self if d.severity is Severity.ERROR]

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self if d.severity is Severity.WARNING]

    @property
    def has_errors(self) -> bool:
        return any(d.severity is Severity.ERROR for d in self.diagnostics)

    def codes(self) -> list[str]:
        return [d.code for d in self]


class HvconfError(Exception):
    """The one exception the public API raises for bad input; it carries the report."""

    def __init__(self, report: Report) -> None:
        first = report.errors[0] if report.errors else None
        super().__init__(f"{first.span}: {first.message}" if first else "hvconf failed")
        self.report = report


def close_matches(word: str, candidates: Iterable[str], n: int = 3, cutoff: float = 0.6) -> list[str]:
    """difflib.get_close_matches for a did-you-mean help, remembered: one misspelling repeated
    in many places (a file of 500 VMs with the same wrong cap name) is compared with the
    candidates once rather than once per place."""
    return list(_close_matches(word, tuple(candidates), n, cutoff))


@lru_cache(maxsize=1024)
def _close_matches(word: str, candidates: tuple[str, ...], n: int, cutoff: float) -> tuple[str, ...]:
    import difflib  # only when a name is unknown

    return tuple(difflib.get_close_matches(word, candidates, n=n, cutoff=cutoff))
