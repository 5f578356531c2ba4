"""Plan steps only PowerPC VMs have: sPAPR's HPT, radix MMU, TCE tables, RTAS tokens and XICS; e500's shared TLB.

sPAPR (Book3S): KVM_PPC_ALLOCATE_HTAB checks the order the kernel answers
(it writes the order it allocated back); KVM_CREATE_SPAPR_TCE(_64) keeps
each table's fd open in the Machine for the VM's lifetime (closing it would
drop the table, and the kernel then hands the guest's TCE hcalls for that
LIOBN to userspace). KVM_CREATE_DEVICE {type, device} (the in-kernel XICS) keeps
the device fd the same way, and a KVM_ENABLE_CAP carrying `device` (KVM_CAP_IRQ_XICS)
gets that fd as args[0].

e500 (BookE): KVM_ENABLE_CAP(KVM_CAP_SW_TLB) carries a `config` ({mmu_type,
tlb_sizes, tlb_ways}) instead of a pointer: the step builds the structs it
describes (sw_tlb.py), keeps them in the Machine for the VM's life and
passes their address as args[0] (api.rst §6.3). KVM_DIRTY_TLB {entries}
writes the launcher's TLB entries (the ePAPR initial mapping) into that
vCPU's array and names them in the dirty bitmap, before its first KVM_RUN
(api.rst §4.60). `check_plan` makes sure each KVM_DIRTY_TLB follows its
vCPU's KVM_CAP_SW_TLB and names entries inside it, and checks the plan's
ePAPR spin table (spin_table.py). KVM_PPC_GET_PVINFO {expect} refuses a
host whose hypercall instructions are not the ones the device tree's
/hypervisor hcall-instructions promises the guest (QEMU copies them from
this ioctl; hvconf wrote them at build time).

Both: KVM_SET_REGS names struct kvm_regs's fields, gpr as {"gpr": {"3": value}}
and pc defaulting to an ELF image's entry. Laid over the generic steps
(hvconf/kvm/steps.py). Tests: tests/kvm/test_runtime.py (validation, anywhere),
tests/kvm/test_buffers_e500_tlb.py (crafted; no e500 host exists here) and
tests/ppc/ (for real, on the POWER host).
"""

from __future__ import annotations

from hvconf.contract import PlanError
from hvconf.kvm.ioctls.errors import UnexpectedResult
from hvconf.kvm.steps import ENABLE_CAP_ARGS, StepKind, check_enable_cap, enable_cap, regs_step, vm_of, where

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from typing import Any

    from hvconf.contract import Plan, Step
    from hvconf.kvm.machine import Machine

U32 = 1 << 32
SW_TLB = "KVM_CAP_SW_TLB"
# Caps whose args[0] is the address of a struct the runtime builds from the step's `config`.
CONFIG_CAPS = frozenset({SW_TLB})


# -- sPAPR --


def _allocate_htab(m: Machine, step: Step) -> None:
    wanted = step.args["order"]
    got = vm_of(m).ppc_allocate_htab(wanted)
    if wanted and got != wanted:
        raise UnexpectedResult(step.ioctl, f"order {wanted}", f"order {got}")


def _check_order(step: Step) -> None:
    if not 0 <= step.args["order"] < U32:
        raise PlanError(f"{where(step)}: order {step.args['order']} is not a 32-bit unsigned integer")


def _tce(m: Machine, step: Step) -> None:
    a = step.args
    table = vm_of(m).create_spapr_tce(a["liobn"], a["window_size"])
    m.vm_fds[table.label] = table


def _tce_64(m: Machine, step: Step) -> None:
    a = step.args
    table = vm_of(m).create_spapr_tce_64(a["liobn"], a["page_shift"], a["offset"], a["size"], a["flags"])
    m.vm_fds[table.label] = table


