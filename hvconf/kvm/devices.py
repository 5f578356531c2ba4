"""The devices a plan's `console` and `launcher` sections ask the runtime for.

`devices(plan, machine, out)` returns the port-I/O console (x86 serial) and
the userspace hypercall handlers (sPAPR hvterm/RTAS/TCE, ePAPR byte channel)
with the hypercall console they write to; every console writes to `out`, the
run's output.Output (raw or safe, errors as OutputError). Handlers reach guest memory only
through `MachinePhys`, which asks the machine's slots at call time (the
slots appear later, when the plan's memory steps run). The hypercall
modules load only for a plan that has such a section, so an x86 launch does
not pay for them. Tests: tests/kvm/test_runtime.py, tests/ppc/.
"""

from __future__ import annotations

from hvconf.kvm.console import CONSOLE_KINDS
from hvconf.kvm.plan import PlanError
from hvconf.record import Record

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from typing import Any

    from hvconf.kvm.console import Console
    from hvconf.kvm.machine import Machine
    from hvconf.kvm.output import Output
    from hvconf.kvm.plan import Plan

HCALL_CONSOLE_KINDS = ("hvterm", "byte_channel")  # hvconf.kvm.console_hv.HV_CONSOLE_KINDS, without importing it
HCALL_SECTIONS = ("papr", "epapr")  # launcher sections served by hvconf.kvm.hcall (x86's by x86_hypercall.py)


class Devices(Record):
    __slots__ = ("console", "hcalls")
    console: Console | None  # answers port I/O exits
    hcalls: Any | None  # hvconf.kvm.hcall handlers: .handle(exit) -> Reply


class MachinePhys:
    """hcall.memory.GuestPhys over a Machine's memory slots as they are when called."""

    def __init__(self, machine: Machine) -> None:
        self.machine = machine

    def read(self, gpa: int, length: int) -> bytes:
        from hvconf.kvm.hcall.memory import GuestAccessError

        data = self.machine.read(gpa, length) if gpa >= 0 and length >= 0 else None
        if data is None:
            raise GuestAccessError(f"{length} bytes at {gpa:#x} are not inside one memory slot")
        return data

    def write(self, gpa: int, data: bytes) -> None:
        from hvconf.kvm.hcall.memory import GuestAccessError

        try:
            self.machine.write(gpa, data)
        except ValueError as err:
            raise GuestAccessError(str(err)) from None


def check(plan: Plan) -> None:
    """Raise PlanError for a console or launcher section this runtime has no device for."""
    if plan.console is not None and plan.console.kind not in (*CONSOLE_KINDS, *HCALL_CONSOLE_KINDS):
        raise PlanError(f"plan console kind {plan.console.kind!r} is not one of "
                        f"{', '.join((*CONSOLE_KINDS, *HCALL_CONSOLE_KINDS))}")
    sections = [k for k in plan.launcher if k in HCALL_SECTIONS]
    if len(sections) > 1:
        raise PlanError(f"plan.launcher: one hypercall section, not {', '.join(sections)}")
    if plan.console is not None and plan.console.kind in HCALL_CONSOLE_KINDS and not sections:
        raise PlanError(f"plan console kind {plan.console.kind!r} is written through hypercalls, but "
                        f"plan.launcher has no {' or '.join(HCALL_SECTIONS)} section to serve them")


def devices(plan: Plan, machine: Machine, out: Output) -> Devices:
    console = plan.console
    port_console = None
    if console is not None and console.kind in CONSOLE_KINDS:
        if console.port is None:
            raise PlanError(f"plan.console: a {console.kind} console needs its 'port'")
        port_console = CONSOLE_KINDS[console.kind](console.port, out)
    section = next((k for k in plan.launcher if k in HCALL_SECTIONS), None)
    if section is None:
        return Devices(port_console, None)
    from hvconf.kvm.console_hv import hv_console
    from hvconf.kvm.hcall import handlers_for

    hv = None
    if console is not None and console.kind in HCALL_CONSOLE_KINDS:
        hv = hv_console({"kind": console.kind, "reg": console.reg}, out)
    try:
        handlers = handlers_for({section: plan.launcher[section]}, console=hv, memory=MachinePhys(machine))
    except (ValueError, KeyError, TypeError) as err:
        raise PlanError(f"plan.launcher.{section}: {err}") from None
    return Devices(port_console, handlers)
