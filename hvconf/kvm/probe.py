"""The host probe: what this host's KVM offers, as host-facts data (format 1).

`probe()` opens the system fd and asks KVM_GET_API_VERSION,
KVM_GET_VCPU_MMAP_SIZE, KVM_CHECK_EXTENSION of every hvconf.abi cap of the
host's arch on the system fd and on one fresh VM fd per VM type of the arch
(the answers can differ), on x86 KVM_GET_SUPPORTED_CPUID's PV leaf, and on
Book3S whether hash-MMU guests work (a scratch VM tries KVM_PPC_ALLOCATE_HTAB). It
returns plain data in the documented key order; validating and printing it
is hvconf/model/host.py's job (the runtime stays free of pydantic). It runs
no guest. Tests: tests/test_host.py.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import hvconf.abi
from hvconf.kvm.errors import KvmError
from hvconf.kvm.system import DEV_KVM, Kvm
from hvconf.kvm.vm import Vm

HOST_FACTS_FORMAT = 1
KVM_CPUID_SIGNATURE = 0x40000000
KVM_CPUID_FEATURES = 0x40000001
KVM_SIGNATURE = (0x4B4D564B, 0x564B4D56, 0x0000004D)  # "KVMKVMKVM\0\0\0" in ebx, ecx, edx

# uname machine -> the arch name hvconf.abi's cap rows use for it. 32-bit
# "ppc" hosts that run KVM are BookE (e500); Book3S-64 hosts say ppc64/ppc64le.
CAP_ARCH_OF_MACHINE: dict[str, str] = {
    "x86_64": "x86_64",
    "s390x": "s390x",
    "ppc64": "ppc64",
    "ppc64le": "ppc64le",
    "ppc": "ppc-e500",
    "aarch64": "arm64",
    "riscv64": "riscv",
    "loongarch64": "loongarch",
    "mips64": "mips",
}

# KVM_CREATE_VM types worth a VM fd each (uapi names). Book3S hosts may have
# kvm_hv, kvm_pr or both loaded; asking for each type says which.
_BOOK3S = ((1, "KVM_VM_PPC_HV"), (2, "KVM_VM_PPC_PR"))
VM_TYPES_OF_MACHINE: dict[str, tuple[tuple[int, str], ...]] = {
    "x86_64": ((0, "KVM_X86_DEFAULT_VM"),),
    "ppc64": _BOOK3S,
    "ppc64le": _BOOK3S,
}
DEFAULT_VM_TYPES: tuple[tuple[int, str], ...] = ((0, "default"),)


def probe(
    dev: str = DEV_KVM, *, proposed_overrides: Path | None = None, timestamp: bool = False
) -> dict[str, Any]:
    """Host facts of this machine. Raises OSError (cannot open `dev`), KvmError (a
    system-fd ioctl failed) or hvconf.abi.AbiError (a bad `proposed_overrides` file).

    `proposed_overrides`: the numbers a patched kernel gives the unmerged ePAPR
    proposal; its caps are then probed too and the numbers recorded.
    """
    uname = os.uname()
    cap_arch = CAP_ARCH_OF_MACHINE.get(uname.machine)
    proposed = _proposed_numbers(proposed_overrides)
    caps = _cap_rows(cap_arch, proposed)
    kvm = Kvm(dev)
    try:
        system = {name: kvm.check_extension(number) for name, number in caps}
        # Old kernels answer KVM_CHECK_EXTENSION on the system fd only.
        vm_checks = bool(kvm.check_extension(hvconf.abi.cap("KVM_CAP_CHECK_EXTENSION_VM").number))
        vm_types, on_vm = _probe_vm_types(kvm, uname.machine, caps, vm_checks)
        facts: dict[str, Any] = {
            "format": HOST_FACTS_FORMAT,
            "machine": uname.machine,
            "arch": cap_arch,
            "kernel_release": uname.release,
            "api_version": kvm.api_version,
            "vcpu_mmap_size": kvm.vcpu_mmap_size,
            "memory_bytes": os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"),
            "vm_types": vm_types,
            "caps": [
                {"name": name, "number": number, "system": system[name],
                 "vm": {str(t): values[name] for t, values in on_vm.items()}}
                for name, number in caps
            ],
            "proposed": proposed,
            "pv_features": _pv_features(kvm) if uname.machine == "x86_64" else None,
            "ppc_mmu": _ppc_mmu(kvm, system) if uname.machine in ("ppc64", "ppc64le") else None,
        }  # fmt: skip
    finally:
        kvm.close()
    if timestamp:
        facts["probed_at"] = datetime.now(timezone.utc).replace(microsecond=0).isoformat()
    return facts


def _proposed_numbers(overrides: Path | None) -> dict[str, int]:
    if overrides is None:
        return {}
    items = hvconf.abi.proposed(overrides).items
    return {i.name: i.number for i in items if i.number is not None}


def _cap_rows(cap_arch: str | None, proposed: Mapping[str, int]) -> list[tuple[str, int]]:
    """(name, number) of every cap to ask about, by number: the arch's rows of
    hvconf.abi, plus the proposal's caps where the overrides number them."""
    rows = [(c.name, c.number) for c in hvconf.abi.caps().values() if cap_arch in c.arches]
    kinds = {i.name: i.kind for i in hvconf.abi.proposed().items}
    rows += [(name, number) for name, number in proposed.items() if kinds.get(name) == "cap"]
    return sorted(rows, key=lambda row: (row[1], row[0]))


