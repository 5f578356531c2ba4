"""Our DTS and DTB read back by independent readers: dtc 1.6.1 and libfdt (pylibfdt).

For representative sPAPR, e500 and escape-heavy trees: dtc compiles our DTS warning-free
to the very bytes to_dtb wrote; libfdt reads every node and property back in order with
the exact bytes meant; builds are byte-identical across runs and hash seeds.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from hvconf.emit.dtb import to_dtb
from hvconf.emit.dts import to_dts
from hvconf.emit.fdt import Bytes, Cells, Empty, Node, Phandles, cells, cells64, strings

DTC = shutil.which("dtc")
needs_dtc = pytest.mark.skipif(DTC is None, reason="dtc (device-tree-compiler) is not installed")

VTY = "/vdevice/vty@30000000"
HYPERTAS = ("hcall-pft", "hcall-term", "hcall-dabr", "hcall-interrupt", "hcall-tce", "hcall-vio", "hcall-splpar")
# QEMU's "always fail" hcall stub: tdi 0,r0,72; li r3,-1; b .+8; byte-swapped li r3,-1.
HCALL_STUB = (0x08000048, 0x3860FFFF, 0x48000008, 0xFFFF6038)


def spapr_tree() -> Node:
    root = Node("/", "pseries.hv:3:1")
    root.prop("device_type", strings("chrp")).prop("compatible", strings("qemu,pseries"))
    root.prop("#address-cells", cells(2)).prop("#size-cells", cells(2))
    cpus = root.child("cpus").prop("#address-cells", cells(1)).prop("#size-cells", cells(0))
    cpu = cpus.child("PowerPC,POWER9@0", "pseries.hv:8:5")
    cpu.prop("device_type", strings("cpu")).prop("reg", cells(0))
    cpu.prop("ibm,pft-size", cells(0, 25), "pseries.hv:11:5").prop("64-bit", Empty())
    cpu.prop("ibm,ppc-interrupt-server#s", cells(0, 1, 2, 3))
    memory = root.child("memory@0", "pseries.hv:6:5").prop("device_type", strings("memory"))
    memory.prop("reg", cells64(0, 4 << 30), "pseries.hv:6:12")
    rtas = root.child("rtas").prop("ibm,hypertas-functions", strings(*HYPERTAS), "pseries.hv:14:9")
    rtas.prop("ibm,set-xive", cells(0x2000), "pseries.hv:20:9").prop("rtas-size", cells(0x2A68))
    vdevice = root.child("vdevice").prop("device_type", strings("vdevice"))
    vdevice.prop("compatible", strings("IBM,vdevice")).prop("#address-cells", cells(1))
    vdevice.prop("#size-cells", cells(0)).prop("#interrupt-cells", cells(2)).prop("interrupt-controller", Empty())
    vty = vdevice.child("vty@30000000", "pseries.hv:25:5").prop("reg", cells(0x30000000))
    vty.prop("device_type", strings("serial")).prop("compatible", strings("hvterm1"))
    chosen = root.child("chosen")
    chosen.prop("bootargs", strings('console=hvc0 init="/sbin/x y" path=C:\\tmp'), "pseries.hv:30:13")
    # Both, as QEMU does: old kernels read linux,stdout-path, dtc wants stdout-path.
    chosen.prop("linux,stdout-path", strings(VTY)).prop("stdout-path", strings(VTY))
    Phandles().assign(vdevice, fixed=0x1111)
    # Added after the children: the DTB must still put it before the first subnode.
    root.prop("model", strings("IBM pSeries (emulated by hvconf)"))
    return root


def e500_tree() -> Node:
    root = Node("/", "e500.hv:1:1")
    root.prop("#address-cells", cells(2)).prop("#size-cells", cells(2))
    root.prop("model", strings("QEMU ppce500")).prop("compatible", strings("fsl,qemu-e500"))
    cpus = root.child("cpus").prop("#address-cells", cells(1)).prop("#size-cells", cells(0))
    cpu = cpus.child("PowerPC,8544@0").prop("device_type", strings("cpu")).prop("reg", cells(0))
    cpu.prop("timebase-frequency", cells(400_000_000)).prop("status", strings("okay"))
    root.child("memory@0").prop("device_type", strings("memory")).prop("reg", cells64(0, 256 << 20))
    hyp = root.child("hypervisor", "e500.hv:5:5").prop("compatible", strings("linux,kvm"))
    hyp.prop("hcall-instructions", cells(*HCALL_STUB)).prop("has-idle", Empty(), "e500.hv:5:18")
    hyp.prop("kvm,has-reset", Empty()).prop("kvm,has-shutdown", Empty())
    root.child("chosen").prop("bootargs", strings("console=ttyS0 quiet"))
    return root


def escapes_tree() -> Node:
    # Strings pyfdt cannot hold as strings ("", "\n", control characters) and every
    # printable ASCII character, plus widths and raw bytes; all must survive dtc's lexer.
    root = Node("/")
    root.prop("hvconf,quotes", strings('say "hi"', "back\\slash", "tab\there", "nl\nend", "", "bell\x07\x7f"))
    root.prop("hvconf,ascii", strings("".join(chr(c) for c in range(32, 127))))
    rng = random.Random(20240601)
    for index in range(40):
        text = "".join(chr(rng.randrange(1, 128)) for _ in range(rng.randrange(0, 12)))
        root.prop(f"hvconf,random-{index}", strings(text, "tail"))
    root.prop("hvconf,bytes", Bytes(b"\xde\xad\xbe\xef\x00\x01"))
    root.prop("hvconf,u8", Cells((0, 0x7F, 0xFF), 8)).prop("hvconf,u16", Cells((0xBEEF,), 16))
    root.prop("hvconf,u64", Cells((0x0123456789ABCDEF, 1), 64)).prop("hvconf,flag", Empty())
    return root


TREES: dict[str, tuple[Callable[[], Node], int, Sequence[tuple[int, int]]]] = {
    # name: (builder, boot_cpuid, memory reservations)
    "spapr": (spapr_tree, 0, [(0x0, 0x10000), (0x3000000, 0x200000)]),
    "e500": (e500_tree, 1, []),
    "escapes": (escapes_tree, 0, []),
}


def _write(tmp_path: Path, name: str) -> tuple[Node, Path, Path, int, Sequence[tuple[int, int]]]:
    build, boot, reserve = TREES[name]
    root = build()
    dts = tmp_path / f"{name}.dts"
    dtb = tmp_path / f"{name}.dtb"
    dts.write_text(to_dts(root, header_comment=f"test tree {name}", reserve=reserve), encoding="ascii")
    dtb.write_bytes(to_dtb(root, boot_cpuid=boot, reserve=reserve))
    return root, dts, dtb, boot, reserve


def _dtc(*args: str) -> subprocess.CompletedProcess[bytes]:
    assert DTC is not None
    return subprocess.run([DTC, *args], capture_output=True, timeout=30, check=False)


@needs_dtc
@pytest.mark.parametrize("name", list(TREES))
def test_dtc_compiles_our_dts_warning_free_to_our_exact_dtb(tmp_path: Path, name: str) -> None:
    _, dts, dtb, boot, _ = _write(tmp_path, name)
    out = tmp_path / "dtc.dtb"
    done = _dtc("-I", "dts", "-O", "dtb", "-b", str(boot), "-o", str(out), str(dts))
    assert done.returncode == 0, done.stderr.decode()
    assert done.stderr == b"", done.stderr.decode()  # no warnings at all, not only no errors
    assert out.read_bytes() == dtb.read_bytes()


@needs_dtc
@pytest.mark.parametrize("name", list(TREES))
def test_dtc_decompiles_our_dtb_as_it_does_its_own(tmp_path: Path, name: str) -> None:
    _, dts, dtb, boot, _ = _write(tmp_path, name)
    ours = _dtc("-I", "dtb", "-O", "dts", str(dtb))
    assert ours.returncode == 0 and ours.stderr == b"", ours.stderr.decode()
    theirs = tmp_path / "dtc.dtb"
    assert _dtc("-I", "dts", "-O", "dtb", "-b", str(boot), "-o", str(theirs), str(dts)).returncode == 0
    assert ours.stdout == _dtc("-I", "dtb", "-O", "dts", str(theirs)).stdout


@needs_dtc
def test_dts_and_dtb_agree_as_dtc_text(tmp_path: Path) -> None:
    # dtc 1.6.1 prints a string list read from a DTB as one string with "\0" inside and
    # guesses types, so the text comparison is exact only for trees without string lists;
    # the byte-exact comparison above covers the other trees.
    _, dts, dtb, _, _ = _write(tmp_path, "e500")
    from_dtb = _dtc("-I", "dtb", "-O", "dts", str(dtb))
    from_dts = _dtc("-I", "dts", "-O", "dts", str(dts))
    assert from_dtb.returncode == 0 and from_dts.returncode == 0
    assert b"hcall-instructions = <0x8000048 0x3860ffff 0x48000008 0xffff6038>;" in from_dtb.stdout
    assert from_dtb.stdout == from_dts.stdout


@needs_dtc
def test_dtc_reads_spapr_values_as_meant(tmp_path: Path) -> None:
    _, _, dtb, _, _ = _write(tmp_path, "spapr")
    text = _dtc("-I", "dtb", "-O", "dts", str(dtb)).stdout.decode()
    for line in (
        "/memreserve/\t0x0000000003000000 0x0000000000200000;",
        "ibm,pft-size = <0x00 0x19>;",
        "reg = <0x00 0x00 0x01 0x00>;",
        'ibm,hypertas-functions = "hcall-pft\\0hcall-term\\0hcall-dabr',
        'bootargs = "console=hvc0 init=\\"/sbin/x y\\" path=C:\\\\tmp";',
        'linux,stdout-path = "/vdevice/vty@30000000";',
        "phandle = <0x1111>;",
    ):
        assert line in text


def _libfdt_node(fdt, libfdt, offset: int) -> tuple[list[tuple[str, bytes]], list[str]]:
    # (properties in blob order, subnode names in blob order) as libfdt sees them.
    props, subnodes = [], []
    quiet = (libfdt.NOTFOUND,)
    poff = fdt.first_property_offset(offset, quiet)
    while poff >= 0:
        prop = fdt.get_property_by_offset(poff)
        props.append((prop.name, bytes(prop)))
        poff = fdt.next_property_offset(poff, quiet)
    soff = fdt.first_subnode(offset, quiet)
    while soff >= 0:
        subnodes.append(fdt.get_name(soff))
        soff = fdt.next_subnode(soff, quiet)
    return props, subnodes


@pytest.mark.parametrize("name", list(TREES))
def test_libfdt_reads_every_property_back(tmp_path: Path, name: str) -> None:
    libfdt = pytest.importorskip("libfdt", reason="pylibfdt is not installed")
    root, _, dtb, boot, reserve = _write(tmp_path, name)
    blob = dtb.read_bytes()
    assert libfdt.fdt_check_full(bytearray(blob), len(blob)) == 0
    fdt = libfdt.Fdt(blob)
    assert (fdt.magic(), fdt.version(), fdt.last_comp_version()) == (0xD00DFEED, 17, 16)
    assert fdt.totalsize() == len(blob) and fdt.boot_cpuid_phys() == boot
    assert [tuple(fdt.get_mem_rsv(i)) for i in range(fdt.num_mem_rsv())] == [tuple(r) for r in reserve]
    seen = 0
    for node in root.walk():
        props, subnodes = _libfdt_node(fdt, libfdt, fdt.path_offset(node.path))
        assert props == [(p.name, p.value.encoded) for p in node.props], node.path
        assert subnodes == [c.name for c in node.children], node.path
        seen += len(props)
    assert seen == sum(len(n.props) for n in root.walk()) > 5


def test_libfdt_sees_the_bytes_written_by_hand(tmp_path: Path) -> None:
    # Expected bytes spelled out, not derived from .encoded: big-endian cells, NUL-separated lists.
    libfdt = pytest.importorskip("libfdt", reason="pylibfdt is not installed")
    spapr = libfdt.Fdt(_write(tmp_path, "spapr")[2].read_bytes())
    e500 = libfdt.Fdt(_write(tmp_path, "e500")[2].read_bytes())
    escapes = libfdt.Fdt(_write(tmp_path, "escapes")[2].read_bytes())

    def raw(fdt, path: str, prop: str) -> bytes:
        return bytes(fdt.getprop(fdt.path_offset(path), prop))

    assert raw(spapr, "/cpus/PowerPC,POWER9@0", "ibm,pft-size") == bytes.fromhex("00000000 00000019")
    assert raw(spapr, "/memory@0", "reg") == bytes.fromhex("00000000 00000000 00000001 00000000")
    assert raw(spapr, "/rtas", "ibm,set-xive") == b"\x00\x00\x20\x00"
    assert raw(spapr, "/rtas", "ibm,hypertas-functions").split(b"\0") == [h.encode() for h in HYPERTAS] + [b""]
    assert raw(spapr, VTY, "compatible") == b"hvterm1\0"
    assert raw(spapr, "/", "device_type") == b"chrp\0"
    assert raw(spapr, "/chosen", "linux,stdout-path") == b"/vdevice/vty@30000000\0"
    assert raw(spapr, "/vdevice", "interrupt-controller") == b""
    assert raw(e500, "/hypervisor", "hcall-instructions") == bytes.fromhex("08000048 3860ffff 48000008 ffff6038")
    assert raw(e500, "/hypervisor", "compatible") == b"linux,kvm\0"
    for flag in ("has-idle", "kvm,has-reset", "kvm,has-shutdown"):
        assert raw(e500, "/hypervisor", flag) == b""
    assert raw(escapes, "/", "hvconf,quotes") == b'say "hi"\0back\\slash\0tab\there\0nl\nend\0\0bell\x07\x7f\0'
    assert raw(escapes, "/", "hvconf,u64") == bytes.fromhex("0123456789abcdef 0000000000000001")
    assert raw(escapes, "/", "hvconf,u8") == b"\x00\x7f\xff"
    assert raw(escapes, "/", "hvconf,bytes") == b"\xde\xad\xbe\xef\x00\x01"


@pytest.mark.parametrize("name", list(TREES))
def test_two_builds_are_byte_identical(name: str) -> None:
    build, boot, reserve = TREES[name]
    first, second = build(), build()
    assert to_dtb(first, boot_cpuid=boot, reserve=reserve) == to_dtb(second, boot_cpuid=boot, reserve=reserve)
    assert to_dtb(first, boot_cpuid=boot, reserve=reserve) == to_dtb(first, boot_cpuid=boot, reserve=reserve)
    assert to_dts(first, header_comment="h") == to_dts(second, header_comment="h")


def test_builds_do_not_depend_on_the_hash_seed() -> None:
    script = (
        "import hashlib, sys; sys.path.insert(0, sys.argv[1]); import test_dtb_readback as t\n"
        "from hvconf.emit.dtb import to_dtb; from hvconf.emit.dts import to_dts\n"
        "for b, boot, res in t.TREES.values():\n"
        "    print(hashlib.sha256(to_dtb(b(), boot_cpuid=boot, reserve=res) + to_dts(b()).encode()).hexdigest())\n"
    )
    tests_dir = str(Path(__file__).parent)
    digests = set()
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        done = subprocess.run([sys.executable, "-c", script, tests_dir], capture_output=True, text=True,
                              env=env, timeout=60, check=True, cwd=Path(__file__).parent.parent)
        digests.add(done.stdout)
    assert len(digests) == 1
    expected = "".join(
        hashlib.sha256(to_dtb(b(), boot_cpuid=boot, reserve=res) + to_dts(b()).encode()).hexdigest() + "\n"
        for b, boot, res in TREES.values()
    )
    assert digests == {expected}


@pytest.mark.parametrize("name", list(TREES))
def test_value_offsets_point_at_each_propertys_bytes_in_our_dtb(tmp_path: Path, name: str) -> None:
    # What a launcher overwrites at run time (the e500 cpu clocks) must be where the value really is:
    # the offsets, read back by libfdt from the same bytes, for every property of every node.
    from hvconf.emit.dtb import value_offsets

    libfdt = pytest.importorskip("libfdt", reason="pylibfdt is not installed")
    root, _, dtb, _, _ = _write(tmp_path, name)
    blob = dtb.read_bytes()
    fdt = libfdt.Fdt(blob)
    for prop_name in {p.name for node in root.walk() for p in node.props}:
        found = value_offsets(blob, prop_name)
        assert [path for path, _ in found] == [n.path for n in root.walk() if any(p.name == prop_name
                                                                                   for p in n.props)]
        for path, at in found:
            value = bytes(fdt.getprop(fdt.path_offset(path), prop_name))
            assert blob[at : at + len(value)] == value, (path, prop_name)
