"""The target knowledge base: one Target per targets/<name>/ folder, and its loader.

Target joins target.toml with the rows of caps.toml, hcalls.toml and
devices.toml (schemas in target_toml.py) and offers x2y lookups and the hcall
presets. Bad data raises TargetError naming the file and key. Never opens a
device. Tests: tests/test_targets.py.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from functools import cached_property, lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Any

from pydantic import ValidationError

from hvconf.model.target_toml import (
    Cap,
    CapArg,
    CapsFile,
    Console,
    Device,
    DevicesFile,
    FILES,
    Hcall,
    HcallSet,
    HcallsFile,
    PvFeature,
    TargetError,
    TargetSpec,
    _Row,
    _did_you_mean,
)

__all__ = ["Cap", "CapArg", "Console", "FILES", "Hcall", "PvFeature", "Target", "TargetError",
           "load_target", "target_for", "target_names"]


@lru_cache(maxsize=None)
def _papr_names(column: str) -> frozenset[str]:
    """PAPR hcalls whose hvconf.abi `column` (e.g. hv_default) is true. Cached: checking a
    repo asks for the same few sets thousands of times (it was a third of lint time)."""
    from hvconf import abi  # lazy: only sPAPR presets need the PAPR table

    return frozenset(h.name for h in abi.papr_hcalls().values() if getattr(h, column) and not h.platform)


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

    def pv_feature(self, name: str) -> PvFeature | None:
        """The PV feature row for `name` in any spelling users write: the full KVM_FEATURE_
        name, its suffix in either case (pv_unhalt, PV_UNHALT) or an alias (unhalt)."""
        rows = self.name2pv_feature
        return rows.get(name) or rows.get(name.lower()) or rows.get(name.upper())

    @cached_property
    def flavour2caps(self) -> Mapping[str, tuple[Cap, ...]]:
        """The caps offered for each flavour (the checks ask for them a dozen times per VM)."""
        return MappingProxyType({f: tuple(c for c in self.caps if f in (c.flavours or ())) for f in self.flavours})

    @cached_property
    def flavour2cap_names(self) -> Mapping[str, Mapping[str, Cap]]:
        """The caps offered for each flavour, by name (the checks look rows up a dozen times per VM)."""
        return MappingProxyType({f: MappingProxyType({c.name: c for c in caps}) for f, caps in self.flavour2caps.items()})

    def caps_for(self, flavour: str) -> tuple[Cap, ...]:
        """The caps offered for `flavour`."""
        self._check_flavour(flavour)
        return self.flavour2caps[flavour]

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
        return _papr_names(f"{self.abi_flavour[flavour]}_{column}")

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
    placed: list[tuple[str, Console | Device]] = [*((f"console[{c.name}]", c) for c in t.consoles),
                                                  *((f"device[{d.name}]", d) for d in t.devices)]
    for key, part in placed:
        refs += [(df, f"{key}.needs_hcalls", "hcall", part.needs_hcalls, hcalls),
                 (df, f"{key}.needs_sets", "hcall set", part.needs_sets, sets)]
        if part.node and not t.has_device_tree:
            raise TargetError("a device-tree node on a target without a device tree", df, f"{key}.node")
    if f.rma:
        refs.append((tf, "features.rma.cap", "cap", [f.rma.cap], caps))
    if f.rtas:
        refs.append((tf, "features.rtas.hcall", "hcall", [f.rtas.hcall], hcalls))
    if f.hypervisor_node:
        refs.append((tf, "features.hypervisor_node.pvinfo_cap", "cap", [f.hypervisor_node.pvinfo_cap], caps))
        refs += [(tf, f"features.hypervisor_node.flags[{g.name}].hcall", "hcall", [g.hcall], hcalls)
                 for g in f.hypervisor_node.flags]
    if f.sw_tlb:
        refs.append((tf, "features.sw_tlb.cap", "cap", [f.sw_tlb.cap], caps))
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
    sw_tlb = t.features.sw_tlb
    if sw_tlb is not None:
        mmu = t.name2cap[sw_tlb.cap].name2arg.get("mmu")
        if mmu is None or set(sw_tlb.tlb1_entries) != set(mmu.values or {}):
            raise TargetError(f"needs one TLB1 size per `mmu` value of {sw_tlb.cap}", tf,
                              "features.sw_tlb.tlb1_entries")
    for row in t.features.pv_features.rows if t.features.pv_features else ():
        exit_row = t.name2hcall.get(row.requires_exit or "")
        if row.requires_exit and not (exit_row and exit_row.exit_capable):
            raise TargetError(f"{row.requires_exit!r} is not an exit_capable hcall", tf,
                              f"features.pv_features.rows[{row.name}].requires_exit")


def _valid(folder: Path) -> Target | None:
    try:
        return _assemble(folder)
    except TargetError:
        return None


@lru_cache(maxsize=None)
def _packaged() -> Mapping[str, Target]:
    """The packaged targets that validate, through the per-user cache (kbcache.py)."""
    from hvconf.model.kbcache import cached_targets

    root = _root(None)
    return cached_targets(root, target_names(root), FILES, lambda name: _valid(root / name))


def _known(root: Path) -> Mapping[str, Target]:
    """Already validated targets of `root`: the packaged ones (cached per user); none for
    other roots (tests, experiments), whose files are always validated in full."""
    return _packaged() if root == _root(None) else {}


@lru_cache(maxsize=None)
def _load(name: str, root: Path) -> Target:
    known = _known(root).get(name)
    if known is not None:
        return known
    folder = root / name
    if not (folder / "target.toml").is_file():
        raise TargetError(f"unknown target {name!r}" + _did_you_mean(name, target_names(root)))
    return _assemble(folder)


def load_target(name: str, root: Path | None = None) -> Target:
    """The validated target `name` (cached per name and root; the packaged ones per user too)."""
    return _load(name, _root(root))


def target_names(root: Path | None = None) -> tuple[str, ...]:
    """Sorted names of the target folders under `root` (default: hvconf.resources.targets_dir())."""
    base = _root(root)
    return tuple(sorted(p.name for p in base.iterdir() if (p / "target.toml").is_file()))


def target_for(arch: str, flavour: str | None = None, root: Path | None = None) -> str:
    """The target whose target.toml lists `arch` (and `flavour`, when given)."""
    if root is None:  # the packaged targets do not change while hvconf runs: resolve each pair once
        return _packaged_target_for(arch, flavour)
    return _target_for(arch, flavour, _root(root))


@lru_cache(maxsize=None)
def _packaged_target_for(arch: str, flavour: str | None) -> str:
    return _target_for(arch, flavour, _root(None))


def _target_for(arch: str, flavour: str | None, base: Path) -> str:
    validated = _known(base)
    specs: list[TargetSpec] = [validated.get(n) or _spec(base / n) for n in target_names(base)]
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
