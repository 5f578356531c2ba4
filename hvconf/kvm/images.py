"""Guest images as chunks of guest-physical memory: flat binaries and ELF executables.

`load(plan, base_dir, supplied)` reads each plan image (or the file given
on the command line instead, which is not hashed: 45 MB of vmlinux cost
seconds under emulation), checks the build's sha256, and turns it into
(guest physical address, bytes) chunks: a flat image is one chunk at its
`guest_phys_addr`, an ELF one chunk per PT_LOAD at its p_paddr (a supplied
file that starts with the ELF magic is loaded as ELF). Only a regular file
of at most max(guest memory, 1 GiB) is read (`--guest /dev/zero` used to
read until the OOM killer came), opened O_NONBLOCK so a FIFO cannot block
it; a supplied file's errors name its option. `check_placement`
refuses chunks outside the memory slots or over the areas the runtime
writes itself. Opens no KVM fd. Tests: tests/kvm/test_modes.py.
"""

from __future__ import annotations

import errno
import os
import stat

from hvconf.contract import PlanError
from hvconf.record import Record

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from pathlib import Path

    from hvconf.contract import Image, Plan

try:  # CPython's own SHA-256: hashlib would load OpenSSL's libcrypto first (about 3 ms) to check one image
    from _sha256 import sha256  # type: ignore[import-not-found]  # CPython 3.11
except ImportError:  # pragma: no cover - another Python
    try:
        from _sha2 import sha256  # type: ignore[import-not-found]  # CPython 3.12 on
    except ImportError:
        from hashlib import sha256
ELF_MAGIC = b"\x7fELF"  # elf.MAGIC: elf.py loads only for an ELF image
MIN_IMAGE_LIMIT = 1 << 30  # an ELF file may carry more than the memory it fills (symbols, debug info)
READ_CHUNK = 1 << 20  # what a file that grows (or a /proc file, of size 0) is read in


class Loaded(Record):
    """One image, ready to copy: `chunks` of (guest physical address, bytes); `entry` for ELF."""

    __slots__ = ("name", "chunks", "entry")
    _defaults = {"entry": None}
    name: str
    chunks: tuple[tuple[int, bytes], ...]
    entry: int | None


class ImageOptionError(PlanError):
    """A file given with --kernel/--guest cannot be used: a usage error, not a bad plan."""


def read_image(path: str | os.PathLike[str], limit: int) -> bytes:
    """The bytes of the regular file `path`; OSError (EINVAL, EFBIG) for anything else or more."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        data = b""
        if info.st_size <= limit:
            with open(fd, "rb", closefd=False) as file:
                # read(n) allocates n bytes first: ask for what the file holds, not the limit (1 GiB was a
                # MemoryError on a host with 1 GiB), then for what it grew by after the fstat, up to the limit
                data = file.read(info.st_size)
                while len(data) <= limit and (more := file.read(min(READ_CHUNK, limit + 1 - len(data)))):
                    data += more
        if len(data) > limit or info.st_size > limit:
            raise OSError(errno.EFBIG, f"larger than {limit} bytes, the larger of guest memory and 1 GiB")
        return data
    finally:
        os.close(fd)


def load(plan: Plan, base_dir: str | os.PathLike[str], supplied: Mapping[str, str | Path]) -> list[Loaded]:
    """`base_dir` may be a str: a launcher need not import pathlib (about 5 ms) to say where it is."""
    loaded = []
    limit = max(sum(size for _, size in memory_slots(plan)), MIN_IMAGE_LIMIT)
    for image in plan.images:
        given = supplied.get(image.name)
        if given is None and image.path is None:
            named = f" ({image.hint!r} was missing at build time)" if image.hint else ""
            raise PlanError(f"image {image.name!r} is not part of this build{named}: pass --{image.name} FILE")
        path = given if given is not None else os.path.join(base_dir, str(image.path))
        try:
            data = read_image(path, limit)
        except OSError as err:
            if given is not None:
                raise ImageOptionError(f"argument --{image.name}: cannot read {path}: {err.strerror}") from None
            raise PlanError(f"image {image.name!r}: cannot read {path}: {err.strerror}") from None
        if given is None:  # a file given on the command line has no build hash to match: not hashed
            digest = sha256(data).hexdigest()
            if digest != image.sha256:
                raise PlanError(f"image {image.name!r}: {path} has sha256 {digest}, the plan expects {image.sha256}")
        if image.format == "segments" and given is None:
            loaded.append(Loaded(image.name, _segments(image, data)))
        elif image.format in ("elf", "segments") or (
                (given is not None or image.format == "linux") and data.startswith(ELF_MAGIC)):
            from hvconf.kvm import elf

            try:
                parsed = elf.parse(data, f"image {image.name!r} ({path})", elf.machines_for(plan.arch))
            except elf.ElfError as err:
                raise PlanError(str(err)) from None
            loaded.append(Loaded(image.name, tuple((s.paddr, s.data) for s in parsed.segments), parsed.entry))
        else:
            loaded.append(Loaded(image.name, ((image.guest_phys_addr, data),)))  # "linux", "initrd": the board's
        # family places them (x86: hvconf/kvm/x86/linux.py)
    return loaded


def _segments(image: Image, data: bytes) -> tuple[tuple[int, bytes], ...]:
    """A "segments" image: its PT_LOAD file bytes back to back, each zero-filled up to its memsz (the bss)."""
    chunks, at = [], 0
    for gpa, filesz, memsz in image.segments:
        if at + filesz > len(data):
            raise PlanError(f"image {image.name!r}: its segments need {at + filesz} bytes, the file has {len(data)}")
        chunks.append((gpa, data[at : at + filesz] + bytes(memsz - filesz)))
        at += filesz
    return tuple(chunks)


def memory_slots(plan: Plan) -> list[tuple[int, int]]:
    """(guest_phys_addr, memory_size) of every KVM_SET_USER_MEMORY_REGION step."""
    return [(s.args["guest_phys_addr"], s.args["memory_size"]) for s in plan.steps
            if s.ioctl == "KVM_SET_USER_MEMORY_REGION"]  # fmt: skip


def _span(addr: int, size: int) -> str:
    return f"[{addr:#x}, {addr + size:#x})"


def check_placement(plan: Plan, images: Iterable[Loaded], reserved: Iterable[tuple[int, int, str]]) -> None:
    """Raise PlanError unless every chunk and reserved area lies inside one memory slot, and none overlap.

    `reserved`: (address, size, what) of guest memory the runtime writes (x86 mode tables).
    """
    slots = memory_slots(plan)
    areas = [(a, len(d), f"image {im.name!r}") for im in images for a, d in im.chunks if d]
    areas += [r for r in reserved if r[1]]
    for addr, size, what in areas:
        if not any(start <= addr and addr + size <= start + length for start, length in slots):
            raise PlanError(f"{what} ({size} bytes at {addr:#x}) does not fit inside one memory slot")
    unique = sorted(set(areas))
    for (a, sa, wa), (b, sb, wb) in zip(unique, unique[1:]):
        if b < a + sa:
            raise PlanError(f"{wa} {_span(a, sa)} overlaps {wb} {_span(b, sb)}")
