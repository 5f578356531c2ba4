"""hvconf.abi: Linux KVM uapi facts as data, importable by the compiler and the runtime.

Public lookups (ioctl request numbers per arch, caps, exits, struct layouts,
PAPR/ePAPR/x86/s390 hypercalls, the unmerged ePAPR proposal) over TOML tables
in data/ that are loaded lazily on first use. Pure stdlib; never opens
/dev/kvm. Every failed lookup raises AbiError, with a "did you mean" where a
close name exists. Tests: tests/test_abi.py, tests/test_abi_headers.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hvconf.abi.arches import (
    ABI_OF_ARCH,
    ARCHES,
    LAYOUT_OF_ARCH,
    check_arch,
    ioc_layout,
    layout_column,
)
from hvconf.abi.errors import AbiError, by_name_or_number, close_matches, unknown
from hvconf.abi.ioc import decode, encode
from hvconf.abi.rows import (
    CapInfo,
    EpaprToken,
    ExitInfo,
    FieldInfo,
    IoctlInfo,
    KvmFeature,
    PaprHcall,
    ProposedAbi,
    X86Hypercall,
)

if TYPE_CHECKING:
    MAX_HCALL_OPCODE: int

KVMIO = 0xAE

# The table modules (tables, hcalls, proposal) pull in tomllib and read data/;
# each function imports them on first call so `import hvconf.abi` stays minimal.


def ioctl(name: str) -> IoctlInfo:
    """The ioctls.toml row for `name` (e.g. "KVM_RUN")."""
    from hvconf.abi import tables

    try:
        return tables.ioctls()[name]
    except KeyError:
        raise unknown("ioctl", name, tables.ioctls()) from None


def ioctls() -> Mapping[str, IoctlInfo]:
    from hvconf.abi import tables

    return tables.ioctls()


def arg_size(info: IoctlInfo, arch: str) -> int:
    """The _IOC size of `info` on `arch`: sizeof its argument type (0 for _IO)."""
    from hvconf.abi import tables

    if info.direction == "none" or info.arg is None:
        return 0
    if info.struct is not None:
        return struct_size(info.struct, arch)
    try:
        return tables.SCALAR_SIZE[info.arg]
    except KeyError:
        raise AbiError(f"{info.name}: no size known for argument type {info.arg!r}") from None


def request(ioctl_name: str, arch: str) -> int:
    """The 32-bit request number of `ioctl_name` on `arch`, as the header macro computes it."""
    info = ioctl(ioctl_name)
    check_arch(arch)
    if arch not in info.arches:
        where = ", ".join(info.arches) or "no hvconf arch"
        raise AbiError(
            f"{ioctl_name} is not defined for arch {arch} (its uapi headers lack the macro or "
            f"its argument type); defined for: {where}"
        )
    return encode(ioc_layout(arch), info.direction, KVMIO, info.nr, arg_size(info, arch))


def struct_size(struct: str, arch: str) -> int:
    """sizeof(struct `struct`) on `arch` (name without the `struct ` prefix)."""
    from hvconf.abi import tables

    name = struct.removeprefix("struct ")
    if name not in tables.structs():
        raise unknown("struct", struct, tables.structs())
    size = tables.struct_size(name, layout_column(arch))
    if size is None:
        raise AbiError(f"struct {name} is not defined in the {arch} uapi headers")
    return size


def struct_fields(struct: str, arch: str) -> Mapping[str, FieldInfo]:
    """Field name -> offset/size of `struct` on `arch` (dotted names for union members)."""
    from hvconf.abi import tables

    struct_size(struct, arch)  # validates name and presence
    return tables.struct_fields(struct.removeprefix("struct "), layout_column(arch))


def cap(name: str) -> CapInfo:
    """The caps.toml row for a KVM_CAP_* name."""
    from hvconf.abi import tables

    try:
        return tables.caps()[name]
    except KeyError:
        hint = " (it is an unmerged proposal: see hvconf.abi.proposed())" if _is_proposed(name) else ""
        raise unknown("capability", name, tables.caps(), hint.strip()) from None


def caps() -> Mapping[str, CapInfo]:
    from hvconf.abi import tables

    return tables.caps()


def exit_reason(name_or_number: str | int) -> ExitInfo:
    """The KVM_EXIT_* row by name or by kvm_run.exit_reason number."""
    from hvconf.abi import tables

    return by_name_or_number(tables.exits(), name_or_number, lambda row: row.number, "exit reason",
                             "unknown exit reason number {}",
                             lambda name: "(it is an unmerged proposal)" if _is_proposed(name) else "")


def papr_hcall(name_or_opcode: str | int) -> PaprHcall:
    """A PAPR hcall (H_*) by name or opcode."""
    from hvconf.abi import hcalls

    return hcalls.papr_hcall(name_or_opcode)


def papr_hcalls() -> Mapping[str, PaprHcall]:
    from hvconf.abi import hcalls

    return hcalls.papr_hcalls()


def epapr_token(name: str) -> EpaprToken:
    """An ePAPR (EV_*) or KVM-vendor (KVM_HC_*) hypercall as a ppc token row."""
    from hvconf.abi import hcalls

    return hcalls.epapr_token(name)


def x86_hypercall(name: str) -> X86Hypercall:
    """A KVM_HC_* row (generic numbers from linux/kvm_para.h)."""
    from hvconf.abi import hcalls

    return hcalls.x86_hypercall(name)


def x86_hypercalls() -> Mapping[str, X86Hypercall]:
    from hvconf.abi import hcalls

    return hcalls.x86_hypercalls()


def epapr_tokens() -> Mapping[str, EpaprToken]:
    from hvconf.abi import hcalls

    return hcalls.epapr_tokens()


def kvm_feature(name: str) -> KvmFeature:
    """A KVM_FEATURE_* / KVM_HINTS_* bit; accepts "PV_UNHALT", "pv_unhalt", "KVM_FEATURE_PV_UNHALT"."""
    from hvconf.abi import hcalls

    return hcalls.kvm_feature(name)


def proposed(overrides: Path | None = None) -> ProposedAbi:
    """The unmerged ePAPR proposal; numbers only from an `overrides` TOML file.

    Why it has none: docs/kernel-facts.md#the-unmerged-epapr-proposal.
    """
    from hvconf.abi import proposal

    return proposal.proposed(overrides)


def _is_proposed(name: str) -> bool:
    from hvconf.abi import proposal

    return name in proposal.proposed_names()


def names_close_to(kind: str, name: str) -> list[str]:
    """Known names of `kind` that look like `name`, for callers building diagnostics.

    kind: "ioctl", "cap", "exit", "struct", "papr_hcall", "epapr_token",
    "x86_hypercall", "kvm_feature", "arch", "proposed".
    """
    return close_matches(name, _names(kind))


def _names(kind: str) -> list[str]:
    from hvconf.abi import hcalls, proposal, tables

    sources: dict[str, Any] = {
        "ioctl": tables.ioctls,
        "cap": tables.caps,
        "exit": tables.exits,
        "struct": tables.structs,
        "papr_hcall": hcalls.papr_hcalls,
        "epapr_token": hcalls.epapr_tokens,
        "x86_hypercall": hcalls.x86_hypercalls,
        "kvm_feature": hcalls.kvm_features,
        "arch": lambda: ARCHES,
        "proposed": proposal.proposed_names,
    }
    try:
        return list(sources[kind]())
    except KeyError:
        raise unknown("name kind", kind, sources) from None


def __getattr__(attr: str) -> Any:
    # MAX_HCALL_OPCODE lives in papr.toml; read it only when someone asks.
    if attr == "MAX_HCALL_OPCODE":
        from hvconf.abi import hcalls

        return hcalls.max_hcall_opcode()
    raise AttributeError(f"module 'hvconf.abi' has no attribute {attr!r}")


__all__ = [
    "ABI_OF_ARCH",
    "ARCHES",
    "AbiError",
    "CapInfo",
    "EpaprToken",
    "ExitInfo",
    "FieldInfo",
    "IoctlInfo",
    "KVMIO",
    "KvmFeature",
    "LAYOUT_OF_ARCH",
    "MAX_HCALL_OPCODE",
    "PaprHcall",
    "ProposedAbi",
    "X86Hypercall",
    "arg_size",
    "cap",
    "caps",
    "decode",
    "encode",
    "epapr_token",
    "epapr_tokens",
    "exit_reason",
    "ioctl",
    "ioctls",
    "kvm_feature",
    "names_close_to",
    "papr_hcall",
    "papr_hcalls",
    "proposed",
    "request",
    "struct_fields",
    "struct_size",
    "x86_hypercall",
    "x86_hypercalls",
]
