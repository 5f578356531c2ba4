"""Which files a definition may make hvconf read, and reading them without surprises.

A definition under review is hostile, and so are its paths: `include`, `kernel`, `guest`
and a guest source's `.include`/`.incbin` must not make hvconf read, echo or copy a host
file. `resolve` follows a path to its real path (every symlink resolved) and refuses it,
before anything is opened, when it is outside the project (`Scope`), on a kernel interface
(/proc, /sys, /dev), not a regular file (a folder, FIFO, socket or device), or fails
stat(2) (ENOENT, ENOTDIR, EACCES, ELOOP, ENAMETOOLONG...). `read_resolved` then opens it
O_NONBLOCK|O_NOFOLLOW, fstat-checks the open file and checks the path the kernel opened
(/proc/self/fd) against the scope again, so a file swapped in after the checks is refused
too. Every refusal is a PathRefused with a kind the callers map to their diagnostic code.
The rules are in docs/robustness.md ("Paths are diagnostics"). Tests: tests/test_paths.py.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from hvconf.record import Record

# Kinds of refusal; each caller has a table from kind to diagnostic (hvconf/syntax/loader.py,
# hvconf/model/inputs.py).
MISSING = "missing"  # ENOENT, ENOTDIR, an empty path or one with a NUL byte
OUTSIDE = "outside"  # the real path is outside the project and every allowed folder
NOT_A_FILE = "not-a-file"  # a folder, FIFO, socket, device, or anything on a kernel interface
UNREADABLE = "unreadable"  # any other stat(2)/open(2)/read(2) error: EACCES, ELOOP, ENAMETOOLONG, EIO
TOO_LARGE = "too-large"  # more bytes than the caller reads

# Pseudo file systems whose "files" are kernel state (/proc/self/environ, /sys/.../uevent) or
# devices: refused even inside an allowed folder, before stat(2) (which can block on some).
KERNEL_INTERFACES = ("/proc", "/sys", "/dev")

_FILE_KINDS = {stat.S_IFDIR: "a directory", stat.S_IFIFO: "a FIFO", stat.S_IFSOCK: "a socket",
               stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device"}
_MISSING_ERRNOS = frozenset({errno.ENOENT, errno.ENOTDIR})


class PathRefused(Exception):
    """A path hvconf will not read: `kind` is one of the kinds above, `reason` says why
    in words fit for a diagnostic (never anything read from the file)."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


def _under(real: str, folder: str) -> bool:
    return folder == "/" or real == folder or real.startswith(folder + "/")


class Scope(Record):
    """Where a definition may read: the project root and the folders allowed on the
    command line (`--allow-path`), all real paths."""

    __slots__ = ("root", "allowed")
    _defaults = {"allowed": ()}
    root: str
    allowed: tuple[str, ...]

    def contains(self, real: str) -> bool:
        return _under(real, self.root) or any(_under(real, folder) for folder in self.allowed)

    def describe(self) -> str:
        extra = f" and the allowed {', '.join(self.allowed)}" if self.allowed else ""
        return f"the project {self.root}{extra}"


def project_root(root_file: str | Path) -> str:
    """The project of a root file: the nearest folder above it holding `.git` (a folder, or
    a file in worktrees), else its own folder. From the real path of the folder the file is
    named in, not of the file: a symlinked root file does not bring its target's project."""
    start = os.path.realpath(os.path.dirname(os.path.abspath(root_file)))
    folder = start
    while True:
        if os.path.lexists(os.path.join(folder, ".git")):
            return folder
        parent = os.path.dirname(folder)
        if parent == folder:
            return start
        folder = parent


def scope_for(root_file: str | Path, root: str | Path | None = None, allow: tuple[str | Path, ...] = ()) -> Scope:
    """The scope of `root_file`: `root` when the user gave one, else its project."""
    base = os.path.realpath(root) if root is not None else project_root(root_file)
    return Scope(base, tuple(os.path.realpath(folder) for folder in allow))


def folder_of(path: str | Path) -> Path:
    """The folder a file's relative paths resolve against: its own, or for a symlink its
    target's, so a file means the same whichever name reached it (each real file is read once)."""
    absolute = os.path.abspath(path)
    if os.path.islink(absolute):
        absolute = os.path.realpath(absolute)
    return Path(os.path.dirname(absolute))


