"""x86 exits on kvm_run buffers filled as the x86_64 kernel fills them, answered, and read back.

Offsets come from hvconf.abi (not the cdefs under test), little-endian; port
I/O data lives in the page after kvm_run (KVM_PIO_PAGE_OFFSET = 1). Each
test asserts the exact bytes the kernel reads on the next KVM_RUN, and that a
buffer no kernel could write has a defined outcome.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import hvconf.abi
from hvconf.kvm.ioctls import kvm_run
from hvconf.kvm.reply import Outcome, Reply
from hvconf.contract import read_plan
from hvconf.kvm.x86 import devices as x86_devices
from hvconf.kvm.x86.hypercalls import X86Hypercalls, complete

MMAP = 3 * 4096
PIO = 4096
ENOSYS = -1000  # -KVM_ENOSYS (linux/kvm_para.h)
MAP_GPA_RANGE, KICK_CPU = 12, 5
GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "x86-pvspinlock" / "x86-pvspinlock" / "plan.json"


class Frame:
    def __init__(self) -> None:
        self.buf = bytearray(MMAP)
        self.fields = hvconf.abi.struct_fields("kvm_run", "x86_64")

    def put(self, name: str, value: int, index: int = 0, width: int | None = None) -> Frame:
        width = width or self.fields[name].size or 8
        at = self.fields[name].offset + index * width
        self.buf[at : at + width] = (value % (1 << 8 * width)).to_bytes(width, "little")
        return self

    def at(self, name: str) -> int:
        return self.fields[name].offset

    def reason(self, name: str) -> Frame:
        return self.put("exit_reason", hvconf.abi.exit_reason(name).number)

    def decode(self) -> kvm_run.Exit:
        return kvm_run.decode(self.buf, "x86_64")


def hypercall(nr: int, *args: int) -> Frame:
    frame = Frame().reason("KVM_EXIT_HYPERCALL").put("hypercall.nr", nr).put("hypercall.longmode", 1)
    for i, a in enumerate(args):
        frame.put("hypercall.args", a, i, 8)
    return frame


@pytest.mark.parametrize(("routed", "nr", "ret"), [
    (["KVM_HC_MAP_GPA_RANGE"], MAP_GPA_RANGE, 0),
    ([], MAP_GPA_RANGE, ENOSYS),
    (["KVM_HC_MAP_GPA_RANGE"], KICK_CPU, ENOSYS),
    (["KVM_HC_MAP_GPA_RANGE"], 1 << 63, ENOSYS),
])  # fmt: skip
def test_hypercall_answer_lands_in_hypercall_ret(routed, nr, ret):
    frame = hypercall(nr, 0x100000, 16, 0)
    before = bytes(frame.buf)
    run = kvm_run.KvmRun(frame.buf, "x86_64")
    ex = run.decode()
    assert ex == kvm_run.Hypercall(nr, (0x100000, 16, 0, 0, 0, 0), 1)
    reply = X86Hypercalls({"exit_hypercalls": routed}).handle(ex)
    complete(run, ex, reply)
    at = frame.at("hypercall.ret")
    assert frame.buf[at : at + 8] == (ret % 2**64).to_bytes(8, "little")  # RAX on re-entry
    assert before[:at] == frame.buf[:at] and before[at + 8 :] == frame.buf[at + 8 :]
    assert reply.outcome is Outcome.CONTINUE


def test_the_compilers_x86_plan_routes_map_gpa_range():
    plan = json.loads(GOLDEN.read_text())
    table = X86Hypercalls(plan["launcher"]["x86"])
    assert table.served == {MAP_GPA_RANGE: "KVM_HC_MAP_GPA_RANGE"}
    x86_devices.check(read_plan(plan))  # the launcher builds the same table from it before anything opens


def test_unserved_routes_and_register_outputs_are_refused():
    with pytest.raises(ValueError, match="KVM_HC_SEND_IPI"):
        X86Hypercalls({"exit_hypercalls": ["KVM_HC_SEND_IPI"]})
    run = kvm_run.KvmRun(hypercall(MAP_GPA_RANGE).buf, "x86_64")
    with pytest.raises(ValueError, match="RAX only"):
        complete(run, run.decode(), Reply(0, {4: 1}))


def io_frame(direction: int, size: int, count: int, offset: int = PIO, port: int = 0x3F8) -> Frame:
    return (Frame().reason("KVM_EXIT_IO").put("io.direction", direction).put("io.size", size)
            .put("io.count", count).put("io.port", port).put("io.data_offset", offset))  # fmt: skip


def test_port_out_data_and_port_in_completion():
    frame = io_frame(1, 2, 2)
    frame.buf[PIO : PIO + 4] = b"\x41\x00\x42\x00"
    assert frame.decode() == kvm_run.Io("out", 2, 0x3F8, 2, b"A\x00B\x00", PIO)
    frame = io_frame(0, 1, 3, port=0x3FD)
    run = kvm_run.KvmRun(frame.buf, "x86_64")
    ex = run.decode()
    assert isinstance(ex, kvm_run.Io) and ex.data == b""
    run.complete_io_in(ex, b"\x60\x61\x62")
    assert frame.buf[PIO : PIO + 4] == b"\x60\x61\x62\x00"
    with pytest.raises(ValueError):
        run.complete_io_in(ex, b"\x60")


@pytest.mark.parametrize(("direction", "size", "count", "offset"), [
    (1, 1, 1, MMAP),                   # data_offset at the end of the map
    (1, 1, 1, 1 << 63),                # far beyond it
    (1, 4, 0xFFFF_FFFF, PIO),          # size * count runs 16 GiB past the page
    (1, 4, 2049, PIO),                 # one element past the end
    (0, 1, 1, 16),                     # would overwrite kvm_run itself on completion
    (2, 1, 1, PIO),                    # no such direction
    (1, 3, 1, PIO),                    # no such size
    (1, 0, 1, PIO),
])  # fmt: skip
def test_impossible_port_io_is_bad_exit(direction, size, count, offset):
    with pytest.raises(kvm_run.BadExit):
        io_frame(direction, size, count, offset).decode()


def test_completing_a_forged_io_outside_the_map_is_refused():
    run = kvm_run.KvmRun(bytearray(MMAP), "x86_64")
    with pytest.raises(kvm_run.BadExit):
        run.complete_io_in(kvm_run.Io("in", 1, 0x60, 1, b"", MMAP), b"\x00")


def test_mmio_write_data_and_read_completion():
    frame = Frame().reason("KVM_EXIT_MMIO").put("mmio.phys_addr", 0xFEE00000).put("mmio.len", 4).put(
        "mmio.is_write", 1)  # fmt: skip
    at = frame.at("mmio.data")
    frame.buf[at : at + 8] = b"\x01\x02\x03\x04\xff\xff\xff\xff"
    assert frame.decode() == kvm_run.Mmio(0xFEE00000, b"\x01\x02\x03\x04", True)
    frame.put("mmio.is_write", 0)
    run = kvm_run.KvmRun(frame.buf, "x86_64")
    assert run.decode() == kvm_run.Mmio(0xFEE00000, bytes(4), False)
    run.complete_mmio_read(b"\xaa\xbb\xcc\xdd")
    assert frame.buf[at : at + 8] == b"\xaa\xbb\xcc\xdd\xff\xff\xff\xff"
    with pytest.raises(ValueError):
        run.complete_mmio_read(bytes(9))


@pytest.mark.parametrize("length", [9, 0x100, 0xFFFF_FFFF])
def test_mmio_longer_than_eight_bytes_is_bad_exit(length):
    with pytest.raises(kvm_run.BadExit, match="at most 8"):
        Frame().reason("KVM_EXIT_MMIO").put("mmio.len", length).decode()


def test_system_event_internal_error_and_fail_entry():
    frame = Frame().reason("KVM_EXIT_SYSTEM_EVENT").put("system_event.type", 2).put("system_event.ndata", 2)
    frame.put("system_event.data", 7, 0, 8).put("system_event.data", 9, 1, 8)
    event = frame.decode()
    assert event == kvm_run.SystemEvent(2, (7, 9)) and isinstance(event, kvm_run.SystemEvent) and event.ndata == 2
    frame = Frame().reason("KVM_EXIT_INTERNAL_ERROR").put("internal.suberror", 1).put("internal.ndata", 16)
    assert frame.decode() == kvm_run.InternalError(1, (0,) * 16)
    frame.put("internal.ndata", 17)
    with pytest.raises(kvm_run.BadExit):
        frame.decode()
    frame = Frame().reason("KVM_EXIT_FAIL_ENTRY").put("fail_entry.hardware_entry_failure_reason", 0x80000021)
    assert frame.put("fail_entry.cpu", 3).decode() == kvm_run.FailEntry(0x80000021, 3)


@pytest.mark.parametrize("reason", [0, 4, 7, 41, 0xFFFF_FFFF])
def test_reasons_without_a_decoder_are_unknown(reason):
    assert Frame().put("exit_reason", reason).decode() == kvm_run.Unknown(reason)


def test_a_buffer_shorter_than_kvm_run_is_refused():
    with pytest.raises(kvm_run.BadExit, match="cannot hold struct kvm_run"):
        kvm_run.decode(bytearray(2351), "x86_64")
