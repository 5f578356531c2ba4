"""Write a build's files so a failure never leaves a half-written result.

Each VM folder is written into a fresh temporary folder beside the
destination (same filesystem), made durable, then swapped into place with
one renameat2(RENAME_EXCHANGE): at every instant `out/<vm>/` is the complete
old or the complete new output, even under SIGKILL. The whole write holds an
flock on the output folder, so it may remove what a killed build left
(`.<vm>.*.tmp`, or restore a `.<vm>.*.old` where exchange is unsupported).

Durable means on disk before any folder is swapped in, one of two ways
(`_bulk`): a build of a few files fsyncs each file and folder as it writes
them; a build of many writes them all, then makes them durable at once with
one syncfs(2) of the output folder's filesystem. Either way an error (EIO,
ENOSPC) fails the build before any swap. Tested by tests/test_build.py and
tests/test_crash_safe.py.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import platform
import random
import re
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Mapping

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2  # linux/fs.h

# From this many files on, one syncfs(2) instead of an fsync per file and per folder. Each
# fsync commits the filesystem's journal and flushes the disk's cache (ext4_sync_file), about
# 2 ms here, so 10,000 VMs' 40,000 fsyncs took 50 s; one syncfs writes everything back and
# commits once. But syncfs writes back every dirty page of the filesystem, other programs'
# too, which can cost a build of a few files more than its own few fsyncs.
SYNCFS_FROM_FILES = 100
# Test-only: another threshold, so tests/test_crash_safe.py kills the syncfs path of a small build.
SYNCFS_FROM_ENV = "HVCONF_TEST_SYNCFS_FROM"

# statfs f_type (linux/magic.h) of the filesystems whose syncfs makes everything durable and
# reports the failure: their ->sync_fs commits the journal or log (fs/ext4/super.c
# ext4_sync_fs, fs/xfs/xfs_super.c xfs_fs_sync_fs, fs/btrfs/super.c btrfs_sync_fs,
# fs/f2fs/super.c f2fs_sync_fs, fs/overlayfs/super.c ovl_sync_fs: the upper filesystem's);
# tmpfs has nothing to make durable. On others (NFS, FUSE, 9p) syncfs may not reach the
# server's disk as an fsync does: each file is fsynced there.
_SYNCFS_FILESYSTEMS = frozenset({
    0xEF53,  # ext2, ext3, ext4
    0x58465342,  # xfs
    0x9123683E,  # btrfs
    0xF2F52010,  # f2fs
    0x794C7630,  # overlayfs
    0x01021994,  # tmpfs
})
# syncfs reports writeback errors since Linux 5.8 (735e4ae5ba28, "vfs: track per-sb writeback
# errors and report them to syncfs") and ->sync_fs errors since 5.17 (5679897eb104); before
# that it could return 0 after an EIO, so older kernels fsync each file.
_SYNCFS_KERNEL = (5, 17)


def _fsync_dir(path: str | Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_file(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _plain_name(name: str, where: Path) -> str:
    """`name` if it is one path component; anything else could write outside `where`."""
    if name in ("", ".", "..") or "/" in name or "\0" in name or name != name.strip():
        raise ValueError(f"refusing to write outside {where}: {name!r}")
    return name


@lru_cache(maxsize=1)
def _libc() -> Any:
    return ctypes.CDLL(None, use_errno=True)


@lru_cache(maxsize=1)
def _renameat2() -> Any:
    """glibc's renameat2, or None (older libc)."""
    fn = getattr(_libc(), "renameat2", None)
    if fn is not None:
        fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    return fn


def _kernel(release: str) -> tuple[int, int]:
    """(major, minor) of a `uname -r` release such as "6.1.0-18-amd64"; (0, 0) if unreadable."""
    match = re.match(r"(\d+)\.(\d+)", release)
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)


@lru_cache(maxsize=1)
def _syncfs() -> Any:
    """glibc's syncfs (Python 3.11 has no os.syncfs), or None where it cannot be trusted with
    errors (an older kernel) or libc lacks it."""
    if _kernel(os.uname().release) < _SYNCFS_KERNEL:
        return None
    fn = getattr(_libc(), "syncfs", None)
    if fn is not None:
        fn.argtypes = [ctypes.c_int]
    return fn


