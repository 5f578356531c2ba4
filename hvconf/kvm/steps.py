"""What each plan step does: one handler per ioctl name, with its fd kinds and args.

`validate(plan)` checks every step before anything is opened (known ioctl,
allowed fd kind, fd created by an earlier step, args present and typed,
KVM_RUN steps last and one per vCPU); `STEPS[ioctl].apply(machine, step)`
then issues it, from whichever thread run.py gives it to. KVM_RUN is
validated here but driven by vcpu_thread.py. Host checks are not made
here. Tests: tests/kvm/test_runtime.py, tests/kvm/test_modes.py.
"""

from __future__ import annotations

import mmap

from hvconf.kvm import devices
from hvconf.kvm.ffi import ffi
from hvconf.kvm.machine import Machine, Slot
from hvconf.kvm.memory import GuestMemory
from hvconf.kvm.plan import Plan, PlanError, Step, decimal
from hvconf.kvm import steps_e500
from hvconf.kvm.step_kind import StepKind, vm_of, where
from hvconf.kvm.steps_e500 import E500_STEPS
from hvconf.kvm.steps_ppc import PPC_STEPS
from hvconf.kvm.vcpu import Vcpu
from hvconf.kvm.vm import Vm
from hvconf.kvm.x86 import with_kvm_leaves
from hvconf.kvm.x86_modes import MODES

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from typing import Any
REGS_FIELDS = frozenset(name for name, _ in ffi.typeof("struct kvm_regs").fields)
# The register an ELF image's entry point goes to when the plan names none (x86 rip, PowerPC pc).
ENTRY_REGISTER = "rip" if "rip" in REGS_FIELDS else "pc"
GPRS = 32 if "gpr" in REGS_FIELDS else 0  # PowerPC: args may name general registers as {"gpr": {"3": value}}
CPUID_BASES = ("supported",)


def _create_vm(m: Machine, step: Step) -> None:
    m.vm = m.kvm.create_vm(step.args["type"])


def _user_memory(m: Machine, step: Step) -> None:
    a = step.args
    n = _memory_index(a["userspace_addr"])
    assert n is not None  # validate() checked it
    region = m.memory.get(n)
    if region is not None and region.size != a["memory_size"]:
        raise PlanError(f"{where(step)}: memory:{n} is {region.size:#x} bytes already, not {a['memory_size']:#x}")
    if region is None:
        region = m.memory[n] = GuestMemory(a["memory_size"])
        # images go in before the kernel sees the slot; check_placement put each chunk inside one slot
        for image in m.images:
            for addr, data in image.chunks:
                if a["guest_phys_addr"] <= addr < a["guest_phys_addr"] + a["memory_size"]:
                    region.write(addr - a["guest_phys_addr"], data)
    vm_of(m).set_user_memory_region(a["slot"], a["guest_phys_addr"], a["memory_size"], region.address, a["flags"])
    m.slots.append(Slot(a["guest_phys_addr"], a["memory_size"], region))


def _memory_index(name: str) -> int | None:
    """N of "memory:N", else None."""
    return int(name[7:]) if name.startswith("memory:") and decimal(name[7:]) else None


def _check_user_memory(step: Step) -> None:
    if _memory_index(step.args["userspace_addr"]) is None:
        raise PlanError(f"{where(step)}: userspace_addr {step.args['userspace_addr']!r} is not 'memory:N'")
    size = step.args["memory_size"]
    if size <= 0 or size % mmap.PAGESIZE:
        raise PlanError(f"{where(step)}: memory_size {size:#x} is not a positive multiple of {mmap.PAGESIZE:#x}")


def _enable_cap(m: Machine, step: Step) -> None:
    fd = m.fd(step)
    assert isinstance(fd, (Vm, Vcpu))
    args = step.args["args"]
    if "config" in step.args:  # args[0] points at structs built here (e500 KVM_CAP_SW_TLB)
        args = steps_e500.sw_tlb_args(m, step, fd)
    fd.enable_cap(step.args["cap_nr"], args, step.args["flags"])


