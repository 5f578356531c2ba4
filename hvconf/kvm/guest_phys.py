"""Guest-physical memory as devices and hypercall handlers see it: read and write, never outside the guest.

`GuestPhys` is the protocol (read(gpa, length), write(gpa, data)); both raise
GuestAccessError unless [gpa, gpa+length) lies wholly inside one memory slot.
`MachinePhys` is a run's Machine seen so (its slots as they are when called:
they appear as the plan's memory steps run); `Slots` adapts (gpa, region)
pairs (objects with size/read/write, like ioctls.memory.GuestMemory);
`FlatMemory` is one bytearray at a base address. Holds no KVM state.
Tests: tests/kvm/test_buffers_papr.py.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Protocol

    from hvconf.kvm.machine import Machine

    class GuestPhys(Protocol):
        def read(self, gpa: int, length: int) -> bytes: ...

        def write(self, gpa: int, data: bytes) -> None: ...

    class Region(Protocol):
        size: int

        def read(self, offset: int, length: int) -> bytes: ...

        def write(self, offset: int, data: bytes) -> None: ...


class GuestAccessError(ValueError):
    """A guest-supplied address range that is not wholly inside guest memory."""


class MachinePhys:
    """A Machine's memory slots as they are when called."""

    def __init__(self, machine: Machine) -> None:
        self.machine = machine

    def read(self, gpa: int, length: int) -> bytes:
        data = self.machine.read(gpa, length) if gpa >= 0 and length >= 0 else None
        if data is None:
            raise GuestAccessError(f"{length} bytes at {gpa:#x} are not inside one memory slot")
        return data

    def write(self, gpa: int, data: bytes) -> None:
        try:
            self.machine.write(gpa, data)
        except ValueError as err:
            raise GuestAccessError(str(err)) from None


class Slots:
    """Guest memory made of (guest_phys_addr, region) slots; an access may not straddle two."""

    def __init__(self, slots: Sequence[tuple[int, Region]]) -> None:
        self.slots = sorted(slots, key=lambda s: s[0])

    def _find(self, gpa: int, length: int) -> tuple[Region, int]:
        if gpa < 0 or length < 0:
            raise GuestAccessError(f"{length} bytes at {gpa:#x}")
        for start, region in self.slots:
            if start <= gpa and gpa + length <= start + region.size:
                return region, gpa - start
        raise GuestAccessError(f"{length} bytes at guest address {gpa:#x} are not inside one memory slot")

    def read(self, gpa: int, length: int) -> bytes:
        region, offset = self._find(gpa, length)
        return region.read(offset, length)

    def write(self, gpa: int, data: bytes) -> None:
        region, offset = self._find(gpa, len(data))
        region.write(offset, data)


class FlatMemory:
    """One bytearray of guest memory starting at guest address `base`."""

    def __init__(self, data: bytearray, base: int = 0) -> None:
        self.data = data
        self.base = base
        self.size = len(data)

    def read(self, gpa: int, length: int) -> bytes:
        offset = self._offset(gpa, length)
        return bytes(self.data[offset : offset + length])

    def write(self, gpa: int, data: bytes) -> None:
        offset = self._offset(gpa, len(data))
        self.data[offset : offset + len(data)] = data

    def _offset(self, gpa: int, length: int) -> int:
        offset = gpa - self.base
        if offset < 0 or length < 0 or offset + length > self.size:
            raise GuestAccessError(f"{length} bytes at guest address {gpa:#x} are outside "
                                   f"[{self.base:#x}, {self.base + self.size:#x})")  # fmt: skip
        return offset
