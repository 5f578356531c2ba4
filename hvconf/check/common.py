"""Helpers the check modules share: "did you mean", cap coverage per fd, and
how a VM's hcall references relate to its target's hypercall namespace.

Pure functions over the IR and target data; no rule lives here and nothing
is reported from here (the topic modules decide codes and wording).
Tested through tests/test_checks.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Iterable, Sequence

from hvconf import abi
from hvconf.diagnostics import close_matches
from hvconf.model import ir

if TYPE_CHECKING:
    from hvconf.model.target import Cap, Hcall, Target


def close_to(name: str, known: Iterable[str], *more: Iterable[str]) -> str | None:
    """The best-looking name from `known` (then from `more`), or None."""
    for pool in (known, *more):
        names = sorted(set(pool))
        hits = close_matches(name, names, n=1, cutoff=0.6)
        if not hits:  # case-insensitive second try: `h_cede`, `kvm_cap_ppc_papr`
            upper = {n.upper(): n for n in names}
            hits = [upper[h] for h in close_matches(name.upper(), upper, n=1, cutoff=0.6)]
        if hits:
            return hits[0]
    return None


def did_you_mean(name: str, known: Iterable[str], *more: Iterable[str]) -> str | None:
    hit = close_to(name, known, *more)
    return f"did you mean '{hit}'?" if hit else None


# ---- caps -------------------------------------------------------------------


def offered(target: "Target", flavour: str | None) -> Mapping[str, "Cap"]:
    """Cap rows of the target offered for the VM's flavour, by name (made once per target)."""
    return target.flavour2cap_names.get(flavour or "", _NONE)


_NONE: Mapping[str, "Cap"] = MappingProxyType({})


def fd_kind(use: ir.CapUse, row: "Cap") -> str:
    """`vm` or `vcpu`: the fd kind the statement asks for (its own scope when unwritten)."""
    if use.scope is None:
        return row.scope
    return "vm" if use.scope == "vm" else "vcpu"


def vcpu_count(vm: ir.Vm, target: "Target") -> int:
    """The vCPUs a plan could create: the IR allows 2^32 - 1, and a set of that many fds
    would take minutes and gigabytes; `vcpus-too-many` reports the excess."""
    return min(vm.vcpus, target.limits.max_vcpus)


def vcpu_list(numbers: Sequence[int], most: int = 8) -> str:
    """vCPU numbers for a message: the first `most`, then how many more (a VM may have 2,048)."""
    shown = ", ".join(map(str, numbers[:most]))
    return f"{shown} and {len(numbers) - most} more" if len(numbers) > most else shown


def fds(use: ir.CapUse, row: "Cap", vcpus: int) -> set[str]:
    """The fds a cap statement enables the cap on ("vm", "vcpu:0", ...)."""
    if fd_kind(use, row) == "vm":
        return {"vm"}
    if use.scope == "vcpu":
        return {f"vcpu:{use.vcpu}"} if use.vcpu is not None and use.vcpu < vcpus else set()
    if row.vm_wide and use.scope is None:  # once for the whole VM, on the first vCPU
        return {"vcpu:0"} if vcpus else set()
    return {f"vcpu:{i}" for i in range(vcpus)}


def usable_caps(vm: ir.Vm, target: "Target") -> list[tuple[ir.CapUse, "Cap"]]:
    """The cap statements a plan can issue by hand: offered for the flavour, not
    check-only, not managed, and written for the fd kind the cap takes."""
    rows = offered(target, vm.flavour)
    out = []
    for use in vm.caps:
        row = rows.get(use.name)
        if row is None or row.scope == "check" or row.managed or fd_kind(use, row) != row.scope:
            continue
        out.append((use, row))
    return out


def enabled_fds(vm: ir.Vm, target: "Target", cap: str) -> set[str]:
    """Every fd on which `cap` ends up enabled by the VM's own statements."""
    vcpus = vcpu_count(vm, target)
    return {fd for use, row in usable_caps(vm, target) if use.name == cap for fd in fds(use, row, vcpus)}


