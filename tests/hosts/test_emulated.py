"""Tests of the emulated-host harness (tests/hosts): the cpio writer read back by cpio(1) and by a
parser, the 4-byte padding rule the kernel enforces between archives, the console protocol
parser, cache keying/atomicity/locking, the module load order check, runtime_tree, and each
recipe's QEMU command line. No boot here: tests/ppc and tests/x86 boot the hosts for real."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import stat
import subprocess
import sys
import threading
import time
import zlib
from dataclasses import replace
from pathlib import Path

import pytest

from hosts import cpio, emulated, ppc, session, x86


def _tree(root: Path) -> Path:
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "tool").write_bytes(b"#!/bin/sh\necho x\n")
    (root / "bin" / "tool").chmod(0o755)
    (root / "etc" / "deep" / "er").mkdir(parents=True)
    (root / "etc" / "deep" / "er" / "odd").write_bytes(b"12345")  # body needs padding
    (root / "etc" / "empty").write_bytes(b"")
    (root / "lib64").symlink_to("/lib/powerpc64le-linux-gnu")  # absolute target kept verbatim
    return root


def _write(entries: list[cpio.Entry], path: Path, compress: bool = False) -> bytes:
    cpio.write(path, entries, compress)
    return path.read_bytes()


def test_cpio_round_trip_through_own_reader(tmp_path: Path) -> None:
    entries = [*cpio.tree(_tree(tmp_path / "root"), "pre"), cpio.device("dev/console", "c", 5, 1)]
    data = _write(entries, tmp_path / "a.cpio")
    assert len(data) % 4 == 0
    back = cpio.read(data)
    assert back == entries  # names, modes, bodies, device numbers
    kinds = {e.name: e.kind for e in back}
    assert kinds == {"pre": "d", "pre/bin": "d", "pre/etc": "d", "pre/lib64": "l", "pre/bin/tool": "-",
                     "pre/etc/deep": "d", "pre/etc/empty": "-", "pre/etc/deep/er": "d", "pre/etc/deep/er/odd": "-",
                     "dev/console": "c"}
    names = [e.name for e in back]
    assert all(names.index(n.rsplit("/", 1)[0]) < names.index(n) for n in names if n.startswith("pre/"))
    by_name = {e.name: e for e in back}
    assert by_name["pre/lib64"].data == b"/lib/powerpc64le-linux-gnu"
    assert by_name["pre/bin/tool"].mode == stat.S_IFREG | 0o755
    assert by_name["dev/console"].rdev == (5, 1)


@pytest.mark.skipif(shutil.which("cpio") is None, reason="cpio(1) is not installed: own reader only")
def test_cpio_is_read_by_gnu_cpio(tmp_path: Path) -> None:
    entries = [*cpio.tree(_tree(tmp_path / "root")), cpio.directory("dev"), cpio.device("dev/null", "c", 1, 3)]
    data = _write(entries, tmp_path / "a.cpio.gz", compress=True)
    listing = subprocess.run(["cpio", "-itv", "--quiet"], input=gzip.decompress(data), capture_output=True, check=True)
    lines = listing.stdout.decode().splitlines()
    assert [line.split()[-1] if "->" not in line else line.split()[-3] for line in lines] == [e.name for e in entries]
    assert lines[-1].startswith("crw-------") and "1,   3" in lines[-1]
    assert any(line.startswith("lrwxrwxrwx") and line.endswith("lib64 -> /lib/powerpc64le-linux-gnu") for line in lines)
    out = tmp_path / "x"
    out.mkdir()
    subprocess.run(["cpio", "-id", "--quiet", "--no-absolute-filenames", "etc/deep/er/odd"], cwd=out,
                   input=gzip.decompress(data), check=True)
    assert (out / "etc/deep/er/odd").read_bytes() == b"12345"


def _kernel_unpack(buf: bytes) -> list[str]:
    """init/initramfs.c unpack_to_rootfs(): zero bytes are skipped; a '0' starts an uncompressed
    cpio only at an offset that is a multiple of 4, anything else must be a compressed archive."""
    names: list[str] = []
    at = 0
    while at < len(buf):
        if buf[at] == 0:
            at += 1
        elif buf[at : at + 1] == b"0" and at % 4 == 0:
            entries, at = cpio.read_archive(buf, at)
            names += [e.name for e in entries]
        elif buf[at : at + 2] == b"\x1f\x8b":
            member = zlib.decompressobj(wbits=31)
            names += [e.name for e in cpio.read(member.decompress(buf[at:]))]
            at = len(buf) - len(member.unused_data)
        else:
            raise ValueError("invalid magic at start of compressed archive")
    return names


def test_padding_rule_makes_the_appended_payload_visible(tmp_path: Path) -> None:
    assert [cpio.pad(n) for n in (0, 1, 2, 3, 4, 5, 110)] == [0, 3, 2, 1, 0, 3, 2]
    base_dir = tmp_path / "base"
    base_dir.mkdir()
    (base_dir / "vmlinux").write_bytes(b"")
    for filler in range(8):  # gzip sizes of every residue mod 4
        _write([cpio.Entry("init", stat.S_IFREG | 0o755, os.urandom(filler))], base_dir / "base.cpio.gz", True)
        if (base_dir / "base.cpio.gz").stat().st_size % 4:
            break
    gz = (base_dir / "base.cpio.gz").read_bytes()
    assert len(gz) % 4, "need an unaligned base to test the rule"
    payload = _tree(tmp_path / "payload")
    base = emulated.Base(base_dir, "k", (), emulated.PY311_MAGIC, False)
    emulated.write_initrd(base, payload, tmp_path / "initrd")
    names = _kernel_unpack((tmp_path / "initrd").read_bytes())
    assert names[0] == "init" and "payload/bin/tool" in names and "payload/etc/deep/er/odd" in names
    unpadded = gz + (tmp_path / "initrd").read_bytes()[len(gz) + cpio.pad(len(gz)) :]
    with pytest.raises(ValueError, match="invalid magic"):
        _kernel_unpack(unpadded)


CONSOLE = (
    "OPAL v7.0 starting...\r\n[    0.14] nvram: Failed\r\n@@BOOTED ms=2240\r\n"
    "@@HOST cpu=POWER9 (architected), altivec supported\r\n@@HOST MMU=Radix\r\n@@KVM ready\r\n"
    "@@BEGIN a\r\nhi\r\n\r\n@@END a rc=3 ms=30\r\n"
    "stray line between cases\r\n"
    "@@BEGIN b\r\n\r\n@@END b rc=0 ms=5\r\n"
    "@@BEGIN c_sleep\r\nsleeping\r\nKilled\r\n\r\n@@END c_sleep rc=137 ms=3030 timeout\r\n"
    "@@BEGIN d\r\nno-newline\r\n[   7.1] late printk @@END d rc=0 ms=70\r\n"
    "@@DONE rc=0\r\n[    7.48] reboot: Power down\r\n"
)


def test_console_parser_reads_cases_hosts_and_done() -> None:
    found = emulated.parse_console(CONSOLE)
    assert [(c.name, c.rc, c.output, c.ms, c.timed_out) for c in found.cases] == [
        ("a", 3, "hi\n", 30, False),
        ("b", 0, "", 5, False),
        ("c_sleep", 137, "sleeping\nKilled\n", 3030, True),
        ("d", 0, "no-newline", 70, False),
    ]
    assert found.host == {"cpu": "POWER9 (architected), altivec supported", "MMU": "Radix"}
    assert (found.done, found.nokvm, found.unfinished) == (0, None, None)


def test_console_parser_reports_unfinished_and_nokvm() -> None:
    cut = CONSOLE[: CONSOLE.index("@@END c_sleep")]
    found = emulated.parse_console(cut)
    assert [c.name for c in found.cases] == ["a", "b"]
    assert (found.unfinished, found.done) == ("c_sleep", None)
    nokvm = emulated.parse_console("@@NOKVM insmod kvm-hv.ko: No such device | kvm-hv: Parent hypervisor\n@@DONE rc=99\n")
    assert nokvm.nokvm == "insmod kvm-hv.ko: No such device | kvm-hv: Parent hypervisor"
    assert nokvm.done == 99 and nokvm.cases == ()


def test_boot_error_carries_the_console_tail() -> None:
    err = emulated.BootError("no @@DONE", "\n".join(f"line {i}" for i in range(100)), tail=3)
    assert str(err) == "no @@DONE\n--- console tail ---\nline 97\nline 98\nline 99"
    assert err.console.startswith("line 0\n")


DEBS = {"busybox-static_1%3a1.35.0-4_ppc64el.deb": "aa", "linux-image-6.1.0-50-powerpc64le_6.1.176-1_ppc64el.deb": "bb"}
HOSTS = {"ppc": ppc.HOST, "x86": x86.HOST}


@pytest.mark.parametrize("name", HOSTS)
def test_cache_key_follows_versions_init_and_recipe(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    host = HOSTS[name]
    key = host.cache_key(DEBS)
    assert key == host.cache_key(dict(reversed(DEBS.items())))
    newer = {**DEBS, "linux-image-6.1.0-51-powerpc64le_6.1.180-1_ppc64el.deb": "cc"}
    del newer["linux-image-6.1.0-50-powerpc64le_6.1.176-1_ppc64el.deb"]
    assert host.cache_key(newer) != key
    assert host.cache_key({**DEBS, "busybox-static_1%3a1.35.0-4_ppc64el.deb": "ab"}) != key  # same name, new hash
    reordered = replace(host.recipe, modules=tuple(reversed(host.recipe.modules)))
    assert emulated.Host(reordered).cache_key(DEBS) != key  # the load order is written into the base
    assert emulated.Host(replace(host.recipe, layout=host.recipe.layout + 1)).cache_key(DEBS) != key
    init = tmp_path / "init"
    init.write_bytes(emulated.INIT.read_bytes() + b"# changed\n")
    monkeypatch.setattr(emulated, "INIT", init)
    assert host.cache_key(DEBS) != key


def test_the_two_recipes_never_share_a_cache_key() -> None:
    assert ppc.HOST.cache_key(DEBS) != x86.HOST.cache_key(DEBS)


def test_cache_root_and_required_follow_the_recipe_name(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("HVCONF_X86_CACHE", raising=False)
    monkeypatch.delenv("HVCONF_X86_REQUIRED", raising=False)
    monkeypatch.setenv("HVCONF_PPC_REQUIRED", "1")
    assert x86.HOST.cache_root() == Path.home() / ".cache" / "hvconf" / "x86-host"
    assert (x86.HOST.required(), ppc.HOST.required()) == (False, True)
    monkeypatch.setenv("HVCONF_X86_CACHE", str(tmp_path))
    monkeypatch.setenv("HVCONF_X86_REQUIRED", "1")
    assert (x86.HOST.cache_root(), x86.HOST.required()) == (tmp_path, True)


def test_host_sh_is_what_init_reads() -> None:
    assert x86.RECIPE.host_sh() == ("HOST_FIELDS='vendor_id:model name'\n"
                                    "MODULES='irqbypass.ko kvm.ko ccp.ko kvm-amd.ko'\nKVM_MODULE='kvm_amd'\n"
                                    "KVM_LOG='Nested|SVM: kvm'\n")
    assert "MODULES='kvm.ko kvm-hv.ko'\nKVM_MODULE='kvm_hv'" in ppc.RECIPE.host_sh()
    script = emulated.INIT.read_text()
    assert ". /etc/hvconf/host.sh" in script
    assert all(f"${name}" in script for name in ("HOST_FIELDS", "MODULES", "KVM_MODULE", "KVM_LOG"))


def _module(depends: str) -> bytes:
    """The .modinfo strings of a module as they sit in its .ko (NUL-separated)."""
    return b"\x7fELF...\0license=GPL\0depends=" + depends.encode() + b"\0retpoline=Y\0name=x\0"


def test_module_load_order_is_checked_against_depends() -> None:
    good = {"virt/lib/irqbypass.ko": _module(""), "arch/x86/kvm/kvm.ko": _module("irqbypass"),
            "drivers/crypto/ccp/ccp.ko": _module(""), "arch/x86/kvm/kvm-amd.ko": _module("kvm,ccp")}
    emulated.check_load_order(good)  # the x86 recipe's order
    assert list(good) == list(x86.RECIPE.modules)
    bad = {k: good[k] for k in ("virt/lib/irqbypass.ko", "arch/x86/kvm/kvm.ko", "arch/x86/kvm/kvm-amd.ko",
                                "drivers/crypto/ccp/ccp.ko")}
    with pytest.raises(emulated.HostUnavailable, match=r"^kvm-amd.ko needs ccp loaded before it"):
        emulated.check_load_order(bad)
    assert emulated.module_name("kvm-amd.ko") == "kvm_amd" and emulated.module_name("kvm.ko.xz") == "kvm"


def test_spec_pins_the_resolved_version() -> None:
    assert emulated.spec("busybox-static_1%3a1.35.0-4+deb12u1+b1_ppc64el.deb") == "busybox-static:ppc64el=1:1.35.0-4+deb12u1+b1"
    assert emulated.spec("python3-cffi_1.15.1-5_all.deb") == "python3-cffi=1.15.1-5"


def test_payload_cases_match_inits_order(tmp_path: Path) -> None:
    for name in ("b", "a10", "a9", ".hidden", "no_run", "Z", "vmcall", "vmcall-segment", "vmcall0"):
        (tmp_path / "cases" / name).mkdir(parents=True)
        if name != "no_run":
            (tmp_path / "cases" / name / "run").write_text("#!/bin/sh\n")
    # C-locale byte order of "NAME/", like ash's glob of cases/*/: '-' < '/' < '0'
    assert emulated.payload_cases(tmp_path) == ["Z", "a10", "a9", "b", "vmcall-segment", "vmcall", "vmcall0"]
    assert emulated.payload_cases(None) == [] and emulated.payload_cases(tmp_path / "cases") == []


def _fake_build(calls: list[str], fail: bool = False, delay: float = 0.0) -> emulated.Builder:
    def build(folder: Path, key: str, debs: dict[str, str], log: object) -> None:
        calls.append(key)
        (folder / "vmlinux").write_bytes(b"half")
        time.sleep(delay)
        if fail:
            raise KeyboardInterrupt  # as if prepare were killed mid-build
        manifest = {"key": key, "packages": sorted(debs), "magic": emulated.PY311_MAGIC.hex(), "compiled": True}
        (folder / "manifest.json").write_text(json.dumps(manifest))
    return build


def test_cache_is_atomic_reused_and_locked(tmp_path: Path) -> None:
    calls: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        emulated.cached(tmp_path, "k1", DEBS, _fake_build(calls, fail=True), print)
    assert list(tmp_path.iterdir()) == [tmp_path / ".lock"]  # no half cache, no leftover build folder
    results: list[emulated.Base] = []
    threads = [threading.Thread(target=lambda: results.append(emulated.cached(tmp_path, "k1", DEBS,
                                                                              _fake_build(calls, delay=0.3), print)))
               for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 2  # the killed build, then ONE build for three concurrent callers
    assert {r.dir for r in results} == {tmp_path / "k1"}
    assert results[0].packages == tuple(sorted(DEBS)) and results[0].magic == emulated.PY311_MAGIC
    assert sorted(p.name for p in tmp_path.iterdir()) == [".lock", "k1"]


def test_runtime_tree_copies_only_the_runtime(tmp_path: Path) -> None:
    pkg = emulated.runtime_tree(tmp_path / "lib")
    assert pkg == tmp_path / "lib" / "hvconf"
    names = sorted(p.name for p in pkg.iterdir() if p.name != "__pycache__")
    assert names == ["__init__.py", "abi", "contract.py", "kvm", "record.py"]
    assert (pkg / "kvm" / "ioctls" / "cdefs" / "_ffi_powerpc64.py").is_file()
    assert sorted(p.name for p in (pkg / "abi" / "data").iterdir()) == sorted(
        p.name for p in (emulated.REPO / "hvconf" / "abi" / "data").iterdir())
    sources = {p.relative_to(pkg) for p in pkg.rglob("*.py")}
    assert sources == {p.relative_to(emulated.REPO / "hvconf") for p in (emulated.REPO / "hvconf").rglob("*.py")
                       if p.relative_to(emulated.REPO / "hvconf").parts[0] in emulated.RUNTIME}
    pycs = list(pkg.rglob("*.pyc"))
    if sys.version_info[:2] == (3, 11):  # same bytecode magic as Debian 12's python3.11
        assert len(pycs) == len(sources)
        assert all(p.read_bytes()[4:8] == b"\x01\x00\x00\x00" for p in pycs)  # unchecked-hash .pyc
    else:
        assert pycs == []


def test_every_module_of_the_runtime_tree_imports_from_the_copy_alone(tmp_path: Path) -> None:
    # A payload carries only RUNTIME: a runtime module importing anything else (hvconf.abi once
    # imported hvconf.diagnostics) fails on the emulated hosts alone, minutes into a boot. Import
    # each copied module in a fresh interpreter that sees nothing of this checkout.
    pkg = emulated.runtime_tree(tmp_path / "lib")
    names = sorted(".".join(("hvconf", *p.relative_to(pkg).with_suffix("").parts)).removesuffix(".__init__")
                   for p in pkg.rglob("*.py") if "cdefs" not in p.parts)
    code = "import importlib, sys; [importlib.import_module(n) for n in sys.argv[1:]]"
    done = subprocess.run([sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(tmp_path / 'lib')!r}); "
                           + code, *names], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def test_qemu_command_lines(tmp_path: Path) -> None:
    base = emulated.Base(tmp_path, "k", (), emulated.PY311_MAGIC, True)
    common = ["-cpu", "POWER9", "-m", "1G", "-smp", "1", "-nographic", "-no-reboot",
              "-kernel", str(tmp_path / "vmlinux"), "-initrd", "INITRD", "-append"]
    nested = ppc.HOST.qemu_command(base, Path("INITRD"), "nested", 7)
    assert nested == ["qemu-system-ppc64", "-M", "pseries,cap-nested-hv=on,x-vof=on,usb=off,cap-cfpc=broken,"
                      "cap-sbbc=broken,cap-ibs=broken,cap-ccf-assist=off", "-vga", "none", *common,
                      "console=hvc0 rdinit=/init quiet panic=-1 hvconf_case_timeout=7"]
    assert ppc.HOST.qemu_command(base, Path("INITRD"), "powernv", 60)[1:3] == ["-M", "powernv9"]
    assert ppc.HOST.qemu_command(base, Path("INITRD"), "powernv-hash", 60)[-1] == (
        "console=hvc0 rdinit=/init quiet panic=-1 disable_radix hvconf_case_timeout=60")
    amd = emulated.Base(tmp_path, "k", (), emulated.PY311_MAGIC, True, "vmlinuz")
    assert x86.HOST.qemu_command(amd, Path("INITRD"), "svm", 9) == [
        "qemu-system-x86_64", "-M", "pc", "-accel", "tcg", "-cpu", "max", "-m", "2G", "-smp", "1", "-nographic",
        "-no-reboot", "-nic", "none", "-vga", "none", "-kernel", str(tmp_path / "vmlinuz"), "-initrd", "INITRD",
        "-append", "console=ttyS0 rdinit=/init quiet panic=-1 hvconf_case_timeout=9"]


@pytest.mark.parametrize("name", HOSTS)
def test_a_missing_qemu_or_firmware_is_a_reason_not_an_error(name: str, monkeypatch: pytest.MonkeyPatch,
                                                            tmp_path: Path) -> None:
    host = HOSTS[name]
    missing = emulated.Host(replace(host.recipe, qemu="qemu-system-nowhere"))
    assert missing.unavailable_reason() == "qemu-system-nowhere not found: run tests/hosts/install-deps.sh as root"
    with pytest.raises(emulated.HostUnavailable, match="qemu-system-nowhere not found"):
        missing.boot(emulated.Base(tmp_path, "k", (), emulated.PY311_MAGIC, True), None)
    if shutil.which(host.recipe.qemu) is not None:
        monkeypatch.setattr(emulated, "FIRMWARE_DIRS", (tmp_path,))
        firmware = host.recipe.modes[host.recipe.default_mode].firmware
        assert host.unavailable_reason() == f"{firmware} not found in {tmp_path}: run tests/hosts/install-deps.sh as root"


def test_the_command_line_reports_an_unavailable_host_with_status_3(capsys: pytest.CaptureFixture[str]) -> None:
    missing = emulated.Host(replace(x86.RECIPE, qemu="qemu-system-nowhere"))
    assert missing.main(["check"], prog="x86.py") == emulated.EXIT["unavailable"] == 3
    assert capsys.readouterr().err == ("x86: unavailable: qemu-system-nowhere not found: "
                                       "run tests/hosts/install-deps.sh as root\n")


@pytest.mark.parametrize("err", [
    emulated.HostUnavailable("qemu-system-x86_64 not found"),
    emulated.NoKvm("insmod kvm-amd.ko: No such device", "@@NOKVM ...\n", "the emulated x86_64"),
    emulated.BootError("svm boot: no @@DONE; QEMU exited 1", "line 1\nline 2\n"),
])  # fmt: skip
def test_harness_errors_cross_the_process_boundary(err: emulated.HostUnavailable) -> None:
    back = session.rebuild(*session.flatten(err)[1:])
    assert (type(back), str(back), getattr(back, "console", None)) == (type(err), str(err), getattr(err, "console", None))


def test_a_boot_process_that_dies_is_a_boot_error_and_leaves_nothing(tmp_path: Path) -> None:
    boot = session.Background("no_such_recipe", tmp_path / "payload", tmp_path / "cache", 5, 5).start()
    with pytest.raises(emulated.BootError, match=r"^the boot process ended with status 1 and no result: "
                                                 r"ModuleNotFoundError: No module named 'hosts.no_such_recipe'"):
        boot.result()
    assert not boot.out.exists() and not boot.err.exists() and not (tmp_path / "cache").exists()


def _qemu_children(pid: int) -> list[int]:
    """The QEMU processes whose parent is `pid`."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            comm = (entry / "comm").read_text()
        except (OSError, IndexError, ValueError):
            continue
        if parent == pid and comm.startswith("qemu-system"):
            found.append(int(entry.name))
    return found


def test_stopping_a_boot_under_way_ends_its_qemu(tmp_path: Path) -> None:
    reason = x86.HOST.unavailable_reason()
    if reason is not None:
        pytest.skip(f"emulated x86_64 host unavailable ({reason})")
    (tmp_path / "payload" / "cases" / "wait").mkdir(parents=True)
    (tmp_path / "payload" / "cases" / "wait" / "run").write_text("#!/bin/sh\nsleep 600\n")
    boot = session.Background("x86", tmp_path / "payload", x86.HOST.cache_root(), 600, 600).start()
    assert boot.proc is not None
    deadline = time.monotonic() + 300  # a cold prepare downloads the packages first
    while not (qemu := _qemu_children(boot.proc.pid)) and boot.proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert qemu, "the boot process never started QEMU"
    boot.stop()
    with pytest.raises(emulated.BootError, match="ended with status 143"):
        boot.result()
    assert not Path(f"/proc/{qemu[0]}").exists() or "zombie" in Path(f"/proc/{qemu[0]}/status").read_text()
