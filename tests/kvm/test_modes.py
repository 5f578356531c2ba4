"""x86 start modes, ELF images and forwarded hypercalls.

The tables the runtime writes for prot32/long64 (GDT, IDT, TSS, page
tables) are decoded back here; exceptions in real guests must reach the
runtime's stubs and end the run with the vector and rip; ELF32/ELF64
executables linked by GNU ld run from their segments and entry point;
KVM_HC_MAP_GPA_RANGE is answered in a kvm_run buffer laid out as x86_64's.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path
from typing import Any

import pytest

import hvconf.abi
from hvconf import compiler
from hvconf.platforms import x86_64 as arch_x86
from hvconf.emit.guest import assemble
from hvconf.contract import PlanError, read_plan
from hvconf.kvm import elf
from hvconf.kvm.images import Loaded, check_placement
from hvconf.kvm.ioctls import kvm_run
from hvconf.kvm.status import Status
from hvconf.kvm.x86.hypercalls import X86Hypercalls, complete
from hvconf.kvm.x86.modes import (CODE_SELECTOR, DATA_SELECTOR, EXCEPTION_PORT, IDT, MODES, PD, PDPT, PML4,
                                  STUB_SIZE, STUBS, TSS, fault)  # fmt: skip

from .conftest import GUESTS, TABLES
from .test_runtime import Launch

T = TABLES


# ---- the tables, decoded back ----


def test_compiler_reserves_what_the_runtime_writes():
    assert arch_x86.TABLES_AT == T and T % 4096 == 0
    assert arch_x86.TABLES_SIZE == {name: mode.size for name, mode in MODES.items()}
    for mode in MODES.values():
        assert len(mode.image(T)) == mode.size


def descriptor(image: bytes, selector: int) -> dict[str, int]:
    low, high = struct.unpack_from("<II", image, selector)
    return {"base": (low >> 16) | ((high & 0xFF) << 16) | (high & 0xFF00_0000),
            "limit": (low & 0xFFFF) | (high & 0xF_0000), "access": (high >> 8) & 0xFF,
            "l": (high >> 21) & 1, "db": (high >> 22) & 1, "g": (high >> 23) & 1}  # fmt: skip


@pytest.mark.parametrize(("mode", "code_l", "code_db"), [("prot32", 0, 1), ("long64", 1, 0)])
def test_gdt_holds_flat_code_and_data_at_linux_boot_selectors(mode, code_l, code_db):
    image = MODES[mode].image(T)
    code, data = descriptor(image, CODE_SELECTOR), descriptor(image, DATA_SELECTOR)
    assert code == {"base": 0, "limit": 0xFFFFF, "access": 0x9B, "l": code_l, "db": code_db, "g": 1}
    assert data == {"base": 0, "limit": 0xFFFFF, "access": 0x93, "l": 0, "db": 1, "g": 1}
    assert image[:16] == bytes(16)  # null descriptor, and 0x08 unused as in Linux's boot GDT


def test_long64_page_tables_identity_map_the_first_4_gib():
    image = MODES["long64"].image(T)

    def entry(table_gpa: int, index: int) -> int:
        return struct.unpack_from("<Q", image, table_gpa - T + 8 * index)[0]

    for linear in (0, 0x7C00, 0x12_3456, 0x3FFF_FFFF, 0xFEE0_0020, 0xFFFF_FFFF):
        pml4e = entry(T + PML4, (linear >> 39) & 0x1FF)
        pdpte = entry(pml4e & ~0xFFF, (linear >> 30) & 0x1FF)
        pde = entry(pdpte & ~0xFFF, (linear >> 21) & 0x1FF)
        assert pml4e & 3 == pdpte & 3 == 3 and pde & 0x83 == 0x83  # present, writable, 2 MiB page
        assert (pde & ~0x1F_FFFF & ((1 << 52) - 1)) + (linear & 0x1F_FFFF) == linear
    assert entry(T + PDPT, 4) == 0  # nothing above 4 GiB: an access there page-faults
    assert len(image) == PD + 4 * 0x1000


def test_idt_gates_lead_to_stubs_that_decode_alike_in_32_and_64_bit_mode():
    long64, prot32 = MODES["long64"].image(T), MODES["prot32"].image(T)
    for vector in (0, 6, 14, 31):
        stub = T + STUBS + STUB_SIZE * vector
        lo, sel, ist, attr, mid, hi, _ = struct.unpack_from("<HHBBHII", long64, IDT + 16 * vector)
        assert (lo | mid << 16 | hi << 32, sel, ist, attr) == (stub, CODE_SELECTOR, 1, 0x8E)
        lo, sel, _, attr, mid = struct.unpack_from("<HHBBH", prot32, IDT + 8 * vector)
        assert (lo | mid << 16, sel, attr) == (stub, CODE_SELECTOR, 0x8E)
    ist1 = struct.unpack_from("<Q", long64, TSS + 0x24)[0]
    assert T + STUBS + STUB_SIZE * 32 < ist1 <= T + 0x1000  # the exception stack clears the stubs
    if shutil.which("objdump") is None:
        pytest.skip("objdump is not installed")
    stub = long64[STUBS + 6 * STUB_SIZE : STUBS + 7 * STUB_SIZE - 3]  # vector 6, without the int3 padding
    texts = [disassemble(stub, machine) for machine in ("i386", "i386:x86-64")]
    assert texts[0] == texts[1] == ["mov $0x6,%eax", f"mov ${EXCEPTION_PORT:#x},%dx", "out %eax,(%dx)", "hlt",
                                    "jmp 0xa"]  # fmt: skip


def disassemble(code: bytes, machine: str) -> list[str]:
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".bin") as f:
        f.write(code)
        f.flush()
        text = subprocess.run(["objdump", "-D", "-b", "binary", "-m", machine, f.name], capture_output=True,
                              text=True, check=True).stdout  # fmt: skip
    return [" ".join(line.split("\t")[-1].split()) for line in text.splitlines() if line[:1] == " " and "\t" in line]


def test_fault_frames_decode_with_and_without_error_codes():
    frame64 = struct.pack("<QQ", 0x2, 0x10_0010)
    assert fault(14, frame64, 8, 0xDEAD000).describe() == (
        "unhandled exception #PF (vector 14), at rip 0x100010, error code 0x2, cr2 0xdead000")
    assert fault(6, struct.pack("<II", 0x10_0000, 0x10), 4, 0).describe() == (
        "unhandled exception #UD (vector 6), at rip 0x100000")
    assert fault(3, None, 8, 0).describe() == "unhandled exception #BP (vector 3)"


# ---- exceptions in real guests end the run with what happened ----

FAULTS = {
    "long64-ud2": ("long64", ".code64\n mov $0x18, %ax\n mov %ax, %ds\n mov %ax, %ss\n ud2\n",
                   "#UD (vector 6), at rip 0x100008"),
    "long64-pf": ("long64", ".code64\n movabs $0x100000000, %rax\n movb $1, (%rax)\n",
                  "#PF (vector 14), at rip 0x10000a, error code 0x2, cr2 0x100000000"),
    "prot32-ud2": ("prot32", ".code32\n mov $0x80000, %esp\n ud2\n", "#UD (vector 6), at rip 0x100005"),
    "prot32-gp": ("prot32", ".code32\n mov $0x80000, %esp\n mov $0x28, %ax\n mov %ax, %ds\n",
                  "#GP (vector 13), at rip 0x100009, error code 0x28"),  # selector 0x28 lies beyond the GDT
}  # fmt: skip


@pytest.mark.kvm
@pytest.mark.parametrize("case", sorted(FAULTS))
def test_an_exception_reaches_the_runtime_and_ends_the_run(make_plan, tmp_path, case):
    mode, source, said = FAULTS[case]
    (tmp_path / "fault.S").write_text(f"\t.text\n{source}")
    run = Launch(*make_plan(image=assemble(tmp_path / "fault.S", code16=False), mode=mode), "--timeout", "5")
    assert run.status == Status.GUEST_SHUTDOWN == 5
    assert run.stderr == (f"launch: error: x86-test: vcpu:0: unhandled exception {said} "
                          "(status 5: guest shut down)\n")  # fmt: skip


# ---- ELF images ----


def link(tmp_path: Path, source: Path, bits: int, script: str) -> bytes:
    if shutil.which("ld") is None:
        pytest.skip("GNU ld is not installed")
    obj, out, lds = tmp_path / "g.o", tmp_path / "g.elf", tmp_path / "g.lds"
    lds.write_text(script)
    subprocess.run(["as", f"--{bits}", "-I", str(source.parent), "-o", str(obj), str(source)], check=True)  # its .inc
    emulation = ["-m", "elf_i386"] if bits == 32 else []
    subprocess.run(["ld", *emulation, "-T", str(lds), "-o", str(out), str(obj)], check=True)
    return out.read_bytes()


LINKED_AT_PHYSICAL = "ENTRY(_start) SECTIONS { . = 0x180000; .text : { *(.text) } }"
# vmlinux-style: linked high, loaded low; the entry is moved to its physical address
LINKED_HIGH = "ENTRY(_start) SECTIONS { . = 0xffffffff80200000; .text : AT(0x180000) { *(.text) } }"


def elf_plan(make_plan: Any, image: bytes, mode: str, vcpus: int = 1) -> tuple[dict[str, Any], Path]:
    plan, base = make_plan(image=image, mode=mode, vcpus=vcpus)
    plan["images"][0]["format"] = "elf"
    for step in plan["steps"]:
        if step["ioctl"] == "KVM_SET_REGS":
            del step["args"]["rip"]  # from the ELF header
    return plan, base


@pytest.mark.kvm
def test_elf64_linked_high_runs_from_its_physical_segments(make_plan, tmp_path):
    image = elf_plan(make_plan, link(tmp_path, GUESTS / "cpuid.S", 64, LINKED_HIGH), "long64")
    parsed = elf.parse(link(tmp_path, GUESTS / "cpuid.S", 64, LINKED_HIGH))
    assert parsed.bits == 64 and parsed.entry == 0x180000 and parsed.segments[0].paddr == 0x180000
    run = Launch(*image, "--timeout", "5")
    assert run.status == 0, run.stderr
    assert run.console.startswith(b'cpuid 0x40000000: max 0x40000001 signature "KVMKVMKVM"\n')


@pytest.mark.kvm
def test_elf32_runs_on_two_vcpus(make_plan, tmp_path):
    data = link(tmp_path, GUESTS / "smp.S", 32, LINKED_AT_PHYSICAL)
    assert (elf.parse(data).bits, elf.parse(data).entry) == (32, 0x180000)
    run = Launch(*elf_plan(make_plan, data, "prot32", vcpus=2), "--timeout", "5")
    assert run.status == 0, run.stderr
    assert sorted(run.console.splitlines()) == [b"vcpu 0: hello from protected mode",
                                                b"vcpu 1: hello from protected mode"]  # fmt: skip


def test_elf_segments_outside_memory_or_over_the_tables_are_refused(make_plan, tmp_path):
    high = link(tmp_path, GUESTS / "cpuid.S", 64, "ENTRY(_start) SECTIONS { . = 0x1fff00; .text : { *(.text) } }")
    run = Launch(*elf_plan(make_plan, high, "long64"))
    assert run.status == Status.USAGE and "does not fit inside one memory slot" in run.stderr
    low = link(tmp_path, GUESTS / "cpuid.S", 64, "ENTRY(_start) SECTIONS { . = 0x3000; .text : { *(.text) } }")
    run = Launch(*elf_plan(make_plan, low, "long64"))
    assert run.status == Status.USAGE
    assert "the long64 tables of the runtime [0x1000, 0x8000) overlaps image 'guest' [0x3000, " in run.stderr


ELF64_HEADER = dict(type=2, machine=62, version=1, entry=0x1000, phoff=64, shoff=0, flags=0, ehsize=64,
                    phentsize=56, phnum=1, shentsize=0, shnum=0, shstrndx=0)  # fmt: skip


def tiny_elf(header: dict[str, int] | None = None, ident: bytes = b"\x7fELF\x02\x01\x01", load: tuple[int, ...] =
             (1, 5, 0x78, 0x1000, 0x1000, 4, 8, 0x1000)) -> bytes:  # fmt: skip
    fields = {**ELF64_HEADER, **(header or {})}
    head = ident.ljust(16, b"\0") + struct.pack("<HHIQQQIHHHHHH", *fields.values())
    return head + struct.pack("<IIQQQQQQ", *load) + b"\x90\x90\xf4\xcc"


def test_elf_parser_reads_segments_and_refuses_what_it_cannot_place():
    parsed = elf.parse(tiny_elf())
    assert parsed.segments == (elf.Segment(0x1000, b"\x90\x90\xf4\xcc" + bytes(4)),)  # filesz 4, memsz 8
    bad = {
        "not an ELF file": b"MZ" + bytes(100),
        "big-endian": tiny_elf(ident=b"\x7fELF\x02\x02\x01"),
        "is not ET_EXEC": tiny_elf({"type": 3}),
        "is not x86": tiny_elf({"machine": 21}),
        "beyond the file": tiny_elf(load=(1, 5, 0x78, 0x1000, 0x1000, 400, 400, 0x1000)),
        "no PT_LOAD": tiny_elf(load=(4, 0, 0, 0, 0, 0, 0, 0)),
        "p_filesz": tiny_elf(load=(1, 5, 0x78, 0x1000, 0x1000, 8, 4, 0x1000)),
    }
    for said, data in bad.items():
        with pytest.raises(elf.ElfError, match=said):
            elf.parse(data)


def test_placement_finds_overlaps_between_images(make_plan):
    plan = read_plan(make_plan("hello")[0])
    check_placement(plan, [Loaded("a", ((0x7C00, b"x" * 16),)), Loaded("b", ((0x7C10, b"y"),))], [])
    with pytest.raises(PlanError, match=r"image 'a' \[0x7c00, 0x7c10\) overlaps image 'b' \[0x7c0f, 0x7c10\)"):
        check_placement(plan, [Loaded("a", ((0x7C00, b"x" * 16),)), Loaded("b", ((0x7C0F, b"y"),))], [])


# ---- the compiler keeps images clear of the tables ----


@pytest.mark.parametrize(("statement", "code"), [
    ('guest "g.S" mode long64 at 0x2000', "guest-overlaps-mode-tables"),
    ('guest "g.S" mode prot32 at 0x1800', "guest-overlaps-mode-tables"),
    ('guest "g.S" mode long64 at 0x1ffff0', "guest-beyond-memory"),
])  # fmt: skip
def test_compiler_reports_images_over_the_tables_or_beyond_memory(tmp_path, statement, code):
    (tmp_path / "g.S").write_text("\t.text\n\t.fill 32, 1, 0x90\n")
    (tmp_path / "vm.hv").write_text(f"format 1\nvm t {{ arch x86_64  memory 2M  {statement} }}\n")
    result = compiler.build([tmp_path / "vm.hv"])
    assert [d.code for d in result.report.errors] == [code]
    assert result.report.errors[0].span.line == 2


def test_compiler_plans_tables_and_the_vcpu_index(tmp_path):
    (tmp_path / "g.S").write_text("\t.text\n\thlt\n")
    (tmp_path / "vm.hv").write_text('format 1\nvm t { arch x86_64  memory 2M  vcpus 2  guest "g.S" mode long64 }\n')
    [built] = compiler.build([tmp_path / "vm.hv"]).built
    sregs = [s["args"] for s in built.plan["steps"] if s["ioctl"] == "KVM_SET_SREGS"]
    regs = [s["args"] for s in built.plan["steps"] if s["ioctl"] == "KVM_SET_REGS"]
    assert sregs == [{"mode": "long64", "tables": T}] * 2
    assert regs == [{"rip": 0x100000, "rflags": 2, "rdi": 0}, {"rip": 0x100000, "rflags": 2, "rdi": 1}]


# ---- KVM_EXIT_HYPERCALL, in a buffer laid out as the kernel lays it out ----

MAP_GPA_RANGE = hvconf.abi.x86_hypercall("KVM_HC_MAP_GPA_RANGE").number
ENOSYS, EINVAL = 1000, 22


@pytest.mark.parametrize(("nr", "args", "served", "ret"), [
    (MAP_GPA_RANGE, (0x10_0000, 16, 0), True, 0),
    (MAP_GPA_RANGE, (0x20_0000, 1, 1 | 1 << 4), True, 0),  # 2M page size hint, encrypted
    (MAP_GPA_RANGE, (0x10_0800, 1, 0), True, -EINVAL),  # not page aligned
    (MAP_GPA_RANGE, (0x10_0000, 0, 0), True, -EINVAL),  # no pages
    (MAP_GPA_RANGE, (0x10_0000, 1, 1 << 8), True, -EINVAL),  # unknown attribute bit
    (MAP_GPA_RANGE, (0x10_0000, 1, 3), True, -EINVAL),  # no such page size
    (MAP_GPA_RANGE, (0x3F_F000, 2, 0), True, -EINVAL),  # runs past guest memory
    (MAP_GPA_RANGE, (0x10_0000, 1, 0), False, -ENOSYS),  # the plan does not forward it
    (1, (0, 0, 0), True, -ENOSYS),
])  # fmt: skip
def test_map_gpa_range_is_answered_in_the_kvm_run_buffer(nr, args, served, ret):
    # struct kvm_run on x86_64 (linux/kvm.h): exit_reason at 8, the exit union at 32, where
    # hypercall is nr (u64), args[6] (u64), ret (u64) at 88, longmode (u32) at 96.
    buf = bytearray(4096)
    struct.pack_into("<I", buf, 8, hvconf.abi.exit_reason("KVM_EXIT_HYPERCALL").number)
    struct.pack_into("<Q6QQI", buf, 32, nr, *args, 0, 0, 0, 0, 1)
    run = kvm_run.KvmRun(buf, "x86_64")
    ex = run.decode()
    assert ex == kvm_run.Hypercall(nr, (*args, 0, 0, 0), 1)
    table = X86Hypercalls({"exit_hypercalls": ["KVM_HC_MAP_GPA_RANGE"] if served else []}, lambda: [(0, 4 << 20)])
    before = bytes(buf)
    complete(run, ex, table.handle(ex))
    assert struct.unpack_from("<q", buf, 88)[0] == ret
    assert buf[:88] + buf[96:] == before[:88] + before[96:]  # only ret was written
