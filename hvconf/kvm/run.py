"""The plan executor: host checks, then the steps in plan order across threads, then the vCPUs.

`execute(plan, base_dir, *, timeout, trace, out)` reads the plan
(hvconf/contract.py), refuses one the host cannot run (HostMismatch)
before any VM exists, loads the images (flat or ELF, as the plan's board
needs them: devices.prepare_images), then issues the steps: system and VM
steps from the calling thread, each vCPU's steps (KVM_CREATE_VCPU onwards)
from a thread of its own, all in plan order (a vCPU the devices hold first
waits for the guest to release it). A plan with one vCPU, run from the main
thread, makes no thread: every step and the vCPU's exit loop run in the
calling thread, watched by signals (watchdog.InlineWatch), and threading is
never imported (a thread hand-off and ~2 ms of imports per launch). What is arch-specific comes from the
plan's family (families.py): its steps, devices, exit hook and host checks.
The vCPUs then run until the run ends (see vcpu_loop.py: every vCPU
halted, power-off, shutdown, internal error) or the watchdog, SIGINT or
SIGTERM ends it; every thread is joined and every fd and mmap released
before it returns, whatever failed on the way (a vCPU thread left running
would signal a process whose KICK_SIGNAL handler is gone). A guest's reboot
(RTAS system-reboot, a KVM reset event) ends the run with its status, or,
with `on_reboot="restart"`, tears the VM down and issues the plan again on
the same guest memory with the images written afresh (QEMU's system reset
keeps RAM too), at most MAX_RESTARTS times, all within the one `timeout`. It prints only
the guest console to `out` (raw, or rendered safe: output.py) and trace
lines to `trace`; a write that fails ends the run with OutputError.
Tests: tests/kvm/test_runtime.py, tests/kvm/test_hostile_guests.py.
"""

from __future__ import annotations

import _thread
import os
import sys
import time

from hvconf.contract import PlanError, read_plan
from hvconf.kvm import devices, families, signals
from hvconf.kvm import images as image_files
from hvconf.kvm.ending import Ending
from hvconf.kvm.ioctls import numbers
from hvconf.kvm.ioctls.fd import request
from hvconf.kvm.ioctls.ffi import ARCH
from hvconf.kvm.ioctls.system import DEV_KVM, Kvm
from hvconf.kvm.machine import Machine
from hvconf.kvm.options import CONSOLE_MODES, MAX_TIMEOUT
from hvconf.kvm.output import Output, OutputError
from hvconf.kvm.sequence import InOrder
from hvconf.kvm.status import MAX_RESTARTS, ON_REBOOT, Status
from hvconf.kvm.steps import reserved, table, validate
from hvconf.kvm.trace import Tracer
from hvconf.kvm.vcpu_loop import ExitLoop
from hvconf.kvm.vcpu_thread import Shared, issue
from hvconf.kvm.watchdog import KICK_SIGNAL, InlineWatch
from hvconf.record import Record

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from pathlib import Path
    from typing import Any, BinaryIO, TextIO

    from hvconf.contract import Plan, Step
    from hvconf.kvm.images import Loaded
    from hvconf.kvm.ioctls.memory import GuestMemory
    from hvconf.kvm.vcpu_thread import VcpuThread

KVM_API_VERSION = 12


class HostMismatch(Exception):
    """This host, or this runtime, cannot run the plan; the message is one line."""


class RunResult(Record):
    """How a run ended: `status`, a one-line `reason`, vCPU `exits` handled, wall `seconds`, `restarts`."""

    __slots__ = ("status", "reason", "exits", "seconds", "restarts")
    _defaults = {"restarts": 0}
    status: int
    reason: str
    exits: int
    seconds: float
    restarts: int


