"""The runtime's typed, validated view of a plan (plan.json format 1).

`parse(raw)` checks the shape the runtime relies on (keys, types, fd names)
and returns immutable records; `args` stay the plan's own mapping so a
dry run prints exactly what the plan says. It does not judge whether the
host can run the plan (run.py does). Tests: tests/kvm/test_runtime.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from hvconf.record import Record

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from typing import Any

FORMAT = 1
HEX = frozenset("0123456789abcdef")
IMAGE_FORMATS = ("flat", "dtb", "elf")  # dtb: a device tree blob, copied as it is like a flat image


class PlanError(ValueError):
    """The plan is malformed or asks for something this runtime does not do."""


def decimal(text: str) -> bool:
    """`text` is a decimal number without sign or leading zeros (what [0-9]+ with no 0-prefix matches)."""
    return text.isascii() and text.isdigit() and (text == "0" or text[0] != "0")


def is_fd(name: str) -> bool:
    """`name` is "system", "vm" or "vcpu:N" (no regular expression: `re` is not otherwise needed to launch)."""
    return name in ("system", "vm") or (name.startswith("vcpu:") and decimal(name[5:]))


class Step(Record):
    __slots__ = ("index", "fd", "ioctl", "request", "args", "source")
    index: int
    fd: str  # "system", "vm" or "vcpu:N"
    ioctl: str
    request: int
    args: Mapping[str, Any]
    source: str

    @property
    def vcpu_id(self) -> int | None:
        return int(self.fd.split(":")[1]) if self.fd.startswith("vcpu:") else None


class CapRequirement(Record):
    __slots__ = ("cap", "cap_nr", "source")
    cap: str
    cap_nr: int | None  # None: a cap of the unmerged ePAPR proposal, numbered by nobody yet
    source: str | None


class Image(Record):
    __slots__ = ("name", "path", "guest_phys_addr", "sha256", "hint", "format")
    _defaults = {"hint": None, "format": "flat"}
    name: str
    path: str | None  # None: not part of the build (a kernel that was absent); --kernel FILE supplies it
    guest_phys_addr: int
    sha256: str | None
    hint: str | None  # what the definition named, for the error message (default None)
    format: str  # "flat" (default)/"dtb": the bytes at guest_phys_addr; "elf": PT_LOAD segments at their p_paddr


class Console(Record):
    __slots__ = ("kind", "port", "reg")
    _defaults = {"reg": None}
    kind: str
    port: int | None  # x86 serial port; other consoles are hypercall-based
    reg: int | None  # hvterm: the vty's unit address (/vdevice/vty@reg) (default None)


class Plan(Record):
    __slots__ = ("vm", "arch", "host_arch", "caps", "unmerged", "images", "console", "steps", "exit_hypercalls",
                 "launcher")
    _defaults = {"exit_hypercalls": (), "launcher": MappingProxyType({})}
    vm: str
    arch: str
    host_arch: str
    caps: tuple[CapRequirement, ...]
    unmerged: tuple[str, ...]  # proposed-ABI names the plan needs but has no numbers for
    images: tuple[Image, ...]
    console: Console | None
    steps: tuple[Step, ...]
    exit_hypercalls: tuple[str, ...]  # launcher.x86.exit_hypercalls: KVM_HC_* names served here (default ())
    launcher: Mapping[str, Any]  # {"papr": ...} etc.: userspace hypercall handlers (default: none)


def parse(raw: Mapping[str, Any]) -> Plan:
    """The validated plan; raises PlanError naming the first bad field."""
    if not isinstance(raw, Mapping):
        raise PlanError("plan: not a JSON object")
    if _get(raw, "format", int, "plan") != FORMAT:
        raise PlanError(f"plan: format {raw['format']} is not supported (this runtime reads format {FORMAT})")
    requires = _get(raw, "requires", Mapping, "plan")
    console = raw.get("console")
    return Plan(
        vm=_get(raw, "vm", str, "plan"),
        arch=_get(raw, "arch", str, "plan"),
        host_arch=_get(requires, "host_arch", str, "plan.requires"),
        caps=tuple(
            CapRequirement(_get(c, "cap", str, where), _get(c, "cap_nr", int, where, optional=True),
                           _get(c, "source", str, where, optional=True))
            for i, c in enumerate(_get(requires, "caps", list, "plan.requires"))
            for where in [f"plan.requires.caps[{i}]"]
        ),
        unmerged=tuple(str(n) for n in requires.get("unmerged", ())),
        images=tuple(_image(i, im) for i, im in enumerate(_get(raw, "images", list, "plan"))),
        console=None if console is None else Console(
            _get(console, "kind", str, "plan.console"), _get(console, "port", int, "plan.console", optional=True),
            _get(console, "reg", int, "plan.console", optional=True),
        ),
        steps=tuple(_step(i, s) for i, s in enumerate(_get(raw, "steps", list, "plan"))),
        exit_hypercalls=_exit_hypercalls(raw),
        launcher=_get(raw, "launcher", Mapping, "plan", optional=True) or {},
    )


def _exit_hypercalls(raw: Mapping[str, Any]) -> tuple[str, ...]:
    x86 = _get(raw.get("launcher") or {}, "x86", Mapping, "plan.launcher", optional=True) or {}
    names = _get(x86, "exit_hypercalls", list, "plan.launcher.x86", optional=True) or []
    if not all(isinstance(n, str) for n in names):
        raise PlanError(f"plan.launcher.x86: exit_hypercalls should be names, got {names!r}")
    return tuple(names)


def _image(i: int, raw: Any) -> Image:
    where = f"plan.images[{i}]"
    path = _get(raw, "path", str, where, optional=True)
    image = Image(_get(raw, "name", str, where), path, _get(raw, "guest_phys_addr", int, where),
                  _get(raw, "sha256", str, where, optional=path is None), raw.get("hint"),
                  _get(raw, "format", str, where, optional=True) or "flat")  # fmt: skip
    if image.sha256 is not None and not (len(image.sha256) == 64 and HEX.issuperset(image.sha256)):
        raise PlanError(f"{where}: sha256 is not 64 lowercase hex digits")
    if image.format not in IMAGE_FORMATS:
        raise PlanError(f"{where}: format {image.format!r} is not one of {', '.join(IMAGE_FORMATS)}")
    return image


def _step(i: int, raw: Any) -> Step:
    where = f"plan step {i}"
    step = Step(i, _get(raw, "fd", str, where), _get(raw, "ioctl", str, where), _get(raw, "request", int, where),
                _get(raw, "args", Mapping, where), _get(raw, "source", str, where))  # fmt: skip
    if not is_fd(step.fd):
        raise PlanError(f"{where} ({step.source}): fd {step.fd!r} is not system, vm or vcpu:N")
    return step


def _get(raw: Any, key: str, kind: type, where: str, *, optional: bool = False) -> Any:
    """raw[key] checked to be a `kind`; with `optional`, a missing key or null is None."""
    if not isinstance(raw, Mapping):
        raise PlanError(f"{where}: not a JSON object")
    if optional and raw.get(key) is None:
        return None
    if key not in raw:
        raise PlanError(f"{where}: missing {key!r}")
    value = raw[key]
    # bool is an int in Python, never a valid number here
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise PlanError(f"{where}: {key!r} should be {_KIND_NAMES.get(kind, kind.__name__)}, got {value!r}")
    return value


_KIND_NAMES = {int: "an integer", str: "a string", list: "a list", Mapping: "an object"}
