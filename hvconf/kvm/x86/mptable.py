"""The Intel MultiProcessor table a Linux guest with more than one vCPU finds its CPUs in.

Without firmware there is no ACPI MADT, and without an MP table Linux boots one CPU ("smpboot:
SMP disabled"). `table(at, apic_ids)` is the table kvmtool's x86/mptable.c `mptable__init` and
Firecracker's arch/x86_64/mptable.rs `setup_mptable` write (struct layouts: Linux's
arch/x86/include/asm/mpspec_def.h): the configuration table (processors, an ISA bus, the IOAPIC
of KVM's in-kernel irqchip, an interrupt entry per IOAPIC pin, LINT0 ExtINT and LINT1 NMI), then
the floating pointer that Linux's arch/x86/kernel/mpparse.c `smp_scan_config` finds by its
"_MP_" signature in the BIOS area 0xF0000-0xFFFFF, which the e820 map reserves
(hvconf/kvm/x86/linux.py). ISA IRQ n goes to IOAPIC pin n, as KVM's default routing wires them
(virt/kvm/irqchip.c, arch/x86/kvm/irq_comm.c `kvm_setup_default_irq_routing`). Pure bytes.
Tests: tests/kvm/test_linux_boot.py; a real 2-vCPU boot: tests/x86.
"""

from __future__ import annotations

import struct

FLOATING_SIGNATURE, TABLE_SIGNATURE = b"_MP_", b"PCMP"
SPEC_REVISION = 4  # MP spec 1.4
OEM, PRODUCT = b"HVCONF  ", b"x86 Linux   "  # 8 and 12 bytes, space padded
LAPIC_BASE, IOAPIC_BASE = 0xFEE0_0000, 0xFEC0_0000  # arch/x86/include/asm/apicdef.h defaults; KVM's too
APIC_VERSION = 0x14  # what KVM's local APIC reports (arch/x86/kvm/lapic.c APIC_VERSION)
# entry types (mpspec_def.h MP_PROCESSOR...) and their sizes
PROCESSOR, BUS, IOAPIC, INTSRC, LINTSRC = 0, 1, 2, 3, 4
CPU_ENABLED, CPU_BOOTPROCESSOR = 1, 2
CPU_SIGNATURE, CPU_FEATURES = 0x600, 0x201  # family 6; FPU and APIC: what kvmtool and Firecracker write
IOAPIC_USABLE = 1
MP_INT, MP_NMI, MP_EXTINT = 0, 1, 3
IRQ_CONFORMS = 0  # polarity and trigger as the bus says: ISA is edge, active high
IOAPIC_PINS = 24  # KVM's in-kernel IOAPIC (arch/x86/kvm/ioapic.h IOAPIC_NUM_PINS)
ISA_BUS = 0
HEADER = struct.Struct("<4sHBB8s12sIHHIHBB")  # struct mpc_table: 44 bytes
FLOATING = struct.Struct("<4sIBBBBBBBB")  # struct mpf_intel: 16 bytes
MAX_CPUS = 254  # 8-bit APIC ids, 0xFF is broadcast and one goes to the IOAPIC (Firecracker MAX_SUPPORTED_CPUS)


def _checksum(data: bytes | bytearray) -> int:
    """The byte that makes `data` with it sum to 0 modulo 256."""
    return -sum(data) & 0xFF


def _entries(apic_ids: list[int], ioapic_id: int) -> list[bytes]:
    entries = [struct.pack("<BBBBII8x", PROCESSOR, apic_id, APIC_VERSION,
                           CPU_ENABLED | (CPU_BOOTPROCESSOR if n == 0 else 0), CPU_SIGNATURE, CPU_FEATURES)
               for n, apic_id in enumerate(apic_ids)]
    entries.append(struct.pack("<BB6s", BUS, ISA_BUS, b"ISA   "))
    entries.append(struct.pack("<BBBBI", IOAPIC, ioapic_id, APIC_VERSION, IOAPIC_USABLE, IOAPIC_BASE))
    entries += [struct.pack("<BBHBBBB", INTSRC, MP_INT, IRQ_CONFORMS, ISA_BUS, pin, ioapic_id, pin)
                for pin in range(IOAPIC_PINS)]
    # the 8259 through the BSP's LINT0 (virtual wire mode), NMI to every local APIC's LINT1
    entries.append(struct.pack("<BBHBBBB", LINTSRC, MP_EXTINT, IRQ_CONFORMS, ISA_BUS, 0, 0, 0))
    entries.append(struct.pack("<BBHBBBB", LINTSRC, MP_NMI, IRQ_CONFORMS, ISA_BUS, 0, 0xFF, 1))
    return entries


def table(at: int, apic_ids: list[int]) -> bytes:
    """The configuration table at `at`, then the floating pointer (16-byte aligned) that points at it,
    for processors with `apic_ids` (the KVM vCPU ids; the first is the boot processor)."""
    if not 0 < len(apic_ids) <= MAX_CPUS or max(apic_ids) >= MAX_CPUS or at % 16:
        raise ValueError(f"an MP table holds 1 to {MAX_CPUS} processors with APIC ids below {MAX_CPUS}, "
                         f"16-byte aligned: {len(apic_ids)} at {at:#x}")
    ioapic_id = max(apic_ids) + 1
    body = b"".join(_entries(apic_ids, ioapic_id))
    length = HEADER.size + len(body)
    header = HEADER.pack(TABLE_SIGNATURE, length, SPEC_REVISION, 0, OEM, PRODUCT, 0, 0,
                         len(apic_ids) + IOAPIC_PINS + 4, LAPIC_BASE, 0, 0, 0)
    config = bytearray(header + body)
    config[7] = _checksum(config)  # mpc_table.checksum
    config += bytes(-len(config) % 16)
    floating = bytearray(FLOATING.pack(FLOATING_SIGNATURE, at, 1, SPEC_REVISION, 0, 0, 0, 0, 0, 0))
    floating[10] = _checksum(floating)  # mpf_intel.checksum
    return bytes(config + floating)
