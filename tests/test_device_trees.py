"""The sPAPR and e500 device trees built from real .hv definitions (hvconf/platforms/spapr_tree.py, e500_tree.py).

Each definition goes .hv -> loader -> lower -> hcall set -> tree -> DTS and DTB. dtc compiles
the DTS without a warning and reads the DTB back; libfdt reads the exact values (hypertas sets,
RTAS tokens, ibm,pft-size, DMA windows, /hypervisor words big-endian, stdout-path). Builds are
byte-identical, and sources in the DTS are relative to the .hv file's folder.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from hvconf import abi
from hvconf.abi import hcalls as abi_hcalls
from hvconf.platforms import e500_spin, e500_tree, spapr_tree
from hvconf.platforms.base import BuildContext
from hvconf.diagnostics import Report
from hvconf.emit.dtb import to_dtb
from hvconf.emit.dts import to_dts
from hvconf.emit.fdt import Node
from hvconf.model import hcallset
from hvconf.model.lower import lower_program
from hvconf.model.target import load_target
from hvconf.syntax.loader import Loader

libfdt = pytest.importorskip("libfdt", reason="pylibfdt is not installed")
DTC = shutil.which("dtc")
needs_dtc = pytest.mark.skipif(DTC is None, reason="dtc (device-tree-compiler) is not installed")

VTY = "/vdevice/vty@30000000"
BYTE_CHANNEL = "/hypervisor/handles/byte-channel"
PVINFO = abi_hcalls.epapr_data()["pvinfo"]

HV_FULL = """\
vm hv {
    arch ppc64le  kvm book3s_hv  memory 4G  vcpus 8  threads 4
    htab order 25
    hcalls { preset kernel_default  enable H_SET_MODE }
    rtas {
        token "ibm,set-xive" 0x2000
        token "ibm,get-xive" 0x2001
        token "display-character" 0x2010
    }
    cap KVM_CAP_PPC_PAPR on vcpus
    tce vio0 { liobn 0x71000000  window 256M  page 4K  offset 0 }
    tce vio1 { liobn 0x71000100  window 8G  page 64K  offset 0x800000000000000 }
    console hvterm
    kernel "vmlinux"  cmdline "console=hvc0 root=/dev/sda"
}
"""
HV_NO_CEDE = """\
vm nocede {
    arch ppc64le  kvm book3s_hv  memory 1G  vcpus 2  threads 2
    hcalls { disable H_CEDE }
}
"""
HV_BARE = """\
vm bare {
    arch ppc64le  kvm book3s_hv  memory 1G  vcpus 2  threads 2
}
"""
HV_RADIX = """\
vm radix {
    arch ppc64le  kvm book3s_hv  memory 2G  vcpus 1  mmu radix
}
"""
PR_MIN = """\
vm pr {
    arch ppc64  kvm book3s_pr  memory 512M  vcpus 2
    console none
}
"""
PR_AUTO = """\
vm prauto {
    arch ppc64  kvm book3s_pr  memory 2G  vcpus 6  threads 4  htab auto
    rtas { token "ibm,int-on" 0x200d }
    tce vio0 { liobn 0x1000  window 16M  page 4K  offset 0 }
}
"""
PCI = """\
vm pci {
    arch ppc64le  kvm book3s_hv  memory 1G  vcpus 1
    tce pci0 { liobn 0x80000000  window 1G  page 64K  offset 0 }
    tce pci1 { liobn 0x80000100  window 8G  page 64K  offset 0x800000000000000 }
    console none
}
"""
E500V2 = """\
vm e5v2 {
    arch ppc-e500  kvm booke  memory 256M  vcpus 2
    cap KVM_CAP_SW_TLB on vcpus { mmu e500v2  sets 128  ways 4 }
    hypervisor { idle  reset  shutdown }
    cmdline "console=ttyS0"
}
"""
E500MC = """\
vm e5mc {
    arch ppc-e500  kvm booke  memory 128M  vcpus 1
    cap KVM_CAP_SW_TLB on vcpus { mmu e500mc  sets 128  ways 4 }
}
"""
E500_NO_TLB = """\
vm e5bare {
    arch ppc-e500  kvm booke  memory 64M  vcpus 1
}
"""
E500_OWN_WORDS = """\
vm e5own {
    arch ppc-e500  kvm booke  memory 64M  vcpus 1
    cap KVM_CAP_SW_TLB on vcpus { mmu e500v2 }
    hypervisor { compatible "epapr,hypervisor-1.1"  hcall_instructions [0x44000022, 0x4e800020] }
}
"""
E500_CONSOLE = """\
vm e5con {
    arch ppc-e500  kvm booke  memory 256M  vcpus 4
    cap KVM_CAP_SW_TLB on vcpus { mmu e500mc }
    hypervisor { idle }
    console byte_channel
    cmdline "console=hvc0"
}
"""
CASES = {"hv_full": HV_FULL, "hv_no_cede": HV_NO_CEDE, "hv_bare": HV_BARE, "hv_radix": HV_RADIX,
         "pr_min": PR_MIN, "pr_auto": PR_AUTO, "pci": PCI, "e500v2": E500V2, "e500mc": E500MC,
         "e500_no_tlb": E500_NO_TLB, "e500_own_words": E500_OWN_WORDS, "e500_console": E500_CONSOLE}


@dataclass
class Built:
    ctx: BuildContext
    root: Node
    dts: str
    dtb: bytes
    hv: Path

    @property
    def fdt(self) -> "libfdt.Fdt":
        return libfdt.Fdt(self.dtb)


def build(folder: Path, text: str, *, file: str = "vm.hv") -> Built:
    folder.mkdir(parents=True, exist_ok=True)
    hv = folder / file
    hv.write_text(text)
    report = Report()
    (vm,) = lower_program(Loader().load(hv, report), report)
    assert not report.has_errors, list(report)
    target = load_target(vm.target)
    ctx = BuildContext(vm, target, report, folder, abi.proposed(), hcallset.resolve(vm, target))
    module = spapr_tree if target.platform_module == "ppc64_spapr" else e500_tree
    root = module.device_tree(ctx)
    return Built(ctx, root, to_dts(root, reserve=ctx.reserve), to_dtb(root, reserve=ctx.reserve), hv)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Built]:
    base = tmp_path_factory.mktemp("trees")
    return {name: build(base / name, text) for name, text in CASES.items()}


def raw(fdt: "libfdt.Fdt", path: str, name: str) -> bytes | None:
    value = fdt.getprop(fdt.path_offset(path), name, quiet=(libfdt.NOTFOUND,))
    return None if isinstance(value, int) else bytes(value)


def u32s(fdt: "libfdt.Fdt", path: str, name: str) -> tuple[int, ...] | None:
    data = raw(fdt, path, name)
    return None if data is None else struct.unpack(f">{len(data) // 4}I", data)


def strs(fdt: "libfdt.Fdt", path: str, name: str) -> tuple[str, ...] | None:
    data = raw(fdt, path, name)
    return None if data is None else tuple(data.decode("ascii").split("\0")[:-1])


def subnodes(fdt: "libfdt.Fdt", path: str) -> list[str]:
    out, offset = [], fdt.first_subnode(fdt.path_offset(path), quiet=(libfdt.NOTFOUND,))
    while offset >= 0:
        out.append(fdt.get_name(offset))
        offset = fdt.next_subnode(offset, quiet=(libfdt.NOTFOUND,))
    return out


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


# ---- every tree: dtc and libfdt accept it, builds are reproducible ---------------


@needs_dtc
@pytest.mark.parametrize("name", CASES)
def test_dtc_compiles_the_dts_without_warnings_and_reads_the_dtb(built: dict[str, Built], name: str,
                                                                  tmp_path: Path) -> None:
    dts, dtb = tmp_path / "t.dts", tmp_path / "t.dtb"
    dts.write_text(built[name].dts)
    dtb.write_bytes(built[name].dtb)
    compiled = subprocess.run([DTC, "-I", "dts", "-O", "dtb", "-o", str(tmp_path / "dtc.dtb"), str(dts)],
                              capture_output=True, text=True)
    assert (compiled.returncode, compiled.stderr) == (0, "")
    decompiled = subprocess.run([DTC, "-I", "dtb", "-O", "dts", str(dtb)], capture_output=True, text=True)
    assert (decompiled.returncode, decompiled.stderr) == (0, "")
    assert "/dts-v1/;" in decompiled.stdout
    assert libfdt.fdt_check_full(bytearray(built[name].dtb), len(built[name].dtb)) == 0


@pytest.mark.parametrize("name", CASES)
def test_two_builds_are_byte_identical(built: dict[str, Built], name: str, tmp_path: Path) -> None:
    again = build(tmp_path / "again", CASES[name])
    assert (again.dts, again.dtb) == (built[name].dts, built[name].dtb)


def test_sources_are_relative_to_the_hv_folder_whatever_the_cwd(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "deep" / "defs"
    monkeypatch.chdir(tmp_path)
    first = build(folder, HV_FULL, file="pseries.hv")
    monkeypatch.chdir(folder)
    second = build(folder, HV_FULL, file="pseries.hv")
    assert first.dts == second.dts
    assert str(tmp_path) not in first.dts
    assert f"/* pseries.hv:{line_of(HV_FULL, 'memory 4G')}:" in first.dts


# ---- sPAPR ----------------------------------------------------------------------


def test_hv_root_chosen_memory_and_cpus(built: dict[str, Built]) -> None:
    fdt = built["hv_full"].fdt
    assert strs(fdt, "/", "device_type") == ("chrp",)
    assert strs(fdt, "/", "compatible") == ("qemu,pseries",)
    assert (u32s(fdt, "/", "#address-cells"), u32s(fdt, "/", "#size-cells")) == ((2,), (2,))
    assert strs(fdt, "/chosen", "bootargs") == ("console=hvc0 root=/dev/sda",)
    assert strs(fdt, "/chosen", "stdout-path") == strs(fdt, "/chosen", "linux,stdout-path") == (VTY,)
    assert strs(fdt, "/memory@0", "device_type") == ("memory",)
    assert u32s(fdt, "/memory@0", "reg") == (0, 0, 1, 0)  # 4 GiB as two 64-bit cells
    assert subnodes(fdt, "/cpus") == ["PowerPC,POWER9@0", "PowerPC,POWER9@4"]
    for first in (0, 4):
        cpu = f"/cpus/PowerPC,POWER9@{first}"
        assert u32s(fdt, cpu, "reg") == (first,)
        assert u32s(fdt, cpu, "ibm,ppc-interrupt-server#s") == tuple(range(first, first + 4))
        assert u32s(fdt, cpu, "ibm,pft-size") == (0, 25)
        assert raw(fdt, cpu, "64-bit") == b""
        assert strs(fdt, cpu, "status") == ("okay",)
        assert u32s(fdt, cpu, "timebase-frequency") == (512_000_000,)


def test_hv_rtas_advertises_the_resolved_sets_and_the_tokens(built: dict[str, Built]) -> None:
    b = built["hv_full"]
    sets = b.ctx.hcalls.advertised_sets(b.ctx.target)
    assert "hcall-set-mode" in sets and "hcall-splpar" in sets  # H_SET_MODE: launcher; CEDE: in-kernel
    assert strs(b.fdt, "/rtas", "ibm,hypertas-functions") == sets
    assert u32s(b.fdt, "/rtas", "ibm,set-xive") == (0x2000,)
    assert u32s(b.fdt, "/rtas", "ibm,get-xive") == (0x2001,)
    assert u32s(b.fdt, "/rtas", "display-character") == (0x2010,)
    assert u32s(b.fdt, "/rtas", "rtas-size") == (20 + 2048 + 8 * 16 + 8,)
    assert u32s(b.fdt, "/rtas", "rtas-error-log-max") == (2048,)
    token_line = line_of(HV_FULL, '"ibm,get-xive"')
    assert any("ibm,get-xive = <0x2001>;" in line and f"/* vm.hv:{token_line}:" in line
               for line in b.dts.splitlines())


def test_disabling_h_cede_keeps_hcall_splpar_served_by_the_launcher(built: dict[str, Built]) -> None:
    # Disabled in the kernel, H_CEDE reaches the launcher, which answers it (the guest's idle loop
    # spins): the hcall-splpar set keeps a server and stays advertised.
    bare, nocede = built["hv_bare"], built["hv_no_cede"]
    assert "H_CEDE" not in nocede.ctx.hcalls.in_kernel
    assert nocede.ctx.hcalls.handled("H_CEDE", nocede.ctx.target)
    with_cede = strs(bare.fdt, "/rtas", "ibm,hypertas-functions")
    without = strs(nocede.fdt, "/rtas", "ibm,hypertas-functions")
    assert "hcall-splpar" in with_cede and without == with_cede
    assert without == nocede.ctx.hcalls.advertised_sets(nocede.ctx.target)


def test_hv_vdevice_holds_the_console_and_vio_windows_sorted_by_reg(built: dict[str, Built]) -> None:
    b = built["hv_full"]
    fdt = b.fdt
    assert strs(fdt, "/vdevice", "compatible") == ("IBM,vdevice",)
    assert strs(fdt, "/vdevice", "device_type") == ("vdevice",)
    assert (u32s(fdt, "/vdevice", "#address-cells"), u32s(fdt, "/vdevice", "#size-cells")) == ((1,), (0,))
    assert u32s(fdt, "/vdevice", "#interrupt-cells") == (2,)
    assert raw(fdt, "/vdevice", "interrupt-controller") == b""
    assert subnodes(fdt, "/vdevice") == ["vty@30000000", "vio0@71000000", "vio1@71000100"]
    assert u32s(fdt, VTY, "reg") == (0x30000000,)
    assert strs(fdt, VTY, "compatible") == ("hvterm1",) and strs(fdt, VTY, "device_type") == ("serial",)
    assert u32s(fdt, "/vdevice/vio0@71000000", "ibm,my-dma-window") == (0x71000000, 0, 0, 0, 0x10000000)
    # 8 GiB at bus offset 0x0800_0000_0000_0000: both high words are real.
    assert u32s(fdt, "/vdevice/vio1@71000100", "ibm,my-dma-window") == (0x71000100, 0x08000000, 0, 2, 0)
    assert u32s(fdt, "/vdevice/vio1@71000100", "reg") == (0x71000100,)
    for node in ("/vdevice/vio0@71000000", "/vdevice/vio1@71000100"):
        assert u32s(fdt, node, "ibm,#dma-address-cells") == u32s(fdt, node, "ibm,#dma-size-cells") == (2,)


def test_dts_carries_the_source_of_each_tce_line(built: dict[str, Built]) -> None:
    lines = built["hv_full"].dts.splitlines()
    for name, window in (("vio0", "<0x71000000 0 0 0 0x10000000>"), ("vio1", "<0x71000100 0x8000000 0 2 0>")):
        comment = f"/* vm.hv:{line_of(HV_FULL, f'tce {name}')}:5 */"
        start = next(i for i, text in enumerate(lines) if text.strip().startswith(f"{name}@"))
        assert lines[start].endswith(comment)
        assert lines[start + 2].strip() == f"ibm,my-dma-window = {window}; {comment}"


def test_pr_without_console_tce_or_rtas_tokens(built: dict[str, Built]) -> None:
    b = built["pr_min"]
    fdt = b.fdt
    assert raw(fdt, "/chosen", "stdout-path") is None and raw(fdt, "/chosen", "bootargs") is None
    assert subnodes(fdt, "/vdevice") == []
    props = [p.name for p in b.root.find("/rtas").props]
    assert props == ["ibm,hypertas-functions", "rtas-size", "rtas-error-log-max"]
    assert strs(fdt, "/rtas", "ibm,hypertas-functions") == b.ctx.hcalls.advertised_sets(b.ctx.target)
    # PR keeps its HPT in userspace, but the guest still needs its size: auto rule, 512 MiB -> 22.
    assert subnodes(fdt, "/cpus") == ["PowerPC,POWER9@0", "PowerPC,POWER9@1"]
    assert u32s(fdt, "/cpus/PowerPC,POWER9@1", "ibm,pft-size") == (0, 22)
    assert u32s(fdt, "/cpus/PowerPC,POWER9@1", "ibm,ppc-interrupt-server#s") == (1,)


def test_pr_auto_htab_partial_core_and_default_console(built: dict[str, Built]) -> None:
    fdt = built["pr_auto"].fdt
    assert subnodes(fdt, "/cpus") == ["PowerPC,POWER9@0", "PowerPC,POWER9@4"]
    assert u32s(fdt, "/cpus/PowerPC,POWER9@4", "ibm,ppc-interrupt-server#s") == (4, 5)
    assert u32s(fdt, "/cpus/PowerPC,POWER9@0", "ibm,pft-size") == (0, 24)  # 2 GiB -> 31 - 7
    assert u32s(fdt, "/rtas", "ibm,int-on") == (0x200D,)
    # The target's default console (hvterm) and a low VIO LIOBN, sorted by reg.
    assert subnodes(fdt, "/vdevice") == ["vio0@1000", "vty@30000000"]
    assert strs(fdt, "/chosen", "stdout-path") == (VTY,)
    assert u32s(fdt, "/vdevice/vio0@1000", "ibm,my-dma-window") == (0x1000, 0, 0, 0, 16 << 20)


def test_radix_guest_without_htab_gets_no_pft_size(built: dict[str, Built]) -> None:
    fdt = built["hv_radix"].fdt
    assert raw(fdt, "/cpus/PowerPC,POWER9@0", "ibm,pft-size") is None
    assert u32s(built["hv_bare"].fdt, "/cpus/PowerPC,POWER9@0", "ibm,pft-size") == (0, 23)  # 1 GiB -> 30 - 7


def test_pci_range_liobns_become_phbs_with_ibm_dma_window(built: dict[str, Built]) -> None:
    fdt = built["pci"].fdt
    assert subnodes(fdt, "/vdevice") == []
    root_children = subnodes(fdt, "/")
    assert root_children[-2:] == ["pci@80000000", "pci@80000100"]
    phb = "/pci@80000000"
    assert strs(fdt, phb, "device_type") == ("pci",)
    assert strs(fdt, phb, "compatible") == ("IBM,Logical_PHB",)
    assert u32s(fdt, phb, "ibm,dma-window") == (0x80000000, 0, 0, 0, 0x40000000)
    assert raw(fdt, phb, "ibm,my-dma-window") is None
    assert u32s(fdt, phb, "ibm,#dma-address-cells") == u32s(fdt, phb, "ibm,#dma-size-cells") == (2,)
    assert u32s(fdt, "/pci@80000100", "ibm,dma-window") == (0x80000100, 0x08000000, 0, 2, 0)
    # PHB index 1 (LIOBN bits 8..30): its 32-bit MMIO window at 32 TiB + 2 * 2 GiB, as QEMU places it.
    ranges = u32s(fdt, "/pci@80000100", "ranges")
    assert ranges == (0x02000000, 0, 0x80000000, *divmod((1 << 45) + 2 * (2 << 30), 1 << 32), 0, 0x80000000)


def test_unrepresentable_items_are_reported_not_raised(tmp_path: Path) -> None:
    text = """\
