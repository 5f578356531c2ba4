"""Vm: a VM fd and the ioctls issued on it.

KVM_ENABLE_CAP, KVM_CHECK_EXTENSION, KVM_SET_USER_MEMORY_REGION,
KVM_SET_TSS_ADDR, KVM_CREATE_IRQCHIP, KVM_CREATE_PIT2 and KVM_CREATE_VCPU,
each a method named after the ioctl. It does not own guest memory (see
memory.py) or decide ordering (the plan does). Tests: tests/kvm/.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from hvconf.kvm.fd import KvmFd, Tracer
from hvconf.kvm.ffi import ffi
from hvconf.kvm.vcpu import Vcpu, enable_cap

if TYPE_CHECKING:
    from hvconf.kvm.system import Kvm


class Vm(KvmFd):
    """A VM. Attribute `kvm`: the system fd it came from (for the vCPU mmap size)."""

    def __init__(self, fd: int, kvm: Kvm, tracer: Tracer | None = None) -> None:
        super().__init__(fd, "vm", tracer)
        self.kvm = kvm

    def check_extension(self, cap_nr: int) -> int:
        return self.ioctl("KVM_CHECK_EXTENSION", cap_nr)

    def enable_cap(self, cap_nr: int, args: Sequence[int] = (), flags: int = 0) -> int:
        return enable_cap(self, cap_nr, args, flags)

    def set_user_memory_region(
        self, slot: int, guest_phys_addr: int, memory_size: int, userspace_addr: int, flags: int = 0
    ) -> int:
        region = ffi.new(
            "struct kvm_userspace_memory_region *",
            {
                "slot": slot,
                "flags": flags,
                "guest_phys_addr": guest_phys_addr,
                "memory_size": memory_size,
                "userspace_addr": userspace_addr,
            },
        )
        return self.ioctl("KVM_SET_USER_MEMORY_REGION", region)

    def set_tss_addr(self, addr: int) -> int:
        return self.ioctl("KVM_SET_TSS_ADDR", addr)

    def create_irqchip(self) -> int:
        return self.ioctl("KVM_CREATE_IRQCHIP")

    def create_pit2(self, flags: int = 0) -> int:
        return self.ioctl("KVM_CREATE_PIT2", ffi.new("struct kvm_pit_config *", {"flags": flags}))

    def create_vcpu(self, vcpu_id: int) -> Vcpu:
        mmap_size = self.kvm.vcpu_mmap_size
        fd = self.ioctl("KVM_CREATE_VCPU", vcpu_id)
        try:
            return Vcpu(fd, vcpu_id, mmap_size, self.tracer)
        except BaseException:
            KvmFd(fd, "vcpu").close()
            raise
