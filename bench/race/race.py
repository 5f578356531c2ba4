#!/usr/bin/python3
"""The boot race, run inside the emulated x86_64 host (bench/race/run.py puts it there): the same Debian
kernel and busybox initramfs booted by hvconf's launcher, QEMU -M microvm and QEMU -M pc (-accel kvm),
interleaved (the order rotates each round), each run timed from process start to the guest's /init
("@@L2 init" on its console) and to the process's end (the guest's reboot), its CPU time taken from the
process itself (/proc/PID/stat at /init, wait4's rusage at the end: every thread, the vCPU's time in
the guest included), and its exits counted by KVM itself (debugfs: the VM's `exits`, `io_exits`, ...,
read while it runs). Standard library only.

Every run is bounded: after LIMIT seconds its whole session is KILLed and the run is reported with
`killed` and no end; a process that SIGKILL cannot end within GRACE seconds (stuck in the kernel) is
reported `unkillable` and left behind. Progress goes to stdout as it happens, one line per event
(`@@PROGRESS round R/N VMM start|init|running|end ...`, a `running` line every HEARTBEAT seconds with
KVM's exit count, so a stalled guest shows as a count that stops), and one JSON object per run after
`@@RACE `. Usage: race.py ROUNDS [LIMIT]
"""

from __future__ import annotations

import json
import os
import signal
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

LIMIT = 300.0  # s: a run still going then is killed (its boots take 40-100 s on 2 busy cores)
GRACE = 30.0  # s a KILLed process gets to be gone before it is reported unkillable
HEARTBEAT = 30.0  # s between `running` lines
TICK = os.sysconf("SC_CLK_TCK")


def qemu(machine: str, cmdline: str = CMDLINE) -> list[str]:
    """QEMU from the payload: its own loader and libraries, its firmware through -L."""
    return [f"{QEMU}/ld.so", "--library-path", f"{QEMU}/lib", f"{QEMU}/qemu-system-x86_64", "-L", f"{QEMU}/share",
            "-M", f"{machine},accel=kvm", "-cpu", "host", "-m", "256M", "-smp", "1", "-nodefaults", "-no-user-config",
            "-nographic", "-serial", "stdio", "-no-reboot", "-kernel", KERNEL, "-initrd", INITRD, "-append", cmdline]


CONTENDERS = {
    # the launcher's own watchdog (--timeout, added per run: the run's limit) ends a hung guest with status 4
    "hvconf": ["python3", os.path.join(HERE, "launch.py"), "--kernel", KERNEL, "--initrd", INITRD, "--quiet"],
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


def cpu_seconds(pid: int) -> float | None:
    """utime + stime of every thread of `pid` so far (proc(5) fields 14 and 15)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / TICK


def threads_state(pid: int) -> str:
    """Each thread's state and kernel wait channel: where a process that will not die is stuck."""
    out = []
    try:
        for tid in sorted(os.listdir(f"/proc/{pid}/task")):
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
            with open(f"/proc/{pid}/task/{tid}/wchan") as f:
                out.append(f"{tid}:{state}:{f.read().strip() or '-'}")
    except OSError:
        pass
    return " ".join(out)


class Progress:
    """One line per event on stdout, flushed at once (the host's console is the only way out)."""

    def __init__(self, round_: int, rounds: int, name: str, start: float) -> None:
        self.prefix = f"@@PROGRESS round {round_ + 1}/{rounds} {name}"
        self.start = start
        self.lock = threading.Lock()

    def say(self, event: str, extra: str = "") -> None:
        with self.lock:
            print(f"{self.prefix} {event} t={time.monotonic() - self.start:.1f}s {extra}".rstrip(), flush=True)


def reap(pid: int, deadline: float) -> tuple[int, object] | None:
    """(wait status, rusage) of `pid` once it ends, polling until `deadline`; None if it is still there."""
    while True:
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done == pid:
            return status, usage
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.1)


def run(round_: int, rounds: int, name: str, limit: float) -> dict[str, object]:
    peak: dict[str, int] = {}
    init: dict[str, float | None] = {"s": None, "cpu": None}
    tail: list[str] = []
    start = time.monotonic()
    progress = Progress(round_, rounds, name, start)
    argv = CONTENDERS[name] + (["--timeout", str(int(limit))] if name == "hvconf" else [])
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    progress.say("start", f"pid={proc.pid}")
    done = threading.Event()

    def watch() -> None:  # KVM's counters sum the VMs that exist: read them until the VM is gone
        beat = start + HEARTBEAT
        while not done.wait(0.02):
            now = counters()
            if now.get("exits", 0) >= peak.get("exits", 0):
                peak.update(now)
            if time.monotonic() >= beat:
                beat += HEARTBEAT
                progress.say("running", f"exits={peak.get('exits', 0)} cpu={cpu_seconds(proc.pid)}")

    def read() -> None:  # the guest's console: the /init marker, and the last lines for the report
        assert proc.stdout is not None
        for line in proc.stdout:
            if init["s"] is None and b"@@L2 init" in line:
                init["s"], init["cpu"] = time.monotonic() - start, cpu_seconds(proc.pid)
                progress.say("init", f"cpu={init['cpu']}")
            tail[:] = (tail + [line.decode("utf-8", "replace").rstrip()])[-5:]

    helpers = [threading.Thread(target=watch, daemon=True), threading.Thread(target=read, daemon=True)]
    for helper in helpers:
        helper.start()
    ended = reap(proc.pid, start + limit)
    killed = ended is None
    if killed:
        progress.say("killed", f"after {limit:.0f} s: {threads_state(proc.pid)} | {' / '.join(tail[-2:])}")
        os.killpg(proc.pid, signal.SIGKILL)
        ended = reap(proc.pid, time.monotonic() + GRACE)
    end = time.monotonic() - start
    done.set()
    for helper in helpers:
        helper.join(5)  # the reader ends with the pipe; a stuck process holding it is not waited for
    result: dict[str, object] = {"vmm": name, "init_s": init["s"], "cpu_init_s": init["cpu"], "killed": killed,
                                 **peak, "tail": tail}
    if ended is None:
        progress.say("unkillable", threads_state(proc.pid))
        return {**result, "end_s": None, "rc": None, "unkillable": True}
    status, usage = ended
    proc.returncode = rc = os.waitstatus_to_exitcode(status)
    cpu = usage.ru_utime + usage.ru_stime  # type: ignore[attr-defined]
    progress.say("end", f"rc={rc} cpu={cpu:.1f} exits={peak.get('exits')}")
    return {**result, "end_s": None if killed else end, "rc": rc, "cpu_s": cpu,
            "user_s": usage.ru_utime, "sys_s": usage.ru_stime}  # type: ignore[attr-defined]


def main() -> int:
    os.makedirs(DEBUGFS.rsplit("/", 1)[0], exist_ok=True)
    subprocess.run(["mount", "-t", "debugfs", "none", "/sys/kernel/debug"], check=False)
    rounds = int(sys.argv[1])
    limit = float(sys.argv[2]) if len(sys.argv) > 2 else LIMIT
    names = list(CONTENDERS)
    for r in range(rounds):
        order = names[r % len(names):] + names[: r % len(names)]  # rotate: nobody always goes first
        for name in order:
            result = run(r, rounds, name, limit)
            print("@@RACE " + json.dumps({"round": r, **result}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