def _probe_vm_types(
    kvm: Kvm, machine: str, caps: list[tuple[str, int]], vm_checks: bool
) -> tuple[list[dict[str, Any]], dict[int, dict[str, int]]]:
    """One VM per type of the machine: whether it could be created, and its caps."""
    types: list[dict[str, Any]] = []
    values: dict[int, dict[str, int]] = {}
    for vm_type, name in VM_TYPES_OF_MACHINE.get(machine, DEFAULT_VM_TYPES):
        try:
            vm: Vm = kvm.create_vm(vm_type)
        except KvmError as err:
            # EINVAL: the module for this type is not loaded (kvm_hv/kvm_pr)
            types.append({"type": vm_type, "name": name, "created": False, "error": err.errno_name})
            continue
        try:
            if vm_checks:
                values[vm_type] = {cap: vm.check_extension(number) for cap, number in caps}
        finally:
            vm.close()
        types.append({"type": vm_type, "name": name, "created": True, "error": None})
    return types, values


KVM_VM_PPC_HV = 1
HTAB_PROBE_ORDER = 18  # PPC_MIN_HPT_ORDER: the smallest table, 256 KiB


def hash_guests(kvm: Kvm) -> tuple[bool, str]:
    """Whether this Book3S HV host runs hash-MMU (HPT) guests, and what showed it.

    KVM_CAP_PPC_ALLOC_HTAB reads 1 even where KVM_PPC_ALLOCATE_HTAB fails (a
    nested KVM-HV, which runs radix guests only, answers EOPNOTSUPP), so the
    only way to know is to ask: a scratch VM allocates the smallest HPT."""
    try:
        vm = kvm.create_vm(KVM_VM_PPC_HV)
    except KvmError as err:
        return False, f"KVM_CREATE_VM(KVM_VM_PPC_HV) failed: {err.errno_name}"
    try:
        vm.ppc_allocate_htab(HTAB_PROBE_ORDER)
    except KvmError as err:
        return False, f"KVM_PPC_ALLOCATE_HTAB({HTAB_PROBE_ORDER}) on a scratch VM failed: {err.errno_name}"
    finally:
        vm.close()
    return True, f"KVM_PPC_ALLOCATE_HTAB({HTAB_PROBE_ORDER}) on a scratch VM succeeded"


def _ppc_mmu(kvm: Kvm, system: Mapping[str, int]) -> dict[str, Any]:
    hash_ok, how = hash_guests(kvm)
    return {"radix": bool(system.get("KVM_CAP_PPC_MMU_RADIX")), "hash": hash_ok, "hash_probe": how}


def _pv_features(kvm: Kvm) -> dict[str, int] | None:
    """CPUID 0x40000001 EAX/EDX as KVM_GET_SUPPORTED_CPUID reports them (the facts
    model adds the names); None when KVM does not offer its signature leaf."""
    leaves = {e.function: e for e in kvm.supported_cpuid() if e.index == 0}
    signature = leaves.get(KVM_CPUID_SIGNATURE)
    features = leaves.get(KVM_CPUID_FEATURES)
    if signature is None or features is None or (signature.ebx, signature.ecx, signature.edx) != KVM_SIGNATURE:
        return None
    return {"eax": features.eax, "edx": features.edx}


def main() -> int:
    """`python -m hvconf.kvm.probe`: the facts as JSON on stdout, for hosts that have the runtime
    only (no pydantic: `hvconf host --format json` validates and prints the same data)."""
    import json
    import sys

    try:
        facts = probe()
    except (OSError, KvmError) as err:
        print(f"probe: error: {err}", file=sys.stderr)
        return 3
    print(json.dumps(facts, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
