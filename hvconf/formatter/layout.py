"""Lay an AST out as rows: one output line of code each, with its tokens.

Every token of the source lands in exactly one row, written as it was typed
(numbers, strings and names are never re-spelt), so comments can be placed
by token afterwards (hvconf/formatter/text.py). This module decides what goes on
a line; text.py decides spacing between lines. Tested by tests/test_fmt.py.
"""

from __future__ import annotations

import bisect
from typing import cast

from hvconf.syntax.comments import line_starts
from hvconf.diagnostics import Span
from hvconf.record import Record, positional
from hvconf.syntax import ast
from hvconf.syntax.parser import lex

WIDTH = 100  # a block is written on one line only if that line fits
INDENT = "    "


@positional  # one per token
class Tok(Record):
    """A token of the source: its terminal name, text and place."""

    __slots__ = ("type", "text", "start", "end")
    type: str
    text: str
    start: int  # offset in the text
    end: int



def tokens(text: str) -> list[Tok]:
    """The tokens of `text`, by the grammar's own lexer (comments and blanks dropped)."""
    # lark types token positions Optional (hand-made tokens lack them); its lexer sets them.
    return [Tok(t.type, str(t), cast(int, t.start_pos), cast(int, t.end_pos)) for t in lex(text)]


class Row(Record):
    __slots__ = ("depth", "first", "last", "head", "rest", "align", "opens", "closes", "vm_start", "vm_end")
    _defaults = {"rest": "", "align": None, "opens": False, "closes": False, "vm_start": False, "vm_end": False}
    depth: int
    first: int  # index of the row's first token
    last: int  # index of its last token
    head: str
    rest: str  # rows of one `align` kind start `rest` in one column
    align: str | None
    opens: bool  # ends with the `{` of a block laid out over several rows
    closes: bool  # the `}` of such a block
    vm_start: bool  # first row of a top-level vm
    vm_end: bool  # last row of a top-level vm


