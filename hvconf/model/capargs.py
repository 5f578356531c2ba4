"""Typed cap arguments -> the four u64 `kvm_enable_cap.args` (or an encoder's struct).

One function serves both the checks (which report every problem with its
span) and the plans (which only run once the checks passed). Argument kinds
and ranges are target data (targets/*/caps.toml). Tested by tests/test_capargs.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hvconf import abi
from hvconf.diagnostics import Span, close_matches
from hvconf.model import ir

if TYPE_CHECKING:
    from hvconf.model.target import Cap, CapArg

U64_MAX = (1 << 64) - 1


class Encoded:
    """What one cap's arguments encode to; filled in as they are read, so a plain class
    (docs/architecture.md#value-types)."""

    __slots__ = ("args", "struct", "names", "problems")

    def __init__(self) -> None:
        self.args: list[int] = [0, 0, 0, 0]
        self.struct: dict[str, Any] = {}  # for caps with an `encoder`
        self.names: dict[str, Any] = {}  # named values kept beside the numbers in the plan
        self.problems: list[tuple[Span | None, str, str | None]] = []  # (span, message, help)


def _names_in(value: Any) -> list[Any]:
    return list(value) if isinstance(value, tuple) else [value]


def _one(arg: "CapArg", value: Any, span: Span | None, out: Encoded) -> int | None:
    def bad(message: str, help: str | None = None) -> None:
        out.problems.append((span, f"argument '{arg.name}': {message}", help))

    kind = arg.kind
    if kind == "bool":
        if isinstance(value, bool) or value in (0, 1):
            return int(value)
        if value in ("true", "false", "on", "off", "yes", "no"):
            return int(value in ("true", "on", "yes"))
        bad(f"expected true or false, found {value!r}")
        return None
    if kind in ("enum", "mask"):
        values = arg.values or {}
        total = 0
        for item in _names_in(value):
            if isinstance(item, int) and kind == "mask":
                total |= item
                continue
            if item not in values:
                close = close_matches(str(item), list(values), n=1)
                bad(f"{item!r} is not one of {', '.join(values)}", f"did you mean '{close[0]}'?" if close else None)
                return None
            total |= values[item] if kind == "mask" else 0
            if kind == "enum":
                if isinstance(value, tuple):
                    bad("takes one name, not a list")
                    return None
                return values[item]
        return total
    if kind == "hcall":
        try:
            return abi.papr_hcall(value).opcode
        except abi.AbiError as err:
            bad(str(err))
            return None
    if kind == "hcall_mask":  # x86 KVM_HC_* names (or raw masks) -> OR of 1 << number
        total = 0
        for item in _names_in(value):
            if isinstance(item, int) and not isinstance(item, bool):
                total |= item
                continue
            try:
                total |= 1 << abi.x86_hypercall(str(item)).number
            except abi.AbiError as err:
                bad(str(err))
                return None
        return total
    if kind == "fd":
        bad("file descriptors are created by the launcher and cannot be written in a definition")
        return None
    if not isinstance(value, int) or isinstance(value, bool):  # int, size, hcall_mask as number
        bad(f"expected a number, found {value!r}")
        return None
    if arg.min is not None and value < arg.min or arg.max is not None and value > arg.max:
        bad(f"{value} is outside {arg.min if arg.min is not None else 0}..{arg.max if arg.max is not None else U64_MAX}")
        return None
    if value > U64_MAX:
        bad(f"{value:#x} does not fit in 64 bits")
        return None
    if arg.power_of_two and (value <= 0 or value & (value - 1)):
        bad(f"{value} is not a power of two")
        return None
    return value


def encode(cap: "Cap", use: ir.CapUse) -> Encoded:
    """The numbers `use` stands for; every problem is in `.problems` with its span."""
    out = Encoded()
    given = {a.name: a for a in use.args}
    for name, arg in given.items():
        if name not in cap.name2arg:
            known = list(cap.name2arg)
            close = close_matches(name, known, n=1)
            out.problems.append((arg.span, f"{cap.name} takes no argument '{name}'",
                                 f"did you mean '{close[0]}'?" if close else
                                 (f"its arguments are: {', '.join(known)}" if known else f"{cap.name} takes no arguments")))
    for spec in cap.args:
        if spec.name in given:
            value, span = given[spec.name].value, given[spec.name].span
        elif spec.kind == "fd":
            continue  # filled in by the runtime from the device the plan created
        elif spec.required:
            out.problems.append((use.span, f"{cap.name} needs argument '{spec.name}'", None))
            continue
        elif spec.default is not None:
            value, span = spec.default, use.span
        else:
            continue
        number = _one(spec, value, span, out)
        if number is None:
            continue
        if spec.kind in ("enum", "mask", "hcall", "hcall_mask"):
            out.names[spec.name] = value if not isinstance(value, tuple) else list(value)
        if spec.slot is not None:
            out.args[spec.slot] = number
        else:
            out.struct[spec.name] = number
    return out
