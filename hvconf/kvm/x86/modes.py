"""x86 start modes: the segment state of `real`, `prot32` and `long64`, and the tables they need.

`MODES[name]` says how to edit a `struct kvm_sregs` (`apply(sregs, tables)`)
and which bytes the runtime writes at the plan's `tables` address
(`image(tables)`): a GDT with Linux's boot selectors (code 0x10, data 0x18),
an IDT whose 32 exception vectors report to EXCEPTION_PORT, and for long64
a TSS (so exceptions run on a known stack) and page tables identity-mapping
the first 4 GiB with 2 MiB pages. Pure values: no ioctls, no guest memory
access. Tests: tests/kvm/test_modes.py.
"""

from __future__ import annotations

import struct

from hvconf.record import Record

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

CR0_PE, CR0_ET, CR0_NW, CR0_CD, CR0_PG = 1 << 0, 1 << 4, 1 << 29, 1 << 30, 1 << 31
CR4_PAE = 1 << 5
EFER_LME, EFER_LMA = 1 << 8, 1 << 10

CODE_SELECTOR, DATA_SELECTOR, TSS_SELECTOR = 0x10, 0x18, 0x20  # Linux's __BOOT_CS/__BOOT_DS, then the TSS
EXCEPTION_PORT = 0x0EF0  # the IDT stubs write the vector here (32 bits); no PC device lives there
EXCEPTIONS = 32  # vectors with an IDT entry; later ones are beyond the IDT limit and raise #GP
STUB_SIZE = 16

# Offsets inside the table area. Page 0 holds descriptors and stubs, the
# rest of it is the exception stack; long64 adds one PML4, one PDPT and 4 PDs.
GDT, TSS, IDT, STUBS, STACK_TOP = 0x000, 0x080, 0x100, 0x300, 0x1000
PML4, PDPT, PD = 0x1000, 0x2000, 0x3000
MAPPED_GIB = 4
PAGE_2M = 1 << 21

# Vectors that push an error code (SDM vol. 3, table 6-1), and their mnemonics.
ERROR_CODE_VECTORS = frozenset({8, 10, 11, 12, 13, 14, 17, 21, 29, 30})
VECTOR_NAMES = (
    "#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "coprocessor overrun", "#TS", "#NP",
    "#SS", "#GP", "#PF", "vector 15", "#MF", "#AC", "#MC", "#XM", "#VE", "#CP",
)  # fmt: skip


def vector_name(vector: int) -> str:
    return VECTOR_NAMES[vector] if vector < len(VECTOR_NAMES) else f"vector {vector}"


def _descriptor(base: int, limit: int, access: int, flags: int) -> bytes:
    """One 8-byte GDT code/data descriptor."""
    return struct.pack(
        "<HHBBBB", limit & 0xFFFF, base & 0xFFFF, (base >> 16) & 0xFF, access,
        (flags << 4) | ((limit >> 16) & 0xF), (base >> 24) & 0xFF,
    )  # fmt: skip


def _tss_descriptor(base: int) -> bytes:
    """The 16-byte long-mode descriptor of a busy 64-bit TSS of 104 bytes."""
    return _descriptor(base, 0x67, 0x8B, 0) + struct.pack("<II", base >> 32, 0)


def _stub(vector: int) -> bytes:
    # mov $vector,%eax; mov $EXCEPTION_PORT,%dx; out %eax,%dx; 1: hlt; jmp 1b
    # The same bytes decode identically in 32- and 64-bit mode.
    code = b"\xb8" + struct.pack("<I", vector) + b"\x66\xba" + struct.pack("<H", EXCEPTION_PORT) + b"\xef\xf4\xeb\xfd"
    return code.ljust(STUB_SIZE, b"\xcc")


def _gate64(handler: int) -> bytes:
    # present, DPL 0, 64-bit interrupt gate, stack from IST1
    return struct.pack("<HHBBHII", handler & 0xFFFF, CODE_SELECTOR, 1, 0x8E, (handler >> 16) & 0xFFFF, handler >> 32, 0)


