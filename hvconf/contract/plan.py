"""plan.json, the one contract between the compiler and the runtime: format, records, reader, writer.

The compiler (hvconf/emit/plan.py) builds `Step`s and `write`s the JSON object;
the runtime (hvconf/kvm) `read`s it back into immutable records, checking the
shape it relies on (keys, types, fd names) and naming the first bad field in a
PlanError. `args` stay the plan's own mapping, so a dry run prints exactly what
the plan says. Whether a host can run the plan is the runtime's question, not
this module's. The format is documented in README.md#outputs and docs/runtime.md.
Standard library only (json loads only to `dumps`). Tests: tests/kvm/test_runtime.py,
tests/test_plan.py, tests/test_contract.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from hvconf.contract.arches import RECORDS
from hvconf.record import Record

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

FORMAT = 1
HEX = frozenset("0123456789abcdef")
IMAGE_FORMATS = ("flat", "dtb", "elf")  # dtb: a device tree blob, copied as it is like a flat image
CONSOLE_KINDS = ("serial", "hvterm", "byte_channel")  # the families' consoles (hvconf/kvm/*/devices.py)


class PlanError(ValueError):
    """The plan is malformed, or asks for something the runtime does not do; the message is one line."""


def decimal(text: str) -> bool:
    """`text` is a decimal number without sign or leading zeros (what [0-9]+ with no 0-prefix matches)."""
    return text.isascii() and text.isdigit() and (text == "0" or text[0] != "0")


def is_fd(name: str) -> bool:
    """`name` is "system", "vm" or "vcpu:N" (no regular expression: `re` is not otherwise needed to launch)."""
    return name in ("system", "vm") or (name.startswith("vcpu:") and decimal(name[5:]))


class Step(Record):
    """One ioctl of the plan: what plan.json's `steps[index]` holds."""

    __slots__ = ("index", "fd", "ioctl", "request", "args", "source")
    index: int  # its place in the plan: the order the runtime issues steps in
    fd: str  # "system", "vm" or "vcpu:N"
    ioctl: str  # the Linux name, e.g. "KVM_CREATE_VM"
    request: int  # its number on the plan's arch (the runtime checks it is its host's)
    args: Mapping[str, Any]  # typed arguments, as the runtime's step table for the ioctl names them
    source: str | None  # `file:line:col` of the definition that asked for it (relative to the root file)

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
    """A plan as the runtime reads it (the compiler's builder is hvconf/emit/plan.py)."""

    __slots__ = ("vm", "arch", "host_arch", "caps", "unmerged", "images", "console", "steps", "launcher")
    _defaults = {"launcher": MappingProxyType({})}
    vm: str
    arch: str
    host_arch: str
    caps: tuple[CapRequirement, ...]
    unmerged: tuple[str, ...]  # proposed-ABI names the plan needs but has no numbers for
    images: tuple[Image, ...]
    console: Console | None
    steps: tuple[Step, ...]
    launcher: Mapping[str, Any]  # {"papr": ...} etc.: what the arch family's devices serve (default: none)


def read(raw: Mapping[str, Any]) -> Plan:
    """The plan.json object `raw` as records; raises PlanError naming the first bad field."""
    if not isinstance(raw, Mapping):
        raise PlanError("plan: not a JSON object")
    if typed(raw, "format", int, "plan") != FORMAT:
        raise PlanError(f"plan: format {raw['format']} is not supported (this runtime reads format {FORMAT})")
    requires = typed(raw, "requires", Mapping, "plan")
    console = raw.get("console")
    return Plan(
        vm=typed(raw, "vm", str, "plan"),
        arch=typed(raw, "arch", str, "plan"),
        host_arch=typed(requires, "host_arch", str, "plan.requires"),
        caps=tuple(
            CapRequirement(typed(c, "cap", str, where), typed(c, "cap_nr", int, where, optional=True),
                           typed(c, "source", str, where, optional=True))
            for i, c in enumerate(typed(requires, "caps", list, "plan.requires"))
            for where in [f"plan.requires.caps[{i}]"]
        ),
        unmerged=tuple(str(n) for n in requires.get("unmerged", ())),
        images=tuple(_image(i, im) for i, im in enumerate(typed(raw, "images", list, "plan"))),
        console=None if console is None else Console(
            typed(console, "kind", str, "plan.console"), typed(console, "port", int, "plan.console", optional=True),
            typed(console, "reg", int, "plan.console", optional=True),
        ),
        steps=tuple(_step(i, s) for i, s in enumerate(typed(raw, "steps", list, "plan"))),
        launcher=typed(raw, "launcher", Mapping, "plan", optional=True) or {},
    )


def _image(i: int, raw: Any) -> Image:
    where = f"plan.images[{i}]"
    path = typed(raw, "path", str, where, optional=True)
    image = Image(typed(raw, "name", str, where), path, typed(raw, "guest_phys_addr", int, where),
                  typed(raw, "sha256", str, where, optional=path is None), raw.get("hint"),
                  typed(raw, "format", str, where, optional=True) or "flat")  # fmt: skip
    if image.sha256 is not None and not (len(image.sha256) == 64 and HEX.issuperset(image.sha256)):
        raise PlanError(f"{where}: sha256 is not 64 lowercase hex digits")
    if image.format not in IMAGE_FORMATS:
        raise PlanError(f"{where}: format {image.format!r} is not one of {', '.join(IMAGE_FORMATS)}")
    return image


def _step(i: int, raw: Any) -> Step:
    where = f"plan step {i}"
    step = Step(i, typed(raw, "fd", str, where), typed(raw, "ioctl", str, where), typed(raw, "request", int, where),
                typed(raw, "args", Mapping, where), typed(raw, "source", str, where))  # fmt: skip
    if not is_fd(step.fd):
        raise PlanError(f"{where} ({step.source}): fd {step.fd!r} is not system, vm or vcpu:N")
    return step


def typed(raw: Any, key: str, kind: type, where: str, *, optional: bool = False) -> Any:
    """raw[key] checked to be a `kind`, else PlanError naming `where`; with `optional`, a missing key or null
    is None. For the launcher sections the families read too (hvconf/kvm/*/devices.py)."""
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


def write(
    *, vm: str, target: str, arch: str, host_arch: str, caps: Iterable[CapRequirement], unmerged: Iterable[str],
    images: list[dict[str, Any]], console: Mapping[str, Any] | None, launcher: Mapping[str, Any],
    steps: Iterable[Step],
) -> dict[str, Any]:  # fmt: skip
    """The plan.json object, keys in the documented order (README.md#outputs); `abi` is the arch's `_IOC`
    encoding (hvconf/contract/arches.py)."""
    return {
        "format": FORMAT,
        "vm": vm,
        "target": target,
        "arch": arch,
        "abi": RECORDS[arch].ioc,
        "requires": {
            "host_arch": host_arch,
            "caps": [{"cap": c.cap, "cap_nr": c.cap_nr, "source": c.source} for c in caps],
            "unmerged": list(unmerged),
        },
        "images": images,
        "console": console,
        "launcher": launcher,
        "steps": [{"fd": s.fd, "ioctl": s.ioctl, "request": s.request, "args": s.args, "source": s.source}
                  for s in steps],
    }  # fmt: skip


def dumps(data: Mapping[str, Any]) -> str:
    """plan.json's text: the object `write` returns, indented, with a final newline."""
    import json  # here only: a launch reads its plan as a Python literal (launch.py), without json

    return json.dumps(data, indent=2) + "\n"
