"""What the compiler and the runtime agree on, written once: the architectures, plan.json, host facts.

- One record per architecture (`Arch`, ARCHES): for each value of the
  language's `arch` keyword, its `family` (the runtime folder that serves it,
  hvconf/kvm/<family>/: docs/runtime.md); `ioc`, the `_IOC` encoding of its
  asm/ioctl.h, "generic" or "powerpc" (docs/kernel-facts.md: PowerPC has 3
  direction bits and a 13-bit size); `layout`, the structs.toml column its
  struct sizes and offsets come from, which is also the cffi declaration
  module hvconf/kvm/ioctls/cdefs/ loads for it; `byteorder`, how its kernel
  lays out kvm_run and every struct it exchanges; `machine`, the `uname -m`
  of the hosts that run its guests (a plan's requires.host_arch); `vm_types`,
  the KVM_CREATE_VM types the host probe asks for. Everything else about an
  arch is derived from ARCHES: hvconf.abi's ARCHES, ABI_OF_ARCH and
  LAYOUT_OF_ARCH, the runtime's host arch, the probe's cap arch.
- plan.json, the compiler's output and the runtime's input: PLAN_FORMAT, the
  `Step` record (the compiler's builder, hvconf/emit/plan.py, makes them too),
  `write_plan` (the JSON object, keys in the documented order) and
  `read_plan`, which checks the shape the runtime relies on (keys, types, fd
  names) and names the first bad field in a PlanError. `args` stay the plan's
  own mapping, so a dry run prints exactly what the plan says. Whether a host
  can run the plan is the runtime's question, not this module's.
- The x86 Linux boot protocol's setup header (`linux_header`): the build
  reads it to say whether a kernel fits, the launcher to load it.
- Host facts (docs/host.md): HOST_FACTS_FORMAT and the keys a family's probe
  fills in; hvconf/kvm/probe.py writes them, hvconf/model/host.py reads them.

Standard library and hvconf/record.py only, one module, cheap to import: every
launch reads it, and it ships with the runtime to hosts that have nothing but
cffi (tests/test_layering.py). plan.json's text is the compiler's to render
(hvconf/emit/plan.py `dumps`).
Tests: tests/test_contract.py, tests/test_plan.py, tests/kvm/test_runtime.py.
"""

from __future__ import annotations

# collections.abc and types re-export these: importing collections costs a launch ~2 ms, types ~0.3 ms
from _collections_abc import Mapping

from hvconf.record import Record, positional

MappingProxyType = type(type.__dict__)  # how Lib/types.py defines it

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any, Literal

    ByteOrder = Literal["little", "big"]


# -- the architectures --


class Arch(Record):
    """One hvconf arch (see the module docstring for each field)."""

    __slots__ = ("name", "family", "ioc", "layout", "byteorder", "machine", "vm_types")
    name: str
    family: str
    ioc: str
    layout: str
    byteorder: ByteOrder
    machine: str
    vm_types: tuple[tuple[int, str], ...]


DEFAULT_VM_TYPES = ((0, "default"),)
# Book3S hosts may have kvm_hv, kvm_pr or both loaded; asking for each type says which.
BOOK3S_VM_TYPES = ((1, "KVM_VM_PPC_HV"), (2, "KVM_VM_PPC_PR"))

# ppc64 and ppc64le share the powerpc64 layout: byte order changes no size or offset.
# ppc-e500 shares it too, although an e500v2 userspace is 32-bit: every struct KVM
# exchanges on powerpc is built from fixed-width __u8/__u16/__u32/__u64 fields (no
# long, no pointers), and the 32-bit PowerPC SysV ABI aligns __u64 to 8 bytes (unlike
# i386, which aligns it to 4), so the padding is the same as on ppc64.
# tests/test_abi_headers.py proves it by compiling every table entry with
# `powerpc64le-linux-gnu-gcc -m32 -mbig-endian`. The two ioctls whose argument is an
# `unsigned long` (KVM_S390_STORE_STATUS, KVM_S390_VCPU_FAULT, s390-only in practice)
# do differ, and ioctls.toml leaves ppc-e500 out of their arches. A 32-bit PowerPC
# host ("ppc") is taken to be an e500: the only 32-bit PowerPC target hvconf has.
ARCHES: dict[str, Arch] = {
    arch.name: arch
    for arch in (
        Arch("x86_64", "x86", "generic", "x86_64", "little", "x86_64", ((0, "KVM_X86_DEFAULT_VM"),)),
        Arch("s390x", "s390", "generic", "s390x", "big", "s390x", DEFAULT_VM_TYPES),
        Arch("ppc64", "powerpc", "powerpc", "powerpc64", "big", "ppc64", BOOK3S_VM_TYPES),
        Arch("ppc64le", "powerpc", "powerpc", "powerpc64", "little", "ppc64le", BOOK3S_VM_TYPES),
        Arch("ppc-e500", "powerpc", "powerpc", "powerpc64", "big", "ppc", DEFAULT_VM_TYPES),
    )
}

