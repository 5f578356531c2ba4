"""The result records every suite returns: pair rows and scaling series, with goals and verdicts.

A `Row` is one side-by-side measurement (A against B, ratio A/B) or a single
side against an absolute goal; a `Series` is one scaling curve with its
least-squares line. A side holds wall-clock samples and, where the child's
rusage gives them, CPU samples (user + sys) of the same rounds; a goal is
judged on each (`cpu_goal` where CPU has its own bound) and met only when
both meet it, since wall time on this shared machine swings with its load.
Verdicts are computed here from the numbers only, never set by hand: met,
missed, info (no goal), skipped or failed (with the reason).
report.py turns these into JSON, Markdown and a plot.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from bench.measure import Fit, Timing, least_squares, summary

# goal kind -> test on (ratio, a_median); the Goal's `value` is the bound
GOAL_TESTS: dict[str, Callable[[float | None, float, float], bool]] = {
    "ratio_max": lambda ratio, a, bound: ratio is not None and ratio <= bound,
    "ratio_below": lambda ratio, a, bound: ratio is not None and ratio < bound,
    "a_max": lambda ratio, a, bound: a <= bound,
    "a_below": lambda ratio, a, bound: a < bound,
}


@dataclass(frozen=True)
class Goal:
    kind: str  # a key of GOAL_TESTS, or "linear" / "flat" for series
    value: float
    text: str  # as the issue words it, e.g. "≤ 0.5x QEMU"


def _split(samples: list[Any]) -> tuple[list[float], list[float]]:
    """Wall and CPU values of a list of Timings; plain numbers are wall values with no CPU."""
    if samples and isinstance(samples[0], Timing):
        return [t.wall for t in samples], [t.cpu for t in samples]
    return list(samples), []


@dataclass
class Side:
    """`samples`: wall values, or Timings (split here into `samples` and `cpu_samples`)."""

    label: str
    command: str
    samples: list[float]
    cpu_samples: list[float] = field(default_factory=list)
    median: float = 0.0
    min: float = 0.0
    max: float = 0.0
    cpu_median: float | None = None
    cpu_min: float | None = None
    cpu_max: float | None = None

    def __post_init__(self) -> None:
        wall, cpu = _split(self.samples)
        self.samples, self.cpu_samples = wall, self.cpu_samples or cpu
        if self.samples:
            s = summary(self.samples)
            self.median, self.min, self.max = s.median, s.min, s.max
        if self.cpu_samples:
            c = summary(self.cpu_samples)
            self.cpu_median, self.cpu_min, self.cpu_max = c.median, c.min, c.max


def _per_round(a: Sequence[float], b: Sequence[float]) -> dict[str, float] | None:
    """A/B of each round's back-to-back pair: median, min, max (drift between rounds cancels)."""
    if not a or len(a) != len(b) or min(b) <= 0:
        return None
    s = summary([x / y for x, y in zip(a, b)])
    return {"median": s.median, "min": s.min, "max": s.max}


@dataclass
class Row:
    id: str
    suite: str
    measurement: str
    unit: str
    a: Side | None
    b: Side | None = None
    goal: Goal | None = None  # judged on wall time, and on CPU time unless cpu_goal says otherwise
    ratio: float | None = None
    verdict: str = "info"
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    cpu_goal: Goal | None = None
    cpu_ratio: float | None = None
    verdict_wall: str = "info"
    verdict_cpu: str = "info"

    def __post_init__(self) -> None:
        a, b = self.a, self.b
        if a is not None and b is not None and b.median > 0:
            self.ratio = a.median / b.median
            paired = _per_round(a.samples, b.samples)
            if paired:
                self.extra["paired_ratio"] = paired
        if a is not None and b is not None and a.cpu_median is not None and b.cpu_median:
            self.cpu_ratio = a.cpu_median / b.cpu_median
            paired = _per_round(a.cpu_samples, b.cpu_samples)
            if paired:
                self.extra["paired_cpu_ratio"] = paired
        if self.verdict in ("skipped", "failed") or a is None:
            return
        if self.goal is None and self.cpu_goal is None:
            self.verdict = "info"
            return
        self.verdict_wall = self._judge(self.goal, self.ratio, a.median)
        self.verdict_cpu = self._judge(self.cpu_goal or self.goal, self.cpu_ratio, a.cpu_median)
        verdicts = {self.verdict_wall, self.verdict_cpu} - {"info"}
        self.verdict = ("skipped" if "skipped" in verdicts else "missed" if "missed" in verdicts
                        else "met" if verdicts else "info")

    def _judge(self, goal: Goal | None, ratio: float | None, a_median: float | None) -> str:
        """One goal on one kind of time; info when that time was not measured."""
        if goal is None or a_median is None:
            return "info"
        if goal.kind.startswith("ratio") and self.b is None:
            return "skipped"
        if goal.kind.startswith("ratio") and ratio is None:
            return "info"  # B has no CPU figure (e.g. a side's own clock)
        return "met" if GOAL_TESTS[goal.kind](ratio, a_median, goal.value) else "missed"


