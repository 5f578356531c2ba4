"""The mmap'd struct kvm_run: typed vCPU exits decoded from it, and the answers written back into it.

`decode(buffer, arch, proposed)` reads exit_reason and the matching member of
the exit union at `arch`'s offsets and byte order (any arch on any host: the
buffer may be the vCPU mmap or bytes built by a test) and returns one frozen
immutable record per kind. Everything the guest or a corrupt buffer controls is
checked before use; a buffer no kernel could have written raises BadExit.
`KvmRun.complete_*` write results exactly where the kernel reads them on the
next KVM_RUN. KVM_EXIT_EPAPR_HCALL (unmerged: docs/kernel-facts.md#the-unmerged-epapr-proposal) decodes only when
`proposed` numbers it. Which exits the runtime serves and how is the layers
above's business (hvconf/kvm/vcpu_loop.py, hvconf/kvm/<family>/exits.py).
Tests: tests/kvm/test_exits.py, tests/kvm/test_buffers_*.py.
"""

from __future__ import annotations

import struct

from hvconf.kvm.ioctls import numbers
from hvconf.kvm.ioctls.cdefs.layout import RunLayout, run_layout
from hvconf.kvm.ioctls.ffi import ARCH
from hvconf.record import Record, positional

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any, Literal

    import hvconf.abi

KVM_EXIT_IO_IN, KVM_EXIT_IO_OUT = 0, 1
IO_SIZES = (1, 2, 4)
MMIO_MAX = 8  # sizeof(mmio.data)
NDATA_MAX = 16  # internal.data[16], system_event.data[16]
# The proposed epapr_hcall member {u64 nr; u64 ret; u64 args[8]} at the union
# (hvconf/abi/data/proposed.toml [epapr_hcall]; in no kernel header).
EPAPR_NR, EPAPR_RET, EPAPR_ARGS, EPAPR_NARGS = 0, 8, 16, 8
U64 = (1 << 64) - 1
# What every exit needs read, in offset order: one struct.unpack_from per KVM_RUN (see KvmRun.decode).
HEAD = ("exit_reason", "io.direction", "io.size", "io.port", "io.count", "io.data_offset")
_CODES = {1: "B", 2: "H", 4: "I", 8: "Q"}


class BadExit(ValueError):
    """The kvm_run buffer describes an exit that cannot be real (e.g. I/O data outside the mmap)."""


@positional  # one per port-I/O exit: not Record's generic argument matching
class Io(Record):
    """Port I/O. `data` holds size*count bytes for "out" and is empty for "in"."""

    __slots__ = ("direction", "size", "port", "count", "data", "data_offset")
    direction: Literal["in", "out"]
    size: int
    port: int
    count: int
    data: bytes
    data_offset: int

    @property
    def length(self) -> int:
        return self.size * self.count


class Mmio(Record):
    """A guest access to unbacked guest-physical memory. `data` is len bytes (write) or zeros (read)."""

    __slots__ = ("phys_addr", "data", "is_write")
    phys_addr: int
    data: bytes
    is_write: bool


class Hlt(Record):
    """The guest executed HLT (only exits to userspace without an in-kernel irqchip)."""

    __slots__ = ()


class Shutdown(Record):
    """The guest shut down: on x86 a triple fault."""

    __slots__ = ()


class Hypercall(Record):
    """KVM_EXIT_HYPERCALL (x86): a hypercall KVM_CAP_EXIT_HYPERCALL forwards to userspace."""

    __slots__ = ("nr", "args", "longmode")
    nr: int
    args: tuple[int, ...]
    longmode: int


class PaprHcall(Record):
    """KVM_EXIT_PAPR_HCALL: `nr` from r3, `args` r4..r12; ret goes to r3, args[] back to r4.."""

    __slots__ = ("nr", "args")
    nr: int
    args: tuple[int, ...]


class EpaprHcall(Record):
    """The proposed KVM_EXIT_EPAPR_HCALL: `nr` (token) from r11, `args` r3..r10."""

    __slots__ = ("nr", "args")
    nr: int
    args: tuple[int, ...]


