"""Vm: a VM fd and the ioctls issued on it, each a method named after the ioctl.

Generic: KVM_CHECK_EXTENSION, KVM_ENABLE_CAP, KVM_SET_USER_MEMORY_REGION,
KVM_CREATE_VCPU. x86: KVM_SET_TSS_ADDR, KVM_CREATE_IRQCHIP, KVM_CREATE_PIT2.
PowerPC: KVM_CREATE_SPAPR_TCE(_64), KVM_PPC_ALLOCATE_HTAB,
KVM_PPC_RTAS_DEFINE_TOKEN, KVM_PPC_GET_PVINFO, KVM_PPC_CONFIGURE_V3_MMU.
It does not own guest memory (memory.py) or decide ordering (the plan does).
Tests: tests/kvm/test_fd_classes.py, tests/kvm/test_runtime.py.
"""

from __future__ import annotations

from hvconf.kvm.ioctls.fd import KvmFd
from hvconf.kvm.ioctls.vcpu import Vcpu, enable_cap
from hvconf.record import Record

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Sequence

    from hvconf.kvm.ioctls.fd import Tracer
    from hvconf.kvm.ioctls.system import Kvm

RTAS_NAME_MAX = 120  # sizeof(kvm_rtas_token_args.name), NUL included


class PvInfo(Record):
    """KVM_PPC_GET_PVINFO. `hcall_bytes` is what the kernel stored (big-endian words): copy it
    verbatim into /hypervisor hcall-instructions; `hcall` is the same four words as numbers."""

    __slots__ = ("flags", "hcall_bytes")
    flags: int
    hcall_bytes: bytes

    @property
    def hcall(self) -> tuple[int, ...]:
        return tuple(int.from_bytes(self.hcall_bytes[i : i + 4], "big") for i in range(0, 16, 4))


class Vm(KvmFd):
    """A VM. Attribute `kvm`: the system fd it came from (for the vCPU mmap size)."""

    def __init__(self, fd: int, kvm: Kvm, tracer: Tracer | None = None, arch: str | None = None) -> None:
        super().__init__(fd, "vm", tracer, arch or kvm.arch)
        self.kvm = kvm

    def check_extension(self, cap_nr: int) -> int:
        return self.ioctl("KVM_CHECK_EXTENSION", cap_nr)

    def enable_cap(self, cap_nr: int, args: Sequence[int] = (), flags: int = 0) -> int:
        return enable_cap(self, cap_nr, args, flags)

    def set_user_memory_region(
        self, slot: int, guest_phys_addr: int, memory_size: int, userspace_addr: int, flags: int = 0
    ) -> int:
        region = self.new(
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

    def irq_line(self, irq: int, level: int) -> int:
        """KVM_IRQ_LINE (api.rst §4.25): struct kvm_irq_level {irq, level}, two u32s, to the in-kernel irqchip."""
        return self.ioctl("KVM_IRQ_LINE", self.new("uint32_t[2]", [irq, level]))

    def create_pit2(self, flags: int = 0) -> int:
        return self.ioctl("KVM_CREATE_PIT2", self.new("struct kvm_pit_config *", {"flags": flags}))

    def create_vcpu(self, vcpu_id: int) -> Vcpu:
        fd = self.ioctl("KVM_CREATE_VCPU", vcpu_id)
        try:
            return Vcpu(fd, vcpu_id, self.kvm.vcpu_mmap_size, self.tracer, self.arch)
        except BaseException:
            KvmFd(fd, "vcpu", arch=self.arch).close()
            raise

    def create_spapr_tce(self, liobn: int, window_size: int) -> KvmFd:
        """KVM_CREATE_SPAPR_TCE (4K pages, window below 4 GiB): the table fd, to mmap and close."""
        args = self.new("struct kvm_create_spapr_tce *", {"liobn": liobn, "window_size": window_size})
        return KvmFd(self.ioctl("KVM_CREATE_SPAPR_TCE", args), f"tce:{liobn:#x}", self.tracer, self.arch)

    def create_spapr_tce_64(self, liobn: int, page_shift: int, offset: int, size: int, flags: int = 0) -> KvmFd:
        """KVM_CREATE_SPAPR_TCE_64 (`offset` and `size` in IOMMU pages): the table fd."""
        args = self.new(
            "struct kvm_create_spapr_tce_64 *",
            {"liobn": liobn, "page_shift": page_shift, "flags": flags, "offset": offset, "size": size},
        )
        return KvmFd(self.ioctl("KVM_CREATE_SPAPR_TCE_64", args), f"tce:{liobn:#x}", self.tracer, self.arch)

    def create_device(self, dev_type: int, label: str, flags: int = 0) -> KvmFd:
        """KVM_CREATE_DEVICE (api.rst §4.80): the new device's fd. struct kvm_create_device is three
        u32 (type, fd out, flags), passed as such: no arch declares it differently."""
        args = self.new("uint32_t[3]", [dev_type, 0, flags])
        self.ioctl("KVM_CREATE_DEVICE", args)
        return KvmFd(int(args[1]), label, self.tracer, self.arch)

    def ppc_allocate_htab(self, order: int) -> int:
        """KVM_PPC_ALLOCATE_HTAB: the HPT order the kernel allocated (0 asks for its default)."""
        inout = self.new("uint32_t *", order)
        self.ioctl("KVM_PPC_ALLOCATE_HTAB", inout)
        return int(inout[0])

    def ppc_rtas_define_token(self, name: str, token: int) -> int:
        """KVM_PPC_RTAS_DEFINE_TOKEN: serve RTAS call `name` in-kernel under `token` (0 undefines)."""
        raw = name.encode("ascii")
        if len(raw) >= RTAS_NAME_MAX:
            raise ValueError(f"RTAS name {name!r} is longer than {RTAS_NAME_MAX - 1} bytes")
        return self.ioctl("KVM_PPC_RTAS_DEFINE_TOKEN", self.new("struct kvm_rtas_token_args *",
                                                                {"name": raw, "token": token}))  # fmt: skip

    def get_pvinfo(self) -> PvInfo:
        """KVM_PPC_GET_PVINFO (BookE and Book3S PR; Book3S HV has no ePAPR hypercalls)."""
        info = self.new("struct kvm_ppc_pvinfo *")
        self.ioctl("KVM_PPC_GET_PVINFO", info)
        return PvInfo(int(info.flags), bytes(self.ffi.buffer(info.hcall)))

    def ppc_configure_v3_mmu(self, flags: int, process_table: int) -> int:
        """KVM_PPC_CONFIGURE_V3_MMU (POWER9: radix or HPT, and the process table)."""
        cfg = self.new("struct kvm_ppc_mmuv3_cfg *", {"flags": flags, "process_table": process_table})
        return self.ioctl("KVM_PPC_CONFIGURE_V3_MMU", cfg)
