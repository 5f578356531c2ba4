"""The main thread's watch over a run: the timeout, SIGINT/SIGTERM, and kicking vCPU threads.

A run whose one vCPU runs in the calling thread (run.py) is watched by `InlineWatch`: no thread,
no kicks (below). While vCPU threads run, the main thread blocks KICK_SIGNAL, SIGINT and
SIGTERM (`routed_signals`) and waits for them with sigtimedwait in
`supervise`: a vCPU thread wakes it with KICK_SIGNAL, SIGINT/SIGTERM end the
run, and the deadline ends it as a timeout. Once the run is ending it kicks
every vCPU thread (immediate_exit + KICK_SIGNAL) every KICK_INTERVAL until
all have returned, since a kick can land between two KVM_RUNs. `stop_all`
does that last part alone, for a run whose watch failed: KICK_SIGNAL's
handler may only go once no vCPU thread is left to send the signal (a vCPU
thread's last act wakes the main thread with it; with the default action
back, that wake killed the process). No thread of its own, no fds.
Tests: tests/kvm/test_runtime.py (spin, vmcall, signals, the failed watch, with one vCPU and several).
"""

from __future__ import annotations

import time

from hvconf.kvm import signals
from hvconf.kvm.status import Status

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Callable
    from types import FrameType, TracebackType
    from typing import Any

    from hvconf.kvm.ending import Ending

KICK_SIGNAL = signals.SIGUSR1
KICK_INTERVAL = 0.05  # re-kick while a vCPU thread has not returned
MAX_WAIT = 3600.0  # one sigtimedwait at most; it refuses waits past time_t (OverflowError)
VCPU_THREAD = "hvconf-vcpu"  # vcpu_thread.VcpuThread names its threads with this prefix
STOP_SIGNALS: dict[int, tuple[int, str]] = {
    signals.SIGINT: (Status.INTERRUPTED, "interrupted by SIGINT"),
    signals.SIGTERM: (Status.TERMINATED, "terminated by SIGTERM"),
}
ROUTED = {KICK_SIGNAL, *STOP_SIGNALS}


def _ignore(signum: int, frame: FrameType | None) -> None:
    # Its only job is to exist: a handled signal interrupts KVM_RUN with EINTR.
    pass


# The two context managers are classes, not @contextlib.contextmanager: contextlib is not otherwise
# needed to launch a guest.
class kick_handler:  # noqa: N801 - used as a function: `with kick_handler():`
    """Make KICK_SIGNAL interrupt syscalls instead of killing the process, for the block's duration."""

    def __enter__(self) -> None:
        import threading  # only runs with vCPU threads need it (about 1 ms with what it imports)

        self.old: Any = None
        self.installed = threading.current_thread() is threading.main_thread()
        if self.installed:
            self.old = signals.signal(KICK_SIGNAL, _ignore)
            return
        current = signals.getsignal(KICK_SIGNAL)
        if current in (signals.SIG_DFL, signals.SIG_IGN, None):
            raise RuntimeError(
                f"running a guest outside the main thread needs a Python handler for {signals.NAMES[KICK_SIGNAL]}, "
                "installed from the main thread first"
            )

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None) -> None:
        # run.py joins every vCPU thread first; should one still be alive (a bug), keep the handler:
        # its last wake would otherwise kill the process.
        import threading

        if self.installed and not any(t.name.startswith(VCPU_THREAD) for t in threading.enumerate()):
            signals.signal(KICK_SIGNAL, self.old)


class routed_signals:  # noqa: N801 - used as a function: `with routed_signals():`
    """Block KICK_SIGNAL, SIGINT and SIGTERM in this thread (and threads it starts) for the block.

    On the way out, wakes that nobody waited for are dropped; a SIGINT or
    SIGTERM that arrived after the run ended is delivered as usual.
    """

    def __enter__(self) -> None:
        self.old = signals.pthread_sigmask(signals.SIG_BLOCK, ROUTED)

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None) -> None:
        while signals.sigtimedwait({KICK_SIGNAL}, 0) is not None:
            pass
        signals.pthread_sigmask(signals.SIG_SETMASK, self.old)