class Osi(Record):
    """KVM_EXIT_OSI (Book3S PR, Mac-on-Linux OSI calls): all 32 GPRs, written back on entry."""

    __slots__ = ("gprs",)
    gprs: tuple[int, ...]


class S390Sieic(Record):
    """KVM_EXIT_S390_SIEIC: an intercept KVM leaves to userspace (e.g. DIAG 0x500)."""

    __slots__ = ("icptcode", "ipa", "ipb")
    icptcode: int
    ipa: int
    ipb: int


class InternalError(Record):
    """KVM could not handle the exit itself (e.g. emulation failure)."""

    __slots__ = ("suberror", "data")
    suberror: int
    data: tuple[int, ...]


class FailEntry(Record):
    """The hardware refused to enter the guest (bad guest state)."""

    __slots__ = ("reason", "cpu")
    reason: int
    cpu: int


class Intr(Record):
    """KVM_RUN returned EINTR: a signal (the watchdog's, or immediate_exit) interrupted it."""

    __slots__ = ()


class SystemEvent(Record):
    """The guest asked for a shutdown, reset, crash report... (KVM_SYSTEM_EVENT_* in `type`)."""

    __slots__ = ("type", "data")
    type: int
    data: tuple[int, ...]

    @property
    def ndata(self) -> int:
        return len(self.data)


class Unknown(Record):
    """An exit reason this runtime does not decode."""

    __slots__ = ("reason",)
    reason: int

    @property
    def name(self) -> str:
        return exit_name(self.reason)


Exit = (
    Io | Mmio | Hlt | Shutdown | Hypercall | PaprHcall | EpaprHcall | Osi | S390Sieic | InternalError | FailEntry
    | Intr | SystemEvent | Unknown
)  # fmt: skip


def exit_name(reason: int) -> str:
    """The KVM_EXIT_* name of `reason`, or "exit reason N" when the ABI tables do not know it."""
    return next((name for name, number in numbers.EXITS.items() if number == reason), f"exit reason {reason}")


def _head(layout: RunLayout) -> struct.Struct:
    """A struct that unpacks the HEAD members at `layout`'s offsets and byte order, in one call."""
    fmt, at = [">" if layout.byteorder == "big" else "<"], 0
    for name in HEAD:
        field = layout.members[name]
        if field.offset < at:
            raise AssertionError(f"kvm_run member {name} is not after the previous HEAD member on {layout.arch}")
        fmt.append(f"{field.offset - at}x{_CODES[field.item]}")
        at = field.offset + field.item
    return struct.Struct("".join(fmt))