def cap_enabled(vm: ir.Vm, target: "Target", cap: str) -> bool:
    return bool(enabled_fds(vm, target, cap))


def missing_caps(vm: ir.Vm, target: "Target", needed: Iterable[str]) -> list[str]:
    """Caps from `needed` that the VM must enable itself but does not.

    Check-only caps are host requirements (the plan records them), not statements.
    """
    out = []
    for name in needed:
        row = target.name2cap.get(name)
        if row is not None and row.scope == "check":
            continue
        if not cap_enabled(vm, target, name):
            out.append(name)
    return out


# ---- hypercall namespaces -------------------------------------------------------


def toggles_hcalls(target: "Target") -> bool:
    """sPAPR-style targets switch in-kernel handling per hcall (KVM_CAP_PPC_ENABLE_HCALL).

    Exactly the targets whose data maps flavours onto hvconf.abi's in-kernel tables.
    """
    return bool(target.abi_flavour)


# Which Linux arch tag (hvconf.abi x86.toml `arches`) a target family answers to.
_ABI_ARCH = {"x86_64": "x86", "ppc_e500": "ppc", "ppc64_spapr": "ppc", "s390x": "s390"}
_ARCH_LABEL = {"x86": "an x86 KVM hypercall (arch x86_64)", "ppc": "an ePAPR KVM hypercall (arch ppc-e500)",
               "mips": "a MIPS KVM hypercall (no hvconf target: MIPS KVM answers -KVM_ENOSYS)"}


def _s390_names() -> list[str]:
    from hvconf.abi import hcalls  # s390 subcodes are not re-exported by hvconf.abi

    return list(hcalls.s390_diag500())


# Each target family's own hypercall names (for "did you mean" and to recognise foreign ones).
_FAMILY_NAMES = {
    "ppc64_spapr": ("a PAPR hcall (arch ppc64/ppc64le, sPAPR)", lambda: list(abi.papr_hcalls())),
    "ppc_e500": ("an ePAPR hcall (arch ppc-e500)", lambda: [n for n in abi.epapr_tokens() if n.startswith("EV_")]),
    "s390x": ("a DIAGNOSE 0x500 subcode (arch s390x)", _s390_names),
}


def native_names(target: "Target") -> list[str]:
    """Hypercall names a VM of this target may write."""
    names = list(target.name2hcall)
    family = target.platform_module
    if family in _FAMILY_NAMES:
        names += _FAMILY_NAMES[family][1]()
    arch = _ABI_ARCH.get(family)
    names += [n for n, row in abi.x86_hypercalls().items() if arch in row.arches and family != "ppc64_spapr"]
    return [n for n in dict.fromkeys(names) if not foreign_label(n, target)]


def foreign_label(name: str, target: "Target") -> str | None:
    """What `name` is when it belongs to another architecture than `target`'s, else None."""
    row: "Hcall | None" = target.name2hcall.get(name)
    if row is not None:
        return _ARCH_LABEL.get(row.foreign_arch, f"a {row.foreign_arch} hypercall") if row.foreign_arch else None
    family = target.platform_module
    kvm_row = abi.x86_hypercalls().get(name)
    if kvm_row is not None:
        if family == "ppc64_spapr":  # sPAPR takes PAPR hcalls only; KVM_HC_* tokens are ePAPR/x86
            return _ARCH_LABEL.get(kvm_row.arches[0], "a KVM hypercall")
        if _ABI_ARCH.get(family) not in kvm_row.arches:
            return _ARCH_LABEL.get(kvm_row.arches[0], f"a {kvm_row.arches[0]} KVM hypercall")
        return None
    for other, (label, names) in _FAMILY_NAMES.items():
        if other != family and name in names():
            return label
    return None