def not_measured(id: str, suite: str, measurement: str, unit: str, goal: Goal | None, why: str,
                 verdict: str = "skipped") -> Row:
    """A row for a comparison that could not run here; `why` says so in the table."""
    return Row(id, suite, measurement, unit, None, None, goal, verdict=verdict, note=why)


@dataclass
class Point:
    """`samples`: wall values, or Timings; the line is fitted to the wall medians."""

    x: float
    samples: list[float]
    median: float = 0.0
    min: float = 0.0
    max: float = 0.0
    cpu_samples: list[float] = field(default_factory=list)
    cpu_median: float | None = None

    def __post_init__(self) -> None:
        self.samples, cpu = _split(self.samples)
        self.cpu_samples = self.cpu_samples or cpu
        s = summary(self.samples)
        self.median, self.min, self.max = s.median, s.min, s.max
        if self.cpu_samples:
            self.cpu_median = summary(self.cpu_samples).median


@dataclass
class Series:
    """y against x; `fit` on the medians. Linear: r2 >= 0.95 or the line passes through every
    point's [min, max] (so what is left is noise), and it does not bend up at the end: a bend is
    a last segment steeper than 2x the fitted slope whose fastest sample still lies above the
    line (a quadratic term shows there first). Or a rise over the x range under 5% of the
    level, which is flat, so linear with a slope of noise."""

    id: str
    title: str
    x_label: str
    y_label: str
    unit: str
    points: list[Point]
    goal: Goal | None = None
    fit: Fit | None = None
    verdict: str = "info"
    note: str = ""
    end_slope_ratio: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.points) < 2:
            self.verdict, self.note = "skipped", self.note or "fewer than two points"
            return
        xs = [p.x for p in self.points]
        ys = [p.median for p in self.points]
        self.fit = least_squares(xs, ys)
        last, prev = self.points[-1], self.points[-2]
        if self.fit.slope > 0 and last.x != prev.x:
            self.end_slope_ratio = (last.median - prev.median) / (last.x - prev.x) / self.fit.slope
        if self.goal is not None:
            self.verdict = "met" if self._meets(xs, ys) else "missed"

    def _meets(self, xs: Sequence[float], ys: Sequence[float]) -> bool:
        assert self.fit is not None and self.goal is not None
        level = max(abs(self.fit.intercept), min(ys), 1e-12)
        rise = self.fit.slope * (max(xs) - min(xs))
        flat = abs(rise) <= 0.05 * level
        if self.goal.kind == "flat":  # e.g. peak RSS: rise over the range within value x level
            return abs(rise) <= self.goal.value * level
        fit = self.fit
        within = all(p.min <= fit.slope * p.x + fit.intercept <= p.max for p in self.points)
        last = self.points[-1]
        bends = (self.end_slope_ratio is not None and self.end_slope_ratio > 2.0
                 and last.min > fit.slope * last.x + fit.intercept)
        return flat or (not bends and (fit.r2 >= 0.95 or within))


def as_dict(record: Row | Series) -> dict[str, Any]:
    return asdict(record)
