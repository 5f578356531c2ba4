"""Machine: everything a plan has opened so far, shared by the main and the vCPU threads.

Holds the system, VM and vCPU fds, the guest memory slots and the loaded
images; reads and writes guest-physical memory by address; keeps what the
arch family's steps keep for later (`family_state`, under `lock`), the fds
its steps create beside the VM (`vm_fds`: sPAPR TCE tables) and the memory
KVM keeps using after the ioctl that handed it over (`pinned`: e500 shared
TLBs). `close()` releases everything, newest first, each in the order KVM
needs, and is idempotent; `close(keep_memory=True)` leaves the guest memory
mapped for the next Machine of a restarted run (`memory`), which writes the
images into it again (`loaded`: the regions that hold this VM's images), as
QEMU's system reset keeps RAM and reloads its images. `note` writes a trace
line (None: not tracing). It issues only the ioctls its callers ask for.
Tests: tests/kvm/test_runtime.py.
"""

from __future__ import annotations

import _thread  # threading.Lock is _thread.allocate_lock: importing threading costs a launch ~1 ms

from hvconf.record import Record

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from hvconf.contract import Step
    from hvconf.kvm.images import Loaded
    from hvconf.kvm.ioctls.fd import KvmFd
    from hvconf.kvm.ioctls.memory import GuestMemory
    from hvconf.kvm.ioctls.system import Kvm
    from hvconf.kvm.ioctls.vcpu import Vcpu
    from hvconf.kvm.ioctls.vm import Vm


class Slot(Record):
    __slots__ = ("guest_phys_addr", "size", "region")
    guest_phys_addr: int
    size: int
    region: GuestMemory


class Machine:
    def __init__(self, kvm: Kvm, images: list[Loaded], vm: Vm | None = None, *,
                 memory: dict[int, GuestMemory] | None = None, note: Callable[[str], None] | None = None) -> None:
        self.kvm = kvm
        self.images = images
        self.vm = vm
        self.vcpus: dict[int, Vcpu] = {}
        self.memory: dict[int, GuestMemory] = {} if memory is None else memory  # "memory:N" -> its mmap
        self.loaded: set[int] = set()  # the N of the regions this VM's images were written to
        self.note = note  # a trace line, or None when the run is not traced
        self.slots: list[Slot] = []
        self.vm_fds: dict[str, KvmFd] = {}  # label -> an fd a VM step created (closing it would undo the step)
        self.pinned: dict[str, Any] = {}  # what KVM reads and writes until its vCPUs are gone ("tlb:N")
        self.family_state: dict[str, Any] = {}  # what the family's steps keep for later steps and exits
        self.lock = _thread.allocate_lock()  # for family_state: vCPU threads issue their steps concurrently

    @property
    def entry(self) -> int | None:
        """The entry point of the first image that has one (an ELF image's e_entry)."""
        return next((im.entry for im in self.images if im.entry is not None), None)

    def fd(self, step: Step) -> Vm | Vcpu | Kvm:
        if step.fd == "system":
            return self.kvm
        if step.fd == "vm":
            assert self.vm is not None  # validate() guarantees the order
            return self.vm
        return self.vcpus[step.vcpu_id or 0]

    def _slot(self, gpa: int, length: int) -> Slot | None:
        for slot in self.slots:
            if slot.guest_phys_addr <= gpa and gpa + length <= slot.guest_phys_addr + slot.size:
                return slot
        return None

    def write(self, gpa: int, data: bytes) -> None:
        """Copy `data` to guest-physical `gpa`; ValueError unless one slot holds all of it."""
        slot = self._slot(gpa, len(data))
        if slot is None:
            raise ValueError(f"{len(data)} bytes at {gpa:#x} are not inside one memory slot")
        slot.region.write(gpa - slot.guest_phys_addr, data)

    def read(self, gpa: int, length: int) -> bytes | None:
        """`length` bytes at guest-physical `gpa`, or None when no slot holds them all."""
        slot = self._slot(gpa, length)
        return None if slot is None else slot.region.read(gpa - slot.guest_phys_addr, length)

    def memory_ranges(self) -> list[tuple[int, int]]:
        return [(s.guest_phys_addr, s.size) for s in self.slots]

    def close(self, *, keep_memory: bool = False) -> None:
        for vcpu in self.vcpus.values():
            vcpu.close()
        for fd in self.vm_fds.values():
            fd.close()
        if self.vm is not None:
            self.vm.close()
        self.pinned.clear()  # after the VM: KVM keeps the arrays' pages pinned until its vCPUs are gone
        if not keep_memory:
            for region in self.memory.values():
                region.close()  # after the VM, so no slot points at unmapped memory
        self.kvm.close()
