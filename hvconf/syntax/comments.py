"""Find the `#` comments of .hv text, with their place, outside strings.

The grammar's lexer drops comments (`%ignore COMMENT`), so the formatter and
inline suppressions scan for them here with the lexer's own STRING and
COMMENT patterns, so a `#` inside a string is never taken for a comment.
Pure text in, data out. Tested by tests/test_fmt.py and tests/test_suppress.py.
"""

from __future__ import annotations

import bisect
import re

from hvconf.record import Record

# STRING and COMMENT as in grammar/hvconf.lark; anything else is skipped in runs.
_SCAN = re.compile(r'"(?:[^"\\\n]|\\.)*"|(#[^\n]*)|[^"#]+|"')


class Comment(Record):
    __slots__ = ("text", "offset", "line", "col", "own_line")
    text: str  # from `#` to the end of the line, trailing blanks (and a CR) removed
    offset: int  # index of the `#` in the text
    line: int  # 1-based, like spans
    col: int  # 1-based, counting characters
    own_line: bool  # only blanks before it on its line

    @property
    def end(self) -> int:
        return self.offset + len(self.text)


def line_starts(text: str) -> list[int]:
    """Offset of the first character of each line (index 0 is line 1)."""
    return [0] + [m.end() for m in re.finditer("\n", text)]


def comments(text: str) -> list[Comment]:
    """Every comment of `text`, in order."""
    starts = line_starts(text)
    found = []
    for m in _SCAN.finditer(text):
        if m.group(1) is None:
            continue
        offset = m.start()
        line = bisect.bisect_right(starts, offset)
        before = text[starts[line - 1]:offset]
        found.append(Comment(m.group(1).rstrip(), offset, line, offset - starts[line - 1] + 1,
                             not before.strip()))
    return found
