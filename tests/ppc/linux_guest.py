"""The Linux guest of tests/ppc: Debian's ppc64el kernel (the emulated host's own vmlinux) and a busybox
initramfs whose /init prints facts from the guest's userspace and powers off through RTAS.

`initramfs(base)` takes busybox out of the emulated host's base initramfs (the same static ppc64el
binary) and writes a newc archive with /init. `/init` prints, between @@GUEST markers: `uname -r`, the
/proc/cpuinfo lines that say platform, MMU and the CPU count, and how many bytes a 64-byte read of
/dev/hwrng gave (Linux's pseries-rng driver, H_RANDOM behind it: 0 when it failed), the cpuidle driver and how
often vCPU 0 had entered each idle state before and after a 0.1 s sleep (`idle_Shared_Cede=3 9`: pseries_idle's
cede states are H_CEDE calls), then `poweroff -f` (RTAS power-off). `facts(console)` parses
them back. Used by ppc_cases.py and `python tests/ppc/linux_guest.py DIR` (a payload to iterate with
power.py run).
"""

from __future__ import annotations

import gzip
import re
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

from hosts import cpio  # noqa: E402

INIT = r"""#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2> /dev/null
echo "@@GUEST uname=$(uname -r)"
echo "@@GUEST uptime=$(cut -d' ' -f1 /proc/uptime)"
grep -E '^(platform|MMU|cpu)[[:space:]]*:' /proc/cpuinfo | sort -u | sed 's/[[:space:]]*:[[:space:]]*/=/; s/^/@@GUEST /'
echo "@@GUEST cpus=$(grep -c '^processor' /proc/cpuinfo)"
echo "@@GUEST online=$(cat /sys/devices/system/cpu/online)"
insmod /lib/modules/pseries-rng.ko 2> /dev/null
n=$(dd if=/dev/hwrng bs=64 count=1 2> /dev/null | wc -c)
echo "@@GUEST hwrng=$n"
echo "@@GUEST idle=$(cat /sys/devices/system/cpu/cpuidle/current_driver)"
for s in /sys/devices/system/cpu/cpu0/cpuidle/state*; do cat $s/usage > /tmp/${s##*/}; done
usleep 100000
for s in /sys/devices/system/cpu/cpu0/cpuidle/state*; do
    echo "@@GUEST idle_$(tr " " _ < $s/name)=$(cat /tmp/${s##*/}) $(cat $s/usage)"
done
echo "@@GUEST done"
poweroff -f
"""
FACT = re.compile(r"^@@GUEST (\w+)=(.*?)\r?$", re.MULTILINE)


def busybox(base_initrd: Path) -> bytes:
    """The static busybox of the emulated host's base initramfs."""
    entries = cpio.read(gzip.decompress(base_initrd.read_bytes()))
    return next(e.data for e in entries if e.name == "bin/busybox")


RNG_MODULE = "pseries-rng.ko"  # Debian builds the driver as a module (no dependencies)


def initramfs(base_initrd: Path, out: Path, rng_module: Path | None = None) -> Path:
    """A gzip newc initramfs with busybox, /init and the pseries-rng module (when given) at `out`."""
    entries = [cpio.directory(d) for d in ("bin", "dev", "proc", "sys", "tmp", "lib", "lib/modules")]
    entries += [cpio.Entry("bin/busybox", 0o100755, busybox(base_initrd)), cpio.Entry("init", 0o100755, INIT.encode()),
                cpio.device("dev/console", "c", 5, 1)]
    if rng_module is not None:
        entries.append(cpio.Entry(f"lib/modules/{RNG_MODULE}", 0o100644, rng_module.read_bytes()))
    cpio.write(out, entries, compress=True)
    return out


def facts(console: str) -> dict[str, str]:
    """What /init printed, by name (the cpuinfo fields keep their names: platform, MMU, cpu)."""
    return {k: v.strip() for k, v in FACT.findall(console)}


if __name__ == "__main__":  # python tests/ppc/linux_guest.py BASE_INITRD OUT [PSERIES_RNG_KO]
    print(initramfs(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]) if len(sys.argv) > 3 else None))
