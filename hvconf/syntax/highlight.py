"""A Pygments lexer for .hv files (`pygmentize -l hvconf`, ```hv fences in docs).

Registered through the `pygments.lexers` entry point in pyproject.toml.
Keywords are read from grammar/hvconf.lark's keyword terminals at import, so
the lexer never drifts from the parser. Only Pygments imports this module;
the compiler never does (pygments is not a dependency). Tested by tests/test_lexer.py.
"""

from __future__ import annotations

import re

from pygments.lexer import RegexLexer, bygroups, words  # type: ignore[import-untyped, unused-ignore]
from pygments.token import (  # type: ignore[import-untyped, unused-ignore]
    Comment, Error, Keyword, Name, Number, Punctuation, String, Whitespace)

from hvconf.resources import grammar_path

# `MEMORY.2: /memory(?![A-Za-z0-9_\-])/`: the grammar's keyword terminals.
_KEYWORD_TERMINAL = re.compile(r"^[A-Z_]+(?:\.\d+)?:\s*/([a-z_]+)\(\?!", re.M)
_END = r"(?![A-Za-z0-9_\-])"  # where a keyword or NAME ends, as in the grammar
DECLARATIONS = ("abstract", "vm", "extends")  # shape a file's VMs
NAMESPACE = ("include", "format")  # about the file itself


def grammar_keywords() -> tuple[str, ...]:
    """Every keyword of grammar/hvconf.lark, sorted."""
    return tuple(sorted(set(_KEYWORD_TERMINAL.findall(grammar_path().read_text(encoding="utf-8")))))


KEYWORDS = grammar_keywords()
_STATEMENT_KEYWORDS = tuple(k for k in KEYWORDS if k not in DECLARATIONS + NAMESPACE)
_SUFFIX = r"[KMGTPkmgtp]?(?![A-Za-z0-9_])"  # a size suffix (4K = 4096), as INT in the grammar


class HvconfLexer(RegexLexer):
    """hvconf VM definitions."""

    name = "hvconf"
    aliases = ["hvconf", "hv"]
    filenames = ["*.hv"]
    mimetypes = ["text/x-hvconf"]

    tokens = {
        "root": [
            (r"[ \t\r\n\f]+", Whitespace),
            (r"#\s*hvconf:[^\n]*", Comment.Special),  # inline suppressions: # hvconf: ignore[code]
            (r"#[^\n]*", Comment.Single),
            (r'"', String.Double, "string"),
            # `on vm` is a cap target, not a VM declaration.
            (r"(on)(\s+)(vm)" + _END, bygroups(Keyword, Whitespace, Keyword)),
            (r"(vm|extends)(\s+)([A-Za-z_][A-Za-z0-9_\-]*)", bygroups(Keyword.Declaration, Whitespace, Name.Class)),
            (words(DECLARATIONS, suffix=_END), Keyword.Declaration),
            (words(NAMESPACE, suffix=_END), Keyword.Namespace),
            (words(_STATEMENT_KEYWORDS, suffix=_END), Keyword),
            (r"0[xX][0-9a-fA-F][0-9a-fA-F_]*" + _SUFFIX, Number.Hex),
            (r"0[bB][01][01_]*" + _SUFFIX, Number.Bin),
            (r"[0-9][0-9_]*" + _SUFFIX, Number.Integer),
            # Linux names: hcalls (H_*, EV_*, KVM_HC_*), caps (KVM_CAP_*), PV features (KVM_FEATURE_*).
            (r"(?:H|EV|KVM)_[A-Za-z0-9_]*" + _END, Name.Constant),
            (r"[A-Za-z_][A-Za-z0-9_\-]*", Name),
            (r"[{}\[\],]", Punctuation),
        ],
        "string": [
            (r'\\(?:x[0-9a-fA-F]{2}|["\\ntr0])', String.Escape),
            (r"\\.?", Error),  # hvconf refuses other escapes (bad-escape)
            (r'[^"\\\n]+', String.Double),
            (r'"', String.Double, "#pop"),
            (r"\n", Error, "#pop"),  # strings end on their line
        ],
    }


__all__ = ["HvconfLexer", "KEYWORDS", "grammar_keywords"]