vm odd {
    arch ppc64le  kvm book3s_hv  memory 1G  vcpus 1
    rtas { token "bad name" 0x2001  token "rtas-size" 0x2002  token "ibm,ok" 0x2003 }
    tce a_very_long_table_name_that_is_too_long { liobn 0x71000000  window 16M  page 4K  offset 0 }
    tce far { liobn 0x100000000  window 16M  page 4K  offset 0 }
}
"""
    b = build(tmp_path, text)
    codes = [(d.code, d.span.line if d.span else None) for d in b.ctx.report]
    assert codes == [("dt-unrepresentable", 3), ("dt-unrepresentable", 3), ("dt-unrepresentable", 4),
                     ("dt-unrepresentable", 5)]
    assert u32s(b.fdt, "/rtas", "ibm,ok") == (0x2003,)
    assert u32s(b.fdt, "/rtas", "rtas-size") == (20 + 2048 + 16 + 8,)
    assert subnodes(b.fdt, "/vdevice") == ["vty@30000000"]  # the default console only
    assert not [n for n in subnodes(b.fdt, "/") if n.startswith("pci@")]


def test_non_ascii_strings_and_oversized_words_are_reported(tmp_path: Path) -> None:
    spapr = build(tmp_path / "s", 'vm s { arch ppc64le kvm book3s_hv memory 1G cmdline "hvc0 \u00e9t\u00e9" }\n')
    assert [d.code for d in spapr.ctx.report] == ["dt-unrepresentable"]
    assert raw(spapr.fdt, "/chosen", "bootargs") is None
    e500 = build(tmp_path / "e", 'vm e { arch ppc-e500 kvm booke memory 64M cmdline "\u00e9"\n'
                                 '  hypervisor { compatible "k\u00e9m" hcall_instructions [0x100000000] } }\n')
    assert sorted((d.code, d.span.line) for d in e500.ctx.report) == [("dt-unrepresentable", 1)] + [
        ("dt-unrepresentable", 2)] * 2
    assert [raw(e500.fdt, "/hypervisor", p) for p in ("compatible", "hcall-instructions")] == [None, None]
    assert raw(e500.fdt, "/chosen", "bootargs") is None


# ---- e500 -----------------------------------------------------------------------


def test_e500_root_memory_cpus_and_chosen(built: dict[str, Built]) -> None:
    fdt = built["e500v2"].fdt
    assert strs(fdt, "/", "compatible") == ("fsl,qemu-e500",)
    assert (u32s(fdt, "/", "#address-cells"), u32s(fdt, "/", "#size-cells")) == ((2,), (2,))
    assert u32s(fdt, "/memory@0", "reg") == (0, 0, 0, 256 << 20)
    assert subnodes(fdt, "/cpus") == ["PowerPC,e500@0", "PowerPC,e500@1"]
    assert [u32s(fdt, f"/cpus/PowerPC,e500@{i}", "reg") for i in (0, 1)] == [(0,), (1,)]
    assert [strs(fdt, f"/cpus/PowerPC,e500@{i}", "status") for i in (0, 1)] == [("okay",), ("disabled",)]
    assert strs(fdt, "/cpus/PowerPC,e500@0", "device_type") == ("cpu",)
    assert strs(fdt, "/chosen", "bootargs") == ("console=ttyS0",)
    assert raw(fdt, "/chosen", "stdout-path") is None


@pytest.mark.parametrize(("name", "words"), [
    ("e500v2", bytes.fromhex("3c004b56 60004d21 44000002 60000000")),  # lis/ori r0 = "KVM!"; sc; nop
    ("e500mc", bytes.fromhex("44000022 60000000 60000000 60000000")),  # sc 1; nop x3
    ("e500_no_tlb", bytes.fromhex("3860ffff 60000000 60000000 60000000")),  # target fallback: li r3,-1
    ("e500_own_words", bytes.fromhex("44000022 4e800020")),
])
def test_hcall_instructions_are_big_endian_words(built: dict[str, Built], name: str, words: bytes) -> None:
    b = built[name]
    assert raw(b.fdt, "/hypervisor", "hcall-instructions") == words
    assert e500_tree.hcall_instructions(b.ctx) == struct.unpack(f">{len(words) // 4}I", words)


def test_static_sequences_come_from_abi_data(built: dict[str, Built]) -> None:
    assert e500_tree.hcall_instructions(built["e500v2"].ctx) == tuple(PVINFO["pr_e500v2"])
    assert e500_tree.hcall_instructions(built["e500mc"].ctx) == tuple(PVINFO["booke_hv"])
    line = line_of(E500V2, "KVM_CAP_SW_TLB")
    assert any("hcall-instructions" in text and f"/* vm.hv:{line}:5 */" in text
               for text in built["e500v2"].dts.splitlines())


def test_mmu_written_as_its_number_picks_the_same_sequence(tmp_path: Path) -> None:
    b = build(tmp_path, "vm n { arch ppc-e500 kvm booke memory 64M cap KVM_CAP_SW_TLB on vcpus { mmu 1 } }\n")
    assert u32s(b.fdt, "/hypervisor", "hcall-instructions") == tuple(PVINFO["booke_hv"])


def test_hypervisor_compatible_default_and_override(built: dict[str, Built]) -> None:
    assert strs(built["e500v2"].fdt, "/hypervisor", "compatible") == ("linux,kvm",)
    assert strs(built["e500_no_tlb"].fdt, "/hypervisor", "compatible") == ("linux,kvm",)
    assert strs(built["e500_own_words"].fdt, "/hypervisor", "compatible") == ("epapr,hypervisor-1.1",)


FLAGS = {"idle": "has-idle", "reset": "kvm,has-reset", "shutdown": "kvm,has-shutdown"}


@pytest.mark.parametrize("mmu", ["e500v2", "e500mc"])
@pytest.mark.parametrize("flag", [*FLAGS, None])
def test_each_hypervisor_flag_sets_exactly_its_property(tmp_path: Path, mmu: str, flag: str | None) -> None:
    block = f"hypervisor {{ {flag} }}" if flag else ""
    b = build(tmp_path, f"vm f {{ arch ppc-e500 kvm booke memory 64M cap KVM_CAP_SW_TLB on vcpus {{ mmu {mmu} }}"
                        f" {block} }}\n")
    for name, prop in FLAGS.items():
        assert raw(b.fdt, "/hypervisor", prop) == (b"" if name == flag else None)
    if flag:
        col = 1 + b.hv.read_text().index(flag)
        assert f"{FLAGS[flag]}; /* vm.hv:1:{col} */" in b.dts
    words = PVINFO["pr_e500v2" if mmu == "e500v2" else "booke_hv"]
    assert u32s(b.fdt, "/hypervisor", "hcall-instructions") == tuple(words)


def test_all_flags_together(built: dict[str, Built]) -> None:
    fdt = built["e500v2"].fdt
    assert all(raw(fdt, "/hypervisor", prop) == b"" for prop in FLAGS.values())


def test_byte_channel_console_is_the_stdout_path(built: dict[str, Built]) -> None:
    b = built["e500_console"]
    fdt = b.fdt
    assert strs(fdt, "/chosen", "stdout-path") == (BYTE_CHANNEL,)
    assert strs(fdt, "/chosen", "linux,stdout-path") == (BYTE_CHANNEL,)
    assert strs(fdt, BYTE_CHANNEL, "compatible") == ("epapr,hv-byte-channel",)
    assert u32s(fdt, BYTE_CHANNEL, "hv-handle") == (0,)
    assert raw(fdt, "/hypervisor", "has-idle") == b"" and raw(fdt, "/hypervisor", "kvm,has-reset") is None
    assert subnodes(fdt, "/cpus") == [f"PowerPC,e500@{i}" for i in range(4)]
    line = line_of(E500_CONSOLE, "console byte_channel")
    assert f'stdout-path = "{BYTE_CHANNEL}"; /* vm.hv:{line}:5 */' in b.dts


# ---- e500: what Linux's qemu_e500 platform and ePAPR need, compared with QEMU's ppce500 ------------

MHZ_400 = (400_000_000).to_bytes(4, "big")


def cell(*values: int) -> bytes:
    return b"".join(v.to_bytes(4, "big") for v in values)


def text(*values: str) -> bytes:
    return b"".join(v.encode() + b"\0" for v in values)


SAME = "same"  # our tree has QEMU's value


@dataclass(frozen=True)
class QemuProp:
    """One property hw/ppc/e500.c ppce500_load_device_tree (and e500plat_fixup_devtree) sets, for QEMU's
    ppce500 machine with 2 CPUs, 256 MiB and a kernel command line; `ours` is where our tree has it
    (None: not written), `value` QEMU's bytes (None: host- or run-dependent), `ours_value` ours when
    it differs, `why` the reason for any difference."""

    qemu_node: str
    name: str
    value: bytes | None
    ours: str | None
    ours_value: bytes | str | None = SAME
    why: str = ""


CPU1_QEMU, CPU1 = "/cpus/PowerPC,8544@1", "/cpus/PowerPC,e500@1"
SOC, PIC = "/soc@fe0000000", "/soc@fe0000000/pic@40000"
NO_DEVICE = "hvconf models no such device, so it writes no node for one"
QEMU_PROPERTIES = [
    QemuProp("/", "#address-cells", cell(2), "/"),
    QemuProp("/", "#size-cells", cell(2), "/"),
    QemuProp("/", "model", text("QEMU ppce500"), "/", text("hvconf ppce500"), "names who built the tree; no kernel "
             "matches on it"),
    QemuProp("/", "compatible", text("fsl,qemu-e500"), "/"),
    QemuProp("/memory", "device_type", text("memory"), "/memory@0"),
    QemuProp("/memory", "reg", cell(0, 0, 0, 256 << 20), "/memory@0"),
    QemuProp("/chosen", "bootargs", text("console=ttyS0"), "/chosen"),
    QemuProp("/chosen", "linux,initrd-start", None, None, None, "only with -initrd; hvconf loads no initrd"),
    QemuProp("/chosen", "linux,initrd-end", None, None, None, "only with -initrd; hvconf loads no initrd"),
    QemuProp("/chosen", "qemu,boot-kernel", None, None, None, "tells QEMU's u-boot where -kernel is; hvconf "
             "boots the kernel directly, with no firmware"),
    QemuProp("/chosen", "rng-seed", None, None, None, "32 random bytes per boot; hvconf's builds are "
             "reproducible byte for byte"),
    QemuProp("/chosen", "linux,stdout-path", None, None, None, "QEMU points it at its ns16550; hvconf at the "
             "`console byte_channel` node, when there is one (test_byte_channel_console_is_the_stdout_path)"),
    QemuProp("/chosen", "stdout-path", None, None, None, "as linux,stdout-path"),
    QemuProp("/hypervisor", "compatible", text("linux,kvm"), "/hypervisor"),
    QemuProp("/hypervisor", "hcall-instructions", None, "/hypervisor", cell(*PVINFO["pr_e500v2"]),
             "QEMU asks KVM_PPC_GET_PVINFO; hvconf writes the sequence of the KVM_CAP_SW_TLB mmu and the plan's "
             "KVM_PPC_GET_PVINFO step refuses a host that answers otherwise"),
    QemuProp("/hypervisor", "has-idle", b"", "/hypervisor", SAME, "QEMU: when PVINFO has EV_IDLE (every "
             "kernel); hvconf: when the definition says `idle`"),
    QemuProp("/cpus", "#address-cells", cell(1), "/cpus"),
    QemuProp("/cpus", "#size-cells", cell(0), "/cpus"),
    QemuProp(CPU1_QEMU, "clock-frequency", MHZ_400, CPU1, SAME, "QEMU's PLATFORM_CLK_FREQ_HZ, which it "
             "writes without KVM; under KVM it copies the host's"),
    QemuProp(CPU1_QEMU, "timebase-frequency", MHZ_400, CPU1, SAME, "as clock-frequency"),
    QemuProp(CPU1_QEMU, "device_type", text("cpu"), CPU1),
    QemuProp(CPU1_QEMU, "reg", cell(1), CPU1),
    QemuProp(CPU1_QEMU, "d-cache-line-size", cell(32), CPU1),
    QemuProp(CPU1_QEMU, "i-cache-line-size", cell(32), CPU1),
    QemuProp(CPU1_QEMU, "d-cache-size", cell(0x8000), CPU1),
    QemuProp(CPU1_QEMU, "i-cache-size", cell(0x8000), CPU1),
    QemuProp(CPU1_QEMU, "bus-frequency", cell(0), CPU1),
    QemuProp(CPU1_QEMU, "status", text("disabled"), CPU1),
    QemuProp(CPU1_QEMU, "enable-method", text("spin-table"), CPU1),
    QemuProp(CPU1_QEMU, "cpu-release-addr", cell(0xF, 0xEF00_0020), CPU1, cell(0, 0xEFF040),
             "QEMU's table is an MMIO device above RAM; hvconf's is RAM the launcher watches (reserved)"),
    QemuProp("/cpus/PowerPC,8544@0", "status", text("okay"), "/cpus/PowerPC,e500@0"),
    QemuProp("/aliases", "serial0", None, None, None, NO_DEVICE),
    QemuProp("/aliases", "pci0", None, None, None, NO_DEVICE),
    QemuProp(SOC, "device_type", text("soc"), SOC),
    QemuProp(SOC, "compatible", text("fsl,mpc8544-immr", "simple-bus"), SOC),
    QemuProp(SOC, "#address-cells", cell(1), SOC),
    QemuProp(SOC, "#size-cells", cell(1), SOC),
    QemuProp(SOC, "ranges", cell(0, 0xF, 0xE000_0000, 0x10_0000), SOC),
    QemuProp(SOC, "bus-frequency", cell(0), SOC),
    QemuProp(PIC, "device_type", text("open-pic"), PIC),
    QemuProp(PIC, "compatible", text("fsl,mpic"), PIC),
    QemuProp(PIC, "reg", cell(0x40000, 0x40000), PIC),
    QemuProp(PIC, "#address-cells", cell(0), PIC),
    QemuProp(PIC, "#interrupt-cells", cell(2), PIC),
    QemuProp(PIC, "phandle", cell(1), PIC),
    QemuProp(PIC, "linux,phandle", cell(1), PIC),
    QemuProp(PIC, "interrupt-controller", b"", PIC),
    QemuProp(f"{SOC}/serial@4500", "compatible", text("ns16550"), None, None, NO_DEVICE),
    QemuProp(f"{SOC}/i2c@3000", "compatible", text("fsl-i2c"), None, None, NO_DEVICE),
    QemuProp(f"{SOC}/global-utilities@e0000", "compatible", text("fsl,mpc8544-guts"), None, None,
             NO_DEVICE + "; a reboot goes through KVM_HC_VM_RESET (the proposal) instead of its RSTCR"),
    QemuProp(f"{SOC}/msi@41600", "compatible", text("fsl,mpic-msi"), None, None, NO_DEVICE + " (no PCI)"),
    QemuProp(f"{SOC}/gpio@ff000", "compatible", text("fsl,qoriq-gpio"), None, None,
             NO_DEVICE + "; power-off goes through KVM_HC_VM_SHUTDOWN (the proposal)"),
    QemuProp("/pci@fe0008000", "compatible", text("fsl,mpc8540-pci"), None, None, NO_DEVICE),
    QemuProp("/platform@f00000000", "compatible", text("qemu,platform", "simple-bus"), None, None,
             "QEMU's bus for -device etsec/pflash; hvconf has neither"),
]


@pytest.fixture(scope="module")
def qemu_like(tmp_path_factory: pytest.TempPathFactory) -> Built:
    return build(tmp_path_factory.mktemp("qemu"), """\
