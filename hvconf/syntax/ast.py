"""AST node shapes of the .hv language, declared in one place.

Immutable slotted values (pycparser keeps its node shapes in one file too);
every node has a `span`. Simple one-keyword statements share one shape,
`Setting`, so adding a setting touches the grammar and the model only.
Tested through tests/test_syntax.py.
"""

from __future__ import annotations

from typing import Union

from hvconf.diagnostics import Span
from hvconf.record import Record, positional


class Node(Record):
    """The base of every node: immutable, slotted, equal by type and fields, hashable.

    What `@dataclass(frozen=True, slots=True)` gave, without its cost: defining 21
    dataclasses compiled about 100 methods at every start (5 ms of a one-file
    `hvconf check`), and their generated __init__ was twice as slow as the
    `@positional` ones below (one `_set` per field, hvconf/record.py), which run
    for every node of every file linted.
    """

    __slots__ = ()


@positional
class Int(Node):
    __slots__ = ("value", "text", "span")
    value: int
    text: str
    span: Span



@positional
class Str(Node):
    __slots__ = ("value", "span")
    value: str
    span: Span



@positional
class Name(Node):
    __slots__ = ("value", "span")
    value: str
    span: Span



@positional
class List(Node):
    __slots__ = ("items", "span")
    items: tuple["Value", ...]
    span: Span



Value = Union[Int, Str, Name, List]


@positional
class Setting(Node):
    """`arch ppc64le`, `memory 4G`, `htab order 25`, `kernel "vmlinux"`..."""

    __slots__ = ("key", "values", "span", "key_span")
    key: str
    values: tuple[Value, ...]
    span: Span
    key_span: Span



@positional
class Guest(Node):
    __slots__ = ("path", "mode", "at", "span")
    path: Str
    mode: Name | None
    at: Int | None
    span: Span



@positional
class HcallOp(Node):
    """One line of an `hcalls` block: preset / enable / disable / exit / enforce."""

    __slots__ = ("action", "refs", "span", "action_span")
    action: str
    refs: tuple[Int | Name, ...]
    span: Span
    action_span: Span



@positional
class Hcalls(Node):
    __slots__ = ("ops", "span")
    ops: tuple[HcallOp, ...]
    span: Span



@positional
class RtasToken(Node):
    __slots__ = ("name", "token", "span")
    name: Str
    token: Int
    span: Span



@positional
class Rtas(Node):
    __slots__ = ("tokens", "span")
    tokens: tuple[RtasToken, ...]
    span: Span



@positional
class KeyValue(Node):
    __slots__ = ("key", "value", "span")
    key: Name
    value: Value
    span: Span



@positional
class CapTarget(Node):
    __slots__ = ("kind", "index", "span")
    kind: str  # "vm" | "vcpus" | "vcpu"
    index: Int | None
    span: Span



@positional
class Cap(Node):
    __slots__ = ("name", "target", "args", "span")
    name: Name
    target: CapTarget | None
    args: tuple[KeyValue, ...]
    span: Span



@positional
class Tce(Node):
    __slots__ = ("name", "items", "span")
    name: Name
    items: tuple[KeyValue, ...]
    span: Span



@positional
class HypervisorItem(Node):
    __slots__ = ("name", "value", "span")
    name: Name
    value: Value | None
    span: Span



@positional
class Hypervisor(Node):
    __slots__ = ("items", "span")
    items: tuple[HypervisorItem, ...]
    span: Span



@positional
class PvFeatures(Node):
    __slots__ = ("names", "span")
    names: tuple[Name, ...]
    span: Span



Statement = Union[Setting, Guest, Hcalls, Rtas, Cap, Tce, Hypervisor, PvFeatures]


@positional
class VmDecl(Node):
    __slots__ = ("name", "base", "abstract", "body", "span")
    name: Name
    base: Name | None
    abstract: bool
    body: tuple[Statement, ...]
    span: Span



@positional
class Include(Node):
    __slots__ = ("path", "span")
    path: Str
    span: Span



@positional
class FormatDecl(Node):
    __slots__ = ("version", "span")
    version: Int
    span: Span



@positional
class SourceFile(Node):
    __slots__ = ("path", "items")
    path: str  # as shown in diagnostics
    items: tuple[FormatDecl | Include | VmDecl, ...]
