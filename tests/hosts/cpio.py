"""A Linux initramfs writer and reader: cpio "newc" (070701), no root, no cpio(1).

Device nodes such as dev/console are archive entries, so no mknod is needed.
Every name and file body is padded to 4 bytes, so archives concatenate
(the kernel unpacks them in turn); `pad(n)` is the zero padding a compressed
archive of n bytes needs before an uncompressed one. It writes no absolute
paths and follows no symlinks. Tests: tests/hosts/test_emulated.py.
"""

from __future__ import annotations

import gzip
import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

MAGIC = b"070701"
TRAILER = "TRAILER!!!"
# c_ino, c_mode, c_uid, c_gid, c_nlink, c_mtime, c_filesize, c_devmajor, c_devminor,
# c_rdevmajor, c_rdevminor, c_namesize, c_check: 13 fields of 8 hex digits after the magic
FIELDS = 13
HEADER_SIZE = len(MAGIC) + 8 * FIELDS


class Sink(Protocol):
    def write(self, data: bytes, /) -> object: ...


@dataclass(frozen=True)
class Entry:
    """One archive member. `name` is relative ("bin/busybox"); `mode` includes the file type."""

    name: str
    mode: int
    data: bytes = b""
    rdev: tuple[int, int] = (0, 0)
    mtime: int = 0

    @property
    def kind(self) -> str:
        return stat.filemode(self.mode)[0]  # '-', 'd', 'l', 'c', 'b'


def pad(size: int) -> int:
    """Zero bytes that bring `size` to a multiple of 4 (newc alignment)."""
    return -size % 4


def directory(name: str, perm: int = 0o755) -> Entry:
    return Entry(name, stat.S_IFDIR | perm)


def device(name: str, kind: str, major: int, minor: int, perm: int = 0o600) -> Entry:
    """A character ("c") or block ("b") device node."""
    return Entry(name, {"c": stat.S_IFCHR, "b": stat.S_IFBLK}[kind] | perm, rdev=(major, minor))


def tree(root: Path, prefix: str = "") -> Iterator[Entry]:
    """Entries for everything under `root` (sorted, parents first), named under `prefix`.
    Regular files, directories and symlinks only; file bodies are read lazily, one at a time."""
    base = prefix.strip("/")
    if base:
        yield directory(base)
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel = Path(dirpath).relative_to(root)
        for name in sorted(filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]):
            path = Path(dirpath, name)
            entry = _entry(path, _join(base, rel / name))
            if entry is not None:
                yield entry
        for name in dirnames:
            if not os.path.islink(os.path.join(dirpath, name)):
                yield directory(_join(base, rel / name), os.lstat(os.path.join(dirpath, name)).st_mode & 0o7777)


def _join(base: str, rel: Path) -> str:
    return f"{base}/{rel.as_posix()}" if base else rel.as_posix()


def _entry(path: Path, name: str) -> Entry | None:
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        return Entry(name, stat.S_IFLNK | 0o777, os.readlink(path).encode())
    if stat.S_ISREG(st.st_mode):
        return Entry(name, stat.S_IFREG | (st.st_mode & 0o7777), path.read_bytes())
    return None  # sockets, fifos: nothing an initramfs needs


def header(entry: Entry, ino: int) -> bytes:
    name = entry.name.encode() + b"\0"
    is_dir = stat.S_ISDIR(entry.mode)
    # nlink 1 for files: with nlink >= 2 the kernel would try to hard-link equal inode numbers
    fields = (ino, entry.mode, 0, 0, 2 if is_dir else 1, entry.mtime, len(entry.data), 0, 0,
              entry.rdev[0], entry.rdev[1], len(name), 0)
    head = MAGIC + b"".join(b"%08X" % f for f in fields) + name
    return head + b"\0" * pad(len(head))


def write_to(out: Sink, entries: Iterable[Entry], first_ino: int = 1) -> int:
    """Write `entries` and the trailer to `out`; returns the bytes written (a multiple of 4)."""
    written = 0
    ino = first_ino
    for entry in _with_trailer(entries):
        chunk = header(entry, ino) + entry.data + b"\0" * pad(len(entry.data))
        out.write(chunk)
        written += len(chunk)
        ino += 1
    return written


def _with_trailer(entries: Iterable[Entry]) -> Iterator[Entry]:
    yield from entries
    yield Entry(TRAILER, 0)


def write(path: Path, entries: Iterable[Entry], compress: bool = False) -> None:
    """Write an archive file; `compress` gzips it (level 1: the guest decompresses under emulation)."""
    with open(path, "wb") as raw:
        if compress:
            with gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=1, mtime=0) as out:
                write_to(out, entries)
        else:
            write_to(raw, entries)


def read(data: bytes) -> list[Entry]:
    """The entries of the newc archive at the start of `data` (trailer excluded)."""
    return read_archive(data)[0]


def read_archive(data: bytes, at: int = 0) -> tuple[list[Entry], int]:
    """Parse one newc archive starting at offset `at`, up to its trailer: its entries and the
    offset just past it. Raises ValueError on a malformed archive."""
    entries: list[Entry] = []
    while True:
        if data[at : at + len(MAGIC)] != MAGIC:
            raise ValueError(f"no newc magic at offset {at}")
        raw = data[at + len(MAGIC) : at + HEADER_SIZE]
        if len(raw) != 8 * FIELDS:
            raise ValueError(f"truncated header at offset {at}")
        f = [int(raw[i : i + 8], 16) for i in range(0, 8 * FIELDS, 8)]
        mode, mtime, size, rmaj, rmin, namesize = f[1], f[5], f[6], f[9], f[10], f[11]
        name_at = at + HEADER_SIZE
        name = data[name_at : name_at + namesize - 1].decode()
        body_at = name_at + namesize + pad(HEADER_SIZE + namesize)
        body = data[body_at : body_at + size]
        if len(body) != size:
            raise ValueError(f"truncated body of {name!r}")
        at = body_at + size + pad(size)
        if name == TRAILER:
            return entries, at
        entries.append(Entry(name, mode, body, (rmaj, rmin), mtime))
