"""Booting Linux on x86 without firmware, the parts that need no /dev/kvm: the plan a `kernel`
makes, boot_params and the e820 map the launcher writes (hvconf/kvm/x86/linux.py), the CPUID
leaves Linux reads, the 16550's interrupt and input, the PC ports Linux probes (pc.py) and the
terminal's raw mode (hvconf/kvm/terminal.py). Crafted kernels: a setup header and nothing else
(tests/data/kernels/README.md). The real boot is tests/x86/test_x86_linux.py.
"""

from __future__ import annotations

import io
import json
import os
import pty
import struct
import termios
import threading
from pathlib import Path

import pytest

from hvconf import compiler
from hvconf.contract import PlanError, linux_header, read_plan
from hvconf.kvm.images import Loaded, check_placement
from hvconf.kvm.ioctls import kvm_run
from hvconf.kvm.ioctls.system import CpuidEntry
from hvconf.kvm.terminal import TerminalInput
from hvconf.kvm.x86 import linux
from hvconf.kvm.x86.pc import PcPorts
from hvconf.kvm.x86.serial import Serial16550
from hvconf.kvm.x86.steps import with_apic_id, with_brand, with_hypervisor

REPO = Path(__file__).resolve().parents[2]
CRAFTED = REPO / "tests" / "data" / "kernels" / "init-256M.bzImage"
PIO_OFFSET = 4096


def bzimage(init_size: int, body: bytes = b"\x90" * 512) -> bytes:
    """The crafted header with `init_size`, then `body` as the protected-mode kernel (one setup sector)."""
    data = bytearray(CRAFTED.read_bytes()[:1024])
    struct.pack_into("<I", data, 0x260, init_size)
    return bytes(data) + body


def plan_for(tmp_path: Path, memory: str = "64M", cmdline: str = "console=ttyS0", vcpus: int = 1) -> dict:
    (tmp_path / "vm.hv").write_text(f'vm linux {{\n arch x86_64\n memory {memory}\n vcpus {vcpus}\n'
                                    ' irqchip kernel\n pit on\n'
                                    f' kernel "vmlinuz"\n initrd "initrd.img"\n cmdline "{cmdline}"\n}}\n')
    result = compiler.build([tmp_path / "vm.hv"])
    assert {d.code for d in result.report.diagnostics} == {"kernel-missing", "initrd-missing"}
    (vm,) = result.built
    return json.loads(vm.files["plan.json"])


def test_a_kernel_plan_enters_long_mode_with_boot_params_in_rsi(tmp_path: Path) -> None:
    plan = plan_for(tmp_path)
    steps = {s["ioctl"]: s["args"] for s in plan["steps"]}
    section = plan["launcher"]["x86"]["linux"]
    assert steps["KVM_SET_SREGS"] == {"mode": "long64", "tables": 0x1000}
    assert steps["KVM_SET_REGS"] == {"rflags": 2, "rsi": section["zero_page"], "rsp": section["zero_page"]}
    assert "rip" not in steps["KVM_SET_REGS"]  # the kernel image's entry, known when it is loaded
    assert steps["KVM_SET_CPUID2"]["hypervisor"] is True and steps["KVM_SET_CPUID2"]["brand"]
    assert {i["name"]: (i["format"], i["path"]) for i in plan["images"]} == {"kernel": ("linux", None),
                                                                             "initrd": ("initrd", None)}
    assert section["cmdline"] == "console=ttyS0" and section["serial_irq"] == 4


def test_the_build_refuses_a_kernel_that_does_not_fit_or_is_no_kernel(tmp_path: Path) -> None:
    (tmp_path / "vmlinuz").write_bytes(CRAFTED.read_bytes())  # init_size 256 MiB
    (tmp_path / "initrd.img").write_bytes(b"r" * 4096)
    for memory, want in (("64M", "the kernel needs [0x100000, 0x10100000)"), ("257M", "the 4096-byte initrd")):
        (tmp_path / "vm.hv").write_text(f'vm l {{\n arch x86_64\n memory {memory}\n irqchip kernel\n pit on\n'
                                        ' kernel "vmlinuz"\n initrd "initrd.img"\n}\n')
        found = [d for d in compiler.build([tmp_path / "vm.hv"]).report.diagnostics if d.code == "linux-does-not-fit"]
        assert len(found) == 1 and found[0].message.startswith(want), (memory, found)
    (tmp_path / "vmlinuz").write_bytes(bzimage(0x10000)[:0x300].replace(b"HdrS", b"HdrX"))
    found = [d.code for d in compiler.build([tmp_path / "vm.hv"]).report.diagnostics]
    assert found == ["kernel-not-bootable"]


