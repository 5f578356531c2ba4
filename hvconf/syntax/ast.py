"""AST node shapes of the .hv language, declared in one place.

Plain frozen dataclasses (pycparser keeps its node shapes in one file too);
every node has a `span`. Simple one-keyword statements share one shape,
`Setting`, so adding a setting touches the grammar and the model only.
Tested through tests/test_syntax.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from hvconf.diagnostics import Span


@dataclass(frozen=True, slots=True)
class Int:
    value: int
    text: str
    span: Span


@dataclass(frozen=True, slots=True)
class Str:
    value: str
    span: Span


@dataclass(frozen=True, slots=True)
class Name:
    value: str
    span: Span


@dataclass(frozen=True, slots=True)
class List:
    items: tuple["Value", ...]
    span: Span


Value = Union[Int, Str, Name, List]


@dataclass(frozen=True, slots=True)
class Setting:
    """`arch ppc64le`, `memory 4G`, `htab order 25`, `kernel "vmlinux"`..."""

    key: str
    values: tuple[Value, ...]
    span: Span
    key_span: Span


@dataclass(frozen=True, slots=True)
class Guest:
    path: Str
    mode: Name | None
    at: Int | None
    span: Span


@dataclass(frozen=True, slots=True)
class HcallOp:
    """One line of an `hcalls` block: preset / enable / disable / exit / enforce."""

    action: str
    refs: tuple[Int | Name, ...]
    span: Span
    action_span: Span


@dataclass(frozen=True, slots=True)
class Hcalls:
    ops: tuple[HcallOp, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class RtasToken:
    name: Str
    token: Int
    span: Span


@dataclass(frozen=True, slots=True)
class Rtas:
    tokens: tuple[RtasToken, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class KeyValue:
    key: Name
    value: Value
    span: Span


@dataclass(frozen=True, slots=True)
class CapTarget:
    kind: str  # "vm" | "vcpus" | "vcpu"
    index: Int | None
    span: Span


@dataclass(frozen=True, slots=True)
class Cap:
    name: Name
    target: CapTarget | None
    args: tuple[KeyValue, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class Tce:
    name: Name
    items: tuple[KeyValue, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class HypervisorItem:
    name: Name
    value: Value | None
    span: Span


@dataclass(frozen=True, slots=True)
class Hypervisor:
    items: tuple[HypervisorItem, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class PvFeatures:
    names: tuple[Name, ...]
    span: Span


Statement = Union[Setting, Guest, Hcalls, Rtas, Cap, Tce, Hypervisor, PvFeatures]


@dataclass(frozen=True, slots=True)
class VmDecl:
    name: Name
    base: Name | None
    abstract: bool
    body: tuple[Statement, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class Include:
    path: Str
    span: Span


@dataclass(frozen=True, slots=True)
class FormatDecl:
    version: Int
    span: Span


@dataclass(frozen=True, slots=True)
class SourceFile:
    path: str  # as shown in diagnostics
    items: tuple[FormatDecl | Include | VmDecl, ...]
