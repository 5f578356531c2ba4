"""Profiles for missed goals: where the time of the slow side goes, as short text files.

`profile_for(row_id, ctx)` returns the text of a cProfile (top functions by
cumulative and own time) or an `-X importtime` listing (top imports by
cumulative time) of the command behind that measurement, or None when no
profile applies. It runs the command once more under the profiler and
changes nothing; run.py writes the text to bench/results/profiles/.
"""

from __future__ import annotations

import io
import pstats
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

from bench.context import REPO, Context
from bench.suites import launch

TOP = 18


def cprofile(cmd_after_python: list[str], ctx: Context, title: str) -> str:
    """cProfile of `python CMD...`; top functions by cumulative and by own time."""
    stem = ctx.tmp / "profile.out"
    _profiled(ctx.python, cmd_after_python, stem)
    text = io.StringIO()
    [dump] = _dumps(stem)
    stats = pstats.Stats(str(dump), stream=text)
    stats.strip_dirs()
    text.write(f"# {title}\n# python -m cProfile {' '.join(cmd_after_python)[:300]}\n\n## by cumulative time\n")
    stats.sort_stats("cumulative").print_stats(TOP)
    text.write("\n## by own time\n")
    stats.sort_stats("tottime").print_stats(TOP)
    dump.unlink()
    return re.sub(r"\n{3,}", "\n\n", text.getvalue())


# Runs `python CMD...` (a script, or `-m MODULE`) with a profiler in every Python thread; `-m
# cProfile` sees only the main thread. hvconf and its launchers end with os._exit, which skips
# anything that would run after the script: the profiles are written on the way out instead.
HARNESS = """
import cProfile, os, runpy, sys, threading
out, cmd = sys.argv[1], sys.argv[2:]
profiles = []
plain_run = threading.Thread.run


def profiled_run(self):
    prof = cProfile.Profile()
    profiles.append((self.name, prof))
    prof.enable()
    try:
        plain_run(self)
    finally:
        prof.disable()


def dump():
    main.disable()
    for i, (name, prof) in enumerate(profiles):
        prof.dump_stats(f"{out}.{i}.{name}")


def dumping_exit(status, _exit=os._exit):
    dump()
    _exit(status)


threading.Thread.run = profiled_run
os._exit = dumping_exit
module = cmd[1] if cmd[0] == "-m" else None
sys.argv = cmd[1:] if module else cmd
main = cProfile.Profile()
profiles.append(("main", main))
main.enable()
try:
    if module:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    else:
        runpy.run_path(cmd[0], run_name="__main__")
except SystemExit:
    pass
dump()
"""


def _profiled(python: str, cmd_after_python: list[str], stem: Path) -> None:
    subprocess.run([python, "-c", HARNESS, str(stem), *cmd_after_python], check=True, capture_output=True,
                   timeout=600)


def _dumps(stem: Path) -> list[Path]:
    return sorted(stem.parent.glob(stem.name + ".*"), key=lambda p: int(p.name.split(".")[2]))


def cprofile_threads(script: str, args: list[str], ctx: Context, title: str) -> str:
    """cProfile of every Python thread of `python SCRIPT ARGS` (the launcher runs its vCPU in a thread,
    which plain `-m cProfile` does not see); one listing per thread, by own time."""
    stem = ctx.tmp / "threads.prof"
    _profiled(ctx.python, [script, *args], stem)
    text = io.StringIO()
    text.write(f"# {title}\n# every thread profiled: python {script} {' '.join(args)}\n")
    for dump in _dumps(stem):
        thread = dump.name.split(".", 3)[3]
        stats = pstats.Stats(str(dump), stream=text)
        stats.strip_dirs()
        text.write(f"\n## thread {thread}, by own time\n")
        stats.sort_stats("tottime").print_stats(TOP)
        dump.unlink()
    return re.sub(r"\n{3,}", "\n\n", text.getvalue())


