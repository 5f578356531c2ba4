"""Booting Linux without firmware: the x86 64-bit boot protocol (Documentation/arch/x86/boot.rst).

`prepare(plan, loaded, note)` turns the plan's `linux` kernel image (a bzImage, or an ELF
vmlinux already split into its segments) and `initrd` image into what the kernel expects
in memory, as kvmtool's x86/kvm.c load_bzimage and Firecracker's loader do:
the protected-mode kernel at its load address (entry: load address + 0x200, the 64-bit
entry), the initrd as high as RAM and the kernel's initrd_addr_max allow, the command line,
and boot_params ("the zero page") holding the kernel's own setup header with the loader's
fields set (type_of_loader, loadflags, cmd_line_ptr, ramdisk_image/size) and an e820 map
of the memory slots with the PC's low holes reserved; with more than one vCPU, the MP table
that shows Linux the others (mptable.py, in the reserved BIOS area). Pure bytes: no ioctl.
Tests: tests/kvm/test_linux_boot.py; a real boot: tests/x86.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping

from hvconf.contract import ELF_MAGIC, SETUP_HEADER, PlanError, initrd_at, linux_header, typed
from hvconf.kvm.images import Loaded, memory_slots

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from hvconf.contract import LinuxHeader, Plan

ZERO_PAGE_SIZE = 0x1000
# boot_params offsets (arch/x86/include/uapi/asm/bootparam.h struct boot_params, setup_header)
EXT_RAMDISK_IMAGE, EXT_RAMDISK_SIZE, EXT_CMD_LINE_PTR = 0x0C0, 0x0C4, 0x0C8
E820_ENTRIES, E820_TABLE, E820_MAX = 0x1E8, 0x2D0, 128
TYPE_OF_LOADER, LOADFLAGS, RAMDISK_IMAGE, RAMDISK_SIZE = 0x210, 0x211, 0x218, 0x21C
HEAP_END_PTR, CMD_LINE_PTR = 0x224, 0x228
LOADER_UNDEFINED = 0xFF  # boot.rst: "0xFF = undefined", what kvmtool and Firecracker write
LOADED_HIGH, CAN_USE_HEAP = 0x01, 0x80
ENTRY_64 = 0x200  # boot.rst "64-bit Boot Protocol": the 64-bit entry is 0x200 past the protected-mode kernel
E820_RAM, E820_RESERVED = 1, 2
# A PC's low memory: RAM below the EBDA, then the EBDA, the VGA window and the BIOS area reserved
# (kvmtool x86/bios.c e820_setup; QEMU's pc machine): Linux looks there for an MP table and ACPI RSDP.
EBDA, LOW_END, BIOS_AREA = 0x9FC00, 0xA0000, 0xF0000
HIGH = 0x100000


def section(plan: Plan) -> Mapping[str, Any] | None:
    """plan.launcher.x86.linux, its fields checked, or None for a plan without a kernel."""
    linux = typed(plan.launcher.get("x86") or {}, "linux", Mapping, "plan.launcher.x86", optional=True)
    if linux is None:
        return None
    where = "plan.launcher.x86.linux"
    for key in ("zero_page", "cmdline_at", "serial_irq"):
        typed(linux, key, int, where)
    typed(linux, "cmdline", str, where)
    typed(linux, "mptable_at", int, where, optional=True)
    return linux


def e820(slots: list[tuple[int, int]]) -> list[tuple[int, int, int]]:
    """(address, size, type) of the map: each slot's RAM, the PC's low holes reserved."""
    entries: list[tuple[int, int, int]] = []
    for start, size in sorted(slots):
        end = start + size
        if start < EBDA:
            entries.append((start, min(end, EBDA) - start, E820_RAM))
        if start < HIGH and end > EBDA:
            entries += [(EBDA, LOW_END - EBDA, E820_RESERVED), (BIOS_AREA, HIGH - BIOS_AREA, E820_RESERVED)]
        if end > HIGH:
            entries.append((max(start, HIGH), end - max(start, HIGH), E820_RAM))
    return entries[:E820_MAX]


def zero_page(kernel: bytes | None, header: LinuxHeader | None, cmdline_at: int,
              initrd: tuple[int, int] | None, slots: list[tuple[int, int]]) -> bytes:
    """boot_params for the kernel whose bzImage is `kernel` (None: an ELF vmlinux, no header)."""
    page = bytearray(ZERO_PAGE_SIZE)
    if kernel is not None and header is not None:
        page[SETUP_HEADER : header.header_end] = kernel[SETUP_HEADER : header.header_end]
    page[TYPE_OF_LOADER] = LOADER_UNDEFINED
    page[LOADFLAGS] |= LOADED_HIGH | CAN_USE_HEAP
    struct.pack_into("<H", page, HEAP_END_PTR, 0xFE00)  # the real-mode heap's end (boot.rst), as kvmtool sets it
    struct.pack_into("<I", page, CMD_LINE_PTR, cmdline_at & 0xFFFF_FFFF)
    struct.pack_into("<I", page, EXT_CMD_LINE_PTR, cmdline_at >> 32)
    if initrd is not None:
        at, size = initrd
        struct.pack_into("<II", page, RAMDISK_IMAGE, at & 0xFFFF_FFFF, size & 0xFFFF_FFFF)
        struct.pack_into("<II", page, EXT_RAMDISK_IMAGE, at >> 32, size >> 32)
    entries = e820(slots)
    page[E820_ENTRIES] = len(entries)
    for n, (addr, size, kind) in enumerate(entries):
        struct.pack_into("<QQI", page, E820_TABLE + 20 * n, addr, size, kind)
    return bytes(page)


def prepare(plan: Plan, loaded: list[Loaded], note: Callable[[str], None]) -> list[Loaded]:
    linux = section(plan)
    if linux is None:
        return loaded
    by_name = {im.name: im for im in loaded}
    kernel = by_name.get("kernel")
    if kernel is None:
        raise PlanError("plan.launcher.x86.linux: the plan has no kernel image")
    formats = {im.name: im.format for im in plan.images}
    out = [im for im in loaded if im.name not in ("kernel", "initrd")]
    slots = memory_slots(plan)
    memory_end = max((start + size for start, size in slots), default=0)
    header = raw = None
    if kernel.entry is not None:  # an ELF vmlinux: its segments at their physical addresses, e_entry
        out.append(kernel)
        end = max(a + len(d) for a, d in kernel.chunks)
    else:
        (load, raw), = kernel.chunks
        if raw.startswith(ELF_MAGIC):
            raise PlanError("image 'kernel': an ELF file that was not loaded as one")
        try:
            header = linux_header(raw)
        except ValueError as err:
            raise PlanError(f"image 'kernel' cannot be booted: {err}") from None
        body = raw[header.setup_bytes :]
        out.append(Loaded("kernel", ((load, body),), load + ENTRY_64))
        end = load + max(header.init_size, len(body))
        note(f"linux: bzImage boot protocol {header.version >> 8}.{header.version & 0xFF}, {len(body)} bytes at "
             f"{load:#x}, init_size {header.init_size:#x}, entry {load + ENTRY_64:#x}")
    if end > memory_end:
        raise PlanError(f"the kernel needs memory up to {end:#x}, beyond the VM's {memory_end:#x}")
    initrd = None
    image = by_name.get("initrd")
    if image is not None and formats.get("initrd") == "initrd":
        data = b"".join(d for _, d in image.chunks)
        at = initrd_at(memory_end, len(data), header)
        if at < end:
            raise PlanError(f"the {len(data)}-byte initrd does not fit between the kernel (up to {end:#x}) and "
                            f"the end of memory ({memory_end:#x})")
        out.append(Loaded("initrd", ((at, data),)))
        initrd = (at, len(data))
        note(f"linux: initrd of {len(data)} bytes at {at:#x}")
    cmdline = linux["cmdline"].encode("utf-8") + b"\0"
    if header is not None and header.cmdline_size and len(cmdline) > header.cmdline_size + 1:
        raise PlanError(f"the command line has {len(cmdline)} bytes; this kernel reads {header.cmdline_size}")
    page = zero_page(raw, header, linux["cmdline_at"], initrd, slots)
    out += [Loaded("boot_params", ((linux["zero_page"], page),)), Loaded("cmdline", ((linux["cmdline_at"], cmdline),))]
    if linux.get("mptable_at") is not None:
        out.append(mp_table(plan, linux["mptable_at"], note))
    return out


def mp_table(plan: Plan, at: int, note: Callable[[str], None]) -> Loaded:
    """The MP table for the plan's vCPUs (their KVM vCPU ids are their APIC ids), at `at` in the BIOS
    area, which the e820 map reserves. The APs wait in KVM_RUN (KVM_MP_STATE_UNINITIALIZED with the
    in-kernel local APIC) for the INIT and SIPIs Linux sends them once it has read this."""
    from hvconf.kvm.x86 import mptable

    ids = [int(s.args["vcpu_id"]) for s in plan.steps if s.ioctl == "KVM_CREATE_VCPU"]
    try:
        data = mptable.table(at, ids)
    except ValueError as err:
        raise PlanError(f"plan.launcher.x86.linux.mptable_at: {err}") from None
    if not (BIOS_AREA <= at and at + len(data) <= HIGH):
        raise PlanError(f"plan.launcher.x86.linux.mptable_at: the {len(data)}-byte MP table at {at:#x} leaves "
                        f"the BIOS area [{BIOS_AREA:#x}, {HIGH:#x})")
    note(f"linux: MP table of {len(ids)} processors, {len(data)} bytes at {at:#x}")
    return Loaded("mptable", ((at, data),))
