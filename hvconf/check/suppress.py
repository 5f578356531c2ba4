"""Inline suppressions: `# hvconf: ignore[code, ...]` comments hide findings.

A trailing comment covers diagnostics that start on its line; a comment on a
line of its own covers the next statement, a whole block included. A code
that hides nothing, is unknown or cannot be suppressed becomes an
`unused-suppression` warning at that code. Works on a finished report, never
on the IR; apply it once per run. Tested by tests/test_suppress.py.
"""

from __future__ import annotations

import bisect
import heapq
import re
from typing import Iterable, Iterator, Mapping

from hvconf.syntax.comments import Comment, comments
from hvconf.diagnostics import Diagnostic, Report, Severity, Span
from hvconf.syntax import ast
from hvconf.syntax.loader import Program

CODE = "unused-suppression"
_PRAGMA = re.compile(r"#\s*hvconf\s*:")
_IGNORE = re.compile(r"\s*ignore\[([^\]\n]*)\]")
_WORD = re.compile(r"[^\s,]+")
# Found while reading the text, before anything could be suppressed.
UNSUPPRESSIBLE = {
    "syntax-error": "a file with a syntax error is not parsed, so its comments are never read",
    "unknown-keyword": "a file with an unknown keyword is not parsed, so its comments are never read",
    "invalid-utf8": "a file that is not UTF-8 is not read, so its comments are never seen",
}
# Refusals a definition under review must not hide from its reviewer (docs/robustness.md).
REFUSALS = {
    "path-outside-project": "a definition must not hide that it names a file outside its project (the file is "
                            "not read either way); allow its folder with --allow-path DIR instead",
}

Position = tuple[int, int]  # (line, col), as in spans


class Suppression:
    """One code of one `ignore[...]`, and the region of its file it covers. A plain class, not
    a Record: `used` is set as findings are matched (docs/architecture.md#value-types)."""

    __slots__ = ("code", "span", "start", "end", "trailing", "used")

    def __init__(self, code: str, span: Span, start: Position, end: Position, trailing: bool) -> None:
        self.code = code
        self.span = span  # the code's text inside the comment
        self.start = start
        self.end = end  # exclusive
        self.trailing = trailing
        self.used = False

    def covers(self, d: Diagnostic) -> bool:
        s = d.span
        return (s is not None and s.file == self.span.file and d.code == self.code
                and self.start <= (s.line, s.col) < self.end)


# The field holding the lines of each block statement.
_BLOCK_LINES: dict[type, str] = {ast.Hcalls: "ops", ast.Rtas: "tokens", ast.Cap: "args", ast.Tce: "items",
                                 ast.Hypervisor: "items", ast.PvFeatures: "names"}


def _statement_spans(tree: ast.SourceFile) -> Iterator[Span]:
    """Every node a comment line can stand above: items, statements, block lines."""
    for item in tree.items:
        yield item.span
        for stmt in item.body if isinstance(item, ast.VmDecl) else ():
            yield stmt.span
            yield from (line.span for line in getattr(stmt, _BLOCK_LINES.get(type(stmt), ""), ()))


def statement_spans(tree: ast.SourceFile) -> list[Span]:
    """What suppressions need of a tree: the spans of its statements (the lint cache keeps
    these instead of the tree, hvconf/lint/cache.py)."""
    return list(_statement_spans(tree))


class _Scopes:
    """What a comment on a line of its own covers: the outermost node that starts next."""

    def __init__(self, spans: Iterable[Span]) -> None:
        nodes = sorted(((s.line, s.col), (-s.end_line, -s.end_col)) for s in spans)
        self.starts = [start for start, _ in nodes]
        self.nodes = [(start, (-neg[0], -neg[1])) for start, neg in nodes]

    def after(self, where: Position) -> tuple[Position, Position] | None:
        k = bisect.bisect_right(self.starts, where)
        return self.nodes[k] if k < len(self.nodes) else None


def _pragmas(file: str, comment: Comment, scopes: _Scopes,
             problems: list[Diagnostic]) -> Iterator[Suppression]:
    """The suppressions one comment holds; malformed ones go to `problems`."""
    pragma = _PRAGMA.search(comment.text)
    if pragma is None:
        return
    whole = Span(file, comment.line, comment.col, comment.line, comment.col + len(comment.text))
    ignore = _IGNORE.match(comment.text, pragma.end())
    if ignore is None:
        problems.append(Diagnostic(CODE, Severity.WARNING, "malformed suppression: nothing is suppressed", whole,
                                   help="write `# hvconf: ignore[CODE]` or `# hvconf: ignore[CODE1, CODE2]`"))
        return
    words = list(_WORD.finditer(ignore.group(1)))
    if not words:
        problems.append(Diagnostic(CODE, Severity.WARNING, "suppression names no code", whole,
                                   help="name the codes to suppress inside the brackets"))
        return
    if comment.own_line:
        scope = scopes.after((comment.line, comment.col))
        start, end = scope if scope else ((0, 0), (0, 0))  # nothing follows: covers nothing
    else:
        start, end = (comment.line, 1), (comment.line + 1, 1)
    for w in words:
        col = comment.col + ignore.start(1) + w.start()
        yield Suppression(w.group(), Span(file, comment.line, col, comment.line, col + len(w.group())),
                          start, end, trailing=not comment.own_line)


