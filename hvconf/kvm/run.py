"""The plan executor: host checks, then each step against real fds, then the vCPU loop.

`execute(plan, base_dir, *, timeout, trace, out)` refuses a plan the host
cannot run (HostMismatch) before any VM exists, issues the steps in order,
runs the single vCPU under a watchdog, handles its exits (console, halt,
shutdown...) and always releases fds and mmaps. It prints nothing except
the guest console to `out` and trace lines to `trace`; launch.py turns
results and exceptions into a status. Tests: tests/kvm/test_runtime.py.
"""

from __future__ import annotations

import hashlib
import platform
import signal
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, TextIO, cast

import hvconf.abi
from hvconf.kvm import dryrun, exits
from hvconf.kvm.console import CONSOLE_KINDS, Console
from hvconf.kvm.errors import KvmError
from hvconf.kvm.ffi import ARCH
from hvconf.kvm.plan import Plan, PlanError, Step, parse
from hvconf.kvm.status import SYSTEM_EVENT_STATUS, Status
from hvconf.kvm.steps import STEPS, Machine, check_placement, validate
from hvconf.kvm.system import DEV_KVM, Kvm
from hvconf.kvm.vcpu import Vcpu
from hvconf.kvm.watchdog import KICK_SIGNAL, Watchdog, kick_handler

KVM_API_VERSION = 12
KVM_ENOSYS = 1000  # returned negated to the guest for hypercalls nobody serves


class HostMismatch(Exception):
    """This host, or this runtime, cannot run the plan; the message is one line."""


@dataclass(frozen=True)
class RunResult:
    """How a run ended: `status`, a one-line `reason`, vCPU `exits` handled, wall `seconds`."""

    status: Status
    reason: str
    exits: int
    seconds: float


Outcome = tuple[Status, str] | None  # None: keep running


def execute(
    plan: Mapping[str, Any],
    base_dir: Path,
    *,
    timeout: float = 5.0,
    trace: TextIO | None = None,
    out: BinaryIO,
    supplied: Mapping[str, Path] | None = None,
) -> RunResult:
    """Run `plan` (images relative to `base_dir`) on this host's KVM; guest console to `out`.

    `supplied` maps image names to files given on the command line (--kernel), which
    replace the build's copy or fill in an image the build did not have.

    Raises PlanError (bad plan or image), HostMismatch (before any VM is
    created) or KvmError (an ioctl failed; `source` names the step).
    """
    started = time.monotonic()
    parsed = parse(plan)
    _check_runtime(parsed)  # host facts first: a foreign plan is refused as such, not as malformed
    validate(parsed)
    images = _load_images(parsed, base_dir, supplied or {})
    check_placement(parsed, images)
    tracer = _Tracer(trace)
    kvm = _open_host(parsed, tracer)
    machine = Machine(kvm, images)
    try:
        for step in parsed.steps:
            tracer.step(step)
            if step.ioctl == "KVM_RUN":
                vcpu = machine.vcpus[step.vcpu_id or 0]
                status, reason, count = _run_vcpu(vcpu, step, parsed, timeout, tracer, out)
                return RunResult(status, reason, count, time.monotonic() - started)
            try:
                STEPS[step.ioctl].apply(machine, step)
            except KvmError as err:
                raise err.at(step.source) from None
        return RunResult(Status.HALTED, "plan has no KVM_RUN step", 0, time.monotonic() - started)
    finally:
        machine.close()


class _Tracer:
    """Writes `trace:` lines: plan steps as issued, and ioctls the runtime adds on its own."""

    def __init__(self, stream: TextIO | None) -> None:
        self.stream = stream
        self.current: Step | None = None

    def step(self, step: Step) -> None:
        self.current = step
        self.note(dryrun.line(step.fd, step.ioctl, step.request, step.args, step.source))

    def __call__(self, label: str, ioctl: str, request: int) -> None:
        if self.current is not None and ioctl == self.current.ioctl and label == self.current.fd:
            return  # the step's own ioctl, already printed by step()
        why = f"for step {self.current.index} at {self.current.source}" if self.current else "host check"
        self.note(f"{label}  {ioctl}  0x{request:08x}  # issued by the runtime ({why})")

    def note(self, text: str) -> None:
        if self.stream is not None:
            print(f"trace: {text}", file=self.stream, flush=True)


def _check_runtime(plan: Plan) -> None:
    host = platform.machine()
    if plan.host_arch != host:
        raise HostMismatch(f"{plan.vm} needs a {plan.host_arch} host, this one is {host}")
    if plan.arch != ARCH:
        raise HostMismatch(f"{plan.vm} is a {plan.arch} guest; this runtime runs {ARCH} guests only")
    if plan.unmerged:
        raise HostMismatch(f"{plan.vm} uses the unmerged ePAPR proposal ({', '.join(plan.unmerged)}), which has "
                           "no numbers in Linux; rebuild with --abi-overrides FILE for a patched kernel")
    vcpus = sorted({s.args["vcpu_id"] for s in plan.steps if s.ioctl == "KVM_CREATE_VCPU"})
    if len(vcpus) > 1:
        raise HostMismatch(f"{plan.vm} creates {len(vcpus)} vCPUs; this runtime runs one vCPU per VM")
    for step in plan.steps:
        if step.ioctl not in hvconf.abi.ioctls():
            raise PlanError(f"plan step {step.index} ({step.source}): this runtime does not issue {step.ioctl}")
        try:
            want = hvconf.abi.request(step.ioctl, host)
        except hvconf.abi.AbiError as err:
            raise HostMismatch(f"plan step {step.index} ({step.source}): {err}") from None
        if step.request != want:
            raise HostMismatch(
                f"plan step {step.index} ({step.source}): {step.ioctl} request {step.request:#010x} is not "
                f"this host's {want:#010x} ({host}); the plan was built for another ABI"
            )


