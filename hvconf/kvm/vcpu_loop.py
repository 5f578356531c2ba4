"""One vCPU's exit loop: KVM_RUN, then answer the exit, until the vCPU or the machine stops.

The loop answers what every arch has, as kvmtool's kvm_cpu__start does, and
hands every other exit to the arch family's hook (hvconf/kvm/<family>/exits.py
`handle_exit`, kvmtool's kvm_cpu__handle_exit):
- port I/O: a write the family's devices list in `ports` may end the machine
  (x86: power-off, reset, an exception); the console answers the rest, and
  port I/O nobody serves reads 0. MMIO is ignored (reads return 0).
- HLT (no in-kernel irqchip) stops this vCPU only; the run ends HALTED
  once every vCPU that ran has halted.
- KVM_EXIT_SHUTDOWN ends the machine GUEST_SHUTDOWN; a system event as
  status.SYSTEM_EVENT_STATUS says (a reset is a reboot: run.py may restart); internal errors, failed entries, bad and
  unknown exits end it KVM_INTERNAL; KVM_RUN interrupted while the run is
  ending stops the loop.
The family may also run something before every KVM_RUN (`before_run`: sPAPR
sets LPCR[ILE] after H_SET_MODE) and say where a stopped vCPU was
(`stopped_at`). Tests: tests/kvm/test_runtime.py, test_guests.py,
test_modes.py, tests/ppc/ (on the POWER host).
"""

from __future__ import annotations

import errno
import time

from hvconf.kvm.ioctls.errors import KvmError
from hvconf.kvm.ioctls.kvm_run import (
    BadExit, FailEntry, Hlt, InternalError, Intr, Io, Mmio, Shutdown, SystemEvent,
)  # fmt: skip
from hvconf.kvm.status import REBOOT, SYSTEM_EVENT_REBOOT, SYSTEM_EVENT_STATUS, Status

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Callable
    from types import ModuleType
    from typing import Any

    from hvconf.contract import Step
    from hvconf.kvm.devices import Devices
    from hvconf.kvm.ending import Ending
    from hvconf.kvm.ioctls.vcpu import Vcpu
    from hvconf.kvm.machine import Machine
    from hvconf.kvm.trace import Tracer

HALT = "halt"  # this vCPU stopped; the others go on
Outcome = tuple[int, str] | tuple[int, str, str] | str | None  # None: keep running; (.., REBOOT): a reboot


def _nothing() -> None:
    pass


