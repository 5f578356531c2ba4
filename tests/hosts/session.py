"""A test session's boot of an emulated host, started early and run in a process of its own.

A suite's conftest calls `Background(...).start()` from pytest_collection_finish, once it knows
some selected test needs the boot: a child Python (`python -m hosts.session`) then prepares the
host, copies the hvconf runtime into the payload and boots it, while the other tests go on beside
it and beside the other host's boots; the suite's session fixture calls `result()`, which waits
for the child and returns its Base and Boot, or raises what it raised. A process, not a thread:
the runtime's tests count the threads and fds of the pytest process around each run, and a boot's
pipes would be among them. The payload is built before, in the test process (by the compiler).
"""

from __future__ import annotations

import importlib
import os
import pickle
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from . import emulated

TESTS = Path(__file__).resolve().parents[1]
Outcome = tuple[emulated.Base, emulated.Boot]


class Background:
    """`recipe`'s host (hosts.ppc or hosts.x86) prepared from `cache` and booted with `payload` in a
    child process; `result()` waits for it."""

    def __init__(self, recipe: str, payload: Path, cache: Path, timeout: float, case_timeout: int) -> None:
        self.argv = [sys.executable, "-m", "hosts.session", recipe, str(payload), str(cache), str(timeout),
                     str(case_timeout)]
        self.proc: subprocess.Popen[bytes] | None = None
        self.out = self._temp(recipe, ".pickle")
        self.err = self._temp(recipe, ".stderr")
        self.started = self.finished = 0.0  # wall-clock times (time.time(): the child's result file says when it ended)
        self._outcome: Any = None

    @staticmethod
    def _temp(recipe: str, suffix: str) -> Path:
        fd, name = tempfile.mkstemp(prefix=f"hvconf-{recipe}-boot-", suffix=suffix)
        os.close(fd)
        return Path(name)

    def start(self) -> Background:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")]))}
        self.started = time.time()
        with open(self.out, "wb") as out, open(self.err, "wb") as err:  # the parent keeps no fd of them
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env,
                                         cwd=TESTS, start_new_session=True)
        return self

    def result(self) -> Outcome:
        """The child's Base and Boot; HostUnavailable, NoKvm or BootError as it raised them."""
        if self._outcome is None:
            assert self.proc is not None, "start() first"
            rc = self.proc.wait()
            try:
                self.finished = self.out.stat().st_mtime  # when the child wrote its result, not when we asked
            except OSError:
                self.finished = time.time()
            try:
                self._outcome = pickle.loads(self.out.read_bytes())
            except (OSError, EOFError, pickle.UnpicklingError):
                said = self.err.read_text(errors="replace").strip().splitlines() or ["(nothing on stderr)"]
                self._outcome = ("error", "BootError", f"the boot process ended with status {rc} and no result: "
                                                       f"{said[-1]}", "", "")
            finally:
                self.out.unlink(missing_ok=True)
                self.err.unlink(missing_ok=True)
        if self._outcome[0] == "ok":
            return self._outcome[1], self._outcome[2]
        raise rebuild(*self._outcome[1:])

    def stop(self) -> None:
        """End a boot still under way (its QEMU included): the session is over."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    @property
    def seconds(self) -> float:
        """How long the child took from start() to its result (so far, before result())."""
        return (self.finished or time.time()) - self.started


def flatten(err: BaseException) -> tuple[str, str, str, str, str]:
    """An error of the harness as plain data: ("error", kind, message or reason, console, host title)."""
    if isinstance(err, emulated.NoKvm):
        return "error", "NoKvm", err.reason, err.console, err.title
    if isinstance(err, emulated.BootError):
        return "error", "BootError", str(err).split("\n--- console tail ---\n")[0], err.console, ""
    if isinstance(err, emulated.HostUnavailable):
        return "error", "HostUnavailable", str(err), "", ""
    return "error", "BootError", f"{type(err).__name__}: {err}", "", ""


def rebuild(kind: str, message: str, console: str, title: str = "") -> Exception:
    """The exception flatten() described."""
    if kind == "NoKvm":
        return emulated.NoKvm(message, console, title)
    if kind == "HostUnavailable":
        return emulated.HostUnavailable(message)
    return emulated.BootError(message, console)


def main(argv: list[str]) -> int:
    recipe, payload, cache, timeout, case_timeout = argv
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwinds run_qemu, which kills QEMU
    host: emulated.Host = importlib.import_module(f"hosts.{recipe}").HOST
    try:
        base = host.prepare(Path(cache))
        emulated.runtime_tree(Path(payload) / "lib", base.magic)
        outcome: tuple[Any, ...] = ("ok", base, host.boot(base, Path(payload), timeout=float(timeout),
                                                          case_timeout=int(case_timeout)))
    except Exception as err:  # noqa: BLE001 - every failure goes back to the test process as data
        outcome = flatten(err)
    sys.stdout.buffer.write(pickle.dumps(outcome))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
