"""The row schemas of targets/<name>/*.toml (pydantic, frozen, extra="forbid").

Every target folder holds the same four files: target.toml (platform facts),
caps.toml ([[cap]] rows), hcalls.toml ([[set]] and [[hcall]] rows) and
devices.toml ([[console]] and [[device]] rows). Rows name Linux caps, hcalls
and features; their numbers live in hvconf.abi, never here. The assembled
Target and its loader are in target.py. Tests: tests/test_targets.py.
"""

# No `from __future__ import annotations`: pydantic would evaluate every field annotation
# string when a model class is made: 5 ms of a cold `hvconf check`, with the IR's (ir.py).

import re
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, WrapSerializer
from pydantic import model_validator
from hvconf.diagnostics import close_matches

FILES: tuple[str, ...] = ("target.toml", "caps.toml", "hcalls.toml", "devices.toml")

Scope = Literal["vm", "vcpu", "check"]  # which fd KVM_ENABLE_CAP takes; check = CHECK_EXTENSION only
# int/bool/size: one value; enum: one name of `values`; mask: names of `values` OR-ed;
# hcall: one hcall name -> its number; hcall_mask: hcall names -> 1 << number;
# fd: filled in by the runtime from a device the plan created.
ArgKind = Literal["int", "bool", "enum", "mask", "hcall", "hcall_mask", "size", "fd"]
# kernel: KVM serves it (where implemented and enabled), else H_FUNCTION-style refusal;
# launcher: the launcher's userspace handler; none: nobody, the guest sees "unimplemented".
Handler = Literal["kernel", "launcher", "none"]
Output = Literal["dts", "dtb", "plan", "launcher"]
# Language constructs that write a cap for the user (who must not write it directly).
Managed = Literal["hcalls", "enforce", "irqchip"]

_V = TypeVar("_V")
# Serialised as a dict, values through this field's own schema: with defer_build, a row class
# that was never validated has no serializer of its own to fall back on.
FrozenMap = Annotated[
    Mapping[str, _V], AfterValidator(lambda m: MappingProxyType(dict(m))),
    WrapSerializer(lambda m, handler: handler(dict(m))),
]

_SUFFIX = {"": 0, "K": 10, "M": 20, "G": 30, "T": 40}


def _size(value: Any) -> Any:
    """'256M' -> 268435456; ints pass through (pydantic then type-checks)."""
    if isinstance(value, str):
        m = re.fullmatch(r"\s*(0x[0-9a-fA-F]+|\d+)\s*([KMGT]?)\s*", value)
        if not m:
            raise ValueError(f"{value!r} is not a size like 4096, 0x1000, 64K, 256M, 4G")
        return int(m.group(1), 0) << _SUFFIX[m.group(2)]
    return value


Size = Annotated[int, BeforeValidator(_size), Field(ge=0)]
CapName = Annotated[str, Field(pattern=r"^KVM_CAP_[A-Z0-9_]+$")]


class TargetError(Exception):
    """Target data is missing or malformed, or a target/arch/flavour/preset name is unknown."""

    def __init__(self, message: str, file: Path | None = None, key: str = "") -> None:
        self.file, self.key = file, key
        where = f"{file}: " if file else ""
        super().__init__(f"{where}{key + ': ' if key else ''}{message}")


def _did_you_mean(name: str, known: Any) -> str:
    hits = close_matches(name, sorted(known), n=3, cutoff=0.5)
    return f"; did you mean {' or '.join(repr(h) for h in hits)}?" if hits else ""


class _Row(BaseModel):
    # defer_build: a schema is built on first validation only. The packaged targets usually
    # come validated from the per-user cache (kbcache.py) and never need one.
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    doc: str = ""  # every row and table may say where its facts come from


# ---- caps.toml -------------------------------------------------------------


class CapArg(_Row):
    """One typed argument of a cap; `slot` is its index in kvm_enable_cap.args (None with an encoder)."""

    name: str
    kind: ArgKind
    slot: int | None = Field(None, ge=0, le=3)
    values: FrozenMap[int] | None = None
    min: int | None = None
    max: int | None = None
    power_of_two: bool = False
    required: bool = False
    default: int | bool | str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> "CapArg":
        if (self.values is not None) != (self.kind in ("enum", "mask")):
            raise ValueError("`values` is required for enum/mask args and only for them")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} > max {self.max}")
        if self.kind == "enum" and self.default is not None and self.default not in (self.values or {}):
            raise ValueError(f"default {self.default!r} is not one of {sorted(self.values or {})}")
        if self.required and self.default is not None:
            raise ValueError("a required arg has no default")
        return self


