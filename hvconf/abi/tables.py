"""Lazy, cached loading of the TOML tables in hvconf/abi/data into frozen rows.

Each table is read once on first use (functools.lru_cache) and returned as a
read-only mapping; nothing is loaded at import time. Malformed data raises
AbiError naming the file and key. This module does not encode requests
(hvconf.abi does). Tests: tests/test_abi.py, tests/test_abi_headers.py.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Mapping
from functools import lru_cache
from importlib import resources
from types import MappingProxyType
from typing import Any, TypeVar

from hvconf.abi.errors import AbiError
from hvconf.abi.rows import CapInfo, ExitInfo, FieldInfo, IoctlInfo

Row = TypeVar("Row")

# Sizes of the scalar ioctl argument types. Every layout column is LP64, so
# `unsigned long` is 8; the one 32-bit userspace hvconf names (ppc-e500) is left
# out of the arches of the ioctls that take one (see hvconf.abi.arches).
SCALAR_SIZE: Mapping[str, int] = MappingProxyType(
    {"__u8": 1, "__u16": 2, "__u32": 4, "__u64": 8, "int": 4, "unsigned long": 8}
)


@lru_cache(maxsize=None)
def raw(name: str) -> Mapping[str, Any]:
    """The parsed data/<name>.toml."""
    path = resources.files("hvconf.abi").joinpath("data", f"{name}.toml")
    try:
        return MappingProxyType(tomllib.loads(path.read_text(encoding="utf-8")))
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise AbiError(f"hvconf/abi/data/{name}.toml: {err}") from err


def _need(table: Mapping[str, Any], key: str, where: str) -> Any:
    try:
        return table[key]
    except KeyError:
        raise AbiError(f"hvconf/abi/data/{where}: missing key {key!r}") from None


def _rows(table: str, build: Callable[[str, Mapping[str, Any], str], Row]) -> Mapping[str, Row]:
    """Every row of data/<table>.toml built into its record by name; `build` gets the name, the
    row and where it stands (for the errors of _need)."""
    return MappingProxyType({name: build(name, row, f"{table}.toml [{name}]") for name, row in raw(table).items()})


def _ioctl(name: str, row: Mapping[str, Any], where: str) -> IoctlInfo:
    return IoctlInfo(
        name=name,
        nr=_need(row, "nr", where),
        direction=_need(row, "dir", where),
        arg=row.get("arg"),
        by_value=row.get("by_value"),
        fds=tuple(_need(row, "fd", where)),
        arches=tuple(_need(row, "arches", where)),
        note=row.get("note", ""),
    )


@lru_cache(maxsize=None)
def ioctls() -> Mapping[str, IoctlInfo]:
    return _rows("ioctls", _ioctl)


@lru_cache(maxsize=None)
def structs() -> Mapping[str, Mapping[str, Any]]:
    return raw("structs")


def _per_column(value: int | Mapping[str, int] | None, column: str) -> int | None:
    if value is None or isinstance(value, int):
        return value
    return value.get(column)


def struct_size(struct: str, column: str) -> int | None:
    """sizeof(struct) in a layout column, None where the struct is not defined."""
    return structs()[struct]["size"].get(column)


@lru_cache(maxsize=None)
def struct_fields(struct: str, column: str) -> Mapping[str, FieldInfo]:
    out = {}
    for row in structs()[struct].get("fields", ()):
        if "only" in row and column not in row["only"]:
            continue
        offset = _per_column(row["offset"], column)
        if offset is None:
            continue
        out[row["name"]] = FieldInfo(row["name"], offset, _per_column(row.get("size"), column))
    return MappingProxyType(out)


def _cap(name: str, row: Mapping[str, Any], where: str) -> CapInfo:
    enable = _need(row, "enable", where)
    if enable not in ("vm", "vcpu", "check"):
        raise AbiError(f"hvconf/abi/data/{where}: enable {enable!r} not vm|vcpu|check")
    return CapInfo(
        name=name,
        number=_need(row, "number", where),
        enable=enable,
        arches=tuple(_need(row, "arches", where)),
        doc=row.get("doc", ""),
        since=row.get("since"),
        args=row.get("args", ""),
        note=row.get("note", ""),
    )


@lru_cache(maxsize=None)
def caps() -> Mapping[str, CapInfo]:
    return _rows("caps", _cap)


def _exit(name: str, row: Mapping[str, Any], where: str) -> ExitInfo:
    return ExitInfo(
        name=name,
        number=_need(row, "number", where),
        member=row.get("member"),
        since=row.get("since"),
        note=row.get("note", ""),
    )


@lru_cache(maxsize=None)
def exits() -> Mapping[str, ExitInfo]:
    return _rows("exits", _exit)
