"""Exit decoding on every arch (incl. s390, union at 48), the KvmRun accessors, the 16550
console and x86 set-up helpers, on buffers built here.

No /dev/kvm: kvm_run buffers are laid out as the kernel lays them out and
decoded, through a host `struct kvm_run *` (its mmap-sized buffer, as the
vCPU's) and through plain bytes for any arch. Field-by-field layout checks live in
test_layouts.py; hypercall handling in test_buffers_*.py.
"""

from __future__ import annotations

import io

import pytest

import hvconf.abi
from hvconf.kvm.ioctls import kvm_run
from hvconf.kvm.ioctls.ffi import ffi
from hvconf.kvm.ioctls.system import CpuidEntry
from hvconf.kvm.x86.modes import MODES
from hvconf.kvm.x86.serial import Serial16550
from hvconf.kvm.x86.steps import signature_words, with_kvm_leaves

MMAP = 12288
PIO_OFFSET = 4096  # where the kernel puts port I/O data (KVM_PIO_PAGE_OFFSET pages)


def reason(name: str) -> int:
    return hvconf.abi.exit_reason(name).number


@pytest.fixture
def run():
    buf = ffi.new("char[]", MMAP)
    ptr = ffi.cast("struct kvm_run *", buf)
    yield ptr, buf


def test_port_out_is_decoded_with_its_data(run):
    ptr, buf = run
    ptr.exit_reason = reason("KVM_EXIT_IO")
    ptr.io.direction, ptr.io.size, ptr.io.port, ptr.io.count, ptr.io.data_offset = 1, 1, 0x3F8, 3, PIO_OFFSET
    buf[PIO_OFFSET : PIO_OFFSET + 3] = b"abc"
    assert kvm_run.decode(ffi.buffer(ptr, MMAP)) == kvm_run.Io("out", 1, 0x3F8, 3, b"abc", PIO_OFFSET)


def test_port_in_carries_no_data(run):
    ptr, _ = run
    ptr.exit_reason = reason("KVM_EXIT_IO")
    ptr.io.direction, ptr.io.size, ptr.io.port, ptr.io.count, ptr.io.data_offset = 0, 2, 0x3FD, 1, PIO_OFFSET
    assert kvm_run.decode(ffi.buffer(ptr, MMAP)) == kvm_run.Io("in", 2, 0x3FD, 1, b"", PIO_OFFSET)


@pytest.mark.parametrize(
    ("size", "count", "offset", "message"),
    [
        (1, 1, MMAP, "outside the 12288-byte kvm_run mmap"),
        (4, 2049, PIO_OFFSET, "outside"),  # one element past the end
        (1, 1, 16, "outside"),  # would read kvm_run itself
        (3, 1, PIO_OFFSET, "size 3"),
    ],
)
def test_port_io_outside_the_mmap_is_refused(run, size, count, offset, message):
    ptr, _ = run
    ptr.exit_reason = reason("KVM_EXIT_IO")
    ptr.io.direction, ptr.io.size, ptr.io.count, ptr.io.data_offset = 1, size, count, offset
    with pytest.raises(kvm_run.BadExit, match=message):
        kvm_run.decode(ffi.buffer(ptr, MMAP))


def test_simple_and_unknown_exits(run):
    ptr, _ = run
    for name, want in [("KVM_EXIT_HLT", kvm_run.Hlt()), ("KVM_EXIT_SHUTDOWN", kvm_run.Shutdown()),
                       ("KVM_EXIT_INTR", kvm_run.Intr())]:  # fmt: skip
        ptr.exit_reason = reason(name)
        assert kvm_run.decode(ffi.buffer(ptr, MMAP)) == want
    ptr.exit_reason = reason("KVM_EXIT_DEBUG")
    assert kvm_run.decode(ffi.buffer(ptr, MMAP)) == kvm_run.Unknown(reason("KVM_EXIT_DEBUG"))
    assert kvm_run.Unknown(reason("KVM_EXIT_DEBUG")).name == "KVM_EXIT_DEBUG"
    assert kvm_run.Unknown(9999).name == "exit reason 9999"


