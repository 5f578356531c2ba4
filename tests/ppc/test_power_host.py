"""Tests of the emulated POWER9 test host tool (tests/ppc/host): the cpio writer read back by
cpio(1) and by a parser, the 4-byte padding rule the kernel enforces between archives, the
console protocol parser, cache keying/atomicity/locking, runtime_tree, the QEMU command lines,
and one real nested boot (skipped only when qemu-system-ppc64 is missing and
HVCONF_PPC_REQUIRED is unset)."""

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
from pathlib import Path

import pytest

try:  # tests/ppc is a package when it has an __init__.py, else pytest puts tests/ppc on sys.path
    from ppc.host import cpio, power
except ImportError:
    from host import cpio, power


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
    base = power.Base(base_dir, "k", (), power.PY311_MAGIC, False)
    power.write_initrd(base, payload, tmp_path / "initrd")
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
    found = power.parse_console(CONSOLE)
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
    found = power.parse_console(cut)
    assert [c.name for c in found.cases] == ["a", "b"]
    assert (found.unfinished, found.done) == ("c_sleep", None)
    nokvm = power.parse_console("@@NOKVM insmod kvm-hv.ko: No such device | kvm-hv: Parent hypervisor\n@@DONE rc=99\n")
    assert nokvm.nokvm == "insmod kvm-hv.ko: No such device | kvm-hv: Parent hypervisor"
    assert nokvm.done == 99 and nokvm.cases == ()


def test_boot_error_carries_the_console_tail() -> None:
    err = power.BootError("no @@DONE", "\n".join(f"line {i}" for i in range(100)), tail=3)
    assert str(err) == "no @@DONE\n--- console tail ---\nline 97\nline 98\nline 99"
    assert err.console.startswith("line 0\n")


DEBS = {"busybox-static_1%3a1.35.0-4_ppc64el.deb": "aa", "linux-image-6.1.0-50-powerpc64le_6.1.176-1_ppc64el.deb": "bb"}