class Cap(_Row):
    """A KVM_CAP_* the target offers. `flavours` is filled with all target flavours when omitted."""

    name: CapName
    scope: Scope
    flavours: tuple[str, ...] | None = None
    args: tuple[CapArg, ...] = ()
    encoder: Literal["sw_tlb"] | None = None  # struct built in code; args then have no slots
    before_vcpus: bool = False
    vm_wide: bool = False  # a vcpu-fd cap whose effect is the whole VM: without `on`, enabled once, on vCPU 0
    managed: Managed | None = None
    proposed: bool = False  # unmerged ABI: number from hvconf.abi.proposed()
    required_for: tuple[str, ...] = ()  # flavours where the plan must enable it (every vCPU for vcpu caps)
    requires: tuple[CapName, ...] = ()  # caps the host must report
    abi_override_reason: str | None = None  # why `scope` differs from hvconf.abi

    @model_validator(mode="after")
    def _consistent(self) -> "Cap":
        if self.scope == "check" and (self.args or self.before_vcpus or self.managed or self.required_for):
            raise ValueError("a check-only cap takes no args, before_vcpus, managed or required_for")
        if self.vm_wide and self.scope != "vcpu":
            raise ValueError("vm_wide is for caps issued on a vcpu fd; a vm cap is VM-wide anyway")
        names = [a.name for a in self.args]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate arg names in {names}")
        slots = [a.slot for a in self.args]
        if self.encoder is None and None in slots:
            raise ValueError("every arg needs a slot unless the cap has an encoder")
        if self.encoder is not None and any(s is not None for s in slots):
            raise ValueError(f"encoder {self.encoder!r} builds the struct: args take no slot")
        if len({s for s in slots if s is not None}) != len([s for s in slots if s is not None]):
            raise ValueError(f"two args share a slot: {slots}")
        return self

    @cached_property
    def name2arg(self) -> Mapping[str, CapArg]:
        return MappingProxyType({a.name: a for a in self.args})


class CapsFile(_Row):
    cap: tuple[Cap, ...]


# ---- hcalls.toml -----------------------------------------------------------


class HcallSet(_Row):
    """An ibm,hypertas-functions string; its hcalls are the rows naming it."""

    name: Annotated[str, Field(pattern=r"^hcall-[a-z0-9-]+$")]
    default: bool = True  # advertised unless the guest definition drops it
    requires: tuple[CapName, ...] = ()
    irqchip: str | None = None  # advertised only with this `irqchip` mode: the device that serves its hcalls


class Hcall(_Row):
    """A hypercall the platform uses. `feature` gates x86 hcalls (KVM_FEATURE_*)."""

    name: Annotated[str, Field(pattern=r"^[A-Z][A-Z0-9_]+$")]
    set: str | None = None
    handler: Handler
    feature: str | None = None
    exit_capable: bool = False  # may be forwarded to the launcher (x86 KVM_CAP_EXIT_HYPERCALL)
    deprecated: bool = False
    proposed: bool = False
    foreign_arch: str | None = None  # number owned by another arch: using it here is an error
    requires: tuple[CapName, ...] = ()


class HcallsFile(_Row):
    set: tuple[HcallSet, ...] = ()
    hcall: tuple[Hcall, ...] = ()


# ---- devices.toml ----------------------------------------------------------


class Console(_Row):
    name: str
    node: str | None = None  # device-tree path, targets with a device tree only
    compatible: tuple[str, ...] = ()
    device_type: str | None = None
    reg: int | None = None
    stdout_path: bool = False  # /chosen stdout-path points at `node`
    io_port: int | None = None
    exit: str | None = None  # KVM_EXIT_* the launcher serves it on
    needs_hcalls: tuple[str, ...] = ()
    needs_sets: tuple[str, ...] = ()
    proposed: bool = False
    supported: bool = True  # False: can be planned, the runtime cannot serve it


class Device(_Row):
    name: str
    kind: Literal["bus", "interrupt_controller", "firmware", "timer"]
    node: str | None = None
    compatible: tuple[str, ...] = ()
    device_type: str | None = None
    needs_hcalls: tuple[str, ...] = ()
    needs_sets: tuple[str, ...] = ()
    requires: tuple[CapName, ...] = ()


class DevicesFile(_Row):
    console: tuple[Console, ...]
    device: tuple[Device, ...] = ()


# ---- target.toml -----------------------------------------------------------