def _gate32(handler: int) -> bytes:
    return struct.pack("<HHBBH", handler & 0xFFFF, CODE_SELECTOR, 0, 0x8E, handler >> 16)


class Mode(Record):
    """One start mode: the bytes at `tables` (empty: none) and the sregs edit."""

    __slots__ = ("name", "size", "image", "apply", "slot_bytes")
    name: str
    size: int  # bytes of guest memory the runtime writes at `tables`
    image: Callable[[int], bytes]  # tables address -> bytes to write there
    apply: Callable[[Any, int], None]  # (struct kvm_sregs *, tables address) -> None
    slot_bytes: int  # width of one exception-frame slot on the stack (0: no IDT of ours)


def _memo(build: Callable[[int], bytes]) -> Callable[[int], bytes]:
    """`build`, remembering its last few images (functools.lru_cache's job: functools costs a launch ~2 ms)."""
    images: dict[int, bytes] = {}

    def image(tables: int) -> bytes:
        if tables not in images:
            if len(images) >= 4:
                images.clear()
            images[tables] = build(tables)
        return images[tables]

    return image


def _prot32_image(tables: int) -> bytes:
    area = bytearray(STACK_TOP)
    gdt = bytes(16) + _descriptor(0, 0xFFFFF, 0x9B, 0xC) + _descriptor(0, 0xFFFFF, 0x93, 0xC)
    area[GDT : GDT + len(gdt)] = gdt
    for v in range(EXCEPTIONS):
        area[IDT + 8 * v : IDT + 8 * v + 8] = _gate32(tables + STUBS + STUB_SIZE * v)
        area[STUBS + STUB_SIZE * v : STUBS + STUB_SIZE * (v + 1)] = _stub(v)
    return bytes(area)


def _long64_image(tables: int) -> bytes:
    area = bytearray(PD + 0x1000 * MAPPED_GIB)
    gdt = (bytes(16) + _descriptor(0, 0xFFFFF, 0x9B, 0xA) + _descriptor(0, 0xFFFFF, 0x93, 0xC)
           + _tss_descriptor(tables + TSS))
    area[GDT : GDT + len(gdt)] = gdt
    struct.pack_into("<IQ", area, TSS, 0, 0)  # reserved, rsp0
    struct.pack_into("<Q", area, TSS + 0x24, tables + STACK_TOP)  # IST1
    struct.pack_into("<H", area, TSS + 0x66, 0x68)  # I/O map base beyond the limit: no I/O bitmap
    for v in range(EXCEPTIONS):
        area[IDT + 16 * v : IDT + 16 * v + 16] = _gate64(tables + STUBS + STUB_SIZE * v)
        area[STUBS + STUB_SIZE * v : STUBS + STUB_SIZE * (v + 1)] = _stub(v)
    struct.pack_into("<Q", area, PML4, (tables + PDPT) | 0x3)  # present, writable
    for gib in range(MAPPED_GIB):
        struct.pack_into("<Q", area, PDPT + 8 * gib, (tables + PD + 0x1000 * gib) | 0x3)
        for n in range(512):
            struct.pack_into("<Q", area, PD + 0x1000 * gib + 8 * n, ((gib << 30) + n * PAGE_2M) | 0x83)  # PS
    return bytes(area)


def _segment(seg: Any, selector: int, type_: int, *, code64: bool = False) -> None:
    seg.base, seg.limit, seg.selector, seg.type = 0, 0xFFFF_FFFF, selector, type_
    seg.present, seg.dpl, seg.s, seg.g, seg.avl, seg.unusable = 1, 0, 1, 1, 0, 0
    seg.l, seg.db = (1, 0) if code64 else (0, 1)


