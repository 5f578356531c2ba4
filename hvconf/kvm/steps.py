"""What each plan step does: one StepKind per ioctl name, with its fd kinds and args.

`table(arch)` is the steps every arch has (KVM_CREATE_VM, KVM_ENABLE_CAP,
KVM_SET_USER_MEMORY_REGION, KVM_CREATE_VCPU, KVM_RUN) with the arch family's
own (hvconf/kvm/<family>/steps.py: STEPS, which may also replace one of
these) laid over them. `validate(plan)` checks every step before anything is
opened (known ioctl, allowed fd kind, fd created by an earlier step, args
present and typed, KVM_RUN steps last and one per vCPU, then the family's
plan-wide checks); `table[ioctl].apply(machine, step)` then issues it, from
whichever thread run.py gives it to. KVM_RUN is validated here but driven by
vcpu_thread.py. `regs_step` builds a family's KVM_SET_REGS from its register
names. Host checks are not made here. Tests: tests/kvm/test_runtime.py,
tests/kvm/test_modes.py.
"""

from __future__ import annotations

import mmap

from hvconf.contract import PlanError, decimal
from hvconf.kvm import devices, families
from hvconf.kvm.ioctls.cdefs import load as declarations
from hvconf.kvm.ioctls.memory import GuestMemory
from hvconf.kvm.ioctls.vcpu import Vcpu
from hvconf.kvm.ioctls.vm import Vm
from hvconf.kvm.machine import Slot
from hvconf.record import Record

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any

    from hvconf.contract import Plan, Step
    from hvconf.kvm.machine import Machine


def _no_check(step: Step) -> None:
    pass


class StepKind(Record):
    """How one ioctl appears in a plan: allowed fd kinds, required typed args, the action."""

    __slots__ = ("fds", "args", "apply", "check")
    _defaults = {"check": _no_check}
    fds: tuple[str, ...]  # "system", "vm", "vcpu"
    args: Mapping[str, type]
    apply: Callable[[Machine, Step], object]  # the result (an ioctl's return value) is ignored
    check: Callable[[Step], None]  # extra static checks (default: none)


def where(step: Step) -> str:
    return f"plan step {step.index} {step.ioctl} ({step.source})"


def vm_of(m: Machine) -> Vm:
    assert m.vm is not None  # validate() put KVM_CREATE_VM first
    return m.vm


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
    if n not in m.loaded:  # new memory, or memory a restart kept: the images (again)
        m.loaded.add(n)
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


def enable_cap(m: Machine, step: Step, args: list[int] | None = None) -> None:
    """KVM_ENABLE_CAP on the step's vm or vcpu fd; `args` replaces the plan's (a family that builds args[0])."""
    fd = m.fd(step)
    assert isinstance(fd, (Vm, Vcpu))  # the step's fds say so
    fd.enable_cap(step.args["cap_nr"], step.args["args"] if args is None else args, step.args["flags"])


def check_enable_cap(step: Step) -> None:
    """The args of any KVM_ENABLE_CAP; a family whose caps take a `config` adds its own checks."""
    args = step.args["args"]
    if len(args) > 4 or not all(isinstance(x, int) and not isinstance(x, bool) for x in args):
        raise PlanError(f"{where(step)}: args should be at most 4 integers, got {args!r}")


def _check_enable_cap(step: Step) -> None:
    check_enable_cap(step)
    if "config" in step.args:  # hvconf/kvm/powerpc/steps.py replaces this step for the caps that take one
        raise PlanError(f"{where(step)}: no cap of this arch takes a 'config', {step.args.get('cap')!r} neither")


def _create_vcpu(m: Machine, step: Step) -> None:
    vcpu_id = step.args["vcpu_id"]
    m.vcpus[vcpu_id] = vm_of(m).create_vcpu(vcpu_id)


def _not_here(m: Machine, step: Step) -> None:
    raise AssertionError("KVM_RUN steps are driven by hvconf.kvm.vcpu_thread")


