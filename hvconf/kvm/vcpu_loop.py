"""One vCPU's exit loop: KVM_RUN, then answer the exit, until the vCPU or the machine stops.

What ends what (run.py hands the outcome to the launcher):
- HLT (no in-kernel irqchip) stops this vCPU only; the run ends HALTED
  once every vCPU that ran has halted.
- A power-off write (port 0x604, SLP_EN, as QEMU's q35 PM1a_CNT) ends the
  machine HALTED; an i8042 reset (0xFE to port 0x64), KVM_EXIT_SHUTDOWN
  (triple fault) or an exception reaching the runtime's IDT stubs ends it
  GUEST_SHUTDOWN; internal errors, failed entries and unknown exits end it
  KVM_INTERNAL; KVM_RUN interrupted while the run is ending stops the loop.
- sPAPR and ePAPR hypercall exits go to the plan's handlers (hvconf.kvm.hcall);
  an RTAS power-off ends the machine HALTED, a reboot GUEST_SHUTDOWN. After
  H_SET_MODE(LE) each vCPU gets LPCR[ILE] before its next KVM_RUN.
Port I/O nobody serves reads 0; MMIO is ignored. Tests: tests/kvm/test_runtime.py,
test_guests.py, test_modes.py, tests/ppc/ (on the POWER host).
"""

from __future__ import annotations

import errno
import time

from hvconf.kvm import exits
from hvconf.kvm.errors import KvmError
from hvconf.kvm.status import SYSTEM_EVENT_STATUS, Status
from hvconf.kvm.x86_modes import EXCEPTION_PORT, MODES, fault, stub_vector
from hvconf.record import Record

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from hvconf.kvm.console import Console
    from hvconf.kvm.ending import Ending
    from hvconf.kvm.machine import Machine
    from hvconf.kvm.plan import Step
    from hvconf.kvm.trace import Tracer
    from hvconf.kvm.vcpu import Vcpu

HALT = "halt"  # this vCPU stopped; the others go on
# Instructions worth naming where a vCPU was stopped (its first bytes at rip).
INSTRUCTIONS = {b"\x0f\x01\xc1": "vmcall", b"\x0f\x01\xd9": "vmmcall", b"\xf4": "hlt", b"\xeb\xfe": "jmp to itself"}
Outcome = tuple[int, str] | str | None  # None: keep running


class PlatformPort(Record):
    """A port write that ends the machine: `matches(value)` decides, `status`/`reason` say how."""

    __slots__ = ("port", "matches", "status", "reason")
    port: int
    matches: Callable[[int], bool]
    status: int
    reason: str


PLATFORM_PORTS = {
    p.port: p
    for p in (
        PlatformPort(0x604, lambda v: bool(v & 0x2000), Status.HALTED, "guest powered off (SLP_EN at port 0x604)"),
        PlatformPort(0x64, lambda v: v == 0xFE, Status.GUEST_SHUTDOWN,
                     "guest asked for a reset (0xfe to i8042 port 0x64)"),
    )
}


def _nothing() -> None:
    pass


