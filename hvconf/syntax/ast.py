"""AST node shapes of the .hv language, declared in one place.

Immutable slotted values (pycparser keeps its node shapes in one file too);
every node has a `span`. Simple one-keyword statements share one shape,
`Setting`, so adding a setting touches the grammar and the model only.
Tested through tests/test_syntax.py.
"""

from __future__ import annotations

from typing import Union

from hvconf.diagnostics import Span
from hvconf.record import Record, _set


class Node(Record):
    """The base of every node: immutable, slotted, equal by type and fields, hashable.

    What `@dataclass(frozen=True, slots=True)` gave, without its cost: defining 21
    dataclasses compiled about 100 methods at every start (5 ms of a one-file
    `hvconf check`), and their generated __init__ was twice as slow as the
    explicit ones below, which run for every node of every file linted.
    """

    __slots__ = ()


class Int(Node):
    __slots__ = ("value", "text", "span")
    value: int
    text: str
    span: Span

    def __init__(self, value: int, text: str, span: Span) -> None:
        _set(self, "value", value)
        _set(self, "text", text)
        _set(self, "span", span)


class Str(Node):
    __slots__ = ("value", "span")
    value: str
    span: Span

    def __init__(self, value: str, span: Span) -> None:
        _set(self, "value", value)
        _set(self, "span", span)


class Name(Node):
    __slots__ = ("value", "span")
    value: str
    span: Span

    def __init__(self, value: str, span: Span) -> None:
        _set(self, "value", value)
        _set(self, "span", span)


class List(Node):
    __slots__ = ("items", "span")
    items: tuple["Value", ...]
    span: Span

    def __init__(self, items: tuple["Value", ...], span: Span) -> None:
        _set(self, "items", items)
        _set(self, "span", span)


Value = Union[Int, Str, Name, List]


class Setting(Node):
    """`arch ppc64le`, `memory 4G`, `htab order 25`, `kernel "vmlinux"`..."""

    __slots__ = ("key", "values", "span", "key_span")
    key: str
    values: tuple[Value, ...]
    span: Span
    key_span: Span

    def __init__(self, key: str, values: tuple[Value, ...], span: Span, key_span: Span) -> None:
        _set(self, "key", key)
        _set(self, "values", values)
        _set(self, "span", span)
        _set(self, "key_span", key_span)


class Guest(Node):
    __slots__ = ("path", "mode", "at", "span")
    path: Str
    mode: Name | None
    at: Int | None
    span: Span

    def __init__(self, path: Str, mode: Name | None, at: Int | None, span: Span) -> None:
        _set(self, "path", path)
        _set(self, "mode", mode)
        _set(self, "at", at)
        _set(self, "span", span)


class HcallOp(Node):
    """One line of an `hcalls` block: preset / enable / disable / exit / enforce."""

    __slots__ = ("action", "refs", "span", "action_span")
    action: str
    refs: tuple[Int | Name, ...]
    span: Span
    action_span: Span

    def __init__(self, action: str, refs: tuple[Int | Name, ...], span: Span, action_span: Span) -> None:
        _set(self, "action", action)
        _set(self, "refs", refs)
        _set(self, "span", span)
        _set(self, "action_span", action_span)


class Hcalls(Node):
    __slots__ = ("ops", "span")
    ops: tuple[HcallOp, ...]
    span: Span

    def __init__(self, ops: tuple[HcallOp, ...], span: Span) -> None:
        _set(self, "ops", ops)
        _set(self, "span", span)


class RtasToken(Node):
    __slots__ = ("name", "token", "span")
    name: Str
    token: Int
    span: Span

    def __init__(self, name: Str, token: Int, span: Span) -> None:
        _set(self, "name", name)
        _set(self, "token", token)
        _set(self, "span", span)


class Rtas(Node):
    __slots__ = ("tokens", "span")
    tokens: tuple[RtasToken, ...]
    span: Span

    def __init__(self, tokens: tuple[RtasToken, ...], span: Span) -> None:
        _set(self, "tokens", tokens)
        _set(self, "span", span)


class KeyValue(Node):
    __slots__ = ("key", "value", "span")
    key: Name
    value: Value
    span: Span

    def __init__(self, key: Name, value: Value, span: Span) -> None:
        _set(self, "key", key)
        _set(self, "value", value)
        _set(self, "span", span)


class CapTarget(Node):
    __slots__ = ("kind", "index", "span")
    kind: str  # "vm" | "vcpus" | "vcpu"
    index: Int | None
    span: Span

    def __init__(self, kind: str, index: Int | None, span: Span) -> None:
        _set(self, "kind", kind)
        _set(self, "index", index)
        _set(self, "span", span)


class Cap(Node):
    __slots__ = ("name", "target", "args", "span")
    name: Name
    target: CapTarget | None
    args: tuple[KeyValue, ...]
    span: Span

    def __init__(self, name: Name, target: CapTarget | None, args: tuple[KeyValue, ...], span: Span) -> None:
        _set(self, "name", name)
        _set(self, "target", target)
        _set(self, "args", args)
        _set(self, "span", span)


class Tce(Node):
    __slots__ = ("name", "items", "span")
    name: Name
    items: tuple[KeyValue, ...]
    span: Span

    def __init__(self, name: Name, items: tuple[KeyValue, ...], span: Span) -> None:
        _set(self, "name", name)
        _set(self, "items", items)
        _set(self, "span", span)


class HypervisorItem(Node):
    __slots__ = ("name", "value", "span")
    name: Name
    value: Value | None
    span: Span

    def __init__(self, name: Name, value: Value | None, span: Span) -> None:
        _set(self, "name", name)
        _set(self, "value", value)
        _set(self, "span", span)


class Hypervisor(Node):
    __slots__ = ("items", "span")
    items: tuple[HypervisorItem, ...]
    span: Span

    def __init__(self, items: tuple[HypervisorItem, ...], span: Span) -> None:
        _set(self, "items", items)
        _set(self, "span", span)


class PvFeatures(Node):
    __slots__ = ("names", "span")
    names: tuple[Name, ...]
    span: Span

    def __init__(self, names: tuple[Name, ...], span: Span) -> None:
        _set(self, "names", names)
        _set(self, "span", span)


Statement = Union[Setting, Guest, Hcalls, Rtas, Cap, Tce, Hypervisor, PvFeatures]


class VmDecl(Node):
    __slots__ = ("name", "base", "abstract", "body", "span")
    name: Name
    base: Name | None
    abstract: bool
    body: tuple[Statement, ...]
    span: Span

    def __init__(self, name: Name, base: Name | None, abstract: bool, body: tuple[Statement, ...], span: Span) -> None:
        _set(self, "name", name)
        _set(self, "base", base)
        _set(self, "abstract", abstract)
        _set(self, "body", body)
        _set(self, "span", span)


class Include(Node):
    __slots__ = ("path", "span")
    path: Str
    span: Span

    def __init__(self, path: Str, span: Span) -> None:
        _set(self, "path", path)
        _set(self, "span", span)


class FormatDecl(Node):
    __slots__ = ("version", "span")
    version: Int
    span: Span

    def __init__(self, version: Int, span: Span) -> None:
        _set(self, "version", version)
        _set(self, "span", span)


class SourceFile(Node):
    __slots__ = ("path", "items")
    path: str  # as shown in diagnostics
    items: tuple[FormatDecl | Include | VmDecl, ...]

    def __init__(self, path: str, items: tuple[FormatDecl | Include | VmDecl, ...]) -> None:
        _set(self, "path", path)
        _set(self, "items", items)
