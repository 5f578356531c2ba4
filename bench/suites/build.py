"""Measurement 4: `hvconf build` of one sample per target, cold against warm.

Cold is the first build on a machine where hvconf was just installed: a
fresh XDG_CACHE_HOME (and TMPDIR), so hvconf's per-user cache holds no LALR
tables and no validated targets, and a fresh output folder. Warm reuses a
cache that holds them and rebuilds over the previous output. Python's
bytecode is present in both (pip compiles it at install time). Interleaved
cold, warm per target.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from bench.context import REPO, Context
from bench.measure import Timing, interleave, run as run_once
from bench.measurements import Row, Series, Side
from bench.suites.common import Runner, command_text, timing_ms

SUITE = "build"
SAMPLES = {"ppc64-spapr": "pseries.hv", "ppc-e500": "e500.hv", "x86_64": "x86-hello.hv", "s390x": "s390x.hv"}


CACHED = ("parser.lark", "targets.pickle")  # what hvconf keeps in XDG_CACHE_HOME/hvconf


def _env(home: Path) -> dict[str, str]:
    return {**os.environ, "TMPDIR": str(home), "XDG_CACHE_HOME": str(home / "cache")}


def _cold(ctx: Context, cmd_for: Path, seen_cache: list[bool]) -> Runner:
    def once() -> Timing:
        tmp = Path(tempfile.mkdtemp(prefix="cold-", dir=ctx.tmp))
        sample = run_once([*ctx.hvconf, "build", str(cmd_for), "-o", str(tmp / "out")], env=_env(tmp))
        seen_cache.append(all((tmp / "cache" / "hvconf" / name).is_file() for name in CACHED))
        return timing_ms(sample)

    return once


def _warm(ctx: Context, source: Path, home: Path) -> Runner:
    env = _env(home)
    cmd = [*ctx.hvconf, "build", str(source), "-o", str(home / "out")]
    return lambda: timing_ms(run_once(cmd, env=env))


def run(ctx: Context) -> list[Row | Series]:
    runners: list[Runner] = []
    seen: dict[str, list[bool]] = {}
    for target, name in SAMPLES.items():
        home = ctx.tmp / f"warm-{target}"
        home.mkdir()
        seen[target] = []
        runners += [_cold(ctx, REPO / "samples" / name, seen[target]), _warm(ctx, REPO / "samples" / name, home)]
    ctx.log(f"build: {len(SAMPLES)} targets cold/warm, {ctx.counts.build} rounds")
    values = interleave(runners, ctx.counts.build, warmup=1)
    rows: list[Row | Series] = []
    for i, (target, name) in enumerate(SAMPLES.items()):
        cmd = command_text([*ctx.hvconf, "build", f"samples/{name}", "-o", "DIR"])
        note = ("cold: fresh XDG_CACHE_HOME (no LALR tables, no validated targets) and output folder; "
                "warm: cache and output present" if all(seen[target]) else
                "hvconf wrote no cache into the cold XDG_CACHE_HOME: cold and warm differ only in the output folder")
        rows.append(Row(f"build.{target}", SUITE, f"`hvconf build` {name} ({target}): cold vs warm", "ms",
                        Side("cold", cmd, values[2 * i]), Side("warm", cmd, values[2 * i + 1]), note=note))
    return rows