def importtime(cmd_after_python: list[str], ctx: Context, title: str) -> str:
    """`python -X importtime`: the imports with the largest cumulative time, and the total."""
    done = subprocess.run([ctx.python, "-X", "importtime", *cmd_after_python], capture_output=True, text=True,
                          timeout=120)
    rows = []
    for line in done.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
        if m:
            rows.append((int(m[2]), int(m[1]), len(m[3]) // 2, m[4]))
    top_level = sum(c for c, _, depth, _ in rows if depth == 0)
    lines = [f"# {title}", f"# python -X importtime {' '.join(cmd_after_python)[:300]}",
             f"# top-level imports total {top_level / 1000:.1f} ms", "",
             f"{'cumulative ms':>14} {'self ms':>8}  module (depth)"]
    for cum, own, depth, name in sorted(rows, reverse=True)[:TOP]:
        lines.append(f"{cum / 1000:14.1f} {own / 1000:8.1f}  {name} ({depth})")
    lines += ["", "largest self time:"]
    for own, cum, depth, name in sorted(((o, c, d, n) for c, o, d, n in rows), reverse=True)[:10]:
        lines.append(f"{cum / 1000:14.1f} {own / 1000:8.1f}  {name} ({depth})")
    return "\n".join(lines) + "\n"


def _hvconf(ctx: Context) -> list[str]:
    """ctx.hvconf without the interpreter: the console script, or `-m hvconf`."""
    return ctx.hvconf[1:] if ctx.hvconf[0] == ctx.python else ctx.hvconf


def _lint_files(ctx: Context, tree_only: bool) -> list[str]:
    vms = sorted((ctx.tmp / "lint-repo" / "vms").glob("*.hv"))
    return [str(p) for p in vms if not tree_only or "ppc" in p.name]


def _launcher(folder: Path | None) -> str:
    if folder is None:
        raise OSError("the guest was not built in this run")
    return str(folder / "launch.py")


def _scaling_build(pattern: str) -> Callable[[Context], str]:
    return lambda ctx: cprofile([*_hvconf(ctx), "build", _largest(ctx, pattern), "-o", str(ctx.tmp / "profile-out")],
                                ctx, f"hvconf build of the largest point ({pattern})")


PROFILES: dict[str, Callable[[Context], str]] = {
    "launch.vs_qemu": lambda ctx: importtime([_launcher(ctx.hello_dir)], ctx, "launch.py x86-hello")
    + "\n" + cprofile_threads(_launcher(ctx.hello_dir), [], ctx, "launch.py x86-hello"),
    "launch.import": lambda ctx: importtime(["-c", launch.IMPORTS], ctx,
                                            "import of the runtime"),
    "exits.vs_floor": lambda ctx: cprofile_threads(_launcher(ctx.exitloop_dir), ["--timeout", "120"], ctx,
                                                   "launch.py exitloop (200,001 exits)"),
    "lint.vs_dtc": lambda ctx: cprofile([*_hvconf(ctx), "check", *_lint_files(ctx, True)], ctx,
                                        "hvconf check on the sPAPR/e500 half"),
    "lint.cold": lambda ctx: importtime([*_hvconf(ctx), "check", str(REPO / "samples" / "x86-hello.hv")], ctx,
                                        "hvconf check x86-hello.hv")
    + "\n" + cprofile([*_hvconf(ctx), "check", str(REPO / "samples" / "x86-hello.hv")], ctx,
                      "hvconf check x86-hello.hv"),
}
PROFILES["launch.vs_floor"] = PROFILES["launch.vs_qemu"]
PROFILES["lint.all_vs_dtc"] = PROFILES["lint.vs_dtc"]

TRACEMALLOC = """
import sys, tracemalloc
from hvconf.lint.driver import discover, lint
files = discover(sys.argv[1:])
lint(files[:4])  # imports, target tables and parser caches: not per-file
tracemalloc.start(1)
before = tracemalloc.take_snapshot()
result = lint(files)
after = tracemalloc.take_snapshot()
peak = tracemalloc.get_traced_memory()[1]
growth = sum(d.size_diff for d in after.compare_to(before, "lineno"))
print(f"# tracemalloc: `hvconf check`'s lint() of {len(files)} files keeps {growth / 2**20:.2f} MiB "
      f"({growth / len(files) / 1024:.2f} KiB per file) in its result; peak while checking "
      f"{peak / 2**20:.2f} MiB; by allocation site:")
for d in after.compare_to(before, "lineno")[:%d]:
    print(f"{d.size_diff / 2**20:8.2f} MiB {d.count_diff:8d} blocks  {d.traceback[0]}")
"""
PROFILED_FILES = 300  # tracemalloc is slow; growth per file shows at this size already


def tracemalloc_profile(files: list[str], ctx: Context) -> str:
    """What lint keeps per file: allocations alive after it returns, against before, and its peak."""
    done = subprocess.run([ctx.python, "-c", TRACEMALLOC % TOP, *files[:PROFILED_FILES]], capture_output=True,
                          text=True, check=True, timeout=600)
    return done.stdout


def _largest_repo(ctx: Context) -> list[str]:
    """The .hv files of the largest repo the reposize suite wrote (bases included)."""
    repos = sorted(ctx.tmp.glob("reposize-*"), key=lambda p: int(p.name.rsplit("-", 1)[1]))
    return [str(p) for p in sorted((repos[-1] / "vms").rglob("*.hv"))] if repos else []


def _largest(ctx: Context, pattern: str) -> str:
    found = sorted((ctx.tmp / "scaling").glob(pattern), key=lambda p: int(re.sub(r"\D", "", p.name) or 0))
    return str(found[-1])


SCALING_FILES = {"vcpus": "vcpus-*.hv", "tce": "tce-*.hv", "hcalls": "hcalls-*.hv", "includes": "inc-*/top.hv"}
PROFILES.update({f"scaling.{key}.time": _scaling_build(pattern) for key, pattern in SCALING_FILES.items()})
PROFILES["size.vms.build"] = lambda ctx: cprofile(
    [*_hvconf(ctx), "build", str(ctx.tmp / "size" / "vms-10000.hv"), "-o", str(ctx.tmp / "profile-out")], ctx,
    "hvconf build of 10,000 VMs into a fresh folder")
PROFILES["size.chain.check"] = lambda ctx: cprofile(
    [*_hvconf(ctx), "check", str(ctx.tmp / "size" / "chain-10000" / "top.hv")], ctx,
    "hvconf check of 10,000 chained includes")
PROFILES["size.vms.check"] = lambda ctx: cprofile([*_hvconf(ctx), "check", str(ctx.tmp / "size" / "vms-10000.hv")],
                                                  ctx, "hvconf check of 10,000 VMs")
PROFILES["reposize.rss"] = lambda ctx: tracemalloc_profile(_largest_repo(ctx), ctx)
PROFILES["reposize.time"] = lambda ctx: cprofile([*_hvconf(ctx), "check", *_largest_repo(ctx)], ctx,
                                                 "hvconf check on the largest repo")


def profile_for(row_id: str, ctx: Context) -> str | None:
    make = PROFILES.get(row_id)
    return make(ctx) if make is not None else None


def write(row_id: str, text: str, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{row_id}.txt"
    path.write_text(text)
    return path
