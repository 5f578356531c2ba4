"""Frozen row types for the hvconf.abi tables (one Record per table kind).

Rows are plain immutable values built by hvconf.abi.tables / hvconf.abi.hcalls
from the TOML files in data/; they hold no behaviour beyond small derived
properties and never touch the filesystem. Tests: tests/test_abi.py.
"""

from __future__ import annotations

from hvconf.record import Record


class IoctlInfo(Record):
    __slots__ = ("name", "nr", "direction", "arg", "by_value", "fds", "arches", "note")
    _defaults = {"note": ""}
    name: str
    nr: int
    direction: str  # "none" | "r" | "w" | "rw", as the macro declares it
    arg: str | None  # "struct kvm_regs", "__u64", ... (its size is the _IOC size)
    by_value: str | None  # C type of an integer argument of an _IO ioctl
    fds: tuple[str, ...]  # "system" | "vm" | "vcpu" | "device"
    arches: tuple[str, ...]  # hvconf arches whose headers define it
    note: str

    @property
    def struct(self) -> str | None:
        """Argument struct name without the `struct ` prefix, if the argument is a struct."""
        if self.arg and self.arg.startswith("struct "):
            return self.arg.removeprefix("struct ")
        return None


class FieldInfo(Record):
    __slots__ = ("name", "offset", "size")
    name: str  # dotted for union/nested members: "io.port"
    offset: int
    size: int | None  # None for a flexible array member


class CapInfo(Record):
    __slots__ = ("name", "number", "enable", "arches", "doc", "since", "args", "note")
    _defaults = {"since": None, "args": "", "note": ""}
    name: str
    number: int
    enable: str  # "vm" | "vcpu" | "check" (check-only: KVM_ENABLE_CAP refuses it)
    arches: tuple[str, ...]  # hvconf arch names plus other Linux arches ("arm64", ...)
    doc: str
    since: str | None  # kernel version that added it, when newer than the 6.1 headers
    args: str
    note: str


class ExitInfo(Record):
    __slots__ = ("name", "number", "member", "since", "note")
    _defaults = {"since": None, "note": ""}
    name: str
    number: int
    member: str | None  # kvm_run exit-union member carrying the data
    since: str | None
    note: str


class PaprHcall(Record):
    __slots__ = ("name", "opcode", "hv_implemented", "hv_default", "pr_implemented", "pr_default", "real_mode",
                 "guard", "platform", "note")
    _defaults = {"hv_implemented": False, "hv_default": False, "pr_implemented": False, "pr_default": False,
                 "real_mode": False, "guard": None, "platform": False, "note": ""}
    name: str
    opcode: int
    hv_implemented: bool  # kvmppc_hcall_impl_hv() says yes
    hv_default: bool  # in book3s_hv.c default_hcall_list[]
    pr_implemented: bool  # kvmppc_hcall_impl_pr()
    pr_default: bool  # in book3s_pr_papr.c default_hcall_list[]
    real_mode: bool  # HV: served from hcall_real_table
    guard: str | None  # "tce" (CONFIG_SPAPR_TCE_IOMMU) | "xics" (CONFIG_KVM_XICS)
    platform: bool  # above MAX_HCALL_OPCODE: never gated by the enable bitmap
    note: str

    @property
    def bit(self) -> int:
        """Index in kvm->arch.enabled_hcalls (opcode / 4)."""
        return self.opcode // 4


class EpaprToken(Record):
    __slots__ = ("name", "vendor", "number", "kvm_handles", "note")
    _defaults = {"note": ""}
    name: str
    vendor: int
    number: int
    kvm_handles: bool  # kvmppc_kvm_pv() implements it; else EV_UNIMPLEMENTED in-kernel
    note: str

    @property
    def token(self) -> int:
        """_EV_HCALL_TOKEN(vendor, number): vendor in bits 16..31, function in 0..15."""
        return (self.vendor << 16) | self.number


class X86Hypercall(Record):
    __slots__ = ("name", "number", "arches", "feature", "deprecated", "exits_to_userspace", "note")
    _defaults = {"feature": None, "deprecated": False, "exits_to_userspace": False, "note": ""}
    name: str
    number: int
    arches: tuple[str, ...]  # Linux arches the number is meant for ("x86", "ppc", "mips")
    feature: str | None  # KVM_FEATURE_* gating it (with KVM_CAP_ENFORCE_PV_FEATURE_CPUID)
    deprecated: bool
    exits_to_userspace: bool  # may be forwarded via KVM_CAP_EXIT_HYPERCALL
    note: str


class KvmFeature(Record):
    __slots__ = ("name", "bit", "register", "note")
    _defaults = {"note": ""}
    name: str  # full macro name, KVM_FEATURE_* or KVM_HINTS_*
    bit: int
    register: str  # "eax" (features) | "edx" (hints) of CPUID 0x40000001
    note: str

    @property
    def mask(self) -> int:
        return 1 << self.bit


class ProposedItem(Record):
    __slots__ = ("name", "kind", "number", "note")
    _defaults = {"note": ""}
    name: str
    kind: str  # "cap" | "exit" | "hcall" | "dt_property" | "struct"
    number: int | None  # None: never assigned upstream (unless an override file supplies it)
    note: str


class ProposedAbi(Record):
    __slots__ = ("status", "source", "items", "overrides")
    _defaults = {"overrides": None}
    status: str  # "unmerged"
    source: str
    items: tuple[ProposedItem, ...]
    overrides: str | None  # path of the user file that supplied numbers, if any

    def item(self, name: str) -> ProposedItem:
        for it in self.items:
            if it.name == name:
                return it
        from hvconf.abi.errors import unknown

        raise unknown("proposed ABI name", name, [i.name for i in self.items])

    def number(self, name: str) -> int | None:
        return self.item(name).number

    @property
    def complete(self) -> bool:
        """True when every numbered item (cap/exit/hcall) has a number."""
        return all(i.number is not None for i in self.items if i.kind in ("cap", "exit", "hcall"))