def test_cache_key_follows_versions_and_init(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = power.cache_key(DEBS)
    assert key == power.cache_key(dict(reversed(DEBS.items())))
    newer = {**DEBS, "linux-image-6.1.0-51-powerpc64le_6.1.180-1_ppc64el.deb": "cc"}
    del newer["linux-image-6.1.0-50-powerpc64le_6.1.176-1_ppc64el.deb"]
    assert power.cache_key(newer) != key
    assert power.cache_key({**DEBS, "busybox-static_1%3a1.35.0-4_ppc64el.deb": "ab"}) != key  # same name, new hash
    init = tmp_path / "init"
    init.write_bytes(power.INIT.read_bytes() + b"# changed\n")
    monkeypatch.setattr(power, "INIT", init)
    assert power.cache_key(DEBS) != key


def test_spec_pins_the_resolved_version() -> None:
    assert power._spec("busybox-static_1%3a1.35.0-4+deb12u1+b1_ppc64el.deb") == "busybox-static:ppc64el=1:1.35.0-4+deb12u1+b1"
    assert power._spec("python3-cffi_1.15.1-5_all.deb") == "python3-cffi=1.15.1-5"


def test_payload_cases_match_inits_order(tmp_path: Path) -> None:
    for name in ("b", "a10", "a9", ".hidden", "no_run", "Z"):
        (tmp_path / "cases" / name).mkdir(parents=True)
        if name != "no_run":
            (tmp_path / "cases" / name / "run").write_text("#!/bin/sh\n")
    assert power.payload_cases(tmp_path) == ["Z", "a10", "a9", "b"]  # C-locale byte order, like ash's glob
    assert power.payload_cases(None) == [] and power.payload_cases(tmp_path / "cases") == []


def _fake_build(calls: list[str], fail: bool = False, delay: float = 0.0) -> power.Builder:
    def build(folder: Path, key: str, debs: dict[str, str], log: object) -> None:
        calls.append(key)
        (folder / "vmlinux").write_bytes(b"half")
        time.sleep(delay)
        if fail:
            raise KeyboardInterrupt  # as if prepare were killed mid-build
        manifest = {"key": key, "packages": sorted(debs), "magic": power.PY311_MAGIC.hex(), "compiled": True}
        (folder / "manifest.json").write_text(json.dumps(manifest))
    return build


def test_cache_is_atomic_reused_and_locked(tmp_path: Path) -> None:
    calls: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        power.cached(tmp_path, DEBS, _fake_build(calls, fail=True), print)
    assert list(tmp_path.iterdir()) == [tmp_path / ".lock"]  # no half cache, no leftover build folder
    results: list[power.Base] = []
    threads = [threading.Thread(target=lambda: results.append(power.cached(tmp_path, DEBS, _fake_build(calls, delay=0.3), print)))
               for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 2  # the killed build, then ONE build for three concurrent callers
    assert {r.dir for r in results} == {tmp_path / power.cache_key(DEBS)}
    assert results[0].packages == tuple(sorted(DEBS)) and results[0].magic == power.PY311_MAGIC
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([".lock", power.cache_key(DEBS)])


def test_runtime_tree_copies_only_the_runtime(tmp_path: Path) -> None:
    pkg = power.runtime_tree(tmp_path / "lib")
    assert pkg == tmp_path / "lib" / "hvconf"
    names = sorted(p.name for p in pkg.iterdir() if p.name != "__pycache__")
    assert names == ["__init__.py", "abi", "contract.py", "kvm", "record.py"]
    assert (pkg / "kvm" / "ioctls" / "cdefs" / "_ffi_powerpc64.py").is_file()
    assert sorted(p.name for p in (pkg / "abi" / "data").iterdir()) == sorted(
        p.name for p in (power.REPO / "hvconf" / "abi" / "data").iterdir())
    sources = {p.relative_to(pkg) for p in pkg.rglob("*.py")}
    assert sources == {p.relative_to(power.REPO / "hvconf") for p in (power.REPO / "hvconf").rglob("*.py")
                       if p.relative_to(power.REPO / "hvconf").parts[0] in power.RUNTIME}
    pycs = list(pkg.rglob("*.pyc"))
    if sys.version_info[:2] == (3, 11):  # same bytecode magic as Debian 12's python3.11
        assert len(pycs) == len(sources)
        assert all(p.read_bytes()[4:8] == b"\x01\x00\x00\x00" for p in pycs)  # unchecked-hash .pyc
    else:
        assert pycs == []


def test_qemu_command_lines(tmp_path: Path) -> None:
    base = power.Base(tmp_path, "k", (), power.PY311_MAGIC, True)
    common = ["-cpu", "POWER9", "-m", "1G", "-smp", "1", "-nographic", "-no-reboot",
              "-kernel", str(tmp_path / "vmlinux"), "-initrd", "INITRD", "-append"]
    nested = power.qemu_command(base, Path("INITRD"), "nested", 7)
    assert nested == ["qemu-system-ppc64", "-M", "pseries,cap-nested-hv=on,x-vof=on,usb=off,cap-cfpc=broken,"
                      "cap-sbbc=broken,cap-ibs=broken,cap-ccf-assist=off", "-vga", "none", *common,
                      "console=hvc0 rdinit=/init quiet panic=-1 hvconf_case_timeout=7"]
    assert power.qemu_command(base, Path("INITRD"), "powernv", 60)[1:3] == ["-M", "powernv9"]
    assert power.qemu_command(base, Path("INITRD"), "powernv-hash", 60)[-1] == (
        "console=hvc0 rdinit=/init quiet panic=-1 disable_radix hvconf_case_timeout=60")


# --- one real boot -------------------------------------------------------------------------------

PYTHON_CASE = """#!/usr/bin/python3
import hvconf.kvm.ioctls.system as system
kvm = system.Kvm()
vm = kvm.create_vm()
print(f"api={kvm.api_version} vm_fd={vm.fd}")
"""


def _case(payload: Path, name: str, script: str, timeout: int | None = None) -> None:
    folder = payload / "cases" / name
    folder.mkdir(parents=True)
    (folder / "run").write_text(script)
    (folder / "run").chmod(0o755)
    if timeout is not None:
        (folder / "timeout").write_text(f"{timeout}\n")


def test_real_nested_boot_runs_every_case(tmp_path: Path) -> None:
    reason = power.unavailable_reason("nested")
    if reason is not None and os.environ.get("HVCONF_PPC_REQUIRED"):
        pytest.fail(f"HVCONF_PPC_REQUIRED is set but the emulated POWER9 host is unavailable: {reason}")
    if reason is not None:
        pytest.skip(f"emulated POWER9 host unavailable ({reason}); HVCONF_PPC_REQUIRED=1 makes this a failure")
    base = power.prepare()
    payload = tmp_path / "payload"
    _case(payload, "a_shell", "#!/bin/sh\necho hi\nexit 3\n")
    _case(payload, "b_python", PYTHON_CASE)
    _case(payload, "c_sleep", "#!/bin/sh\nsleep 1000 &\necho sleeping\nsleep 1000\n", timeout=2)
    _case(payload, "d_after", "#!/bin/sh\nps | grep -c '[s]leep 1000'\nprintf %s \"$PYTHONPATH\"\n")
    power.runtime_tree(payload / "lib", base.magic)
    boot = power.boot(base, payload, "nested", timeout=180)
    assert [c.name for c in boot.cases] == ["a_shell", "b_python", "c_sleep", "d_after"]
    assert (boot.case("a_shell").rc, boot.case("a_shell").output) == (3, "hi\n")
    python = boot.case("b_python")
    assert python.rc == 0, python.output
    assert python.output.startswith("api=12 vm_fd=") and int(python.output.split("vm_fd=")[1]) >= 3
    sleep = boot.case("c_sleep")
    assert sleep.timed_out and sleep.rc == 137 and 2000 <= sleep.ms < 10000
    assert boot.case("d_after").output == "0\n/payload/lib"  # the orphan sleep was killed too
    assert boot.host["platform"] == "pSeries" and boot.host["MMU"] == "Radix"
    assert boot.qemu_rc == 0 and 0 < boot.seconds < 180
