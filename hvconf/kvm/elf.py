"""ELF32/ELF64 executables as guest images: PT_LOAD segments and the entry point.

`parse(data, name)` reads an x86 (little-endian) or 64-bit PowerPC (either
byte order: ppc64 vmlinux is big-endian, ppc64le little) ELF header and program
headers with `struct` and returns each PT_LOAD segment as (physical
address, bytes padded with zeros to p_memsz) and the entry as a physical
address. It checks the file, not where the segments land (images.py
does). No KVM, no I/O. Tests: tests/kvm/test_modes.py.
"""

from __future__ import annotations

import struct

from hvconf.record import Record

MAGIC = b"\x7fELF"
ELFCLASS32, ELFCLASS64, ELFDATA2LSB, ELFDATA2MSB = 1, 2, 1, 2
ET_EXEC = 2
PT_LOAD = 1
MACHINES = {3: "EM_386", 62: "EM_X86_64", 21: "EM_PPC64"}
BIG_ENDIAN_MACHINES = frozenset({"EM_PPC64"})  # x86 is little-endian only
# The machines each arch family loads (hvconf/contract.py ARCHES); x86's when the caller does not say.
FAMILY_MACHINES = {"x86": ("EM_386", "EM_X86_64"), "powerpc": ("EM_PPC64",)}
X86 = FAMILY_MACHINES["x86"]


def machines_for(arch: str) -> tuple[str, ...]:
    """The ELF machines a plan of `arch` loads (x86's for a family this table does not name)."""
    from hvconf.contract import ARCHES

    record = ARCHES.get(arch)
    return FAMILY_MACHINES.get(record.family, X86) if record is not None else X86
MAX_SEGMENT = 1 << 32  # one segment larger than 4 GiB is a corrupt header, not a guest

# (header layout after e_ident, program header layout) per class, without the byte-order prefix;
# field names in _HEADER/_PHDR
_LAYOUT = {
    ELFCLASS32: ("HHIIIIIHHHHHH", "IIIIIIII"),
    ELFCLASS64: ("HHIQQQIHHHHHH", "IIQQQQQQ"),
}
_ORDER = {ELFDATA2LSB: "<", ELFDATA2MSB: ">"}
_HEADER = ("type", "machine", "version", "entry", "phoff", "shoff", "flags", "ehsize", "phentsize", "phnum")
_PHDR = {
    ELFCLASS32: ("type", "offset", "vaddr", "paddr", "filesz", "memsz", "flags", "align"),
    ELFCLASS64: ("type", "flags", "offset", "vaddr", "paddr", "filesz", "memsz", "align"),
}


class ElfError(ValueError):
    """The file is not an x86 or PowerPC ELF executable this loader can place."""


class Segment(Record):
    __slots__ = ("paddr", "data")
    paddr: int
    data: bytes  # p_filesz bytes from the file, then zeros up to p_memsz


class Elf(Record):
    __slots__ = ("bits", "machine", "entry", "segments")
    bits: int  # 32 or 64
    machine: str
    entry: int  # physical: e_entry moved from its segment's vaddr to its paddr
    segments: tuple[Segment, ...]


def is_elf(data: bytes) -> bool:
    return data[:4] == MAGIC


def parse(data: bytes, name: str = "image", machines: tuple[str, ...] = X86) -> Elf:
    if not is_elf(data) or len(data) < 16:
        raise ElfError(f"{name}: not an ELF file")
    klass, order = data[4], data[5]
    if klass not in _LAYOUT:
        raise ElfError(f"{name}: ELF class {klass} is neither ELF32 nor ELF64")
    if order not in _ORDER:
        raise ElfError(f"{name}: ELF data encoding {order} is neither little- nor big-endian")
    if order == ELFDATA2MSB and not BIG_ENDIAN_MACHINES.intersection(machines):
        raise ElfError(f"{name}: big-endian ELF; x86 guests are little-endian")
    head_fmt, phdr_fmt = (_ORDER[order] + f for f in _LAYOUT[klass])
    if len(data) < 16 + struct.calcsize(head_fmt):
        raise ElfError(f"{name}: ELF header truncated")
    header = dict(zip(_HEADER, struct.unpack_from(head_fmt, data, 16)))
    if MACHINES.get(header["machine"]) not in machines:
        what = "x86 (EM_386 or EM_X86_64)" if machines == X86 else " or ".join(machines)
        raise ElfError(f"{name}: ELF machine {header['machine']} is not {what}")
    if header["type"] != ET_EXEC:
        raise ElfError(f"{name}: ELF type {header['type']} is not ET_EXEC "
                       "(a position-independent file has no load address)")
    size = struct.calcsize(phdr_fmt)
    if header["phentsize"] != size:
        raise ElfError(f"{name}: program header entries are {header['phentsize']} bytes, not {size}")
    segments, loads = [], []
    for i in range(header["phnum"]):
        at = header["phoff"] + i * size
        if at + size > len(data):
            raise ElfError(f"{name}: program header {i} lies beyond the end of the file")
        ph = dict(zip(_PHDR[klass], struct.unpack_from(phdr_fmt, data, at)))
        if ph["type"] != PT_LOAD:
            continue
        if ph["filesz"] > ph["memsz"] or ph["memsz"] > MAX_SEGMENT:
            raise ElfError(f"{name}: PT_LOAD {i} has p_filesz {ph['filesz']:#x} and p_memsz {ph['memsz']:#x}")
        if ph["offset"] + ph["filesz"] > len(data):
            raise ElfError(f"{name}: PT_LOAD {i} file bytes [{ph['offset']:#x}, +{ph['filesz']:#x}) "
                           "lie beyond the file")
        body = data[ph["offset"] : ph["offset"] + ph["filesz"]] + bytes(ph["memsz"] - ph["filesz"])
        segments.append(Segment(ph["paddr"], body))
        loads.append(ph)
    if not segments:
        raise ElfError(f"{name}: no PT_LOAD segment")
    return Elf(32 if klass == ELFCLASS32 else 64, MACHINES[header["machine"]], _physical_entry(header["entry"], loads),
               tuple(segments))  # fmt: skip


def _physical_entry(entry: int, loads: list[dict[str, int]]) -> int:
    # A kernel links at a virtual address and loads at a physical one (vmlinux:
    # 0xffffffff81000000 vs 0x1000000); the vCPU starts with paging off or identity-mapped.
    for ph in loads:
        if ph["vaddr"] <= entry < ph["vaddr"] + ph["memsz"]:
            return entry - ph["vaddr"] + ph["paddr"]
    return entry
