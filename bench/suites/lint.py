"""Measurement 3: lint throughput (`hvconf check` on 1,000 definitions) against dtc, and cold start.

The repo is bench/inputs.write_repo: 1,000 definitions, the four targets in
turn, each including its shared base. The sPAPR and e500 half has a device
tree: one untimed `hvconf build` writes their DTS, and dtc compiles those
one process each in a shell loop (as `make dtbs` runs one dtc per file).
x86 and s390 have no DTS, so the like-for-like pair is that half; the whole
repo is a second row. These run with `--no-cache`: they measure checking.
The lint cache (hvconf/lint/cache.py) has rows of its own: a re-lint of the
unchanged repo against a fresh one, and a cold start from it. Cold start:
one small file against `python -c pass`, afresh and from the cache. `--jobs
2` against `--jobs 1` on the whole repo says whether workers pay on this
machine (docs/ci.md says where they do).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from bench import inputs
from bench.context import REPO, Context
from bench.measure import MeasureError, interleave, run as run_once
from bench.measurements import Goal, Row, Series, Side, not_measured
from bench.suites.common import command_text, runner

SUITE = "lint"
REPO_FILES = 1000
GOAL_DTC = Goal("ratio_below", 1.0, "< 1.0 (hvconf faster)")
GOAL_COLD = Goal("a_below", 100.0, "< 100 ms wall")
GOAL_JOBS = Goal("ratio_max", 1 / 1.5, "≤ 0.67x (1.5x faster), else --jobs is no default")
GOAL_COLD_CPU = Goal("ratio_below", 8.0, "CPU < 8x `python -c pass`")
FRESH = "--no-cache"  # every file checked afresh: parse, lower, validate
DTC_LOOP = 'for f; do dtc -I dts -O dtb -o "${f%.dts}.dtb" "$f" || exit 1; done'


def _dts_files(ctx: Context, files: list[inputs.RepoFile]) -> list[Path]:
    """Build the device-tree half once (untimed) and collect its DTS files."""
    out = ctx.tmp / "lint-out"
    run_once([*ctx.hvconf, "build", "-o", str(out), *(str(f.path) for f in files)], timeout=600)
    folder = ctx.tmp / "lint-dts"
    folder.mkdir()
    dts = []
    for f in files:
        target = folder / f"{f.vm}.dts"
        shutil.copyfile(out / f.vm / f"{f.vm}.dts", target)
        dts.append(target)
    return dts


def _fresh_flag(hvconf: list[str], env: dict[str, str] | None) -> list[str]:
    """[FRESH] if that hvconf has a lint cache to turn off: the one run.py was started with may be
    another checkout (an editable install), older than this one."""
    done = run_once([*hvconf, "check", "--help"], env=env)
    return [FRESH] if FRESH.encode() in done.stdout else []


def _cold_rows(ctx: Context) -> list[Row | Series]:
    small = REPO / "samples" / "x86-hello.hv"
    check = [*ctx.hvconf, "check", FRESH, str(small)]
    cached = [*ctx.hvconf, "check", str(small)]  # the warm-up round fills the cache
    python = [ctx.python, "-c", "pass"]
    ctx.log(f"lint: cold start, {ctx.counts.cold} rounds")
    found = ctx.env_as_found or None
    found_hvconf = ctx.found_hvconf or ctx.hvconf
    as_found = [*found_hvconf, "check", *_fresh_flag(found_hvconf, found), str(small)]
    a, b, c, d = interleave([runner(check), runner(python), runner(as_found, env=found), runner(cached)],
                            ctx.counts.cold, warmup=1)
    measured = Side("hvconf check --no-cache", command_text(check), a)
    reference = Side("python -c pass", command_text(python), b)
    rows: list[Row | Series] = [
        Row("lint.cold", SUITE, "cold start: `hvconf check --no-cache` on one small file (x86-hello.hv)", "ms",
            measured, reference, GOAL_COLD, cpu_goal=GOAL_COLD_CPU,
            note="wall goal on A's median, CPU goal on the ratio; B is the same interpreter's own start-up"),
        Row("lint.cold_cached", SUITE, "cold start from the lint cache: `hvconf check` of the same unchanged file",
            "ms", Side("hvconf check (cache hit)", command_text(cached), d), reference, GOAL_COLD,
            cpu_goal=GOAL_COLD_CPU, note="a hit imports neither lark nor pydantic (tests/test_lint_cache.py)")]
    if found is not None:
        flags = {k: found[k] for k in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX") if k in found}
        rows.append(Row("lint.cold_as_found", SUITE,
                        "cold start, the interpreter and environment run.py was started with vs A above", "ms",
                        Side("as found", command_text(as_found), c), measured,
                        note=f"as found: {command_text(as_found[:1])}, {flags or 'no bytecode settings'}; "
                             "an editable checkout without __pycache__ compiles hvconf on every run, and "
                             "site-wide .pth hooks of that interpreter run first"))
    return rows


def run(ctx: Context) -> list[Row | Series]:
    repo = inputs.write_repo(ctx.tmp / "lint-repo", REPO_FILES)
    tree_half = [f for f in repo if f.has_dts]
    check_all = [*ctx.hvconf, "check", FRESH, *(str(f.path) for f in repo)]
    check_half = [*ctx.hvconf, "check", FRESH, *(str(f.path) for f in tree_half)]
    relint = [*ctx.hvconf, "check", *(str(f.path) for f in repo)]  # the warm-up round fills the cache
    check_all_j2 = [*ctx.hvconf, "check", FRESH, "--jobs", "2", *(str(f.path) for f in repo)]
    # hvconf must accept the generated repo without a finding, or its timing means nothing
    try:
        run_once([*ctx.hvconf, "check", "--werror", *(str(f.path) for f in repo)], timeout=600)
    except MeasureError as err:
        raise MeasureError(f"the generated repo draws findings: {err}") from None
    rows: list[Row | Series] = []
    what = f"lint {len(tree_half)} sPAPR/e500 definitions: `hvconf check` (1 process) vs dtc (1 per file)"
    why = ctx.why_missing("dtc")
    if why is not None:
        rows.append(not_measured("lint.vs_dtc", SUITE, what, "ms", GOAL_DTC, why))
        ctx.log(f"lint: {len(repo)} files, hvconf only ({why})")
        (a_all,) = interleave([runner(check_all)], ctx.counts.lint, warmup=1)
        rows.append(Row("lint.all", SUITE, f"lint {len(repo)} definitions, all targets: `hvconf check`", "ms",
                        Side("hvconf check", f"hvconf check <{len(repo)} files>", a_all)))
        return rows + _cold_rows(ctx)
    dts = _dts_files(ctx, tree_half)
    dtc = ["sh", "-c", DTC_LOOP, "sh", *(str(p) for p in dts)]
    ctx.log(f"lint: {len(tree_half)} DTS files / {len(repo)} definitions, {ctx.counts.lint} rounds")
    a_half, b, a_all, cached, jobs2 = interleave(
        [runner(check_half), runner(dtc), runner(check_all), runner(relint), runner(check_all_j2)],
        ctx.counts.lint, warmup=1)
    dtc_side = Side(f"dtc × {len(dts)}", f"sh -c '{DTC_LOOP}' sh <{len(dts)} .dts>", b)
    kinds = sorted({f.target for f in tree_half})
    rows.append(Row("lint.vs_dtc", SUITE, what, "ms",
                    Side("hvconf check", f"hvconf check <{len(tree_half)} files>", a_half), dtc_side, GOAL_DTC,
                    note=f"like for like: the {len(tree_half)} definitions that have a device tree "
                         f"({', '.join(kinds)}); dtc gets the DTS hvconf wrote for them"))
    rows.append(Row("lint.all_vs_dtc", SUITE,
                    f"lint {len(repo)} definitions, all targets: `hvconf check` vs the same dtc loop", "ms",
                    Side("hvconf check", f"hvconf check <{len(repo)} files>", a_all), dtc_side,
                    note=f"x86_64 and s390x have no DTS, so B still compiles {len(dts)} files"))
    fresh = Side("hvconf check --no-cache", f"hvconf check --no-cache <{len(repo)} files>", a_all)
    rows.append(Row("lint.relint_cached", SUITE, f"re-lint of the unchanged {len(repo)}-file repo: from the lint "
                    "cache vs afresh", "ms", Side("hvconf check (cache hits)", f"hvconf check <{len(repo)} files>",
                                                 cached), fresh,
                    note="every file a hit: its entry read, the files it read hashed again, nothing parsed"))
    rows.append(Row("lint.jobs", SUITE, f"`hvconf check --jobs 2` vs `--jobs 1` on {len(repo)} files (afresh)", "ms",
                    Side("--jobs 2", f"hvconf check --no-cache --jobs 2 <{len(repo)} files>", jobs2), fresh,
                    GOAL_JOBS, note=f"{os.cpu_count()} cores here, shared; CPU is the sum over the workers"))
    return rows + _cold_rows(ctx)
