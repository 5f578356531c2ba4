"""Measurement 2: cost of one port-I/O exit, hvconf's launcher against the C floor.

Both run bench/guests/exitloop.S (200,000 `out` to port 0x80, then HLT:
200,001 exits), interleaved. The primary figure is each side's own account
of its vCPU loop (the floor's loop_us, the launcher's "after S s, N exits"),
divided by the exits counted; its CPU figure is the whole process's CPU time
(user + sys from wait4, start-up included: ~1% of 200,001 exits) per exit.
Wall time per exit, start-up included, is kept as a second row. The
launcher's watchdog is 600 s: under load a run of 2 s took longer than the
launcher's 5 s default. Skips without /dev/kvm, the floor or the guest.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from bench.context import Context
from bench.measure import MeasureError, Sample, Timing, interleave
from bench.measurements import Goal, Row, Series, Side, not_measured
from bench.suites.common import command_text, runner

SUITE = "exits"
EXITS = 200_001  # 200,000 port writes and the HLT
GOAL = Goal("ratio_max", 1.5, "≤ 1.5x the C floor")
WATCHDOG = "600"  # seconds, for both sides; the child's own bound in measure.run is longer still
FLOOR_LINE = re.compile(rb"floor: exits=(\d+) loop_us=([\d.]+)")
LAUNCH_LINE = re.compile(rb"guest halted after ([\d.]+) s, (\d+) exits")


def _checked(exits: int, elapsed_us: float) -> float:
    if exits != EXITS:
        raise MeasureError(f"counted {exits} exits, the guest makes {EXITS}")
    return elapsed_us / exits


def _line(pattern: re.Pattern[bytes], sample: Sample) -> re.Match[bytes]:
    match = pattern.search(sample.stderr)
    if match is None:
        raise MeasureError(f"no summary line in stderr: {sample.stderr[-200:]!r}")
    return match


def floor_us_per_exit(sample: Sample) -> float:
    """µs per exit from the floor's own line: loop time from the first KVM_RUN to HLT."""
    match = _line(FLOOR_LINE, sample)
    return _checked(int(match[1]), float(match[2]))


def launcher_us_per_exit(sample: Sample) -> float:
    """µs per exit from the launcher's summary: time from execute() to HLT (setup included)."""
    match = _line(LAUNCH_LINE, sample)
    return _checked(int(match[2]), float(match[1]) * 1e6)


def per_exit(own_clock: Callable[[Sample], float]) -> Callable[[Sample], Timing]:
    """µs per exit: the side's own clock of its loop, and the process's CPU time over the exits."""
    return lambda sample: Timing(own_clock(sample), sample.cpu_seconds * 1e6 / EXITS)


def run(ctx: Context) -> list[Row | Series]:
    title = "µs per port-I/O exit (200,000 `out` + HLT)"
    why = ctx.why_missing("kvm", "guests", "floor")
    if why is not None:
        return [not_measured("exits.vs_floor", SUITE, title + ": launcher vs C floor", "µs", GOAL, why)]
    assert ctx.exitloop_dir is not None and ctx.floor is not None
    launch_cmd = [ctx.python, str(ctx.exitloop_dir / "launch.py"), "--timeout", WATCHDOG]
    floor_cmd = [str(ctx.floor), str(ctx.exitloop_dir / "guest.bin"), "0x7c00", "0x200000", WATCHDOG]
    walls: dict[str, list[Timing]] = {"launcher": [], "floor": []}

    def keep_wall(side: str) -> Callable[[Sample], None]:
        return lambda sample: walls[side].append(Timing(sample.seconds * 1e6 / EXITS,
                                                        sample.cpu_seconds * 1e6 / EXITS))

    runners = [
        runner(launch_cmd, value=per_exit(launcher_us_per_exit), on_sample=keep_wall("launcher"), timeout=900),
        runner(floor_cmd, value=per_exit(floor_us_per_exit), on_sample=keep_wall("floor"), timeout=900),
    ]
    ctx.log(f"exits: launcher vs floor, {ctx.counts.exits} rounds of {EXITS} exits each")
    launcher, floor = interleave(runners, ctx.counts.exits, warmup=1)
    # the warm-up round's walls are in `walls` too: drop them so rows hold the same rounds
    wall_l, wall_f = walls["launcher"][1:], walls["floor"][1:]
    return [
        Row("exits.vs_floor", SUITE, title + ": launcher vs C floor (vCPU loop, own clock)", "µs",
            Side("hvconf launch.py", command_text(launch_cmd), launcher),
            Side("C floor", command_text(floor_cmd), floor), GOAL,
            note="wall: each side's time from its first KVM_RUN (floor) or from execute() (launcher) to HLT, / exits; "
                 "CPU: the whole process's user + sys (start-up included) / exits"),
        Row("exits.wall", SUITE, title + ": wall time per exit, start-up included", "µs",
            Side("hvconf launch.py", command_text(launch_cmd), wall_l),
            Side("C floor", command_text(floor_cmd), wall_f)),
    ]
