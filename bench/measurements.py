"""The result records every suite returns: pair rows and scaling series, with goals and verdicts.

A `Row` is one side-by-side measurement (A against B, ratio A/B) or a single
side against an absolute goal; a `Series` is one scaling curve with its
least-squares line. Verdicts are computed here from the numbers only, never
set by hand: met, missed, info (no goal), skipped or failed (with the reason).
report.py turns these into JSON, Markdown and a plot.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from bench.measure import Fit, least_squares, summary

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


@dataclass
class Side:
    label: str
    command: str
    samples: list[float]
    median: float = 0.0
    min: float = 0.0
    max: float = 0.0

    def __post_init__(self) -> None:
        if self.samples:
            s = summary(self.samples)
            self.median, self.min, self.max = s.median, s.min, s.max


@dataclass
class Row:
    id: str
    suite: str
    measurement: str
    unit: str
    a: Side | None
    b: Side | None = None
    goal: Goal | None = None
    ratio: float | None = None
    verdict: str = "info"
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.a is not None and self.b is not None and self.b.median > 0:
            self.ratio = self.a.median / self.b.median
            if len(self.a.samples) == len(self.b.samples) and min(self.b.samples) > 0:
                # A and B of one round ran back to back: their ratio cancels drift between rounds
                per_round = summary([x / y for x, y in zip(self.a.samples, self.b.samples)])
                self.extra["paired_ratio"] = {"median": per_round.median, "min": per_round.min,
                                              "max": per_round.max}
        if self.verdict in ("skipped", "failed") or self.a is None:
            return
        if self.goal is None:
            self.verdict = "info"
        elif self.goal.kind.startswith("ratio") and self.b is None:
            self.verdict = "skipped"
        else:
            ok = GOAL_TESTS[self.goal.kind](self.ratio, self.a.median, self.goal.value)
            self.verdict = "met" if ok else "missed"


def not_measured(id: str, suite: str, measurement: str, unit: str, goal: Goal | None, why: str,
                 verdict: str = "skipped") -> Row:
    """A row for a comparison that could not run here; `why` says so in the table."""
    return Row(id, suite, measurement, unit, None, None, goal, verdict=verdict, note=why)


@dataclass
class Point:
    x: float
    samples: list[float]
    median: float = 0.0
    min: float = 0.0
    max: float = 0.0

    def __post_init__(self) -> None:
        s = summary(self.samples)
        self.median, self.min, self.max = s.median, s.min, s.max


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
