"""`--trace` output: plan steps as they are issued, and the ioctls the runtime adds itself.

`Tracer(stream)` is shared by the main and the vCPU threads: each thread
remembers the step it is issuing (so an ioctl made on the step's behalf,
like KVM_GET_SUPPORTED_CPUID for KVM_SET_CPUID2, names it), and whole
lines are written under a lock so threads never interleave within a line.
Lines go through an output.Output in the safe rendering (a `source` or an
hcall note carries strings from the definition), so a failed write is an
OutputError and a stalled reader cannot hold a vCPU past the run's end.
A None stream makes every call a no-op. Tests: tests/kvm/test_runtime.py.
"""

from __future__ import annotations

import _thread  # threading's Lock and local are _thread's: importing threading costs a launch ~1 ms

from hvconf.kvm.output import Output

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from typing import BinaryIO, TextIO

    from hvconf.contract import Step


class Tracer:
    def __init__(self, stream: TextIO | BinaryIO | None) -> None:
        self.stream = stream  # None: no trace
        self.output = Output(stream, "trace", "safe", text=True) if stream is not None else None
        self._local = _thread._local()
        self._lock = _thread.allocate_lock()

    def step(self, step: Step) -> None:
        """A plan step is about to be issued by this thread."""
        self._local.current = step
        if self.stream is not None:  # dryrun (and json) load only for --trace
            from hvconf.kvm import dryrun

            self.note(dryrun.line(step.fd, step.ioctl, step.request, step.args, step.source))

    def no_step(self) -> None:
        """This thread issues no plan step now (a restarted run's host checks are not its last step's)."""
        self._local.current = None

    def __call__(self, label: str, ioctl: str, request: int) -> None:
        """The fd layer's hook: an ioctl is about to be issued."""
        if self.stream is None:
            return
        current: Step | None = getattr(self._local, "current", None)
        if current is not None and ioctl == current.ioctl and label == current.fd:
            return  # the step's own ioctl, already printed by step()
        why = f"for step {current.index} at {current.source}" if current else "host check"
        self.note(f"{label}  {ioctl}  0x{request:08x}  # issued by the runtime ({why})")

    def note(self, text: str) -> None:
        if self.output is not None:
            with self._lock:
                self.output.write(f"trace: {text}\n".encode("utf-8", "surrogateescape"))