# struct statfs begins with f_type: a long (__fsword_t), an unsigned int on s390x
# (arch/s390/include/uapi/asm/statfs.h).
_F_TYPE = ctypes.c_uint if platform.machine() == "s390x" else ctypes.c_long


def _filesystem_type(fd: int) -> int | None:
    """statfs f_type of the filesystem `fd` is on, or None."""
    fstatfs = getattr(_libc(), "fstatfs", None)
    buf = ctypes.create_string_buffer(512)  # larger than struct statfs on every architecture
    if fstatfs is None or fstatfs(fd, buf) != 0:
        return None
    return _F_TYPE.from_buffer(buf).value & 0xFFFFFFFF


def _threshold() -> int:
    value = os.environ.get(SYNCFS_FROM_ENV, "")
    return int(value) if value.isdigit() else SYNCFS_FROM_FILES


def _bulk(fd: int, files: int) -> bool:
    """Whether to make `files` files durable with one syncfs of `fd`'s filesystem (see
    SYNCFS_FROM_FILES) rather than an fsync each."""
    return files >= _threshold() and _syncfs() is not None and _filesystem_type(fd) in _SYNCFS_FILESYSTEMS


def _syncfs_call(fd: int) -> None:
    """syncfs(2) of `fd`'s filesystem; raises what it reports. `fd` must have been opened
    before the files were written: syncfs reports the writeback errors since then (fs/sync.c,
    errseq_check_and_advance on the superblock's s_wb_err)."""
    if _syncfs()(fd) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def _exchange(a: str | Path, b: str | Path) -> bool:
    """Atomically swap two existing paths; False where the kernel or filesystem cannot."""
    fn = _renameat2()
    if fn is None:
        return False
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _remove(path: str | Path) -> None:
    """Remove a file or a folder tree, errors ignored. An output folder is flat: one listing
    of it and an unlink per file (shutil.rmtree checks and stats every entry); anything
    deeper goes to shutil.rmtree."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:  # a file, a symlink (never followed), or already gone
        with contextlib.suppress(OSError):
            os.unlink(path)
        return
    try:
        with os.scandir(fd) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(os.path.join(path, entry.name), ignore_errors=True)
                else:
                    os.unlink(entry.name, dir_fd=fd)
    except OSError:
        pass
    finally:
        os.close(fd)
    try:
        os.rmdir(path)
    except OSError:
        shutil.rmtree(path, ignore_errors=True)


# What a killed write of NAME can leave: `_temp_folder` and mkdtemp names with our prefix and suffixes.
_LEFTOVER = re.compile(r"\.(.+)\.[a-z0-9_]{8}\.(tmp|old)")


def _leftovers(out_dir: Path, names: Iterable[str]) -> dict[str, list[Path]]:
    """The leftovers of each of `names`, from one listing of `out_dir` (a listing per VM made
    rebuilding N VMs into a folder of N quadratic)."""
    wanted = set(names)
    found: dict[str, list[Path]] = {}
    for entry in sorted(e for e in os.listdir(out_dir) if e.startswith(".")):  # a rebuild lists every VM folder
        match = _LEFTOVER.fullmatch(entry)
        if match and match.group(1) in wanted:
            found.setdefault(match.group(1), []).append(out_dir / entry)
    return found


def _recover(out_dir: Path, name: str, leftovers: list[Path]) -> None:
    """Undo a killed write of `name` (we hold the lock, so its writer is gone)."""
    final = out_dir / name
    for left in leftovers:
        previous = left / "previous"
        if left.name.endswith(".old") and not os.path.lexists(final) and os.path.lexists(previous):
            os.rename(previous, final)  # killed between moving the old aside and the new in
        _remove(left)


def _install(tmp: str, final: str, out_dir: Path) -> None:
    if not os.path.lexists(final):
        os.rename(tmp, final)
    elif _exchange(tmp, final):
        _remove(tmp)  # now the previous output
    else:
        # No RENAME_EXCHANGE: move the old aside, then the new in; `_recover` undoes a kill between.
        old = Path(tempfile.mkdtemp(prefix=f".{os.path.basename(final)}.", suffix=".old", dir=out_dir))
        os.rename(final, old / "previous")
        os.rename(tmp, final)
        _remove(old)


def write_tree(out_dir: Path, results: Mapping[str, Mapping[str, bytes]]) -> list[Path]:
    """Write `results` (sub-folder name -> file name -> content) under `out_dir`."""
    for name, files in results.items():
        _plain_name(name, out_dir)
        for file_name in files:
            _plain_name(file_name, out_dir / name)
    out_dir.mkdir(parents=True, exist_ok=True)
    # Opened before anything is written: the flock, and the fd syncfs reports errors through.
    lock = os.open(out_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another build into this folder waits; a killed one's lock is gone
        for name, leftovers in _leftovers(out_dir, results).items():
            _recover(out_dir, name, leftovers)
        bulk = _bulk(lock, sum(len(files) for files in results.values()))
        staged = _stage(out_dir, results, lock if bulk else None)
        for tmp, final in staged:
            _install(tmp, final, out_dir)
        _fsync_dir(out_dir)
        return [Path(final) for _, final in staged]
    finally:
        os.close(lock)


def _umask() -> int | None:
    """The process's umask, read without changing it (/proc/self/status, Linux 4.7+), or None."""
    try:
        with open("/proc/self/status", "rb") as status:
            for line in status:
                if line.startswith(b"Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return None


_TEMP_NAMES = random.Random()  # seeded from os.urandom; mkdir refuses a name twice anyway


def _temp_folder(out_dir: str, name: str, mode: int) -> str:
    """A new empty folder `.NAME.XXXXXXXX.tmp` in `out_dir` (the names _LEFTOVER matches)."""
    for _ in range(100):
        path = f"{out_dir}/.{name}.{_TEMP_NAMES.getrandbits(32):08x}.tmp"
        try:
            os.mkdir(path, mode)
            return path
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no unused temporary name", f"{out_dir}/.{name}.*.tmp")


def _write_file(name: str, blob: bytes, mode: int, dir_fd: int, chmod: bool, fsync: bool) -> None:
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode, dir_fd=dir_fd)
    try:
        view = memoryview(blob)
        while view:
            view = view[os.write(fd, view):]
        if chmod:
            os.fchmod(fd, mode)
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)


