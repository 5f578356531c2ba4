"""The ePAPR spin table of an e500 VM: where it lives, its first contents, what the launcher does.

ePAPR 1.1 §5.5: every secondary CPU waits in a spin loop on an entry of a
table in memory; the client (Linux: arch/powerpc/platforms/85xx/smp.c
smp_85xx_start_cpu) finds its entry through the cpu node's
`cpu-release-addr`, waits for entry_addr to read 1, writes r3, pir and
finally entry_addr, and the CPU starts there. Here the table is an image the
launcher copies into guest RAM (a page below the DTB, reserved with
/memreserve/ so the client never allocates it), and the launcher, not guest
code, is the spin loop: each secondary vCPU waits outside KVM_RUN until its
entry_addr has bit 0 clear, then gets QEMU's release state
(hw/ppc/ppce500_spin.c spin_kick): pc = entry_addr within a `map_size`
mapping, r3 from the table, r7 = map_size, the mapping as TLB1 entry 1 (M
set) through KVM_DIRTY_TLB, and the table's pir set to its PIR.
Entry layout (big-endian, as the guest reads it): u64 entry_addr (1: spin),
u64 r3, u32 reserved, u32 pir; QEMU's initial values (spin_reset): r3 and
pir are the CPU's index. Entries are 64 bytes apart, one per cache line of
an e500mc (QEMU: 32, the e500v2 line). Tests: tests/test_device_trees.py,
tests/kvm/test_buffers_e500_spin.py.
"""

from __future__ import annotations

from typing import Any

from hvconf.platforms import e500_tlb

ADDRESS = 0x00EF_F000  # the page below the DTB (ppc_e500.DTB_ADDRESS, 15 MiB), inside the boot IMA
SIZE = 0x1000  # one page: 64 entries, more than target.toml's 32 vCPUs
ENTRY_SIZE = 64
SPINNING = 1  # entry_addr's initial value: bit 0 set means "keep spinning"
RELEASE_ESEL = 1  # the TLB1 entry of a released CPU's mapping (QEMU spin_kick: booke206_get_tlbm(env, 1, 0, 1))


def release_addr(index: int) -> int:
    """`cpu-release-addr` of vCPU `index`: its spin table entry."""
    return ADDRESS + index * ENTRY_SIZE


def entry(index: int) -> bytes:
    """vCPU `index`'s entry as the launcher first writes it (QEMU spin_reset)."""
    return (SPINNING.to_bytes(8, "big") + index.to_bytes(8, "big") + bytes(4) + index.to_bytes(4, "big")
            ).ljust(ENTRY_SIZE, b"\0")  # fmt: skip


def table(vcpus: int) -> bytes:
    """The spin table image: an entry for every vCPU (the boot vCPU's is never used, as in QEMU)."""
    assert vcpus * ENTRY_SIZE <= SIZE, vcpus
    return b"".join(entry(i) for i in range(vcpus))


def section(vcpus: int, map_size: int) -> dict[str, Any]:
    """plan.launcher.epapr.spin_table: which vCPUs wait in the table and the TLB1 entry a release writes.
    The entry's mas2 and mas7_3 hold only the flags: the runtime adds the mapping's start."""
    return {
        "address": ADDRESS,
        "entry_size": ENTRY_SIZE,
        "vcpus": list(range(1, vcpus)),
        "map_size": map_size,
        "tlb_entry": e500_tlb.mapping(RELEASE_ESEL, 0, 0, map_size, coherent=True),
    }