def execute(
    plan: Mapping[str, Any],
    base_dir: str | os.PathLike[str],  # a str or a Path
    *,
    timeout: float = 5.0,
    trace: TextIO | BinaryIO | None = None,
    out: BinaryIO | None,
    supplied: Mapping[str, str | Path] | None = None,
    console: str = "auto",
    on_reboot: str = "exit",
) -> RunResult:
    """Run `plan` (images relative to `base_dir`) on this host's KVM; guest console to `out`.

    `supplied` maps image names to files given on the command line (--kernel), which
    replace the build's copy or fill in an image the build did not have. `console` is
    output.CONSOLE_MODES: how the guest's bytes reach `out` (None: a closed stdout).
    `on_reboot` is status.ON_REBOOT: what a guest's reboot does (end the run, or restart it).

    Raises ValueError (a timeout or console mode out of range), PlanError (bad plan or
    image), HostMismatch (before any VM is created), KvmError (an ioctl failed; `source`
    names the step) or OutputError (the console or trace could not be written).
    """
    if not 0 < timeout <= MAX_TIMEOUT:  # also NaN: sigtimedwait cannot wait for it
        raise ValueError(f"timeout {timeout!r} is not within (0, {MAX_TIMEOUT}] seconds")
    if console not in CONSOLE_MODES:
        raise ValueError(f"console mode {console!r} is not one of {', '.join(CONSOLE_MODES)}")
    if on_reboot not in ON_REBOOT:
        raise ValueError(f"on-reboot {on_reboot!r} is not one of {', '.join(ON_REBOOT)}")
    started = time.monotonic()
    parsed = read_plan(plan)
    _check_runtime(parsed)  # host facts first: a foreign plan is refused as such, not as malformed
    validate(parsed)
    loaded = image_files.load(parsed, base_dir, supplied or {})
    tracer = Tracer(trace)
    loaded = devices.prepare_images(parsed, loaded, tracer.note)  # first: a board may place images (x86 Linux)
    image_files.check_placement(parsed, loaded, reserved(parsed))
    memory: dict[int, GuestMemory] = {}  # kept across restarts, released here
    try:
        status, reason, count, restarts = _boots(parsed, loaded, memory, tracer, Output(out, "console", console),
                                                 timeout, on_reboot)  # fmt: skip
    finally:
        for region in memory.values():
            region.close()
    tracer.note(f"{parsed.vm}: status {int(status)}, {count} exits handled"  # whatever the status (a reset too)
                + (f", {restarts} restarts" if restarts else ""))
    return RunResult(status, reason, count, time.monotonic() - started, restarts)


def _boots(plan: Plan, loaded: list[Loaded], memory: dict[int, GuestMemory], tracer: Tracer, out: Output,
           timeout: float, on_reboot: str) -> tuple[int, str, int, int]:  # fmt: skip
    """Run the plan, and again after each reboot when `on_reboot` says restart: (status, reason, exits, restarts).
    The watchdog's `timeout` covers every boot: a reboot loop ends on time."""
    deadline = time.monotonic() + timeout
    count = restarts = 0
    while True:
        machine = Machine(_open_host(plan, tracer), loaded, memory=memory,
                          note=tracer.note if tracer.stream is not None else None)  # fmt: skip
        try:
            budget = max(deadline - time.monotonic(), 1e-3) if restarts else timeout  # the first boot has it all
            status, reason, exits, reboot = _run(plan, machine, tracer, out, budget)
        finally:
            machine.close(keep_memory=True)
        count += exits
        if not reboot:
            return status, reason, count, restarts
        if on_reboot != "restart":
            return Status.REBOOTED, reason, count, restarts
        if restarts == MAX_RESTARTS:
            return (Status.REBOOTED, f"{reason}, after {restarts} restarts (the most --on-reboot restart makes)",
                    count, restarts)
        restarts += 1
        tracer.note(f"{plan.vm}: restart {restarts} (--on-reboot restart): {reason}")
        tracer.no_step()


def _owners(plan: Plan) -> tuple[list[Step], dict[int, list[Step]]]:
    """The calling thread's steps, and each vCPU thread's: from its KVM_CREATE_VCPU on."""
    main: list[Step] = []
    per_vcpu: dict[int, list[Step]] = {}
    for step in plan.steps:
        if step.ioctl == "KVM_CREATE_VCPU":
            per_vcpu.setdefault(step.args["vcpu_id"], []).append(step)
        elif step.vcpu_id is not None:
            per_vcpu[step.vcpu_id].append(step)  # validate() put the creation first
        else:
            main.append(step)
    return main, per_vcpu


class _InlineVcpu:
    """The one vCPU of a run without threads, as _still_running and _outcome read a VcpuThread."""

    def __init__(self, vcpu_id: int) -> None:
        self.vcpu_id = vcpu_id
        self.loop: ExitLoop | None = None
        self.held = False

    def kick(self, machine: Machine) -> None:
        """Make the next KVM_RUN return at once (sPAPR H_SET_MODE): there is no other thread to signal."""
        vcpu = machine.vcpus.get(self.vcpu_id)
        if vcpu is not None and vcpu.kvm_run is not None:
            vcpu.request_immediate_exit()


def _in_main_thread() -> bool:
    """Without importing threading: a process that never imported it made no thread with it."""
    threading = sys.modules.get("threading")
    return threading is None or threading.current_thread() is threading.main_thread()