vm q {
    arch ppc-e500  kvm booke  memory 256M  vcpus 2
    cap KVM_CAP_SW_TLB on vcpus { mmu e500v2 }
    hypervisor { idle }
    cmdline "console=ttyS0"
}
""")


@pytest.mark.parametrize("row", QEMU_PROPERTIES, ids=[f"{r.qemu_node}:{r.name}" for r in QEMU_PROPERTIES])
def test_e500_tree_against_qemu_ppce500_property_by_property(qemu_like: Built, row: QemuProp) -> None:
    if row.ours is None:
        assert row.why, "a property QEMU sets and hvconf does not must say why"
        node = qemu_like.fdt.path_offset(row.qemu_node.replace("PowerPC,8544", "PowerPC,e500"),
                                         quiet=(libfdt.NOTFOUND,))
        assert node < 0 or raw(qemu_like.fdt, row.qemu_node, row.name) is None
        return
    want = row.value if row.ours_value == SAME else row.ours_value
    assert (row.ours_value == SAME) == (row.why == "" or row.value is not None and want == row.value)
    assert raw(qemu_like.fdt, row.ours, row.name) == want


def test_the_qemu_table_covers_every_property_of_our_platform_nodes(qemu_like: Built) -> None:
    # Every property of our cpus, /soc and MPIC nodes is one QEMU sets too (a row above).
    covered = {(r.ours, r.name) for r in QEMU_PROPERTIES if r.ours is not None}
    fdt = qemu_like.fdt
    for path in ("/cpus", CPU1, SOC, PIC):
        offset, names = fdt.first_property_offset(fdt.path_offset(path)), []
        while offset >= 0:
            names.append(fdt.get_property_by_offset(offset).name)
            offset = fdt.next_property_offset(offset, quiet=(libfdt.NOTFOUND,))
        assert [n for n in names if (path, n) not in covered] == [], path


def test_e500_secondaries_wait_in_a_reserved_spin_table(built: dict[str, Built]) -> None:
    b = built["e500_console"]  # 4 vCPUs
    fdt = b.fdt
    for index in range(1, 4):
        cpu = f"/cpus/PowerPC,e500@{index}"
        assert strs(fdt, cpu, "enable-method") == ("spin-table",)
        assert u32s(fdt, cpu, "cpu-release-addr") == (0, e500_spin.ADDRESS + 64 * index)
        assert strs(fdt, cpu, "status") == ("disabled",)
    assert raw(fdt, "/cpus/PowerPC,e500@0", "cpu-release-addr") is None
    assert raw(fdt, "/cpus/PowerPC,e500@0", "enable-method") is None
    assert [tuple(fdt.get_mem_rsv(i))[-2:] for i in range(fdt.num_mem_rsv())] == [(e500_spin.ADDRESS, 0x1000)]
    assert "/memreserve/ 0xeff000 0x1000;" in b.dts
    one = built["e500mc"].fdt  # 1 vCPU: nothing spins, nothing is reserved
    assert one.num_mem_rsv() == 0 and raw(one, "/cpus/PowerPC,e500@0", "enable-method") is None


@pytest.mark.parametrize(("name", "line"), [("e500v2", 32), ("e500mc", 64), ("e500_no_tlb", 32)])
def test_e500_cpu_nodes_carry_clocks_and_the_mmus_cache_geometry(built: dict[str, Built], name: str,
                                                                  line: int) -> None:
    fdt = built[name].fdt
    cpu = "/cpus/PowerPC,e500@0"
    assert u32s(fdt, cpu, "timebase-frequency") == u32s(fdt, cpu, "clock-frequency") == (400_000_000,)
    assert u32s(fdt, cpu, "d-cache-line-size") == u32s(fdt, cpu, "i-cache-line-size") == (line,)


@pytest.mark.parametrize("name", [n for n in CASES if n.startswith("e500")])
def test_every_e500_tree_has_the_mpic_linuxs_qemu_e500_platform_allocates(built: dict[str, Built],
                                                                           name: str) -> None:
    # qemu_e500_pic_init: mpic_alloc(NULL, 0, ...) finds the first device_type "open-pic" node, maps its
    # reg through /soc's ranges, and the platform BUG()s when that fails.
    fdt = built[name].fdt
    paths, todo = [], ["/"]
    while todo:
        path = todo.pop()
        paths.append(path)
        todo += [f"{path.rstrip('/')}/{child}" for child in subnodes(fdt, path)]
    assert [p for p in paths if raw(fdt, p, "device_type") == b"open-pic\0"] == [PIC]
    mpic = load_target("ppc-e500").name2device["mpic"]  # the target data describes the same node
    assert (mpic.node, mpic.device_type, mpic.compatible) == (PIC, "open-pic", strs(fdt, PIC, "compatible"))
    assert raw(fdt, PIC, "interrupt-controller") == b""
    assert strs(fdt, SOC, "compatible") == ("fsl,mpc8544-immr", "simple-bus")


@needs_dtc
def test_dtc_reads_the_e500_platform_back_from_the_dtb(built: dict[str, Built], tmp_path: Path) -> None:
    dtb = tmp_path / "e500.dtb"
    dtb.write_bytes(built["e500_console"].dtb)
    shown = subprocess.run([DTC, "-I", "dtb", "-O", "dts", str(dtb)], capture_output=True, text=True)
    assert (shown.returncode, shown.stderr) == (0, "")
    lines = [line.strip() for line in shown.stdout.splitlines()]
    assert ["/memreserve/", "0x0000000000eff000", "0x0000000000001000;"] in [line.split() for line in lines]
    assert 'enable-method = "spin-table";' in lines
    assert "cpu-release-addr = <0x00 0xeff0c0>;" in lines
    assert "timebase-frequency = <0x17d78400>;" in lines
    assert "ranges = <0x00 0x0f 0xe0000000 0x100000>;" in lines
    assert 'compatible = "fsl,mpic";' in lines and "interrupt-controller;" in lines
