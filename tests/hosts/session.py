"""A test session's boot of an emulated host, started early and run in the background.

A suite's conftest calls `start(work)` from pytest_collection_finish, once it knows some
selected test needs the boot: `work` (prepare the host, boot it, run every case) then runs in
a thread of its own while the other tests go on, beside the other host's boots; the suite's
session fixture calls `result()`, which waits for it and re-raises what it raised. Each QEMU
is a process of its own, so the boots and the tests share the machine's cores. What `work`
needs from the test process (payloads built by the compiler, the cache folder) is made before
`start`, in the main thread: tests may monkeypatch hvconf or $HOME meanwhile.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Background(Generic[T]):
    """`work()` in a daemon thread; `result()` joins it (a daemon: an interrupted session does
    not wait for a boot, whose QEMU the harness kills when its wall-clock bound passes)."""

    def __init__(self, name: str, work: Callable[[], T]) -> None:
        self.name = name
        self._work = work
        self._value: T | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.started = self.finished = 0.0

    def start(self) -> Background[T]:
        self.started = time.monotonic()
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            self._value = self._work()
        except BaseException as err:  # noqa: BLE001 - handed to the thread that asks for the result
            self._error = err
        finally:
            self.finished = time.monotonic()

    def result(self) -> T:
        """The work's value, once it has finished; what it raised, raised again here."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._value is not None
        return self._value

    @property
    def seconds(self) -> float:
        """How long the work ran (so far)."""
        return (self.finished or time.monotonic()) - self.started
