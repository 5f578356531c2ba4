"""Lazy, cached loading of the TOML tables in hvconf/abi/data into frozen rows.

Each table is read once on first use (functools.lru_cache) and returned as a
read-only mapping; nothing is loaded at import time. Malformed data raises
AbiError naming the file and key. This module does not encode requests
(hvconf.abi does). Tests: tests/test_abi.py, tests/test_abi_headers.py.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from functools import lru_cache
from importlib import resources
from types import MappingProxyType
from typing import Any

from hvconf.abi.errors import AbiError
from hvconf.abi.rows import CapInfo, ExitInfo, FieldInfo, IoctlInfo

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


@lru_cache(maxsize=None)
def ioctls() -> Mapping[str, IoctlInfo]:
    rows = {}
    for name, row in raw("ioctls").items():
        where = f"ioctls.toml [{name}]"
        rows[name] = IoctlInfo(
            name=name,
            nr=_need(row, "nr", where),
            direction=_need(row, "dir", where),
            arg=row.get("arg"),
            by_value=row.get("by_value"),
            fds=tuple(_need(row, "fd", where)),
            arches=tuple(_need(row, "arches", where)),
            note=row.get("note", ""),
        )
    return MappingProxyType(rows)


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


@lru_cache(maxsize=None)
def caps() -> Mapping[str, CapInfo]:
    rows = {}
    for name, row in raw("caps").items():
        where = f"caps.toml [{name}]"
        enable = _need(row, "enable", where)
        if enable not in ("vm", "vcpu", "check"):
            raise AbiError(f"hvconf/abi/data/{where}: enable {enable!r} not vm|vcpu|check")
        rows[name] = CapInfo(
            name=name,
            number=_need(row, "number", where),
            enable=enable,
            arches=tuple(_need(row, "arches", where)),
            doc=row.get("doc", ""),
            since=row.get("since"),
            args=row.get("args", ""),
            note=row.get("note", ""),
        )
    return MappingProxyType(rows)


@lru_cache(maxsize=None)
def exits() -> Mapping[str, ExitInfo]:
    rows = {}
    for name, row in raw("exits").items():
        where = f"exits.toml [{name}]"
        rows[name] = ExitInfo(
            name=name,
            number=_need(row, "number", where),
            member=row.get("member"),
            since=row.get("since"),
            note=row.get("note", ""),
        )
    return MappingProxyType(rows)