def test_a_flat_kernel_is_refused_on_x86_before_anything_is_built(tmp_path: Path) -> None:
    # the loader places a kernel by its bzImage or ELF header; `flat` used to be ignored and the file
    # booted as a bzImage anyway. A real bzImage is refused too: the word, not the file, is wrong.
    (tmp_path / "vmlinuz").write_bytes(bzimage(0x10000))
    (tmp_path / "vm.hv").write_text('vm l {\n arch x86_64\n memory 64M\n irqchip kernel\n pit on\n'
                                    ' kernel "vmlinuz" flat\n}\n')
    result = compiler.build([tmp_path / "vm.hv"])
    found = [(d.code, d.severity.value, d.span.line, d.span.col) for d in result.report.diagnostics]
    assert found == [("kernel-flat-unsupported", "error", 6, 19)] and result.built == []


def test_setup_header_needs_the_64_bit_entry() -> None:
    data = bytearray(bzimage(0x10000))
    assert linux_header(bytes(data)).setup_bytes == 1024
    struct.pack_into("<H", data, 0x236, 0)  # no XLF_KERNEL_64
    with pytest.raises(ValueError, match="no 64-bit entry"):
        linux_header(bytes(data))


def test_boot_params_carry_the_header_command_line_initrd_and_e820(tmp_path: Path) -> None:
    plan = read_plan(plan_for(tmp_path))
    kernel = bzimage(0x200000, b"K" * 3000)
    loaded = [Loaded("kernel", ((0x100000, kernel),)), Loaded("initrd", ((0, b"I" * 5000),))]
    notes: list[str] = []
    out = {im.name: im for im in linux.prepare(plan, loaded, notes.append)}
    assert out["kernel"].chunks == ((0x100000, b"K" * 3000),) and out["kernel"].entry == 0x100200
    (at, data), = out["initrd"].chunks
    assert (at, data) == ((64 << 20) - 8192, b"I" * 5000)  # top of RAM, page aligned
    (zp, page), = out["boot_params"].chunks
    assert zp == 0x9000 and len(page) == 4096
    assert page[0x1F1:0x210] == kernel[0x1F1:0x210]  # the setup header as the kernel has it, then the loader's fields
    assert page[0x202:0x206] == b"HdrS" and page[0x210] == 0xFF and page[0x211] & 0x81 == 0x81
    assert struct.unpack_from("<I", page, 0x228)[0] == 0xA000  # cmd_line_ptr
    assert struct.unpack_from("<II", page, 0x218) == (at, 5000)  # ramdisk_image, ramdisk_size
    entries = [struct.unpack_from("<QQI", page, 0x2D0 + 20 * n) for n in range(page[0x1E8])]
    assert entries == [(0, 0x9FC00, 1), (0x9FC00, 0x400, 2), (0xF0000, 0x10000, 2), (0x100000, (63 << 20), 1)]
    assert out["cmdline"].chunks == ((0xA000, b"console=ttyS0\0"),)
    check_placement(plan, out.values(), [(0x1000, 0x7000, "tables")])  # nothing overlaps
    assert any("initrd of 5000 bytes" in n for n in notes)


def read_mp_table(memory: bytes) -> tuple[int, list[tuple[int, ...]]]:
    """As Linux's arch/x86/kernel/mpparse.c reads an MP table: the "_MP_" floating pointer found on a
    16-byte boundary of the BIOS area, its checksum, the configuration table it points at, that table's
    checksum, then its entries by type (mpspec_def.h). Returns (the spec revision, the entries)."""
    found = [at for at in range(0xF0000, 0x100000, 16) if memory[at:at + 4] == b"_MP_"]
    assert len(found) == 1, found
    floating = memory[found[0]:found[0] + 16]
    assert floating[8] == 1 and floating[9] == 4 and sum(floating) % 256 == 0  # length in 16s, spec 1.4
    (physptr,) = struct.unpack_from("<I", floating, 4)
    length, spec = struct.unpack_from("<HB", memory, physptr + 4)
    table = memory[physptr:physptr + length]
    assert table[:4] == b"PCMP" and sum(table) % 256 == 0
    (count,) = struct.unpack_from("<H", table, 34)
    assert struct.unpack_from("<I", table, 36) == (0xFEE00000,)  # the local APICs
    sizes = {0: 20, 1: 8, 2: 8, 3: 8, 4: 8}
    entries, at = [], 44
    while at < length:
        entries.append(tuple(table[at:at + sizes[table[at]]]))
        at += sizes[table[at]]
    assert at == length and len(entries) == count
    return spec, entries


