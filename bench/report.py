"""Writes a run's results: latest.json (every sample), latest.md (the table) and scaling.png.

Input is the records the suites returned (measurements.Row, measurements.Series) plus the
run's metadata; output goes to the folder given (bench/results/). It
measures nothing and decides no verdict (measurements.py does); the plot is skipped
with a note when matplotlib is missing.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.measurements import Row, Series, Side, as_dict

MARK = {"met": "yes", "missed": "**no**", "info": "–", "skipped": "skipped", "failed": "**failed**"}


def num(value: float | None) -> str:
    """A value with about three significant digits."""
    if value is None:
        return "–"
    size = abs(value)
    return f"{value:.0f}" if size >= 100 else f"{value:.1f}" if size >= 10 else f"{value:.2f}" if size >= 1 \
        else f"{value:.3f}"


def _side(side: Side | None, unit: str) -> str:
    if side is None:
        return "–"
    text = f"{side.label}: {num(side.median)} [{num(side.min)}–{num(side.max)}] {unit}"
    if side.cpu_median is not None:
        text += f"; CPU {num(side.cpu_median)} [{num(side.cpu_min)}–{num(side.cpu_max)}]"
    return text + f" (n={len(side.samples)})"


def _ratio(ratio: float | None, paired: dict[str, float] | None) -> str:
    if ratio is None:
        return "–"
    text = f"{ratio:.2f}x"
    if paired:
        text += f" (per round {num(paired['median'])} [{num(paired['min'])}–{num(paired['max'])}])"
    return text


def _goal(r: Row) -> str:
    if r.cpu_goal is not None:
        return f"{r.goal.text if r.goal else '–'}; {r.cpu_goal.text}"
    return r.goal.text if r.goal else "–"


def _verdict(r: Row) -> str:
    if r.verdict in ("met", "missed"):
        return f"{MARK[r.verdict]} (wall {r.verdict_wall}, CPU {r.verdict_cpu})"
    return MARK[r.verdict]


def write_json(path: Path, meta: dict[str, Any], records: Sequence[Row | Series]) -> None:
    doc = {
        **meta,
        "rows": [as_dict(r) for r in records if isinstance(r, Row)],
        "series": [as_dict(s) for s in records if isinstance(s, Series)],
    }
    path.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")


def markdown(meta: dict[str, Any], records: Sequence[Row | Series]) -> str:
    lines = [
        "# hvconf benchmarks: latest run",
        "",
        f"{meta['started']} · {meta['mode']} run · {meta['host']['cpu']} ({meta['host']['cores']} cores) · "
        f"Linux {meta['host']['kernel']} · Python {meta['host']['python']} · hvconf {meta['hvconf']['commit']}",
        "",
        "Medians with [min–max], wall clock then CPU (user + sys of the child and what it reaped, from "
        "wait4); A and B ran interleaved (A B A B ...) in one run. Ratio = median A / median B (the "
        "verdict's), wall and CPU; per round: A/B of each back-to-back pair, median [min–max]. A goal "
        "is met when both wall and CPU meet it. "
        f"Load average (1 min) at start {meta['load_average']['start'][0]:.1f}, "
        f"at end {meta['load_average']['end'][0]:.1f}, on {meta['host']['cores']} cores.",
        "",
        "| measurement | A median [min–max] | B median [min–max] | ratio, wall | ratio, CPU | goal | met? |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in records:
        if isinstance(r, Row):
            wall = _ratio(r.ratio, r.extra.get("paired_ratio"))
            cpu = _ratio(r.cpu_ratio, r.extra.get("paired_cpu_ratio"))
            lines.append(f"| {r.measurement} | {_side(r.a, r.unit)} | {_side(r.b, r.unit)} | {wall} | {cpu} "
                         f"| {_goal(r)} | {_verdict(r)} |")
    lines += ["", "## Scaling (least squares on the medians)", "",
              "| series | points (x: median) | slope | r² | goal | met? |", "|---|---|---|---|---|---|"]
    for s in records:
        if isinstance(s, Series):
            pts = ", ".join(f"{num(p.x)}: {num(p.median)}" for p in s.points)
            slope = f"{num(s.fit.slope)} {s.unit} per {s.x_label.split(' (')[0]}" if s.fit else "–"
            r2 = f"{s.fit.r2:.3f}" if s.fit else "–"
            goal = s.goal.text if s.goal else "–"
            lines.append(f"| {s.title} | {pts} | {slope} | {r2} | {goal} | {MARK[s.verdict]} |")
    notes = [f"- `{r.id}`: {r.note}" for r in records if r.note]
    notes += [f"- profile for `{r.id}`: `{r.extra['profile']}`" for r in records if r.extra.get("profile")]
    notes += [f"- {n}" for n in meta.get("notes", [])]
    if notes:
        lines += ["", "## Notes", "", *notes]
    lines += ["", f"Command: `{meta['command']}`; versions: " + ", ".join(
        f"{k} {v}" for k, v in meta["versions"].items()) + ".", ""]
    return "\n".join(lines)


def write_plot(path: Path, records: Sequence[Row | Series]) -> str | None:
    """Draw the scaling curves; None on success, else why there is no plot."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:
        return f"no scaling.png: matplotlib is not importable ({err})"
    series = {s.id: s for s in records if isinstance(s, Series)}
    pairs = [(k.removesuffix(".time"), k, k.removesuffix(".time") + ".plan") for k in series if k.endswith(".time")]
    pairs = [(name, t, other if other in series else name + ".rss") for name, t, other in pairs]
    if not pairs:
        return "no scaling.png: no scaling series were measured"
    goals = [r for r in records if isinstance(r, Row) and r.ratio is not None and r.goal
             and r.goal.kind.startswith("ratio")]
    cols = 3
    panels = len(pairs) + (1 if goals else 0)
    rows = (panels + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 4.0 * rows), squeeze=False)
    for ax, (name, time_id, other_id) in zip(axes.flat, pairs):
        _panel(ax, series[time_id], series.get(other_id))
    if goals:
        _ratios(list(axes.flat)[len(pairs)], goals)
    for ax in list(axes.flat)[panels:]:
        ax.set_visible(False)
    fig.suptitle("hvconf scaling: medians with min–max bars, least-squares lines dashed", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None


def _panel(ax: Any, time: Series, other: Series | None) -> None:
    xs = [p.x for p in time.points]
    ax.errorbar(xs, [p.median for p in time.points],
                yerr=[[p.median - p.min for p in time.points], [p.max - p.median for p in time.points]],
                fmt="o-", color="tab:blue", capsize=3, label=f"time ({time.unit})")
    if time.fit:
        ax.plot(xs, [time.fit.slope * x + time.fit.intercept for x in xs], "--", color="tab:blue", alpha=0.6,
                label=f"fit: {num(time.fit.slope)} {time.unit}/unit, r²={time.fit.r2:.3f}")
    ax.set_xlabel(time.x_label)
    ax.set_ylabel(f"time ({time.unit})", color="tab:blue")
    ax.set_ylim(bottom=0)
    ax.set_title(f"{time.title} [{time.verdict}]", fontsize=9)
    handles, labels = ax.get_legend_handles_labels()
    if other is not None:
        twin = ax.twinx()
        ys = [p.median for p in other.points]
        what = other.title.split(" vs ")[0]
        twin.plot([p.x for p in other.points], ys, "s-", color="tab:orange", label=f"{what} ({other.unit})")
        if other.fit:
            twin.plot([p.x for p in other.points], [other.fit.slope * p.x + other.fit.intercept for p in other.points],
                      ":", color="tab:orange", alpha=0.7, label=f"fit: {num(other.fit.slope)} {other.unit}/unit")
        twin.set_ylabel(f"{what} ({other.unit})", color="tab:orange")
        twin.set_ylim(bottom=0)
        more_h, more_l = twin.get_legend_handles_labels()
        handles, labels = handles + more_h, labels + more_l
    ax.legend(handles, labels, fontsize=7, loc="upper left")


def _ratios(ax: Any, goals: Sequence[Row]) -> None:
    """Each goal's ratio (A/B) as a bar on a log scale, with the goal as a black tick."""
    names = [r.id for r in goals]
    ys = range(len(goals))
    ax.barh(ys, [r.ratio for r in goals], color=["tab:green" if r.verdict == "met" else "tab:red" for r in goals])
    ax.scatter([r.goal.value for r in goals if r.goal], ys, marker="|", s=400, color="black", label="goal")
    for y, r in zip(ys, goals):
        ax.annotate(f"{r.ratio:.2f}x", (r.ratio, y), xytext=(3, 0), textcoords="offset points", va="center",
                    fontsize=8)
    ax.set_xscale("log")
    ax.set_yticks(list(ys), names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("ratio A / B (log scale; green: goal met)")
    ax.set_title("side-by-side ratios against their goals", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
