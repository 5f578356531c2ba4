"""The host probe: what this host's KVM offers, as host-facts data (docs/host.md, hvconf/contract.py).

`probe()` opens the system fd and asks KVM_GET_API_VERSION,
KVM_GET_VCPU_MMAP_SIZE, KVM_CHECK_EXTENSION of every hvconf.abi cap of the
host's arch on the system fd and on one fresh VM fd per VM type of the arch
(its record's vm_types, hvconf/contract.py: the answers can differ),
then what the arch family adds (its host.py `facts`: on x86
KVM_GET_SUPPORTED_CPUID's PV leaf, on Book3S whether hash-MMU guests work).
It returns plain data in the documented key order; validating and printing
it is hvconf/model/host.py's job (the runtime stays free of pydantic). It
runs no guest. Tests: tests/test_host.py.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import hvconf.abi
from hvconf.contract import (
    ARCH_OF_MACHINE, ARCHES, DEFAULT_VM_TYPES, HOST_FACTS_FAMILY_KEYS, HOST_FACTS_FORMAT, cap_arch_of_machine,
)  # fmt: skip
from hvconf.kvm import families
from hvconf.kvm.ioctls.errors import KvmError
from hvconf.kvm.ioctls.system import DEV_KVM, Kvm
from hvconf.kvm.ioctls.vm import Vm


def probe(
    dev: str = DEV_KVM, *, proposed_overrides: Path | None = None, timestamp: bool = False
) -> dict[str, Any]:
    """Host facts of this machine. Raises OSError (cannot open `dev`), KvmError (a
    system-fd ioctl failed) or hvconf.abi.AbiError (a bad `proposed_overrides` file).

    `proposed_overrides`: the numbers a patched kernel gives the unmerged ePAPR
    proposal; its caps are then probed too and the numbers recorded.
    """
    uname = os.uname()
    cap_arch = cap_arch_of_machine(uname.machine)
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
            **dict.fromkeys(HOST_FACTS_FAMILY_KEYS),
        }  # fmt: skip
        if uname.machine in ARCH_OF_MACHINE:  # its family fills in what it probes
            facts.update(families.part(ARCH_OF_MACHINE[uname.machine], "host").facts(kvm, system))
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
    record = ARCHES.get(ARCH_OF_MACHINE.get(machine, ""))
    for vm_type, name in record.vm_types if record is not None else DEFAULT_VM_TYPES:
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
