"""StepKind: how one ioctl appears in a plan (fd kinds, typed args, action, extra checks).

Shared by the generic step table (steps.py) and the per-architecture ones
(steps_ppc.py) so neither imports the other. Nothing else here.
Tests: tests/kvm/test_runtime.py.
"""

from __future__ import annotations

from hvconf.record import Record

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from hvconf.kvm.machine import Machine
    from hvconf.kvm.plan import Step
    from hvconf.kvm.vm import Vm


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
