"""What a Linux guest boots from on sPAPR, as the build places it (hvconf/platforms/spapr_boot.py,
kernel_elf.py, spapr_linux.py) and as the launcher loads it (hvconf/kvm/images.py, powerpc/devices.py).

The kernel is a real ppc64le ELF, assembled and linked here by the cross binutils the way a vmlinux
is linked (virtual 0xc000000000000000, physical 0, a bss past the file bytes); the tree is read back
by real dtc. A real boot of Debian's vmlinux from these outputs is tests/ppc/test_power_linux.py.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from hvconf.compiler import build
from hvconf.contract import read_plan
from hvconf.kvm import images
from hvconf.kvm.powerpc import devices
from hvconf.platforms import spapr_linux

AS, LD = shutil.which("powerpc64le-linux-gnu-as"), shutil.which("powerpc64le-linux-gnu-ld")
needs_binutils = pytest.mark.skipif(AS is None or LD is None, reason="powerpc64le-linux-gnu binutils not installed")
DTC = shutil.which("dtc")
needs_dtc = pytest.mark.skipif(DTC is None, reason="dtc (device-tree-compiler) is not installed")

BSS = 0x300000  # 3 MiB of bss: the kernel's memsz reaches past 64 MiB only if it counts
TEXT_AT = 0x3D00000  # the file bytes end just below 64 MiB; memsz ends above it
KERNEL_S = f"""
    .section .text
    .globl _start
_start:
    b _start
    .section .data
    .quad 0x1122334455667788
    .section .bss
    .space {BSS}
