"""Where hvconf finds its data: the grammar, the target knowledge base, the bad
samples `hvconf explain` shows and the language reference the language server's
hover quotes; and where it may keep a per-user cache.

In a wheel they are packaged as hvconf/_data/{grammar,targets,examples/invalid,docs,samples,guests};
in a source checkout they sit in the repo (grammar/, targets/, tests/invalid/, docs/, samples/,
guests/). tests/test_wheel.py builds the wheel and checks an installed copy finds them.
This is the only module that knows both places. Tested by tests/test_resources.py.
"""

from __future__ import annotations

import os
import stat
from functools import lru_cache
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


@lru_cache(maxsize=None)
def _data_dir(name: str) -> Path:
    packaged = _PACKAGE / "_data" / name
    if packaged.is_dir():
        return packaged
    checkout = _PACKAGE.parent / name
    if checkout.is_dir():
        return checkout
    raise FileNotFoundError(f"hvconf data folder {name!r} is missing from {packaged} and {checkout}")


def grammar_path() -> Path:
    """The path of grammar/hvconf.lark."""
    return _data_dir("grammar") / "hvconf.lark"


def targets_dir() -> Path:
    """The folder holding one sub-folder per target (targets/<name>/)."""
    return _data_dir("targets")


def samples_dir() -> Path:
    """samples/: one example VM per target; their guest sources sit in ../guests beside it."""
    return _data_dir("samples")


def language_doc() -> Path:
    """docs/language.md: every construct of the language, one section each."""
    return _data_dir("docs") / "language.md"


def invalid_samples_dir() -> Path:
    """tests/invalid/: one bad sample per diagnostic code (hvconf/_data/examples/invalid in a wheel)."""
    for folder in (_PACKAGE / "_data" / "examples" / "invalid", _PACKAGE.parent / "tests" / "invalid"):
        if folder.is_dir():
            return folder
    raise FileNotFoundError(f"hvconf's bad samples are missing from {_PACKAGE / '_data'} and "
                            f"{_PACKAGE.parent / 'tests'}")


def private(st: os.stat_result) -> bool:
    """Whether a cache file or folder can be trusted: ours, and writable by no one else."""
    return st.st_uid == os.getuid() and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def _cache_candidates() -> list[Path]:
    base = os.environ.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(base):  # unset, or relative, which the XDG spec says to ignore
        base = os.path.join(os.path.expanduser("~"), ".cache")
    tmp = os.environ.get("TMPDIR", "")
    tmp = tmp if os.path.isabs(tmp) else "/tmp"
    # The home cache first; a folder of our own in the temporary folder when home is unusable.
    return [Path(folder) for folder in (os.path.join(base, "hvconf"), os.path.join(tmp, f"hvconf-{os.getuid()}"))
            if os.path.isabs(folder)]


def cache_dir() -> Path | None:
    """hvconf's per-user cache folder: $XDG_CACHE_HOME/hvconf (default ~/.cache/hvconf), else
    $TMPDIR/hvconf-UID; created private to the user. None when neither can be created, or
    either exists but is not ours alone (another user could plant entries there).

    Only derived data lives there (the parser tables, the validated knowledge base), each
    entry checked against what it was derived from: deleting the folder is always safe."""
    for folder in _cache_candidates():
        try:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            st = os.stat(folder, follow_symlinks=False)
        except OSError:
            continue
        if stat.S_ISDIR(st.st_mode) and private(st):
            return folder
    return None


def read_cached(name: str, key: bytes) -> bytes | None:
    """The payload of cache entry `name` if it was written for `key` (and is private), else None."""
    folder = cache_dir()
    if folder is None:
        return None
    try:
        with open(os.open(folder / name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC), "rb") as f:
            st = os.fstat(f.fileno())
            if not (stat.S_ISREG(st.st_mode) and private(st)) or f.readline() != key + b"\n":
                return None
            return f.read()
    except OSError:
        return None


def write_cached(name: str, key: bytes, payload: bytes) -> None:
    """Store `payload` as entry `name` for `key`, atomically (written aside, then renamed);
    a cache that cannot be written is no error, only a slower next run."""
    folder = cache_dir()
    if folder is None:
        return
    tmp = folder / f".{name}.{os.getpid()}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        with open(fd, "wb") as f:
            f.write(key + b"\n" + payload)
        os.replace(tmp, folder / name)
    except OSError:
        tmp.unlink(missing_ok=True)