class ExitLoop:
    """Everything one vCPU's exits are answered with."""

    def __init__(
        self, vcpu: Vcpu, machine: Machine, devices: Devices, tracer: Tracer, ending: Ending, family: ModuleType,
        kick_all: Callable[[], None] = _nothing, interrupted: Callable[[], object] = _nothing,
    ) -> None:  # fmt: skip
        self.vcpu = vcpu
        self.machine = machine
        self.devices = devices
        self.ports = devices.ports  # port -> the handler of a write there that may end the machine
        self.console = devices.console
        self.hcalls = devices.hcalls  # the family's hypercall handlers: .handle(exit) -> reply.Reply
        self.tracer = tracer
        self.ending = ending
        self.kick_all = kick_all  # make every vCPU leave KVM_RUN once (sPAPR H_SET_MODE LE)
        self.interrupted = interrupted  # after each EINTR: a vCPU in the calling thread takes its signals
        self.family = family  # the plan's family's exits.py (families.part(arch, "exits"))
        self.count = 0  # exits handled
        self.last_exit = time.monotonic()  # when KVM_RUN last returned with an exit
        self.stopped_at: str | None = None  # where the vCPU was when the run's end stopped it ("rip 0x7c1d, a vmcall")

    @property
    def label(self) -> str:
        return self.vcpu.label

    def run(self, step: Step) -> None:
        """Run until this vCPU halts or the machine ends; the outcome goes to `ending`."""
        if not self._loop(step) and self.ending.outcome is not None:
            self.stopped_at = self.family.stopped_at(self)  # stopped by another vCPU, the watchdog or a signal

    def _loop(self, step: Step) -> bool:
        """True when this vCPU ended itself (halt, an outcome, a failure); False when the run's end stopped it."""
        # Runs once per exit: what it uses is looked up once, here, not per iteration.
        ending, run, handlers, handle_exit = self.ending, self.vcpu.run, EXIT_HANDLERS, self.family.handle_exit
        before_run, intr, io, monotonic = self.family.before_run(self), Intr, Io, time.monotonic
        while not ending.stopping:
            try:
                if before_run is not None:
                    before_run()
                ex = run()
            except KvmError as err:
                if err.errno == errno.EAGAIN:
                    continue  # a vCPU that was waiting for INIT/SIPI got them: run it again (as QEMU does)
                ending.fail(err.at(step.source))
                return True
            except BadExit as err:
                ending.end(Status.KVM_INTERNAL, f"{self.label}: {err}")
                return True
            kind = type(ex)
            if kind is not intr:
                self.count += 1
                self.last_exit = monotonic()
            outcome = self.io(ex) if isinstance(ex, io) else handlers.get(kind, handle_exit)(self, ex)
            if outcome is None:
                continue
            if outcome == HALT:
                ending.halted(self.vcpu.vcpu_id)
                return True
            if isinstance(outcome, tuple):
                status, reason = outcome[0], outcome[1]
                ending.end(status, reason if status == Status.HALTED else f"{self.label}: {reason}",
                           reboot=outcome[2:] == (REBOOT,))
                return True
        return False

    def io(self, ex: Io) -> Outcome:
        port = ex.port
        if ex.direction == "out":
            special = self.ports.get(port)
            if special is not None and (outcome := special(self, ex)) is not None:
                return outcome
        answer_bytes = self.console.handle(ex) if self.console else None
        if answer_bytes is None:
            if self.tracer.stream is not None:  # the note is formatted only when someone reads it
                self.tracer.note(f"{self.label}: port {ex.direction} {port:#06x} ({ex.size}x{ex.count} bytes) ignored")
            answer_bytes = bytes(ex.length) if ex.direction == "in" else b""
        if ex.direction == "in":
            self.vcpu.complete_io_in(ex, answer_bytes)
        return None

    def mmio(self, ex: Mmio) -> Outcome:
        kind = "write" if ex.is_write else "read (returns 0)"
        if self.tracer.stream is not None:
            self.tracer.note(f"{self.label}: mmio {kind} of {len(ex.data)} bytes at {ex.phys_addr:#x} ignored")
        if not ex.is_write:
            self.vcpu.complete_mmio_read(bytes(len(ex.data)))
        return None

    def intr(self, ex: Intr) -> Outcome:
        # A kick: the loop condition sees whether the run is ending. If it is not, the kick asked
        # for one trip through the loop (sPAPR LPCR[ILE]); let the next KVM_RUN run. The watchdog kicks
        # again while the run ends, so clearing a stop kick that raced in here is harmless. A vCPU run in
        # the calling thread was interrupted by a signal instead (watchdog.InlineWatch): it is taken here.
        self.interrupted()
        if not self.ending.stopping:
            self.vcpu.request_immediate_exit(False)
        return None

    def system_event(self, ex: SystemEvent) -> Outcome:
        status = SYSTEM_EVENT_STATUS.get(ex.type, Status.KVM_INTERNAL)
        reason = f"KVM_EXIT_SYSTEM_EVENT type {ex.type} data {list(ex.data)}"
        return (status, reason, REBOOT) if ex.type in SYSTEM_EVENT_REBOOT else (status, reason)

    def internal(self, ex: InternalError) -> Outcome:
        return Status.KVM_INTERNAL, f"KVM_EXIT_INTERNAL_ERROR suberror {ex.suberror} data {[hex(d) for d in ex.data]}"

    def fail_entry(self, ex: FailEntry) -> Outcome:
        return Status.KVM_INTERNAL, f"KVM_EXIT_FAIL_ENTRY hardware reason {ex.reason:#x} on cpu {ex.cpu}"

    def unknown(self, ex: Any) -> Outcome:
        """What a family's hook answers for an exit it does not serve either."""
        name = getattr(ex, "name", type(ex).__name__)
        return Status.KVM_INTERNAL, f"unhandled exit {name} ({getattr(ex, 'reason', '?')})"


# The exits every arch has; the rest go to the family's handle_exit.
EXIT_HANDLERS: dict[type, Callable[[ExitLoop, Any], Outcome]] = {
    Io: ExitLoop.io,
    Mmio: ExitLoop.mmio,
    Intr: ExitLoop.intr,
    Hlt: lambda loop, ex: HALT,
    Shutdown: lambda loop, ex: (Status.GUEST_SHUTDOWN, "guest shut down (KVM_EXIT_SHUTDOWN, e.g. a triple fault)"),
    SystemEvent: ExitLoop.system_event,
    InternalError: ExitLoop.internal,
    FailEntry: ExitLoop.fail_entry,
}

