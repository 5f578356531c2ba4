"""Assemble a small guest source (`guests/<arch>/*.S`) into a flat binary image.

Runs GNU `as` then `objcopy -O binary -j .text` in a temporary directory and
returns the bytes. The object is never linked: code and data live in .text,
symbols assemble as offsets in the image, and a guest that needs absolute
addresses computes its load address itself (see guests/x86/hello.S). The
source is not run through cpp. Pure apart from the two tools: no KVM, no
files left behind; the tools run with stdin closed, a timeout and rlimits.
Tests: tests/test_guest_build.py, tests/test_hostile_inputs.py.
"""

from __future__ import annotations

import re
import resource
import struct
import subprocess
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from hvconf.syntax.loader import read_regular


class GuestBuildError(Exception):
    """A guest source could not be turned into an image; the message keeps `as`'s file:line lines."""


@dataclass(frozen=True)
class Toolchain:
    """The tools and flags that build flat images for one guest arch."""

    assembler: str
    objcopy: str
    flags: tuple[str, ...]
    code16_flags: tuple[str, ...] | None  # None: the arch has no 16-bit mode


ARCH2TOOLCHAIN: dict[str, Toolchain] = {
    "x86_64": Toolchain("as", "objcopy", ("--64",), ("--32",)),
    # Debian's binutils-powerpc64le-linux-gnu (pulled in by gcc-powerpc64le-linux-gnu)
    "ppc64le": Toolchain("powerpc64le-linux-gnu-as", "powerpc64le-linux-gnu-objcopy",
                         ("-a64", "-mlittle", "-mpower9", "-mregnames"), None),
}

# A 16-bit image assembled without `.code16` would be 32-bit code run in real mode.
_CODE16 = re.compile(r"^\s*\.code16(gcc)?\b", re.MULTILINE)

_SHF_ALLOC = 0x2
_SHT_SYMTAB = 2


