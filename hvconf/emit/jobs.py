"""The artifacts of a large build, compiled in forked worker processes.

Building a VM's outputs is pure CPU work per VM (hvconf/emit/artifacts.py), so
a build of thousands of VMs is split into contiguous runs: the parent compiles
the first, each forked worker one of the others, and sends back, pickled, per
VM its diagnostics and files (the plan is read back from plan.json if asked
for). The parent takes them in VM order, so the report and the outputs are
those of a one-process build, byte for byte, and it writes every file itself
afterwards (hvconf/emit/output.py): all or nothing as before. A worker that
fails in any way (an exception, a signal, a result that does not unpickle) is
not trusted: the parent compiles its run itself. Tested by
tests/test_build_jobs.py (the same bytes either way, a worker killed).
"""

from __future__ import annotations

import contextlib
import mmap
import os
import pickle
import signal
import threading
from typing import TYPE_CHECKING, Any, Callable, Sequence, TypeVar

from hvconf.diagnostics import Report

if TYPE_CHECKING:
    from pathlib import Path

    from hvconf.emit.artifacts import Built
    from hvconf.model import ir
    from hvconf.syntax.loader import Program

    Todo = Sequence[tuple[Program, ir.Vm]]

PARALLEL_FROM = 1000  # VMs; below this, forking and merging cost more than a second core gives


def processes(vms: int, wanted: int | None = None) -> int:
    """How many processes compile `vms` VMs' artifacts: `wanted`, or by default 2 for a large
    build where a second CPU is usable, else 1; always 1 without fork."""
    if wanted is None:
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
        wanted = min(2, cpus) if vms >= PARALLEL_FROM else 1
    # fork copies only the calling thread: with another thread alive, a lock it held stays held.
    if wanted < 2 or not hasattr(os, "fork") or threading.active_count() > 1:
        return 1
    return max(1, min(wanted, vms))  # never more processes than VMs, and one for none


def build_all(todo: "Todo", report: Report, overrides: "Path | None", progress: Callable[[str, int, int], None] | None,
              jobs: int) -> list["Built"]:
    """Every VM's artifacts (None-free, in `todo`'s order), their diagnostics added to
    `report` in that order, compiled in `jobs` processes."""
    runs = _split(todo, jobs)
    workers = [_fork(run, overrides) for run in runs[1:]]
    reaped: set[int] = set()
    try:
        built = _compile(runs[0], report, overrides, progress, 0, len(todo))
        done = len(runs[0])
        for run, (pid, fd) in zip(runs[1:], workers):
            parts = _receive(pid, fd)
            reaped.add(pid)
            if parts is None or len(parts) != len(run):
                built += _compile(run, report, overrides, progress, done, len(todo))
            else:
                built += _merge(run, parts, report)
            done += len(run)
        return built
    finally:  # each fd closed once, each pid waited for once: a number freed is soon another's
        for pid, fd in workers:
            os.close(fd)
            if pid not in reaped:
                _end(pid)


_T = TypeVar("_T")


def contiguous_runs(items: Sequence[_T], n: int) -> list[Sequence[_T]]:
    """`items` cut into at most `n` non-empty contiguous runs whose lengths differ by at most one,
    in order: what each of `n` processes takes (also `hvconf check --jobs`, lint/driver.py)."""
    size, extra = divmod(len(items), n)
    runs: list[Sequence[_T]] = []
    start = 0
    for i in range(n):
        end = start + size + (1 if i < extra else 0)
        runs.append(items[start:end])
        start = end
    return [r for r in runs if r]


def _split(todo: "Todo", jobs: int) -> list["Todo"]:
    return contiguous_runs(todo, jobs) or [todo]  # a build of no VM (only abstract ones) is one empty run


def _compile(run: "Todo", report: Report, overrides: "Path | None",
             progress: Callable[[str, int, int], None] | None, done: int, total: int) -> list["Built"]:
    from hvconf.emit.artifacts import artifacts

    built = []
    for i, (program, vm) in enumerate(run, done + 1):
        if progress is not None:
            progress(f"building {vm.name}", i, total)
        one = artifacts(vm, program, report, overrides)
        if one is not None:
            built.append(one)
    return built


# What a worker sends per VM: its diagnostics, and its files (None when it failed). Not the
# plan: pickling and unpickling it cost more than the files' 25 MiB for 5,000 VMs.
_Part = tuple[list[Any], "dict[str, bytes] | None"]


def _fork(run: "Todo", overrides: "Path | None") -> tuple[int, int]:
    """A worker compiling `run`; (its pid, the file its results will be in). A file in memory,
    not a pipe: a pipe of 64 KiB made the worker and the parent take turns hundreds of times
    for a result of tens of MiB, each turn a wait for the scheduler on a busy machine."""
    fd = _result_file()
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:  # the worker: never returns
        _die_with(parent)
        _work(run, overrides, fd)
    return pid, fd


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _die_with(parent: int) -> None:
    """The worker ends when its parent does (a SIGTERM or SIGKILL to `hvconf build` alone): its
    results would have no reader. prctl(2) PR_SET_PDEATHSIG, through ctypes (the worker only);
    if the parent ended before the call, its own pid check ends the worker at once."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # no prctl here (not Linux): the worker ends on its own soon
        return
    if os.getppid() != parent:
        os._exit(1)


def _result_file() -> int:
    if hasattr(os, "memfd_create"):
        return os.memfd_create("hvconf-build-worker", os.MFD_CLOEXEC)
    import tempfile

    with tempfile.TemporaryFile() as file:  # unlinked at once; the fd keeps it
        return os.dup(file.fileno())


def _work(run: "Todo", overrides: "Path | None", fd: int) -> None:
    from hvconf.emit.artifacts import artifacts

    status = 1
    try:
        signal.signal(signal.SIGINT, signal.SIG_DFL)  # Ctrl-C ends the worker; the parent reports it
        parts: list[_Part] = []
        for program, vm in run:
            local = Report()
            one = artifacts(vm, program, local, overrides)
            parts.append((local.diagnostics, one.files if one else None))
        view = memoryview(pickle.dumps(parts, protocol=pickle.HIGHEST_PROTOCOL))
        while view:
            view = view[os.write(fd, view):]
        status = 0
    finally:
        os._exit(status)  # no atexit, no flush of the parent's buffered output, no teardown


def _receive(pid: int, fd: int) -> list[_Part] | None:
    """A worker's results, once it has ended (and been reaped); None if it did not finish cleanly."""
    _, status = os.waitpid(pid, 0)
    if not os.WIFEXITED(status) or os.WEXITSTATUS(status) != 0:
        return None
    try:
        size = os.fstat(fd).st_size
        with mmap.mmap(fd, size, prot=mmap.PROT_READ) if size else contextlib.nullcontext(b"") as data:
            parts: list[_Part] = pickle.loads(data)
        return parts
    except Exception:  # a truncated or damaged result
        return None


def _merge(run: "Todo", parts: list[_Part], report: Report) -> list["Built"]:
    from hvconf.emit.artifacts import Built

    built = []
    for (_, vm), (diagnostics, files) in zip(run, parts):
        report.diagnostics.extend(diagnostics)
        if files is not None:
            built.append(Built(vm, None, files))
    return built


def _end(pid: int) -> None:
    """End a worker whose results the parent did not take (an exception, Ctrl-C in the parent)."""
    try:
        if os.waitpid(pid, os.WNOHANG) == (0, 0):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
    except ChildProcessError:  # a Ctrl-C between _receive's wait and its note in `reaped`
        pass
