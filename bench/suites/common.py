"""Runners shared by the suites: a command that must succeed, timed in milliseconds.

`runner(cmd, must_print=...)` returns a zero-argument callable for
measure.interleave that runs the command once, checks its status and
output, and returns a Timing: wall and CPU time (user + sys, from wait4)
in ms, or values the child reports, through `value`. It adds nothing to
what it times but spawn and reap.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from bench.measure import MeasureError, Sample, Timing, run

Runner = Callable[[], Timing]


def timing_ms(sample: Sample) -> Timing:
    """A child's wall and CPU time in ms."""
    return Timing(sample.seconds * 1000.0, sample.cpu_seconds * 1000.0)


def runner(
    cmd: Sequence[str],
    *,
    expect: Sequence[int] = (0,),
    must_print: bytes | None = None,
    env: Mapping[str, str] | None = None,
    value: Callable[[Sample], Timing] | None = None,
    timeout: float = 300.0,
    on_sample: Callable[[Sample], None] | None = None,
) -> Runner:
    """A callable that runs `cmd` once and returns its Timing in ms (or `value(sample)`)."""

    def once() -> Timing:
        sample = run(cmd, env=env, expect=expect, timeout=timeout)
        if must_print is not None and must_print not in sample.stdout:
            raise MeasureError(f"`{' '.join(cmd)[:200]}` did not print {must_print!r} "
                               f"(stdout {sample.stdout[:120]!r})")
        if on_sample is not None:
            on_sample(sample)
        return value(sample) if value is not None else timing_ms(sample)

    return once


def command_text(cmd: Sequence[str]) -> str:
    return " ".join(str(c) for c in cmd)