class ExitLoop:
    """Everything one vCPU's exits are answered with."""

    def __init__(
        self, vcpu: Vcpu, machine: Machine, console: Console | None, tracer: Tracer, ending: Ending,
        served: frozenset[int], hcalls: Any | None = None, kick_all: Callable[[], None] = _nothing,
    ) -> None:  # fmt: skip
        self.vcpu = vcpu
        self.machine = machine
        self.console = console
        self.tracer = tracer
        self.ending = ending
        self.served = served  # KVM_HC_* numbers the plan routes to the launcher
        self.hcalls = hcalls  # sPAPR/ePAPR handlers: .handle(exit) -> hcall.Reply
        self.kick_all = kick_all  # make every vCPU leave KVM_RUN once (sPAPR H_SET_MODE LE)
        self.count = 0  # exits handled
        self.ile: bool | None = None  # LPCR[ILE] as this loop last set it (sPAPR H_SET_MODE LE)
        self.last_exit = time.monotonic()  # when KVM_RUN last returned with an exit
        self.stopped_at: str | None = None  # where the vCPU was when the run's end stopped it ("rip 0x7c1d, a vmcall")

    @property
    def label(self) -> str:
        return self.vcpu.label

    def run(self, step: Step) -> None:
        """Run until this vCPU halts or the machine ends; the outcome goes to `ending`."""
        if not self._loop(step) and self.ending.outcome is not None:
            self.stopped_at = self._where()  # stopped by another vCPU, the watchdog or a signal

    def _where(self) -> str | None:
        """The vCPU's rip and, when known, the instruction there (read through the flat or identity map)."""
        try:
            regs = self.vcpu.regs
            if not hasattr(regs, "rip"):  # PowerPC: no segments, and no instruction names to give
                return f"pc {regs.pc:#x}"
            rip, cs_base = regs.rip, self.vcpu.sregs.cs.base
        except KvmError:
            return None
        code = self.machine.read(cs_base + rip, 3) or b""
        name = next((n for first, n in INSTRUCTIONS.items() if code.startswith(first)), None)
        return f"rip {rip:#x}" + (f", a {name}" if name else "")

    def _loop(self, step: Step) -> bool:
        """True when this vCPU ended itself (halt, an outcome, a failure); False when the run's end stopped it."""
        # Runs once per exit: what it uses is looked up once, here, not per iteration.
        ending, run, hcalls, handlers = self.ending, self.vcpu.run, self.hcalls, EXIT_HANDLERS
        intr, io, monotonic = exits.Intr, exits.Io, time.monotonic
        while not ending.stopping:
            try:
                if hcalls is not None and getattr(hcalls, "interrupts_little_endian", None) != self.ile:
                    self._apply_ile(hcalls.interrupts_little_endian)
                ex = run()
            except KvmError as err:
                if err.errno == errno.EAGAIN:
                    continue  # a vCPU that was waiting for INIT/SIPI got them: run it again (as QEMU does)
                ending.fail(err.at(step.source))
                return True
            except exits.BadExit as err:
                ending.end(Status.KVM_INTERNAL, f"{self.label}: {err}")
                return True
            kind = type(ex)
            if kind is not intr:
                self.count += 1
                self.last_exit = monotonic()
            outcome = self.io(ex) if isinstance(ex, io) else handlers.get(kind, ExitLoop.unknown)(self, ex)
            if outcome is None:
                continue
            if outcome == HALT:
                ending.halted(self.vcpu.vcpu_id)
                return True
            if isinstance(outcome, tuple):
                status, reason = outcome
                ending.end(status, reason if status == Status.HALTED else f"{self.label}: {reason}")
                return True
        return False

    def io(self, ex: exits.Io) -> Outcome:
        port = ex.port
        if ex.direction == "out" and (port == EXCEPTION_PORT or port in PLATFORM_PORTS):
            value = int.from_bytes(ex.data[: ex.size], "little")
            if port == EXCEPTION_PORT and (report := self._fault(value)) is not None:
                return Status.GUEST_SHUTDOWN, report
            platform = PLATFORM_PORTS.get(port)
            if platform is not None and platform.matches(value):
                return platform.status, platform.reason
        answer_bytes = self.console.handle(ex) if self.console else None
        if answer_bytes is None:
            if self.tracer.stream is not None:  # the note is formatted only when someone reads it
                self.tracer.note(f"{self.label}: port {ex.direction} {port:#06x} ({ex.size}x{ex.count} bytes) ignored")
            answer_bytes = bytes(ex.length) if ex.direction == "in" else b""
        if ex.direction == "in":
            self.vcpu.complete_io_in(ex, answer_bytes)
        return None

    def _fault(self, vector: int) -> str | None:
        """The report of an exception that reached the runtime's IDT stub, or None if it is not one."""
        mode_name, tables = self.machine.modes.get(self.vcpu.vcpu_id, ("real", 0))
        mode = MODES[mode_name]
        if not mode.slot_bytes:
            return None
        regs = self.vcpu.regs
        if stub_vector(tables, regs.rip) != vector:
            return None  # a guest of its own wrote to the port
        frame = self.machine.read(regs.rsp, 2 * mode.slot_bytes)
        return fault(vector, frame, mode.slot_bytes, self.vcpu.sregs.cr2).describe()

    def mmio(self, ex: exits.Mmio) -> Outcome:
        kind = "write" if ex.is_write else "read (returns 0)"
        if self.tracer.stream is not None:
            self.tracer.note(f"{self.label}: mmio {kind} of {len(ex.data)} bytes at {ex.phys_addr:#x} ignored")
        if not ex.is_write:
            self.vcpu.complete_mmio_read(bytes(len(ex.data)))
        return None

    def hypercall(self, ex: exits.Hypercall) -> Outcome:
        from hvconf.kvm.x86_hypercall import answer  # only plans with KVM_CAP_EXIT_HYPERCALL get here

        ret = answer(ex.nr, ex.args, self.served, self.machine.memory_ranges())
        self.tracer.note(f"{self.label}: hypercall {ex.nr} args {[hex(a) for a in ex.args[:4]]} -> {ret}")
        self.vcpu.complete_hypercall(ret)
        return None

    def hcall(self, ex: exits.PaprHcall | exits.EpaprHcall) -> Outcome:
        """A sPAPR or ePAPR hypercall the kernel left to userspace: the plan's handler answers it."""
        if self.hcalls is None:
            return Status.KVM_INTERNAL, f"{type(ex).__name__} {ex.nr:#x}, but the plan has no hypercall handlers"
        from hvconf.kvm.hcall.reply import Outcome as HcallOutcome, complete

        before = getattr(self.hcalls, "interrupts_little_endian", None)
        reply = self.hcalls.handle(ex)
        complete(self.vcpu._view(), ex, reply)
        if getattr(self.hcalls, "interrupts_little_endian", None) != before:
            self.kick_all()  # a vCPU that never exits must still get LPCR[ILE] (QEMU: run_on_cpu)
        self.tracer.note(f"{self.label}: hcall {_hcall_name(ex)} reached the launcher -> {_signed(reply.ret)}"
                         + (f" ({reply.note})" if reply.note else ""))  # fmt: skip
        if reply.outcome is HcallOutcome.POWER_OFF:
            return Status.HALTED, f"guest powered off ({reply.note})"
        if reply.outcome is HcallOutcome.RESET:
            return Status.GUEST_SHUTDOWN, f"guest asked for a reboot ({reply.note})"
        return None

    def _apply_ile(self, little: bool | None) -> None:
        from hvconf.abi.tables import raw

        one_reg = raw("papr")["one_reg"]
        lpcr = self.vcpu.get_one_reg(one_reg["KVM_REG_PPC_LPCR_64"])
        want = lpcr | one_reg["LPCR_ILE"] if little else lpcr & ~one_reg["LPCR_ILE"]
        if want != lpcr:
            self.vcpu.set_one_reg(one_reg["KVM_REG_PPC_LPCR_64"], want)
            self.tracer.note(f"{self.label}: LPCR {lpcr:#x} -> {want:#x} (interrupts "
                             f"{'little' if little else 'big'}-endian, after H_SET_MODE)")  # fmt: skip
        self.ile = little

    def intr(self, ex: exits.Intr) -> Outcome:
        # A kick: the loop condition sees whether the run is ending. If it is not, the kick asked
        # for one trip through the loop (LPCR[ILE]); let the next KVM_RUN run. The watchdog kicks
        # again while the run ends, so clearing a stop kick that raced in here is harmless.
        if not self.ending.stopping:
            self.vcpu.request_immediate_exit(False)
        return None

    def system_event(self, ex: exits.SystemEvent) -> Outcome:
        status = SYSTEM_EVENT_STATUS.get(ex.type, Status.KVM_INTERNAL)
        return status, f"KVM_EXIT_SYSTEM_EVENT type {ex.type} data {list(ex.data)}"

    def internal(self, ex: exits.InternalError) -> Outcome:
        return Status.KVM_INTERNAL, f"KVM_EXIT_INTERNAL_ERROR suberror {ex.suberror} data {[hex(d) for d in ex.data]}"

    def fail_entry(self, ex: exits.FailEntry) -> Outcome:
        return Status.KVM_INTERNAL, f"KVM_EXIT_FAIL_ENTRY hardware reason {ex.reason:#x} on cpu {ex.cpu}"

    def unknown(self, ex: Any) -> Outcome:
        name = getattr(ex, "name", type(ex).__name__)
        return Status.KVM_INTERNAL, f"unhandled exit {name} ({getattr(ex, 'reason', '?')})"


