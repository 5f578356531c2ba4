"""A kernel's ELF program headers, read at build time: where each PT_LOAD goes and how much memory it takes.

The compiler loads a `kernel` ELF (a vmlinux) by its segments, as a boot loader
would: the file bytes of each PT_LOAD at its p_paddr, zeros up to p_memsz (the
bss: memsz, not the file size, is what the kernel occupies), and the entry
moved from its virtual to its physical address. It reads only the headers it
needs, with `struct`; the runtime's own reader (hvconf/kvm/elf.py) parses a
file given with `--kernel` at run time, and the two may not import each other
(tests/test_layering.py). Errors are KernelError with a one-line reason, which
the caller reports as `kernel-invalid`. Tests: tests/test_boot_images.py.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from hvconf.contract import ARCHES

MAGIC = b"\x7fELF"
ELFCLASS64 = 2
BYTE_ORDER = {1: ("<", "little"), 2: (">", "big")}  # EI_DATA
ET_EXEC, PT_LOAD = 2, 1
# e_machine of each arch family's 64-bit kernel (elf.h); the byte order is the arch's (contract.ARCHES).
FAMILY_MACHINE = {"powerpc": 21, "x86": 62}
MAX_SEGMENT = 1 << 32  # one segment larger than 4 GiB is a corrupt header, not a kernel


class KernelError(ValueError):
    """The file is not an ELF kernel this VM can load."""


class Segment(NamedTuple):
    paddr: int
    offset: int  # of its bytes in the file
    filesz: int
    memsz: int


class Kernel(NamedTuple):
    entry: int  # physical
    segments: tuple[Segment, ...]

    @property
    def end(self) -> int:
        """The first byte above every segment's memsz."""
        return max(s.paddr + s.memsz for s in self.segments)

    def loaded_bytes(self, data: bytes) -> bytes:
        """The segments' file bytes back to back: what the plan's "segments" image holds."""
        return b"".join(data[s.offset : s.offset + s.filesz] for s in self.segments)


def parse(data: bytes, arch: str) -> Kernel:
    """The PT_LOAD segments and physical entry of the ELF64 executable `data` built for `arch`."""
    if data[:4] != MAGIC or len(data) < 64:
        raise KernelError("it is not an ELF file (write `flat` after the file name for a raw image)")
    if data[4] != ELFCLASS64 or data[5] not in BYTE_ORDER:
        raise KernelError("it is not a 64-bit ELF file")
    prefix, order = BYTE_ORDER[data[5]]
    e_type, machine, _, entry, phoff, _, _, _, phentsize, phnum = struct.unpack_from(prefix + "HHIQQQIHHH", data, 16)
    want = _wanted(arch)
    if want is not None and (machine, order) != want:
        raise KernelError(f"it is a {order}-endian ELF for e_machine {machine}, not a {arch} kernel "
                          f"(e_machine {want[0]}, {want[1]}-endian)")
    if e_type != ET_EXEC:
        raise KernelError(f"ELF type {e_type} is not ET_EXEC (a relocatable file has no load address)")
    if phentsize != 56:
        raise KernelError(f"program header entries are {phentsize} bytes, not 56")
    segments, vaddrs = [], []
    for i in range(phnum):
        at = phoff + i * phentsize
        if at + phentsize > len(data):
            raise KernelError(f"program header {i} lies beyond the end of the file")
        p_type, _, offset, vaddr, paddr, filesz, memsz, _ = struct.unpack_from(prefix + "IIQQQQQQ", data, at)
        if p_type != PT_LOAD:
            continue
        if filesz > memsz or memsz > MAX_SEGMENT or offset + filesz > len(data):
            raise KernelError(f"PT_LOAD {i} (offset {offset:#x}, filesz {filesz:#x}, memsz {memsz:#x}) "
                              "does not fit the file")
        segments.append(Segment(paddr, offset, filesz, memsz))
        vaddrs.append(vaddr)
    if not segments:
        raise KernelError("it has no PT_LOAD segment")
    return Kernel(_physical(entry, segments, vaddrs), tuple(segments))


def _wanted(arch: str) -> tuple[int, str] | None:
    """(e_machine, byte order) of a kernel for `arch`; None where hvconf does not know it."""
    record = ARCHES.get(arch)
    if record is None or record.family not in FAMILY_MACHINE:
        return None
    return FAMILY_MACHINE[record.family], record.byteorder


def _physical(entry: int, segments: list[Segment], vaddrs: list[int]) -> int:
    # vmlinux links at its virtual address (ppc64: 0xc000000000000000) and loads at p_paddr (0).
    for seg, vaddr in zip(segments, vaddrs):
        if vaddr <= entry < vaddr + seg.memsz:
            return entry - vaddr + seg.paddr
    return entry
