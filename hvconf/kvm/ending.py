"""How a run ends, decided once and shared by the main thread and every vCPU thread.

A machine-wide outcome (`end(status, reason, reboot)`: power-off, shutdown, a
reboot, an internal error, the watchdog, a signal) or a failure (`fail(error)`: an
ioctl or plan error) is recorded by whichever thread sees it first; later
ones are ignored. A vCPU that halts only stops itself (`halted(id)`): the
run ends HALTED when every vCPU that ran has halted. `wake` is called
whenever the main thread should look again. Tests: tests/kvm/test_runtime.py.
"""

from __future__ import annotations

import _thread  # threading.Lock is _thread.allocate_lock: importing threading costs a launch ~1 ms

from hvconf.kvm.status import Status

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Callable


class Ending:
    def __init__(self, wake: Callable[[], None]) -> None:
        self._wake = wake
        self._lock = _thread.allocate_lock()
        self._unfinished = 0  # vCPU threads started that have not returned yet
        self.outcome: tuple[int, str] | None = None
        self.reboot = False  # the outcome is the guest's reboot request (a restart may follow)
        self.error: BaseException | None = None
        self.ran: list[int] = []  # vCPUs that entered their run loop
        self.halted_vcpus: list[int] = []

    @property
    def stopping(self) -> bool:
        return self.outcome is not None or self.error is not None

    @property
    def finished(self) -> bool:
        """Every vCPU thread has returned (or is about to: it has nothing left to do)."""
        return self._unfinished == 0

    def end(self, status: int, reason: str, reboot: bool = False) -> None:
        with self._lock:
            if self.outcome is None and self.error is None:
                self.outcome = (status, reason)
                self.reboot = reboot
        self._wake()

    def fail(self, error: BaseException) -> None:
        with self._lock:
            if self.outcome is None and self.error is None:
                self.error = error
        self._wake()

    def running(self, vcpu_id: int) -> None:
        with self._lock:
            self.ran.append(vcpu_id)

    def halted(self, vcpu_id: int) -> None:
        with self._lock:
            self.halted_vcpus.append(vcpu_id)

    def thread_starting(self) -> None:
        with self._lock:
            self._unfinished += 1

    def thread_done(self) -> None:
        with self._lock:
            self._unfinished -= 1
        self._wake()

    def result(self) -> tuple[int, str]:
        """The outcome once every thread is done (raise `error` first, if there is one)."""
        if self.outcome is not None:
            return self.outcome
        if not self.ran:
            return Status.HALTED, "plan has no KVM_RUN step"
        ids = ", ".join(str(i) for i in sorted(self.halted_vcpus))
        return Status.HALTED, "guest halted" if len(self.ran) == 1 else f"every vCPU halted ({ids})"