def _flat_segments(sregs: Any, tables: int, *, code64: bool, idt_entry: int) -> None:
    _segment(sregs.cs, CODE_SELECTOR, 0xB, code64=code64)  # execute/read, accessed
    for seg in (sregs.ds, sregs.es, sregs.fs, sregs.gs, sregs.ss):
        _segment(seg, DATA_SELECTOR, 0x3)  # read/write, accessed
    sregs.gdt.base, sregs.gdt.limit = tables + GDT, (TSS_SELECTOR + 16 if code64 else DATA_SELECTOR + 8) - 1
    sregs.idt.base, sregs.idt.limit = tables + IDT, EXCEPTIONS * idt_entry - 1
    # Caching on (reset leaves CD|NW set), protection on.
    sregs.cr0 = (sregs.cr0 | CR0_PE | CR0_ET) & ~(CR0_CD | CR0_NW)


def _real(sregs: Any, tables: int) -> None:
    # Real mode with every segment at base 0, so guest addresses are physical
    # below 64K and a plan's rip is the load address itself.
    for seg in (sregs.cs, sregs.ds, sregs.es, sregs.fs, sregs.gs, sregs.ss):
        seg.selector = 0
        seg.base = 0
        seg.limit = 0xFFFF
    sregs.cr0 &= ~CR0_PE


def _prot32(sregs: Any, tables: int) -> None:
    _flat_segments(sregs, tables, code64=False, idt_entry=8)
    sregs.cr0 &= ~CR0_PG
    sregs.cr4 &= ~CR4_PAE
    sregs.efer = 0


def _long64(sregs: Any, tables: int) -> None:
    _flat_segments(sregs, tables, code64=True, idt_entry=16)
    tr = sregs.tr
    tr.base, tr.limit, tr.selector, tr.type = tables + TSS, 0x67, TSS_SELECTOR, 0xB  # busy 64-bit TSS
    tr.present, tr.dpl, tr.s, tr.l, tr.db, tr.g, tr.avl, tr.unusable = 1, 0, 0, 0, 0, 0, 0, 0
    sregs.cr3 = tables + PML4
    sregs.cr4 |= CR4_PAE
    sregs.cr0 |= CR0_PG
    sregs.efer |= EFER_LME | EFER_LMA


MODES: dict[str, Mode] = {
    "real": Mode("real", 0, lambda tables: b"", _real, 0),
    "prot32": Mode("prot32", STACK_TOP, _memo(_prot32_image), _prot32, 4),
    "long64": Mode("long64", PD + 0x1000 * MAPPED_GIB, _memo(_long64_image), _long64, 8),
}


def stub_vector(tables: int, rip: int) -> int | None:
    """The vector whose stub holds `rip` (at an I/O exit, KVM leaves rip on the `out`), or None."""
    offset = rip - (tables + STUBS)
    if 0 <= offset < EXCEPTIONS * STUB_SIZE:
        return offset // STUB_SIZE
    return None


class Fault(Record):
    """An exception that reached one of the runtime's IDT stubs."""

    __slots__ = ("vector", "rip", "error_code", "cr2")
    vector: int
    rip: int | None  # None: the exception frame was not in guest memory
    error_code: int | None
    cr2: int | None  # page faults only

    def describe(self) -> str:
        parts = [f"unhandled exception {vector_name(self.vector)} (vector {self.vector})"]
        if self.rip is not None:
            parts.append(f"at rip {self.rip:#x}")
        if self.error_code is not None:
            parts.append(f"error code {self.error_code:#x}")
        if self.cr2 is not None:
            parts.append(f"cr2 {self.cr2:#x}")
        return ", ".join(parts)


def fault(vector: int, frame: bytes | None, slot_bytes: int, cr2: int) -> Fault:
    """Decode the exception frame the CPU pushed (`frame`: the stack from rsp, 3 slots or more)."""
    has_code = vector in ERROR_CODE_VECTORS
    rip = code = None
    if frame is not None:
        fmt = "<" + ("Q" if slot_bytes == 8 else "I") * 2
        first, second = struct.unpack_from(fmt, frame)
        code, rip = (first, second) if has_code else (None, first)
    return Fault(vector, rip, code, cr2 if vector == 14 else None)
