"""Plan steps only e500 (BookE) VMs have: the shared software TLB, and the host's hcall words.

KVM_ENABLE_CAP(KVM_CAP_SW_TLB) carries a `config` ({mmu_type, tlb_sizes,
tlb_ways}) instead of a pointer: `sw_tlb_args` builds the structs it
describes (hvconf.kvm.sw_tlb), keeps them in the Machine for the VM's life
and passes their address as args[0] (api.rst §6.3). KVM_DIRTY_TLB {entries}
writes the launcher's TLB entries (the ePAPR initial mapping) into that
vCPU's array and names them in the dirty bitmap, before its first KVM_RUN
(api.rst §4.60). `check_plan` makes sure each KVM_DIRTY_TLB follows its
vCPU's KVM_CAP_SW_TLB and names entries inside it, and checks the plan's
ePAPR spin table (hvconf.kvm.spin_table). KVM_PPC_GET_PVINFO
{expect} refuses a host whose hypercall instructions are not the ones the
device tree's /hypervisor hcall-instructions promises the guest (QEMU copies
them from this ioctl; hvconf wrote them at build time). Merged into steps.STEPS.
Tests: tests/kvm/test_buffers_e500_tlb.py (crafted; no e500 host exists here).
"""

from __future__ import annotations

from hvconf.kvm.errors import UnexpectedResult
from hvconf.kvm.machine import Machine
from hvconf.kvm.plan import Plan, PlanError, Step
from hvconf.kvm.step_kind import StepKind, vm_of, where

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from typing import Any

SW_TLB = "KVM_CAP_SW_TLB"
# Caps whose args[0] is the address of a struct the runtime builds from the step's `config`.
CONFIG_CAPS = frozenset({SW_TLB})


def sw_tlb_args(m: Machine, step: Step, fd: Any) -> list[int]:
    """KVM_ENABLE_CAP args with args[0] = the address of this vCPU's struct kvm_config_tlb."""
    from hvconf.kvm.sw_tlb import SharedTlb

    tlb = m.tlbs[step.vcpu_id or 0] = SharedTlb(fd.ffi, step.args["config"])
    return [tlb.address, *step.args["args"][1:]]


def check_config(step: Step) -> None:
    """A KVM_ENABLE_CAP step's `config`: only for CONFIG_CAPS, which need one."""
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
    from hvconf.kvm.sw_tlb import problems

    found = problems(config)
    if found:
        raise PlanError(f"{where(step)}: KVM would refuse this {cap} config: {'; '.join(found)}")


def _dirty_tlb(m: Machine, step: Step) -> None:
    vcpu_id = step.vcpu_id or 0
    tlb = m.tlbs[vcpu_id]  # check_plan: an earlier KVM_CAP_SW_TLB step of this vCPU made it
    tlb.dirty(m.vcpus[vcpu_id], tlb.write(step.args["entries"]))


def _check_dirty_tlb(step: Step) -> None:
    if not step.args["entries"]:
        raise PlanError(f"{where(step)}: no TLB entries to write")


def _sw_tlb_sizes(step: Step) -> list[int] | None:
    if step.ioctl == "KVM_ENABLE_CAP" and step.args.get("cap") == SW_TLB and "config" in step.args:
        return list(step.args["config"]["tlb_sizes"])
    return None


def check_plan(plan: Plan) -> None:
    """Each KVM_DIRTY_TLB comes after its vCPU's KVM_CAP_SW_TLB and writes entries inside that TLB;
    a spin table names vCPUs that can be released (hvconf.kvm.spin_table.check). Other plans load
    nothing for it."""
    epapr = plan.launcher.get("epapr")
    if isinstance(epapr, dict) and "spin_table" in epapr:
        from hvconf.kvm import spin_table

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
        from hvconf.kvm.sw_tlb import entry_problem

        for entry in step.args["entries"]:
            problem = entry_problem(entry, sizes[step.vcpu_id])
            if problem:
                raise PlanError(f"{where(step)}: {problem}")


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


E500_STEPS: dict[str, StepKind] = {
    "KVM_DIRTY_TLB": StepKind(("vcpu",), {"entries": list}, _dirty_tlb, _check_dirty_tlb),
    "KVM_PPC_GET_PVINFO": StepKind(("vm",), {"expect": list}, _pvinfo, _check_pvinfo),
}
