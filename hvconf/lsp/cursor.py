"""What is at or before the cursor in a buffer's text: the word, the VM it is inside, the
`include` path under it, and what a completion at the end of a line prefix should offer.

Pure text functions (lines and Python string indices; hvconf/lsp/server.py converts LSP's
UTF-16 positions). They work on half-typed text, where the parser has nothing to say.
"""

from __future__ import annotations

import re

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*")
_VM_HEADER = re.compile(r"^\s*(?:abstract\s+)?vm\s+([A-Za-z_][A-Za-z0-9_\-]*)")
_INCLUDE = re.compile(r'\binclude\s+"((?:[^"\\\n]|\\.)*)"')
_SETTING_VALUE = r"[A-Za-z0-9_\-]*$"

# What a completion offers after the text before the cursor: the first pattern that matches
# the line prefix names the kind and (group 1, if any) its argument. Order matters: `cap X on`
# before `cap`, hcall actions before the statement keywords.
CONTEXTS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("cap_on", re.compile(r"\bcap\s+([A-Za-z0-9_]+)\s+on\s+[a-z]*$")),
    ("cap", re.compile(r"\bcap\s+[A-Za-z0-9_]*$")),
    ("hcall", re.compile(r"\b(enable|disable|exit)\s+(?:[A-Za-z0-9_]+\s+)*[A-Za-z0-9_]*$")),
    ("preset", re.compile(r"\bpreset\s+" + _SETTING_VALUE)),
    ("console", re.compile(r"\bconsole\s+" + _SETTING_VALUE)),
    ("arch", re.compile(r"\barch\s+" + _SETTING_VALUE)),
    ("kvm", re.compile(r"\bkvm\s+" + _SETTING_VALUE)),
    ("extends", re.compile(r"\bextends\s+" + _SETTING_VALUE)),
    ("keyword", re.compile(r"(?:^|[{}])\s*[a-z_]*$")),
)


def word_at(line: str, col: int) -> tuple[str, int, int] | None:
    """The name or keyword touching index `col` of `line`, with its start and end."""
    for match in _WORD.finditer(line):
        if match.start() <= col <= match.end():
            return match.group(0), match.start(), match.end()
    return None


def word_before(line: str, start: int) -> str | None:
    """The word in front of index `start` on `line` (`preset` in `preset qemu`)."""
    words = _WORD.findall(line[:start])
    return words[-1] if words else None


def enclosing_vm(lines: list[str], line: int) -> str | None:
    """The name of the last `vm NAME` header at or above line index `line`."""
    for row in range(min(line, len(lines) - 1), -1, -1):
        match = _VM_HEADER.match(lines[row])
        if match:
            return match.group(1)
    return None


_CAP_BLOCK = re.compile(r"\bcap\s+([A-Za-z0-9_]+)\s*(?:on\s+\w+(?:\s+\d+)?\s*)?\{")
_BLOCK_KEYWORD = re.compile(r"\b(tce|hypervisor)\b[^{}]*\{")


def cap_block(line: str, start: int) -> str | None:
    """The cap whose `{ ... }` block index `start` of `line` is in (`cap KVM_CAP_PPC_SMT { vsmt_mode 4 }`)."""
    found = [m for m in _CAP_BLOCK.finditer(line[:start])]
    return found[-1].group(1) if found and "}" not in line[found[-1].end():start] else None


def block_keyword(line: str, start: int) -> str | None:
    """The keyword of the block index `start` of `line` is in (`tce`, `hypervisor`), on that line."""
    found = [m for m in _BLOCK_KEYWORD.finditer(line[:start])]
    return found[-1].group(1) if found and "}" not in line[found[-1].end():start] else None


def include_at(line: str, col: int) -> str | None:
    """The path of an `include "PATH"` whose string holds index `col`, unescaped as the parser does."""
    for match in _INCLUDE.finditer(line):
        if match.start(1) - 1 <= col <= match.end(1) + 1:
            return re.sub(r"\\(.)", r"\1", match.group(1))
    return None


def completion_context(prefix: str) -> tuple[str, str | None] | None:
    """What to complete after `prefix` (the line up to the cursor): (kind, argument), or None
    inside a string or comment, where nothing is offered."""
    if "#" in prefix or prefix.count('"') % 2:
        return None
    for kind, pattern in CONTEXTS:
        match = pattern.search(prefix)
        if match:
            return kind, match.group(1) if pattern.groups else None
    return None
