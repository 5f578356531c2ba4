"""The unmerged ePAPR proposal as data: names without numbers, plus user overrides.

The proposal and why it has no numbers: docs/kernel-facts.md#the-unmerged-epapr-proposal.

proposed.toml lists the proposed names and assigns no numbers (upstream never
did). A user with a patched kernel supplies numbers in their own TOML file
(`[numbers] NAME = int`), which is validated strictly here. This module never
invents numbers. Tests: tests/test_abi.py.
"""

from __future__ import annotations

import errno
import os
import stat
import tomllib
from collections.abc import Callable, Mapping
from functools import lru_cache
from pathlib import Path

from hvconf.abi.errors import AbiError, close_matches
from hvconf.abi.rows import CapInfo, ExitInfo, ProposedAbi, ProposedItem, X86Hypercall
from hvconf.abi.tables import raw

NUMBERED_KINDS = ("cap", "exit", "hcall")
MAX_OVERRIDES_BYTES = 1 << 20  # a table of a few dozen numbers; `--abi-overrides /dev/zero` never ended


def proposed_names() -> tuple[str, ...]:
    return tuple(raw("proposed")["items"])


def _read_regular(path: Path, limit: int) -> bytes:
    """At most `limit` + 1 bytes of the regular file `path`: O_NONBLOCK and the fstat refuse a FIFO
    or device instead of blocking on it or reading it forever."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        with open(fd, "rb", closefd=False) as file:
            return file.read(limit + 1)
    finally:
        os.close(fd)


def _read_overrides(path: Path, items: dict[str, ProposedItem]) -> dict[str, int]:
    try:
        raw_bytes = _read_regular(path, MAX_OVERRIDES_BYTES)
        if len(raw_bytes) > MAX_OVERRIDES_BYTES:
            raise OSError(errno.EFBIG, f"larger than {MAX_OVERRIDES_BYTES} bytes")
        data = tomllib.loads(raw_bytes.decode("utf-8"))
    except OSError as err:
        raise AbiError(f"{path}: cannot read proposed-ABI overrides: {err.strerror}") from err
    except UnicodeDecodeError as err:
        raise AbiError(f"{path}: not UTF-8 text (byte {err.start})") from err
    except tomllib.TOMLDecodeError as err:
        raise AbiError(f"{path}: not valid TOML: {err}") from err
    extra = set(data) - {"numbers"}
    if extra:
        raise AbiError(f"{path}: unknown top-level key(s) {sorted(extra)}; expected only [numbers]")
    numbers = data.get("numbers", {})
    if not isinstance(numbers, dict):
        raise AbiError(f"{path}: 'numbers' must be a table of NAME = integer")
    out: dict[str, int] = {}
    for key, value in numbers.items():
        if key not in items:
            hint = close_matches(key, items)
            tail = f"; did you mean {' or '.join(hint)}?" if hint else ""
            raise AbiError(f"{path}: [numbers] {key}: not a name of the proposed ABI{tail}")
        if items[key].kind not in NUMBERED_KINDS:
            raise AbiError(f"{path}: [numbers] {key}: a {items[key].kind} takes no number")
        if isinstance(value, bool) or not isinstance(value, int):
            raise AbiError(f"{path}: [numbers] {key}: expected an integer, got {value!r}")
        if value < 0:
            raise AbiError(f"{path}: [numbers] {key}: expected a non-negative integer, got {value}")
        clash = _assigned_upstream(items[key].kind).get(value)
        if clash is not None:
            raise AbiError(f"{path}: [numbers] {key} = {value} collides with upstream {clash}")
        out[key] = value
    return out


def _assigned_upstream(kind: str) -> dict[int, str]:
    """number -> name of what upstream already assigned, for the kind's namespace."""
    from hvconf.abi import hcalls, tables

    loaders: dict[str, Callable[[], Mapping[str, CapInfo | ExitInfo | X86Hypercall]]] = {
        "cap": tables.caps, "exit": tables.exits, "hcall": hcalls.x86_hypercalls}
    rows = loaders[kind]()
    return {row.number: name for name, row in rows.items()}


def proposed(overrides: Path | None = None) -> ProposedAbi:
    """The proposal; numbers come only from `overrides` (a user TOML with [numbers])."""
    if overrides is None:  # the checks ask for it once per VM: build it once (it is frozen)
        return _unnumbered()
    return _proposed(overrides)


@lru_cache(maxsize=1)
def _unnumbered() -> ProposedAbi:
    return _proposed(None)


def _proposed(overrides: Path | None) -> ProposedAbi:
    data = raw("proposed")
    items = {
        name: ProposedItem(name=name, kind=row["kind"], number=None, note=row.get("note", ""))
        for name, row in data["items"].items()
    }
    numbers = _read_overrides(Path(overrides), items) if overrides is not None else {}
    rows = tuple(
        ProposedItem(i.name, i.kind, numbers.get(i.name), i.note) for i in items.values()
    )
    return ProposedAbi(
        status=data["status"],
        source=data["source"],
        items=rows,
        overrides=str(overrides) if overrides is not None else None,
    )