ENABLE_CAP_ARGS = {"cap_nr": int, "flags": int, "args": list}
GENERIC: dict[str, StepKind] = {
    "KVM_CREATE_VM": StepKind(("system",), {"type": int}, _create_vm),
    "KVM_ENABLE_CAP": StepKind(("vm", "vcpu"), ENABLE_CAP_ARGS, enable_cap, _check_enable_cap),
    "KVM_SET_USER_MEMORY_REGION": StepKind(
        ("vm",),
        {"slot": int, "flags": int, "guest_phys_addr": int, "memory_size": int, "userspace_addr": str},
        _user_memory,
        _check_user_memory,
    ),
    "KVM_CREATE_VCPU": StepKind(("vm",), {"vcpu_id": int}, _create_vcpu),
    "KVM_RUN": StepKind(("vcpu",), {}, _not_here),
}


# -- KVM_SET_REGS: generic mechanics, the family's register names --


_REGS_FIELDS: dict[str, dict[str, int]] = {}  # memos as dicts: functools (and collections) cost a launch ~2 ms
_TABLES: dict[str, Mapping[str, StepKind]] = {}


def _regs_fields(layout: str) -> dict[str, int]:
    """struct kvm_regs's fields in `layout`: name -> array length (0: a scalar)."""
    if layout not in _REGS_FIELDS:
        fields = declarations(layout).typeof("struct kvm_regs").fields
        _REGS_FIELDS[layout] = {name: (field.type.length or 0) if field.type.kind == "array" else 0
                                for name, field in fields}  # fmt: skip
    return _REGS_FIELDS[layout]


def regs_step(layout: str, entry: str, gprs: str | None = None) -> StepKind:
    """KVM_SET_REGS for a family whose struct kvm_regs is `layout`'s. Registers the plan does not name
    are 0: the plan is the whole truth, except a missing `entry` register, which is an ELF image's
    entry point when there is one. `gprs` names the array the plan may fill as {"gpr": {"3": value}}."""

    def apply(m: Machine, step: Step) -> None:
        regs: dict[str, Any] = {k: v for k, v in step.args.items() if k != gprs}
        if entry not in regs and m.entry is not None:
            regs[entry] = m.entry
        if gprs is not None and gprs in step.args:
            values = [0] * _regs_fields(layout)[gprs]
            for index, value in step.args[gprs].items():
                values[int(index)] = value
            regs[gprs] = values
        vcpu = m.vcpus[step.vcpu_id or 0]
        vcpu.set_regs(vcpu.new("struct kvm_regs *", regs))

    def check(step: Step) -> None:
        fields = _regs_fields(layout)
        for name, value in step.args.items():
            if name == gprs:
                count = fields[gprs]
                if not isinstance(value, dict) or not all(isinstance(k, str) and k.isdigit() and int(k) < count
                                                          for k in value):  # fmt: skip
                    raise PlanError(f"{where(step)}: {gprs} should map register numbers 0..{count - 1} to values, "
                                    f"got {value!r}")
                for index, reg in value.items():
                    _check_register(step, f"{gprs}[{index}]", reg)
                continue
            if name not in fields or fields[name]:
                raise PlanError(f"{where(step)}: {name!r} is not a field of struct kvm_regs")
            _check_register(step, name, value)

    return StepKind(("vcpu",), {}, apply, check)


def _check_register(step: Step, name: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 1 << 64:
        raise PlanError(f"{where(step)}: register {name} = {value!r} is not a 64-bit unsigned integer")


# -- the table of a plan's arch, and validation --


def table(arch: str) -> Mapping[str, StepKind]:
    """Every step `arch`'s plans may hold: the generic ones with the family's laid over them."""
    if arch not in _TABLES:
        _TABLES[arch] = {**GENERIC, **families.part(arch, "steps").STEPS}
    return _TABLES[arch]


def reserved(plan: Plan) -> list[tuple[int, int, str]]:
    """(address, size, what) of the guest memory the runtime writes itself (x86: the start modes' tables)."""
    return families.part(plan.arch, "steps").reserved(plan)


def validate(plan: Plan) -> None:
    """Raise PlanError for the first step this runtime could not issue as written."""
    devices.check(plan)
    steps = table(plan.arch)
    have_vm, vcpus = False, set()
    for step in plan.steps:
        kind = steps.get(step.ioctl)
        if kind is None:
            raise PlanError(f"{where(step)}: this runtime does not issue {step.ioctl} (it knows {', '.join(steps)})")
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
    families.part(plan.arch, "steps").check_plan(plan)
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
