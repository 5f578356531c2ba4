"""The POSIX signal calls the runtime makes, as plain ints.

These are the functions of the standard `signal` module without its
wrapper, which only turns numbers into IntEnums and imports enum to do so
(about 1.5 ms of every launch). The C module `_signal` underneath is what
every CPython has; elsewhere `signal` itself serves. Nothing else here.
Tests: tests/kvm/test_runtime.py (kicks, SIGINT, SIGTERM).
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:  # _signal has no stubs; its functions are signal's, with ints for enums
    from signal import (
        ITIMER_REAL, SIG_BLOCK, SIG_DFL, SIG_IGN, SIG_SETMASK, SIG_UNBLOCK, SIGALRM, SIGINT, SIGTERM, SIGUSR1,
        getsignal, pthread_kill, pthread_sigmask, setitimer, sigtimedwait, signal,
    )  # fmt: skip
else:
    try:
        from _signal import (
            ITIMER_REAL, SIG_BLOCK, SIG_DFL, SIG_IGN, SIG_SETMASK, SIG_UNBLOCK, SIGALRM, SIGINT, SIGTERM, SIGUSR1,
            getsignal, pthread_kill, pthread_sigmask, setitimer, sigtimedwait, signal,
        )  # fmt: skip
    except ImportError:  # not CPython
        from signal import (
            ITIMER_REAL, SIG_BLOCK, SIG_DFL, SIG_IGN, SIG_SETMASK, SIG_UNBLOCK, SIGALRM, SIGINT, SIGTERM, SIGUSR1,
            getsignal, pthread_kill, pthread_sigmask, setitimer, sigtimedwait, signal,
        )  # fmt: skip

NAMES = {SIGINT: "SIGINT", SIGTERM: "SIGTERM", SIGUSR1: "SIGUSR1", SIGALRM: "SIGALRM"}

__all__ = ["ITIMER_REAL", "NAMES", "SIG_BLOCK", "SIG_DFL", "SIG_IGN", "SIG_SETMASK", "SIG_UNBLOCK", "SIGALRM", "SIGINT",
           "SIGTERM", "SIGUSR1", "getsignal", "pthread_kill", "pthread_sigmask", "setitimer", "sigtimedwait", "signal"]
