"""Measurement 5 (compiler half): compile time and plan size against input size.

Four series of generated definitions (bench/inputs.py): vCPUs 1..1,024,
TCE tables 1..256, sPAPR hcalls 1..all, included files 1..500. Every point
is built once with `hvconf build` (which must succeed, and gives plan.json's
size and step count). Compile time is `hvconf.compiler.build` timed inside
one child (compile_probe.py), round-robin over the points, so process
start-up (hundreds of ms of noise here) stays out of the slope.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from bench import inputs
from bench.context import REPO, Context
from bench.measure import MeasureError, run as run_once
from bench.measurements import Goal, Point, Row, Series, not_measured

SUITE = "scaling"
GOAL = Goal("linear", 0.0, "linear (r² ≥ 0.95 or within min–max; no upward bend at the end)")

FULL_POINTS: dict[str, tuple[int, ...]] = {
    "vcpus": (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
    "tce": (1, 2, 4, 8, 16, 32, 64, 128, 256),
    "hcalls": (1, 2, 4, 8, 16, 32, 0),  # 0: all of them
    "includes": (1, 2, 5, 10, 20, 50, 100, 200, 500),
}
QUICK_POINTS: dict[str, tuple[int, ...]] = {
    "vcpus": (1, 16, 128, 1024), "tce": (1, 16, 64, 256), "hcalls": (1, 8, 0), "includes": (1, 20, 100, 500),
}
PROBE_ROUNDS_PER_COUNT = 3  # in-process builds are cheap: three rounds for each round of the others
LABELS = {"vcpus": "vCPUs", "tce": "TCE tables", "hcalls": "sPAPR hcalls (exit lines)", "includes": "included files"}


def _writers(root: Path) -> dict[str, Callable[[int], tuple[int, Path]]]:
    names = inputs.spapr_hcall_names(REPO / "targets")

    def hcalls(n: int) -> tuple[int, Path]:
        chosen = names if n == 0 or n > len(names) else names[:n]
        return len(chosen), inputs.hcalls_def(root, chosen)

    return {
        "vcpus": lambda n: (n, inputs.vcpus_def(root, n)),
        "tce": lambda n: (n, inputs.tce_def(root, n)),
        "hcalls": hcalls,
        "includes": lambda n: (n, inputs.includes_def(root, n)),
    }


def _plan_size(out: Path) -> tuple[int, int]:
    (plan,) = out.glob("*/plan.json")
    return plan.stat().st_size, len(json.loads(plan.read_text())["steps"])


def run(ctx: Context) -> list[Row | Series]:
    root = ctx.tmp / "scaling"
    root.mkdir()
    points = QUICK_POINTS if ctx.quick else FULL_POINTS
    writers = _writers(root)
    jobs: list[tuple[str, int, Path]] = []  # (series, x, definition)
    sizes: dict[str, list[tuple[int, int, int]]] = {k: [] for k in points}  # x, plan bytes, steps
    out: list[Row | Series] = []
    for key, xs in list(points.items()):
        try:
            for n in xs:
                x, path = writers[key](n)
                folder = root / f"out-{key}-{x}"
                run_once([*ctx.hvconf, "build", str(path), "-o", str(folder)])  # must build; leaves a plan
                sizes[key].append((x, *_plan_size(folder)))
                jobs.append((key, x, path))
        except MeasureError as err:  # one series that does not build must not sink the others
            out.append(not_measured(f"scaling.{key}.error", SUITE, f"scaling vs {LABELS[key]}", "", GOAL,
                                    str(err), "failed"))
            jobs = [job for job in jobs if job[0] != key]
            points = {k: v for k, v in points.items() if k != key}
    if not jobs:
        return out
    rounds = ctx.counts.scaling * PROBE_ROUNDS_PER_COUNT
    ctx.log(f"scaling: {len(jobs)} points, {rounds} rounds in-process")
    probe = run_once([ctx.python, str(Path(__file__).with_name("compile_probe.py")), str(rounds),
                      *(str(path) for _, _, path in jobs)], timeout=1800)
    values = json.loads(probe.stdout)
    for key in points:
        pts = [Point(x, values[str(path)]) for k, x, path in jobs if k == key]
        out.append(Series(f"scaling.{key}.time", f"compile time (hvconf.compiler.build) vs {LABELS[key]}",
                          LABELS[key], "ms", "ms", pts, GOAL, note="in one process, after one untimed build"))
        out.append(Series(f"scaling.{key}.plan", f"plan.json size vs {LABELS[key]}", LABELS[key], "KiB", "KiB",
                          [Point(x, [b / 1024]) for x, b, _ in sizes[key]], GOAL,
                          note="steps: " + ", ".join(f"{x}→{s}" for x, _, s in sizes[key])))
    return out
