"""The boot race (issue 15 item 4): hvconf's launcher against QEMU -M microvm and -M pc, booting the
same unmodified Linux inside the emulated x86_64 host of tests/hosts (kvm_amd under TCG).

    python bench/race/run.py [--rounds N] [--limit SECONDS] [--keep DIR]

Builds samples/x86-linux.hv's launcher, packs it with hvconf's runtime, QEMU from this machine (its
binary, the shared libraries `ldd` names, with their loader, and the firmware it needs, run through
that loader with -L: the host has no /usr/bin/qemu), the host's own kernel and bench/race/race.py into
one payload, boots the host once and runs N interleaved rounds there (race.py), printing each run's
progress as the host's console shows it (round, contender, event, time; stderr). Every run is bounded
by --limit seconds inside the host, and the whole boot by the sum of those bounds. Writes
bench/results/boot-race.json (every run) and bench/results/boot-race.md (medians, spread, ratios,
wall and CPU). Not part of CI: a round is three Linux boots at TCG speed, 2-5 minutes on 2 busy cores.
Needs what tests/x86 needs (`sudo sh tests/hosts/install-deps.sh`) and qemu-system-x86 on this machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))

from hosts.emulated import runtime_tree  # noqa: E402
from hosts.x86 import HOST  # noqa: E402

from hvconf import compiler  # noqa: E402

RESULTS = REPO / "bench" / "results"
CONTENDERS = ("hvconf", "qemu-microvm", "qemu-pc")  # race.py's, in its first round's order
QEMU_BIN = Path("/usr/bin/qemu-system-x86_64")
# what -M pc (SeaBIOS, its linuxboot option ROM) and -M microvm (qboot) read at start
FIRMWARE = ("bios-256k.bin", "bios-microvm.bin", "linuxboot_dma.bin", "linuxboot.bin", "kvmvapic.bin", "pvh.bin",
            "multiboot.bin", "multiboot_dma.bin")
FIRMWARE_DIRS = (Path("/usr/share/qemu"), Path("/usr/share/seabios"))


def shared_libraries(binary: Path) -> tuple[Path, list[Path]]:
    """(the ELF loader, the libraries) that `ldd` resolves for `binary`."""
    loader, libs = None, []
    for line in subprocess.run(["ldd", str(binary)], capture_output=True, text=True, check=True).stdout.splitlines():
        parts = line.split()
        if "=>" in parts and len(parts) >= 3 and parts[2].startswith("/"):
            libs.append(Path(parts[2]))
        elif parts and parts[0].startswith("/") and "ld-linux" in parts[0]:
            loader = Path(parts[0])
    assert loader is not None, f"ldd names no loader for {binary}"
    return loader, libs


def pack_qemu(dest: Path) -> None:
    loader, libs = shared_libraries(QEMU_BIN)
    (dest / "lib").mkdir(parents=True)
    (dest / "share").mkdir()
    shutil.copyfile(loader, dest / "ld.so")
    (dest / "ld.so").chmod(0o755)
    for lib in libs:
        shutil.copyfile(lib, dest / "lib" / lib.name)  # follows symlinks: the file itself
    shutil.copyfile(QEMU_BIN, dest / "qemu-system-x86_64")
    (dest / "qemu-system-x86_64").chmod(0o755)
    for name in FIRMWARE:
        found = next((d / name for d in FIRMWARE_DIRS if (d / name).exists()), None)
        if found is not None:
            shutil.copyfile(found, dest / "share" / name)


def payload(folder: Path, rounds: int, limit: int) -> Path:
    root = folder / "payload"
    case = root / "cases" / "race"
    case.mkdir(parents=True)
    result = compiler.build([REPO / "samples" / "x86-linux.hv"])
    (vm,) = result.built
    for name, data in vm.files.items():
        (case / name).write_bytes(data)
    plan = json.loads(vm.files["plan.json"])
    (case / "cmdline").write_text(plan["launcher"]["x86"]["linux"]["cmdline"] + "\n")
    for src in (REPO / "bench" / "race" / "race.py", REPO / "tests" / "x86" / "linux_initrd.py",
                REPO / "tests" / "hosts" / "cpio.py"):
        shutil.copyfile(src, case / src.name)
    (case / "run").write_text(f"#!/bin/sh\npython3 linux_initrd.py initrd.img || exit 90\n"
                              f"exec python3 race.py {rounds} {limit}\n")
    (case / "run").chmod(0o755)
    (case / "timeout").write_text(f"{case_timeout(rounds, limit)}\n")
    (root / "host-kernel").write_bytes(b"")  # the harness puts the host's kernel there
    pack_qemu(root / "qemu")
    return root


def case_timeout(rounds: int, limit: int) -> int:
    """The race case's bound inside the host: every run at its limit, plus race.py's grace after a kill."""
    return rounds * len(CONTENDERS) * (limit + 40) + 60


def progress(line: str) -> None:
    """The host's console as it comes: race.py's progress and results, the host's own markers."""
    if line.startswith(("@@PROGRESS ", "@@BEGIN", "@@END", "@@DONE", "@@KVM", "@@BOOTED", "@@NOKVM")):
        print(f"[{time.strftime('%H:%M:%S')}] {line.removeprefix('@@PROGRESS ')}", file=sys.stderr, flush=True)


