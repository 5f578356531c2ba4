"""Typed vCPU exits, decoded from the kvm_run buffer after KVM_RUN returns.

`decode(run, size)` reads `exit_reason` and the matching member of the exit
union and returns one frozen dataclass per kind; it never writes to the
buffer (answers go back through Vcpu.complete_*). Offsets that the kernel
hands over (io.data_offset) are checked against the mmap before any read.
Exit numbers come from hvconf.abi. Tests: tests/kvm/test_exits.py.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import hvconf.abi
from hvconf.kvm.ffi import ffi

KVM_EXIT_IO_IN, KVM_EXIT_IO_OUT = 0, 1
IO_SIZES = (1, 2, 4)


class BadExit(ValueError):
    """The kvm_run buffer describes an exit that cannot be real (e.g. I/O data outside the mmap)."""


@dataclass(frozen=True)
class Io:
    """Port I/O. `data` holds size*count bytes for "out" and is empty for "in"."""

    direction: Literal["in", "out"]
    size: int
    port: int
    count: int
    data: bytes
    data_offset: int

    @property
    def length(self) -> int:
        return self.size * self.count


@dataclass(frozen=True)
class Mmio:
    """A guest access to unbacked guest-physical memory. `data` is len bytes (write) or zeros (read)."""

    phys_addr: int
    data: bytes
    is_write: bool


@dataclass(frozen=True)
class Hlt:
    """The guest executed HLT (only exits to userspace without an in-kernel irqchip)."""


@dataclass(frozen=True)
class Shutdown:
    """The guest shut down: on x86 a triple fault."""


@dataclass(frozen=True)
class Hypercall:
    """KVM_EXIT_HYPERCALL: a hypercall KVM_CAP_EXIT_HYPERCALL forwards to userspace."""

    nr: int
    args: tuple[int, ...]
    longmode: int


@dataclass(frozen=True)
class InternalError:
    """KVM could not handle the exit itself (e.g. emulation failure)."""

    suberror: int
    data: tuple[int, ...]


@dataclass(frozen=True)
class FailEntry:
    """The hardware refused to enter the guest (bad guest state)."""

    reason: int
    cpu: int


@dataclass(frozen=True)
class Intr:
    """KVM_RUN returned EINTR: a signal (the watchdog's, or immediate_exit) interrupted it."""


@dataclass(frozen=True)
class SystemEvent:
    """The guest asked for a shutdown, reset, crash report... (KVM_SYSTEM_EVENT_* in `type`)."""

    type: int
    data: tuple[int, ...]


@dataclass(frozen=True)
class Unknown:
    """An exit reason this runtime does not decode."""

    reason: int

    @property
    def name(self) -> str:
        return exit_name(self.reason)


Exit = Io | Mmio | Hlt | Shutdown | Hypercall | InternalError | FailEntry | Intr | SystemEvent | Unknown


def exit_name(reason: int) -> str:
    """The KVM_EXIT_* name of `reason`, or "exit reason N" when the ABI tables do not know it."""
    try:
        return hvconf.abi.exit_reason(reason).name
    except hvconf.abi.AbiError:
        return f"exit reason {reason}"


def decode(run: Any, size: int) -> Exit:
    """The exit described by `run` (a `struct kvm_run *` over an mmap of `size` bytes)."""
    decoder = _reason2decoder().get(run.exit_reason)
    return decoder(run, size) if decoder else Unknown(run.exit_reason)


def _io(run: Any, size: int) -> Io:
    io = run.io
    if io.direction not in (KVM_EXIT_IO_IN, KVM_EXIT_IO_OUT) or io.size not in IO_SIZES:
        raise BadExit(f"KVM_EXIT_IO with direction {io.direction} and size {io.size}")
    end = io.data_offset + io.size * io.count
    if io.data_offset < ffi.sizeof("struct kvm_run") or end > size:
        raise BadExit(f"KVM_EXIT_IO data [{io.data_offset:#x}, {end:#x}) lies outside the {size}-byte kvm_run mmap")
    out = io.direction == KVM_EXIT_IO_OUT
    data = ffi.buffer(ffi.cast("char *", run) + io.data_offset, end - io.data_offset)[:] if out else b""
    return Io("out" if out else "in", io.size, io.port, io.count, data, io.data_offset)


def _mmio(run: Any, size: int) -> Mmio:
    mmio = run.mmio
    if mmio.len > 8:
        raise BadExit(f"KVM_EXIT_MMIO of {mmio.len} bytes (at most 8)")
    data = bytes(mmio.data[0 : mmio.len]) if mmio.is_write else bytes(mmio.len)
    return Mmio(mmio.phys_addr, data, bool(mmio.is_write))


def _hypercall(run: Any, size: int) -> Hypercall:
    hc = run.hypercall
    return Hypercall(hc.nr, tuple(hc.args), hc.longmode)


def _ndata(reason: str, ndata: int) -> int:
    if ndata > 16:
        raise BadExit(f"{reason} with ndata {ndata} (at most 16)")
    return ndata


def _internal(run: Any, size: int) -> InternalError:
    internal = run.internal
    n = _ndata("KVM_EXIT_INTERNAL_ERROR", internal.ndata)
    return InternalError(internal.suberror, tuple(internal.data[0:n]))


def _system_event(run: Any, size: int) -> SystemEvent:
    event = run.system_event
    n = _ndata("KVM_EXIT_SYSTEM_EVENT", event.ndata)
    return SystemEvent(event.type, tuple(event.data[0:n]))


def _fail_entry(run: Any, size: int) -> FailEntry:
    return FailEntry(run.fail_entry.hardware_entry_failure_reason, run.fail_entry.cpu)


NAME2DECODER: dict[str, Callable[[Any, int], Exit]] = {
    "KVM_EXIT_IO": _io,
    "KVM_EXIT_MMIO": _mmio,
    "KVM_EXIT_HLT": lambda run, size: Hlt(),
    "KVM_EXIT_SHUTDOWN": lambda run, size: Shutdown(),
    "KVM_EXIT_HYPERCALL": _hypercall,
    "KVM_EXIT_INTERNAL_ERROR": _internal,
    "KVM_EXIT_FAIL_ENTRY": _fail_entry,
    "KVM_EXIT_INTR": lambda run, size: Intr(),
    "KVM_EXIT_SYSTEM_EVENT": _system_event,
}


@functools.cache
def _reason2decoder() -> dict[int, Callable[[Any, int], Exit]]:
    # Numbers from the ABI tables, resolved once; the names above are the contract.
    return {hvconf.abi.exit_reason(name).number: fn for name, fn in NAME2DECODER.items()}
