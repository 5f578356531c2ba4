"""The boot race (issue 15 item 4): hvconf's launcher against QEMU -M microvm and -M pc, booting the
same unmodified Linux inside the emulated x86_64 host of tests/hosts (kvm_amd under TCG).

    python bench/race/run.py [--rounds N] [--keep DIR]

Builds samples/x86-linux.hv's launcher, packs it with hvconf's runtime, QEMU from this machine (its
binary, the shared libraries `ldd` names, with their loader, and the firmware it needs, run through
that loader with -L: the host has no /usr/bin/qemu), the host's own kernel and bench/race/race.py into
one payload, boots the host once and runs N interleaved rounds there (race.py). Writes
bench/results/boot-race.json (every run) and bench/results/boot-race.md (medians, spread, ratios).
Not part of CI: one boot with 3 rounds takes 5-10 minutes on 2 cores. Needs what tests/x86 needs
(`sudo sh tests/hosts/install-deps.sh`) and qemu-system-x86 on this machine.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))

from hosts.emulated import runtime_tree  # noqa: E402
from hosts.x86 import HOST  # noqa: E402

from hvconf import compiler  # noqa: E402

RESULTS = REPO / "bench" / "results"
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


def payload(folder: Path, rounds: int) -> Path:
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
    (case / "run").write_text(f"#!/bin/sh\npython3 linux_initrd.py initrd.img || exit 90\nexec python3 race.py {rounds}\n")
    (case / "run").chmod(0o755)
    (case / "timeout").write_text(f"{1000 * rounds}\n")
    (root / "host-kernel").write_bytes(b"")  # the harness puts the host's kernel there
    pack_qemu(root / "qemu")
    return root


def summarise(runs: list[dict]) -> dict:
    by: dict[str, dict] = {}
    for name in ("hvconf", "qemu-microvm", "qemu-pc"):
        mine = [r for r in runs if r["vmm"] == name and r.get("init_s") is not None]
        if not mine:
            continue
        by[name] = {key: {"median": statistics.median(r[key] for r in mine), "min": min(r[key] for r in mine),
                          "max": max(r[key] for r in mine)} for key in ("init_s", "end_s", "exits", "io_exits")
                    if all(key in r for r in mine)}
        by[name]["runs"] = len(mine)
    return by


def markdown(summary: dict, rounds: int, seconds: float) -> str:
    lines = [f"# Boot race ({rounds} interleaved rounds in one boot of the emulated x86_64 host, {seconds:.0f} s)", "",
             "Median (min-max) per VMM; exits are KVM's own counters (debugfs), in the kernel or not.", "",
             "| VMM | start to /init, s | start to end, s | exits | port I/O exits |", "|---|---|---|---|---|"]
    for name, row in summary.items():
        cells = [f"{row[k]['median']:.2f} ({row[k]['min']:.2f}-{row[k]['max']:.2f})" if k.endswith("_s") else
                 f"{row[k]['median']:,.0f} ({row[k]['min']:,}-{row[k]['max']:,})" for k in ("init_s", "end_s", "exits",
                                                                                            "io_exits") if k in row]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if "hvconf" in summary:
        lines += ["", "| ratio (hvconf / QEMU), medians | to /init | to end | exits |", "|---|---|---|---|"]
        for name in ("qemu-microvm", "qemu-pc"):
            if name in summary:
                a, b = summary["hvconf"], summary[name]
                lines.append(f"| {name} | {a['init_s']['median'] / b['init_s']['median']:.2f}x | "
                             f"{a['end_s']['median'] / b['end_s']['median']:.2f}x | "
                             f"{a['exits']['median'] / b['exits']['median']:.3f}x |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="keep the payload and the console log here")
    args = parser.parse_args()
    base = HOST.prepare()
    with tempfile.TemporaryDirectory(prefix="hvconf-race-") as tmp:
        root = payload(Path(tmp), args.rounds)
        runtime_tree(root / "lib", base.magic)
        boot = HOST.boot(base, root, timeout=300.0 + 1000.0 * args.rounds, case_timeout=1000 * args.rounds)
        if args.keep:
            shutil.copytree(root, args.keep / "payload", dirs_exist_ok=True)
    if args.keep:
        (args.keep / "console.txt").write_text(boot.console)
    case = boot.case("race")
    runs = [json.loads(line.split(" ", 1)[1]) for line in case.output.splitlines() if line.startswith("@@RACE ")]
    summary = summarise(runs)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "boot-race.json").write_text(json.dumps({"rounds": args.rounds, "boot_seconds": boot.seconds,
                                                        "host": boot.host, "runs": runs, "summary": summary},
                                                       indent=1) + "\n")
    text = markdown(summary, args.rounds, boot.seconds)
    (RESULTS / "boot-race.md").write_text(text)
    print(text)
    bad = [r for r in runs if r.get("init_s") is None]
    for r in bad:
        print(f"{r['vmm']} round {r['round']}: no /init (rc {r['rc']}): {r['tail']}", file=sys.stderr)
    return 1 if bad or not runs else 0


if __name__ == "__main__":
    sys.exit(main())
