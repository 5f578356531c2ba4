"""Write a build's files so a failure never leaves a half-written result.

Each VM folder is written into a fresh temporary folder beside the
destination (same filesystem), fsynced, then swapped into place with one
renameat2(RENAME_EXCHANGE): at every instant `out/<vm>/` is the complete old
or the complete new output, even under SIGKILL. The whole write holds an
flock on the output folder, so it may remove what a killed build left
(`.<vm>.*.tmp`, or restore a `.<vm>.*.old` where exchange is unsupported).
Tested by tests/test_build.py and tests/test_crash_safe.py.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import re
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Mapping

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2  # linux/fs.h


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
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
def _renameat2() -> Any:
    """glibc's renameat2, or None (older libc)."""
    fn = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if fn is not None:
        fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    return fn


def _exchange(a: Path, b: Path) -> bool:
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


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


# What a killed write of NAME can leave: mkdtemp names with our prefix and suffixes.
_LEFTOVER = re.compile(r"\.(.+)\.[a-z0-9_]{8}\.(tmp|old)")


def _leftovers(out_dir: Path, names: Iterable[str]) -> dict[str, list[Path]]:
    """The leftovers of each of `names`, from one listing of `out_dir` (a listing per VM made
    rebuilding N VMs into a folder of N quadratic)."""
    wanted = set(names)
    found: dict[str, list[Path]] = {}
    for entry in sorted(os.listdir(out_dir)):
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


def _install(tmp: Path, final: Path, out_dir: Path) -> None:
    if not os.path.lexists(final):
        os.rename(tmp, final)
    elif _exchange(tmp, final):
        _remove(tmp)  # now the previous output
    else:
        # No RENAME_EXCHANGE: move the old aside, then the new in; `_recover` undoes a kill between.
        old = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".old", dir=out_dir))
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
    lock = os.open(out_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another build into this folder waits; a killed one's lock is gone
        for name, leftovers in _leftovers(out_dir, results).items():
            _recover(out_dir, name, leftovers)
        staged = _stage(out_dir, results)
        written = []
        for tmp, final in staged:
            _install(tmp, final, out_dir)
            written.append(final)
        _fsync_dir(out_dir)
        return written
    finally:
        os.close(lock)


def _stage(out_dir: Path, results: Mapping[str, Mapping[str, bytes]]) -> list[tuple[Path, Path]]:
    """Every VM's files in temporary folders, fsynced; all removed again if any write fails."""
    staged: list[tuple[Path, Path]] = []
    try:
        for name, files in results.items():
            tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".tmp", dir=out_dir))
            staged.append((tmp, out_dir / name))
            for file_name, blob in files.items():
                path = tmp / file_name
                with open(path, "wb") as f:
                    f.write(blob)
                    f.flush()
                    os.fsync(f.fileno())
                path.chmod(0o755 if file_name.endswith(".py") else 0o644)
            tmp.chmod(0o755)
            _fsync_dir(tmp)
    except BaseException:
        for tmp, _ in staged:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    return staged