def test_more_than_one_vcpu_gets_an_mp_table_linux_can_read(tmp_path: Path) -> None:
    assert "mptable_at" not in plan_for(tmp_path)["launcher"]["x86"]["linux"]  # one CPU: none, as SeaBIOS
    plan = read_plan(plan_for(tmp_path, vcpus=3))
    loaded = [Loaded("kernel", ((0x100000, bzimage(0x200000)),))]
    notes: list[str] = []
    out = {im.name: im for im in linux.prepare(plan, loaded, notes.append)}
    memory = bytearray(1 << 20)
    for at, data in out["mptable"].chunks:
        memory[at:at + len(data)] = data
        assert 0xF0000 <= at and at + len(data) <= 0x100000  # the BIOS area, reserved in the e820 map
    spec, entries = read_mp_table(bytes(memory))
    cpus = [(e[1], e[3]) for e in entries if e[0] == 0]  # (APIC id, flags): enabled, the first the BSP
    assert spec == 4 and cpus == [(0, 3), (1, 1), (2, 1)]
    (ioapic,) = [e for e in entries if e[0] == 2]
    assert ioapic[1] == 3 and struct.unpack("<I", bytes(ioapic[4:8])) == (0xFEC00000,)
    assert [e for e in entries if e[0] == 1] == [(1, 0, *b"ISA   ")]
    # ISA IRQ n on IOAPIC pin n, as KVM's default routing wires them; the serial's 4 among them
    assert [(e[5], e[6], e[7]) for e in entries if e[0] == 3] == [(n, 3, n) for n in range(24)]
    assert [(e[1], e[6], e[7]) for e in entries if e[0] == 4] == [(3, 0, 0), (1, 0xFF, 1)]  # ExtINT, NMI
    check_placement(plan, out.values(), [(0x1000, 0x7000, "tables")])  # nothing overlaps
    assert any("MP table of 3 processors" in n for n in notes)


def test_a_linux_guest_has_at_most_254_vcpus(tmp_path: Path) -> None:
    (tmp_path / "vm.hv").write_text('vm l {\n arch x86_64\n memory 64M\n vcpus 255\n irqchip kernel\n pit on\n'
                                    ' kernel "vmlinuz"\n}\n')
    codes = [d.code for d in compiler.build([tmp_path / "vm.hv"]).report.diagnostics]
    assert codes == ["linux-too-many-vcpus"]  # the checks stop the build before the kernel is looked for
    (tmp_path / "vm.hv").write_text((tmp_path / "vm.hv").read_text().replace("vcpus 255", "vcpus 254"))
    assert [d.code for d in compiler.build([tmp_path / "vm.hv"]).report.diagnostics] == ["kernel-missing"]


def test_the_launcher_refuses_an_initrd_over_the_kernel(tmp_path: Path) -> None:
    plan = read_plan(plan_for(tmp_path, memory="8M"))
    loaded = [Loaded("kernel", ((0x100000, bzimage(0x600000)),)), Loaded("initrd", ((0, b"I" * (2 << 20)),))]
    with pytest.raises(PlanError, match="initrd does not fit"):
        linux.prepare(plan, loaded, lambda _: None)


def test_cpuid_gets_the_hypervisor_bit_and_a_brand() -> None:
    table = with_brand(with_hypervisor([CpuidEntry(1, ecx=1), CpuidEntry(0x80000000, eax=0x80000001)]), "hvconf")
    by_leaf = {e.function: e for e in table}
    assert by_leaf[1].ecx == 1 | 1 << 31
    assert by_leaf[0x80000000].eax == 0x80000004
    brand = b"".join(struct.pack("<4I", e.eax, e.ebx, e.ecx, e.edx) for e in table if e.function >= 0x80000002)
    assert brand == b"hvconf".ljust(48, b"\0")


