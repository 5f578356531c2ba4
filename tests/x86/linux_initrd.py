"""The Linux case's initramfs, made inside the emulated x86_64 host from its own busybox:
`python3 linux_initrd.py [--echo] OUT` writes a gzip-compressed newc cpio whose /init prints the
guest's `uname -r`, /proc/cpuinfo's model name, processor count and CPUID APIC ids and the kernel's hypervisor
line between @@L2 markers, with --echo reads a line from its console and prints it back (pty_run.py types
it), then reboots (the i8042 reset that ends the launcher's run, status 9).
Standard library only (it runs under the host's Python, beside tests/hosts/cpio.py, copied
next to it); tests/x86/test_x86_linux.py reads what /init printed.
"""

from __future__ import annotations

import stat
import sys
from pathlib import Path

import cpio

INIT = """#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
echo "@@L2 init"
echo "@@L2 uname=$(/bin/busybox uname -r)"
echo "@@L2 model=$(/bin/busybox grep -m 1 'model name' /proc/cpuinfo | /bin/busybox sed 's/^[^:]*: *//')"
echo "@@L2 hypervisor=$(/bin/busybox dmesg | /bin/busybox grep -m 1 -o 'Hypervisor detected.*')"
echo "@@L2 cpus=$(/bin/busybox grep -c '^processor' /proc/cpuinfo)"
echo "@@L2 apicids="$(/bin/busybox grep '^initial apicid' /proc/cpuinfo | /bin/busybox sed 's/^[^:]*: *//')
{echo}echo "@@L2 reboot"
/bin/busybox reboot -f
"""
ECHO = """echo "@@L2 ready"
read -t 60 line
echo "@@L2 typed=$line"
"""


def entries(busybox: bytes, echo: bool = False) -> list[cpio.Entry]:
    return [cpio.directory("bin"), cpio.directory("dev"), cpio.directory("proc"),
            cpio.device("dev/console", "c", 5, 1), cpio.Entry("bin/busybox", stat.S_IFREG | 0o755, busybox),
            cpio.Entry("init", stat.S_IFREG | 0o755, INIT.replace("{echo}", ECHO if echo else "").encode())]


if __name__ == "__main__":
    echo = sys.argv[1] == "--echo"
    cpio.write(Path(sys.argv[-1]), entries(Path("/bin/busybox").read_bytes(), echo), compress=True)
