"""The devices of a PowerPC machine: hypercall consoles and handlers, the e500 spin table and cpu clocks.

The plan's `console` is the sPAPR hvterm {kind: hvterm, reg} or the ePAPR
byte channel {kind: byte_channel}, both written through hypercalls, so a
console needs its `launcher` section: `papr` or `epapr`, whose handlers
(hypercalls.py) reach guest memory only through guest_phys.MachinePhys (the
slots appear later, when the plan's memory steps run). An e500 plan's
`launcher.epapr.spin_table` holds its secondary vCPUs until the guest
releases them (spin_table.py: Devices.held), and its `host_cells` put the
host's cpu clocks into the DTB image before it is loaded (host_cells.py).
When the run is traced, its end lists what the guest put in each sPAPR TCE
table (tce_tables.py: read through the tables' fds, before they close).
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
    if hv is not None:
        from hvconf.kvm.powerpc.consoles import terminal_input

        terminal_input(hv)  # a terminal's keys reach H_GET_TERM_CHAR / EV_BYTE_CHANNEL_RECEIVE
    try:
        handlers = handlers_for({section: plan.launcher[section]}, console=hv, memory=MachinePhys(machine),
                                configure_mmu=_configure_mmu(machine))
    except (ValueError, KeyError, TypeError) as err:
        raise PlanError(f"plan.launcher.{section}: {err}") from None
    return Devices(hcalls=handlers, held=held, close=_table_report(plan, machine))


TABLE_STEPS = ("KVM_CREATE_SPAPR_TCE", "KVM_CREATE_SPAPR_TCE_64")


def _table_report(plan: Plan, machine: Machine) -> Callable[[], None] | None:
    """What the run's end does for a traced plan with TCE tables: a line per table, as KVM holds it."""
    note = machine.note
    if note is None or not any(s.ioctl in TABLE_STEPS for s in plan.steps):
        return None

    def report() -> None:
        from hvconf.kvm.powerpc.tce_tables import report as table_lines

        table_lines(plan, machine, note)

    return report


def _configure_mmu(machine: Machine) -> Callable[[int, int], int]:
    """KVM_PPC_CONFIGURE_V3_MMU on the machine's VM for H_REGISTER_PROC_TBL: 0, or -errno."""
    from hvconf.kvm.ioctls.errors import KvmError

    def configure(flags: int, process_table: int) -> int:
        if machine.vm is None:
            return -19  # ENODEV: no VM yet
        try:
            machine.vm.ppc_configure_v3_mmu(flags, process_table)
        except KvmError as err:
            return -err.errno
        return 0

    return configure


def _initrd_end(plan: Plan, loaded: list[Loaded]) -> list[Loaded]:
    """An sPAPR DTB whose /chosen/linux,initrd-end (at plan.launcher.papr.initrd_end, a u64) is the end of
    the initrd as loaded: the build's, or the one --initrd gave, whatever its size."""
    papr = plan.launcher.get("papr")
    at = papr.get("initrd_end") if isinstance(papr, dict) else None
    initrd = next((im for im in loaded if im.name == "initrd"), None)
    if at is None or initrd is None:
        return loaded
    if not isinstance(at, int) or isinstance(at, bool):
        raise PlanError(f"plan.launcher.papr.initrd_end should be an offset in the DTB, got {at!r}")
    from hvconf.kvm.images import Loaded

    [(start, data)] = initrd.chunks  # an initrd is one flat chunk
    out = []
    for image in loaded:
        if image.name == "fdt":
            [(gpa, blob)] = image.chunks
            if not 0 <= at <= len(blob) - 8:
                raise PlanError(f"plan.launcher.papr.initrd_end {at} lies outside the {len(blob)}-byte DTB")
            image = Loaded("fdt", ((gpa, blob[:at] + (start + len(data)).to_bytes(8, "big") + blob[at + 8 :]),))
        out.append(image)
    return out


def prepare_images(plan: Plan, loaded: list[Loaded], note: Callable[[str], None]) -> list[Loaded]:
    """`loaded` with the initrd's end in an sPAPR DTB and the host's cpu clocks in an e500 DTB, where
    the plan says; other plans' as they are."""
    loaded = _initrd_end(plan, loaded)
    if not _epapr(plan, "host_cells"):
        return loaded
    from hvconf.kvm.powerpc.host_cells import patch

    return patch(plan, loaded, note)
