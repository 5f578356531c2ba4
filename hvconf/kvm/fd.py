"""The base of Kvm, Vm and Vcpu: one owned KVM file descriptor and its ioctls.

`KvmFd.ioctl(name, arg)` looks the request number up in hvconf.abi for the
arch the cdefs describe, tells an optional tracer, issues the call and
passes the result through errors.check. Closing is idempotent. It knows no
particular ioctl. Tests: tests/kvm/test_errors.py.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection
from types import TracebackType
from typing import Any

import hvconf.abi
from hvconf.kvm.errors import check
from hvconf.kvm.ffi import ARCH, ffi, lib

# tracer(fd label, ioctl name, request number), called before the ioctl is issued
Tracer = Callable[[str, str, int], None]


def request(name: str) -> int:
    """The request number of ioctl `name` for the arch of these cdefs."""
    return hvconf.abi.request(name, ARCH)


class KvmFd:
    """An open KVM fd. Attributes: `fd` (-1 once closed), `label` ("system", "vm", "vcpu:N")."""

    def __init__(self, fd: int, label: str, tracer: Tracer | None = None) -> None:
        self.fd = fd
        self.label = label
        self.tracer = tracer

    def ioctl(self, name: str, arg: Any = 0, *, quiet: Collection[int] = ()) -> int:
        """Issue ioctl `name` with `arg` (an int by value, or a cdata pointer)."""
        number = request(name)
        if self.tracer is not None:
            self.tracer(self.label, name, number)
        if isinstance(arg, int):
            arg = ffi.cast("unsigned long", arg)  # variadic: the C type must be explicit
        return check(lib.ioctl(self.fd, number, arg), name, quiet=quiet)

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