# The layout columns, each one struct table and one cffi declaration module.
LAYOUTS: tuple[str, ...] = tuple(dict.fromkeys(arch.layout for arch in ARCHES.values()))
# uname -m -> the hvconf arch a host of that machine runs.
ARCH_OF_MACHINE: dict[str, str] = {arch.machine: arch.name for arch in ARCHES.values()}

# Machines hvconf targets none of, whose KVM caps caps.toml still lists (under these arch
# names): `hvconf host` on such a host reports them.
CAP_ARCH_OF_OTHER_MACHINE: dict[str, str] = {
    "aarch64": "arm64", "riscv64": "riscv", "loongarch64": "loongarch", "mips64": "mips",
}  # fmt: skip


def cap_arch_of_machine(machine: str) -> str | None:
    """The arch name caps.toml rows use for a host of `machine` (uname -m), or None."""
    return ARCH_OF_MACHINE.get(machine) or CAP_ARCH_OF_OTHER_MACHINE.get(machine)


# -- plan.json --

PLAN_FORMAT = 1
HEX = frozenset("0123456789abcdef")
IMAGE_FORMATS = ("flat", "dtb", "elf", "segments", "linux", "initrd")  # dtb: a device tree blob, copied as it is
# like a flat image; linux: a kernel the board loads by its boot protocol (x86: bzImage or ELF vmlinux); initrd: placed
# by the board
CONSOLE_KINDS = ("serial", "hvterm", "byte_channel")  # the families' consoles (hvconf/kvm/*/devices.py)


class PlanError(ValueError):
    """The plan is malformed, or asks for something the runtime does not do; the message is one line."""


def decimal(text: str) -> bool:
    """`text` is a decimal number without sign or leading zeros (what [0-9]+ with no 0-prefix matches)."""
    return text.isascii() and text.isdigit() and (text == "0" or text[0] != "0")


def is_fd(name: str) -> bool:
    """`name` is "system", "vm" or "vcpu:N" (no regular expression: `re` is not otherwise needed to launch)."""
    return name in ("system", "vm") or (name.startswith("vcpu:") and decimal(name[5:]))


@positional  # built per step of every VM: Record's generic constructor was a tenth of planning one
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


@positional
class CapRequirement(Record):
    __slots__ = ("cap", "cap_nr", "source")
    cap: str
    cap_nr: int | None  # None: a cap of the unmerged ePAPR proposal, numbered by nobody yet
    source: str | None


class Image(Record):
    __slots__ = ("name", "path", "guest_phys_addr", "sha256", "hint", "format", "segments")
    _defaults = {"hint": None, "format": "flat", "segments": ()}
    name: str
    path: str | None  # None: not part of the build (a kernel that was absent); --kernel FILE supplies it
    guest_phys_addr: int
    sha256: str | None
    hint: str | None  # what the definition named, for the error message (default None)
    format: str  # "flat" (default)/"dtb": the bytes at guest_phys_addr; "elf": PT_LOAD segments at their p_paddr;
    # "segments": an ELF's PT_LOAD file bytes back to back, loaded as `segments` say
    segments: tuple[tuple[int, int, int], ...]  # "segments": (guest_phys_addr, filesz, memsz) each, in file order


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


def read_plan(raw: Mapping[str, Any]) -> Plan:
    """The plan.json object `raw` as records; raises PlanError naming the first bad field."""
    if not isinstance(raw, Mapping):
        raise PlanError("plan: not a JSON object")
    if typed(raw, "format", int, "plan") != PLAN_FORMAT:
        raise PlanError(f"plan: format {raw['format']} is not supported (this runtime reads format {PLAN_FORMAT})")
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
                  typed(raw, "format", str, where, optional=True) or "flat",
                  _segments(raw, where, path))  # fmt: skip
    if image.sha256 is not None and not (len(image.sha256) == 64 and HEX.issuperset(image.sha256)):
        raise PlanError(f"{where}: sha256 is not 64 lowercase hex digits")
    if image.format not in IMAGE_FORMATS:
        raise PlanError(f"{where}: format {image.format!r} is not one of {', '.join(IMAGE_FORMATS)}")
    return image


