"""The base of Kvm, Vm and Vcpu: one owned KVM file descriptor and its ioctls.

`KvmFd.ioctl(name, arg)` looks the request number up (numbers.py, generated
from hvconf.abi; hvconf.abi itself for what that lacks) for the
fd's arch (the host's unless told otherwise: a foreign arch only makes sense
on a closed fd in tests, to prove request numbers and marshalling), tells an
optional tracer, issues the call and passes the result through errors.check.
Closing is idempotent. It knows no particular ioctl.
Tests: tests/kvm/test_errors.py, tests/kvm/test_fd_classes.py.
"""

from __future__ import annotations

import os

from hvconf.contract import ARCHES
from hvconf.kvm.ioctls import numbers
from hvconf.kvm.ioctls.errors import check
from hvconf.kvm.ioctls.ffi import ARCH, ffi, ffi_for, lib

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Callable, Collection
    from types import TracebackType
    from typing import Any

    # tracer(fd label, ioctl name, request number), called before the ioctl is issued
    Tracer = Callable[[str, str, int], None]


def request(name: str, arch: str = ARCH) -> int:
    """The request number of ioctl `name` on `arch` (default: this host's)."""
    record = ARCHES.get(arch)
    if record is not None and name not in numbers.NOT_ON_ARCH.get(arch, ()):
        number = numbers.REQUESTS[record.layout].get(name) or numbers.SHARED.get(record.ioc, {}).get(name)
        if number is not None:
            return number
    import hvconf.abi  # a name or arch the numbers lack: hvconf.abi raises AbiError, with a "did you mean"

    return hvconf.abi.request(name, arch)


class KvmFd:
    """An open KVM fd. Attributes: `fd` (-1 once closed), `label` ("system", "vm", "vcpu:N"),
    `arch` (whose request numbers and structs it uses), `ffi` (that arch's declarations)."""

    def __init__(self, fd: int, label: str, tracer: Tracer | None = None, arch: str = ARCH) -> None:
        self.fd = fd
        self.label = label
        self.tracer = tracer
        self.arch = arch
        self.ffi: Any = ffi_for(arch)

    def ioctl(self, name: str, arg: Any = 0, *, quiet: Collection[int] = ()) -> int:
        """Issue ioctl `name` with `arg` (an int by value, or a cdata pointer)."""
        number = request(name, self.arch)
        if self.tracer is not None:
            self.tracer(self.label, name, number)
        # variadic: the C type must be explicit; a foreign arch's pointer becomes the host's void *
        arg = ffi.cast("unsigned long", arg) if isinstance(arg, int) else ffi.cast("void *", arg)
        return check(lib.ioctl(self.fd, number, arg), name, quiet=quiet)

    def new(self, ctype: str, init: Any = None) -> Any:
        """`self.ffi.new(ctype, init)`, naming the arch when its declarations lack the type."""
        try:
            return self.ffi.new(ctype, init)
        except self.ffi.error:
            what = ctype.rstrip(" *[]")
            raise TypeError(f"{what} is not declared for {self.arch} (hvconf/kvm/ioctls/cdefs)") from None

    def close(self) -> None:
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            os.close(fd)

    def __enter__(self) -> KvmFd:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
