"""The host's cffi declarations and libc: `ARCH`, `ffi`, `lib`, and `ffi_for(arch)` for any other arch.

`ARCH` is the hvconf arch of this host (x86_64, ppc64le, ppc64, ppc-e500,
s390x); `ffi` its declarations, loaded from the pregenerated out-of-line
module in cdefs/ (no C parsing at start-up); `lib` the C library with
ioctl/mmap/munmap. Layouts are checked against hvconf.abi by the tests, not
at import, to keep the import cheap. Holds no state besides these, issues no
ioctl. Tests: tests/kvm/test_layouts.py, tests/kvm/test_errors.py.
"""

from __future__ import annotations

import os

from hvconf.kvm import cdefs

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from typing import Any

# uname machine -> hvconf arch. A 32-bit PowerPC host is taken to be an e500
# (the only 32-bit PowerPC target hvconf has).
HOST_ARCH_OF_MACHINE = {"x86_64": "x86_64", "ppc64le": "ppc64le", "ppc64": "ppc64", "ppc": "ppc-e500",
                        "s390x": "s390x"}  # fmt: skip
_machine = os.uname().machine
# An unsupported host keeps its machine name as ARCH (every request() then
# fails by name) and the x86_64 declarations, so the runtime still imports and
# can refuse plans with a message instead of an ImportError.
ARCH: str = HOST_ARCH_OF_MACHINE.get(_machine, _machine)
BYTEORDER: cdefs.ByteOrder = cdefs.BYTEORDER.get(ARCH, "little")

COLUMN = cdefs.column(ARCH) if ARCH in cdefs.BYTEORDER else "x86_64"
ffi: Any = cdefs.load(COLUMN)
lib: Any = ffi.dlopen(None)
MAP_FAILED = ffi.cast("void *", -1)


def ffi_for(arch: str) -> Any:
    """The declarations of hvconf arch `arch` (the host's `ffi` when it is this host's arch)."""
    return ffi if arch == ARCH else cdefs.ffi_for(arch)


def __getattr__(name: str) -> Any:
    # STRUCTS (the struct names the host's declarations hold) imports the declaration text: only on demand.
    if name == "STRUCTS":
        return cdefs.structs(COLUMN)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