def _run(plan: Plan, machine: Machine, tracer: Tracer, out: Output, timeout: float) -> tuple[int, str, int, bool]:
    """One boot of the plan: (status, reason, exits handled, whether it ended in the guest's reboot)."""
    main_steps, per_vcpu = _owners(plan)
    if len(per_vcpu) == 1 and _in_main_thread():  # signals reach the main thread only
        return _run_inline(plan, machine, tracer, out, timeout, next(iter(per_vcpu)))
    from hvconf.kvm.watchdog import kick_handler, routed_signals

    with kick_handler(), routed_signals():
        return _run_threads(plan, machine, tracer, out, timeout, main_steps, per_vcpu)


def _run_inline(plan: Plan, machine: Machine, tracer: Tracer, out: Output, timeout: float,
                vcpu_id: int) -> tuple[int, str, int, bool]:  # fmt: skip
    """Every step, then the vCPU's exit loop, in the calling thread (signals blocked from the start:
    a thread the devices start, such as a console's input, must not take them)."""
    ending = Ending(_nothing)
    vcpu = _InlineVcpu(vcpu_id)
    devs: devices.Devices | None = None
    with InlineWatch(ending, timeout, lambda: _still_running([vcpu], ending, timeout, out, devs)) as watch:
        for output in (out, tracer.output):
            if output is not None:
                output.stopping = watch.check  # a stalled reader holds the run only until its end
        devs = devices.devices(plan, machine, out)
        shared = Shared(machine, InOrder(), ending, tracer, devs, families.part(plan.arch, "exits"),
                        table(plan.arch), lambda: vcpu.kick(machine))  # fmt: skip
        try:
            for step in plan.steps:
                if step.ioctl != "KVM_RUN":
                    issue(step, shared)
                    continue
                tracer.step(step)
                held = devs.held
                if held is not None and vcpu_id in held.vcpus:  # only another vCPU could release it
                    vcpu.held = True
                    watch.wait()
                    break
                machine.vcpus[vcpu_id].set_signal_mask(watch.run_mask())
                ending.running(vcpu_id)
                vcpu.loop = ExitLoop(machine.vcpus[vcpu_id], machine, devs, tracer, ending, shared.exits,
                                     shared.kick_all, watch.check)  # fmt: skip
                vcpu.loop.run(step)
        finally:
            if devs.close is not None:
                devs.close()  # the terminal back as it was, whatever ended the run
    return _outcome(ending, [vcpu], out)


def _run_threads(plan: Plan, machine: Machine, tracer: Tracer, out: Output, timeout: float, main_steps: list[Step],
                 per_vcpu: dict[int, list[Step]]) -> tuple[int, str, int, bool]:  # fmt: skip
    from hvconf.kvm.sequence import Sequencer
    from hvconf.kvm.vcpu_thread import VcpuThread
    from hvconf.kvm.watchdog import stop_all, supervise

    wake_main = _waker()
    ending = Ending(wake_main)
    for output in (out, tracer.output):
        if output is not None:
            output.stopping = lambda: ending.stopping  # a stalled reader holds a vCPU only until the end
    devs = devices.devices(plan, machine, out)
    threads: list[VcpuThread] = []
    # the family's exit hook is imported here, in the main thread, not by each vCPU thread at once
    shared = Shared(machine, Sequencer(), ending, tracer, devs, families.part(plan.arch, "exits"), table(plan.arch),
                    lambda: _kick_all(threads))  # fmt: skip
    threads += [VcpuThread(vcpu_id, steps, shared) for vcpu_id, steps in per_vcpu.items()]
    try:
        for thread in threads:
            thread.start()
        for step in main_steps:
            if not issue(step, shared):
                break
    except BaseException as err:  # noqa: BLE001 - raised below, once the threads are gone
        ending.fail(err)
    finally:
        try:
            supervise(ending, lambda: _kick_all(threads), shared.sequencer.abort, timeout,
                      lambda: _still_running(threads, ending, timeout, out, devs))  # fmt: skip
        finally:  # even if the watch failed: no vCPU thread may outlive the run (nor signal after it)
            stop_all(ending, lambda: _kick_all(threads), shared.sequencer.abort)
            for thread in threads:
                thread.join()  # every started thread has returned or is about to
            if devs.close is not None:
                devs.close()  # the terminal back as it was, whatever ended the run
    return _outcome(ending, threads, out)


def _outcome(ending: Ending, vcpus: list[VcpuThread] | list[_InlineVcpu], out: Output) -> tuple[int, str, int, bool]:
    """(status, reason, exits, reboot) of a run whose every vCPU has stopped; raises its error, if any."""
    if ending.error is None:
        try:
            out.finish()  # what the safe rendering held back (a CR, a `:`) once the guest is done
        except OutputError as err:
            ending.fail(err)
    if ending.error is not None:
        raise ending.error
    status, reason = ending.result()
    stopped = [f"vcpu:{t.vcpu_id} at {t.loop.stopped_at}" for t in vcpus if t.loop and t.loop.stopped_at]
    if stopped and status != Status.HALTED:
        reason += f"; stopped {', '.join(stopped)}"
    return status, reason, sum(t.loop.count for t in vcpus if t.loop is not None), ending.reboot


