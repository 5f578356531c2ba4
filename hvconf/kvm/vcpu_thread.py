"""One thread per vCPU: its plan steps (KVM_CREATE_VCPU onwards) in plan order, then its exit loop.

KVM expects a vCPU's ioctls from the thread that created it, so the
KVM_CREATE_VCPU step and every `vcpu:N` step of a vCPU run in its own
thread, each when the Sequencer gives it the turn. The thread unblocks
only KICK_SIGNAL (the caller blocked it, SIGINT and SIGTERM before
starting it), so process signals go to the main thread and a kick
interrupts KVM_RUN. `kick()` is safe from any thread and never signals a
thread that has returned. A vCPU the plan's devices hold (Devices.held: the
e500 secondaries in the ePAPR spin table) waits for the guest to release it
before its first KVM_RUN. Tests: tests/kvm/test_runtime.py, test_guests.py.
"""

from __future__ import annotations

import _thread  # threading only when a VcpuThread is made: a one-vCPU run makes none

from hvconf.kvm import signals
from hvconf.kvm.ioctls.errors import KvmError
from hvconf.kvm.vcpu_loop import ExitLoop
from hvconf.kvm.watchdog import KICK_SIGNAL, VCPU_THREAD
from hvconf.record import Record

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from types import ModuleType

    from hvconf.contract import Step
    from hvconf.kvm.devices import Devices
    from hvconf.kvm.ending import Ending
    from hvconf.kvm.machine import Machine
    from hvconf.kvm.sequence import Sequencer
    from hvconf.kvm.steps import StepKind
    from hvconf.kvm.trace import Tracer


def _nothing() -> None:
    pass


class Shared(Record):
    """What every thread of one run shares."""

    __slots__ = ("machine", "sequencer", "ending", "tracer", "devices", "exits", "steps", "kick_all")
    _defaults = {"kick_all": _nothing}
    machine: Machine
    sequencer: Sequencer
    ending: Ending
    tracer: Tracer
    devices: Devices  # the plan's consoles, port writes, hypercall handlers and held vCPUs
    exits: ModuleType  # the plan's family's exits.py: it answers the exits the generic loop leaves
    steps: Mapping[str, StepKind]  # steps.table(arch)
    kick_all: Callable[[], None]  # every vCPU thread's kick()


def issue(step: Step, shared: Shared) -> bool:
    """Issue `step` in its turn: False when the run was aborted first. KvmErrors name the step."""
    if not shared.sequencer.turn(step.index):
        return False
    shared.tracer.step(step)
    try:
        shared.steps[step.ioctl].apply(shared.machine, step)
    except KvmError as err:
        raise err.at(step.source) from None
    shared.sequencer.done(step.index)
    return True


class VcpuThread:
    def __init__(self, vcpu_id: int, steps: list[Step], shared: Shared) -> None:
        self.vcpu_id = vcpu_id
        self.steps = steps
        self.shared = shared
        import threading

        self._lock = _thread.allocate_lock()
        self._ident: int | None = None  # set while the thread runs, None once it has returned
        self.loop: ExitLoop | None = None  # once the vCPU runs
        self.held = False  # waiting outside KVM_RUN for the guest to release it (Devices.held)
        self.thread = threading.Thread(target=self._main, name=f"{VCPU_THREAD}{vcpu_id}", daemon=True)

    def start(self) -> None:
        self.shared.ending.thread_starting()
        try:
            self.thread.start()
        except BaseException:
            self.shared.ending.thread_done()
            raise

    def join(self) -> None:
        if self.thread.ident is not None:  # started
            self.thread.join()

    def kick(self) -> None:
        """Make this vCPU leave KVM_RUN now (signal) and skip the next one (immediate_exit)."""
        with self._lock:
            if self._ident is None:
                return
            vcpu = self.shared.machine.vcpus.get(self.vcpu_id)
            if vcpu is not None and vcpu.kvm_run is not None:
                vcpu.request_immediate_exit()
            signals.pthread_kill(self._ident, KICK_SIGNAL)

    def _released(self) -> bool:
        """True at once for a vCPU its devices do not hold, else once the guest released it (False: the
        run ended first)."""
        shared, held = self.shared, self.shared.devices.held
        if held is None or self.vcpu_id not in held.vcpus:
            return True
        self.held = True
        released = held.hold(shared.machine, self.vcpu_id, shared.ending, shared.tracer.note)
        self.held = False
        return released

    def _main(self) -> None:
        with self._lock:
            self._ident = _thread.get_ident()
        signals.pthread_sigmask(signals.SIG_UNBLOCK, {KICK_SIGNAL})
        shared = self.shared
        try:
            for step in self.steps:
                if step.ioctl == "KVM_RUN":
                    if not shared.sequencer.turn(step.index):
                        return
                    shared.tracer.step(step)
                    shared.sequencer.done(step.index)
                    if not self._released():
                        return
                    shared.ending.running(self.vcpu_id)
                    self.loop = ExitLoop(shared.machine.vcpus[self.vcpu_id], shared.machine, shared.devices,
                                         shared.tracer, shared.ending, shared.exits, shared.kick_all)  # fmt: skip
                    self.loop.run(step)
                    return
                if not issue(step, shared):
                    return
        except BaseException as err:  # noqa: BLE001 - handed to the main thread, which re-raises it
            self.held = False
            shared.ending.fail(err)
            shared.sequencer.abort()
        finally:
            with self._lock:
                self._ident = None
            shared.ending.thread_done()
