"""Plan steps only x86 VMs have: the TSS, in-kernel irqchip and PIT, CPUID, start modes, registers.

KVM_SET_CPUID2 {base, signature, features} is the host's supported CPUID
(KVM_GET_SUPPORTED_CPUID, asked once per run) with the KVM signature leaf
0x40000000 and exactly `features` in leaf 0x40000001 eax (hints 0), and
with `hypervisor` and `brand` (a Linux guest's) the two things that CPUID
lacks and Linux reads: leaf 1 ECX bit 31 and the brand string leaves; each
vCPU's own APIC id where CPUID reports it (KVM's table says 0 for all);
KVM_SET_SREGS {mode, tables} puts the vCPU in a start mode (modes.py), whose
GDT, IDT and page tables the runtime writes at `tables` (`reserved` tells
the image placement check); KVM_SET_REGS names struct kvm_regs's fields, rip
defaulting to an ELF image's entry. Laid over the generic steps
(hvconf/kvm/steps.py). Tests: tests/kvm/test_runtime.py, tests/kvm/test_modes.py.
"""

from __future__ import annotations

import struct

from hvconf.contract import PlanError
from hvconf.kvm.ioctls.system import CpuidEntry
from hvconf.kvm.steps import StepKind, regs_step, vm_of, where
from hvconf.kvm.x86.modes import MODES

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Iterable

    from hvconf.contract import Plan, Step
    from hvconf.kvm.machine import Machine

KVM_CPUID_SIGNATURE = 0x40000000
KVM_CPUID_FEATURES = 0x40000001
CPUID_BASES = ("supported",)
FEATURES_LEAF, HYPERVISOR_BIT = 1, 1 << 31  # CPUID.1:ECX[31], "running on a hypervisor" (cpuid.rst)
BRAND_LEAVES = (0x80000002, 0x80000003, 0x80000004)  # 48 bytes of brand string, NUL padded
EXTENDED_MAX = 0x80000000  # its eax: the highest extended leaf


def signature_words(signature: str) -> tuple[int, int, int]:
    """ebx, ecx, edx of leaf 0x40000000 for an up-to-12-character ASCII signature."""
    raw = signature.encode("ascii")
    if len(raw) > 12:
        raise ValueError(f"CPUID signature {signature!r} is longer than 12 bytes")
    raw = raw.ljust(12, b"\0")
    ebx, ecx, edx = (int.from_bytes(raw[i : i + 4], "little") for i in (0, 4, 8))
    return ebx, ecx, edx


def with_kvm_leaves(entries: Iterable[CpuidEntry], signature: str, features: int) -> list[CpuidEntry]:
    """`entries` with the KVM signature leaf and exactly `features` in leaf 0x40000001 eax (hints 0)."""
    ebx, ecx, edx = signature_words(signature)
    wanted = {
        KVM_CPUID_SIGNATURE: CpuidEntry(KVM_CPUID_SIGNATURE, eax=KVM_CPUID_FEATURES, ebx=ebx, ecx=ecx, edx=edx),
        KVM_CPUID_FEATURES: CpuidEntry(KVM_CPUID_FEATURES, eax=features),
    }
    kept = [e for e in entries if e.function not in wanted]
    return kept + list(wanted.values())


def with_hypervisor(entries: Iterable[CpuidEntry]) -> list[CpuidEntry]:
    """`entries` with the hypervisor bit set in leaf 1 (KVM_GET_SUPPORTED_CPUID leaves it clear)."""
    out = []
    for e in entries:
        if e.function == FEATURES_LEAF:
            e = CpuidEntry(e.function, e.index, e.flags, e.eax, e.ebx, e.ecx | HYPERVISOR_BIT, e.edx)
        out.append(e)
    return out


def with_brand(entries: Iterable[CpuidEntry], brand: str) -> list[CpuidEntry]:
    """`entries` with `brand` (at most 47 ASCII characters) in leaves 0x80000002-4."""
    raw = brand.encode("ascii").ljust(48, b"\0")
    words = struct.unpack("<12I", raw)
    kept = []
    for e in entries:
        if e.function in BRAND_LEAVES:
            continue
        if e.function == EXTENDED_MAX and e.eax < BRAND_LEAVES[-1]:
            e = CpuidEntry(e.function, e.index, e.flags, BRAND_LEAVES[-1], e.ebx, e.ecx, e.edx)
        kept.append(e)
    return kept + [CpuidEntry(leaf, eax=words[4 * n], ebx=words[4 * n + 1], ecx=words[4 * n + 2], edx=words[4 * n + 3])
                   for n, leaf in enumerate(BRAND_LEAVES)]


# Where CPUID reports a processor's own APIC id, which KVM_GET_SUPPORTED_CPUID leaves 0 for all: leaf 1
# EBX[31:24] (initial APIC id), the x2APIC id in EDX of the topology leaves 0xB and 0x1F, the extended
# APIC id in EAX of AMD's 0x8000001E (Intel SDM CPUID; Firecracker's cpuid normalize sets the same)
APIC_ID_SHIFT, TOPOLOGY_LEAVES, AMD_APIC_ID_LEAF = 24, (0xB, 0x1F), 0x8000001E


