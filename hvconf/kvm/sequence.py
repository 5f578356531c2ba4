"""Plan order across threads: each step is issued by its owner thread, in plan order.

KVM wants a vCPU's ioctls from the thread that created it, and a plan
wants its steps in order. `InOrder` serves a run whose every step is issued
by one thread, which issues them in order anyway. `Sequencer` gives the turn to step 0, 1, 2...:
`turn(index)` blocks the calling thread until every earlier step is done,
`done(index)` passes the turn on, `abort()` releases every waiter (each
gets False) when a step failed or the run is ending. It knows nothing of
ioctls. Tests: tests/kvm/test_runtime.py (several-vCPU plans, failures).
"""

from __future__ import annotations


class InOrder:
    """The turn of a run whose one thread issues every step in plan order: always its own."""

    def __init__(self) -> None:
        self._aborted = False

    def turn(self, index: int) -> bool:
        return not self._aborted

    def done(self, index: int) -> None:
        pass

    def abort(self) -> None:
        self._aborted = True


class Sequencer:
    def __init__(self) -> None:
        import threading  # a run with vCPU threads only (about 1 ms with what it imports)

        self._next = 0
        self._aborted = False
        self._cond = threading.Condition(threading.Lock())

    def turn(self, index: int) -> bool:
        """Wait until step `index` may be issued: True, or False once aborted."""
        with self._cond:
            self._cond.wait_for(lambda: self._next == index or self._aborted)
            return not self._aborted

    def done(self, index: int) -> None:
        with self._cond:
            if self._next != index:
                raise AssertionError(f"step {index} finished out of turn (turn is {self._next})")
            self._next = index + 1
            self._cond.notify_all()

    def abort(self) -> None:
        with self._cond:
            self._aborted = True
            self._cond.notify_all()