def kernel_interface(real: str) -> str | None:
    """The pseudo file system `real` is on, if any."""
    return next((top for top in KERNEL_INTERFACES if _under(real, top)), None)


def resolve(path: str | Path, scope: Scope) -> tuple[str, os.stat_result]:
    """The real path of `path` and its stat, or PathRefused. Nothing is opened: a device
    or FIFO is refused by its stat, a /proc or /sys file before even that."""
    text = os.fspath(path)
    if not text or "\0" in text:
        raise PathRefused(MISSING, "the path is empty or contains a NUL byte")
    real = os.path.realpath(text)  # a loop or an unreadable folder stops resolution; stat says why
    if not scope.contains(real):
        raise PathRefused(OUTSIDE, f"it is outside {scope.describe()} (symbolic links followed)")
    interface = kernel_interface(real)
    if interface is not None:
        raise PathRefused(NOT_A_FILE, f"it is on {interface}, a kernel interface, not a file")
    try:
        st = os.stat(real)
    except OSError as err:
        raise PathRefused(MISSING if err.errno in _MISSING_ERRNOS else UNREADABLE, _strerror(err)) from None
    if not stat.S_ISREG(st.st_mode):
        raise PathRefused(NOT_A_FILE, f"it is {_FILE_KINDS.get(stat.S_IFMT(st.st_mode), 'not a regular file')}")
    return real, st


def probe(real: str) -> None:
    """Open and close `real`, a regular file `resolve` returned, so that a file hvconf may
    not read (EACCES) is found where `check` looks, not first by `build`. Opening a regular
    file has no side effect; nothing is read."""
    try:
        os.close(os.open(real, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC | os.O_NOFOLLOW))
    except OSError as err:
        raise PathRefused(MISSING if err.errno in _MISSING_ERRNOS else UNREADABLE, _strerror(err)) from None


def _strerror(err: OSError) -> str:
    return err.strerror or os.strerror(err.errno or 0)


def _opened_path(fd: int) -> str | None:
    """The path the kernel opened for `fd`; None where /proc is not mounted."""
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return None


def read_resolved(real: str, scope: Scope, limit: int) -> bytes:
    """The bytes of `real` (from `resolve`), or more than `limit` of them (callers refuse
    those); PathRefused if it is no longer what `resolve` checked."""
    try:
        fd = os.open(real, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError as err:
        raise PathRefused(MISSING if err.errno in _MISSING_ERRNOS else UNREADABLE, _strerror(err)) from None
    try:
        opened = _opened_path(fd)
        if opened is not None and (not scope.contains(opened) or kernel_interface(opened)):
            raise PathRefused(OUTSIDE, f"it is outside {scope.describe()} (it was replaced while being opened)")
        return _read_fd(fd, limit)
    except OSError as err:  # EINVAL: _read_fd found no regular file behind the descriptor
        if err.errno == errno.EINVAL:
            raise PathRefused(NOT_A_FILE, "it is not a regular file") from None
        raise PathRefused(UNREADABLE, _strerror(err)) from None
    finally:
        os.close(fd)


def read_checked(path: str | Path, scope: Scope, limit: int) -> tuple[str, bytes]:
    """`resolve` then `read_resolved`: the real path and bytes of a file a definition names."""
    real, _ = resolve(path, scope)
    return real, read_resolved(real, scope, limit)


def read_regular(path: str | Path, limit: int) -> bytes:
    """The bytes of a regular file, or more than `limit` of them (callers refuse those).
    O_NONBLOCK and the fstat make a FIFO or device swapped in after a stat fail instead
    of blocking; the bounded read stops /proc files that report size 0 but never end.
    For files the user named on the command line; a definition's paths go through `resolve`."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        return _read_fd(fd, limit)
    finally:
        os.close(fd)


def _read_fd(fd: int, limit: int) -> bytes:
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        raise OSError(errno.EINVAL, "not a regular file")
    chunks, size = [], 0
    while size <= limit:
        chunk = os.read(fd, 1 << 16)  # whole chunks: /proc/self/pagemap refuses reads of odd sizes
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)
