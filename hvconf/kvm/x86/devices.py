"""The devices of an x86 machine: the platform's port writes, the 16550 console, the hypercall handlers.

Port writes that end the machine, answered before any console: a power-off
(SLP_EN at port 0x604, as QEMU's q35 PM1a_CNT) ends it HALTED, an i8042 reset
(0xFE to port 0x64) ends it GUEST_SHUTDOWN marked REBOOT (Linux's `reboot=k`
path, arch/x86/kernel/reboot.c; run.py restarts it under --on-reboot restart),
and an exception reaching the runtime's IDT stubs (their `out` to
modes.EXCEPTION_PORT, decoded from the frame the CPU pushed) ends it
GUEST_SHUTDOWN. The plan's `console` {kind: serial, port} is a 16550
(serial.py) writing to the run's output; `launcher.x86.exit_hypercalls` the
hypercalls answered here (hypercalls.py). `check(plan)` refuses, before
anything is opened, what the launcher has no device for.
Tests: tests/kvm/test_runtime.py, tests/kvm/test_modes.py.
"""

from __future__ import annotations

from _collections_abc import Mapping  # collections.abc's source: importing collections costs ~2 ms

from hvconf.contract import PlanError, typed
from hvconf.kvm.devices import Devices
from hvconf.kvm.status import REBOOT, Status
from hvconf.kvm.x86.modes import EXCEPTION_PORT, MODES, fault, stub_vector
from hvconf.kvm.x86.serial import Serial16550
from hvconf.kvm.x86.steps import start_mode

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from hvconf.contract import Plan
    from hvconf.kvm.images import Loaded
    from hvconf.kvm.ioctls.kvm_run import Io
    from hvconf.kvm.machine import Machine
    from hvconf.kvm.output import Output
    from hvconf.kvm.vcpu_loop import ExitLoop, Outcome
    from hvconf.kvm.x86.hypercalls import X86Hypercalls

CONSOLES = ("serial",)
POWER_OFF_PORT, SLP_EN = 0x604, 0x2000
RESET_PORT, RESET = 0x64, 0xFE


def _value(ex: Io) -> int:
    return int.from_bytes(ex.data[: ex.size], "little")


def _power_off(loop: ExitLoop, ex: Io) -> Outcome:
    if _value(ex) & SLP_EN:
        return Status.HALTED, f"guest powered off (SLP_EN at port {POWER_OFF_PORT:#x})"
    return None


def _reset(loop: ExitLoop, ex: Io) -> Outcome:
    if _value(ex) == RESET:
        return Status.GUEST_SHUTDOWN, f"guest asked for a reset ({RESET:#x} to i8042 port {RESET_PORT:#x})", REBOOT
    return None


def _exception(loop: ExitLoop, ex: Io) -> Outcome:
    """The report of an exception that reached the runtime's IDT stub, or None if it is not one."""
    vector = _value(ex)
    mode_name, tables = start_mode(loop.machine, loop.vcpu.vcpu_id)
    mode = MODES[mode_name]
    if not mode.slot_bytes:
        return None
    regs = loop.vcpu.regs
    if stub_vector(tables, regs.rip) != vector:
        return None  # a guest of its own wrote to the port
    frame = loop.machine.read(regs.rsp, 2 * mode.slot_bytes)
    return Status.GUEST_SHUTDOWN, fault(vector, frame, mode.slot_bytes, loop.vcpu.sregs.cr2).describe()


PORT_WRITES = {POWER_OFF_PORT: _power_off, RESET_PORT: _reset, EXCEPTION_PORT: _exception}


def _section(plan: Plan) -> Mapping[str, Any]:
    """plan.launcher.x86, its exit_hypercalls checked to be names."""
    x86 = typed(plan.launcher, "x86", Mapping, "plan.launcher", optional=True) or {}
    names = typed(x86, "exit_hypercalls", list, "plan.launcher.x86", optional=True) or []
    if not all(isinstance(n, str) for n in names):
        raise PlanError(f"plan.launcher.x86: exit_hypercalls should be names, got {names!r}")
    return x86


def _hypercalls(plan: Plan, machine: Machine | None) -> X86Hypercalls:
    import hvconf.abi
    from hvconf.kvm.x86.hypercalls import X86Hypercalls

    section = _section(plan)
    try:
        if machine is None:
            return X86Hypercalls(section)
        return X86Hypercalls(section, machine.memory_ranges)
    except (ValueError, hvconf.abi.AbiError) as err:
        raise PlanError(f"plan.launcher.x86.exit_hypercalls: {err}") from None


def check(plan: Plan) -> None:
    """Raise PlanError for a console or launcher section this launcher has no x86 device for."""
    if plan.console is not None and plan.console.kind not in CONSOLES:
        raise PlanError(f"plan console kind {plan.console.kind!r} is not an x86 console ({', '.join(CONSOLES)})")
    if _section(plan).get("exit_hypercalls"):  # hvconf.abi loads only for a plan that routes hypercalls here
        _hypercalls(plan, None)


def _irq_line(machine: Machine, irq: int) -> Callable[[int], object]:
    """The serial interrupt: KVM_IRQ_LINE on the VM (created by a later step than this device)."""
    def set_level(level: int) -> object:
        assert machine.vm is not None  # the guest runs, so the VM exists
        return machine.vm.irq_line(irq, level)

    return set_level


def devices(plan: Plan, machine: Machine, out: Output) -> Devices:
    # hypercalls.py (and hvconf.abi) load for a plan that routes hypercalls here; exits.py answers the
    # others without a table
    hcalls = _hypercalls(plan, machine) if _section(plan).get("exit_hypercalls") else None
    linux = _section(plan).get("linux")
    irq = linux.get("serial_irq") if isinstance(linux, Mapping) else None
    console = None
    if plan.console is not None:
        if plan.console.port is None:
            raise PlanError(f"plan.console: a {plan.console.kind} console needs its 'port'")
        console = Serial16550(plan.console.port, out, None if irq is None else _irq_line(machine, irq))
    if linux is None:
        return Devices(PORT_WRITES, console, hcalls)
    # a Linux guest: the PC ports it probes, and its console reads what is typed at the launcher's terminal
    from hvconf.kvm.terminal import TerminalInput
    from hvconf.kvm.x86.pc import PcPorts

    close = None
    if console is not None and irq is not None and (terminal := TerminalInput(console.receive)).start():
        close = terminal.stop
    return Devices(PORT_WRITES, PcPorts(console), hcalls, close=close)


def prepare_images(plan: Plan, loaded: list[Loaded], note: Callable[[str], None]) -> list[Loaded]:
    """The images as this board needs them: a Linux kernel, its initrd and boot_params (linux.py)."""
    if not _section(plan).get("linux"):
        return loaded
    from hvconf.kvm.x86 import linux  # only a plan that boots Linux pays for it

    return linux.prepare(plan, loaded, note)