def _check_liobn(step: Step) -> None:
    if not 0 <= step.args["liobn"] < 1 << 64:
        raise PlanError(f"{where(step)}: liobn {step.args['liobn']:#x} is not a 64-bit unsigned integer")


def _rtas_token(m: Machine, step: Step) -> None:
    vm_of(m).ppc_rtas_define_token(step.args["name"], step.args["token"])


def _check_rtas_token(step: Step) -> None:
    name = step.args["name"]
    if not name.isascii() or not 0 < len(name) < 120:  # struct kvm_rtas_token_args: char name[120]
        raise PlanError(f"{where(step)}: RTAS name {name!r} is not 1 to 119 ASCII characters")


def _create_device(m: Machine, step: Step) -> None:
    """KVM_CREATE_DEVICE {type, device}: the device's fd kept under `device` for the VM's lifetime;
    a later KVM_ENABLE_CAP with the same `device` passes it as args[0] (KVM_CAP_IRQ_XICS)."""
    m.vm_fds[step.args["device"]] = vm_of(m).create_device(step.args["type"], step.args["device"])


def _device_fd(m: Machine, step: Step) -> int:
    device = m.vm_fds.get(step.args["device"])
    if device is None:
        raise PlanError(f"{where(step)}: no earlier KVM_CREATE_DEVICE step made device {step.args['device']!r}")
    return device.fd


def _configure_v3_mmu(m: Machine, step: Step) -> None:
    vm_of(m).ppc_configure_v3_mmu(step.args["flags"], step.args["process_table"])


# -- e500 --


def _enable_cap(m: Machine, step: Step) -> None:
    if "device" in step.args:  # args[0] is the fd of a device an earlier step created
        enable_cap(m, step, [_device_fd(m, step), *step.args["args"][1:]])
        return
    if "config" not in step.args:
        enable_cap(m, step)
        return
    from hvconf.kvm.powerpc.sw_tlb import SharedTlb, keep

    fd = m.fd(step)
    tlb = keep(m, step.vcpu_id or 0, SharedTlb(fd.ffi, step.args["config"]))
    enable_cap(m, step, [tlb.address, *step.args["args"][1:]])  # args[0]: this vCPU's struct kvm_config_tlb


def _check_enable_cap(step: Step) -> None:
    """The generic args, and a `config` exactly for CONFIG_CAPS, which need one."""
    check_enable_cap(step)
    cap, config = step.args.get("cap"), step.args.get("config")
    if config is None:
        if cap in CONFIG_CAPS:
            raise PlanError(f"{where(step)}: {cap} needs 'config' (args[0] is the address of the struct "
                            "kvm_config_tlb the runtime builds from it)")  # fmt: skip
        return
    if cap not in CONFIG_CAPS:
        raise PlanError(f"{where(step)}: 'config' is for {', '.join(sorted(CONFIG_CAPS))}, not {cap!r}")
    if step.vcpu_id is None:
        raise PlanError(f"{where(step)}: {cap} is a vcpu cap (api.rst §6.3), not for the {step.fd} fd")
    from hvconf.kvm.powerpc.sw_tlb import problems

    found = problems(config)
    if found:
        raise PlanError(f"{where(step)}: KVM would refuse this {cap} config: {'; '.join(found)}")


def _dirty_tlb(m: Machine, step: Step) -> None:
    from hvconf.kvm.powerpc.sw_tlb import shared_tlb

    vcpu_id = step.vcpu_id or 0
    tlb = shared_tlb(m, vcpu_id)  # check_plan: an earlier KVM_CAP_SW_TLB step of this vCPU made it
    tlb.dirty(m.vcpus[vcpu_id], tlb.write(step.args["entries"]))


def _check_dirty_tlb(step: Step) -> None:
    if not step.args["entries"]:
        raise PlanError(f"{where(step)}: no TLB entries to write")


