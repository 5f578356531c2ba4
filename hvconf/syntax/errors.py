"""Turn lark's parse exceptions into diagnostics users can act on.

Terminal names become words ("'{'", "a number"); an unexpected name where a
keyword was expected gets a "did you mean". Nothing from lark leaks past
this module. Tested by tests/test_syntax.py.
"""

from __future__ import annotations

import difflib
import re
from typing import cast

from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from hvconf.diagnostics import Diagnostic, Severity, Span

_WORDS = {
    "NAME": "a name", "INT": "a number", "STRING": "a string",
    "LBRACE": "'{'", "RBRACE": "'}'", "LSQB": "'['", "RSQB": "']'", "COMMA": "','",
    "$END": "end of file",
}
# Statement keywords inside `vm { }`: listed once in a message instead of one by one.
_STATEMENTS = frozenset({
    "ARCH", "KVM", "MEMORY", "VCPUS", "THREADS", "HTAB", "RMA", "MMU", "IRQCHIP", "PIT", "CONSOLE",
    "KERNEL", "CMDLINE", "INITRD", "GUEST", "HCALLS", "RTAS", "CAP", "TCE", "HYPERVISOR", "PV_FEATURES",
})


def _word(terminal: str) -> str:
    return _WORDS.get(terminal, f"'{terminal.lower()}'")


def _expected(terminals: set[str]) -> tuple[str, list[str]]:
    """A phrase for what was expected, and the keywords a typo could be close to."""
    keywords = sorted(t.lower() for t in terminals if t not in _WORDS)
    names = set(terminals)
    parts: list[str] = []
    if _STATEMENTS <= names:
        parts.append("a statement")
        names -= _STATEMENTS
    parts += sorted(_word(t) for t in names)
    if len(parts) > 1:
        phrase = ", ".join(parts[:-1]) + " or " + parts[-1]
    else:
        phrase = parts[0] if parts else "nothing more"
    return phrase, keywords


def _found(token_type: str, value: str) -> str:
    if token_type == "$END":
        return "end of file"
    if token_type in ("NAME", "INT", "STRING"):
        return f"{_WORDS[token_type][2:] if token_type != 'INT' else 'number'} '{value}'"
    return f"'{value}'"


def _word_at(text: str, pos: int) -> str:
    m = re.compile(r"[A-Za-z0-9_]+").match(text, pos)
    return m.group(0) if m else ""


def _end_of(text: str, file: str) -> Span:
    """Just after the last non-blank character: where the missing piece belongs."""
    body = text.rstrip()
    line = body.count("\n") + 1
    col = len(body) - (body.rfind("\n") + 1) + 1
    return Span(file, line, col, line, col + 1)


def diagnostic_for(err: UnexpectedInput, file: str, text: str = "") -> Diagnostic:
    line, col = max(getattr(err, "line", 1) or 1, 1), max(getattr(err, "column", 1) or 1, 1)
    if isinstance(err, UnexpectedCharacters):
        ch = err.char
        span = Span(file, line, col, line, col + 1)
        if ch == '"':
            return Diagnostic("syntax-error", Severity.ERROR, "unterminated string", span,
                              help="strings end on the same line with '\"'")
        if ch.isdigit():
            # lark declares pos_in_stream = None on the base class; UnexpectedCharacters sets the int.
            word = _word_at(text, cast(int, err.pos_in_stream))
            return Diagnostic("syntax-error", Severity.ERROR, f"invalid number '{word}'",
                              Span(file, line, col, line, col + max(len(word), 1)),
                              help="numbers are decimal, 0x hex or 0b binary, optionally with a "
                                   "K, M, G, T or P suffix (powers of 1024)")
        shown = repr(ch)[1:-1] if not ch.isprintable() or ch == "'" else ch
        return Diagnostic("syntax-error", Severity.ERROR, f"unexpected character '{shown}'", span)
    if isinstance(err, UnexpectedToken):
        tok = err.token
        expected_phrase, keywords = _expected(set(err.expected))
        end_col = tok.end_column if getattr(tok, "end_column", None) and tok.end_line == line else col + 1
        span = Span(file, line, col, line, max(end_col, col + 1))
        if tok.type == "$END":
            return Diagnostic("syntax-error", Severity.ERROR,
                              f"unexpected end of file, expected {expected_phrase}", _end_of(text, file))
        message = f"expected {expected_phrase}, found {_found(tok.type, str(tok))}"
        help_ = None
        if tok.type == "NAME" and keywords:
            close = difflib.get_close_matches(str(tok), keywords, n=1, cutoff=0.6)
            if close:
                code = "unknown-keyword"
                message = f"unknown keyword '{tok}'"
                help_ = f"did you mean '{close[0]}'?"
                return Diagnostic(code, Severity.ERROR, message, span, help=help_)
            if _STATEMENTS <= set(err.expected):
                return Diagnostic("unknown-keyword", Severity.ERROR, f"unknown statement '{tok}'", span,
                                  help="statements are: " + ", ".join(sorted(t.lower() for t in _STATEMENTS)))
        return Diagnostic("syntax-error", Severity.ERROR, message, span, help=help_)
    if isinstance(err, UnexpectedEOF):
        phrase, _ = _expected(set(err.expected))
        return Diagnostic("syntax-error", Severity.ERROR, f"unexpected end of file, expected {phrase}",
                          _end_of(text, file))
    return Diagnostic("syntax-error", Severity.ERROR, str(err).splitlines()[0], Span(file, line, col, line, col + 1))
