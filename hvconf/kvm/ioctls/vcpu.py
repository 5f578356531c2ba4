"""Vcpu: a vCPU fd, its mmapped kvm_run, and the ioctls issued on it.

Registers in the fd's arch layout (KVM_GET/SET_REGS, KVM_GET/SET_SREGS,
KVM_GET/SET_ONE_REG), KVM_SET_CPUID2 (x86), KVM_DIRTY_TLB (e500),
KVM_S390_SET_INITIAL_PSW, KVM_ENABLE_CAP (shared with vm.py), and `run()`, which issues KVM_RUN and
returns a typed exit (kvm_run.py). Answers go back through complete_* on the
same buffer. One thread should issue all of a vCPU's ioctls; this class does
not enforce it. Tests: tests/kvm/test_fd_classes.py, tests/kvm/test_runtime.py.
"""

from __future__ import annotations

import errno
import mmap
import sys

from hvconf.contract import ARCHES
from hvconf.kvm.ioctls.kvm_run import Intr, KvmRun
from hvconf.kvm.ioctls.errors import KvmError, check
from hvconf.kvm.ioctls.fd import KvmFd, request
from hvconf.kvm.ioctls.ffi import ARCH, MAP_FAILED, ffi, lib

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence
    from typing import Any

    import hvconf.abi
    from hvconf.contract import ByteOrder
    from hvconf.kvm.ioctls.fd import Tracer
    from hvconf.kvm.ioctls.kvm_run import Exit, Io
    from hvconf.kvm.ioctls.system import CpuidEntry

KVM_REG_SIZE_SHIFT = 52
KVM_REG_SIZE_MASK = 0x00F0_0000_0000_0000  # log2 of the register's size in bytes (linux/kvm.h)
SIGSET_BYTES = 8  # the kernel's sigset_t: _NSIG 64 bits on every arch hvconf serves
ZERO = ffi.cast("unsigned long", 0)  # KVM_RUN's (unused) variadic argument, made once, not per exit


def enable_cap(fd: KvmFd, cap_nr: int, args: Sequence[int] = (), flags: int = 0) -> int:
    """KVM_ENABLE_CAP on a vm or vcpu fd; `args` fills args[0..3], the rest is 0."""
    if len(args) > 4:
        raise ValueError(f"KVM_ENABLE_CAP takes at most 4 args, got {len(args)}")
    cap = fd.new("struct kvm_enable_cap *", {"cap": cap_nr, "flags": flags, "args": list(args)})
    return fd.ioctl("KVM_ENABLE_CAP", cap)


def one_reg_size(reg_id: int) -> int:
    """Bytes of the ONE_REG register `reg_id` (KVM_REG_SIZE_U8 .. U2048 in bits 52-55)."""
    return 1 << ((reg_id & KVM_REG_SIZE_MASK) >> KVM_REG_SIZE_SHIFT)


