"""The effective hypercall set of a VM: what the kernel handles, what reaches
the launcher, and which ibm,hypertas-functions sets can be advertised.

One resolution feeds the checks, the device tree and the plan, so the three
never disagree. Names resolve per target family through hvconf.abi;
unresolvable references are kept (with their span) for the checks to report.
Tested by tests/test_hcallset.py.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Callable, cast

from hvconf import abi
from hvconf.diagnostics import Span
from hvconf.model import ir
from hvconf.record import Record

if TYPE_CHECKING:
    from hvconf.model.target import Target


class HcallRef(Record):
    __slots__ = ("action", "name", "number", "text", "span")
    action: str  # "enable" | "disable" | "exit"
    name: str | None  # the Linux name, None when the reference resolves to nothing known
    number: int | None  # opcode / token / hypercall nr, where known or written
    text: str  # as written
    span: Span | None


def _papr(ref: str | int) -> tuple[str | None, int | None]:
    try:
        row = abi.papr_hcall(ref)
        return row.name, row.opcode
    except abi.AbiError:
        return None, ref if isinstance(ref, int) else None


def _x86(ref: str | int) -> tuple[str | None, int | None]:
    rows = abi.x86_hypercalls()
    if isinstance(ref, int):
        row = next((r for r in rows.values() if r.number == ref), None)
        return (row.name, ref) if row else (None, ref)
    return (ref, rows[ref].number) if ref in rows else (None, None)


def _epapr(ref: str | int) -> tuple[str | None, int | None]:
    rows = abi.epapr_tokens()
    if isinstance(ref, int):
        row = next((r for r in rows.values() if r.token == ref), None)
        return (row.name, ref) if row else (None, ref)
    if ref in rows:
        return ref, rows[ref].token
    proposed = abi.proposed()
    if any(item.name == ref and item.kind == "hcall" for item in proposed.items):
        return ref, proposed.number(ref)
    return None, None


def _s390(ref: str | int) -> tuple[str | None, int | None]:
    from hvconf.abi import hcalls  # DIAG 0x500 subcodes are not re-exported by hvconf.abi

    rows = hcalls.s390_diag500()
    if isinstance(ref, int):
        return next((name for name, row in rows.items() if row["number"] == ref), None), ref
    return (ref, rows[ref]["number"]) if ref in rows else (None, None)


def _target_rows(target: "Target") -> Callable[[str | int], tuple[str | None, int | None]]:
    def resolve(ref: str | int) -> tuple[str | None, int | None]:
        return (ref, None) if isinstance(ref, str) and ref in target.name2hcall else (None, ref if isinstance(ref, int) else None)

    return resolve


# How each target family names its hypercalls (keyed like targets' platform_module).
_RESOLVERS: dict[str, Callable[[str | int], tuple[str | None, int | None]]] = {
    "ppc64_spapr": _papr,
    "x86_64": _x86,
    "ppc_e500": _epapr,
    "s390x": _s390,
}


class HcallSet:
    """The result of applying a VM's `hcalls` block to its target's defaults (a plain class
    with __slots__, its sets replaced as the block applies: docs/architecture.md#value-types)."""

    __slots__ = ("family", "refs", "preset", "preset_span", "default", "in_kernel", "exits", "changed_by", "irqchip")

    def __init__(self, family: str, refs: list[HcallRef], preset: str | None, preset_span: Span | None,
                 default: frozenset[str], in_kernel: frozenset[str], exits: frozenset[str],
                 changed_by: dict[str, Span | None] | None = None, irqchip: str | None = None) -> None:
        self.family = family
        self.refs = refs
        self.preset = preset
        self.preset_span = preset_span
        self.default = default  # handled in the kernel when the VM is created
        self.in_kernel = in_kernel  # handled in the kernel after the plan's toggles
        self.exits = exits  # routed to the launcher with `exit`
        self.changed_by: dict[str, Span | None] = changed_by if changed_by is not None else {}  # last change
        self.irqchip = irqchip  # the VM's `irqchip` mode: a set served by a device is advertised only with it

    def __eq__(self, other: object) -> bool:  # the same answer, worked out twice
        return type(other) is HcallSet and all(getattr(self, n) == getattr(other, n) for n in self.__slots__)

    __hash__ = None  # type: ignore[assignment]  # mutable, so not hashable

    def toggles(self) -> list[tuple[str, bool, Span | None]]:
        """(hcall, enable?, cause) for each difference from the default, in source order."""
        diff = [(n, True) for n in self.in_kernel - self.default] + [(n, False) for n in self.default - self.in_kernel]
        order = {n: i for i, n in enumerate(self.changed_by)}
        diff.sort(key=lambda item: (order.get(item[0], -1), abi.papr_hcall(item[0]).opcode))
        return [(n, on, self.changed_by.get(n, self.preset_span)) for n, on in diff]

    def handled(self, name: str, target: "Target") -> bool:
        """Whether `name` gets a real answer: from the kernel, or from a launcher handler."""
        row = target.name2hcall.get(name)
        if name in self.in_kernel:
            return True
        return row is not None and row.handler == "launcher" and name in target.launcher.handlers

    def advertised_sets(self, target: "Target") -> tuple[str, ...]:
        """hypertas sets whose every hcall is handled (sPAPR), in the target's order; a set whose
        hcalls a device serves (hcalls.toml `irqchip`) only when the VM has that device."""
        out = []
        for hset in target.hcall_sets:
            if hset.irqchip is not None and hset.irqchip != self.irqchip:
                continue
            members = target.set2hcalls.get(hset.name, ())
            if members and all(self.handled(n, target) for n in members):
                out.append(hset.name)
        return tuple(out)


class _Same:
    """A cache key equal only to a key for the same object: VMs and targets are immutable
    (frozen models) but not hashable (they hold dicts). It keeps the object alive while
    cached, so its id cannot be reused by another object meanwhile."""

    __slots__ = ("obj",)

    def __init__(self, obj: object) -> None:
        self.obj = obj

    def __hash__(self) -> int:
        return id(self.obj)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Same) and other.obj is self.obj


