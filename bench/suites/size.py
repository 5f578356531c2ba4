"""Measurement 7: long include chains and files of thousands of VMs, up to 10,000 of each.

Two inputs (bench/inputs.py): a chain of includes (top.hv includes c0.hv,
which includes c1.hv, ...) and one file of N `vm vI extends b {}` (10,000
of them fit in one file under the 256 KiB limit). Their costs:

- in one process (compile_probe.py, round-robin over the sizes): checking the
  chain, and checking and building the VM file (artifacts in memory), as
  series with the goal linear, whose slope is the cost per include or per VM;
  and writing the VM file's artifacts (write_tree: a folder per VM, all
  made durable by one syncfs, as every write of 100 files or more is), into a
  fresh folder and again over it, as a rebuild does;
- as a user runs it, whole process, at 10,000: `hvconf check` of the chain and
  of the VM file, and `hvconf build -o DIR` of the VM file into a fresh folder,
  each against the issue's budget of a few seconds (5 s); and the same build into
  a folder on a memory filesystem (/dev/shm, where it is tmpfs), which leaves out
  the disk (on this shared machine its journal and other programs' writeback
  swing the build from 6 to 30 s), against 4 s.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from bench import inputs
from bench.context import Context
from bench.measure import Timing, interleave, run as run_once
from bench.measurements import Goal, Point, Row, Series, Side, not_measured
from bench.suites.common import Runner, command_text, runner

SUITE = "size"
LINEAR = Goal("linear", 0.0, "linear (r² ≥ 0.95 or within min–max; no upward bend at the end)")
BUDGET = Goal("a_below", 5000.0, "< 5 s (\"a few seconds\")")
MEMORY_BUDGET = Goal("a_below", 4000.0, "< 4 s with no disk in the way")
MEMORY_FS = Path("/dev/shm")  # hvconf refuses to read definitions under /dev, not to write outputs there
TMPFS = 0x01021994  # statfs f_type (linux/magic.h TMPFS_MAGIC)
LARGEST = 10_000
SIZES = (1000, 2500, 5000, LARGEST)
QUICK_SIZES = (1000, 4000, LARGEST)
WRITE_SIZES = (250, 500, 1000)  # each VM is a folder of 3 files: 750 files or more, one syncfs
QUICK_WRITE_SIZES = (250, 1000)


def _probe(ctx: Context, mode: list[str], rounds: int, paths: list[Path]) -> dict[str, list[float]]:
    probe = Path(__file__).with_name("compile_probe.py")
    done = run_once([ctx.python, str(probe), *mode, str(rounds), *map(str, paths)], timeout=3600)
    values: dict[str, list[float]] = json.loads(done.stdout)
    return values


def _series(id: str, title: str, x_label: str, sizes: tuple[int, ...], paths: list[Path],
            values: dict[str, list[float]], suffix: str = "", note: str = "") -> Series:
    unit_note = f"{note}; " if note else ""
    return Series(id, title, x_label, "ms", "ms", [Point(n, values[f"{p}{suffix}"]) for n, p in zip(sizes, paths)],
                  LINEAR, note=unit_note + "in one process, after one untimed build")


def _fresh_build(ctx: Context, source: Path, where: Path | None = None) -> Runner:
    """`hvconf build` into a new output folder (in `where`, default the run's folder) each
    time, as a first build writes; the folder is removed after, untimed."""
    def once() -> Timing:
        folder = Path(tempfile.mkdtemp(prefix="size-build-", dir=where or ctx.tmp))
        try:
            return runner([*ctx.hvconf, "build", str(source), "-o", str(folder / "out")], timeout=3600)()
        finally:
            if where is not None:  # memory: give it back at once (the run's folder goes at the end)
                import shutil

                shutil.rmtree(folder, ignore_errors=True)

    return once


def _memory_fs() -> Path | None:
    """/dev/shm if it is a writable tmpfs, else None."""
    import ctypes

    try:
        buf = ctypes.create_string_buffer(512)  # larger than struct statfs
        if ctypes.CDLL(None, use_errno=True).statfs(os.fsencode(MEMORY_FS), buf) != 0:
            return None
        kind = ctypes.c_long.from_buffer(buf).value & 0xFFFFFFFF
    except (OSError, AttributeError):
        return None
    return MEMORY_FS if kind == TMPFS and os.access(MEMORY_FS, os.W_OK) else None


def run(ctx: Context) -> list[Row | Series]:
    root = ctx.tmp / "size"
    root.mkdir()
    sizes = QUICK_SIZES if ctx.quick else SIZES
    writes = QUICK_WRITE_SIZES if ctx.quick else WRITE_SIZES
    chains = [inputs.include_chain_def(root, n) for n in sizes]
    files = [inputs.many_vms_def(root, n) for n in sizes]
    small = [inputs.many_vms_def(root, n) for n in writes]
    rounds = ctx.counts.scaling
    ctx.log(f"size: chains and VM files of {', '.join(map(str, sizes))}, {rounds} rounds in-process")
    chain_times = _probe(ctx, ["--check"], rounds, chains)
    check_times = _probe(ctx, ["--check"], rounds, files)
    build_times = _probe(ctx, [], rounds, files)
    write_rounds = max(rounds - 1, 1)
    ctx.log(f"size: writing {', '.join(map(str, writes))} VM folders, {write_rounds} rounds")
    (root / "written").mkdir()
    write_times = _probe(ctx, ["--write", str(root / "written")], write_rounds, small)
    out: list[Row | Series] = [
        _series("size.chain.time", "check time vs chained includes (compiler.check)", "chained includes", sizes,
                chains, chain_times, note="slope: ms per include"),
        _series("size.vms.check", "check time vs VMs in one file (compiler.check)", "VMs", sizes, files,
                check_times, note="slope: ms per VM"),
        _series("size.vms.time", "build time vs VMs in one file (compiler.build, nothing written)", "VMs", sizes,
                files, build_times, note="slope: ms per VM"),
        _series("size.write.time", "write time vs VMs (write_tree, fresh folder)", "VMs written", writes, small,
                write_times, note="slope: ms per VM folder of 3 files, made durable by one syncfs"),
        _series("size.rewrite.time", "write time vs VMs (write_tree over the previous output)", "VMs rewritten",
                writes, small, write_times, suffix=":rewrite", note="slope: ms per VM folder"),
    ]
    chain, vms = chains[-1], files[-1]
    whole = [runner([*ctx.hvconf, "check", "--no-cache", str(chain)], timeout=600),
             runner([*ctx.hvconf, "check", "--no-cache", str(vms)], timeout=600)]
    ctx.log(f"size: hvconf check of {LARGEST} chained includes and of {LARGEST} VMs, {rounds} rounds")
    checks = interleave(whole, rounds, warmup=1)
    ctx.log(f"size: hvconf build of {LARGEST} VMs into a fresh folder each time, {rounds} rounds")
    build = interleave([_fresh_build(ctx, vms)], rounds, warmup=0)[0]
    memory = _memory_fs()
    if memory is not None:
        ctx.log(f"size: hvconf build of {LARGEST} VMs into a fresh folder on {memory} (tmpfs), {rounds} rounds")
        in_memory = interleave([_fresh_build(ctx, vms, memory)], rounds, warmup=0)[0]
    per_vm = Point(LARGEST, build_times[str(vms)]).median
    out += [
        Row("size.chain.check", SUITE, f"`hvconf check` of a chain of {LARGEST:,} includes", "ms",
            Side("hvconf", command_text([*ctx.hvconf, "check", "chain-10000/top.hv"]), checks[0]), goal=BUDGET),
        Row("size.vms.check", SUITE, f"`hvconf check` of one file of {LARGEST:,} VMs", "ms",
            Side("hvconf", command_text([*ctx.hvconf, "check", "vms-10000.hv"]), checks[1]), goal=BUDGET),
        Row("size.vms.build", SUITE, f"`hvconf build` of one file of {LARGEST:,} VMs, writing {LARGEST:,} folders",
            "ms", Side("hvconf", command_text([*ctx.hvconf, "build", "vms-10000.hv", "-o", "DIR"]), build),
            goal=BUDGET, note=f"a fresh output folder each run; compiling them in-process takes {per_vm:.0f} ms "
                              f"(size.vms.time), the rest is start-up and writing (size.write.time)"),
    ]
    build_text = f"`hvconf build` of one file of {LARGEST:,} VMs into a folder on a memory filesystem"
    memory_cmd = command_text([*ctx.hvconf, "build", "vms-10000.hv", "-o", f"{MEMORY_FS}/DIR"])
    out.append(Row("size.vms.build_mem", SUITE, build_text, "ms", Side("hvconf", memory_cmd, in_memory),
                   goal=MEMORY_BUDGET, note="a fresh output folder each run; no disk: compiling, the "
                                            "kernel's work of creating 40,000 files and folders")
               if memory is not None else
               not_measured("size.vms.build_mem", SUITE, build_text, "ms", MEMORY_BUDGET,
                            f"{MEMORY_FS} is not a writable tmpfs here"))
    return out
