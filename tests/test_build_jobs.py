"""A build compiled in forked workers (hvconf/emit/jobs.py) is the one-process build: the same
files byte for byte and the same diagnostics in the same order; a worker that dies or sends
back garbage is replaced by the parent, which leaves no child behind. Real forks, real
signals; nothing is mocked but the worker's body where a test kills it."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from typing import Any

import pytest

from hvconf import compiler
from hvconf.emit import jobs

REPO = Path(__file__).resolve().parent.parent
SAMPLES = sorted((REPO / "samples").glob("*.hv"))
BASE = "format 1\nabstract vm b {\n    arch x86_64\n    memory 16M\n    console serial\n}\n"


def outcome(result: compiler.Result) -> tuple[list[tuple[str, dict[str, bytes], dict[str, Any]]], list[object]]:
    return [(b.vm.name, b.files, b.plan) for b in result.built], list(result.report.diagnostics)


def many(tmp_path: Path, n: int) -> Path:
    """`n` VMs of one base, each with a line of its own (its steps' sources differ)."""
    path = tmp_path / "many.hv"
    path.write_text(BASE + "".join(f"vm v{i} extends b {{ vcpus {1 + i % 3} }}\n" for i in range(n)))
    return path


def no_children_left(pids: list[int]) -> bool:
    """Every worker in `pids` ended and was reaped by hvconf. Only these pids are asked: the
    suite's process has other children (the emulated hosts' background boots), and a wait on
    any child would reap theirs."""
    for pid in pids:
        try:
            os.waitpid(pid, os.WNOHANG)  # (0, 0): still running; (pid, status): ended, never reaped
        except ChildProcessError:
            continue  # reaped already
        return False
    return True


@pytest.fixture
def forks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The pid of every worker forked during the test."""
    pids: list[int] = []
    real = jobs._fork

    def spy(run: Any, overrides: Any) -> tuple[int, int]:
        pid, fd = real(run, overrides)
        pids.append(pid)
        return pid, fd

    monkeypatch.setattr(jobs, "_fork", spy)
    return pids


@pytest.mark.parametrize("processes", [2, 3])
def test_a_build_in_several_processes_is_the_one_process_build(tmp_path: Path, forks: list[int],
                                                               processes: int) -> None:
    # Every sample (every target, warnings such as kernel-missing and abi-unmerged from
    # artifacts), then many VMs whose plans share most steps (the renderers' memo).
    seen: list[int] = []
    for paths in (SAMPLES, [many(tmp_path, 40)]):
        alone = outcome(compiler.build(paths, jobs=1))
        assert not forks
        together = outcome(compiler.build(paths, jobs=processes))
        assert len(forks) == processes - 1
        seen += forks
        forks.clear()
        assert together == alone
    assert no_children_left(seen)


@pytest.mark.parametrize("processes", [None, 1, 2])
def test_a_file_of_only_abstract_vms_builds_nothing(tmp_path: Path, forks: list[int], processes: int | None) -> None:
    path = tmp_path / "bases.hv"
    path.write_text(BASE)
    result = compiler.build([path], jobs=processes)
    assert not result.built and not result.report.diagnostics and not forks


def test_a_worker_that_is_killed_is_replaced_by_the_parent(tmp_path: Path, forks: list[int],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    path = many(tmp_path, 30)
    alone = outcome(compiler.build([path], jobs=1))
    monkeypatch.setattr(jobs, "_work", lambda run, overrides, fd: os.kill(os.getpid(), signal.SIGKILL))
    assert outcome(compiler.build([path], jobs=2)) == alone
    assert len(forks) == 1 and no_children_left(forks)


def test_a_worker_whose_result_is_damaged_is_replaced_by_the_parent(tmp_path: Path, forks: list[int],
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    path = many(tmp_path, 30)
    alone = outcome(compiler.build([path], jobs=1))

    def damaged(run: Any, overrides: Any, fd: int) -> None:
        os.write(fd, b"\x80\x05not a pickle")
        os._exit(0)

    monkeypatch.setattr(jobs, "_work", damaged)
    assert outcome(compiler.build([path], jobs=2)) == alone
    assert len(forks) == 1 and no_children_left(forks)


def test_an_error_in_the_parent_ends_the_workers(tmp_path: Path, forks: list[int],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # Ctrl-C (or any exception) while the parent compiles its own run: no worker outlives it.
    path = many(tmp_path, 30)

    def interrupted(*args: Any) -> list[Any]:
        raise KeyboardInterrupt

    monkeypatch.setattr(jobs, "_compile", interrupted)
    with pytest.raises(KeyboardInterrupt):
        compiler.build([path], jobs=2)
    assert len(forks) == 1 and no_children_left(forks)


def test_only_a_large_build_with_a_second_cpu_and_no_other_thread_forks() -> None:
    cpus = len(os.sched_getaffinity(0))
    assert jobs.processes(jobs.PARALLEL_FROM - 1) == 1
    assert jobs.processes(jobs.PARALLEL_FROM) == min(2, cpus)
    assert jobs.processes(3, wanted=8) == 3  # never more processes than VMs
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        assert jobs.processes(jobs.PARALLEL_FROM, wanted=2) == 1  # fork would copy only this thread
    finally:
        stop.set()
        thread.join()


WORKER_THAT_WAITS = """
import os, sys, time
from pathlib import Path
from hvconf import compiler
from hvconf.emit import jobs

def work(run, overrides, fd):  # a worker that would outlive its parent by a minute
    print(os.getpid(), flush=True)
    time.sleep(60)
    os._exit(0)

jobs._work = work
compiler.build([Path(sys.argv[1])], jobs=2)
"""


def _gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"  # ended, not yet reaped
    except FileNotFoundError:
        return True


def test_a_worker_ends_with_its_parent(tmp_path: Path) -> None:
    # SIGKILL to `hvconf build` alone (not its process group): its worker's results have no reader,
    # so the worker ends too (PR_SET_PDEATHSIG) instead of compiling on for nobody.
    import subprocess
    import sys
    import time

    parent = subprocess.Popen([sys.executable, "-c", WORKER_THAT_WAITS, str(many(tmp_path, 30))],
                              stdout=subprocess.PIPE, text=True, cwd=REPO)  # fmt: skip
    assert parent.stdout is not None
    worker = int(parent.stdout.readline())
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 20  # a bound for a loaded machine; the worker would sleep for 60 s
    while not _gone(worker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _gone(worker)
