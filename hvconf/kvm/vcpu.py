"""Vcpu: a vCPU fd, its mmapped kvm_run page, and the ioctls issued on it.

Registers (KVM_GET/SET_REGS, KVM_GET/SET_SREGS), KVM_SET_CPUID2,
KVM_ENABLE_CAP (shared with vm.py), and `run()` which issues KVM_RUN and returns a typed exit
(exits.py). Answers to exits are written back with complete_*. One thread
should issue all of a vCPU's ioctls; this class does not enforce it.
Tests: tests/kvm/test_runtime.py.
"""

from __future__ import annotations

import errno
import mmap
from collections.abc import Sequence
from typing import Any

from hvconf.kvm import exits
from hvconf.kvm.errors import KvmError, check
from hvconf.kvm.fd import KvmFd, Tracer, request
from hvconf.kvm.ffi import MAP_FAILED, ffi, lib
from hvconf.kvm.x86 import CpuidEntry


def enable_cap(fd: KvmFd, cap_nr: int, args: Sequence[int] = (), flags: int = 0) -> int:
    """KVM_ENABLE_CAP on a vm or vcpu fd; `args` fills args[0..3], the rest is 0."""
    if len(args) > 4:
        raise ValueError(f"KVM_ENABLE_CAP takes at most 4 args, got {len(args)}")
    cap = ffi.new("struct kvm_enable_cap *", {"cap": cap_nr, "flags": flags, "args": list(args)})
    return fd.ioctl("KVM_ENABLE_CAP", cap)


class Vcpu(KvmFd):
    """A vCPU. Attributes: `vcpu_id`, `run_size` (bytes of the kvm_run mmap), `kvm_run` (cdata)."""

    def __init__(self, fd: int, vcpu_id: int, run_size: int, tracer: Tracer | None = None) -> None:
        super().__init__(fd, f"vcpu:{vcpu_id}", tracer)
        self.vcpu_id = vcpu_id
        if run_size < ffi.sizeof("struct kvm_run"):
            raise KvmError("KVM_GET_VCPU_MMAP_SIZE", errno.EINVAL)  # smaller than the struct we read
        ptr = lib.mmap(ffi.NULL, run_size, mmap.PROT_READ | mmap.PROT_WRITE, mmap.MAP_SHARED, fd, 0)
        if ptr == MAP_FAILED:
            raise KvmError("mmap(kvm_run)", ffi.errno)
        self.run_size = run_size
        self.kvm_run: Any = ffi.cast("struct kvm_run *", ptr)
        self._run_request = request("KVM_RUN")

    @property
    def regs(self) -> Any:
        """A fresh `struct kvm_regs *` holding the vCPU's registers."""
        regs = ffi.new("struct kvm_regs *")
        self.ioctl("KVM_GET_REGS", regs)
        return regs

    def set_regs(self, regs: Any) -> int:
        return self.ioctl("KVM_SET_REGS", regs)

    @property
    def sregs(self) -> Any:
        sregs = ffi.new("struct kvm_sregs *")
        self.ioctl("KVM_GET_SREGS", sregs)
        return sregs

    def set_sregs(self, sregs: Any) -> int:
        return self.ioctl("KVM_SET_SREGS", sregs)

    def set_cpuid2(self, entries: Sequence[CpuidEntry]) -> int:
        raw = ffi.new("char[]", ffi.sizeof("struct kvm_cpuid2") + len(entries) * ffi.sizeof("struct kvm_cpuid_entry2"))
        table = ffi.cast("struct kvm_cpuid2 *", raw)
        table.nent = len(entries)
        for slot, entry in zip(table.entries[0 : len(entries)], entries):
            for name, value in vars(entry).items():
                setattr(slot, name, value)
        return self.ioctl("KVM_SET_CPUID2", table)

    def enable_cap(self, cap_nr: int, args: Sequence[int] = (), flags: int = 0) -> int:
        return enable_cap(self, cap_nr, args, flags)

    def run(self) -> exits.Exit:
        """Issue KVM_RUN once (untraced: it repeats per exit); EINTR comes back as exits.Intr."""
        ret = check(lib.ioctl(self.fd, self._run_request, ffi.cast("unsigned long", 0)), "KVM_RUN", quiet=(errno.EINTR,))
        if ret < 0:
            return exits.Intr()
        return exits.decode(self.kvm_run, self.run_size)

    def request_immediate_exit(self, on: bool = True) -> None:
        """Make the current or next KVM_RUN return EINTR at once (safe from any thread)."""
        self.kvm_run.immediate_exit = 1 if on else 0

    def complete_io_in(self, io: exits.Io, data: bytes) -> None:
        """Hand the guest the `data` its port read returns (size*count bytes)."""
        if len(data) != io.length:
            raise ValueError(f"port {io.port:#x} read wants {io.length} bytes, got {len(data)}")
        ffi.memmove(ffi.cast("char *", self.kvm_run) + io.data_offset, data, len(data))

    def complete_mmio_read(self, data: bytes) -> None:
        ffi.memmove(self.kvm_run.mmio.data, data[:8], min(len(data), 8))

    def complete_hypercall(self, ret: int) -> None:
        self.kvm_run.hypercall.ret = ret & 0xFFFF_FFFF_FFFF_FFFF

    def close(self) -> None:
        if self.kvm_run is not None:
            lib.munmap(self.kvm_run, self.run_size)
            self.kvm_run = None
        super().close()