def test_cpuid_tells_each_vcpu_its_own_apic_id() -> None:
    # Linux derives a CPU's package and core from these: all zeros made vCPU 1 a sibling of vCPU 0
    table = [CpuidEntry(1, ebx=0x00_02_08_00, ecx=1), CpuidEntry(0xB, 0, edx=0), CpuidEntry(0xB, 1, edx=0),
             CpuidEntry(0x8000001E, eax=0, ebx=0x100), CpuidEntry(0x40000001, eax=7)]
    by_leaf = {(e.function, e.index): e for e in with_apic_id(table, 3)}
    assert by_leaf[1, 0].ebx == 0x03_02_08_00 and by_leaf[1, 0].ecx == 1  # only bits 31:24 change
    assert by_leaf[0xB, 0].edx == by_leaf[0xB, 1].edx == 3 and by_leaf[0x8000001E, 0].eax == 3
    assert by_leaf[0x8000001E, 0].ebx == 0x100 and by_leaf[0x40000001, 0].eax == 7


def io_exit(direction: str, port: int, data: bytes = b"", size: int = 1, count: int = 1) -> kvm_run.Io:
    return kvm_run.Io(direction, size, port, count, data, PIO_OFFSET)  # type: ignore[arg-type]


def test_the_serial_interrupt_follows_what_iir_reports() -> None:
    levels: list[int] = []
    uart = Serial16550(0x3F8, io.BytesIO(), levels.append)
    uart.handle(io_exit("out", 0x3F9, b"\x02"))  # IER: THRI on, and THR is empty
    assert levels == [1] and uart.handle(io_exit("in", 0x3FA)) == b"\x02"  # IIR: THRI, which reading clears
    assert levels == [1, 0]
    uart.handle(io_exit("out", 0x3F8, b"x"))  # sent at once: empty again
    assert levels == [1, 0, 1]
    uart.handle(io_exit("in", 0x3FA))
    uart.handle(io_exit("out", 0x3F9, b"\x01"))  # received data only
    uart.receive(b"ab")
    assert levels == [1, 0, 1, 0, 1] and uart.handle(io_exit("in", 0x3FD)) == b"\x61"  # LSR: THRE, TEMT, DR
    assert uart.handle(io_exit("in", 0x3FA)) == b"\x04"
    assert uart.handle(io_exit("in", 0x3F8)) + uart.handle(io_exit("in", 0x3F8)) == b"ab"
    assert levels == [1, 0, 1, 0, 1, 0] and uart.handle(io_exit("in", 0x3FD)) == b"\x60"


def test_pc_ports_answer_what_linux_probes() -> None:
    pc = PcPorts(None)
    assert pc.handle(io_exit("out", 0xCF8, b"\x00\x00\x00\x80", size=4)) == b""
    assert pc.handle(io_exit("in", 0xCFC, size=4)) == b"\xff" * 4  # no PCI device
    assert pc.handle(io_exit("in", 0x64)) == b"\x04"  # i8042: nothing to read, self-test passed
    pc.handle(io_exit("out", 0x64, b"\x20"))  # read the command byte
    assert pc.handle(io_exit("in", 0x64)) == b"\x05" and pc.handle(io_exit("in", 0x60)) == b"\x47"
    pc.handle(io_exit("out", 0x64, b"\x60"))
    pc.handle(io_exit("out", 0x60, b"\x44"))  # write it
    pc.handle(io_exit("out", 0x64, b"\x20"))
    assert pc.handle(io_exit("in", 0x60)) == b"\x44"
    pc.handle(io_exit("out", 0x70, b"\x8a"))  # CMOS status A, NMIs masked
    assert pc.handle(io_exit("in", 0x71)) == b"\x26"  # no update in progress
    assert pc.handle(io_exit("in", 0x1234)) is None  # the generic loop's


def test_terminal_input_is_raw_while_attached_and_restored_after() -> None:
    main, child = pty.openpty()
    before = termios.tcgetattr(child)
    got: list[bytes] = []
    arrived = threading.Event()
    terminal = TerminalInput(lambda data: (got.append(data), arrived.set()), fd=child)
    try:
        assert terminal.start()
        raw = termios.tcgetattr(child)
        assert not raw[3] & (termios.ICANON | termios.ECHO) and raw[3] & termios.ISIG
        os.write(main, b"ls\r")
        assert arrived.wait(5)
        assert b"".join(got) == b"ls\r"  # as typed: no line editing, no CR translation
    finally:
        terminal.stop()
        terminal.stop()  # idempotent
    assert termios.tcgetattr(child) == before
    os.close(main)
    os.close(child)
    null = os.open(os.devnull, os.O_RDONLY)
    try:
        assert not TerminalInput(got.append, fd=null).start()  # not a terminal: not read
    finally:
        os.close(null)