def _load_images(plan: Plan, base_dir: Path, supplied: Mapping[str, Path]) -> list[tuple[int, bytes]]:
    loaded = []
    for image in plan.images:
        given = supplied.get(image.name)
        if given is None and image.path is None:
            named = f" ({image.hint!r} was missing at build time)" if image.hint else ""
            raise PlanError(f"image {image.name!r} is not part of this build{named}: pass --{image.name} FILE")
        path = given if given is not None else base_dir / str(image.path)
        try:
            data = path.read_bytes()
        except OSError as err:
            raise PlanError(f"image {image.name!r}: cannot read {path}: {err.strerror}") from None
        digest = hashlib.sha256(data).hexdigest()
        if given is None and digest != image.sha256:
            raise PlanError(f"image {image.name!r}: {path} has sha256 {digest}, the plan expects {image.sha256}")
        loaded.append((image.guest_phys_addr, data))
    return loaded


def _open_host(plan: Plan, tracer: _Tracer) -> Kvm:
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
    except BaseException:
        kvm.close()
        raise
    return kvm


def _run_vcpu(
    vcpu: Vcpu, step: Step, plan: Plan, timeout: float, tracer: _Tracer, out: BinaryIO
) -> tuple[Status, str, int]:
    # The compiler writes a serial console only with its port; validate() does not check hand-written plans.
    console = CONSOLE_KINDS[plan.console.kind](cast(int, plan.console.port), out) if plan.console else None
    thread = threading.get_ident()

    def kick() -> None:
        vcpu.request_immediate_exit()
        signal.pthread_kill(thread, KICK_SIGNAL)

    count = 0
    with kick_handler(), Watchdog(timeout, kick) as dog:
        loop = _ExitLoop(vcpu, console, tracer, dog, timeout)
        while True:
            try:
                ex = vcpu.run()
            except KvmError as err:
                raise err.at(step.source) from None
            except exits.BadExit as err:
                return Status.KVM_INTERNAL, str(err), count
            count += 1
            outcome = EXIT_HANDLERS[type(ex)](loop, ex)
            if outcome is not None:
                return outcome[0], outcome[1], count


class _ExitLoop:
    """The answers to a vCPU's exits; each handler returns None to keep running."""

    def __init__(self, vcpu: Vcpu, console: Console | None, tracer: _Tracer, dog: Watchdog, timeout: float):
        self.vcpu, self.console, self.tracer, self.dog, self.timeout = vcpu, console, tracer, dog, timeout

    def io(self, ex: exits.Io) -> Outcome:
        answer = self.console.handle(ex) if self.console else None
        if answer is None:
            self.tracer.note(f"port {ex.direction} {ex.port:#06x} ({ex.size}x{ex.count} bytes) ignored")
            answer = bytes(ex.length) if ex.direction == "in" else b""
        if ex.direction == "in":
            self.vcpu.complete_io_in(ex, answer)
        return None

    def mmio(self, ex: exits.Mmio) -> Outcome:
        kind = "write" if ex.is_write else "read (returns 0)"
        self.tracer.note(f"mmio {kind} of {len(ex.data)} bytes at {ex.phys_addr:#x} ignored")
        if not ex.is_write:
            self.vcpu.complete_mmio_read(bytes(len(ex.data)))
        return None

    def hypercall(self, ex: exits.Hypercall) -> Outcome:
        self.tracer.note(f"hypercall {ex.nr} has no handler: returns -KVM_ENOSYS")
        self.vcpu.complete_hypercall(-KVM_ENOSYS)
        return None

    def intr(self, ex: exits.Intr) -> Outcome:
        if self.dog.fired:
            return Status.TIMEOUT, f"watchdog: the guest was still running after {self.timeout:g} s"
        return None  # some other signal: carry on

    def system_event(self, ex: exits.SystemEvent) -> Outcome:
        status = SYSTEM_EVENT_STATUS.get(ex.type, Status.KVM_INTERNAL)
        return status, f"KVM_EXIT_SYSTEM_EVENT type {ex.type} data {list(ex.data)}"

    def internal(self, ex: exits.InternalError) -> Outcome:
        return Status.KVM_INTERNAL, f"KVM_EXIT_INTERNAL_ERROR suberror {ex.suberror} data {[hex(d) for d in ex.data]}"

    def fail_entry(self, ex: exits.FailEntry) -> Outcome:
        return Status.KVM_INTERNAL, f"KVM_EXIT_FAIL_ENTRY hardware reason {ex.reason:#x} on cpu {ex.cpu}"

    def unknown(self, ex: exits.Unknown) -> Outcome:
        return Status.KVM_INTERNAL, f"unhandled exit {ex.name} ({ex.reason})"


EXIT_HANDLERS: dict[type, Callable[[_ExitLoop, Any], Outcome]] = {
    exits.Io: _ExitLoop.io,
    exits.Mmio: _ExitLoop.mmio,
    exits.Hypercall: _ExitLoop.hypercall,
    exits.Intr: _ExitLoop.intr,
    exits.Hlt: lambda loop, ex: (Status.HALTED, "guest halted"),
    exits.Shutdown: lambda loop, ex: (Status.GUEST_SHUTDOWN, "guest shut down (KVM_EXIT_SHUTDOWN, e.g. a triple fault)"),
    exits.SystemEvent: _ExitLoop.system_event,
    exits.InternalError: _ExitLoop.internal,
    exits.FailEntry: _ExitLoop.fail_entry,
    exits.Unknown: _ExitLoop.unknown,
}