class KvmRun:
    """A kvm_run buffer read and written as `arch`'s kernel does. Attributes: `arch`, `size`
    (bytes of the whole buffer: the mmap, which is larger than the struct), `layout`."""

    def __init__(self, buffer: Any, arch: str = ARCH, proposed: hvconf.abi.ProposedAbi | None = None) -> None:
        view = memoryview(buffer)
        self.view = view if view.format == "B" and view.ndim == 1 else view.cast("B")
        self.arch = arch
        self.layout = run_layout(arch)
        self.size = len(self.view)
        self.epapr_exit = proposed.number("KVM_EXIT_EPAPR_HCALL") if proposed is not None else None
        if self.size < self.layout.size:
            raise BadExit(f"a {self.size}-byte buffer cannot hold struct kvm_run ({self.layout.size} bytes on {arch})")
        self._unpack_head = _head(self.layout).unpack_from

    def _at(self, offset: int, size: int) -> int:
        return int.from_bytes(self.view[offset : offset + size], self.layout.byteorder)

    def _put(self, offset: int, size: int, value: int) -> None:
        self.view[offset : offset + size] = (value & ((1 << 8 * size) - 1)).to_bytes(size, self.layout.byteorder)

    def get(self, member: str, index: int = 0) -> int:
        """Member `member` ("io.port", "papr_hcall.args" with `index`) as an unsigned integer."""
        field = self.layout.members[member]
        if not 0 <= index * field.item < (field.size or 0):
            raise IndexError(f"{member}[{index}]")
        return self._at(field.offset + index * field.item, field.item)

    def put(self, member: str, value: int, index: int = 0) -> None:
        """Store `value` (two's complement when negative) into `member`[`index`]."""
        field = self.layout.members[member]
        if not 0 <= index * field.item < (field.size or 0):
            raise IndexError(f"{member}[{index}]")
        self._put(field.offset + index * field.item, field.item, value)

    def words(self, member: str, count: int) -> tuple[int, ...]:
        return tuple(self.get(member, i) for i in range(count))

    @property
    def exit_reason(self) -> int:
        return self.get("exit_reason")

    def decode(self) -> Exit:
        # exit_reason and the io member in one unpack: port I/O is the exit a VMM sees most
        head = self._unpack_head(self.view)
        reason = head[0]
        if self.epapr_exit is not None and reason == self.epapr_exit:
            return _epapr_hcall(self)
        if reason == KVM_EXIT_IO:
            return _io_of(self, head)
        decoder = REASON2DECODER.get(reason)
        return decoder(self) if decoder else Unknown(reason)

    # -- answers, where the kernel reads them on the next KVM_RUN --

    def complete_io_in(self, io: Io, data: bytes) -> None:
        """Hand the guest the `data` its port read returns (size*count bytes at io.data_offset)."""
        if len(data) != io.length:
            raise ValueError(f"port {io.port:#x} read wants {io.length} bytes, got {len(data)}")
        _check_io_span(io.data_offset, io.length, self.layout.size, self.size)
        self.view[io.data_offset : io.data_offset + io.length] = data

    def complete_mmio_read(self, data: bytes) -> None:
        """The bytes an MMIO read returns (at most 8, into mmio.data)."""
        if len(data) > MMIO_MAX:
            raise ValueError(f"an MMIO read returns at most {MMIO_MAX} bytes, got {len(data)}")
        start = self.layout.members["mmio.data"].offset
        self.view[start : start + len(data)] = data

    def complete_hypercall(self, ret: int) -> None:
        """hypercall.ret, which KVM copies into RAX (truncated outside long mode)."""
        self.put("hypercall.ret", ret)

    def complete_papr_hcall(self, ret: int, args: Mapping[int, int] | None = None) -> None:
        """papr_hcall.ret (to r3) and args[i] (to r4+i); args not given keep the guest's values."""
        self.put("papr_hcall.ret", ret)
        for index, value in (args or {}).items():
            self.put("papr_hcall.args", value, index)

    def complete_epapr_hcall(self, ret: int, args: Mapping[int, int] | None = None) -> None:
        """epapr_hcall.ret (to r3) and args[i] (r3+i, as they came in) of the proposed exit."""
        base = self.layout.union
        self._put(base + EPAPR_RET, 8, ret)
        for index, value in (args or {}).items():
            if not 0 <= index < EPAPR_NARGS:
                raise IndexError(f"epapr_hcall.args[{index}]")
            self._put(base + EPAPR_ARGS + 8 * index, 8, value)

    def complete_osi(self, gprs: Mapping[int, int]) -> None:
        """osi.gprs[i], which KVM loads back into the guest's GPRs."""
        for index, value in gprs.items():
            self.put("osi.gprs", value, index)


def decode(buffer: Any, arch: str = ARCH, proposed: hvconf.abi.ProposedAbi | None = None) -> Exit:
    """The exit described by `buffer` (bytes laid out as `arch`'s struct kvm_run, or the mmap)."""
    return KvmRun(buffer, arch, proposed).decode()


def _check_io_span(offset: int, length: int, struct_size: int, size: int) -> None:
    if offset < struct_size or offset + length > size:
        raise BadExit(f"KVM_EXIT_IO data [{offset:#x}, {offset + length:#x}) lies outside the {size}-byte kvm_run "
                      f"mmap (after the {struct_size}-byte struct)")  # fmt: skip