def assemble(source: Path, *, arch: str = "x86_64", code16: bool) -> bytes:
    """The flat binary image of `source`; see `_assemble`. One file shared by many VMs of
    a build is assembled once (keyed by its content too, so an edited file is rebuilt)."""
    try:
        text = read_regular(source, MAX_SOURCE_BYTES).decode("utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise GuestBuildError(f"{source}: cannot read guest source: {err}") from None
    return _assemble_cached(source, text, arch, code16)


@lru_cache(maxsize=16)
def _assemble_cached(source: Path, text: str, arch: str, code16: bool) -> bytes:
    return _assemble(source, text, arch=arch, code16=code16)


def _assemble(source: Path, text: str, *, arch: str, code16: bool) -> bytes:
    """The flat binary image of `source` (its .text section), for `arch`.

    `code16=True` assembles 16-bit real-mode code, which the source must
    announce with `.code16`. Raises GuestBuildError with the tool's
    messages (file:line preserved) on any failure.
    """
    tools = ARCH2TOOLCHAIN.get(arch)
    if tools is None:
        raise GuestBuildError(f"{source}: no guest toolchain for arch {arch!r} (known: {', '.join(ARCH2TOOLCHAIN)})")
    if code16:
        if tools.code16_flags is None:
            raise GuestBuildError(f"{source}: arch {arch} has no 16-bit mode")
        if not _CODE16.search(text):
            raise GuestBuildError(f"{source}: 16-bit guest source has no `.code16` directive")
        flags = tools.code16_flags
    else:
        flags = tools.flags
    with tempfile.TemporaryDirectory(prefix="hvconf-guest-") as tmp:
        obj, image = Path(tmp) / "guest.o", Path(tmp) / "guest.bin"
        _tool([tools.assembler, *flags, "-o", str(obj), str(source)], source)
        _check_object(obj.read_bytes(), source)
        _tool([tools.objcopy, "-O", "binary", "-j", ".text", str(obj), str(image)], source)
        # objcopy writes nothing for an empty .text
        return image.read_bytes() if image.exists() else b""


# A guest source comes with the definition and is as untrusted: `.rept 1000000000`, `.fill 1<<40`
# or `.incbin "/dev/zero"` must end in an error, not a stuck or swapping build.
TOOL_SECONDS = 60
MAX_SOURCE_BYTES = 16 << 20
TOOL_LIMITS = {resource.RLIMIT_CPU: 30, resource.RLIMIT_AS: 2 << 30, resource.RLIMIT_FSIZE: 256 << 20}


def _limit_tool() -> None:
    for kind, value in TOOL_LIMITS.items():
        resource.setrlimit(kind, (value, value))


def _tool(argv: list[str], source: Path) -> None:
    try:
        # stdin: `.include "/dev/stdin"` must not wait on the user's terminal.
        done = subprocess.run(argv, capture_output=True, text=True, errors="replace", check=False,
                              stdin=subprocess.DEVNULL, timeout=TOOL_SECONDS, preexec_fn=_limit_tool)
    except FileNotFoundError:
        raise GuestBuildError(f"{source}: {argv[0]!r} not found; install GNU binutils for the guest's "
                              "arch (Debian: binutils, binutils-powerpc64le-linux-gnu)") from None
    except subprocess.TimeoutExpired:
        raise GuestBuildError(f"{source}: {argv[0]} ran for more than {TOOL_SECONDS} s") from None
    if done.returncode < 0:
        raise GuestBuildError(f"{source}: {argv[0]} was stopped by signal {-done.returncode} "
                              f"(limits: {TOOL_LIMITS[resource.RLIMIT_CPU]} s of CPU, "
                              f"{TOOL_LIMITS[resource.RLIMIT_FSIZE] >> 20} MiB of output)")
    if done.returncode != 0:
        raise GuestBuildError(done.stderr.strip() or f"{source}: {argv[0]} failed with status {done.returncode}")


def _check_object(elf: bytes, source: Path) -> None:
    # The image is .text only and unlinked, so data in other sections would be
    # silently dropped and references to undefined symbols silently zero.
    sections = _sections(elf)
    names = _strings(elf, sections[_u16(elf, 0x3E if _is64(elf) else 0x32)])
    extra = sorted(
        _cstr(names, s["name"])
        for s in sections
        if s["flags"] & _SHF_ALLOC and s["size"] and _cstr(names, s["name"]) != ".text"
    )
    if extra:
        raise GuestBuildError(f"{source}: guest images are .text only; move {', '.join(extra)} into .text")
    undefined = sorted(_undefined_symbols(elf, sections))
    if undefined:
        raise GuestBuildError(f"{source}: undefined symbols {', '.join(undefined)} (guest images are not linked)")


def _is64(elf: bytes) -> bool:
    if elf[:4] != b"\x7fELF" or elf[5] != 1:
        raise GuestBuildError("assembler output is not a little-endian ELF object")
    return elf[4] == 2


def _u16(elf: bytes, off: int) -> int:
    return struct.unpack_from("<H", elf, off)[0]


def _sections(elf: bytes) -> list[dict[str, int]]:
    wide = _is64(elf)
    shoff = struct.unpack_from("<Q" if wide else "<I", elf, 0x28 if wide else 0x20)[0]
    entsize, count = _u16(elf, 0x3A if wide else 0x2E), _u16(elf, 0x3C if wide else 0x30)
    layout = "<IIQQQQIIQQ" if wide else "<IIIIIIIIII"
    keys = ("name", "type", "flags", "addr", "offset", "size", "link", "info", "align", "entsize")
    return [dict(zip(keys, struct.unpack_from(layout, elf, shoff + i * entsize))) for i in range(count)]


def _strings(elf: bytes, section: dict[str, int]) -> bytes:
    return elf[section["offset"] : section["offset"] + section["size"]]


def _cstr(table: bytes, off: int) -> str:
    return table[off : table.index(b"\0", off)].decode()


def _undefined_symbols(elf: bytes, sections: list[dict[str, int]]) -> list[str]:
    wide = _is64(elf)
    found = []
    for sec in sections:
        if sec["type"] != _SHT_SYMTAB:
            continue
        names = _strings(elf, sections[sec["link"]])
        for off in range(sec["offset"] + sec["entsize"], sec["offset"] + sec["size"], sec["entsize"]):
            # st_name is first in both layouts; st_shndx is at 6 (64-bit) or 14 (32-bit)
            name, shndx = _u16(elf, off) | (_u16(elf, off + 2) << 16), _u16(elf, off + (6 if wide else 14))
            if shndx == 0 and name:
                found.append(_cstr(names, name))
    return found