def test_union_members_decode(run):
    ptr, _ = run
    ptr.exit_reason = reason("KVM_EXIT_MMIO")
    ptr.mmio.phys_addr, ptr.mmio.len, ptr.mmio.is_write = 0xFEE00000, 4, 1
    ptr.mmio.data[0:4] = [1, 2, 3, 4]
    assert kvm_run.decode(ffi.buffer(ptr, MMAP)) == kvm_run.Mmio(0xFEE00000, b"\x01\x02\x03\x04", True)
    ptr.exit_reason = reason("KVM_EXIT_INTERNAL_ERROR")
    ptr.internal.suberror, ptr.internal.ndata, ptr.internal.data[0:2] = 1, 2, [0xAA, 0xBB]
    assert kvm_run.decode(ffi.buffer(ptr, MMAP)) == kvm_run.InternalError(1, (0xAA, 0xBB))
    ptr.internal.ndata = 17
    with pytest.raises(kvm_run.BadExit):
        kvm_run.decode(ffi.buffer(ptr, MMAP))
    ptr.exit_reason = reason("KVM_EXIT_HYPERCALL")
    ptr.hypercall.nr, ptr.hypercall.args[0:6], ptr.hypercall.longmode = 12, [1, 2, 3, 0, 0, 0], 1
    assert kvm_run.decode(ffi.buffer(ptr, MMAP)) == kvm_run.Hypercall(12, (1, 2, 3, 0, 0, 0), 1)
    ptr.exit_reason = reason("KVM_EXIT_SYSTEM_EVENT")
    ptr.system_event.type, ptr.system_event.ndata, ptr.system_event.data[0] = 1, 1, 0
    assert kvm_run.decode(ffi.buffer(ptr, MMAP)) == kvm_run.SystemEvent(1, (0,))
    ptr.exit_reason = reason("KVM_EXIT_FAIL_ENTRY")
    ptr.fail_entry.hardware_entry_failure_reason, ptr.fail_entry.cpu = 0x21, 3
    assert kvm_run.decode(ffi.buffer(ptr, MMAP)) == kvm_run.FailEntry(0x21, 3)


def io_exit(direction: str, port: int, data: bytes = b"", size: int = 1, count: int = 1) -> kvm_run.Io:
    return kvm_run.Io(direction, size, port, count, data, PIO_OFFSET)  # type: ignore[arg-type]


def test_serial_transmits_and_reports_an_idle_line():
    out = io.BytesIO()
    uart = Serial16550(0x3F8, out)
    assert uart.handle(io_exit("out", 0x3F8, b"hi", count=2)) == b""
    assert uart.handle(io_exit("in", 0x3FD)) == b"\x60"
    assert uart.handle(io_exit("in", 0x3FD, count=3)) == b"\x60\x60\x60"
    assert uart.handle(io_exit("in", 0x3F9)) == b"\x00"
    assert uart.handle(io_exit("out", 0x3F8, b"!\x00", size=2)) == b""
    assert out.getvalue() == b"hi!"
    assert uart.handle(io_exit("out", 0x2F8, b"x")) is None
    assert uart.handle(io_exit("in", 0x400)) is None


def test_serial_divisor_latch_is_not_output():
    out = io.BytesIO()
    uart = Serial16550(0x3F8, out)
    uart.handle(io_exit("out", 0x3FB, b"\x83"))  # LCR: DLAB on, 8N1
    uart.handle(io_exit("out", 0x3F8, b"\x01"))  # divisor low byte
    uart.handle(io_exit("out", 0x3FB, b"\x03"))  # DLAB off
    uart.handle(io_exit("out", 0x3F8, b"k"))
    assert out.getvalue() == b"k"
    assert uart.handle(io_exit("in", 0x3FB)) == b"\x03"


def test_kvm_leaves_replace_what_the_host_offers():
    host = [CpuidEntry(0), CpuidEntry(0x40000001, eax=0xFFFF, edx=1), CpuidEntry(0x40000000, eax=0x40000010)]
    table = with_kvm_leaves(host, "KVMKVMKVM", 1 << 7)
    by_leaf = {e.function: e for e in table}
    assert len(table) == 3
    assert by_leaf[0x40000000] == CpuidEntry(0x40000000, eax=0x40000001, ebx=0x4B4D564B, ecx=0x564B4D56, edx=0x4D)
    assert by_leaf[0x40000001] == CpuidEntry(0x40000001, eax=0x80)
    with pytest.raises(ValueError):
        signature_words("much too long signature")


def test_real_mode_is_flat_with_protection_off():
    sregs = ffi.new("struct kvm_sregs *")
    sregs.cs.base, sregs.cs.selector, sregs.ds.base, sregs.cr0 = 0xFFFF0000, 0xF000, 0x1000, 0x60000011
    MODES["real"].apply(sregs, 0)
    assert (sregs.cs.base, sregs.cs.selector, sregs.ds.base, sregs.cs.limit) == (0, 0, 0, 0xFFFF)
    assert sregs.cr0 == 0x60000010


# ---- any arch, from plain bytes ----

ORDER = {"x86_64": "little", "ppc64le": "little", "ppc64": "big", "ppc-e500": "big", "s390x": "big"}


def fill(arch: str, values: dict[str, int | tuple[int, ...]]) -> bytearray:
    """A kvm_run mmap with `values` stored at hvconf.abi's offsets for `arch`, in its byte order."""
    buf = bytearray(MMAP)
    fields = hvconf.abi.struct_fields("kvm_run", arch)
    for name, value in values.items():
        items = value if isinstance(value, tuple) else (value,)
        width = 8 if isinstance(value, tuple) else fields[name].size
        for i, item in enumerate(items):
            at = fields[name].offset + i * width
            buf[at : at + width] = item.to_bytes(width, ORDER[arch])
    return buf