def _io_of(run: KvmRun, head: tuple[int, ...]) -> Io:
    _, direction, size, port, count, offset = head
    if direction not in (KVM_EXIT_IO_IN, KVM_EXIT_IO_OUT) or size not in IO_SIZES:
        raise BadExit(f"KVM_EXIT_IO with direction {direction} and size {size}")
    length = size * count
    _check_io_span(offset, length, run.layout.size, run.size)
    if direction == KVM_EXIT_IO_OUT:
        return Io("out", size, port, count, bytes(run.view[offset : offset + length]), offset)
    return Io("in", size, port, count, b"", offset)


def _io(run: KvmRun) -> Io:
    return _io_of(run, run._unpack_head(run.view))


def _mmio(run: KvmRun) -> Mmio:
    length = run.get("mmio.len")
    if length > MMIO_MAX:
        raise BadExit(f"KVM_EXIT_MMIO of {length} bytes (at most {MMIO_MAX})")
    is_write = bool(run.get("mmio.is_write"))
    start = run.layout.members["mmio.data"].offset
    data = bytes(run.view[start : start + length]) if is_write else bytes(length)
    return Mmio(run.get("mmio.phys_addr"), data, is_write)


def _ndata(reason: str, ndata: int) -> int:
    if ndata > NDATA_MAX:
        raise BadExit(f"{reason} with ndata {ndata} (at most {NDATA_MAX})")
    return ndata


def _internal(run: KvmRun) -> InternalError:
    n = _ndata("KVM_EXIT_INTERNAL_ERROR", run.get("internal.ndata"))
    return InternalError(run.get("internal.suberror"), run.words("internal.data", n))


def _system_event(run: KvmRun) -> SystemEvent:
    n = _ndata("KVM_EXIT_SYSTEM_EVENT", run.get("system_event.ndata"))
    return SystemEvent(run.get("system_event.type"), run.words("system_event.data", n))


def _epapr_hcall(run: KvmRun) -> EpaprHcall:
    base = run.layout.union
    args = tuple(run._at(base + EPAPR_ARGS + 8 * i, 8) for i in range(EPAPR_NARGS))
    return EpaprHcall(run._at(base + EPAPR_NR, 8), args)


NAME2DECODER: dict[str, Callable[[KvmRun], Exit]] = {
    "KVM_EXIT_IO": _io,
    "KVM_EXIT_MMIO": _mmio,
    "KVM_EXIT_HLT": lambda run: Hlt(),
    "KVM_EXIT_SHUTDOWN": lambda run: Shutdown(),
    "KVM_EXIT_HYPERCALL": lambda run: Hypercall(run.get("hypercall.nr"), run.words("hypercall.args", 6),
                                                run.get("hypercall.longmode")),  # fmt: skip
    "KVM_EXIT_PAPR_HCALL": lambda run: PaprHcall(run.get("papr_hcall.nr"), run.words("papr_hcall.args", 9)),
    "KVM_EXIT_OSI": lambda run: Osi(run.words("osi.gprs", 32)),
    "KVM_EXIT_S390_SIEIC": lambda run: S390Sieic(run.get("s390_sieic.icptcode"), run.get("s390_sieic.ipa"),
                                                 run.get("s390_sieic.ipb")),  # fmt: skip
    "KVM_EXIT_INTERNAL_ERROR": _internal,
    "KVM_EXIT_FAIL_ENTRY": lambda run: FailEntry(run.get("fail_entry.hardware_entry_failure_reason"),
                                                 run.get("fail_entry.cpu")),  # fmt: skip
    "KVM_EXIT_INTR": lambda run: Intr(),
    "KVM_EXIT_SYSTEM_EVENT": _system_event,
}


# Numbers from numbers.py (generated from hvconf.abi's exits.toml); the names above are the contract.
REASON2DECODER: dict[int, Callable[[KvmRun], Exit]] = {numbers.EXITS[name]: fn for name, fn in NAME2DECODER.items()}
KVM_EXIT_IO = numbers.EXITS["KVM_EXIT_IO"]
