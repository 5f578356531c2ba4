"""Assemble a small guest source (`guests/<arch>/*.S`) into a flat binary image.

Runs GNU `as` then `objcopy -O binary -j .text` in a temporary directory and
returns the bytes. The object is never linked: code and data live in .text,
symbols assemble as offsets in the image, and a guest that needs absolute
addresses computes its load address itself (see guests/x86/hello.S). The
source is not run through cpp. Pure apart from the two tools: no KVM, no
files left behind; the tools run with stdin closed, a timeout and rlimits.

A guest source is as hostile as the definition, and `as` reads what its
`.include`/`.incbin` directives name. So: the directives are scanned first and
an outside or special path is refused at its line (hvconf/syntax/paths.py);
`as` runs in an empty private folder with `-I` the source's own folder (its
search order: the working folder, then -I), so relative names mean the source's
folder; `--MD` makes it list every file it read, and an image that read
anything outside the project is discarded (the others are hashed for
manifest.json: `assemble_reads`); and of a failed run's messages only
those about the project's own files are shown, never lines of a file outside.
Tests: tests/test_guest_build.py, tests/test_paths.py, tests/test_hostile_inputs.py,
tests/test_build.py.
"""

from __future__ import annotations

import hashlib
import os
import re
import resource
import struct
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path

from hvconf.diagnostics import Span
from hvconf.record import Record
from hvconf.syntax.gas import MAX_SOURCE_BYTES, scan
from hvconf.syntax.paths import MISSING, OUTSIDE, TOO_LARGE, PathRefused, Scope, folder_of, read_checked, resolve, scope_for


class GuestBuildError(Exception):
    """A guest source could not be turned into an image; the message keeps `as`'s file:line lines
    about the project's files. A refused path has its `kind` (hvconf/syntax/paths.py) and,
    when a directive named it, the `span` of that directive."""

    def __init__(self, message: str, kind: str | None = None, span: Span | None = None) -> None:
        super().__init__(f"{span}: {message}" if span is not None else message)
        self.message = message  # without the place, for a diagnostic located at `span`
        self.kind = kind
        self.span = span


class Toolchain(Record):
    """The tools and flags that build flat images for one guest arch."""

    __slots__ = ("assembler", "objcopy", "flags", "code16_flags")
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


class Assembled(Record):
    """A guest image and the files `as` read besides the source (`--MD`): (path, sha256) each,
    the path as `as` named it (absolute: relative names resolve in the -I folder)."""

    __slots__ = ("image", "reads")
    image: bytes
    reads: tuple[tuple[str, str], ...]


def assemble(source: Path, *, arch: str = "x86_64", code16: bool, scope: Scope | None = None) -> bytes:
    """The flat binary image of `source`; see `assemble_reads`."""
    return assemble_reads(source, arch=arch, code16=code16, scope=scope).image


def assemble_reads(source: Path, *, arch: str = "x86_64", code16: bool, scope: Scope | None = None) -> Assembled:
    """The flat binary image of `source` and what it included; see `_assemble`. `scope` is where
    it and what it includes may be read from (default: its own project). One file shared by many
    VMs of a build is assembled once (keyed by its content and what it includes, so an edit rebuilds)."""
    scope = scope if scope is not None else scope_for(source)
    try:
        _, data = read_checked(source, scope, MAX_SOURCE_BYTES)
        if len(data) > MAX_SOURCE_BYTES:
            raise PathRefused(TOO_LARGE, f"it is more than {MAX_SOURCE_BYTES} bytes")
        text = data.decode("utf-8")
    except PathRefused as err:
        raise GuestBuildError(f"{source}: cannot read guest source: {err.reason}", err.kind) from None
    except UnicodeDecodeError as err:
        raise GuestBuildError(f"{source}: cannot read guest source: {err}") from None
    reads, refused = scan(source, text, scope)
    if refused:  # `check` reports every one; the build stops at the first
        raise GuestBuildError(refused[0].message, refused[0].kind, refused[0].span)
    stamps = tuple(sorted((real, _mtime(real)) for real in reads))
    return _assemble_cached(source, text, arch, code16, scope, stamps)


