"""What PowerPC asks of a host: whether a Book3S HV host runs hash-MMU guests, for plans and host facts.

KVM_CAP_PPC_ALLOC_HTAB reads 1 even where KVM_PPC_ALLOCATE_HTAB fails (a
nested KVM-HV, which runs radix guests only, answers EOPNOTSUPP), so the
only way to know is to ask: `hash_guests(kvm)` has a scratch VM allocate the
smallest HPT. `check_host(kvm, plan)` refuses a plan that allocates an HPT
on a host that cannot; `facts(kvm, system)` gives the probe
(hvconf/kvm/probe.py) `ppc_mmu` on Book3S hosts. Tests: tests/test_host.py, tests/ppc/.
"""

from __future__ import annotations

import os

from hvconf.kvm.ioctls.errors import KvmError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    from hvconf.contract import Plan
    from hvconf.kvm.ioctls.system import Kvm

KVM_VM_PPC_HV = 1
HTAB_PROBE_ORDER = 18  # PPC_MIN_HPT_ORDER: the smallest table, 256 KiB
BOOK3S_MACHINES = ("ppc64", "ppc64le")


def hash_guests(kvm: Kvm) -> tuple[bool, str]:
    """Whether this Book3S HV host runs hash-MMU (HPT) guests, and what showed it."""
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


def check_host(kvm: Kvm, plan: Plan) -> None:
    """Raise run.HostMismatch for a plan that allocates a hash page table on a host that runs radix guests only."""
    htab = next((s for s in plan.steps if s.ioctl == "KVM_PPC_ALLOCATE_HTAB"), None)
    if htab is None:
        return
    works, how = hash_guests(kvm)
    if not works:
        from hvconf.kvm.run import HostMismatch

        raise HostMismatch(f"this host cannot run hash-MMU guests ({how}; a nested KVM-HV runs radix "
                           f"guests only), and {plan.vm} allocates a hash page table at {htab.source}; "
                           "build it with `mmu radix`")


def facts(kvm: Kvm, system: Mapping[str, int]) -> dict[str, Any]:
    """The PowerPC part of the host facts: the MMUs a Book3S host's guests may use (None on BookE)."""
    if os.uname().machine not in BOOK3S_MACHINES:
        return {"ppc_mmu": None}
    hash_ok, how = hash_guests(kvm)
    return {"ppc_mmu": {"radix": bool(system.get("KVM_CAP_PPC_MMU_RADIX")), "hash": hash_ok, "hash_probe": how}}
