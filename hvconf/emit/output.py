"""Write a build's files so a failure never leaves a half-written result.

Everything is written into a fresh temporary folder beside the destination
(same filesystem), fsynced, then renamed into place; an old result is moved
aside first and removed only after the new one is in place.
Tested by tests/test_build.py.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Mapping


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


def write_tree(out_dir: Path, results: Mapping[str, Mapping[str, bytes]]) -> list[Path]:
    """Write `results` (sub-folder name -> file name -> content) under `out_dir`."""
    for name, files in results.items():
        _plain_name(name, out_dir)
        for file_name in files:
            _plain_name(file_name, out_dir / name)
    out_dir.mkdir(parents=True, exist_ok=True)
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
                if file_name.endswith(".py"):
                    path.chmod(0o755)
                else:
                    path.chmod(0o644)
            tmp.chmod(0o755)
            _fsync_dir(tmp)
    except BaseException:
        for tmp, _ in staged:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    written = []
    for tmp, final in staged:
        old = None
        if final.exists() or final.is_symlink():
            old = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".old", dir=out_dir))
            os.rename(final, old / "previous")
        os.rename(tmp, final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        written.append(final)
    _fsync_dir(out_dir)
    return written