KEYS = ("init_s", "end_s", "cpu_init_s", "cpu_s", "exits", "io_exits")


def summarise(runs: list[dict]) -> dict:
    by: dict[str, dict] = {}
    for name in CONTENDERS:
        mine = [r for r in runs if r["vmm"] == name and r.get("init_s") is not None and r.get("end_s") is not None]
        if not mine:
            continue
        by[name] = {key: {"median": statistics.median(r[key] for r in mine), "min": min(r[key] for r in mine),
                          "max": max(r[key] for r in mine)} for key in KEYS
                    if all(r.get(key) is not None for r in mine)}
        by[name]["runs"] = len(mine)
        by[name]["failed"] = sum(1 for r in runs if r["vmm"] == name) - len(mine)
    return by


COLUMNS = (("init_s", "start to /init, s"), ("end_s", "start to end, s"), ("cpu_init_s", "CPU to /init, s"),
           ("cpu_s", "CPU to end, s"), ("exits", "exits"), ("io_exits", "port I/O exits"))


def cell(key: str, stat: dict) -> str:
    if key.endswith("_s"):
        return f"{stat['median']:.1f} [{stat['min']:.1f}–{stat['max']:.1f}]"
    return f"{stat['median']:,.0f} [{stat['min']:,}–{stat['max']:,}]"


def paired(runs: list[dict], other: str, key: str) -> list[float]:
    """hvconf's `key` over `other`'s in the same round (both ended): each round's own conditions."""
    by = {(r["round"], r["vmm"]): r for r in runs if r.get("end_s") is not None and r.get(key) is not None}
    rounds = sorted({n for n, _ in by})
    return [by[n, "hvconf"][key] / by[n, other][key] for n in rounds if (n, "hvconf") in by and (n, other) in by]