EXIT_HANDLERS: dict[type, Callable[[ExitLoop, Any], Outcome]] = {
    exits.Io: ExitLoop.io,
    exits.Mmio: ExitLoop.mmio,
    exits.Hypercall: ExitLoop.hypercall,
    exits.PaprHcall: ExitLoop.hcall,
    exits.EpaprHcall: ExitLoop.hcall,
    exits.Intr: ExitLoop.intr,
    exits.Hlt: lambda loop, ex: HALT,
    exits.Shutdown: lambda loop, ex: (Status.GUEST_SHUTDOWN,
                                      "guest shut down (KVM_EXIT_SHUTDOWN, e.g. a triple fault)"),
    exits.SystemEvent: ExitLoop.system_event,
    exits.InternalError: ExitLoop.internal,
    exits.FailEntry: ExitLoop.fail_entry,
}


def _signed(ret: int) -> int:
    """An hcall status as the guest reads r3: H_FUNCTION is -2, not 2**64 - 2."""
    return ret - (1 << 64) if ret >= 1 << 63 else ret


def _hcall_name(ex: exits.PaprHcall | exits.EpaprHcall) -> str:
    if isinstance(ex, exits.PaprHcall):
        import hvconf.abi

        try:
            return f"{hvconf.abi.papr_hcall(ex.nr).name} ({ex.nr:#x})"
        except hvconf.abi.AbiError:
            pass
    return f"{ex.nr:#x}"
