"""Hypercall tables: PAPR (papr.toml), ePAPR/KVM-vendor (epapr.toml), x86 (x86.toml), s390 (s390.toml).

Builds frozen rows lazily from the data files (cached) and looks them up by
name or number with "did you mean" errors. It holds no facts of its own and
never decides policy (which hcalls a target enables is hvconf/targets' job).
Tests: tests/test_abi.py, tests/test_abi_headers.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from types import MappingProxyType
from typing import Any

from hvconf.abi.errors import AbiError, by_name_or_number, unknown
from hvconf.abi.rows import EpaprToken, KvmFeature, PaprHcall, X86Hypercall
from hvconf.abi.tables import raw

_FLAVOURS = {None: (False, False), "impl": (True, False), "default": (True, True)}


def _flavour(row: Mapping[str, Any], key: str) -> tuple[bool, bool]:
    try:
        return _FLAVOURS[row.get(key)]
    except KeyError:
        raise AbiError(
            f"hvconf/abi/data/papr.toml: {row.get('name')}: {key} = {row.get(key)!r}, "
            "expected 'impl' or 'default'"
        ) from None


@lru_cache(maxsize=None)
def papr_hcalls() -> Mapping[str, PaprHcall]:
    """Every PAPR hcall by name: opcodes up to MAX_HCALL_OPCODE, then platform ones."""
    data = raw("papr")
    rows: dict[str, PaprHcall] = {}
    for row in data["hcalls"]:
        hv_impl, hv_default = _flavour(row, "hv")
        pr_impl, pr_default = _flavour(row, "pr")
        rows[row["name"]] = PaprHcall(
            name=row["name"],
            opcode=row["opcode"],
            hv_implemented=hv_impl,
            hv_default=hv_default,
            pr_implemented=pr_impl,
            pr_default=pr_default,
            real_mode=row.get("rm", False),
            guard=row.get("guard"),
            note=row.get("note", ""),
        )
    for row in data["platform"]:
        rows[row["name"]] = PaprHcall(
            name=row["name"], opcode=row["opcode"], platform=True, note=row["handled_by"]
        )
    return MappingProxyType(rows)


def max_hcall_opcode() -> int:
    return int(raw("papr")["max_hcall_opcode"])


def papr_return_codes() -> Mapping[str, int]:
    return raw("papr")["return_codes"]


def rtas_in_kernel() -> tuple[str, ...]:
    """RTAS service names KVM can handle itself (CONFIG_KVM_XICS)."""
    return tuple(raw("papr")["rtas"]["in_kernel"])


def papr_hcall(name_or_opcode: str | int) -> PaprHcall:
    return by_name_or_number(papr_hcalls(), name_or_opcode, lambda row: row.opcode, "PAPR hcall",
                             "no PAPR hcall has opcode {:#x}")


@lru_cache(maxsize=None)
def epapr_tokens() -> Mapping[str, EpaprToken]:
    """EV_* (vendor 1) and KVM_HC_* (vendor 42) ePAPR hypercall tokens by name."""
    data = raw("epapr")
    vendors = data["vendors"]
    handled = data["kvm_handles"]
    rows: dict[str, EpaprToken] = {}
    for name, number in data["ev"].items():
        rows[name] = EpaprToken(
            name, vendors["EV_EPAPR_VENDOR_ID"], number, name in handled, handled.get(name, "")
        )
    for name, row in raw("x86")["hypercalls"].items():
        rows[name] = EpaprToken(
            name, vendors["EV_KVM_VENDOR_ID"], row["number"], name in handled, handled.get(name, "")
        )
    unknown_handled = set(handled) - set(rows)
    if unknown_handled:
        raise AbiError(f"hvconf/abi/data/epapr.toml [kvm_handles]: unknown {sorted(unknown_handled)}")
    return MappingProxyType(rows)


def epapr_token(name: str) -> EpaprToken:
    try:
        return epapr_tokens()[name]
    except KeyError:
        raise unknown("ePAPR hypercall", name, epapr_tokens()) from None


def epapr_data() -> Mapping[str, Any]:
    """The whole epapr.toml (vendors, status codes, PVINFO words, QEMU fallback)."""
    return raw("epapr")


@lru_cache(maxsize=None)
def x86_hypercalls() -> Mapping[str, X86Hypercall]:
    rows = {}
    for name, row in raw("x86")["hypercalls"].items():
        rows[name] = X86Hypercall(
            name=name,
            number=row["number"],
            arches=tuple(row["arches"]),
            feature=row.get("feature"),
            deprecated=row.get("deprecated", False),
            exits_to_userspace=row.get("exits_to_userspace", False),
            note=row.get("note", ""),
        )
    return MappingProxyType(rows)


def x86_hypercall(name: str) -> X86Hypercall:
    try:
        return x86_hypercalls()[name]
    except KeyError:
        hint = ""
        from hvconf.abi.proposal import proposed_names

        if name in proposed_names():
            hint = "(it is an unmerged proposal: see hvconf.abi.proposed())"
        raise unknown("KVM hypercall", name, x86_hypercalls(), hint) from None


def x86_data() -> Mapping[str, Any]:
    """The whole x86.toml (return codes, CPUID leaves and signature words)."""
    return raw("x86")


@lru_cache(maxsize=None)
def kvm_features() -> Mapping[str, KvmFeature]:
    data = raw("x86")
    notes = data.get("feature_notes", {})
    rows = {n: KvmFeature(n, bit, "eax", notes.get(n, "")) for n, bit in data["features"].items()}
    rows.update({n: KvmFeature(n, bit, "edx") for n, bit in data["hints"].items()})
    return MappingProxyType(rows)


def kvm_feature(name: str) -> KvmFeature:
    """Accepts the macro name, or its suffix in any case: PV_UNHALT, pv_unhalt."""
    table = kvm_features()
    wanted = name.upper()
    for candidate in (wanted, f"KVM_FEATURE_{wanted}", f"KVM_HINTS_{wanted}"):
        if candidate in table:
            return table[candidate]
    short = [n.removeprefix("KVM_FEATURE_").removeprefix("KVM_HINTS_") for n in table]
    raise unknown("KVM feature", name, [*table, *short])


def s390_diag500() -> Mapping[str, Any]:
    """DIAG 0x500 subcodes by name: number, handled_by ("kernel"/"userspace"), note."""
    return raw("s390")["subcodes"]
