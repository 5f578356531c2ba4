"""Anonymous host memory that backs a guest memory slot.

`GuestMemory(size)` mmaps private anonymous memory (not reserved up front)
and frees it with `close()`; `write(offset, data)` copies an image in with
bounds checked. It never talks to KVM: Vm.set_user_memory_region gets the
`address`. Tests: tests/kvm/test_runtime.py.
"""

from __future__ import annotations

import mmap

from hvconf.kvm.ioctls.errors import KvmError
from hvconf.kvm.ioctls.ffi import MAP_FAILED, ffi, lib

MAP_NORESERVE = getattr(mmap, "MAP_NORESERVE", 0x4000)  # the mmap module names it from 3.12 on


class GuestMemory:
    """One mmap. Attributes: `size` (bytes), `address` (host virtual address, 0 once closed)."""

    def __init__(self, size: int) -> None:
        if size <= 0 or size % mmap.PAGESIZE:
            raise ValueError(f"guest memory size {size:#x} is not a positive multiple of the page size")
        flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | MAP_NORESERVE
        ptr = lib.mmap(ffi.NULL, size, mmap.PROT_READ | mmap.PROT_WRITE, flags, -1, 0)
        if ptr == MAP_FAILED:
            raise KvmError("mmap(guest memory)", ffi.errno)
        self._ptr = ffi.cast("char *", ptr)
        self.size = size
        self.address = int(ffi.cast("uintptr_t", ptr))

    def write(self, offset: int, data: bytes) -> None:
        """Copy `data` to `offset` bytes into the region."""
        if not self.address:
            raise ValueError("guest memory is closed")
        if offset < 0 or offset + len(data) > self.size:
            raise ValueError(f"{len(data)} bytes at {offset:#x} do not fit in {self.size:#x} bytes of guest memory")
        ffi.memmove(self._ptr + offset, data, len(data))

    def read(self, offset: int, length: int) -> bytes:
        if not self.address or offset < 0 or offset + length > self.size:
            raise ValueError(f"cannot read {length} bytes at {offset:#x} of guest memory")
        return ffi.buffer(self._ptr + offset, length)[:]

    def close(self) -> None:
        if self.address:
            lib.munmap(self._ptr, self.size)
            self.address = 0
