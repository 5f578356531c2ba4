"""Deterministic DTS text for a `fdt.Node` tree, accepted by `dtc -I dts`.

Layout: optional `// header` lines, `/dts-v1/;`, `/memreserve/` lines, then the tree
with one tab per level, a blank line before each child node, and a trailing
`/* file:line:col */` on every node and property that has a source. Numbers: below
10 in decimal, from 10 upward in lower-case hex (`<2>`, `<0 0x19>`, `<0x30000000>`).
Strings are ASCII with dtc escapes. Pure text, no I/O. Tests: tests/test_fdt.py.
"""

from __future__ import annotations

from collections.abc import Sequence

from hvconf.emit.fdt import Bytes, Cells, Empty, FdtError, Node, Strings, Value, reservations

_INDENT = "\t"

# Escapes dtc's lexer understands; everything else outside 0x20..0x7e becomes \xNN
# (dtc reads at most two hex digits, so a following hex-looking letter stays literal).
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t"}


def _number(value: int) -> str:
    return str(value) if value < 10 else f"{value:#x}"


def _string(text: str) -> str:
    out = []
    for char in text:
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif " " <= char <= "~":
            out.append(char)
        else:
            out.append(f"\\x{ord(char):02x}")
    return '"' + "".join(out) + '"'


def _value(value: Value) -> str:
    if isinstance(value, Cells):
        width = "" if value.bits == 32 else f"/bits/ {value.bits} "
        return f"{width}<{' '.join(_number(v) for v in value.values)}>"
    if isinstance(value, Strings):
        return ", ".join(_string(s) for s in value.values)
    if isinstance(value, Bytes):
        return "[" + " ".join(f"{b:02x}" for b in value.data) + "]"
    raise FdtError(f"no DTS form for {value!r}")


def _printable(text: str) -> str:
    # Comments stay printable ASCII on one line whatever a path or header contains.
    text = text.encode("ascii", "backslashreplace").decode("ascii")
    return "".join(c if " " <= c <= "~" else "?" for c in text)


def _comment(source: str | None) -> str:
    if source is None:
        return ""
    text = _printable(source).replace("*/", "*\\/")
    return f" /* {text} */"


def _node_lines(node: Node, depth: int, lines: list[str]) -> None:
    pad = _INDENT * depth
    lines.append(f"{pad}{node.name} {{{_comment(node.source)}")
    for prop in node.props:
        assign = "" if isinstance(prop.value, Empty) else f" = {_value(prop.value)}"
        lines.append(f"{pad}{_INDENT}{prop.name}{assign};{_comment(prop.source)}")
    for child in node.children:
        lines.append("")
        _node_lines(child, depth + 1, lines)
    lines.append(f"{pad}}};")


def to_dts(root: Node, *, header_comment: str | None = None, reserve: Sequence[tuple[int, int]] = ()) -> str:
    """The DTS source of `root` (a node named "/"), with optional header comment lines
    and `/memreserve/` entries (address, size) matching what `to_dtb` puts in the blob."""
    if root.name != "/" or root.parent is not None:
        raise FdtError(f"to_dts needs the root node '/', got {root.path!r}")
    lines: list[str] = []
    if header_comment is not None:
        lines += [f"// {_printable(line)}".rstrip() for line in header_comment.splitlines()]
    lines.append("/dts-v1/;")
    for address, size in reservations(reserve):
        lines.append(f"/memreserve/ {_number(address)} {_number(size)};")
    lines.append("")
    _node_lines(root, 0, lines)
    return "\n".join(lines) + "\n"
