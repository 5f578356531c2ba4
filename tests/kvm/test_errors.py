"""The errno boundary (hvconf.kvm.ioctls.errors) and ioctls on fds that are not KVM.

These need no /dev/kvm: a closed fd gives EBADF and /dev/null gives ENOTTY
on any Linux host, which is exactly the path every real failure takes.
"""

from __future__ import annotations

import errno
import os

import pytest

from hvconf.kvm.ioctls.errors import KvmError, check
from hvconf.kvm.ioctls.fd import KvmFd
from hvconf.kvm.ioctls.ffi import ffi, lib


def closed_fd() -> int:
    fd = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
    os.close(fd)
    return fd


def test_ioctl_on_a_closed_fd_raises_ebadf():
    with pytest.raises(KvmError) as caught:
        KvmFd(closed_fd(), "system").ioctl("KVM_GET_API_VERSION")
    assert (caught.value.ioctl, caught.value.errno, caught.value.source) == ("KVM_GET_API_VERSION", errno.EBADF, None)
    assert str(caught.value) == "KVM_GET_API_VERSION failed: EBADF: Bad file descriptor"


def test_ioctl_with_a_struct_on_a_non_kvm_fd_raises_enotty():
    fd = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
    with KvmFd(fd, "vcpu:0") as vcpu:
        with pytest.raises(KvmError) as caught:
            vcpu.ioctl("KVM_GET_REGS", ffi.new("struct kvm_regs *"))
    assert caught.value.errno == errno.ENOTTY
    assert vcpu.fd == -1
    with pytest.raises(OSError):
        os.fstat(fd)  # closed by the context manager


def test_close_is_idempotent():
    fd = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
    kvm_fd = KvmFd(fd, "vm")
    kvm_fd.close()
    kvm_fd.close()
    assert kvm_fd.fd == -1


def test_message_names_ioctl_errno_strerror_and_source():
    err = KvmError("KVM_SET_CPUID2", errno.E2BIG, "samples/x86-hello.hv:8:5")
    assert str(err) == "KVM_SET_CPUID2 failed: E2BIG: Argument list too long (step at samples/x86-hello.hv:8:5)"
    assert "\n" not in str(err)


def test_at_attributes_an_error_to_a_step():
    err = KvmError("KVM_RUN", errno.EFAULT).at("a.hv:1:2")
    assert (err.ioctl, err.errno, err.source) == ("KVM_RUN", errno.EFAULT, "a.hv:1:2")


def test_unknown_errno_still_formats():
    assert str(KvmError("KVM_RUN", 4095)).startswith("KVM_RUN failed: errno 4095: ")


def test_check_passes_non_negative_returns_through():
    assert check(0, "KVM_CREATE_VM") == 0
    assert check(7, "KVM_CREATE_VM") == 7


def test_check_returns_minus_errno_for_quiet_errors_and_raises_others():
    ret = lib.ioctl(closed_fd(), 0xAE00, ffi.cast("unsigned long", 0))
    assert check(ret, "KVM_GET_API_VERSION", quiet=(errno.EBADF,)) == -errno.EBADF
    ret = lib.ioctl(closed_fd(), 0xAE00, ffi.cast("unsigned long", 0))
    with pytest.raises(KvmError) as caught:
        check(ret, "KVM_GET_API_VERSION", "p.hv:3:1", quiet=(errno.EINTR,))
    assert caught.value.errno == errno.EBADF and caught.value.source == "p.hv:3:1"
