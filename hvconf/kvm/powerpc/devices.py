"""The devices of a PowerPC machine: hypercall consoles and handlers, the e500 spin table and cpu clocks.

The plan's `console` is the sPAPR hvterm {kind: hvterm, reg} or the ePAPR
byte channel {kind: byte_channel}, both written through hypercalls, so a
console needs its `launcher` section: `papr` or `epapr`, whose handlers
(hypercalls.py) reach guest memory only through guest_phys.MachinePhys (the
slots appear later, when the plan's memory steps run). An e500 plan's
`launcher.epapr.spin_table` holds its secondary vCPUs until the guest
releases them (spin_table.py: Devices.held), and its `host_cells` put the
host's cpu clocks into the DTB image before it is loaded (host_cells.py).
The modules of a section load only for a plan that has it.
Tests: tests/kvm/test_runtime.py, tests/kvm/test_buffers_*.py, tests/ppc/.
"""

from __future__ import annotations

from hvconf.contract import PlanError
from hvconf.kvm.devices import Devices

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Callable

    from hvconf.contract import Plan
    from hvconf.kvm.images import Loaded
    from hvconf.kvm.machine import Machine
    from hvconf.kvm.output import Output

CONSOLES = ("hvterm", "byte_channel")  # consoles.HV_CONSOLE_KINDS, without importing it
SECTIONS = ("papr", "epapr")  # launcher sections served by hypercalls.py


def _epapr(plan: Plan, key: str) -> bool:
    epapr = plan.launcher.get("epapr")
    return isinstance(epapr, dict) and key in epapr


def check(plan: Plan) -> None:
    """Raise PlanError for a console or launcher section this launcher has no PowerPC device for."""
    if plan.console is not None and plan.console.kind not in CONSOLES:
        raise PlanError(f"plan console kind {plan.console.kind!r} is not a PowerPC console ({', '.join(CONSOLES)})")
    sections = [k for k in plan.launcher if k in SECTIONS]
    if len(sections) > 1:
        raise PlanError(f"plan.launcher: one hypercall section, not {', '.join(sections)}")
    if plan.console is not None and not sections:
        raise PlanError(f"plan console kind {plan.console.kind!r} is written through hypercalls, but "
                        f"plan.launcher has no {' or '.join(SECTIONS)} section to serve them")


def devices(plan: Plan, machine: Machine, out: Output) -> Devices:
    held = None
    if _epapr(plan, "spin_table"):  # e500 only: load the module for its plans
        from hvconf.kvm.powerpc.spin_table import from_plan

        held = from_plan(plan)
    section = next((k for k in plan.launcher if k in SECTIONS), None)
    if section is None:
        return Devices(held=held)
    from hvconf.kvm.guest_phys import MachinePhys
    from hvconf.kvm.powerpc.consoles import hv_console
    from hvconf.kvm.powerpc.hypercalls import handlers_for

    console = plan.console
    hv = hv_console({"kind": console.kind, "reg": console.reg}, out) if console is not None else None
    try:
        handlers = handlers_for({section: plan.launcher[section]}, console=hv, memory=MachinePhys(machine))
    except (ValueError, KeyError, TypeError) as err:
        raise PlanError(f"plan.launcher.{section}: {err}") from None
    return Devices(hcalls=handlers, held=held)


def prepare_images(plan: Plan, loaded: list[Loaded], note: Callable[[str], None]) -> list[Loaded]:
    """`loaded` with the host's cpu clocks in an e500 DTB where the plan says; other plans' as they are."""
    if not _epapr(plan, "host_cells"):
        return loaded
    from hvconf.kvm.powerpc.host_cells import patch

    return patch(plan, loaded, note)
