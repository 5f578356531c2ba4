"""What an sPAPR tree holds for a Linux kernel entered with a flattened tree (no firmware, no CAS).

QEMU's guests boot through SLOF or VOF and prom_init, whose H_CAS negotiation QEMU
answers by writing the result into the tree (hw/ppc/spapr.c spapr_dt_chosen,
spapr_dt_cpu, spapr_dt_pa_features); a kernel entered at 0 with r3 = the tree runs no
prom_init, so these properties must be there from the start. Each value below says
whose it is; docs/linux-guests.md gives each one's reason and what Linux does without
it. Used by spapr_tree.py for VMs with a `kernel`. Tests: tests/test_boot_images.py.
"""

from __future__ import annotations

# /chosen/ibm,architecture-vec-5, laid out as QEMU's spapr_ovec_populate_dt writes it: byte 0 is the
# vector's length - 1, byte n is option vector 5's byte n. Linux reads it in
# arch/powerpc/mm/init_64.c early_check_vec5 (radix only when byte 24 has OV5_MMU_RADIX).
VEC5_BYTES = 27
OV5_MMU = 24, 0x40  # OV5_MMU_RADIX_300: the guest runs radix (0: hash)
OV5_GTSE = 26, 0x40  # OV5_MMU_RADIX_GTSE: tlbie from the guest (KVM_PPC_MMUV3_GTSE)

# ibm,pa-features of an ISA 3.00 CPU: QEMU spapr_dt_pa_features pa_features_300 (no HTM, SAO or
# copy/paste, as QEMU advertises them). Linux clears every feature whose bit is 0
# (arch/powerpc/kernel/prom.c scan_features), so it is the whole table or none.
PA_FEATURES_300 = bytes([
    66, 0,
    0xF6, 0x1F, 0xC7, 0xC0, 0x00, 0xF0,  # 0-5: MMU|FPU|SLB|RUN|DABR|NX, fri|DABRX|SPRG3|SLB0|PP110, ... LE|CFAR|EB|LSQ
    0x80, 0x00, 0x00, 0x00, 0x00, 0x00,  # 6-11: DS207
    0x00, 0x00, 0x00, 0x00, 0x80, 0x00,  # 12-17: 16 vector
    0x80, 0x00, 0x80, 0x00, 0x00, 0x00,  # 18-23: vector scalar, vector XOR
    0x80, 0x00, 0x80, 0x00, 0x80, 0x00,  # 24-29: ext. decrementer, 64-bit features, PM
    0x00, 0x00, 0x80, 0x00, 0xC0, 0x00,  # 30-35: LE atomics, EBB + ext EBB
    0x00, 0x00, 0x00, 0x00, 0x80, 0x00,  # 36-41: radix MMU
    0x80, 0x00, 0x80, 0x00, 0x80, 0x00,  # 42-47: PM, PC RA, SC vectored
    0x80, 0x00, 0x80, 0x00, 0x80, 0x00,  # 48-53: SIMD, QP BFP, string
    0x80, 0x00, 0x80, 0x00, 0x80, 0x00,  # 54-59: DecFP, DecI, SHA
    0x80, 0x00, 0x80, 0x00, 0x00, 0x00,  # 60-65: NM atomics, RNG
])

# ibm,processor-radix-AP-encodings of POWER9: 4K, 64K, 2M, 1G, each AP << 29 | log2(size)
# (QEMU target/ppc/cpu_init.c POWER9_radix_page_info). Without it Linux disables HugeTLB.
RADIX_AP_ENCODINGS = (0x0000000C, 0xA0000010, 0x20000015, 0x4000001E)

# Hash-MMU cpu properties (QEMU spapr_dt_cpu): 32 SLB entries, 256M and 1T segments, and the
# page sizes KVM_PPC_GET_SMMU_INFO reports for RAM not backed by 16M pages (4K and 64K bases).
SLB_SIZE = 32
SEGMENT_SIZES = (28, 40, 0xFFFFFFFF, 0xFFFFFFFF)
SEGMENT_PAGE_SIZES = (12, 0x0, 1, 12, 0x0, 16, 0x110, 1, 16, 0x1)

VMX = 2  # ibm,vmx: VMX and VSX (without it /init dies of SIGILL at its first VSX instruction)
DFP = 1  # ibm,dfp: decimal floating point
CLOCK_HZ = 1_000_000_000  # clock-frequency: only what /proc/cpuinfo shows; the timebase is what counts

# /interrupt-controller: QEMU hw/intc/xics_spapr.c spapr_dt_xics.
XICS_NODE = "interrupt-controller"
XICS_PHANDLE = 0x1111  # QEMU PHANDLE_INTC

# /ibm,platform-facilities/ibm,random-v1: QEMU hw/ppc/spapr_rng.c spapr_dt_rng; Linux's pseries-rng
# driver binds to it (drivers/char/hw_random/pseries-rng.c) and reads H_RANDOM.
RNG_PARENT = "ibm,platform-facilities"
RNG_NODE = "ibm,random-v1"


def vec5(radix: bool) -> bytes:
    """The post-CAS option vector 5 for the declared MMU."""
    vector = bytearray(VEC5_BYTES)
    vector[0] = VEC5_BYTES - 1
    if radix:
        for index, bit in (OV5_MMU, OV5_GTSE):
            vector[index] |= bit
    return bytes(vector)
