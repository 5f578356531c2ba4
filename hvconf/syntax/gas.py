"""The files a GNU as guest source reads, found before `as` runs.

`as` reads what `.include` and `.incbin` name (GNU as manual, "Assembler Directives"; it
looks for a relative name in its working folder, then in each `-I` folder). hvconf runs it in
an empty folder with `-I` the source's own folder (hvconf/emit/guest.py), so a relative name
means that folder, in included files too. `scan` finds every such directive in a source and,
in turn, in what it includes, and refuses at its line a name that is not a plain string (a
macro argument, an escape: hvconf could not know the path) or a path that
hvconf/syntax/paths.py refuses or cannot find. It reads included sources (bounded) but no
`.incbin` file.
Both `check` (hvconf/model/inputs.py) and `build` use it; `build` also checks what `as` did
read (`--MD`), for names this scan cannot see. Tests: tests/test_paths.py.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterator

from hvconf.diagnostics import Span
from hvconf.syntax.loader import display_path
from hvconf.syntax.paths import PathRefused, Scope, folder_of, probe, read_resolved, resolve

# A guest source is a few KiB; bounds one source and, over a scan, all it includes.
MAX_SOURCE_BYTES = 16 << 20

# The directives through which `as` reads a file; pseudo-op names are case-insensitive and
# labels may precede one.
_READ_DIRECTIVE = re.compile(r"(?:[A-Za-z_.$][\w.$]*:\s*)*\.(include|incbin)(?![\w.$])\s*(.*)", re.I | re.S)
# Its file as a plain string: no escapes, no macro argument (`\arg`), nothing to substitute.
_PLAIN_FILE = {"include": re.compile(r'"([^"\\]+)"\s*'), "incbin": re.compile(r'"([^"\\]+)"\s*(?:,.*)?', re.S)}
# Strings, comments (`#` to the end of the line, as on x86 and PowerPC; /* */), statement
# separators (newline, `;`) and the runs of text between them.
_TOKEN = re.compile(r'"(?:[^"\\\n]|\\.)*"?|/\*.*?(?:\*/|\Z)|#[^\n]*|[;\n]|[^"#;/\n]+|/', re.S)


class DirectiveRefused(Exception):
    """A `.include`/`.incbin` hvconf will not let `as` follow, at `span`. `kind` is the
    path's refusal (hvconf/syntax/paths.py), None for a name that is not a plain string."""

    def __init__(self, message: str, kind: str | None, span: Span) -> None:
        super().__init__(f"{span}: {message}")
        self.message = message
        self.kind = kind
        self.span = span


def statements(text: str) -> Iterator[tuple[int, int, str]]:
    """(line, column, text) of each statement of a GNU as source, without comments."""
    line, col, start = 1, 1, None
    parts: list[str] = []
    for m in _TOKEN.finditer(text):
        token = m.group(0)
        if token in (";", "\n"):
            if start is not None:
                yield start[0], start[1], "".join(parts)
            parts, start = [], None
        elif not token.startswith(("#", "/*")):
            if start is None and token.strip():
                lead = len(token) - len(token.lstrip())
                start = (line, col + lead)
            parts.append(token)
        newlines = token.count("\n")
        line, col = (line + newlines, len(token) - token.rfind("\n")) if newlines else (line, col + len(token))
    if start is not None:
        yield start[0], start[1], "".join(parts)


def scan(source: Path, text: str, scope: Scope) -> tuple[set[str], list[DirectiveRefused]]:
    """The real paths of what `source` (with `text`) reads through `.include`/`.incbin`,
    every included file scanned in turn, each once; and every directive refused (a name
    that is not a plain string, a path hvconf/syntax/paths.py refuses, a missing file)."""
    search = folder_of(source)  # the -I folder: relative names resolve here, in nested files too
    found: set[str] = set()
    refused: list[DirectiveRefused] = []
    todo = [(source, text)]
    budget = MAX_SOURCE_BYTES  # over all included text, so includes cannot multiply the scan
    while todo:
        file, body = todo.pop()
        shown = display_path(Path(os.path.abspath(file)))
        for line, col, statement in statements(body):
            m = _READ_DIRECTIVE.fullmatch(statement.strip())
            if m is None:
                continue
            directive, operand = m.group(1).lower(), m.group(2).strip()
            span = Span(shown, line, col, line, col + len(statement.strip()))
            try:
                real = _target(directive, operand, search, scope, span)
                if real in found:
                    continue
                found.add(real)
                if directive == "include":
                    data = _included(real, scope, span)
                    budget -= len(data)
                    if budget < 0:
                        raise DirectiveRefused(f"the guest source includes more than {MAX_SOURCE_BYTES} bytes",
                                               None, span)
                    todo.append((Path(real), data.decode("utf-8", errors="replace")))
            except DirectiveRefused as err:
                refused.append(err)
    return found, refused


def _target(directive: str, operand: str, search: Path, scope: Scope, span: Span) -> str:
    """The real path a directive names."""
    plain = _PLAIN_FILE[directive].fullmatch(operand)
    if plain is None:
        raise DirectiveRefused(f"the file of `.{directive}` must be a plain string (\"FILE\", no escapes or "
                               "macro arguments) so that hvconf can check it before `as` reads it", None, span)
    name = plain.group(1)
    try:
        real, _ = resolve(search / name, scope)  # an absolute name replaces `search`
        probe(real)
    except PathRefused as err:
        raise DirectiveRefused(f"`.{directive} \"{name}\"`: {err.reason}", err.kind, span) from None
    return real


def _included(real: str, scope: Scope, span: Span) -> bytes:
    try:
        return read_resolved(real, scope, MAX_SOURCE_BYTES)
    except PathRefused as err:
        raise DirectiveRefused(f"cannot read the included file: {err.reason}", err.kind, span) from None