class Memory(_Row):
    granularity: Size
    min: Size

    @model_validator(mode="after")
    def _consistent(self) -> "Memory":
        g = self.granularity
        if g <= 0 or g & (g - 1) or self.min % g:
            raise ValueError(f"granularity {g:#x} must be a power of two dividing min {self.min:#x}")
        return self


class Limits(_Row):
    max_vcpus: int = Field(ge=1)
    threads_per_core_max: int | None = Field(None, ge=1)
    threads_power_of_two: bool = False


class Launcher(_Row):
    """What serves hypercalls the kernel passes to userspace: handlers maps hcall -> behaviour."""

    supported: bool = True
    exit: str
    exit_proposed: bool = False
    unknown: str  # what any other hcall gets
    handlers: FrozenMap[str] = {}


class Preset(_Row):
    """An in-kernel hcall set: `abi` = the flavour's default-on set; else base + add - remove."""

    source: Literal["abi", "list"] = "list"
    base: str | None = None
    add: tuple[str, ...] = ()
    remove: tuple[str, ...] = ()


class Htab(_Row):
    flavours: tuple[str, ...]
    order_min: int
    order_max: int
    auto_shift: int  # auto order = clamp(log2(pow2ceil(RAM)) - auto_shift, min, max)
    default: Literal["auto"] | int = "auto"


class Rma(_Row):
    status: Literal["obsolete", "supported"]
    cap: CapName
    refuse_value: int


class Tce(_Row):
    page_shift_min: int
    page_shift_max: int
    legacy_page_shift: int
    legacy_window_max: Size
    liobn_bits: int
    dma_window_cells: int
    vio_liobn_base: int
    pci_liobn_base: int
    pci_window_bits: int  # the window number's bits at the bottom of a PCI LIOBN
    pci_mem32_bus: int  # where a PHB's 32-bit MMIO window starts on its bus; it ends at 4 GiB

    def phb(self, liobn: int) -> int | None:
        """The PHB index a PCI LIOBN names (QEMU SPAPR_PCI_LIOBN); None for a VIO LIOBN."""
        return (liobn - self.pci_liobn_base) >> self.pci_window_bits if liobn >= self.pci_liobn_base else None


class Rtas(_Row):
    hcall: str
    node: str
    hypertas_property: str
    token_min: int
    token_max: int
    kernel_tokens: tuple[str, ...] = ()


class Boot(_Row):
    """Where the platform puts what a kernel boots from (hvconf/platforms/<platform>.py places it)."""

    initrd_align: Size  # the initrd goes at the kernel's end (its memsz) rounded up to this
    initrd_default: Size  # ... or here when the kernel's size is unknown at build time (missing)
    rtas_blob: tuple[int, ...] = ()  # the RTAS entry's instruction words (big-endian), where there is one


class HypervisorFlag(_Row):
    name: str
    property: str
    hcall: str
    proposed: bool = False


class HypervisorNode(_Row):
    path: str
    compatible: tuple[str, ...]
    instructions_property: str
    instructions_max_bytes: int
    pvinfo_cap: CapName
    instructions: FrozenMap[str] = {}  # SW_TLB mmu -> hvconf.abi epapr [pvinfo] sequence name
    instructions_fallback: str | None = None  # sequence when neither host nor MMU is known
    flags: tuple[HypervisorFlag, ...] = ()


class SwTlb(_Row):
    """The shared software TLB: `cap` (its `mmu` arg names the MMU) and TLB1's size per MMU."""

    cap: CapName
    tlb1_entries: FrozenMap[int]  # `mmu` name -> entries of the fully associative TLB1 (1..64)

    @model_validator(mode="after")
    def _in_range(self) -> "SwTlb":
        bad = {k: v for k, v in self.tlb1_entries.items() if not 1 <= v <= 64}
        if bad:
            raise ValueError(f"TLB1 holds 1 to 64 entries (arch/powerpc/kvm/e500_mmu.c), not {bad}")
        return self


class Modes(_Row):
    modes: tuple[str, ...]
    default: str
    real_reach: int | None = None  # guest_modes: the highest load address + 1 a real-mode guest can start at

    @model_validator(mode="after")
    def _default_known(self) -> "Modes":
        if self.default not in self.modes:
            raise ValueError(f"default {self.default!r} is not one of {list(self.modes)}")
        return self


class Irqchip(Modes):
    split_routes: int | None = None
    requires: FrozenMap[tuple[CapName, ...]] = {}


class Pit(Modes):
    irqchip_modes: tuple[str, ...] = ()
    requires: tuple[CapName, ...] = ()


