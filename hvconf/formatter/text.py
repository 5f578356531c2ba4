"""Turn rows and comments into the formatted text: where each comment goes,
which blank lines stay, and the two kinds of column alignment.

A comment alone on its line goes before the row holding the next token; a
comment after code stays at the end of the row holding the token before it.
Nothing here looks at the AST (hvconf/formatter/layout.py did). Tested by tests/test_fmt.py.
"""

from __future__ import annotations

import bisect
import itertools

from hvconf.syntax.comments import Comment
from hvconf.formatter.layout import INDENT, Row, Tok

COMMENT_GAP = 2  # spaces between code and a trailing comment


class _Placed:
    """A row with the comments that belong to it, and the blank line before it (filled in as comments are placed)."""

    __slots__ = ("row", "leading", "leading_blank", "moved", "trailing", "blank", "code", "header")

    def __init__(self, row: Row | None, leading: list[Comment] | None = None, leading_blank: list[bool] | None = None,
                 *, header: bool = False) -> None:
        self.row = row  # None: comments at the end of the file
        self.leading = leading if leading is not None else []  # each with a blank line before it or not
        self.leading_blank = leading_blank if leading_blank is not None else []
        self.moved: list[Comment] = []  # from inside the row: written just above it
        self.trailing: Comment | None = None
        self.blank = False  # before the row (or before `moved`, when there are any)
        self.code = ""
        self.header = header  # the file's opening comments, followed by a blank line

    @property
    def depth(self) -> int:
        return self.row.depth if self.row else 0


def _blank_lines(text: str, tokens: list[Tok], comments: list[Comment]) -> dict[int, bool]:
    """Source offset of each token and comment -> is there a blank line just before it?"""
    spans = sorted([(t.start, t.end) for t in tokens] + [(c.offset, c.end) for c in comments])
    blank: dict[int, bool] = {}
    previous_end = 0
    for start, end in spans:
        blank[start] = text.count("\n", previous_end, start) >= 2 and previous_end > 0
        previous_end = end
    return blank


def _place(rows: list[Row], text: str, tokens: list[Tok], comments: list[Comment]) -> list[_Placed]:
    row_of = [0] * len(tokens)
    for n, row in enumerate(rows):
        for k in range(row.first, row.last + 1):
            row_of[k] = n
    placed = [_Placed(row) for row in rows] + [_Placed(None)]
    blank = _blank_lines(text, tokens, comments)
    starts = [t.start for t in tokens]
    trailing: dict[int, list[Comment]] = {}
    for c in comments:
        before = bisect.bisect_left(starts, c.offset) - 1
        if before >= 0 and not c.own_line:
            trailing.setdefault(row_of[before], []).append(c)
            continue
        after = before + 1
        target = placed[row_of[after]] if after < len(tokens) else placed[-1]
        if target.row is not None and after != target.row.first:
            target.moved.append(c)  # sat between two tokens of one row
        else:
            target.leading.append(c)
            target.leading_blank.append(blank[c.offset])
    for n, found in trailing.items():
        # A row can end in one comment; the others of its source lines go above it.
        placed[n].moved += found[:-1]
        placed[n].trailing = found[-1]
    for p in placed:
        if p.row is not None:
            p.blank = blank[tokens[p.row.first].start]
        p.moved.sort(key=lambda c: c.offset)
    return [_file_header(placed[row_of[0]])] + placed if tokens else placed


def _file_header(first: _Placed) -> _Placed:
    """Comments above the first token and a blank line stay at the top of the file,
    even when `format` or an `include` moves above the item they preceded."""
    follows_blank = first.leading_blank[1:] + [first.blank]
    cut = max((n + 1 for n, blank in enumerate(follows_blank) if blank), default=0)
    header = _Placed(None, first.leading[:cut], first.leading_blank[:cut], header=True)
    first.leading, first.leading_blank = first.leading[cut:], first.leading_blank[cut:]
    if cut and first.leading:
        first.leading_blank[0] = True
    elif cut:
        first.blank = True
    return header


def _force_blank_lines(placed: list[_Placed]) -> None:
    """The rules that do not depend on the source: none after `{` or before `}`,
    none at the top of the file, one around each top-level vm."""
    previous: Row | None = None
    emitted = previous_header = False
    for p in placed:
        row = p.row
        force: bool | None = None
        if not emitted:
            force = False
        elif previous is not None and previous.opens:
            force = False
        elif previous_header:
            force = True
        elif (row is not None and row.vm_start) or (previous is not None and previous.vm_end and p.depth == 0):
            force = True
        if force is not None:
            if p.leading:
                p.leading_blank[0] = force
            elif p.row is not None:
                p.blank = force
        if row is not None and row.closes:
            p.blank = False
        emitted = emitted or bool(p.leading) or row is not None
        previous_header = p.header and bool(p.leading)
        previous = row if row is not None else previous


def _runs(placed: list[_Placed]) -> list[list[_Placed]]:
    """Maximal runs of rows at one depth with no blank line or comment line between them."""
    runs: list[list[_Placed]] = []
    for p in placed:
        if p.row is None:
            continue
        last = runs[-1][-1] if runs else None
        if last is not None and last.depth == p.depth and not p.blank and not p.leading and not p.moved:
            runs[-1].append(p)
        else:
            runs.append([p])
    return runs


def _aligned(rows: list[Row]) -> list[str]:
    """The code of consecutive rows; rows of one `align` kind start their `rest` in one column."""
    out: list[str] = []
    for kind, same in itertools.groupby(rows, key=lambda r: r.align):
        group = list(same)
        width = max((len(r.head) for r in group if r.rest), default=0) if kind else 0
        out += [INDENT * r.depth + (f"{r.head.ljust(width)} {r.rest}" if r.rest else r.head) for r in group]
    return out


def _align(placed: list[_Placed]) -> None:
    for run in _runs(placed):
        rows = [p.row for p in run if p.row is not None]  # a run holds rows only
        for p, code in zip(run, _aligned(rows)):
            p.code = code
        # Trailing comments of a run start in one column, just after its longest commented row.
        column = max((len(p.code) for p in run if p.trailing), default=0) + COMMENT_GAP
        for p in run:
            if p.trailing:
                p.code = p.code.ljust(column) + p.trailing.text


def render(rows: list[Row], text: str, tokens: list[Tok], comments: list[Comment]) -> str:
    placed = _place(rows, text, tokens, comments)
    _force_blank_lines(placed)
    _align(placed)
    out: list[str] = []
    for p in placed:
        comment_indent = INDENT * (p.depth + (1 if p.row is not None and p.row.closes else 0))
        for c, blank in zip(p.leading, p.leading_blank):
            out += [""] * blank + [comment_indent + c.text]
        if p.row is None:
            continue
        out += [""] * p.blank
        out += [INDENT * p.depth + c.text for c in p.moved]
        out.append(p.code)
    return "\n".join(out) + "\n" if out else ""
