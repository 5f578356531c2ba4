"""hvconf arch names and what each means for the Linux uapi: `_IOC` ABI and struct-layout column.

The arch names are the ones used across hvconf (the `arch` keyword of the
language); their facts are the records of hvconf/contract.py, which
the runtime reads too, seen here by name. One validator; it loads no
tables. Tests: tests/test_abi.py, tests/test_abi_headers.py.
"""

from __future__ import annotations

from hvconf import contract
from hvconf.abi.errors import AbiError, unknown
from hvconf.abi.ioc import GENERIC, POWERPC, IocLayout

# Views of the one record per arch (hvconf/contract.py ARCHES, where the reasons are written).
ARCHES: tuple[str, ...] = tuple(contract.ARCHES)
# Which `_IOC` encoding the arch's asm/ioctl.h uses.
ABI_OF_ARCH: dict[str, str] = {name: arch.ioc for name, arch in contract.ARCHES.items()}
# Which column of structs.toml gives the arch's struct sizes/offsets.
LAYOUT_OF_ARCH: dict[str, str] = {name: arch.layout for name, arch in contract.ARCHES.items()}

_IOC_OF_ABI: dict[str, IocLayout] = {"generic": GENERIC, "powerpc": POWERPC}


def check_arch(arch: str) -> str:
    """Return `arch` if hvconf knows it, else raise AbiError with a suggestion."""
    if arch not in ABI_OF_ARCH:
        raise unknown("arch", arch, ARCHES, f"(known: {', '.join(ARCHES)})")
    return arch


def ioc_layout(arch: str) -> IocLayout:
    """The `_IOC` layout used by `arch`."""
    return _IOC_OF_ABI[ABI_OF_ARCH[check_arch(arch)]]


def layout_column(arch: str) -> str:
    """The structs.toml column for `arch`."""
    return LAYOUT_OF_ARCH[check_arch(arch)]


__all__ = [
    "ABI_OF_ARCH",
    "ARCHES",
    "AbiError",
    "LAYOUT_OF_ARCH",
    "check_arch",
    "ioc_layout",
    "layout_column",
]