def _check_enable_cap(step: Step) -> None:
    args = step.args["args"]
    if len(args) > 4 or not all(isinstance(x, int) and not isinstance(x, bool) for x in args):
        raise PlanError(f"{where(step)}: args should be at most 4 integers, got {args!r}")
    steps_e500.check_config(step)


def _set_cpuid2(m: Machine, step: Step) -> None:
    entries = with_kvm_leaves(m.supported_cpuid(), step.args["signature"], step.args["features"])
    m.vcpus[step.vcpu_id or 0].set_cpuid2(entries)


def _check_cpuid2(step: Step) -> None:
    if step.args["base"] not in CPUID_BASES:
        raise PlanError(f"{where(step)}: CPUID base {step.args['base']!r} is not one of {', '.join(CPUID_BASES)}")
    sig = step.args["signature"]
    if not sig.isascii() or len(sig) > 12:
        raise PlanError(f"{where(step)}: CPUID signature {sig!r} is not at most 12 ASCII characters")


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
    m.modes[vcpu_id] = (mode.name, tables)


def _check_sregs(step: Step) -> None:
    mode = MODES.get(step.args["mode"])
    if mode is None:
        raise PlanError(f"{where(step)}: sregs mode {step.args['mode']!r} is not one of {', '.join(MODES)}")
    tables = step.args.get("tables")
    if mode.size and (not isinstance(tables, int) or isinstance(tables, bool) or tables < 0 or tables % 4096):
        raise PlanError(f"{where(step)}: mode {mode.name} needs 'tables', the page-aligned guest address of "
                        f"the {mode.size:#x} bytes of GDT, IDT and page tables the runtime writes; got {tables!r}")


def reserved(plan: Plan) -> list[tuple[int, int, str]]:
    """(address, size, what) of the guest memory the x86 start modes write."""
    areas = set()
    for s in plan.steps:
        if s.ioctl == "KVM_SET_SREGS" and s.args.get("mode") in MODES and MODES[s.args["mode"]].size:
            mode = MODES[s.args["mode"]]
            areas.add((s.args["tables"], mode.size, f"the {mode.name} tables of the runtime"))
    return sorted(areas)


def _set_regs(m: Machine, step: Step) -> None:
    # Registers the plan does not name are 0: the plan is the whole truth,
    # except a missing entry register, which is an ELF image's entry point when there is one.
    regs: dict[str, Any] = {k: v for k, v in step.args.items() if k != "gpr"}
    if ENTRY_REGISTER not in regs and m.entry is not None:
        regs[ENTRY_REGISTER] = m.entry
    if "gpr" in step.args:
        gpr = [0] * GPRS
        for index, value in step.args["gpr"].items():
            gpr[int(index)] = value
        regs["gpr"] = gpr
    m.vcpus[step.vcpu_id or 0].set_regs(ffi.new("struct kvm_regs *", regs))


def _check_regs(step: Step) -> None:
    for name, value in step.args.items():
        if name == "gpr" and GPRS:
            if not isinstance(value, dict) or not all(isinstance(k, str) and k.isdigit() and int(k) < GPRS
                                                      for k in value):  # fmt: skip
                raise PlanError(f"{where(step)}: gpr should map register numbers 0..{GPRS - 1} to values, "
                                f"got {value!r}")
            for index, reg in value.items():
                _check_register(step, f"gpr[{index}]", reg)
            continue
        if name not in REGS_FIELDS or name == "gpr":
            raise PlanError(f"{where(step)}: {name!r} is not a field of struct kvm_regs")
        _check_register(step, name, value)


