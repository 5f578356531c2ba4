"""The watchdog that bounds every KVM_RUN: a timer that kicks the vCPU thread.

When `timeout` seconds pass, `Watchdog` sets kvm_run.immediate_exit (so a
KVM_RUN about to start returns at once) and sends KICK_SIGNAL to the vCPU
thread (so one in progress returns EINTR). `kick_handler()` installs the
no-op handler without which that signal would kill the process. It never
touches fds. Tests: tests/kvm/test_runtime.py (spin and vmcall guests).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType, TracebackType

KICK_SIGNAL = signal.SIGUSR1
KICK_INTERVAL = 0.05  # re-kick while the vCPU thread has not acknowledged


def _ignore(signum: int, frame: FrameType | None) -> None:
    # Its only job is to exist: a handled signal interrupts KVM_RUN with EINTR.
    pass


@contextmanager
def kick_handler() -> Iterator[None]:
    """Make KICK_SIGNAL interrupt syscalls instead of killing the process, for the block's duration."""
    if threading.current_thread() is threading.main_thread():
        old = signal.signal(KICK_SIGNAL, _ignore)
        try:
            yield
        finally:
            signal.signal(KICK_SIGNAL, old)
        return
    current = signal.getsignal(KICK_SIGNAL)
    if current in (signal.SIG_DFL, signal.SIG_IGN, None):
        raise RuntimeError(
            f"running a guest outside the main thread needs a Python handler for {KICK_SIGNAL.name}, "
            "installed from the main thread first"
        )
    yield


class Watchdog:
    """Calls `kick` every KICK_INTERVAL seconds once `timeout` has passed, until cancelled.

    Use as a context manager around the vCPU loop; `fired` tells whether it went off.
    The timer thread is joined on exit, so no thread outlives the block.
    """

    def __init__(self, timeout: float, kick: Callable[[], None]) -> None:
        self.timeout = timeout
        self._kick = kick
        self._done = threading.Event()
        self._fired = threading.Event()
        self._thread = threading.Thread(target=self._wait, name="hvconf-watchdog", daemon=True)

    @property
    def fired(self) -> bool:
        return self._fired.is_set()

    def _wait(self) -> None:
        if self._done.wait(self.timeout):
            return
        self._fired.set()
        # Repeat: a kick can land between two KVM_RUNs, and immediate_exit is
        # cleared by nobody but the loop, so repeats are harmless.
        while not self._done.is_set():
            self._kick()
            self._done.wait(KICK_INTERVAL)

    def __enter__(self) -> Watchdog:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._done.set()
        self._thread.join()