@pytest.mark.parametrize("arch", hvconf.abi.ARCHES)
def test_a_papr_exit_decodes_alike_on_every_arch(arch):
    buf = fill(arch, {"exit_reason": reason("KVM_EXIT_PAPR_HCALL"), "papr_hcall.nr": 0x58,
                      "papr_hcall.args": tuple(range(1, 10))})  # fmt: skip
    assert kvm_run.decode(buf, arch) == kvm_run.PaprHcall(0x58, tuple(range(1, 10)))
    run = kvm_run.KvmRun(buf, arch)
    run.complete_papr_hcall(-2, {0: 0xFFFF})
    assert (run.get("papr_hcall.ret"), run.get("papr_hcall.args", 0), run.get("papr_hcall.args", 1)) == (
        2**64 - 2, 0xFFFF, 2)  # fmt: skip


def test_s390_puts_the_psw_first_and_the_union_at_48():
    buf = fill("s390x", {"exit_reason": reason("KVM_EXIT_S390_SIEIC"), "psw_mask": 0x0705_0000_8000_0000,
                         "psw_addr": 0x10000, "s390_sieic.icptcode": 4, "s390_sieic.ipa": 0x8322,
                         "s390_sieic.ipb": 0x0500_0000})  # fmt: skip
    assert buf[48] == 4 and buf[50:52] == b"\x83\x22"  # big-endian, 16 bytes after the x86/ppc union
    run = kvm_run.KvmRun(buf, "s390x")
    assert run.decode() == kvm_run.S390Sieic(4, 0x8322, 0x0500_0000)
    assert (run.get("psw_mask"), run.get("psw_addr")) == (0x0705_0000_8000_0000, 0x10000)
    assert kvm_run.decode(buf, "x86_64") == kvm_run.Unknown(int.from_bytes(buf[8:12], "little"))


def test_s390_system_event_and_completion_offsets():
    buf = fill("s390x", {"exit_reason": reason("KVM_EXIT_SYSTEM_EVENT"), "system_event.type": 1,
                         "system_event.ndata": 1, "system_event.data": (5,)})  # fmt: skip
    assert kvm_run.decode(buf, "s390x") == kvm_run.SystemEvent(1, (5,))
    run = kvm_run.KvmRun(buf, "s390x")
    run.complete_hypercall(-1000)
    assert buf[104:112] == (2**64 - 1000).to_bytes(8, "big")  # hypercall.ret at 88 + 16


def test_accessors_refuse_indices_outside_the_member():
    run = kvm_run.KvmRun(bytearray(MMAP), "ppc64le")
    with pytest.raises(IndexError):
        run.put("papr_hcall.args", 1, 9)
    with pytest.raises(IndexError):
        run.complete_papr_hcall(0, {9: 1})
    with pytest.raises(IndexError):
        run.complete_epapr_hcall(0, {8: 1})
    with pytest.raises(IndexError):
        run.get("exit_reason", 1)


def test_the_host_struct_pointer_and_plain_bytes_decode_the_same(run):
    ptr, buf = run
    ptr.exit_reason = reason("KVM_EXIT_HYPERCALL")
    ptr.hypercall.nr, ptr.hypercall.args[0:2], ptr.hypercall.longmode = 12, [0x1000, 1], 1
    want = kvm_run.Hypercall(12, (0x1000, 1, 0, 0, 0, 0), 1)
    assert kvm_run.decode(ffi.buffer(ptr, MMAP)) == kvm_run.decode(ffi.buffer(buf), "x86_64") == want


MALFORMED = {
    "unknown reason": ({"exit_reason": 4242}, kvm_run.Unknown(4242)),
    "reason 2**32-1": ({"exit_reason": 0xFFFF_FFFF}, kvm_run.Unknown(0xFFFF_FFFF)),
    "mmio len 9": ({"exit_reason": 6, "mmio.len": 9}, kvm_run.BadExit),
    "io past the map": ({"exit_reason": 2, "io.direction": 1, "io.size": 4, "io.count": 1,
                         "io.data_offset": MMAP - 2}, kvm_run.BadExit),  # fmt: skip
    "io size*count overflow": ({"exit_reason": 2, "io.direction": 0, "io.size": 4, "io.count": 0xFFFF_FFFF,
                                "io.data_offset": PIO_OFFSET}, kvm_run.BadExit),  # fmt: skip
    "system_event ndata 17": ({"exit_reason": 24, "system_event.ndata": 17}, kvm_run.BadExit),
    "internal ndata 2**32-1": ({"exit_reason": 17, "internal.ndata": 0xFFFF_FFFF}, kvm_run.BadExit),
}


@pytest.mark.parametrize("arch", hvconf.abi.ARCHES)
@pytest.mark.parametrize("case", MALFORMED)
def test_malformed_buffers_have_defined_outcomes_on_every_arch(arch, case):
    values, expect = MALFORMED[case]
    buf = fill(arch, values)
    if isinstance(expect, type):
        with pytest.raises(expect):
            kvm_run.decode(buf, arch)
    else:
        assert kvm_run.decode(buf, arch) == expect