def _check_register(step: Step, name: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 1 << 64:
        raise PlanError(f"{where(step)}: register {name} = {value!r} is not a 64-bit unsigned integer")


def _create_vcpu(m: Machine, step: Step) -> None:
    vcpu_id = step.args["vcpu_id"]
    m.vcpus[vcpu_id] = vm_of(m).create_vcpu(vcpu_id)


def _not_here(m: Machine, step: Step) -> None:
    raise AssertionError("KVM_RUN steps are driven by hvconf.kvm.vcpu_thread")


STEPS: dict[str, StepKind] = {
    "KVM_CREATE_VM": StepKind(("system",), {"type": int}, _create_vm),
    "KVM_SET_TSS_ADDR": StepKind(("vm",), {"addr": int}, lambda m, s: vm_of(m).set_tss_addr(s.args["addr"])),
    "KVM_ENABLE_CAP": StepKind(("vm", "vcpu"), {"cap_nr": int, "flags": int, "args": list}, _enable_cap, _check_enable_cap),
    "KVM_CREATE_IRQCHIP": StepKind(("vm",), {}, lambda m, s: vm_of(m).create_irqchip()),
    "KVM_CREATE_PIT2": StepKind(("vm",), {"flags": int}, lambda m, s: vm_of(m).create_pit2(s.args["flags"])),
    "KVM_SET_USER_MEMORY_REGION": StepKind(
        ("vm",),
        {"slot": int, "flags": int, "guest_phys_addr": int, "memory_size": int, "userspace_addr": str},
        _user_memory,
        _check_user_memory,
    ),
    "KVM_CREATE_VCPU": StepKind(("vm",), {"vcpu_id": int}, _create_vcpu),
    "KVM_SET_CPUID2": StepKind(("vcpu",), {"base": str, "signature": str, "features": int}, _set_cpuid2, _check_cpuid2),
    "KVM_SET_SREGS": StepKind(("vcpu",), {"mode": str}, _set_sregs, _check_sregs),
    "KVM_SET_REGS": StepKind(("vcpu",), {}, _set_regs, _check_regs),
    "KVM_RUN": StepKind(("vcpu",), {}, _not_here),
    **PPC_STEPS,
    **E500_STEPS,
}


def validate(plan: Plan) -> None:
    """Raise PlanError for the first step this runtime could not issue as written."""
    devices.check(plan)
    have_vm, vcpus = False, set()
    for step in plan.steps:
        kind = STEPS.get(step.ioctl)
        if kind is None:
            raise PlanError(f"{where(step)}: this runtime does not issue {step.ioctl} (it knows {', '.join(STEPS)})")
        fd_kind = step.fd.split(":")[0]
        if fd_kind not in kind.fds:
            raise PlanError(f"{where(step)}: {step.ioctl} goes to a {' or '.join(kind.fds)} fd, not {step.fd}")
        if fd_kind == "vm" and not have_vm:
            raise PlanError(f"{where(step)}: no KVM_CREATE_VM step before it")
        if fd_kind == "vcpu" and step.vcpu_id not in vcpus:
            raise PlanError(f"{where(step)}: no KVM_CREATE_VCPU step creates vcpu {step.vcpu_id} before it")
        for name, kind_of in kind.args.items():
            value = step.args.get(name)
            if not isinstance(value, kind_of) or (kind_of is int and isinstance(value, bool)):
                raise PlanError(f"{where(step)}: arg {name!r} should be {kind_of.__name__}, got {value!r}")
        kind.check(step)
        have_vm |= step.ioctl == "KVM_CREATE_VM"
        if step.ioctl == "KVM_CREATE_VCPU":
            vcpus.add(step.args["vcpu_id"])
    steps_e500.check_plan(plan)
    _check_runs(plan)


def _check_runs(plan: Plan) -> None:
    # The vCPUs start once every set-up step is done, so KVM_RUN steps close the plan.
    runs = [s for s in plan.steps if s.ioctl == "KVM_RUN"]
    if runs and any(s.ioctl != "KVM_RUN" for s in plan.steps[runs[0].index :]):
        late = next(s for s in plan.steps[runs[0].index :] if s.ioctl != "KVM_RUN")
        raise PlanError(f"{where(late)}: comes after a KVM_RUN step; KVM_RUN steps must end the plan")
    seen: set[int | None] = set()
    for step in runs:
        if step.vcpu_id in seen:
            raise PlanError(f"{where(step)}: a second KVM_RUN for vcpu {step.vcpu_id}")
        seen.add(step.vcpu_id)