def suppressions(file: str, text: str, tree: ast.SourceFile | list[Span]) -> tuple[list[Suppression],
                                                                                 list[Diagnostic]]:
    """The suppressions of one parsed file (its tree, or its statement_spans), and warnings for
    malformed ones."""
    found: list[Suppression] = []
    problems: list[Diagnostic] = []
    if "hvconf" not in text:  # the common case: no comment to read
        return found, problems
    scopes = _Scopes(tree if isinstance(tree, list) else _statement_spans(tree))
    for comment in comments(text):
        found += _pragmas(file, comment, scopes, problems)
    return found, problems


def _unused(s: Suppression) -> Diagnostic:
    from hvconf.codes import closest_code, known_codes, stage_of

    def warn(message: str, help: str) -> Diagnostic:
        return Diagnostic(CODE, Severity.WARNING, message, s.span, help=help)

    if s.code in UNSUPPRESSIBLE or s.code in REFUSALS:
        return warn(f"'{s.code}' cannot be suppressed", {**UNSUPPRESSIBLE, **REFUSALS}[s.code])
    if s.code not in known_codes():
        guess = closest_code(s.code)
        return warn(f"unknown code '{s.code}' in suppression",
                    f"did you mean '{guess}'?" if guess else "docs/diagnostics.md lists every code")
    if stage_of(s.code) == "build":
        return warn(f"'{s.code}' cannot be suppressed", "build reports it after suppressions have been applied")
    if s.start == (0, 0):
        return warn(f"nothing follows this suppression of '{s.code}'", "move it above the statement it is for")
    where = "on this line" if s.trailing else "in the statement below"
    return warn(f"nothing {where} reports '{s.code}'", "remove the code from the suppression")


def apply(report: Report, sources: Mapping[str, str],
          trees: Mapping[str, ast.SourceFile] | None = None,
          spans: Mapping[str, list[Span] | None] | None = None) -> Report:
    """`report` without the findings its files' suppressions cover, plus an
    `unused-suppression` warning for each code that covered nothing.

    `sources` maps file names (as in spans) to their text; `trees` their ASTs, or `spans`
    their statement_spans (None: the file did not parse), parsed again from `sources` when
    neither has the file. Files that do not parse are skipped.
    """
    from hvconf.syntax.parser import parse

    found: list[Suppression] = []
    new: list[Diagnostic] = []
    for file, text in sources.items():
        if spans and file in spans and not (trees and file in trees):
            tree: ast.SourceFile | list[Span] | None = spans[file]
        else:
            tree = (trees or {}).get(file) or (parse(text, file, Report()) if "hvconf" in text else None)
        if tree is not None:
            more, problems = suppressions(file, text, tree)
            found += more
            new += problems
    if not found and not new:
        return report

    ordinary = [s for s in found if s.code != CODE and s.code not in REFUSALS]
    kept = [d for d, hide in zip(report.diagnostics, _hidden(report.diagnostics, ordinary)) if not hide]
    new += [_unused(s) for s in ordinary if not s.used] + [_unused(s) for s in found if s.code in REFUSALS]
    # `ignore[unused-suppression]` may hide the warnings above, and is itself checked.
    meta = [s for s in found if s.code == CODE]
    new = [d for d, hide in zip(new, _hidden(new, meta)) if not hide] + [_unused(s) for s in meta if not s.used]
    return Report(kept + new, dict(report.sources))


def _hidden(diagnostics: list[Diagnostic], pool: list[Suppression]) -> list[bool]:
    """For each diagnostic, whether a suppression of `pool` covers it; marks those `used`.

    One sweep per (file, code) over the diagnostics' positions in order, with the regions that
    have started and not ended on a heap: every diagnostic against every suppression made a file
    of N VMs, each with its finding and its comment, quadratic."""
    regions: dict[tuple[str, str], list[Suppression]] = {}
    for s in pool:
        regions.setdefault((s.span.file, s.code), []).append(s)
    points: dict[tuple[str, str], list[tuple[Position, int]]] = {}
    for i, d in enumerate(diagnostics):
        if d.span is not None and (d.span.file, d.code) in regions:
            points.setdefault((d.span.file, d.code), []).append(((d.span.line, d.span.col), i))
    hidden = [False] * len(diagnostics)
    for key, found in points.items():
        pending = sorted(regions[key], key=lambda s: s.start)
        started: list[tuple[Position, int]] = []  # a heap of (end, index in pending)
        unmarked: list[Suppression] = []  # started since the last diagnostic, not yet used
        k = 0
        for where, i in sorted(found):
            while k < len(pending) and pending[k].start <= where:
                heapq.heappush(started, (pending[k].end, k))
                unmarked.append(pending[k])
                k += 1
            while started and started[0][0] <= where:
                heapq.heappop(started)
            if started:  # every region left on the heap began at or before `where` and ends after it
                hidden[i] = True
                for s in unmarked:
                    s.used = s.used or where < s.end
            unmarked.clear()  # used now, or ended before `where` (so before every later point)
    return hidden


def apply_to_programs(report: Report, programs: Iterable[Program]) -> Report:
    """`apply` with the loader's trees, for compiler.check. A file parsed by an
    earlier run of the same Loader is not in this report's sources: read it again."""
    files = {f.display: f for p in programs for f in p.files if f.tree is not None}
    sources = dict(report.sources)
    for display, f in files.items():
        if display not in sources:
            try:
                sources[display] = f.path.read_text(encoding="utf-8")
            except (OSError, UnicodeError):
                continue
    trees = {display: f.tree for display, f in files.items() if f.tree is not None}
    result = apply(report, sources, trees)
    result.sources.update(sources)
    return result