class PvFeature(_Row):
    name: str
    advertisable: bool
    aliases: tuple[str, ...] = ()
    requires_exit: str | None = None  # hcall that must be forwarded before advertising
    not_with_disable_exits: tuple[str, ...] = ()


class PvFeatures(_Row):
    rows: tuple[PvFeature, ...]


class LinuxBoot(_Row):
    """Booting a Linux kernel without firmware (x86: boot_params, Documentation/arch/x86/boot.rst):
    where the launcher puts the kernel and what the kernel reads before it runs."""

    kernel_at: int  # the protected-mode kernel's load address
    zero_page: int  # boot_params; the stack grows down from here
    cmdline_at: int  # the NUL-terminated command line, cmdline_max bytes at most
    cmdline_max: int  # with its NUL: Linux's COMMAND_LINE_SIZE
    memory_max: int  # one slot from 0 must end below the in-kernel IOAPIC and local APIC windows
    brand: str  # CPUID 0x80000002-4, which KVM_GET_SUPPORTED_CPUID leaves out
    serial_irq: int  # the ISA interrupt of the serial console (COM1)
    mptable_at: int  # the MP table of a guest with more than one vCPU (in the BIOS area the e820 map reserves)
    max_cpus: int  # what an MP table can name: 8-bit APIC ids, one of them the IOAPIC's, 0xFF broadcast


class Features(_Row):
    htab: Htab | None = None
    rma: Rma | None = None
    tce: Tce | None = None
    rtas: Rtas | None = None
    hypervisor_node: HypervisorNode | None = None
    sw_tlb: SwTlb | None = None
    irqchip: Irqchip | None = None
    pit: Pit | None = None
    boot: Boot | None = None
    guest_modes: Modes | None = None
    pv_features: PvFeatures | None = None
    linux_boot: LinuxBoot | None = None


class TargetSpec(_Row):
    """target.toml. vm_type: KVM_CREATE_VM type per flavour; abi_flavour: hvconf.abi hv_/pr_ columns."""

    name: str
    description: str
    platform_module: str
    arches: tuple[str, ...] = Field(min_length=1)
    flavours: tuple[str, ...] = Field(min_length=1)
    default_flavour: str
    uapi: Literal["generic", "powerpc"]
    vm_type: FrozenMap[int]
    outputs: tuple[Output, ...]
    no_device_tree: str | None = None
    default_console: str
    default_preset: str | None = None
    memory: Memory
    limits: Limits
    launcher: Launcher
    requires: FrozenMap[tuple[CapName, ...]] = {}
    # A factory, not a Features() instance: validating one at import built its schema (and loaded
    # pydantic's plugin loader) in every process, and a constructed one has no serializer for JSON Schema.
    features: Features = Field(default_factory=Features)
    presets: FrozenMap[Preset] = {}
    abi_flavour: FrozenMap[Literal["hv", "pr"]] = {}

    @model_validator(mode="after")
    def _consistent(self) -> "TargetSpec":
        flavours = set(self.flavours)
        if self.default_flavour not in flavours:
            raise ValueError(f"default_flavour {self.default_flavour!r} is not in flavours")
        if set(self.vm_type) != flavours:
            raise ValueError(f"vm_type must give one type per flavour {sorted(flavours)}")
        has_dt = "dts" in self.outputs
        if ("dtb" in self.outputs) != has_dt or has_dt == (self.no_device_tree is not None):
            raise ValueError("outputs list dts and dtb together, or neither plus a no_device_tree reason")
        if self.features.htab and not set(self.features.htab.flavours) <= flavours:
            raise ValueError("features.htab.flavours must be target flavours")
        for name, preset in self.presets.items():
            if preset.base is not None and preset.base not in self.presets:
                raise ValueError(f"preset {name!r}: unknown base {preset.base!r}")
            if preset.source == "abi" and set(self.abi_flavour) != flavours:
                raise ValueError(f"preset {name!r} comes from hvconf.abi: abi_flavour must map every flavour")
            _preset_chain(self.presets, name)
        if self.default_preset is not None and self.default_preset not in self.presets:
            raise ValueError(f"default_preset {self.default_preset!r} is not a preset")
        return self


def _preset_chain(presets: Mapping[str, Preset], name: str) -> list[str]:
    chain = [name]
    while (base := presets[chain[-1]].base) is not None:
        if base in chain:
            raise ValueError(f"preset cycle: {' -> '.join(chain + [base])}")
        chain.append(base)
    return chain