def with_apic_id(entries: Iterable[CpuidEntry], apic_id: int) -> list[CpuidEntry]:
    """`entries` as vCPU `apic_id` must see them: Linux takes a CPU's topology from these ids, and with
    every vCPU reporting 0 it would count its second CPU as a sibling of the first."""
    out = []
    for e in entries:
        if e.function == FEATURES_LEAF:
            ebx = (e.ebx & 0x00FF_FFFF) | ((apic_id & 0xFF) << APIC_ID_SHIFT)
            e = CpuidEntry(e.function, e.index, e.flags, e.eax, ebx, e.ecx, e.edx)
        elif e.function in TOPOLOGY_LEAVES:
            e = CpuidEntry(e.function, e.index, e.flags, e.eax, e.ebx, e.ecx, apic_id)
        elif e.function == AMD_APIC_ID_LEAF:
            e = CpuidEntry(e.function, e.index, e.flags, apic_id, e.ebx, e.ecx, e.edx)
        out.append(e)
    return out


def supported_cpuid(m: Machine) -> list[CpuidEntry]:
    """The host's supported CPUID, asked once per run (not once per vCPU)."""
    with m.lock:
        if "cpuid" not in m.family_state:
            m.family_state["cpuid"] = m.kvm.supported_cpuid()
        return list(m.family_state["cpuid"])


def _set_cpuid2(m: Machine, step: Step) -> None:
    entries = with_kvm_leaves(supported_cpuid(m), step.args["signature"], step.args["features"])
    if step.args.get("hypervisor"):
        entries = with_hypervisor(entries)
    if "brand" in step.args:
        entries = with_brand(entries, step.args["brand"])
    vcpu_id = step.vcpu_id or 0
    m.vcpus[vcpu_id].set_cpuid2(with_apic_id(entries, vcpu_id) if vcpu_id else entries)


def _check_cpuid2(step: Step) -> None:
    if step.args["base"] not in CPUID_BASES:
        raise PlanError(f"{where(step)}: CPUID base {step.args['base']!r} is not one of {', '.join(CPUID_BASES)}")
    sig = step.args["signature"]
    if not sig.isascii() or len(sig) > 12:
        raise PlanError(f"{where(step)}: CPUID signature {sig!r} is not at most 12 ASCII characters")
    if not isinstance(step.args.get("hypervisor", False), bool):
        raise PlanError(f"{where(step)}: CPUID hypervisor should be true or false, got {step.args['hypervisor']!r}")
    brand = step.args.get("brand", "")
    if not isinstance(brand, str) or not brand.isascii() or len(brand) > 47:
        raise PlanError(f"{where(step)}: CPUID brand {brand!r} is not at most 47 ASCII characters")


def start_mode(m: Machine, vcpu_id: int) -> tuple[str, int]:
    """(mode name, tables address) the vCPU was started in (real mode, no tables, unless a step said)."""
    return m.family_state.get("modes", {}).get(vcpu_id, ("real", 0))


def _set_sregs(m: Machine, step: Step) -> None:
    vcpu_id = step.vcpu_id or 0
    mode, tables = MODES[step.args["mode"]], step.args.get("tables", 0)
    if mode.size:
        # Every vCPU of a mode gets the same bytes; writing them again is harmless.
        try:
            m.write(tables, mode.image(tables))
        except ValueError as err:  # placement was checked against the plan's slots, not their order
            raise PlanError(f"{where(step)}: the {mode.name} tables: {err} (yet)") from None
    vcpu = m.vcpus[vcpu_id]
    sregs = vcpu.sregs
    mode.apply(sregs, tables)
    vcpu.set_sregs(sregs)
    with m.lock:
        m.family_state.setdefault("modes", {})[vcpu_id] = (mode.name, tables)


def _check_sregs(step: Step) -> None:
    mode = MODES.get(step.args["mode"])
    if mode is None:
        raise PlanError(f"{where(step)}: sregs mode {step.args['mode']!r} is not one of {', '.join(MODES)}")
    tables = step.args.get("tables")
    if mode.size and (not isinstance(tables, int) or isinstance(tables, bool) or tables < 0 or tables % 4096):
        raise PlanError(f"{where(step)}: mode {mode.name} needs 'tables', the page-aligned guest address of "
                        f"the {mode.size:#x} bytes of GDT, IDT and page tables the runtime writes; got {tables!r}")


def reserved(plan: Plan) -> list[tuple[int, int, str]]:
    """(address, size, what) of the guest memory the start modes write."""
    areas = set()
    for s in plan.steps:
        if s.ioctl == "KVM_SET_SREGS" and s.args.get("mode") in MODES and MODES[s.args["mode"]].size:
            mode = MODES[s.args["mode"]]
            areas.add((s.args["tables"], mode.size, f"the {mode.name} tables of the runtime"))
    return sorted(areas)


def check_plan(plan: Plan) -> None:
    """Plan-wide checks beyond each step's: x86 has none."""


STEPS: dict[str, StepKind] = {
    "KVM_SET_TSS_ADDR": StepKind(("vm",), {"addr": int}, lambda m, s: vm_of(m).set_tss_addr(s.args["addr"])),
    "KVM_CREATE_IRQCHIP": StepKind(("vm",), {}, lambda m, s: vm_of(m).create_irqchip()),
    "KVM_CREATE_PIT2": StepKind(("vm",), {"flags": int}, lambda m, s: vm_of(m).create_pit2(s.args["flags"])),
    "KVM_SET_CPUID2": StepKind(("vcpu",), {"base": str, "signature": str, "features": int}, _set_cpuid2, _check_cpuid2),
    "KVM_SET_SREGS": StepKind(("vcpu",), {"mode": str}, _set_sregs, _check_sregs),
    "KVM_SET_REGS": regs_step("x86_64", entry="rip"),
}