def _mtime(real: str) -> int:
    try:
        return os.stat(real).st_mtime_ns
    except OSError:
        return -1  # gone since the scan: `as` will say so


@lru_cache(maxsize=16)
def _assemble_cached(source: Path, text: str, arch: str, code16: bool, scope: Scope,
                     stamps: tuple[tuple[str, int], ...]) -> Assembled:
    return _assemble(source, text, arch=arch, code16=code16, scope=scope)


def _assemble(source: Path, text: str, *, arch: str, code16: bool, scope: Scope) -> Assembled:
    """The flat binary image of `source` (its .text section), for `arch`, and what `as` read.

    `code16=True` assembles 16-bit real-mode code, which the source must
    announce with `.code16`. Raises GuestBuildError with the tool's
    messages about files in `scope` (file:line preserved) on any failure,
    and when `as` read a file outside `scope`.
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
        obj, image, deps = Path(tmp) / "guest.o", Path(tmp) / "guest.bin", Path(tmp) / "guest.d"
        cwd = Path(tmp) / "cwd"  # empty: `as` looks for a relative name here first, then in -I
        cwd.mkdir()
        # The checked text on stdin, not the path: what is assembled is what was scanned.
        assembler = [tools.assembler, *flags, "-I", str(folder_of(source)), "--MD", str(deps), "-o", str(obj)]
        _tool(assembler, source, cwd=cwd, scope=scope, text=text)
        reads = _check_reads(_depfile(deps, source), str(obj), cwd, scope, source)
        _check_object(obj.read_bytes(), source)
        _tool([tools.objcopy, "-O", "binary", "-j", ".text", str(obj), str(image)], source, cwd=cwd, scope=scope)
        # objcopy writes nothing for an empty .text
        return Assembled(image.read_bytes() if image.exists() else b"", _hashed(reads, scope, source))


# ---- what `as` read ---------------------------------------------------------------------

def dependencies(depfile: str, target: str) -> list[str]:
    """The files of `as --MD`'s make rule for `target`, unquoted as GNU make reads them: a
    space preceded by 2N+1 backslashes is N backslashes and a space, by 2N backslashes N
    backslashes and a separator; `$$` is `$`; ` \\` + newline continues the line. A newline
    in a name is not quoted by `as`: it splits the name (a refusal, never a miss)."""
    body = depfile.replace(" \\\n", " ")
    prefix = _make_quoted(target) + ":"
    if not body.startswith(prefix):
        raise GuestBuildError(f"unexpected dependency output of `as`: {body[:80]!r}")
    names, current, i, text = [], [], 0, body[len(prefix):]
    while i < len(text):
        c = text[i]
        if c == "\\":
            run = len(text[i:]) - len(text[i:].lstrip("\\"))
            after = text[i + run] if i + run < len(text) else ""
            if after in (" ", "\t"):
                current.append("\\" * (run // 2))
                if run % 2:
                    current.append(after)
                    i += run + 1
                    continue
                i += run
                continue
            current.append("\\" * run)
            i += run
            continue
        if c in " \t\n":
            if current:
                names.append("".join(current))
            current = []
        elif c == "$" and text.startswith("$$", i):
            current.append("$")
            i += 1
        else:
            current.append(c)
        i += 1
    if current:
        names.append("".join(current))
    return names


def _make_quoted(name: str) -> str:
    out = []
    for i, c in enumerate(name):
        if c in " \t":
            out.append("\\" * (len(name[:i]) - len(name[:i].rstrip("\\"))) + "\\")
        out.append("$$" if c == "$" else c)
    return "".join(out)


def _depfile(deps: Path, source: Path) -> str:
    try:
        return deps.read_text(encoding="utf-8", errors="surrogateescape")
    except OSError:  # an assembler without --MD: what it read is unknown, so its image is not used
        raise GuestBuildError(f"{source}: the assembler did not list the files it read (--MD); "
                              "hvconf needs GNU as") from None


def _check_reads(depfile: str, target: str, cwd: Path, scope: Scope, source: Path) -> list[str]:
    """The files `as` read, as it named them (joined to its working folder); refuse the image if
    it read anything outside the project (a name the scan could not see: built by a macro, or
    reached through a symlink swapped in since)."""
    names = [os.path.normpath(cwd / name) for name in dependencies(depfile, target)]
    for name in names:
        try:
            resolve(name, scope)  # relative names are relative to as's working folder
        except PathRefused as err:
            kind = OUTSIDE if err.kind == MISSING else err.kind
            raise GuestBuildError(f"{source}: `as` read '{os.path.relpath(name, cwd)}' ({err.reason}); the image "
                                  "is discarded: name included files with plain strings so that hvconf can check "
                                  "them", kind) from None
    return names


def _hashed(names: list[str], scope: Scope, source: Path) -> tuple[tuple[str, str], ...]:
    """(name, sha256) of each file `as` read, for manifest.json: a change to an included file
    changes the manifest as a change to the source does."""
    limit = TOOL_LIMITS[resource.RLIMIT_FSIZE]  # no image `as` could write holds more of a file
    out = []
    for name in dict.fromkeys(names):  # `as` may list a file twice; its order, once each
        try:
            _, data = read_checked(name, scope, limit)
            if len(data) > limit:
                raise PathRefused(TOO_LARGE, f"it is more than {limit} bytes")
        except PathRefused as err:  # gone or swapped since `as` read it: the image is not used
            raise GuestBuildError(f"{source}: cannot read '{name}' again to record it: {err.reason}",
                                  err.kind) from None
        out.append((name, hashlib.sha256(data).hexdigest()))
    return tuple(out)


_MESSAGE_FILE = re.compile(r"(.*?)(?::\d+:| Assembler messages:$)")
_STDIN = "{standard input}"  # how `as` names what it reads from stdin: the guest source


def _project_messages(stderr: str, cwd: Path, scope: Scope, source: str) -> str:
    """`as`'s messages about files of the project, the guest source named `source`; lines
    about any other file (which could quote it) or about no file are withheld, and counted."""
    shown: list[str] = []
    withheld, verdicts = 0, {_STDIN: True}
    for line in stderr.splitlines():
        m = _MESSAGE_FILE.match(line)
        name = m.group(1) if m else None
        if name is not None and name not in verdicts:
            try:
                resolve(cwd / name, scope)
                verdicts[name] = True
            except PathRefused:
                verdicts[name] = False
        if name is not None and verdicts[name]:
            shown.append(source + line[len(name):] if name == _STDIN else line)
        else:
            withheld += 1
    if withheld:
        shown.append(f"({withheld} lines of `as` output about files outside the project, or no file, withheld: "
                     "name included files with plain strings so that hvconf can check them)")
    return "\n".join(shown)


# A guest source comes with the definition and is as untrusted: `.rept 1000000000`, `.fill 1<<40`
# or `.incbin "/dev/zero"` must end in an error, not a stuck or swapping build.
TOOL_SECONDS = 60
TOOL_LIMITS = {resource.RLIMIT_CPU: 30, resource.RLIMIT_AS: 2 << 30, resource.RLIMIT_FSIZE: 256 << 20}


def _limit_tool() -> None:
    for kind, value in TOOL_LIMITS.items():
        resource.setrlimit(kind, (value, value))


def _tool(argv: list[str], source: Path, *, cwd: Path, scope: Scope, text: str = "") -> None:
    """Run one tool on `text` (its stdin, then closed: `.include "/dev/stdin"` must not wait
    on the user's terminal)."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, errors="replace", check=False, cwd=cwd,
                              input=text, timeout=TOOL_SECONDS, preexec_fn=_limit_tool)
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
        shown = _project_messages(done.stderr.strip(), cwd, scope, str(source))
        raise GuestBuildError(shown or f"{source}: {argv[0]} failed with status {done.returncode}")


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