def markdown(summary: dict, rounds: int, seconds: float, load: tuple[float, float], runs: list[dict]) -> str:
    lines = [f"# Boot race ({rounds} interleaved rounds in one boot of the emulated x86_64 host, {seconds:.0f} s)", "",
             "Median [min–max] per VMM over the runs that reached /init and ended; wall time from process start "
             "inside the host; CPU time of the VMM's process (every thread, the vCPU's time in the guest "
             "included: /proc/PID/stat at /init, wait4's rusage at the end); exits are KVM's own counters "
             "(debugfs), in the kernel or not. The host is QEMU TCG on a machine whose 2 cores were shared "
             f"with other work (load average {load[0]:.1f} at the start, {load[1]:.1f} at the end): absolute "
             "times are slow and noisy, the ratios of interleaved runs less so.", "",
             "| VMM | runs | " + " | ".join(title for _, title in COLUMNS) + " |",
             "|---|---|" + "---|" * len(COLUMNS)]
    for name, row in summary.items():
        cells = [cell(key, row[key]) if key in row else "–" for key, _ in COLUMNS]
        lines.append(f"| {name} | {row['runs']}" + (f" ({row['failed']} failed)" if row["failed"] else "") +
                     " | " + " | ".join(cells) + " |")
    if "hvconf" in summary:
        ratios = [k for k in ("init_s", "end_s", "cpu_init_s", "cpu_s", "exits") if k in summary["hvconf"]]
        lines += ["", "| hvconf / QEMU, medians | " + " | ".join(dict(COLUMNS)[k].removesuffix(", s")
                                                            for k in ratios) + " |", "|---|" + "---|" * len(ratios)]
        for name in ("qemu-microvm", "qemu-pc"):
            if name in summary:
                a, b = summary["hvconf"], summary[name]
                lines.append(f"| {name} | " + " | ".join(f"{a[k]['median'] / b[k]['median']:.2f}x" if k in b else "–"
                                                         for k in ratios) + " |")
        lines += ["", "Per round (hvconf's run over the same round's QEMU run), median [min–max]: the load "
                  "changes from round to round, so these pair runs made minutes apart.", "",
                  "| hvconf / QEMU, same round | " + " | ".join(dict(COLUMNS)[k].removesuffix(", s") for k in ratios)
                  + " |", "|---|" + "---|" * len(ratios)]
        for name in ("qemu-microvm", "qemu-pc"):
            cells = []
            for k in ratios:
                values = paired(runs, name, k)
                cells.append(f"{statistics.median(values):.2f}x [{min(values):.2f}–{max(values):.2f}]" if values
                             else "–")
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--limit", type=int, default=300, help="seconds a run may take inside the host (default 300)")
    parser.add_argument("--keep", type=Path, help="keep the payload and the console log here")
    parser.add_argument("--report", action="store_true", help="only write boot-race.md again from boot-race.json")
    args = parser.parse_args()
    if args.report:
        saved = json.loads((RESULTS / "boot-race.json").read_text())
        text = markdown(saved["summary"], saved["rounds"], saved["boot_seconds"], saved["load_average"], saved["runs"])
        (RESULTS / "boot-race.md").write_text(text)
        print(text)
        return 0
    base = HOST.prepare()
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="hvconf-race-") as tmp:
        root = payload(Path(tmp), args.rounds, args.limit)
        runtime_tree(root / "lib", base.magic)
        bound = case_timeout(args.rounds, args.limit)
        boot = HOST.boot(base, root, timeout=300.0 + bound, case_timeout=bound, on_line=progress)
        if args.keep:
            shutil.copytree(root, args.keep / "payload", dirs_exist_ok=True)
    if args.keep:
        (args.keep / "console.txt").write_text(boot.console)
    case = boot.case("race")
    runs = [json.loads(line.split(" ", 1)[1]) for line in case.output.splitlines() if line.startswith("@@RACE ")]
    summary = summarise(runs)
    loads = (load, os.getloadavg()[0])
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "boot-race.json").write_text(json.dumps({"rounds": args.rounds, "limit_s": args.limit,
                                                        "boot_seconds": boot.seconds, "load_average": loads,
                                                        "host": boot.host, "runs": runs, "summary": summary},
                                                       indent=1) + "\n")
    text = markdown(summary, args.rounds, boot.seconds, loads, runs)
    (RESULTS / "boot-race.md").write_text(text)
    print(text)
    bad = [r for r in runs if r.get("init_s") is None or r.get("end_s") is None]
    for r in bad:
        print(f"{r['vmm']} round {r['round'] + 1}: init {r.get('init_s')}, end {r.get('end_s')}, rc {r['rc']}"
              f"{' (killed)' if r.get('killed') else ''}: {r['tail']}", file=sys.stderr)
    return 1 if bad or len(runs) != args.rounds * len(CONTENDERS) else 0


if __name__ == "__main__":
    sys.exit(main())
