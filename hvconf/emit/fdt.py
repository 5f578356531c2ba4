"""The device-tree node model: nodes, properties and typed values, in pure Python.

Arch modules build a `Node` tree here; `dts.py` prints it and `dtb.py` flattens it.
Every misuse (bad name, duplicate, value that does not fit) raises `FdtError` at
the call that caused it. No I/O, no FDT library, no hash-ordered iteration: output
order is insertion order. Tests: tests/test_fdt.py.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterable, Iterator

from hvconf.record import Record

Source = str | None  # "file:line:col" of the .hv construct that produced a node or property


class FdtError(ValueError):
    """A device tree was built wrongly (bad name, duplicate, value out of range)."""


# DT spec 0.4 section 2.2.1 / 2.2.4. Property names may be longer than 31 characters in
# practice (sPAPR "ibm,associativity-reference-points"), so only node names are capped.
_NODE_BASE = re.compile(r"[A-Za-z0-9,._+-]{1,31}", re.ASCII)
_UNIT_ADDRESS = re.compile(r"[A-Za-z0-9,._+-]+", re.ASCII)
_PROP_NAME = re.compile(r"[A-Za-z0-9,._+?#-]+", re.ASCII)

_CELL_FORMATS = {8: "B", 16: "H", 32: "I", 64: "Q"}  # struct codes; always packed big-endian


def _check_node_name(name: str) -> None:
    if not isinstance(name, str):
        raise FdtError(f"node name must be a str, not {type(name).__name__}")
    base, at, unit = name.partition("@")
    if not _NODE_BASE.fullmatch(base) or (at and not _UNIT_ADDRESS.fullmatch(unit)):
        raise FdtError(
            f"invalid node name {name!r}: expected 1-31 of [A-Za-z0-9,._+-], "
            "optionally followed by '@' and a unit address of the same characters"
        )


def _check_source(source: Source) -> None:
    if source is not None and not isinstance(source, str):
        raise FdtError(f"source must be a 'file:line:col' str or None, not {type(source).__name__}")


def _check_prop_name(name: str) -> None:
    if not isinstance(name, str) or not _PROP_NAME.fullmatch(name):
        raise FdtError(f"invalid property name {name!r}: expected 1 or more of [A-Za-z0-9,._+?#-]")


class Empty(Record):
    """A property with no value (a boolean flag such as `interrupt-controller`)."""

    __slots__ = ()

    @property
    def encoded(self) -> bytes:
        return b""


class Cells(Record):
    """Unsigned big-endian integers of `bits` width (32 = ordinary DT cells).

    Other widths are dtc's `/bits/ N <...>`. For a 64-bit quantity laid out as two
    32-bit cells (the `reg` convention with #address-cells = 2) use `cells64()`.
    """

    __slots__ = ("values", "bits")
    values: tuple[int, ...]
    bits: int

    def __init__(self, values: tuple[int, ...], bits: int = 32) -> None:
        super().__init__(values, bits)
        if self.bits not in _CELL_FORMATS:
            raise FdtError(f"cell width must be one of 8, 16, 32, 64, not {self.bits!r}")
        if not isinstance(self.values, tuple) or not self.values:
            raise FdtError("cells need a non-empty tuple of ints (use Empty() for no value)")
        top = (1 << self.bits) - 1
        for value in self.values:
            if isinstance(value, bool) or not isinstance(value, int):
                raise FdtError(f"cell value must be an int, not {value!r}")
            if not 0 <= value <= top:
                raise FdtError(f"cell value {value:#x} does not fit in u{self.bits}")

    @property
    def encoded(self) -> bytes:
        return struct.pack(f">{len(self.values)}{_CELL_FORMATS[self.bits]}", *self.values)


class Strings(Record):
    """A list of ASCII strings, each stored NUL-terminated."""

    __slots__ = ("values",)
    values: tuple[str, ...]

    def __init__(self, values: tuple[str, ...]) -> None:
        super().__init__(values)
        if not isinstance(self.values, tuple) or not self.values:
            raise FdtError("a string list needs at least one string (use Empty() for no value)")
        for text in self.values:
            if not isinstance(text, str):
                raise FdtError(f"string value must be a str, not {text!r}")
            if not text.isascii():
                raise FdtError(f"string {text!r} is not ASCII")
            if "\0" in text:
                raise FdtError(f"string {text!r} contains NUL, which would split it")

    @property
    def encoded(self) -> bytes:
        return b"".join(text.encode("ascii") + b"\0" for text in self.values)


class Bytes(Record):
    """Raw bytes, stored as they are."""

    __slots__ = ("data",)
    data: bytes

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        if not isinstance(self.data, bytes) or not self.data:
            raise FdtError("a byte value needs non-empty bytes (use Empty() for no value)")

    @property
    def encoded(self) -> bytes:
        return self.data


Value = Empty | Cells | Strings | Bytes


def cells(*values: int) -> Cells:
    """32-bit cells: `cells(0, 25)` is `<0 0x19>`."""
    return Cells(tuple(values))


def cells64(*values: int) -> Cells:
    """Each u64 as two 32-bit cells, high word first: `cells64(0, 1 << 28)` is `<0 0 0 0x10000000>`."""
    out: list[int] = []
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1 << 64:
            raise FdtError(f"64-bit value {value!r} is not an int in 0..2**64-1")
        out += (value >> 32, value & 0xFFFFFFFF)
    return Cells(tuple(out))


def strings(*values: str) -> Strings:
    """A string list: `strings("hcall-pft", "hcall-term")`."""
    return Strings(tuple(values))


def reservations(reserve: Iterable[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    """`reserve` checked as (address, size) pairs of u64, for /memreserve/ and the DTB map."""
    out = []
    for entry in reserve:
        if not isinstance(entry, (tuple, list)) or len(entry) != 2 or not all(
            isinstance(f, int) and not isinstance(f, bool) and 0 <= f < 1 << 64 for f in entry
        ):
            raise FdtError(f"memory reservation {entry!r} is not an (address, size) pair of u64")
        out.append((entry[0], entry[1]))
    return tuple(out)


class Prop(Record):
    """One property: `name`, typed `value`, and the `source` that produced it."""

    __slots__ = ("name", "value", "source")
    name: str
    value: Value
    source: Source

    def __init__(self, name: str, value: Value, source: Source = None) -> None:
        super().__init__(name, value, source)
        _check_prop_name(self.name)
        _check_source(self.source)
        if not isinstance(self.value, (Empty, Cells, Strings, Bytes)):
            raise FdtError(f"property {self.name!r}: value must be Empty, Cells, Strings or Bytes, not {self.value!r}")


class Node:
    """A device-tree node built in insertion order.

    Attributes (read-only): `name` ("/" for the root), `source`, `props` and
    `children` (tuples in insertion order), `parent` (None until attached) and
    `path`. Build with `prop()` (returns self, for chaining) and `child()` /
    `add()` (return the child).
    """

    __slots__ = ("_name", "_source", "_props", "_children", "_parent")

    def __init__(self, name: str, source: Source = None) -> None:
        if name != "/":
            _check_node_name(name)
        _check_source(source)
        self._name = name
        self._source = source
        self._props: dict[str, Prop] = {}  # dicts keep insertion order; used for duplicate checks
        self._children: dict[str, Node] = {}
        self._parent: Node | None = None

    @property
    def name(self) -> str:
        return self._name

    @property
    def source(self) -> Source:
        return self._source

    @property
    def props(self) -> tuple[Prop, ...]:
        return tuple(self._props.values())

    @property
    def children(self) -> tuple[Node, ...]:
        return tuple(self._children.values())

    @property
    def parent(self) -> Node | None:
        return self._parent

    @property
    def path(self) -> str:
        if self._parent is None:
            return "/" if self._name == "/" else self._name
        base = self._parent.path
        return f"{base.rstrip('/')}/{self._name}"

    def prop(self, name: str, value: Value, source: Source = None) -> Node:
        """Add property `name`; raises FdtError if it exists or clashes with a child's name."""
        new = Prop(name, value, source)
        if name in self._props:
            raise FdtError(f"{self.path}: duplicate property {name!r}")
        if name in self._children:
            raise FdtError(f"{self.path}: property {name!r} has the same name as a child node")
        self._props[name] = new
        return self

    def child(self, name: str, source: Source = None) -> Node:
        """Create, attach and return a new child node called `name`."""
        return self.add(Node(name, source))

    def add(self, node: Node) -> Node:
        """Attach an existing parentless node as the last child and return it."""
        if not isinstance(node, Node):
            raise FdtError(f"{self.path}: can only add a Node, not {node!r}")
        if node._name == "/":
            raise FdtError(f"{self.path}: a root node ('/') cannot be a child")
        if node._parent is not None:
            raise FdtError(f"{self.path}: node {node.path!r} is already attached")
        ancestor: Node | None = self
        while ancestor is not None:
            if ancestor is node:
                raise FdtError(f"{self.path}: adding {node.name!r} would make a cycle")
            ancestor = ancestor._parent
        if node._name in self._children:
            raise FdtError(f"{self.path}: duplicate child node {node._name!r}")
        if node._name in self._props:
            raise FdtError(f"{self.path}: child node {node._name!r} has the same name as a property")
        node._parent = self
        self._children[node._name] = node
        return node

    def value(self, name: str) -> Value:
        """The value of property `name`; FdtError if absent."""
        if name not in self._props:
            raise FdtError(f"{self.path}: no property {name!r}")
        return self._props[name].value

    def find(self, path: str) -> Node:
        """The node at `path`: absolute ("/vdevice/vty@30000000", from this node's root) or
        relative to this node ("vty@30000000"). FdtError names the first missing component."""
        node = self
        if path.startswith("/"):
            while node._parent is not None:
                node = node._parent
        for part in (p for p in path.split("/") if p):
            if part not in node._children:
                raise FdtError(f"no node {part!r} under {node.path!r} (looking for {path!r})")
            node = node._children[part]
        return node

    def walk(self) -> Iterator[Node]:
        """This node and all descendants, depth first, in insertion order."""
        yield self
        for child in self._children.values():
            yield from child.walk()

    def __repr__(self) -> str:
        return f"Node({self.path!r}, {len(self._props)} props, {len(self._children)} children)"


class Phandles:
    """Hands out unique phandles for one tree: `fixed` values first, then 1, 2, 3...

    `assign(node)` adds the `phandle` property and returns the number. Keep one
    instance per tree; there is no global counter.
    """

    def __init__(self) -> None:
        self._used: dict[int, str] = {}  # phandle -> node path, for error messages
        self._next = 1

    def assign(self, node: Node, fixed: int | None = None, source: Source = None) -> int:
        if fixed is None:
            while self._next in self._used:
                self._next += 1
            fixed = self._next
        elif isinstance(fixed, bool) or not isinstance(fixed, int) or not 1 <= fixed <= 0xFFFFFFFE:
            # 0 and 0xffffffff are reserved by the DT spec (section 2.3.3).
            raise FdtError(f"{node.path}: phandle {fixed!r} is not in 1..0xfffffffe")
        if fixed in self._used:
            raise FdtError(f"{node.path}: phandle {fixed:#x} already used by {self._used[fixed]}")
        node.prop("phandle", cells(fixed), source)
        self._used[fixed] = node.path
        return fixed