def _sw_tlb_sizes(step: Step) -> list[int] | None:
    if step.ioctl == "KVM_ENABLE_CAP" and step.args.get("cap") == SW_TLB and "config" in step.args:
        return list(step.args["config"]["tlb_sizes"])
    return None


def _words(words: Any) -> str:
    return "[" + ", ".join(f"{w:#010x}" for w in words) + "]"


def _pvinfo(m: Machine, step: Step) -> None:
    expect = list(step.args["expect"])
    got = list(vm_of(m).get_pvinfo().hcall[: len(expect)])
    if got != expect:
        raise UnexpectedResult(step.ioctl, f"hcall-instructions {_words(expect)}", _words(got))


def _check_pvinfo(step: Step) -> None:
    expect = step.args["expect"]
    if not 1 <= len(expect) <= 4 or not all(isinstance(w, int) and not isinstance(w, bool) and 0 <= w < 1 << 32
                                            for w in expect):  # fmt: skip
        raise PlanError(f"{where(step)}: expect should be 1 to 4 instruction words, got {expect!r}")


def check_plan(plan: Plan) -> None:
    """Each KVM_DIRTY_TLB comes after its vCPU's KVM_CAP_SW_TLB and writes entries inside that TLB;
    a spin table names vCPUs that can be released (spin_table.check). Other plans load nothing for it."""
    epapr = plan.launcher.get("epapr")
    if isinstance(epapr, dict) and "spin_table" in epapr:
        from hvconf.kvm.powerpc import spin_table

        table = spin_table.from_plan(plan)
        if table is not None:
            spin_table.check(plan, table)
    sizes: dict[int | None, list[int]] = {}
    for step in plan.steps:
        found = _sw_tlb_sizes(step)
        if found is not None:
            sizes[step.vcpu_id] = found
        if step.ioctl != "KVM_DIRTY_TLB":
            continue
        if step.vcpu_id not in sizes:
            raise PlanError(f"{where(step)}: no earlier {SW_TLB} step gives vcpu {step.vcpu_id} a shared TLB")
        from hvconf.kvm.powerpc.sw_tlb import entry_problem

        for entry in step.args["entries"]:
            problem = entry_problem(entry, sizes[step.vcpu_id])
            if problem:
                raise PlanError(f"{where(step)}: {problem}")


def reserved(plan: Plan) -> list[tuple[int, int, str]]:
    """Guest memory the runtime writes itself: none on PowerPC (its tables are plan images)."""
    return []


STEPS: dict[str, StepKind] = {
    "KVM_ENABLE_CAP": StepKind(("vm", "vcpu"), ENABLE_CAP_ARGS, _enable_cap, _check_enable_cap),
    "KVM_SET_REGS": regs_step("powerpc64", entry="pc", gprs="gpr"),
    "KVM_PPC_ALLOCATE_HTAB": StepKind(("vm",), {"order": int}, _allocate_htab, _check_order),
    "KVM_CREATE_SPAPR_TCE": StepKind(("vm",), {"liobn": int, "window_size": int}, _tce, _check_liobn),
    "KVM_CREATE_SPAPR_TCE_64": StepKind(
        ("vm",), {"liobn": int, "page_shift": int, "offset": int, "size": int, "flags": int}, _tce_64, _check_liobn
    ),
    "KVM_PPC_RTAS_DEFINE_TOKEN": StepKind(("vm",), {"name": str, "token": int}, _rtas_token, _check_rtas_token),
    "KVM_PPC_CONFIGURE_V3_MMU": StepKind(("vm",), {"flags": int, "process_table": int}, _configure_v3_mmu),
    "KVM_CREATE_DEVICE": StepKind(("vm",), {"type": int, "device": str}, _create_device),
    "KVM_DIRTY_TLB": StepKind(("vcpu",), {"entries": list}, _dirty_tlb, _check_dirty_tlb),
    "KVM_PPC_GET_PVINFO": StepKind(("vm",), {"expect": list}, _pvinfo, _check_pvinfo),
}
