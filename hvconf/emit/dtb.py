"""Flatten a `fdt.Node` tree into DTB bytes (version 17, last compatible 16) via pyfdt.

This is the ONLY module that imports an FDT library, so pyfdt can be swapped for
pylibfdt here alone. It adds no nodes or properties of its own and does no I/O.
Output is deterministic: same tree, same bytes. Tests: tests/test_dtb_readback.py.
"""

from __future__ import annotations

import string
import struct
from collections.abc import Sequence

from pyfdt.pyfdt import Fdt, FdtNode, FdtProperty, FdtPropertyBytes, FdtPropertyStrings, FdtPropertyWords

from hvconf.emit.fdt import Bytes, Cells, Empty, FdtError, Node, Prop, Strings, reservations

# pyfdt 0.3 (2015) works on Python 3.11 for writing, with these limits worked around here:
# - FdtPropertyStrings refuses "" and any character outside string.printable or in "\r\n",
#   so such string lists go out as FdtPropertyBytes holding the same NUL-terminated bytes;
# - FdtPropertyBytes takes *signed* bytes (-128..127), so bytes are reinterpreted as int8;
# - it has only 32-bit words, so /bits/ 8, 16 and 64 cells go out as their packed bytes;
# - it writes a node's entries in append order, and the DTB format needs every property
#   before the first subnode, so properties are appended first.
# Its packing is explicit big-endian ('>I', '>QQ') whatever the host or guest endianness,
# which is what the format requires (sPAPR guests may run little-endian; DT cells do not).
# Header: 40 bytes, reserve map at 40, struct block, then the strings block, with dtc's
# suffix-sharing string table; for the same tree `dtc -I dts -O dtb` gives identical bytes.
# Not used: its to_dts (no string escaping), to_raw (Python 2 str/bytes) and its parser.
_PYFDT_STRING_CHARS = frozenset(string.printable) - {"\r", "\n"}

DTB_VERSION = 17
DTB_LAST_COMP_VERSION = 16


def _pyfdt_prop(prop: Prop) -> FdtProperty:
    value = prop.value
    if isinstance(value, Empty):
        return FdtProperty(prop.name)
    if isinstance(value, Cells) and value.bits == 32:
        return FdtPropertyWords(prop.name, list(value.values))
    if isinstance(value, Strings) and all(s and set(s) <= _PYFDT_STRING_CHARS for s in value.values):
        return FdtPropertyStrings(prop.name, list(value.values))
    if isinstance(value, (Cells, Strings, Bytes)):
        raw = value.encoded
        return FdtPropertyBytes(prop.name, list(struct.unpack(f">{len(raw)}b", raw)))
    raise FdtError(f"{prop.name}: no DTB form for {value!r}")


def _pyfdt_node(node: Node) -> FdtNode:
    out = FdtNode(node.name)
    for prop in node.props:
        out.append(_pyfdt_prop(prop))
    for child in node.children:
        sub = _pyfdt_node(child)
        sub.set_parent_node(out)
        out.append(sub)
    return out


def to_dtb(root: Node, *, boot_cpuid: int = 0, reserve: Sequence[tuple[int, int]] = ()) -> bytes:
    """The DTB of `root` (a node named "/"), with `boot_cpuid_phys` = `boot_cpuid` and a
    memory reservation map of (address, size) entries in the order given."""
    if root.name != "/" or root.parent is not None:
        raise FdtError(f"to_dtb needs the root node '/', got {root.path!r}")
    if isinstance(boot_cpuid, bool) or not isinstance(boot_cpuid, int) or not 0 <= boot_cpuid <= 0xFFFFFFFF:
        raise FdtError(f"boot_cpuid {boot_cpuid!r} is not a u32")
    entries = [{"address": a, "size": s} for a, s in reservations(reserve)]
    try:
        # A fresh Fdt each call: pyfdt's to_dtb() writes sizes back into its header dict.
        blob = Fdt(version=DTB_VERSION, last_comp_version=DTB_LAST_COMP_VERSION, boot_cpuid_phys=boot_cpuid)
        blob.add_rootnode(_pyfdt_node(root))
        blob.add_reserve_entries(entries)
        return bytes(blob.to_dtb())
    except Exception as err:  # pyfdt raises bare Exception; the model should have caught it first
        raise FdtError(f"pyfdt could not flatten the tree: {err}") from err


FDT_BEGIN_NODE, FDT_END_NODE, FDT_PROP, FDT_NOP, FDT_END = 1, 2, 3, 4, 9  # DT spec 0.4 §5.4.1


def _align4(n: int) -> int:
    return (n + 3) & ~3


def value_offsets(dtb: bytes, name: str) -> list[tuple[str, int]]:
    """(node path, offset of the value in `dtb`) of every property called `name`, in tree order:
    where a launcher can overwrite a value it only knows at run time. `dtb` is one to_dtb made."""
    structs, strings = struct.unpack_from(">II", dtb, 8)
    at, path, found = structs, [], []  # path: node names from the root's "" down
    while True:
        (token,) = struct.unpack_from(">I", dtb, at)
        at += 4
        if token == FDT_BEGIN_NODE:
            end = dtb.index(b"\0", at)
            path.append(dtb[at:end].decode("ascii"))
            at = _align4(end + 1)
        elif token == FDT_END_NODE:
            path.pop()
        elif token == FDT_PROP:
            length, nameoff = struct.unpack_from(">II", dtb, at)
            at += 8
            if dtb[strings + nameoff : dtb.index(b"\0", strings + nameoff)].decode("ascii") == name:
                found.append(("/" + "/".join(path[1:]), at))
            at = _align4(at + length)
        elif token == FDT_END:
            return found
        elif token != FDT_NOP:
            raise FdtError(f"not a DTB this module wrote: token {token:#x} at {at - 4:#x}")