def _segments(raw: Any, where: str, path: str | None) -> tuple[tuple[int, int, int], ...]:
    """A "segments" image's [[guest_phys_addr, filesz, memsz], ...]: three u64 each, filesz <= memsz."""
    if raw.get("format") != "segments":
        return ()
    rows = typed(raw, "segments", list, where)
    if not rows or not all(isinstance(r, list) and len(r) == 3 and
                           all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 1 << 64 for v in r)
                           and r[1] <= r[2] for r in rows):  # fmt: skip
        raise PlanError(f"{where}: segments should be [[guest_phys_addr, filesz, memsz], ...] with filesz <= memsz")
    return tuple((r[0], r[1], r[2]) for r in rows)


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


def write_plan(
    *, vm: str, target: str, arch: str, host_arch: str, caps: Iterable[CapRequirement], unmerged: Iterable[str],
    images: list[dict[str, Any]], console: Mapping[str, Any] | None, launcher: Mapping[str, Any],
    steps: Iterable[Step],
) -> dict[str, Any]:  # fmt: skip
    """The plan.json object, keys in the documented order (README.md#outputs); `abi` is the arch's `_IOC`
    encoding (ARCHES)."""
    return {
        "format": PLAN_FORMAT,
        "vm": vm,
        "target": target,
        "arch": arch,
        "abi": ARCHES[arch].ioc,
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


# -- host facts --

HOST_FACTS_FORMAT = 1
HOST_FACTS_FAMILY_KEYS = ("pv_features", "ppc_mmu")  # what a family's probe fills in (null elsewhere), after "proposed"


# -- the x86 Linux boot protocol (Documentation/arch/x86/boot.rst, "The Real-Mode Kernel Header") --

SETUP_HEADER = 0x1F1  # where the setup header starts, in a bzImage and in boot_params
ELF_MAGIC = b"\x7fELF"
BOOT_PROTOCOL_64 = 0x20C  # 2.12: xloadflags, whose XLF_KERNEL_64 says the 64-bit entry exists
XLF_KERNEL_64 = 1


class LinuxHeader(Record):
    """What a bzImage's setup header says: `setup_bytes` (the real-mode part before the
    protected-mode kernel), `header_end` (the header's end offset), `version`, `init_size`
    (memory the kernel needs from its load address), `initrd_addr_max`, `cmdline_size`."""

    __slots__ = ("setup_bytes", "header_end", "version", "init_size", "initrd_addr_max", "cmdline_size")
    setup_bytes: int
    header_end: int
    version: int
    init_size: int
    initrd_addr_max: int
    cmdline_size: int


def _u(data: bytes, offset: int, size: int) -> int:
    return int.from_bytes(data[offset : offset + size], "little")


def linux_header(data: bytes) -> LinuxHeader:
    """The setup header of bzImage `data`; ValueError, in words fit for a diagnostic, for a file
    that is no bzImage with a 64-bit entry (an ELF vmlinux is the caller's other case)."""
    if len(data) < 0x264 or data[0x202:0x206] != b"HdrS" or _u(data, 0x1FE, 2) != 0xAA55:
        raise ValueError("it is neither a bzImage (no 'HdrS' setup header at 0x202) nor an ELF vmlinux")
    version = _u(data, 0x206, 2)
    if version < BOOT_PROTOCOL_64 or not _u(data, 0x236, 2) & XLF_KERNEL_64:
        raise ValueError(f"its boot protocol {version >> 8}.{version & 0xFF} has no 64-bit entry (needs 2.12 "
                         "with XLF_KERNEL_64: Linux 3.8 or later, built for x86_64)")
    setup_sects = data[0x1F1] or 4  # 0 means 4 (boot.rst)
    setup_bytes = (setup_sects + 1) * 512
    if setup_bytes >= len(data):
        raise ValueError(f"its setup header claims {setup_bytes} bytes of real-mode code, more than the file")
    return LinuxHeader(setup_bytes, 0x202 + data[0x201], version, _u(data, 0x260, 4), _u(data, 0x22C, 4),
                       _u(data, 0x238, 4))


def initrd_at(memory_end: int, size: int, header: LinuxHeader | None) -> int:
    """Where the launcher puts an initrd of `size` bytes: as high as RAM and the kernel's
    initrd_addr_max allow, page aligned (as kvmtool and QEMU do). Negative: it does not fit."""
    top = memory_end if header is None else min(memory_end, header.initrd_addr_max + 1)
    return (top - size) & ~0xFFF if top >= size else -1