def _nothing() -> None:
    pass


def _kick_all(threads: list[VcpuThread]) -> None:
    for thread in threads:
        thread.kick()


def _waker() -> Callable[[], None]:
    ident = _thread.get_ident()
    return lambda: signals.pthread_kill(ident, KICK_SIGNAL)


def _still_running(threads: list[VcpuThread] | list[_InlineVcpu], ending: Ending, timeout: float, out: Output,
                   devs: devices.Devices | None) -> str:  # fmt: skip
    """The watchdog's reason: which vCPUs were still in the guest, and for how long without an exit."""
    now = time.monotonic()
    parts = [f"vcpu:{t.vcpu_id} had no exit for {now - t.loop.last_exit:.2f} s"
             for t in threads if t.loop is not None and t.vcpu_id not in ending.halted_vcpus]  # fmt: skip
    parts += [f"vcpu:{i} halted" for i in sorted(ending.halted_vcpus)]
    if devs is not None and devs.held is not None:
        parts += [f"vcpu:{t.vcpu_id} was never released from {devs.held.what}" for t in threads if t.held]
    blocked = out.blocked_since
    if blocked is not None:  # "no exit" above is then a vCPU waiting to write its console
        parts.append(f"the console had waited {now - blocked:.2f} s for its reader")
    detail = f" ({'; '.join(parts)})" if parts else ""
    return f"the guest was still running after {timeout:g} s{detail}"


def _check_runtime(plan: Plan) -> None:
    host = os.uname().machine  # what platform.machine() answers, without importing platform
    if plan.host_arch != host:
        raise HostMismatch(f"{plan.vm} needs a {plan.host_arch} host, this one is {host}")
    if plan.arch != ARCH:
        raise HostMismatch(f"{plan.vm} is a {plan.arch} guest; this runtime runs {ARCH} guests only")
    if plan.unmerged:
        raise HostMismatch(f"{plan.vm} uses the unmerged ePAPR proposal ({', '.join(plan.unmerged)}), which has "
                           "no numbers in Linux; rebuild with --abi-overrides FILE for a patched kernel")
    for step in plan.steps:
        if step.ioctl not in numbers.IOCTLS:
            raise PlanError(f"plan step {step.index} ({step.source}): this runtime does not issue {step.ioctl}")
        try:
            want = request(step.ioctl, ARCH)  # numbers.py; hvconf.abi only for what it lacks
        except LookupError as err:  # hvconf.abi.AbiError
            raise HostMismatch(f"plan step {step.index} ({step.source}): {err}") from None
        if step.request != want:
            raise HostMismatch(
                f"plan step {step.index} ({step.source}): {step.ioctl} request {step.request:#010x} is not "
                f"this host's {want:#010x} ({host}); the plan was built for another ABI"
            )
    _check_memory(plan)


def host_memory() -> int:
    """Physical memory of this host in bytes."""
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def _check_memory(plan: Plan) -> None:
    """Refuse guest memory the host does not have, before anything is mapped: the
    mapping itself would succeed (MAP_NORESERVE) and the guest would die later."""
    wanted = sum(int(s.args.get("memory_size", 0)) for s in plan.steps if s.ioctl == "KVM_SET_USER_MEMORY_REGION")
    have = host_memory()
    if wanted > have:
        source = next(s.source for s in plan.steps if s.ioctl == "KVM_SET_USER_MEMORY_REGION")
        raise HostMismatch(f"{plan.vm} needs {wanted:#x} bytes of guest memory ({source}); this host has "
                           f"{have:#x}")


def _open_host(plan: Plan, tracer: Tracer) -> Kvm:
    try:
        kvm = Kvm(DEV_KVM, tracer)
    except OSError as err:
        raise HostMismatch(f"cannot open {DEV_KVM}: {err.strerror}") from None
    try:
        version = kvm.api_version
        if version != KVM_API_VERSION:
            raise HostMismatch(f"{DEV_KVM} speaks KVM API version {version}, not {KVM_API_VERSION}")
        for cap in plan.caps:
            if cap.cap_nr is None or kvm.check_extension(cap.cap_nr) == 0:
                raise HostMismatch(f"this host's KVM lacks {cap.cap} (cap {cap.cap_nr}), required at {cap.source}")
        families.part(plan.arch, "host").check_host(kvm, plan)
    except BaseException:
        kvm.close()
        raise
    return kvm