"""
LDS = f"""
ENTRY(_start)
SECTIONS {{
    . = 0xc000000000000000 + {TEXT_AT:#x};
    .text : AT({TEXT_AT:#x}) {{ *(.text) }}
    .data : {{ *(.data) }}
    .bss : {{ *(.bss) }}
}}
"""
TOKENS = "\n".join(f'        token "{n}" {0x2001 + i:#x}' for i, n in enumerate(
    ("display-character", "get-time-of-day", "power-off", "system-reboot",
     "ibm,set-xive", "ibm,get-xive", "ibm,int-off", "ibm,int-on")))
LINUX = f"""format 1
vm linux {{
    arch ppc64le
    kvm book3s_hv
    memory 256M
    vcpus @vcpus@
    mmu @mmu@
    irqchip xics
    cap KVM_CAP_PPC_PAPR on vcpus
    console hvterm
    rtas {{
{TOKENS}
    }}
    kernel "@kernel@"
    initrd "initrd.img"
    cmdline "console=hvc0"
}}
"""


def vmlinux(folder: Path) -> Path:
    """A ppc64le ELF linked like a vmlinux: vaddr 0xc000000000000000 + TEXT_AT at paddr TEXT_AT."""
    (folder / "k.S").write_text(KERNEL_S)
    (folder / "k.lds").write_text(LDS)
    subprocess.run([AS, "-a64", "-mlittle-endian", "-o", folder / "k.o", folder / "k.S"], check=True)
    subprocess.run([LD, "-EL", "-T", folder / "k.lds", "-o", folder / "vmlinux", folder / "k.o"], check=True)
    return folder / "vmlinux"


def project(tmp: Path, *, kernel: str = "vmlinux", mmu: str = "radix", vcpus: int = 1,
            initrd: bytes | None = b"initramfs") -> Path:
    (tmp / ".git").mkdir(exist_ok=True)
    if initrd is not None:
        (tmp / "initrd.img").write_bytes(initrd)
    hv = tmp / "linux.hv"
    hv.write_text(LINUX.replace("@vcpus@", str(vcpus)).replace("@mmu@", mmu).replace("@kernel@", kernel))
    return hv


def built(hv: Path) -> tuple[dict[str, bytes], list[str]]:
    result = build([hv])
    codes = [d.code for d in result.report.diagnostics]
    return (result.built[0].files if result.built else {}), codes


def dtc_value(dtb: bytes, tmp: Path, path: str, prop: str) -> str:
    (tmp / "t.dtb").write_bytes(dtb)
    out = subprocess.run([DTC, "-I", "dtb", "-O", "dts", tmp / "t.dtb"], capture_output=True, text=True,
                         check=True).stdout
    node = out[out.index(f"{path.rsplit('/', 1)[-1]} {{"):]
    line = next(l for l in node.splitlines() if l.strip().startswith(f"{prop} = "))
    return line.split("=", 1)[1].strip().rstrip(";")


@needs_binutils
def test_an_elf_kernel_is_placed_by_its_segments_and_its_memsz_decides_where_the_initrd_goes(tmp_path: Path) -> None:
    vmlinux(tmp_path)
    files, codes = built(project(tmp_path))
    assert codes == []
    plan = json.loads(files["plan.json"])
    by_name = {im["name"]: im for im in plan["images"]}
    kernel = by_name["kernel"]
    assert kernel["format"] == "segments" and kernel["guest_phys_addr"] == TEXT_AT
    [(gpa, filesz, memsz)] = kernel["segments"]
    assert gpa == TEXT_AT and memsz - filesz >= BSS  # the bss is counted, not copied
    assert len(files["kernel.img"]) == filesz  # only the segment's file bytes: no ELF header, no symbols
    assert files["kernel.img"][:4] == bytes.fromhex("00000048")  # `b _start` (little-endian), not "\x7fELF"
    # the file ends below 64 MiB, the bss above: the initrd goes to the next 64 MiB boundary, 128 MiB
    assert TEXT_AT + filesz < 64 << 20 < TEXT_AT + memsz
    assert by_name["initrd"]["guest_phys_addr"] == 128 << 20
    assert by_name["rtas"]["guest_phys_addr"] == (256 << 20) - 0x20000
    # each image is recorded with the hash of what the launcher loads
    import hashlib

    for image in plan["images"]:
        assert image["sha256"] == hashlib.sha256(files[image["path"]]).hexdigest()
    # vCPU 0 starts at the ELF entry, moved to its physical address
    regs = next(s for s in plan["steps"] if s["ioctl"] == "KVM_SET_REGS")
    assert regs["args"]["pc"] == TEXT_AT


@needs_binutils
def test_the_launcher_loads_the_segments_with_a_zeroed_bss_and_the_initrd_end_it_loaded(tmp_path: Path) -> None:
    vmlinux(tmp_path)
    files, _ = built(project(tmp_path))
    out = tmp_path / "out"
    out.mkdir()
    for name, data in files.items():
        (out / name).write_bytes(data)
    plan = read_plan(json.loads(files["plan.json"]))
    loaded = images.load(plan, out, {})
    kernel = next(im for im in loaded if im.name == "kernel")
    [(gpa, data)] = kernel.chunks
    assert gpa == TEXT_AT and data[: len(files["kernel.img"])] == files["kernel.img"]
    assert len(data) == plan.images[1].segments[0][2] and not any(data[len(files["kernel.img"]):])
    # --initrd: a file of another size; the tree's linux,initrd-end follows it
    (tmp_path / "other.img").write_bytes(b"x" * 5000)
    loaded = devices.prepare_images(plan, images.load(plan, out, {"initrd": str(tmp_path / "other.img")}),
                                    lambda _: None)
    fdt = next(im for im in loaded if im.name == "fdt").chunks[0][1]
    at = plan.launcher["papr"]["initrd_end"]
    assert int.from_bytes(fdt[at : at + 8], "big") == (128 << 20) + 5000
    # --kernel: the ELF itself, parsed at run time (EM_PPC64, little-endian) to the same chunk
    again = images.load(plan, out, {"kernel": str(tmp_path / "vmlinux")})
    assert next(im for im in again if im.name == "kernel").chunks == kernel.chunks


@needs_dtc
@needs_binutils
@pytest.mark.parametrize("mmu", ["radix", "hash"])
def test_the_tree_holds_what_a_flattened_tree_boot_of_linux_reads(tmp_path: Path, mmu: str) -> None:
    vmlinux(tmp_path)
    files, codes = built(project(tmp_path, mmu=mmu, vcpus=2))
    assert "boot-images-overlap" not in codes
    dtb = files["linux.dtb"]
    assert dtc_value(dtb, tmp_path, "/chosen", "linux,initrd-start") == "<0x00 0x8000000>"
    assert dtc_value(dtb, tmp_path, "/chosen", "linux,initrd-end") == f"<0x00 {(128 << 20) + 9:#x}>"
    vec5 = dtc_value(dtb, tmp_path, "/chosen", "ibm,architecture-vec-5")
    assert bytes.fromhex(vec5.strip("[]").replace(" ", "")) == spapr_linux.vec5(mmu == "radix")
    assert (bytes.fromhex(vec5.strip("[]").replace(" ", ""))[24] == 0x40) is (mmu == "radix")
    rtas = (256 << 20) - 0x20000
    assert dtc_value(dtb, tmp_path, "/rtas", "linux,rtas-base") == f"<{rtas:#x}>"
    assert dtc_value(dtb, tmp_path, "/rtas", "linux,rtas-entry") == f"<{rtas:#x}>"
    assert f"/memreserve/ {rtas:#x}" in files["linux.dts"].decode()
    assert dtc_value(dtb, tmp_path, "/cpus/PowerPC,POWER9@0", "ibm,vmx") == "<0x02>"
    radix_ap = "ibm,processor-radix-AP-encodings = " in files["linux.dts"].decode()
    slb = "ibm,slb-size = " in files["linux.dts"].decode()
    assert (radix_ap, slb) == ((True, False) if mmu == "radix" else (False, True))
    assert dtc_value(dtb, tmp_path, "/interrupt-controller", "ibm,interrupt-server-ranges") == "<0x00 0x02>"
    hypertas = dtc_value(dtb, tmp_path, "/rtas", "ibm,hypertas-functions")
    assert "hcall-interrupt" in hypertas.strip('"').split("\\0")  # served: the in-kernel XICS
    assert dtc_value(dtb, tmp_path, "/ibm,platform-facilities/ibm,random-v1", "compatible") == '"ibm,random"'


@needs_binutils
def test_xics_is_created_once_and_connected_after_the_papr_cap_on_every_vcpu(tmp_path: Path) -> None:
    vmlinux(tmp_path)
    files, _ = built(project(tmp_path, vcpus=2))
    steps = [(s["fd"], s["ioctl"], s["args"].get("cap")) for s in json.loads(files["plan.json"])["steps"]]
    create = steps.index(("vm", "KVM_CREATE_DEVICE", None))
    for vcpu in ("vcpu:0", "vcpu:1"):
        papr = steps.index((vcpu, "KVM_ENABLE_CAP", "KVM_CAP_PPC_PAPR"))
        xics = steps.index((vcpu, "KVM_ENABLE_CAP", "KVM_CAP_IRQ_XICS"))
        assert create < papr < xics  # KVM-HV refuses KVM_CAP_IRQ_XICS on a vCPU before KVM_CAP_PPC_PAPR
    args = [s["args"] for s in json.loads(files["plan.json"])["steps"] if s["args"].get("cap") == "KVM_CAP_IRQ_XICS"]
    assert [(a["args"][1], a["device"]) for a in args] == [(0, "xics"), (1, "xics")]  # server = vCPU id


def test_a_file_that_is_not_an_elf_kernel_is_refused_unless_declared_flat(tmp_path: Path) -> None:
    (tmp_path / "Image").write_bytes(b"raw kernel bytes")
    _, codes = built(project(tmp_path, kernel="Image"))
    assert "kernel-invalid" in codes
    hv = project(tmp_path, kernel="Image")
    hv.write_text(hv.read_text().replace('kernel "Image"', 'kernel "Image" flat'))
    files, codes = built(hv)
    assert codes == []
    kernel = next(im for im in json.loads(files["plan.json"])["images"] if im["name"] == "kernel")
    assert (kernel["format"], kernel["guest_phys_addr"], files["kernel.img"]) == ("flat", 0, b"raw kernel bytes")


@needs_binutils
def test_an_elf_of_another_machine_is_refused(tmp_path: Path) -> None:
    (tmp_path / "k.S").write_text(".globl _start\n_start: hlt\n")
    subprocess.run(["as", "--64", "-o", tmp_path / "k.o", tmp_path / "k.S"], check=True)
    subprocess.run(["ld", "-o", tmp_path / "vmlinux", tmp_path / "k.o"], check=True)
    result = build([project(tmp_path)])
    [found] = [d for d in result.report.diagnostics if d.code == "kernel-invalid"]
    assert "not a ppc64le kernel" in found.message and found.span is not None and found.span.line == 21


def test_boot_files_that_overlap_or_leave_memory_are_errors(tmp_path: Path) -> None:
    (tmp_path / "Image").write_bytes(b"k")
    hv = project(tmp_path, kernel="Image", initrd=bytes(192 << 20))
    hv.write_text(hv.read_text().replace('kernel "Image"', 'kernel "Image" flat'))
    result = build([hv])
    [found] = [d for d in result.report.diagnostics if d.code == "boot-images-overlap"]
    assert "the initrd [0x4000000, 0x10000000) overlaps the RTAS blob" in found.message
    assert result.built == []  # nothing half-written


def test_a_missing_initrd_warns_and_the_launcher_needs_it(tmp_path: Path) -> None:
    (tmp_path / "Image").write_bytes(b"k")
    hv = project(tmp_path, kernel="Image", initrd=None)
    hv.write_text(hv.read_text().replace('kernel "Image"', 'kernel "Image" flat'))
    files, codes = built(hv)
    assert codes == ["initrd-missing"]
    initrd = next(im for im in json.loads(files["plan.json"])["images"] if im["name"] == "initrd")
    assert initrd["path"] is None and initrd["guest_phys_addr"] == 64 << 20
