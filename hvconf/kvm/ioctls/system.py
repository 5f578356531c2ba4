"""Kvm: the system fd (/dev/kvm) and the ioctls issued on it.

Opens /dev/kvm O_RDWR|O_CLOEXEC; answers KVM_GET_API_VERSION,
KVM_CHECK_EXTENSION, KVM_GET_VCPU_MMAP_SIZE and KVM_GET_SUPPORTED_CPUID
(x86: a list of CpuidEntry, one struct kvm_cpuid_entry2 each); creates VMs.
Knows nothing about plans. Tests: tests/kvm/test_fd_classes.py,
tests/kvm/test_runtime.py.
"""

from __future__ import annotations

import errno
import os

from hvconf.kvm.ioctls.errors import KvmError
from hvconf.kvm.ioctls.fd import KvmFd
from hvconf.kvm.ioctls.ffi import ARCH
from hvconf.kvm.ioctls.vm import Vm
from hvconf.record import Record

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from hvconf.kvm.ioctls.fd import Tracer

DEV_KVM = "/dev/kvm"


class CpuidEntry(Record):
    """One struct kvm_cpuid_entry2 (x86), as KVM_GET_SUPPORTED_CPUID answers and KVM_SET_CPUID2 takes it."""

    __slots__ = ("function", "index", "flags", "eax", "ebx", "ecx", "edx")
    _defaults = {"index": 0, "flags": 0, "eax": 0, "ebx": 0, "ecx": 0, "edx": 0}
    function: int
    index: int
    flags: int
    eax: int
    ebx: int
    ecx: int
    edx: int


class Kvm(KvmFd):
    """The open /dev/kvm. Raises OSError when it cannot be opened."""

    def __init__(self, path: str = DEV_KVM, tracer: Tracer | None = None) -> None:
        super().__init__(os.open(path, os.O_RDWR | os.O_CLOEXEC), "system", tracer)

    @classmethod
    def from_fd(cls, fd: int, tracer: Tracer | None = None, arch: str = ARCH) -> Kvm:
        """A Kvm owning an fd opened elsewhere (or, in tests, a closed one and another arch)."""
        kvm = cls.__new__(cls)
        KvmFd.__init__(kvm, fd, "system", tracer, arch)
        return kvm

    @property
    def api_version(self) -> int:
        return self.ioctl("KVM_GET_API_VERSION")

    def check_extension(self, cap_nr: int) -> int:
        """KVM_CHECK_EXTENSION: 0 when the cap is absent, else a cap-specific positive value."""
        return self.ioctl("KVM_CHECK_EXTENSION", cap_nr)

    @property
    def vcpu_mmap_size(self) -> int:
        return self.ioctl("KVM_GET_VCPU_MMAP_SIZE")

    def create_vm(self, vm_type: int = 0) -> Vm:
        return Vm(self.ioctl("KVM_CREATE_VM", vm_type), self, self.tracer, self.arch)

    def supported_cpuid(self, max_entries: int = 128) -> list[CpuidEntry]:
        """KVM_GET_SUPPORTED_CPUID, growing the buffer while the kernel says E2BIG."""
        while True:
            table = self.new("struct kvm_cpuid2 *", {"entries": max_entries})
            table.nent = max_entries
            if self.ioctl("KVM_GET_SUPPORTED_CPUID", table, quiet=(errno.E2BIG,)) >= 0:
                break
            if max_entries >= 4096:
                raise KvmError("KVM_GET_SUPPORTED_CPUID", errno.E2BIG)
            max_entries *= 2
        return [CpuidEntry(**{f: getattr(e, f) for f in CpuidEntry.__slots__}) for e in table.entries[0 : table.nent]]
