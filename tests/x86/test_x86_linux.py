"""An unmodified Linux booted by hvconf on a complete KVM: the Debian amd64 kernel of the emulated
x86_64 host, booted as its guest by samples/x86-linux.hv's launcher with 2 vCPUs (`--kernel`, `--initrd`)
on a terminal (pty_run.py), to a busybox /init (linux_initrd.py) that prints what the guest sees, reads
the line typed at the launcher's terminal and prints it back, and reboots.

Asserted from the guest's side (its own `uname -r`, /proc/cpuinfo's model name, its 2 processors (the
MP table) with the APIC ids CPUID gives each, the kernel's
"Hypervisor detected" line, the typed line, all through the 16550 on its interrupt) and from the launcher's
(status 9 for the i8042 reset that `reboot -f` ends in, what it placed where, and the exits it
handled: bounded, not timed).
"""

from __future__ import annotations

import re
from typing import Any

from .test_x86_kvm import run

MARK = re.compile(r"^@@L2 (\w+)(?:=(.*))?$", re.MULTILINE)
# Exits that reach the launcher in a quiet boot: ~1,000 (serial bytes, CMOS, the i8042 probe, Super-I/O and
# COM2-4 probes); QEMU's SeaBIOS boot takes ~41,000 on the same host. A PCI scan answered with zeros, or an
# i8042 that never replies, costs 10,000 more: the bound catches either.
MAX_EXITS = 3000


def test_linux_boots_to_init_and_its_reboot_ends_the_run(x86_boot: Any) -> None:
    boot, built = x86_boot
    status, console, trace = run(x86_boot, "linux")
    said = {m.group(1): m.group(2) for m in MARK.finditer(console)}
    host_kernel = boot.host["kernel"]  # the same kernel the host runs
    assert said == {"init": None, "uname": host_kernel, "model": "hvconf x86_64 vCPU",
                    "hypervisor": "Hypervisor detected: KVM", "cpus": "2", "apicids": "0 1",
                    "ready": None, "typed": "typed through hvconf",
                    "reboot": None}, console[-3000:]  # typed at the launcher's terminal, read by the guest
    assert status == 9, trace[-2000:]
    # vCPU 1 was stopped by the reset inside the kernel (its upper half): the AP ran Linux after its SIPI
    ended = re.search(r"^launch: error: x86-linux: vcpu:0: guest asked for a reset \(0xfe to i8042 port 0x64\); "
                      r"stopped vcpu:1 at rip (0x[0-9a-f]+)[^\n]* \(status 9: ", trace, re.MULTILINE)
    assert ended is not None and int(ended.group(1), 16) >= 0xFFFF_FFFF_8000_0000, trace[-2000:]
    placed = dict(re.findall(r"^trace: linux: (bzImage|initrd) .* at (0x[0-9a-f]+)", trace, re.MULTILINE))
    plan = built["linux"].plan
    assert int(placed["bzImage"], 16) == next(i["guest_phys_addr"] for i in plan["images"] if i["name"] == "kernel")
    memory = next(s["args"]["memory_size"] for s in plan["steps"] if s["ioctl"] == "KVM_SET_USER_MEMORY_REGION")
    initrd = int(placed["initrd"], 16)
    assert initrd % 4096 == 0 and memory - 2 * 1024 * 1024 < initrd < memory  # the top of RAM
    exits = int(re.search(r"^trace: x86-linux: status 9, (\d+) exits handled$", trace, re.MULTILINE).group(1))
    assert 100 < exits < MAX_EXITS, exits
    assert "trace: linux: MP table of 2 processors, 336 bytes at 0xf0000" in trace, trace[-2000:]