class Vcpu(KvmFd):
    """A vCPU. Attributes: `vcpu_id`, `run_size` (bytes of the kvm_run mmap), `kvm_run` (cdata,
    for immediate_exit), `run_view` (KvmRun over the same mmap: decode and complete)."""

    def __init__(
        self,
        fd: int,
        vcpu_id: int,
        run_size: int,
        tracer: Tracer | None = None,
        arch: str = ARCH,
        proposed: hvconf.abi.ProposedAbi | None = None,
    ) -> None:
        super().__init__(fd, f"vcpu:{vcpu_id}", tracer, arch)
        self.vcpu_id = vcpu_id
        if run_size < self.ffi.sizeof("struct kvm_run"):
            raise KvmError("KVM_GET_VCPU_MMAP_SIZE", errno.EINVAL)  # smaller than the struct we read
        ptr = lib.mmap(ffi.NULL, run_size, mmap.PROT_READ | mmap.PROT_WRITE, mmap.MAP_SHARED, fd, 0)
        if ptr == MAP_FAILED:
            raise KvmError("mmap(kvm_run)", ffi.errno)
        self.run_size = run_size
        self.kvm_run: Any = self.ffi.cast("struct kvm_run *", ptr)
        self.run_view: KvmRun | None = KvmRun(ffi.buffer(ptr, run_size), arch, proposed)
        self._run_request = request("KVM_RUN", arch)
        self._ioctl = lib.ioctl  # looked up once: run() is called once per exit

    @property
    def _byteorder(self) -> ByteOrder:
        """How this vCPU's kernel stores a ONE_REG value (the arch's record; an unknown arch's: little)."""
        record = ARCHES.get(self.arch)
        return record.byteorder if record is not None else "little"

    @property
    def regs(self) -> Any:
        """A fresh `struct kvm_regs *` (this arch's layout) holding the vCPU's registers."""
        regs = self.new("struct kvm_regs *")
        self.ioctl("KVM_GET_REGS", regs)
        return regs

    def set_regs(self, regs: Any) -> int:
        return self.ioctl("KVM_SET_REGS", regs)

    @property
    def sregs(self) -> Any:
        """A fresh `struct kvm_sregs *` (x86 segments; PowerPC pvr + Book3S/BookE `u`; s390 acrs/crs)."""
        sregs = self.new("struct kvm_sregs *")
        self.ioctl("KVM_GET_SREGS", sregs)
        return sregs

    def set_sregs(self, sregs: Any) -> int:
        return self.ioctl("KVM_SET_SREGS", sregs)

    def get_one_reg(self, reg_id: int) -> int:
        """KVM_GET_ONE_REG: register `reg_id` as an unsigned integer (its size comes from the id)."""
        value = self.new("uint8_t[]", one_reg_size(reg_id))
        self._one_reg("KVM_GET_ONE_REG", reg_id, value)
        return int.from_bytes(bytes(value), self._byteorder)

    def set_one_reg(self, reg_id: int, value: int) -> int:
        """KVM_SET_ONE_REG: store `value` (two's complement when negative) in register `reg_id`."""
        size = one_reg_size(reg_id)
        raw = (value & ((1 << 8 * size) - 1)).to_bytes(size, self._byteorder)
        return self._one_reg("KVM_SET_ONE_REG", reg_id, self.new("uint8_t[]", raw))

    def _one_reg(self, ioctl: str, reg_id: int, value: Any) -> int:
        address = int(ffi.cast("uintptr_t", ffi.cast("void *", value)))
        return self.ioctl(ioctl, self.new("struct kvm_one_reg *", {"id": reg_id, "addr": address}))

    def set_cpuid2(self, entries: Sequence[CpuidEntry]) -> int:
        table = self.new("struct kvm_cpuid2 *", {"entries": len(entries)})
        table.nent = len(entries)
        for slot, entry in zip(table.entries[0 : len(entries)], entries):
            for name in entry.__slots__:
                setattr(slot, name, getattr(entry, name))
        return self.ioctl("KVM_SET_CPUID2", table)

    def dirty_tlb(self, bitmap: int, num_dirty: int) -> int:
        """KVM_DIRTY_TLB (e500): `bitmap` is the address of one bit per shared-TLB entry changed."""
        dirty = self.new("struct kvm_dirty_tlb *", {"bitmap": bitmap, "num_dirty": num_dirty})
        return self.ioctl("KVM_DIRTY_TLB", dirty)

    def s390_set_initial_psw(self, mask: int, addr: int) -> int:
        """KVM_S390_SET_INITIAL_PSW: where (and in which mode) the vCPU starts."""
        return self.ioctl("KVM_S390_SET_INITIAL_PSW", self.new("struct kvm_s390_psw *", {"mask": mask, "addr": addr}))

    def enable_cap(self, cap_nr: int, args: Sequence[int] = (), flags: int = 0) -> int:
        return enable_cap(self, cap_nr, args, flags)

    def run(self) -> Exit:
        """Issue KVM_RUN once (untraced: it repeats per exit); EINTR comes back as Intr."""
        ret = self._ioctl(self.fd, self._run_request, ZERO)
        if ret < 0 and check(ret, "KVM_RUN", quiet=(errno.EINTR,)) < 0:
            return Intr()
        return self._view().decode()

    def set_signal_mask(self, blocked: Iterable[int]) -> int:
        """KVM_SET_SIGNAL_MASK: the signals blocked while this vCPU is in KVM_RUN (api.rst,
        KVM_SET_SIGNAL_MASK). One not blocked there that is pending, or arrives, makes KVM_RUN return
        EINTR; the thread's own mask is back when it returns, so a signal blocked in the thread stays
        pending for it to take (QEMU's kvm_init_cpu_signals, accel/kvm/kvm-all.c, does this with SIG_IPI)."""
        mask = sum(1 << (signo - 1) for signo in set(blocked))
        # struct kvm_signal_mask: __u32 len, then len bytes of sigset, in the host's byte order
        data = SIGSET_BYTES.to_bytes(4, sys.byteorder) + mask.to_bytes(SIGSET_BYTES, sys.byteorder)
        return self.ioctl("KVM_SET_SIGNAL_MASK", ffi.from_buffer(data))

    def request_immediate_exit(self, on: bool = True) -> None:
        """Make the current or next KVM_RUN return EINTR at once (safe from any thread)."""
        if self.kvm_run is not None:
            self.kvm_run.immediate_exit = 1 if on else 0

    def _view(self) -> KvmRun:
        if self.run_view is None:
            raise ValueError(f"{self.label} is closed")
        return self.run_view

    def complete_io_in(self, io: Io, data: bytes) -> None:
        """Hand the guest the `data` its port read returns (size*count bytes)."""
        self._view().complete_io_in(io, data)

    def complete_mmio_read(self, data: bytes) -> None:
        self._view().complete_mmio_read(data[:8])

    def complete_hypercall(self, ret: int) -> None:
        self._view().complete_hypercall(ret)

    def complete_papr_hcall(self, ret: int, args: Mapping[int, int] | None = None) -> None:
        self._view().complete_papr_hcall(ret, args)

    def complete_epapr_hcall(self, ret: int, args: Mapping[int, int] | None = None) -> None:
        self._view().complete_epapr_hcall(ret, args)

    def close(self) -> None:
        if self.run_view is not None:
            self.run_view.view.release()  # later reads fail cleanly instead of touching unmapped memory
            self.run_view = None
        if self.kvm_run is not None:
            lib.munmap(self.kvm_run, self.run_size)
            self.kvm_run = None
        super().close()
