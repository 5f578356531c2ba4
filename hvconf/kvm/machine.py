"""Machine: everything a plan has opened so far, shared by the main and the vCPU threads.

Holds the system, VM and vCPU fds, the guest memory slots and the loaded
images; reads and writes guest-physical memory by address; caches the
host's supported CPUID (asked once per run, not once per vCPU); `close()`
releases everything, newest first, and is idempotent. It issues only the
ioctls its callers ask for. Tests: tests/kvm/test_runtime.py.
"""

from __future__ import annotations

import threading

from hvconf.record import Record

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from hvconf.kvm.fd import KvmFd
    from hvconf.kvm.images import Loaded
    from hvconf.kvm.memory import GuestMemory
    from hvconf.kvm.plan import Step
    from hvconf.kvm.sw_tlb import SharedTlb
    from hvconf.kvm.system import Kvm
    from hvconf.kvm.vcpu import Vcpu
    from hvconf.kvm.vm import Vm
    from hvconf.kvm.x86 import CpuidEntry


class Slot(Record):
    __slots__ = ("guest_phys_addr", "size", "region")
    guest_phys_addr: int
    size: int
    region: GuestMemory


class Machine:
    def __init__(self, kvm: Kvm, images: list[Loaded], vm: Vm | None = None) -> None:
        self.kvm = kvm
        self.images = images
        self.vm = vm
        self.vcpus: dict[int, Vcpu] = {}
        self.memory: dict[int, GuestMemory] = {}  # "memory:N" -> its mmap
        self.slots: list[Slot] = []
        self.modes: dict[int, tuple[str, int]] = {}  # vcpu id -> (start mode, tables address)
        self.tce_tables: dict[int, KvmFd] = {}  # LIOBN -> its KVM_CREATE_SPAPR_TCE(_64) fd
        self.tlbs: dict[int, SharedTlb] = {}  # vcpu id -> the e500 TLB it shares with KVM (KVM_CAP_SW_TLB)
        self._cpuid: list[CpuidEntry] | None = None
        self._lock = threading.Lock()

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

    def supported_cpuid(self) -> list[CpuidEntry]:
        with self._lock:
            if self._cpuid is None:
                self._cpuid = self.kvm.supported_cpuid()
            return list(self._cpuid)

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

    def close(self) -> None:
        for vcpu in self.vcpus.values():
            vcpu.close()
        for table in self.tce_tables.values():
            table.close()
        if self.vm is not None:
            self.vm.close()
        self.tlbs.clear()  # after the VM: KVM keeps the arrays' pages pinned until its vCPUs are gone
        for region in self.memory.values():
            region.close()  # after the VM, so no slot points at unmapped memory
        self.kvm.close()
