"""Field offsets of a declared struct, read from the cffi declarations of an arch.

`fields(ffi, struct)` flattens a struct into dotted names as hvconf.abi
spells them ("io.port", "u.e.mas0"; anonymous unions add no component),
each with its offset, size and element size; `run_layout(arch)` is that for
struct kvm_run plus the arch's byte order, cached. Reads types only: no
buffer, no ioctl. Tests: tests/kvm/test_layouts.py.
"""

from __future__ import annotations

from hvconf.contract import ARCHES
from hvconf.kvm.ioctls import cdefs
from hvconf.record import Record

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping
    from typing import Any

    from hvconf.contract import ByteOrder


class Field(Record):
    """One (possibly nested) member: `offset` from the start of the struct, `size` in bytes,
    `item` the element size of an array (else equal to `size`); `size` is None for a flexible array."""

    __slots__ = ("offset", "size", "item")
    offset: int
    size: int | None
    item: int


def _walk(ffi: Any, ctype: Any, base: int, prefix: str) -> Iterator[tuple[str, Field]]:
    for name, field in ctype.fields:
        offset, ftype = base + field.offset, field.type
        if ftype.kind == "array":
            size = None if ftype.length is None else ffi.sizeof(ftype)
            yield prefix + name, Field(offset, size, ffi.sizeof(ftype.item))
            continue
        yield prefix + name, Field(offset, ffi.sizeof(ftype), ffi.sizeof(ftype))
        if ftype.kind == "struct" or ftype.kind == "union":
            yield from _walk(ffi, ftype, offset, prefix + name + ".")


def fields(ffi: Any, struct: str) -> dict[str, Field]:
    """Every member of `struct` (name without "struct ") in the declarations `ffi`."""
    return dict(_walk(ffi, ffi.typeof(f"struct {struct}"), 0, ""))


class RunLayout(Record):
    """struct kvm_run as `arch`'s kernel lays it out: `size`, `byteorder`, members by dotted name."""

    __slots__ = ("arch", "size", "byteorder", "members")
    arch: str
    size: int
    byteorder: ByteOrder
    members: Mapping[str, Field]

    @property
    def union(self) -> int:
        """Offset of the exit union (32; 48 on s390, after the PSW)."""
        return self.members["hw"].offset


_RUN_LAYOUTS: dict[str, RunLayout] = {}  # a dict, not functools.cache: functools (and collections) cost a launch ~2 ms


def run_layout(arch: str) -> RunLayout:
    if arch not in _RUN_LAYOUTS:
        ffi = cdefs.ffi_for(arch)
        _RUN_LAYOUTS[arch] = RunLayout(arch, ffi.sizeof("struct kvm_run"), ARCHES[arch].byteorder,
                                       fields(ffi, "kvm_run"))  # fmt: skip
    return _RUN_LAYOUTS[arch]
