"""The single errno boundary of the runtime: a failed ioctl becomes a KvmError.

Every C call that can fail goes through `check` (pylibfdt's check_err):
a non-negative return passes through, a negative one raises KvmError
naming the ioctl, the errno and the plan step's source, unless the errno
is listed in `quiet`, in which case -errno is returned for the caller to
handle. Nothing here issues an ioctl. Tests: tests/kvm/test_errors.py.
"""

from __future__ import annotations

import errno as _errno
import os

from hvconf.kvm.ioctls.ffi import ffi

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Collection


class KvmError(Exception):
    """An ioctl (or mmap) on a KVM fd failed.

    Attributes: `ioctl` (the Linux name, e.g. "KVM_CREATE_VM"), `errno`,
    `source` (the plan step's `file:line:col`, or None outside a plan).
    """

    def __init__(self, ioctl: str, errno: int, source: str | None = None) -> None:
        super().__init__(ioctl, errno, source)
        self.ioctl = ioctl
        self.errno = errno
        self.source = source

    @property
    def errno_name(self) -> str:
        return _errno.errorcode.get(self.errno, f"errno {self.errno}")

    def __str__(self) -> str:
        where = f" (step at {self.source})" if self.source else ""
        return f"{self.ioctl} failed: {self.errno_name}: {os.strerror(self.errno)}{where}"

    def at(self, source: str | None) -> KvmError:
        """The same error, attributed to the plan step at `source`."""
        return KvmError(self.ioctl, self.errno, source)


class UnexpectedResult(KvmError):
    """An ioctl succeeded but answered something other than what the plan asked for
    (KVM_PPC_ALLOCATE_HTAB allocating another order). `errno` is 0."""

    def __init__(self, ioctl: str, wanted: str, got: str, source: str | None = None) -> None:
        super().__init__(ioctl, 0, source)
        self.wanted, self.got = wanted, got

    def __str__(self) -> str:
        where = f" (step at {self.source})" if self.source else ""
        return f"{self.ioctl} gave {self.got}, the plan asked for {self.wanted}{where}"

    def at(self, source: str | None) -> KvmError:
        return UnexpectedResult(self.ioctl, self.wanted, self.got, source)


def check(ret: int, ioctl: str, source: str | None = None, quiet: Collection[int] = ()) -> int:
    """`ret` if it is >= 0; -errno if the call's errno is in `quiet`; else raise KvmError.

    Call it right after the C call: it reads cffi's saved errno of this thread.
    """
    if ret >= 0:
        return ret
    err = ffi.errno
    if err in quiet:
        return -err
    raise KvmError(ioctl, err, source)
