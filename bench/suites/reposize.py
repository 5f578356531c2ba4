"""Measurements 5 and 6 (lint half): `hvconf check` time and peak RSS against repo size.

One repo per size is written (bench/inputs.write_repo, the same seed, so a
size's files are the first N of the largest and every size has the same mix
of targets) and checked as `hvconf check REPO/vms`, the way CI runs it: file
names on the command line would add the interpreter's own copies of argv
(about 0.7 KiB per argument) to the RSS. Sizes are timed round-robin; each
run's peak RSS is the child's ru_maxrss from wait4. Two series: time (goal:
linear) and peak RSS (goal: flat, i.e. the fitted rise over the whole range
within 10% of the level).
"""

from __future__ import annotations

from collections.abc import Callable

from bench import inputs
from bench.context import Context
from bench.measure import Sample, interleave
from bench.measurements import Goal, Point, Row, Series
from bench.suites.common import Runner, runner

SUITE = "reposize"
GOAL_TIME = Goal("linear", 0.0, "linear (r² ≥ 0.95 or within min–max; no upward bend at the end)")
GOAL_RSS = Goal("flat", 0.10, "flat: fitted rise over the range ≤ 10% of the level")


def run(ctx: Context) -> list[Row | Series]:
    sizes = ctx.counts.repo_sizes
    rss: dict[int, list[float]] = {n: [] for n in sizes}
    runners: list[Runner] = []
    def keep_rss(n: int) -> Callable[[Sample], None]:
        return lambda sample: rss[n].append(sample.maxrss_kib / 1024)

    for n in sizes:
        root = ctx.tmp / f"reposize-{n}"
        inputs.write_repo(root, n)
        cmd = [*ctx.hvconf, "check", "--no-cache", str(root / "vms")]  # also checks the 4 shared bases
        runners.append(runner(cmd, timeout=900, on_sample=keep_rss(n)))
    ctx.log(f"reposize: sizes {', '.join(map(str, sizes))}, {ctx.counts.scaling} rounds")
    times = interleave(runners, ctx.counts.scaling, warmup=1)
    # rss lists hold the warm-up run first: drop it so both series cover the same rounds
    return [
        Series("reposize.time", "`hvconf check` time vs repo size", "files", "ms", "ms",
               [Point(n, t) for n, t in zip(sizes, times)], GOAL_TIME),
        Series("reposize.rss", "`hvconf check` peak RSS vs repo size", "files", "MiB", "MiB",
               [Point(n, rss[n][1:]) for n in sizes], GOAL_RSS,
               note="ru_maxrss of the hvconf process (wait4); `hvconf check REPO/vms`, so no per-file argv"),
    ]
