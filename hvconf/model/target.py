"""The target knowledge base: pydantic models of targets/<name>/*.toml and their loader.

Every target folder holds the same four files: target.toml (platform facts),
caps.toml ([[cap]] rows), hcalls.toml ([[set]] and [[hcall]] rows) and
devices.toml ([[console]] and [[device]] rows). Rows name Linux caps, hcalls
and features; their numbers live in hvconf.abi, never here. Bad data raises
TargetError naming the file and key. Never opens a device. Tests: tests/test_targets.py.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Mapping
from functools import cached_property, lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer
from pydantic import ValidationError, model_validator

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
FrozenMap = Annotated[
    Mapping[str, _V], AfterValidator(lambda m: MappingProxyType(dict(m))), PlainSerializer(dict)
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
    hits = difflib.get_close_matches(name, sorted(known), n=3, cutoff=0.5)
    return f"; did you mean {' or '.join(repr(h) for h in hits)}?" if hits else ""


class _Row(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

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
    def _consistent(self) -> CapArg:
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
    managed: Managed | None = None
    proposed: bool = False  # unmerged ABI: number from hvconf.abi.proposed()
    required_for: tuple[str, ...] = ()  # flavours where the plan must enable it (every vCPU for vcpu caps)
    requires: tuple[CapName, ...] = ()  # caps the host must report
    abi_override_reason: str | None = None  # why `scope` differs from hvconf.abi

    @model_validator(mode="after")
    def _consistent(self) -> Cap:
        if self.scope == "check" and (self.args or self.before_vcpus or self.managed or self.required_for):
            raise ValueError("a check-only cap takes no args, before_vcpus, managed or required_for")
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
    def _consistent(self) -> Memory:
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


class Rtas(_Row):
    hcall: str
    node: str
    hypertas_property: str
    token_min: int
    token_max: int
    kernel_tokens: tuple[str, ...] = ()


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


class Modes(_Row):
    modes: tuple[str, ...]
    default: str

    @model_validator(mode="after")
    def _default_known(self) -> Modes:
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


class Features(_Row):
    htab: Htab | None = None
    rma: Rma | None = None
    tce: Tce | None = None
    rtas: Rtas | None = None
    hypervisor_node: HypervisorNode | None = None
    irqchip: Irqchip | None = None
    pit: Pit | None = None
    guest_modes: Modes | None = None
    pv_features: PvFeatures | None = None


class TargetSpec(_Row):
    """target.toml. vm_type: KVM_CREATE_VM type per flavour; abi_flavour: hvconf.abi hv_/pr_ columns."""

    name: str
    description: str
    arch_module: str
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
    features: Features = Features()
    presets: FrozenMap[Preset] = {}
    abi_flavour: FrozenMap[Literal["hv", "pr"]] = {}

    @model_validator(mode="after")
    def _consistent(self) -> TargetSpec:
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


class Target(TargetSpec):
    """One target: target.toml plus the rows of the other three files, with x2y lookups.

    Read-only: mappings are MappingProxyType, rows are frozen.
    """

    caps: tuple[Cap, ...]
    hcall_sets: tuple[HcallSet, ...]
    hcalls: tuple[Hcall, ...]
    consoles: tuple[Console, ...]
    devices: tuple[Device, ...]

    @property
    def has_device_tree(self) -> bool:
        return "dts" in self.outputs

    @cached_property
    def name2cap(self) -> Mapping[str, Cap]:
        return MappingProxyType({c.name: c for c in self.caps})

    @cached_property
    def name2hcall(self) -> Mapping[str, Hcall]:
        return MappingProxyType({h.name: h for h in self.hcalls})

    @cached_property
    def name2set(self) -> Mapping[str, HcallSet]:
        return MappingProxyType({s.name: s for s in self.hcall_sets})

    @cached_property
    def set2hcalls(self) -> Mapping[str, tuple[str, ...]]:
        return MappingProxyType(
            {s.name: tuple(h.name for h in self.hcalls if h.set == s.name) for s in self.hcall_sets}
        )

    @cached_property
    def name2console(self) -> Mapping[str, Console]:
        return MappingProxyType({c.name: c for c in self.consoles})

    @cached_property
    def name2device(self) -> Mapping[str, Device]:
        return MappingProxyType({d.name: d for d in self.devices})

    @cached_property
    def name2pv_feature(self) -> Mapping[str, PvFeature]:
        """PV feature rows by full name, by lower-case suffix (pv_unhalt) and by alias (unhalt)."""
        out: dict[str, PvFeature] = {}
        for row in self.features.pv_features.rows if self.features.pv_features else ():
            short = row.name.removeprefix("KVM_FEATURE_").removeprefix("KVM_HINTS_").lower()
            out.update({row.name: row, short: row, **{a: row for a in row.aliases}})
        return MappingProxyType(out)

    def caps_for(self, flavour: str) -> tuple[Cap, ...]:
        """The caps offered for `flavour`."""
        self._check_flavour(flavour)
        return tuple(c for c in self.caps if flavour in (c.flavours or ()))

    def kernel_hcalls(self, flavour: str) -> frozenset[str]:
        """sPAPR hcalls with an in-kernel implementation for `flavour` (togglable), from hvconf.abi."""
        return self._abi_papr(flavour, "implemented")

    def preset(self, name: str, flavour: str) -> frozenset[str]:
        """The in-kernel hcall set a `preset NAME` means for `flavour`.

        `add` entries the flavour has no in-kernel handler for are dropped (QEMU ignores those EINVALs).
        """
        self._check_flavour(flavour)
        if name not in self.presets:
            hint = _did_you_mean(name, self.presets)
            raise TargetError(f"unknown hcall preset {name!r} for target {self.name}{hint}")
        p = self.presets[name]
        if p.source == "abi":
            base = self._abi_papr(flavour, "default")
        else:
            base = self.preset(p.base, flavour) if p.base else frozenset()
        added = frozenset(p.add) & self.kernel_hcalls(flavour) if p.add else frozenset()
        return (base | added) - frozenset(p.remove)

    def _abi_papr(self, flavour: str, column: str) -> frozenset[str]:
        self._check_flavour(flavour)
        if flavour not in self.abi_flavour:
            raise TargetError(f"target {self.name} has no in-kernel hcall table for flavour {flavour!r}")
        from hvconf import abi  # lazy: only sPAPR presets need the PAPR table

        attr = f"{self.abi_flavour[flavour]}_{column}"
        return frozenset(h.name for h in abi.papr_hcalls().values() if getattr(h, attr) and not h.platform)

    def _check_flavour(self, flavour: str) -> None:
        if flavour not in self.flavours:
            offers = ", ".join(self.flavours)
            hint = _did_you_mean(flavour, self.flavours)
            where = f"target {self.name} (offers: {offers})"
            raise TargetError(f"kvm flavour {flavour!r} is not offered by {where}{hint}")


# ---- loading ----------------------------------------------------------------


def _root(root: Path | None) -> Path:
    if root is not None:
        return Path(root)
    from hvconf.resources import targets_dir  # lazy: resources decides checkout vs wheel

    return targets_dir()


def _loc(loc: tuple[int | str, ...], data: Any) -> str:
    """A pydantic error location as a key path, rows shown by name: cap[KVM_CAP_SW_TLB].args[mmu]."""
    parts, node = [], data
    for part in loc:
        if isinstance(part, int):
            node = node[part] if isinstance(node, list) and part < len(node) else None
            label = node.get("name") if isinstance(node, dict) else None
            parts.append(f"[{label or part}]")
        else:
            node = node.get(part) if isinstance(node, dict) else None
            parts.append(f".{part}")
    return "".join(parts).lstrip(".")


def _parse(model: type[_Row], path: Path) -> Any:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TargetError(f"missing (every target folder holds {', '.join(FILES)})", path) from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise TargetError(str(err), path) from err
    try:
        return model.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        more = f" (and {err.error_count() - 1} more)" if err.error_count() > 1 else ""
        message = first["msg"].removeprefix("Value error, ") + more
        raise TargetError(message, path, _loc(first["loc"], data)) from None


@lru_cache(maxsize=None)
def _spec(folder: Path) -> TargetSpec:
    spec: TargetSpec = _parse(TargetSpec, folder / "target.toml")
    if spec.name != folder.name:
        raise TargetError(f"name {spec.name!r} differs from the folder name", folder / "target.toml", "name")
    return spec


def _assemble(folder: Path) -> Target:
    spec = _spec(folder)
    caps_path, hcalls_path, devices_path = (folder / f for f in FILES[1:])
    caps: CapsFile = _parse(CapsFile, caps_path)
    hfile: HcallsFile = _parse(HcallsFile, hcalls_path)
    dfile: DevicesFile = _parse(DevicesFile, devices_path)
    # Omitted cap flavours mean "all of the target's", made explicit once here.
    rows = tuple(c.model_copy(update={"flavours": c.flavours or spec.flavours}) for c in caps.cap)
    target = Target.model_construct(
        **dict(spec), caps=rows, hcall_sets=hfile.set, hcalls=hfile.hcall,
        consoles=dfile.console, devices=dfile.device,
    )
    _cross_check(target, folder)
    return target


def _cross_check(t: Target, folder: Path) -> None:
    """Every name a row uses must be defined in this target (file, key, kind, names, known)."""
    tf, cf, hf, df = (folder / f for f in FILES)
    f, caps, hcalls, sets = t.features, t.name2cap, t.name2hcall, t.name2set
    for rows, file, key in ((t.caps, cf, "cap"), (t.hcall_sets, hf, "set"), (t.hcalls, hf, "hcall"),
                            (t.consoles, df, "console"), (t.devices, df, "device")):
        seen: set[str] = set()
        for row in rows:
            if row.name in seen:
                raise TargetError(f"duplicate name {row.name!r}", file, f"{key}[{row.name}]")
            seen.add(row.name)
    refs: list[tuple[Path, str, str, Any, Any]] = [
        (tf, "default_console", "console", [t.default_console], t.name2console),
        (tf, "launcher.handlers", "hcall", t.launcher.handlers, hcalls),
        *((tf, f"requires.{k}", "cap", v, caps) for k, v in t.requires.items()),
        *((tf, f"presets.{k}", "hcall", (*p.add, *p.remove), hcalls) for k, p in t.presets.items()),
        *((cf, f"cap[{c.name}].flavours", "flavour", c.flavours or (), t.flavours) for c in t.caps),
        *((cf, f"cap[{c.name}].required_for", "flavour of the cap", c.required_for, c.flavours or ())
          for c in t.caps),
        *((cf, f"cap[{c.name}].requires", "cap", c.requires, caps) for c in t.caps),
        *((hf, f"set[{s.name}].requires", "cap", s.requires, caps) for s in t.hcall_sets),
        *((hf, f"hcall[{h.name}].set", "hcall set", [h.set], sets) for h in t.hcalls if h.set),
        *((hf, f"hcall[{h.name}].requires", "cap", h.requires, caps) for h in t.hcalls),
        *((hf, f"hcall[{h.name}].feature", "PV feature", [h.feature], t.name2pv_feature)
          for h in t.hcalls if h.feature and f.pv_features),
    ]
    for key, row in [*((f"console[{c.name}]", c) for c in t.consoles),
                     *((f"device[{d.name}]", d) for d in t.devices)]:
        refs += [(df, f"{key}.needs_hcalls", "hcall", row.needs_hcalls, hcalls),
                 (df, f"{key}.needs_sets", "hcall set", row.needs_sets, sets)]
        if row.node and not t.has_device_tree:
            raise TargetError("a device-tree node on a target without a device tree", df, f"{key}.node")
    if f.rma:
        refs.append((tf, "features.rma.cap", "cap", [f.rma.cap], caps))
    if f.rtas:
        refs.append((tf, "features.rtas.hcall", "hcall", [f.rtas.hcall], hcalls))
    if f.hypervisor_node:
        refs.append((tf, "features.hypervisor_node.pvinfo_cap", "cap", [f.hypervisor_node.pvinfo_cap], caps))
        refs += [(tf, f"features.hypervisor_node.flags[{g.name}].hcall", "hcall", [g.hcall], hcalls)
                 for g in f.hypervisor_node.flags]
    if f.irqchip:
        refs.append((tf, "features.irqchip.requires", "irqchip mode", f.irqchip.requires, f.irqchip.modes))
        refs += [(tf, f"features.irqchip.requires.{k}", "cap", v, caps)
                 for k, v in f.irqchip.requires.items()]
    if f.pit:
        refs += [(tf, "features.pit.requires", "cap", f.pit.requires, caps),
                 (tf, "features.pit.irqchip_modes", "irqchip mode", f.pit.irqchip_modes,
                  f.irqchip.modes if f.irqchip else ())]
    for file, key, kind, names, known in refs:
        for name in names:
            if name not in known:
                raise TargetError(f"unknown {kind} {name!r}" + _did_you_mean(name, known), file, key)
    _check_meaning(t, tf, hf)


def _check_meaning(t: Target, tf: Path, hf: Path) -> None:
    """Rules beyond references: handlers exist, sets are not empty, flags match their hcalls."""
    for s in t.hcall_sets:
        if not t.set2hcalls[s.name]:
            raise TargetError("no [[hcall]] row belongs to this set", hf, f"set[{s.name}]")
    for h in t.hcalls:
        if h.handler == "launcher" and h.name not in t.launcher.handlers:
            message = "handler is launcher but target.toml [launcher.handlers] lacks it"
            raise TargetError(message, hf, f"hcall[{h.name}]")
    for flag in t.features.hypervisor_node.flags if t.features.hypervisor_node else ():
        if flag.proposed != t.name2hcall[flag.hcall].proposed:
            key = f"features.hypervisor_node.flags[{flag.name}]"
            raise TargetError(f"proposed must match hcall {flag.hcall}", tf, key)
    for row in t.features.pv_features.rows if t.features.pv_features else ():
        exit_row = t.name2hcall.get(row.requires_exit or "")
        if row.requires_exit and not (exit_row and exit_row.exit_capable):
            raise TargetError(f"{row.requires_exit!r} is not an exit_capable hcall", tf,
                              f"features.pv_features.rows[{row.name}].requires_exit")


@lru_cache(maxsize=None)
def _load(name: str, root: Path) -> Target:
    folder = root / name
    if not (folder / "target.toml").is_file():
        raise TargetError(f"unknown target {name!r}" + _did_you_mean(name, target_names(root)))
    return _assemble(folder)


def load_target(name: str, root: Path | None = None) -> Target:
    """The validated target `name` (cached per name and root)."""
    return _load(name, _root(root))


def target_names(root: Path | None = None) -> tuple[str, ...]:
    """Sorted names of the target folders under `root` (default: hvconf.resources.targets_dir())."""
    base = _root(root)
    return tuple(sorted(p.name for p in base.iterdir() if (p / "target.toml").is_file()))


def target_for(arch: str, flavour: str | None = None, root: Path | None = None) -> str:
    """The target whose target.toml lists `arch` (and `flavour`, when given)."""
    base = _root(root)
    specs = [_spec(base / n) for n in target_names(base)]
    by_arch = [s for s in specs if arch in s.arches]
    if not by_arch:
        known = sorted({a for s in specs for a in s.arches})
        raise TargetError(f"unknown arch {arch!r} (known: {', '.join(known)})" + _did_you_mean(arch, known))
    if flavour is None:
        if len(by_arch) > 1:
            names = ", ".join(s.name for s in by_arch)
            raise TargetError(f"arch {arch!r} needs a kvm flavour to pick between {names}")
        return by_arch[0].name
    for spec in by_arch:
        if flavour in spec.flavours:
            return spec.name
    offered = sorted({f for s in by_arch for f in s.flavours})
    elsewhere = [a for s in specs if flavour in s.flavours for a in s.arches]
    hint = f"; {flavour} is for {' or '.join(elsewhere)}" if elsewhere else _did_you_mean(flavour, offered)
    where = f"arch {arch} (offers: {', '.join(offered)})"
    raise TargetError(f"kvm flavour {flavour!r} is not offered for {where}{hint}")
