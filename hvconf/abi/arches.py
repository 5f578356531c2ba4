"""hvconf arch names and what each means for the Linux uapi: `_IOC` ABI and struct-layout column.

The arch names here are the ones used across hvconf (the `arch` keyword of
the language). This module is pure data plus one validator; it loads no
tables. Tests: tests/test_abi.py, tests/test_abi_headers.py.
"""

from __future__ import annotations

from hvconf.abi.errors import AbiError, unknown
from hvconf.abi.ioc import GENERIC, POWERPC, IocLayout

ARCHES: tuple[str, ...] = ("x86_64", "s390x", "ppc64", "ppc64le", "ppc-e500")

# Which `_IOC` encoding the arch's asm/ioctl.h uses.
ABI_OF_ARCH: dict[str, str] = {
    "x86_64": "generic",
    "s390x": "generic",
    "ppc64": "powerpc",
    "ppc64le": "powerpc",
    "ppc-e500": "powerpc",
}

# Which column of structs.toml gives the arch's struct sizes/offsets.
# ppc64 and ppc64le share one column: byte order changes no size or offset.
# ppc-e500 shares it too, although an e500v2 userspace is 32-bit: every
# struct KVM exchanges on powerpc is built from fixed-width __u8/__u16/__u32/
# __u64 fields (no long, no pointers), and the 32-bit PowerPC SysV ABI aligns
# __u64 to 8 bytes (unlike i386, which aligns it to 4), so the padding is the
# same as on ppc64. tests/test_abi_headers.py proves it by compiling every
# table entry with `powerpc64le-linux-gnu-gcc -m32 -mbig-endian`. The two
# ioctls whose argument is an `unsigned long` (KVM_S390_STORE_STATUS,
# KVM_S390_VCPU_FAULT, s390-only in practice) do differ, and ioctls.toml
# leaves ppc-e500 out of their arches.
LAYOUT_OF_ARCH: dict[str, str] = {
    "x86_64": "x86_64",
    "s390x": "s390x",
    "ppc64": "powerpc64",
    "ppc64le": "powerpc64",
    "ppc-e500": "powerpc64",
}

LAYOUT_COLUMNS: tuple[str, ...] = ("x86_64", "powerpc64", "s390x")

_IOC_OF_ABI: dict[str, IocLayout] = {"generic": GENERIC, "powerpc": POWERPC}


def check_arch(arch: str) -> str:
    """Return `arch` if hvconf knows it, else raise AbiError with a suggestion."""
    if arch not in ABI_OF_ARCH:
        raise unknown("arch", arch, ARCHES, f"(known: {', '.join(ARCHES)})")
    return arch


def ioc_layout(arch: str) -> IocLayout:
    """The `_IOC` layout used by `arch`."""
    return _IOC_OF_ABI[ABI_OF_ARCH[check_arch(arch)]]


def layout_column(arch: str) -> str:
    """The structs.toml column for `arch`."""
    return LAYOUT_OF_ARCH[check_arch(arch)]


__all__ = [
    "ABI_OF_ARCH",
    "ARCHES",
    "AbiError",
    "LAYOUT_COLUMNS",
    "LAYOUT_OF_ARCH",
    "check_arch",
    "ioc_layout",
    "layout_column",
]