def supervise(
    ending: Ending, kick_all: Callable[[], None], abort: Callable[[], None], timeout: float,
    timed_out: Callable[[], str],
) -> None:  # fmt: skip
    """Wait in the calling thread (inside routed_signals) until every vCPU thread has returned.

    `timed_out()` gives the watchdog's reason once `timeout` seconds have passed.
    """
    deadline = time.monotonic() + timeout
    while not ending.finished:
        if ending.stopping:
            abort()
            kick_all()
            signals.sigtimedwait(ROUTED, KICK_INTERVAL)
            continue
        remaining = min(deadline - time.monotonic(), MAX_WAIT)
        info = signals.sigtimedwait(ROUTED, remaining) if remaining > 0 else None
        if info is not None and info.si_signo in STOP_SIGNALS:
            ending.end(*STOP_SIGNALS[info.si_signo])
        elif info is None and time.monotonic() >= deadline:
            ending.end(Status.TIMEOUT, f"watchdog: {timed_out()}")


def stop_all(ending: Ending, kick_all: Callable[[], None], abort: Callable[[], None]) -> None:
    """Return once every vCPU thread has: ends the run first if it was not ending (a failed watch)."""
    if ending.finished:
        return
    if not ending.stopping:
        ending.end(Status.KVM_INTERNAL, "the launcher's watch over the run failed")
    while not ending.finished:
        abort()
        kick_all()
        try:
            signals.sigtimedwait(ROUTED, KICK_INTERVAL)
        except Exception:  # noqa: BLE001 - whatever broke the watch must not leave threads behind
            time.sleep(KICK_INTERVAL)


class InlineWatch:
    """The watch over a run whose one vCPU runs in the calling thread: `with InlineWatch(...) as watch:`.

    The deadline is an ITIMER_REAL (SIGALRM). SIGALRM, SIGINT and SIGTERM stay blocked in the thread,
    and the vCPU runs with them unblocked in KVM_RUN (`run_mask()` for Vcpu.set_signal_mask): one that
    is pending, or arrives, makes KVM_RUN return EINTR at once, so none is lost between a check and the
    ioctl, and none needs a handler. `check()` takes what is pending and ends the run as supervise()
    does; the exit loop calls it after every EINTR, a console write waiting for its reader every WAIT_MS.
    """

    WATCHED = {signals.SIGALRM, *STOP_SIGNALS}

    def __init__(self, ending: Ending, timeout: float, timed_out: Callable[[], str]) -> None:
        self.ending = ending
        self.timeout = timeout
        self.timed_out = timed_out  # the watchdog's reason, asked when the deadline has passed
        self.deadline = self.started = 0.0
        self.old: set[int] = set()
        self.old_timer = (0.0, 0.0)  # the caller's ITIMER_REAL (delay, interval), re-armed afterwards

    def __enter__(self) -> InlineWatch:
        self.old = signals.pthread_sigmask(signals.SIG_BLOCK, self.WATCHED)
        self.started = time.monotonic()
        self.deadline = self.started + self.timeout
        self.old_timer = signals.setitimer(signals.ITIMER_REAL, self.timeout)
        return self

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None) -> None:
        signals.setitimer(signals.ITIMER_REAL, 0)  # the run's deadline off, then its SIGALRM taken:
        while signals.sigtimedwait({signals.SIGALRM}, 0) is not None:  # re-arming first could let the
            pass  # caller's own timer, run out during the run, fire into this drain and be lost
        delay, interval = self.old_timer
        if delay > 0:  # what was left of it; one that ran out during the run fires now
            delay = max(delay - (time.monotonic() - self.started), 1e-6)
        signals.setitimer(signals.ITIMER_REAL, delay, interval)
        signals.pthread_sigmask(signals.SIG_SETMASK, self.old)  # a SIGINT or SIGTERM left is delivered as usual

    def run_mask(self) -> set[int]:
        """The signals to keep blocked inside KVM_RUN: the thread's own mask before the run."""
        return set(self.old) - self.WATCHED

    def wait(self) -> None:
        """Wait for the run's end: the deadline or a signal (a vCPU nothing but another vCPU could release)."""
        while not self.check():
            info = signals.sigtimedwait(self.WATCHED, MAX_WAIT)
            if info is not None:
                self._take(info.si_signo)

    def check(self) -> bool:
        """Take the pending signals and end the run for them; True when the run is ending."""
        while (info := signals.sigtimedwait(self.WATCHED, 0)) is not None:
            self._take(info.si_signo)
        return self.ending.stopping

    def _take(self, signo: int) -> None:
        if signo in STOP_SIGNALS:
            self.ending.end(*STOP_SIGNALS[signo])
            return
        remaining = self.deadline - time.monotonic()
        if remaining > 0:  # someone else's SIGALRM: the deadline still stands
            signals.setitimer(signals.ITIMER_REAL, remaining)
        else:
            self.ending.end(Status.TIMEOUT, f"watchdog: {self.timed_out()}")