class Layout:
    """Rows for one parsed file: `Layout(text, tree, tokens).rows`."""

    def __init__(self, text: str, tree: ast.SourceFile, toks: list[Tok], comment_offsets: list[int]) -> None:
        self.tokens = toks
        self.starts = [t.start for t in toks]
        self.line_offsets = line_starts(text)
        self.comment_offsets = comment_offsets
        self.rows: list[Row] = []
        items = list(tree.items)
        # `format` first, then includes, then VMs; each kind keeps its order.
        rank = {ast.FormatDecl: 0, ast.Include: 1, ast.VmDecl: 2}
        for item in sorted(items, key=lambda it: rank[type(it)]):
            if isinstance(item, ast.VmDecl):
                self._vm(item)
            else:
                i, j = self._range(item.span)
                self.rows.append(Row(0, i, j, self._join(i, j)))
        self._check_coverage()

    # -- tokens ------------------------------------------------------------------
    def _offset(self, line: int, col: int) -> int:
        return self.line_offsets[line - 1] + col - 1

    def _range(self, span: Span) -> tuple[int, int]:
        """Indices of the first and last token inside `span`."""
        start = self._offset(span.line, span.col)
        end = self._offset(span.end_line, span.end_col)
        return bisect.bisect_left(self.starts, start), bisect.bisect_left(self.starts, end) - 1

    def _join(self, i: int, j: int) -> str:
        """Tokens i..j on one line: one space between, none inside `[ ]` or before `,`."""
        out: list[str] = []
        for k in range(i, j + 1):
            tok = self.tokens[k]
            if out and self.tokens[k - 1].type != "LSQB" and tok.type not in ("RSQB", "COMMA"):
                out.append(" ")
            out.append(tok.text)
        return "".join(out)

    def _brace(self, i: int, j: int) -> int:
        """Index of the first `{` in tokens i..j."""
        return next(k for k in range(i, j + 1) if self.tokens[k].type == "LBRACE")

    def _has_comments(self, lbrace: int, rbrace: int) -> bool:
        lo, hi = self.starts[lbrace], self.starts[rbrace]
        k = bisect.bisect_left(self.comment_offsets, lo)
        return k < len(self.comment_offsets) and self.comment_offsets[k] < hi

    def _check_coverage(self) -> None:
        # Losing or repeating a token would change the meaning: refuse rather than write it.
        expected = 0
        for first, last in sorted((r.first, r.last) for r in self.rows):
            if first != expected or last < first:
                raise AssertionError(f"formatter lost track of the token at offset {self.starts[expected]}")
            expected = last + 1
        if expected != len(self.tokens):
            raise AssertionError("formatter did not place every token")

    # -- statements --------------------------------------------------------------
    def _vm(self, vm: ast.VmDecl) -> None:
        i, j = self._range(vm.span)
        lb = self._brace(i, j)
        if not vm.body and not self._has_comments(lb, j):
            self.rows.append(Row(0, i, j, self._join(i, lb) + " }", vm_start=True, vm_end=True))
            return
        self.rows.append(Row(0, i, lb, self._join(i, lb), opens=True, vm_start=True))
        for stmt in vm.body:
            self._statement(stmt, 1)
        self.rows.append(Row(0, j, j, "}", closes=True, vm_end=True))

    def _statement(self, stmt: ast.Statement, depth: int) -> None:
        i, j = self._range(stmt.span)
        if isinstance(stmt, (ast.Setting, ast.Guest)):
            self.rows.append(Row(depth, i, j, self.tokens[i].text, self._join(i + 1, j), align="setting"))
        elif isinstance(stmt, ast.Cap) and not any(t.type == "LBRACE" for t in self.tokens[i:j + 1]):
            self.rows.append(Row(depth, i, j, self._join(i, j)))
        elif isinstance(stmt, (ast.Cap, ast.Tce)):
            items = stmt.args if isinstance(stmt, ast.Cap) else stmt.items
            self._block(depth, i, j, [self._range(kv.span) for kv in items], None)
        elif isinstance(stmt, ast.Hcalls):
            self._block(depth, i, j, [self._range(op.span) for op in stmt.ops], "hcall")
        elif isinstance(stmt, ast.Rtas):
            self._block(depth, i, j, [self._range(t.span) for t in stmt.tokens], "rtas")
        elif isinstance(stmt, ast.Hypervisor):
            self._block(depth, i, j, [self._range(it.span) for it in stmt.items], None)
        else:  # PvFeatures
            self._block(depth, i, j, [self._range(n.span) for n in stmt.names], None)

    def _block(self, depth: int, i: int, j: int, items: list[tuple[int, int]], align: str | None) -> None:
        """`header { items }` on one line when short, else one item per row.

        hcalls and rtas lines are operations applied in order, so more than one
        goes on rows of their own; key/value, flag and name lists stay on one
        line while they fit. A comment inside a block always opens it up.
        """
        lb = self._brace(i, j)
        inner = "  ".join(self._join(a, b) for a, b in items)
        one_line = f"{self._join(i, lb)} {inner} }}" if inner else f"{self._join(i, lb)} }}"
        fits = len(INDENT * depth) + len(one_line) <= WIDTH
        if fits and not self._has_comments(lb, j) and (align is None or len(items) <= 1):
            self.rows.append(Row(depth, i, j, one_line))
            return
        self.rows.append(Row(depth, i, lb, self._join(i, lb), opens=True))
        for a, b in items:
            split = a + 2 if align == "rtas" else a + 1  # `token "NAME"` | VALUE, `enable` | REFS
            if align is None:
                self.rows.append(Row(depth + 1, a, b, self._join(a, b)))
            else:
                self.rows.append(Row(depth + 1, a, b, self._join(a, split - 1), self._join(split, b), align=align))
        self.rows.append(Row(depth, j, j, "}", closes=True))
