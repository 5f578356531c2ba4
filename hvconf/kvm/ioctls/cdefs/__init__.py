"""Per-layout cffi declarations of the KVM uapi, committed as pure-Python modules.

One declaration text per layout column of hvconf/contract.py (x86_64.py,
powerpc64.py, s390x.py, sharing common.py) and, generated from each by
build.py, an out-of-line ABI-mode module _ffi_<column>.py that loads in about
a millisecond without pycparser or a C compiler. `ffi_for(arch)` loads the
one for an hvconf arch; any arch loads on any host (layouts are fixed width;
byte order is the host's, which only matters for buffers really exchanged
with a kernel). It never parses C at run time. Tests: tests/kvm/test_layouts.py.
"""

from __future__ import annotations

import sys

from hvconf.contract import ARCHES, LAYOUTS

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from typing import Any

COLUMNS = LAYOUTS


def column(arch: str) -> str:
    """The layout column (and declaration module) of hvconf arch `arch`."""
    if arch in ARCHES:
        return ARCHES[arch].layout
    import hvconf.abi

    return hvconf.abi.layout_column(arch)  # raises AbiError, with a "did you mean"


def load(layout_column: str) -> Any:
    """The generated `ffi` of a layout column (types, sizes, offsets; no library loaded)."""
    if layout_column not in COLUMNS:
        raise ValueError(f"no cffi declarations for layout column {layout_column!r} (known: {', '.join(COLUMNS)})")
    return _module(f"hvconf.kvm.ioctls.cdefs._ffi_{layout_column}").ffi


def ffi_for(arch: str) -> Any:
    """The cffi declarations of hvconf arch `arch` ("x86_64", "ppc64le", "ppc-e500", "s390x"...)."""
    return load(column(arch))


def structs(layout_column: str) -> tuple[str, ...]:
    """The struct names declared for a layout column (imports its declaration text)."""
    return tuple(_module(f"hvconf.kvm.ioctls.cdefs.{layout_column}").STRUCTS)


def _module(name: str) -> Any:
    """importlib.import_module(name) for a module of this package, without importing importlib (and warnings)."""
    __import__(name)
    return sys.modules[name]