def resolve(vm: ir.Vm, target: "Target") -> HcallSet:
    """The VM's hcall set on `target`. A dozen checks, the device tree and the plan each ask
    for it: it is worked out once per (VM, target) and the same result returned, which
    callers only read. The asker of the moment is answered first by identity: nine checks in
    a row ask for the same VM, and the cache keys cost a fifth of checking a small VM."""
    last = _LAST
    if last[0] is vm and last[1] is target:
        return cast(HcallSet, last[2])
    found = _resolve(_Same(vm), _Same(target))
    _LAST[:] = (vm, target, found)
    return found


_LAST: list[object] = [None, None, None]  # the last (vm, target, result) resolve answered


@lru_cache(maxsize=16)  # a few VMs at a time: the ones being checked or built
def _resolve(vm_key: _Same, target_key: _Same) -> HcallSet:
    vm, target = cast(ir.Vm, vm_key.obj), cast("Target", target_key.obj)
    family = target.platform_module
    resolver = _RESOLVERS.get(family, _target_rows(target))
    refs = []
    for op in vm.hcalls.ops:
        name, number = resolver(op.ref)
        refs.append(HcallRef(op.action, name, number, hex(op.ref) if isinstance(op.ref, int) else op.ref, op.span))
    preset = vm.hcalls.preset or target.default_preset
    if family == "ppc64_spapr" and vm.flavour is not None and vm.flavour in target.abi_flavour:
        default = target.preset("kernel_default", vm.flavour)
        try:
            start = target.preset(preset, vm.flavour) if preset else default
        except Exception:  # unknown preset: the checks report it; start from the kernel's default
            start = default
        implemented = target.kernel_hcalls(vm.flavour)
    else:
        default = start = frozenset(h.name for h in target.hcalls if h.handler == "kernel")
        implemented = start
    changed: dict[str, Span | None] = {}
    if start != default:
        changed.update({n: vm.hcalls.preset_span for n in sorted(start ^ default)})
    in_kernel, exits = set(start), set()
    for ref in refs:
        if ref.name is None:
            continue
        changed.pop(ref.name, None)
        changed[ref.name] = ref.span
        if ref.action == "enable" and ref.name in implemented:
            in_kernel.add(ref.name)
        elif ref.action == "disable":
            in_kernel.discard(ref.name)
        elif ref.action == "exit":
            if family == "ppc64_spapr":
                in_kernel.discard(ref.name)
            exits.add(ref.name)
    return HcallSet(family, refs, preset, vm.hcalls.preset_span, frozenset(default), frozenset(in_kernel),
                    frozenset(exits), changed, vm.irqchip)
