"""The host's cffi declarations and libc: `ARCH`, `ffi`, `lib`, and `ffi_for(arch)` for any other arch.

`ARCH` is the hvconf arch of this host (its uname machine's record in
hvconf/contract.py); `ffi` its declarations, loaded from the
pregenerated out-of-line module in cdefs/ (no C parsing at start-up); `lib`
the C library with ioctl/mmap/munmap. Layouts are checked against hvconf.abi
by the tests, not at import, to keep the import cheap. Holds no state besides
these, issues no ioctl. Tests: tests/kvm/test_layouts.py, tests/kvm/test_errors.py.
"""

from __future__ import annotations

import os

from hvconf.contract import ARCHES, ARCH_OF_MACHINE
from hvconf.kvm.ioctls import cdefs

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from typing import Any

_machine = os.uname().machine
# An unsupported host keeps its machine name as ARCH (every request() then
# fails by name) and the x86_64 declarations, so the runtime still imports and
# can refuse plans with a message instead of an ImportError.
ARCH: str = ARCH_OF_MACHINE.get(_machine, _machine)
COLUMN = ARCHES[ARCH].layout if ARCH in ARCHES else "x86_64"
ffi: Any = cdefs.load(COLUMN)
lib: Any = ffi.dlopen(None)
MAP_FAILED = ffi.cast("void *", -1)


def ffi_for(arch: str) -> Any:
    """The declarations of hvconf arch `arch` (the host's `ffi` when it is this host's arch)."""
    return ffi if arch == ARCH else cdefs.ffi_for(arch)