def _fill(folder: str, files: Mapping[str, bytes], umask: int | None, fsync: bool) -> None:
    """Write `files` into the new `folder`, through one descriptor of it, each with its mode
    whatever the umask (a chmod only where the umask would have taken bits away)."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for file_name, blob in files.items():
            mode = 0o755 if file_name.endswith(".py") else 0o644
            _write_file(file_name, blob, mode, fd, umask is None or bool(mode & umask), fsync)
        if umask is None or _FOLDER_MODE & umask:
            os.fchmod(fd, _FOLDER_MODE)
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)


_FOLDER_MODE = 0o755


def _stage(out_dir: Path, results: Mapping[str, Mapping[str, bytes]],
           bulk_fd: int | None) -> list[tuple[str, str]]:
    """Every VM's files in temporary folders, durable: each file and folder fsynced, or with
    `bulk_fd`, all of them at the end by one syncfs of its filesystem. All removed again if
    anything fails."""
    base, umask = os.fspath(out_dir), _umask()
    staged: list[tuple[str, str]] = []
    try:
        for name, files in results.items():
            tmp = _temp_folder(base, name, _FOLDER_MODE)
            staged.append((tmp, os.path.join(base, name)))
            _fill(tmp, files, umask, fsync=bulk_fd is None)
        if bulk_fd is not None:
            _sync_all(bulk_fd, staged)
    except BaseException:
        for tmp, _ in staged:
            _remove(tmp)
        raise
    return staged


def _sync_all(fd: int, staged: list[tuple[str, str]]) -> None:
    """One syncfs for everything staged; where the call itself is refused (ENOSYS, EPERM:
    a seccomp filter), an fsync of every staged file and folder instead."""
    try:
        _syncfs_call(fd)
        return
    except OSError as err:
        if err.errno not in (errno.ENOSYS, errno.EPERM):
            raise  # EIO, ENOSPC, EDQUOT: the build fails before any swap
    for tmp, _ in staged:
        for entry in sorted(os.listdir(tmp)):
            _fsync_file(os.path.join(tmp, entry))
        _fsync_dir(tmp)
