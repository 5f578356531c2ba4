"""The architectures hvconf targets, one record each, for the compiler and the runtime alike.

An `Arch` says, for one value of the language's `arch` keyword:
- `family`: the runtime folder that serves it, hvconf/kvm/<family>/ (docs/runtime.md);
- `ioc`: the `_IOC` encoding of its asm/ioctl.h, "generic" or "powerpc"
  (docs/kernel-facts.md: PowerPC has 3 direction bits and a 13-bit size);
- `layout`: the structs.toml column its struct sizes and offsets come from, which is
  also the cffi declaration module hvconf/kvm/ioctls/cdefs/ loads for it;
- `byteorder`: how its kernel lays out kvm_run and every struct it exchanges;
- `machine`: `uname -m` of the hosts that run its guests (a plan's requires.host_arch);
- `vm_types`: the KVM_CREATE_VM types the host probe asks for, each (number, uapi name).

Everything else about an arch is derived from RECORDS: hvconf.abi's ARCHES,
ABI_OF_ARCH and LAYOUT_OF_ARCH, the runtime's host arch (ARCH_OF_MACHINE) and
the probe's cap arch. Stdlib only, no tables to load: every launch reads it.
Tests: tests/test_abi.py, tests/kvm/test_layouts.py, tests/test_host.py.
"""

from __future__ import annotations

from hvconf.record import Record

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from typing import Literal

    ByteOrder = Literal["little", "big"]


class Arch(Record):
    """One hvconf arch (see the module docstring for each field)."""

    __slots__ = ("name", "family", "ioc", "layout", "byteorder", "machine", "vm_types")
    name: str
    family: str
    ioc: str
    layout: str
    byteorder: ByteOrder
    machine: str
    vm_types: tuple[tuple[int, str], ...]


DEFAULT_VM_TYPES = ((0, "default"),)
# Book3S hosts may have kvm_hv, kvm_pr or both loaded; asking for each type says which.
BOOK3S_VM_TYPES = ((1, "KVM_VM_PPC_HV"), (2, "KVM_VM_PPC_PR"))

# ppc64 and ppc64le share the powerpc64 layout: byte order changes no size or offset.
# ppc-e500 shares it too, although an e500v2 userspace is 32-bit: every struct KVM
# exchanges on powerpc is built from fixed-width __u8/__u16/__u32/__u64 fields (no
# long, no pointers), and the 32-bit PowerPC SysV ABI aligns __u64 to 8 bytes (unlike
# i386, which aligns it to 4), so the padding is the same as on ppc64.
# tests/test_abi_headers.py proves it by compiling every table entry with
# `powerpc64le-linux-gnu-gcc -m32 -mbig-endian`. The two ioctls whose argument is an
# `unsigned long` (KVM_S390_STORE_STATUS, KVM_S390_VCPU_FAULT, s390-only in practice)
# do differ, and ioctls.toml leaves ppc-e500 out of their arches. A 32-bit PowerPC
# host ("ppc") is taken to be an e500: the only 32-bit PowerPC target hvconf has.
RECORDS: dict[str, Arch] = {
    arch.name: arch
    for arch in (
        Arch("x86_64", "x86", "generic", "x86_64", "little", "x86_64", ((0, "KVM_X86_DEFAULT_VM"),)),
        Arch("s390x", "s390", "generic", "s390x", "big", "s390x", DEFAULT_VM_TYPES),
        Arch("ppc64", "powerpc", "powerpc", "powerpc64", "big", "ppc64", BOOK3S_VM_TYPES),
        Arch("ppc64le", "powerpc", "powerpc", "powerpc64", "little", "ppc64le", BOOK3S_VM_TYPES),
        Arch("ppc-e500", "powerpc", "powerpc", "powerpc64", "big", "ppc", DEFAULT_VM_TYPES),
    )
}

# The layout columns, each one struct table and one cffi declaration module.
LAYOUTS: tuple[str, ...] = tuple(dict.fromkeys(arch.layout for arch in RECORDS.values()))
# uname -m -> the hvconf arch a host of that machine runs.
ARCH_OF_MACHINE: dict[str, str] = {arch.machine: arch.name for arch in RECORDS.values()}

# Machines hvconf targets none of, whose KVM caps caps.toml still lists (under these arch
# names): `hvconf host` on such a host reports them.
CAP_ARCH_OF_OTHER_MACHINE: dict[str, str] = {
    "aarch64": "arm64", "riscv64": "riscv", "loongarch64": "loongarch", "mips64": "mips",
}  # fmt: skip


def cap_arch_of_machine(machine: str) -> str | None:
    """The arch name caps.toml rows use for a host of `machine` (uname -m), or None."""
    return ARCH_OF_MACHINE.get(machine) or CAP_ARCH_OF_OTHER_MACHINE.get(machine)
