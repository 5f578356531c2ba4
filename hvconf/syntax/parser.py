"""Parse .hv text into an AST, reporting syntax errors as diagnostics.

The lark parser is the one cached object of the compiler (built once per
process; lark's own cache keeps the LALR tables between processes).
Tested by tests/test_syntax.py.
"""

from __future__ import annotations

from functools import lru_cache

from lark import Lark
from lark.exceptions import UnexpectedInput

from hvconf.diagnostics import Report, Span
from hvconf.resources import grammar_path
from hvconf.syntax import ast
from hvconf.syntax.build import AstBuilder
from hvconf.syntax.errors import diagnostic_for


@lru_cache(maxsize=1)
def parser() -> Lark:
    return Lark(grammar_path().read_text(encoding="utf-8"), parser="lalr",
                propagate_positions=True, maybe_placeholders=True, cache=True)


def decode(data: bytes, file: str, report: Report) -> str | None:
    """UTF-8 text of a source file, or None with an `invalid-utf8` diagnostic."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        before = data[: err.start]
        line = before.count(b"\n") + 1
        col = len(before) - (before.rfind(b"\n") + 1) + 1
        report.error("invalid-utf8", f"file is not valid UTF-8 (byte 0x{data[err.start]:02x})",
                     Span(file, line, col, line, col + 1))
        return None


def parse(text: str, file: str, report: Report) -> ast.SourceFile | None:
    """The AST of one file, or None after adding its syntax error to `report`."""
    report.sources[file] = text
    try:
        tree = parser().parse(text)
    except UnexpectedInput as err:
        report.add(diagnostic_for(err, file, text))
        return None
    return AstBuilder(file, report).source_file(tree)
