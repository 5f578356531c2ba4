"""Parse .hv text into an AST, reporting syntax errors as diagnostics.

The lark parser is the one cached object of the compiler: built once per
process, and its LALR tables kept between processes in hvconf's private
per-user cache (hvconf.resources), keyed on the grammar and the lark and
Python versions. Not lark's own cache: that one is a pickle in the shared
temporary folder, which another local user could plant. Tested by
tests/test_syntax.py and tests/test_startup.py.
"""

from __future__ import annotations

import hashlib
import io
import sys
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

import lark
from lark import Lark, Token
from lark.exceptions import UnexpectedInput
from lark.lexer import LexerThread

from hvconf.diagnostics import Report, Span
from hvconf.resources import grammar_path, read_cached, write_cached
from hvconf.syntax import ast
from hvconf.syntax.build import AstBuilder
from hvconf.syntax.errors import diagnostic_for

# No propagate_positions: AstBuilder.span finds a rule's extent from its tokens.
OPTIONS = {"parser": "lalr", "maybe_placeholders": True}


def _key(grammar: str) -> str:
    """What the saved tables depend on: the grammar, the options, lark's and Python's versions."""
    parts = (grammar, repr(sorted(OPTIONS.items())), lark.__version__, sys.version)
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def cache_entry() -> str:
    """The cache file of this grammar's tables. Named by their key, so two checkouts or
    versions of hvconf with different grammars keep an entry each instead of rebuilding and
    overwriting one entry in turn."""
    return _entry(_key(grammar_path().read_text(encoding="utf-8")))


def _entry(key: str) -> str:
    return f"parser-{key[:16]}.lark"


@lru_cache(maxsize=1)
def parser() -> Lark:
    grammar = grammar_path().read_text(encoding="utf-8")
    key = _key(grammar)
    entry = _entry(key)
    saved = read_cached(entry, key.encode())
    if saved is not None:
        try:
            return Lark.load(io.BytesIO(saved))
        except Exception:  # a damaged entry: build the tables again and overwrite it
            pass
    built = Lark(grammar, **OPTIONS)
    buffer = io.BytesIO()
    built.save(buffer)
    write_cached(entry, key.encode(), buffer.getvalue())
    return built


@lru_cache(maxsize=1)
def _basic_lexer() -> Any:
    # Lark.lex() builds a new BasicLexer on every call for an LALR parser, and a freshly built
    # (strict) parser then re-checks every pair of terminals for collisions with interegular:
    # a third of a second per call. The formatter lexes every file; build it once.
    return parser()._build_lexer()


def lex(text: str) -> Iterator[Token]:
    """The tokens of `text` by the grammar's own lexer (what Lark.lex gives, comments dropped)."""
    return LexerThread.from_text(_basic_lexer(), text).lex(None)


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
