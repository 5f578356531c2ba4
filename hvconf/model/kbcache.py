"""The packaged knowledge base (targets/*/*.toml, validated into Target objects), cached per user.

Validating those files costs a one-file `hvconf check` more than the rest of its work, and
the result changes only with the data, the code that validates it (target.py,
target_toml.py) or the hvconf, pydantic and Python versions: the cache key hashes all of
them. Entries are pickles in hvconf.resources.cache_dir(), used only when private to the
user and written for the same key; anything else means full validation and a new entry.
Only targets that validate are stored, so a broken one still raises its TargetError.
Tested by tests/test_startup.py.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from hvconf import __version__
from hvconf.resources import read_cached, write_cached

if TYPE_CHECKING:
    from hvconf.model.target import Target

ENTRY = "targets.pickle"
# Bump when what is pickled changes shape in a way the other key parts do not capture.
LAYOUT = b"hvconf-kb-1"
# The modules whose code decides what a validated Target holds.
CODE = ("target.py", "target_toml.py")


def frozen(items: dict[Any, Any]) -> Mapping[Any, Any]:
    """A read-only mapping again, when an entry is loaded."""
    return MappingProxyType(items)


class _Pickler(pickle.Pickler):
    """Pickles the read-only mappings rows use (MappingProxyType cannot be pickled by itself)."""

    def reducer_override(self, obj: Any) -> Any:
        if type(obj) is MappingProxyType:
            return frozen, (dict(obj),)
        return NotImplemented


def key(root: Path, names: tuple[str, ...], files: tuple[str, ...]) -> bytes:
    """What the cached targets were derived from: every data file, the validating code, the versions."""
    from pydantic.version import VERSION  # already imported by the models the entry holds

    digest = hashlib.sha256(LAYOUT)
    for part in (__version__, sys.version, VERSION):
        digest.update(part.encode() + b"\0")
    here = Path(__file__).parent
    for module in CODE:
        digest.update((here / module).read_bytes())
    for name in names:
        for file in files:
            digest.update(f"\0{name}/{file}\0".encode())
            try:
                digest.update((root / name / file).read_bytes())
            except OSError as err:  # that target will not validate; the key still tells states apart
                digest.update(f"\0unreadable {err.errno}".encode())
    return digest.hexdigest().encode()


def cached_targets(root: Path, names: tuple[str, ...], files: tuple[str, ...],
                   assemble: Callable[[str], "Target | None"]) -> Mapping[str, "Target"]:
    """The targets of `root` that validate, by name: from the cache entry when it was written
    for the same key, else `assemble(name)` for each name (None: it does not validate), stored."""
    try:
        entry_key = key(root, names, files)
    except OSError:  # hvconf's own sources cannot be read (a zipped install): validate, cache nothing
        return {name: t for name in names if (t := assemble(name)) is not None}
    payload = read_cached(ENTRY, entry_key)
    if payload is not None:
        try:
            targets: dict[str, Target] = pickle.loads(payload)
            return targets
        except Exception:  # a truncated or foreign entry: validate again and overwrite it
            pass
    targets = {name: t for name in names if (t := assemble(name)) is not None}
    try:
        buffer = io.BytesIO()
        _Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(targets)
    except (pickle.PicklingError, TypeError, AttributeError):  # never worth failing the run for
        return targets
    write_cached(ENTRY, entry_key, buffer.getvalue())
    return targets
