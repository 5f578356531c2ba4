"""The sPAPR TCE tables KVM holds, read back through their fds once the guest has stopped.

api.rst, KVM_CREATE_SPAPR_TCE: the fd the ioctl returns "can be passed to
mmap(2) to map the created TCE table into userspace", so userspace can read
the entries the kernel's H_PUT_TCE, H_PUT_TCE_INDIRECT and H_STUFF_TCE
wrote (arch/powerpc/kvm/book3s_64_vio.c: kvmppc_tce_put stores entry
`ioba >> page_shift - offset` as a host-endian u64; kvm_spapr_tce_fault
maps the table's pages, allocating each on first touch). `report(plan,
machine, note)` lists, per table of the plan, the entries in use: what a
--trace shows after the run, before the tables' fds are closed. Tables of
more than MAX_TABLE_BYTES are not read (touching every page would allocate
all of them). Tests: tests/ppc/ (a guest fills a 64-bit window),
tests/kvm/test_buffers_papr.py (the decoding, on a file).
"""

from __future__ import annotations

import mmap
import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping
    from typing import Any, Literal

    from hvconf.contract import Plan
    from hvconf.kvm.machine import Machine

ENTRY = 8  # a TCE is a u64
LEGACY_PAGE_SHIFT = 12  # KVM_CREATE_SPAPR_TCE: 4K pages from bus address 0
MAX_TABLE_BYTES = 1 << 20  # 131,072 entries: a 512 MiB window of 4K pages
LISTED = 16  # entries named in the trace line; the count covers the rest
CHUNK = 4096
_ZERO = bytes(CHUNK)


def geometry(args: Mapping[str, Any], ioctl: str) -> tuple[int, int, int]:
    """(page shift, first page on the bus, number of entries) of a table-creating step."""
    if ioctl == "KVM_CREATE_SPAPR_TCE":
        return LEGACY_PAGE_SHIFT, 0, args["window_size"] >> LEGACY_PAGE_SHIFT
    return args["page_shift"], args["offset"], args["size"]


def used_entries(table: bytes, byteorder: Literal["little", "big"] = sys.byteorder) -> Iterator[tuple[int, int]]:
    """(index, TCE) of every non-zero entry of a table as KVM stores it; zero chunks are skipped whole."""
    for start in range(0, len(table), CHUNK):
        chunk = table[start : start + CHUNK]
        if chunk == _ZERO[: len(chunk)]:
            continue
        for at in range(0, len(chunk) - ENTRY + 1, ENTRY):
            value = int.from_bytes(chunk[at : at + ENTRY], byteorder)
            if value:
                yield (start + at) // ENTRY, value


def read_table(fd: int, entries: int) -> bytes:
    """The table behind `fd`, `entries` TCEs, through a read-only shared mapping."""
    length = entries * ENTRY
    with mmap.mmap(fd, -(-length // mmap.PAGESIZE) * mmap.PAGESIZE, mmap.MAP_SHARED, mmap.PROT_READ) as mapped:
        return mapped[:length]


def describe(label: str, shift: int, first: int, entries: int, table: bytes) -> str:
    used = list(used_entries(table))
    shown = ", ".join(f"[{i}] {v:#x}" for i, v in used[:LISTED]) + (", ..." if len(used) > LISTED else "")
    return (f"{label}: {len(used)} of {entries} entries in use ({1 << shift:#x}-byte pages from bus address "
            f"{first << shift:#x}; read through the table's mmap)" + (f": {shown}" if used else ""))


def report(plan: Plan, machine: Machine, note: Callable[[str], None]) -> None:
    """One trace line per TCE table the plan created and the machine still holds."""
    for step in plan.steps:
        if step.ioctl not in ("KVM_CREATE_SPAPR_TCE", "KVM_CREATE_SPAPR_TCE_64"):
            continue
        label = f"tce:{step.args['liobn']:#x}"
        table = machine.vm_fds.get(label)
        if table is None or table.fd < 0:
            continue  # the run ended before the step
        shift, first, entries = geometry(step.args, step.ioctl)
        if entries * ENTRY > MAX_TABLE_BYTES:
            note(f"{label}: {entries} entries, more than {MAX_TABLE_BYTES // ENTRY} to read back: not read")
            continue
        try:
            data = read_table(table.fd, entries)
        except (OSError, ValueError) as err:
            note(f"{label}: the table could not be read back: {err}")
            continue
        note(describe(label, shift, first, entries, data))
