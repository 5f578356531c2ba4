"""Timing helpers: run one command and time it, interleave runners, summarise, fit a line.

`run(cmd)` times a child from spawn to exit (wall clock) and reads its CPU
time (user + sys) and peak RSS from wait4's rusage, which counts the child
and every descendant it reaped (a shell loop's dtc processes too); a wrong
exit status raises MeasureError with the child's stderr, so a broken command
is never timed as if it worked. Wall time swings with this shared machine's
load, CPU time much less: every pair reports both (a `Timing`).
`interleave` runs A B A B ... so drift on this shared machine hits every
side alike. No printing and no files besides the child's captured output.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple, TypeVar

T = TypeVar("T")


class MeasureError(RuntimeError):
    """A measured command failed (status, timeout); the message says which and why."""


@dataclass(frozen=True)
class Sample:
    """One run of one command: wall seconds, CPU seconds (user + sys, reaped descendants
    included), the child's peak RSS (KiB), status and output."""

    seconds: float
    maxrss_kib: int
    status: int
    stdout: bytes
    stderr: bytes
    cpu_seconds: float = 0.0


class Timing(NamedTuple):
    """One measured value in both terms: wall clock and CPU (user + sys), same unit."""

    wall: float
    cpu: float


def run(
    cmd: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    timeout: float = 300.0,
    expect: Sequence[int] = (0,),
) -> Sample:
    """Run `cmd` once; wall time from spawn to reaped exit, CPU time and peak RSS of the child."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(list(cmd), stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                env=dict(env) if env is not None else None, cwd=cwd)
        killer = threading.Timer(timeout, proc.kill)  # bounds every child, KVM guests included
        killer.start()
        try:
            # wait4, not Popen.wait: only wait4 returns the child's own rusage (CPU, ru_maxrss), not
            # that of every child this process reaped so far (RUSAGE_CHILDREN)
            _, wstatus, usage = os.wait4(proc.pid, 0)
        finally:
            killer.cancel()
        seconds = time.perf_counter() - start
        proc.returncode = status = os.waitstatus_to_exitcode(wstatus)
        out.seek(0)
        err.seek(0)
        sample = Sample(seconds, int(usage.ru_maxrss), status, out.read(), err.read(),
                        usage.ru_utime + usage.ru_stime)
    if status not in expect:
        why = "killed after the timeout" if status == -9 else f"exit status {status}"
        said = sample.stderr.strip() or sample.stdout.strip()  # some tools report findings on stdout
        tail = said.decode(errors="replace").splitlines()[-3:]
        raise MeasureError(f"`{' '.join(map(str, cmd))[:200]}`: {why}; said: {' | '.join(tail) or '(nothing)'}")
    return sample


def interleave(runners: Sequence[Callable[[], T]], rounds: int, warmup: int = 1) -> list[list[T]]:
    """Call each runner once per round in order (A B A B ...); values per runner, warm-up rounds dropped."""
    for _ in range(warmup):
        for runner in runners:
            runner()
    values: list[list[T]] = [[] for _ in runners]
    for _ in range(rounds):
        for i, runner in enumerate(runners):
            values[i].append(runner())
    return values


@dataclass(frozen=True)
class Summary:
    median: float
    min: float
    max: float
    n: int


def summary(values: Sequence[float]) -> Summary:
    return Summary(statistics.median(values), min(values), max(values), len(values))


@dataclass(frozen=True)
class Fit:
    """y = slope * x + intercept by least squares; r2 is the coefficient of determination."""

    slope: float
    intercept: float
    r2: float


def least_squares(xs: Sequence[float], ys: Sequence[float]) -> Fit:
    n = len(xs)
    if n < 2 or len(ys) != n:
        raise ValueError("a line needs at least two (x, y) points")
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        raise ValueError("all x are equal")
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
    intercept = my - slope * mx
    ss_tot = sum((y - my) ** 2 for y in ys)
    ss_res = sum((y - (slope * x + intercept)) ** 2 for x, y in zip(xs, ys))
    return Fit(slope, intercept, 1.0 - ss_res / ss_tot if ss_tot else 1.0)
