"""The e500 software TLB in a plan: KVM_CAP_SW_TLB's `config` and the TLB1 entries the launcher writes.

`config(ctx, encoded)` turns `cap KVM_CAP_SW_TLB { mmu sets ways }` into the
values of the structs the runtime builds (api.rst §6.3): `mmu_type`
(KVM_MMU_FSL_BOOKE_NOHV, the only type e500_mmu.c accepts), `tlb_sizes` and
`tlb_ways` for TLB0 (sets x ways) and TLB1 (fully associative, its size per
MMU from target.toml [features.sw_tlb]), TLB2 and TLB3 empty.
`mapping(esel, va, pa, size, coherent)` is one TLB1 entry as QEMU's
booke206_set_tlb (hw/ppc/e500.c) writes it: valid, `size` bytes from `va`
to `pa`, read/write/execute for supervisor and user. Pure: no I/O.
Tests: tests/test_plan.py, tests/kvm/test_buffers_e500_tlb.py.
"""

from __future__ import annotations

from typing import Any

from hvconf.abi import hcalls as abi_hcalls
from hvconf.platforms.base import BuildContext
from hvconf.model import capargs

TLB0, TLB1 = 0, 1
# MAS register bits: Linux arch/powerpc/include/asm/nohash/mmu-e500.h.
MAS1_VALID = 0x8000_0000
MAS1_TSIZE_SHIFT = 7  # TSIZE = log2(page size / 1 KiB); e500v2 takes even sizes only (4^n KiB)
MAS2_M = 0x0000_0004  # memory coherence required: QEMU sets it for released secondaries (ppce500_spin.c)
MAS3_PERMS = 0x3F  # MAS3_UX | MAS3_SX | MAS3_UW | MAS3_SW | MAS3_UR | MAS3_SR
PAGE = 0x1000


def mmu_name(ctx: BuildContext, value: Any) -> str:
    """The `mmu` argument as its enum name (also when the plan kept it as the number)."""
    if isinstance(value, str):
        return value
    cap = ctx.target.name2cap[ctx.target.features.sw_tlb.cap] if ctx.target.features.sw_tlb else None
    values = (cap.name2arg["mmu"].values or {}) if cap else {}
    return next(name for name, number in values.items() if number == value)


def config(ctx: BuildContext, encoded: capargs.Encoded) -> dict[str, Any]:
    """The plan's `config` of KVM_ENABLE_CAP(KVM_CAP_SW_TLB): what the runtime puts in its structs."""
    facts = ctx.target.features.sw_tlb
    assert facts is not None  # targets/ppc-e500 has it; the cap exists nowhere else
    try:
        sets, ways = encoded.struct["sets"], encoded.struct["ways"]
        tlb1 = facts.tlb1_entries[mmu_name(ctx, encoded.names["mmu"])]
    except (KeyError, StopIteration):  # a suppressed cap-bad-args: the launcher refuses this config instead
        return dict(encoded.struct)
    return {
        "mmu_type": abi_hcalls.epapr_data()["sw_tlb"]["KVM_MMU_FSL_BOOKE_NOHV"],
        "tlb_sizes": [sets * ways, tlb1, 0, 0],
        "tlb_ways": [ways, tlb1, 0, 0],  # ways == size: fully associative
    }


def tsize(size: int) -> int:
    """MAS1[TSIZE] of a page of `size` bytes (a power of two, at least 1 KiB)."""
    assert size >= 1024 and size & (size - 1) == 0, size
    return (size >> 10).bit_length() - 1


def mapping(esel: int, va: int, pa: int, size: int, *, coherent: bool = False) -> dict[str, int]:
    """TLB1 entry `esel`: `size` bytes at effective address `va` to physical `pa` (QEMU booke206_set_tlb)."""
    return {
        "tlb": TLB1,
        "esel": esel,
        "mas8": 0,
        "mas1": MAS1_VALID | tsize(size) << MAS1_TSIZE_SHIFT,
        "mas2": (va & ~(PAGE - 1)) | (MAS2_M if coherent else 0),
        "mas7_3": (pa & ~(PAGE - 1)) | MAS3_PERMS,
    }
