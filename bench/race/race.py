#!/usr/bin/python3
"""The boot race, run inside the emulated x86_64 host (bench/race/run.py puts it there): the same Debian
kernel and busybox initramfs booted by hvconf's launcher, QEMU -M microvm and QEMU -M pc (-accel kvm),
interleaved (the order rotates each round), each run timed from process start to the guest's /init
("@@L2 init" on its console) and to the process's end (the guest's reboot), and its exits counted by
KVM itself (debugfs: the VM's `exits`, `io_exits`, `mmio_exits`, read while it runs). Standard library
only; prints one JSON object per run between @@RACE markers. Usage: race.py ROUNDS
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
KERNEL = "/payload/host-kernel"
INITRD = os.path.join(HERE, "initrd.img")
QEMU = "/payload/qemu"
DEBUGFS = "/sys/kernel/debug/kvm"
COUNTERS = ("exits", "io_exits", "mmio_exits", "halt_exits", "irq_exits")
with open(os.path.join(HERE, "cmdline")) as f:
    CMDLINE = f.read().strip()  # samples/x86-linux.hv's, for all three


LIMIT = 300  # s: a run still going then is killed and reported without an end


def qemu(machine: str, cmdline: str = CMDLINE) -> list[str]:
    """QEMU from the payload: its own loader and libraries, its firmware through -L."""
    return [f"{QEMU}/ld.so", "--library-path", f"{QEMU}/lib", f"{QEMU}/qemu-system-x86_64", "-L", f"{QEMU}/share",
            "-M", f"{machine},accel=kvm", "-cpu", "host", "-m", "256M", "-smp", "1", "-nodefaults", "-no-user-config",
            "-nographic", "-serial", "stdio", "-no-reboot", "-kernel", KERNEL, "-initrd", INITRD, "-append", cmdline]


CONTENDERS = {
    "hvconf": ["python3", os.path.join(HERE, "launch.py"), "--kernel", KERNEL, "--initrd", INITRD, "--timeout", "300",
               "--quiet"],
    # microvm has no i8042: `reboot=k` would poll port 0x64 for minutes before giving up, so it reboots by a
    # triple fault, which -no-reboot turns into QEMU's exit (QEMU's docs/system/i386/microvm.rst)
    "qemu-microvm": qemu("microvm", CMDLINE.replace("reboot=k", "reboot=t")),
    "qemu-pc": qemu("pc"),
}


def counters() -> dict[str, int]:
    out = {}
    for name in COUNTERS:
        try:
            with open(os.path.join(DEBUGFS, name)) as f:
                out[name] = int(f.read())
        except OSError:
            pass
    return out


def run(name: str) -> dict[str, object]:
    peak: dict[str, int] = {}
    done = threading.Event()

    def watch() -> None:  # KVM's counters sum the VMs that exist: read them until the VM is gone
        while not done.is_set():
            now = counters()
            if now.get("exits", 0) >= peak.get("exits", 0):
                peak.update(now)
            time.sleep(0.02)

    start = time.monotonic()
    proc = subprocess.Popen(CONTENDERS[name], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    killer = threading.Timer(LIMIT, proc.kill)
    killer.start()
    init = None
    tail = []
    assert proc.stdout is not None
    for line in proc.stdout:
        if init is None and b"@@L2 init" in line:
            init = time.monotonic() - start
        tail = (tail + [line.decode("utf-8", "replace").rstrip()])[-5:]
    rc = proc.wait()
    end = time.monotonic() - start
    killer.cancel()
    done.set()
    watcher.join()
    return {"vmm": name, "init_s": init, "end_s": end, "rc": rc, **peak, "tail": tail}


def main() -> int:
    os.makedirs(DEBUGFS.rsplit("/", 1)[0], exist_ok=True)
    subprocess.run(["mount", "-t", "debugfs", "none", "/sys/kernel/debug"], check=False)
    rounds = int(sys.argv[1])
    names = list(CONTENDERS)
    for r in range(rounds):
        order = names[r % len(names):] + names[: r % len(names)]  # rotate: nobody always goes first
        for name in order:
            result = run(name)
            print("@@RACE " + json.dumps({"round": r, **result}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
