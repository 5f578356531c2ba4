"""`hvconf fmt`: rewrite .hv text in the one canonical layout, comments kept.

The layout (docs/fmt.md has it with examples): `format` first, then the
`include`s, then the VMs, one blank line around each VM; 4-space indents and
one statement per line; consecutive settings (and `hcalls` actions, `rtas`
numbers) start their values in one column; `hcalls`/`rtas` blocks with more
than one line, and any block holding a comment or too long for 100 columns,
get one item per line, others stay on one line (`{ a 1  b 2 }`); trailing
comments of consecutive lines line up two spaces after the longest. Numbers,
strings and names are copied as written; blank lines inside are kept (one
at most). Never changes meaning: tests/test_fmt.py compares IR and plans.
"""

from __future__ import annotations

from hvconf.syntax.comments import comments
from hvconf.diagnostics import HvconfError, Report
from hvconf.formatter.layout import Layout, tokens
from hvconf.formatter.text import render
from hvconf.syntax import ast
from hvconf.syntax.parser import parse


def format_source(text: str, tree: ast.SourceFile) -> str:
    """`text` in the canonical layout; `tree` is its AST (hvconf.syntax.parser.parse)."""
    toks = tokens(text)
    found = comments(text)
    layout = Layout(text, tree, toks, [c.offset for c in found])
    return render(layout.rows, text, toks, found)


def format_text(text: str, file: str = "<text>") -> str:
    """`text` in the canonical layout; raises HvconfError when it does not parse."""
    report = Report()
    tree = parse(text, file, report)
    if tree is None:
        raise HvconfError(report)
    return format_source(text, tree)


__all__ = ["format_source", "format_text"]
