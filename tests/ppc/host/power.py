"""The emulated POWER9 test host: Debian's ppc64el kernel running KVM-HV under qemu-system-ppc64 (TCG).

prepare() builds and caches vmlinux + base.cpio.gz (busybox, kvm.ko, kvm-hv.ko, Python 3.11 + cffi)
from Debian ppc64el packages; boot() appends a payload and runs all its cases in ONE boot, parsing the
@@ markers that ./init prints; runtime_tree() copies the hvconf runtime into a payload. It needs no root
(install-deps.sh is the one root step) and never edits hvconf/. CLI: prepare | run DIR | check.
Tests: tests/ppc/test_power_host.py.
"""

from __future__ import annotations

import argparse
import fcntl
import fnmatch
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

if __package__:
    from . import cpio
else:  # run as a script: python tests/ppc/host/power.py
    import cpio  # type: ignore[no-redef]

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
INIT = HERE / "init"
ARCH = "ppc64el"
KERNEL_META = f"linux-image-powerpc64le:{ARCH}"  # its Depends names the current versioned kernel
BUSYBOX = f"busybox-static:{ARCH}"
PYTHON_PACKAGES = tuple(f"{name}:{ARCH}" for name in (
    "libc6", "libgcc-s1", "zlib1g", "libexpat1", "libffi8", "libssl3", "libbz2-1.0", "liblzma5", "libuuid1",
    "libcrypt1", "libpython3.11-minimal", "python3.11-minimal", "libpython3.11-stdlib", "python3-cffi-backend",
)) + ("python3-cffi", "python3-pycparser", "python3-ply")  # Architecture: all
PY = "usr/lib/python3.11"
STRIP = ("usr/share/doc", "usr/share/man", "usr/share/locale", "usr/share/lintian", "usr/share/info",
         "usr/lib/powerpc64le-linux-gnu/gconv", "usr/lib/powerpc64le-linux-gnu/ossl-modules",
         "usr/lib/powerpc64le-linux-gnu/engines-3", f"{PY}/test", f"{PY}/idlelib", f"{PY}/tkinter",
         f"{PY}/ensurepip", f"{PY}/lib2to3", f"{PY}/pydoc_data", f"{PY}/turtledemo", f"{PY}/*/test", f"{PY}/*/tests")
LAYOUT = 1  # bump when the base's recipe changes in a way the cache key cannot see
DEVICES = (cpio.device("dev/console", "c", 5, 1), cpio.device("dev/null", "c", 1, 3))
EMPTY_DIRS = ("proc", "sys", "dev", "tmp")
PY311_MAGIC = (3495).to_bytes(2, "little") + b"\r\n"  # every CPython 3.11 release; Debian 12's python3.11
RUNTIME = ("__init__.py", "record.py", "contract.py", "abi", "kvm")  # what a ppc64le host runs (cffi only)

QEMU = "qemu-system-ppc64"
FIRMWARE_DIRS = (Path("/usr/share/qemu"), Path("/usr/local/share/qemu"))
CMDLINE = "console=hvc0 rdinit=/init quiet panic=-1"
NESTED = "pseries,cap-nested-hv=on,x-vof=on,usb=off,cap-cfpc=broken,cap-sbbc=broken,cap-ibs=broken,cap-ccf-assist=off"


@dataclass(frozen=True)
class Mode:
    machine: tuple[str, ...]
    firmware: str
    cmdline: str = ""


MODES = {
    "nested": Mode(("-M", NESTED, "-vga", "none"), "vof.bin"),  # kvm-hv as a nested HV: fast, radix only
    "powernv": Mode(("-M", "powernv9"), "skiboot.lid"),  # bare-metal HV: ALLOCATE_HTAB works
    "powernv-hash": Mode(("-M", "powernv9"), "skiboot.lid", "disable_radix"),  # hash-MMU host
}
QEMU_COMMON = ("-cpu", "POWER9", "-m", "1G", "-smp", "1", "-nographic", "-no-reboot")


class PowerHostUnavailable(RuntimeError):
    """The emulated host cannot be prepared or booted here; str() is the one-line reason."""


class BootError(RuntimeError):
    """A boot did not complete the protocol. `console` is the whole log; str() ends with its tail."""

    def __init__(self, message: str, console: str, tail: int = 30) -> None:
        self.console = console
        lines = "\n".join(console.rstrip("\n").splitlines()[-tail:])
        super().__init__(f"{message}\n--- console tail ---\n{lines}")


class NoKvm(BootError):
    """init could not load kvm-hv (printed @@NOKVM); `reason` is its one-line reason."""

    def __init__(self, reason: str, console: str) -> None:
        self.reason = reason
        super().__init__(f"KVM-HV did not load in the POWER host: {reason}", console)


@dataclass(frozen=True)
class Base:
    """A prepared, cached host: `vmlinux`, `initrd` (base.cpio.gz), the .deb files it came from."""

    dir: Path
    key: str
    packages: tuple[str, ...]
    magic: bytes  # the guest Python's bytecode magic
    compiled: bool  # whether its stdlib was byte-compiled on the host

    @property
    def vmlinux(self) -> Path:
        return self.dir / "vmlinux"

    @property
    def initrd(self) -> Path:
        return self.dir / "base.cpio.gz"

    @classmethod
    def load(cls, path: Path) -> Base:
        m = json.loads((path / "manifest.json").read_text())
        return cls(path, m["key"], tuple(m["packages"]), bytes.fromhex(m["magic"]), m["compiled"])


@dataclass(frozen=True)
class Case:
    """One payload case: exit status, what it printed (stdout+stderr, exactly), guest milliseconds."""

    name: str
    rc: int
    output: str
    ms: int
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.rc == 0


@dataclass(frozen=True)
class Console:
    """What parse_console() found. `unfinished`: a case that began and never ended."""

    cases: tuple[Case, ...] = ()
    host: dict[str, str] = field(default_factory=dict)
    done: int | None = None
    nokvm: str | None = None
    unfinished: str | None = None


@dataclass(frozen=True)
class Boot:
    """A completed boot: its cases in run order, the host's /proc/cpuinfo facts, the console log
    (\\r stripped), QEMU's exit status and the wall seconds the boot took."""

    mode: str
    cases: tuple[Case, ...]
    host: dict[str, str]
    console: str
    qemu_rc: int
    seconds: float

    def case(self, name: str) -> Case:
        for case in self.cases:
            if case.name == name:
                return case
        raise KeyError(f"no case {name!r} in this boot (ran: {', '.join(c.name for c in self.cases) or 'none'})")

    @property
    def failed(self) -> tuple[Case, ...]:
        return tuple(c for c in self.cases if not c.ok)


# --- the console protocol (printed by ./init) ---------------------------------------------------

BEGIN = re.compile(r"@@BEGIN (\S+)\n")
HOST = re.compile(r"@@HOST (\w+)=(.*)")
DONE = re.compile(r"@@DONE rc=(\d+)")
NOKVM = re.compile(r"@@NOKVM (.*)")


def parse_console(text: str) -> Console:
    """Cases between `@@BEGIN name` and `@@END name rc=N ms=N [timeout]`; lines without a
    marker are ignored. `text` may still hold \\r (QEMU's console writes \\r\\n)."""
    text = text.replace("\r", "")
    cases: list[Case] = []
    at, unfinished = 0, None
    while (begin := BEGIN.search(text, at)) is not None:
        name = begin.group(1)
        # init echoes a newline before @@END, so the output is exactly what the case printed
        end = re.compile(rf"\n[^\n]*@@END {re.escape(name)} rc=(\d+) ms=(\d+)( timeout)?").search(text, begin.end())
        if end is None:
            unfinished = name
            break
        output = text[begin.end() : end.start()]
        cases.append(Case(name, int(end.group(1)), output, int(end.group(2)), end.group(3) is not None))
        at = end.end()
    done = DONE.search(text, at)
    nokvm = NOKVM.search(text)
    return Console(tuple(cases), dict(HOST.findall(text)), int(done.group(1)) if done and not unfinished else None,
                   nokvm.group(1).strip() if nokvm else None, unfinished)


# --- prepare: packages, cache, base image ---------------------------------------------------------

def cache_root() -> Path:
    return Path(os.environ.get("HVCONF_PPC_CACHE") or Path.home() / ".cache" / "hvconf" / "ppc-host")


def _run(argv: list[str], what: str, cwd: Path | None = None, timeout: float = 600) -> str:
    if shutil.which(argv[0]) is None:
        raise PowerHostUnavailable(f"{argv[0]} not found ({what})")
    try:
        done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise PowerHostUnavailable(f"{what}: timed out after {timeout:.0f} s") from None
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or ["(no message)"]
        errors = [line for line in lines if line.startswith("E:")]  # not apt's W: sandbox warnings
        raise PowerHostUnavailable(f"{what} failed: {(errors or lines)[-1]}")
    return done.stdout


def resolve() -> dict[str, str]:
    """The .deb file name -> SHA256 that `apt-get download` would fetch now, kernel included."""
    if ARCH not in _run(["dpkg", "--print-foreign-architectures"], "dpkg").split():
        raise PowerHostUnavailable(f"{ARCH} is not a dpkg architecture here: run tests/ppc/host/install-deps.sh")
    depends = _run(["apt-cache", "depends", KERNEL_META], f"apt-cache depends {KERNEL_META} (apt-get update?)")
    kernel = re.search(r"Depends: (linux-image-\d\S*-powerpc64le)\b", depends)
    if kernel is None:
        raise PowerHostUnavailable(f"{KERNEL_META} names no versioned kernel: {depends.strip()!r}")
    uris = _run(["apt-get", "download", "--print-uris", f"{kernel.group(1)}:{ARCH}", BUSYBOX, *PYTHON_PACKAGES],
                "apt-get download --print-uris (apt-get update?)")
    debs = dict(re.findall(r"^'\S+' (\S+\.deb) \d+ SHA256:([0-9a-f]+)$", uris, re.M))
    if len(debs) != 2 + len(PYTHON_PACKAGES):
        raise PowerHostUnavailable(f"apt-get download --print-uris listed {len(debs)} of {2 + len(PYTHON_PACKAGES)} packages")
    return debs


def cache_key(debs: dict[str, str]) -> str:
    """Changes with any package version, init, cpio.py or the recipe's tables."""
    h = hashlib.sha256(repr((LAYOUT, sorted(debs.items()), STRIP, EMPTY_DIRS, RUNTIME)).encode())
    for source in (INIT, HERE / "cpio.py"):
        h.update(source.read_bytes())
    return h.hexdigest()[:20]


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another pytest process preparing: wait for it
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def prepare(cache_dir: Path | None = None, log: Callable[[str], None] | None = None) -> Base:
    """The cached Base for the packages apt resolves now, building it (~10-60 s) when absent."""
    root = Path(cache_dir) if cache_dir is not None else cache_root()
    return cached(root, resolve(), _build, log or (lambda _msg: None))


Builder = Callable[[Path, str, dict[str, str], Callable[[str], None]], None]


def cached(root: Path, debs: dict[str, str], build: Builder, log: Callable[[str], None]) -> Base:
    """The Base in `root` keyed by `debs`; else `build(folder, key, debs, log)` fills a fresh folder
    that is renamed into place whole, under a lock, so a killed or concurrent prepare is harmless."""
    root.mkdir(parents=True, exist_ok=True)
    final = root / cache_key(debs)
    if (final / "manifest.json").is_file():
        os.utime(final)  # recently used: pruning keeps it
        return Base.load(final)
    with _locked(root / ".lock"):
        if (final / "manifest.json").is_file():
            return Base.load(final)  # another process built it while we waited
        for stale in root.glob(".build-*"):  # left by a killed prepare; we hold the lock
            shutil.rmtree(stale, ignore_errors=True)
        folder = Path(tempfile.mkdtemp(prefix=".build-", dir=root))
        try:
            build(folder, final.name, debs, log)
            folder.rename(final)  # atomic: a reader sees all of the base or none of it
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        _prune(root, keep=3)
    return Base.load(final)


def _build(out: Path, key: str, debs: dict[str, str], say: Callable[[str], None]) -> None:
    t0 = time.monotonic()
    work, rootfs = out / "work", out / "work" / "root"
    (work / "debs").mkdir(parents=True)
    (work / "debs").chmod(0o755)  # lets apt's _apt sandbox user write there
    specs = [_spec(name) for name in debs]
    say(f"apt-get download: {len(specs)} packages")
    _run(["apt-get", "download", *specs], "apt-get download", cwd=work / "debs", timeout=900)
    files = {name: work / "debs" / name for name in debs}
    missing = [n for n, p in files.items() if not p.is_file()]
    if missing:
        raise PowerHostUnavailable(f"apt-get download did not produce {missing[0]}")
    for d in ("bin", "lib/modules", *EMPTY_DIRS):
        (rootfs / d).mkdir(parents=True, exist_ok=True)
    for name, path in files.items():
        if name.startswith("linux-image-"):
            _kernel(path, out / "vmlinux", rootfs / "lib" / "modules")
        elif name.startswith("busybox-static_"):
            _extract(path, {"./bin/busybox": rootfs / "bin" / "busybox"})
        else:
            _run(["dpkg-deb", "-x", str(path), str(rootfs)], f"dpkg-deb -x {name}")
    (rootfs / "usr/bin/python3").symlink_to("python3.11")
    for pattern in STRIP:
        for path in rootfs.glob(pattern):
            shutil.rmtree(path)
    magic = _target_magic(rootfs)
    say("byte-compiling the guest's Python")
    compiled = compile_tree([rootfs / PY, rootfs / "usr/lib/python3/dist-packages"], magic)
    shutil.copyfile(INIT, rootfs / "init")
    (rootfs / "init").chmod(0o755)
    say("writing base.cpio.gz")
    cpio.write(out / "base.cpio.gz", [*cpio.tree(rootfs), *DEVICES], compress=True)
    shutil.rmtree(work)
    manifest = {"key": key, "packages": sorted(debs), "magic": magic.hex(), "compiled": compiled,
                "seconds": round(time.monotonic() - t0, 1), "bytes": (out / "base.cpio.gz").stat().st_size}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")


def _spec(deb: str) -> str:
    """`name:arch=version` for a pool file name `name_version_arch.deb` (version %-quoted)."""
    name, version, arch = deb[: -len(".deb")].split("_")
    return f"{name}:{arch}={unquote(version)}" if arch != "all" else f"{name}={unquote(version)}"


def _extract(deb: Path, wanted: dict[str, Path]) -> dict[str, Path]:
    """Stream `deb`'s data tar, writing members whose name matches a `wanted` pattern (fnmatch)
    to their path (a directory for patterns with '*'). Returns pattern -> file written."""
    found: dict[str, Path] = {}
    proc = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
        for member in tar:
            for pattern, dest in wanted.items():
                if member.isfile() and fnmatch.fnmatch(member.name, pattern):
                    target = dest / Path(member.name).name if "*" in pattern else dest
                    src = tar.extractfile(member)
                    assert src is not None
                    target.write_bytes(src.read())
                    target.chmod(0o755 if target.parent.name == "bin" else 0o644)
                    found[pattern] = target
    if proc.wait() != 0:
        raise PowerHostUnavailable(f"dpkg-deb --fsys-tarfile {deb.name} failed")
    if len(found) != len(wanted):
        raise PowerHostUnavailable(f"{deb.name} lacks {sorted(set(wanted) - set(found))}")
    return found


def _kernel(deb: Path, vmlinux: Path, modules: Path) -> None:
    found = _extract(deb, {"./boot/vmlinux-*": vmlinux.parent, "*/kernel/arch/powerpc/kvm/kvm.ko": modules,
                           "*/kernel/arch/powerpc/kvm/kvm-hv.ko": modules})
    found["./boot/vmlinux-*"].rename(vmlinux)


def _target_magic(rootfs: Path) -> bytes:
    """The guest Python's MAGIC_NUMBER, read from its importlib source (it cannot run here)."""
    source = (rootfs / PY / "importlib/_bootstrap_external.py").read_text()
    number = re.search(r"MAGIC_NUMBER = \((\d+)\)\.to_bytes\(2, 'little'\)", source)
    if number is None:
        raise PowerHostUnavailable("cannot find MAGIC_NUMBER in the guest's importlib")
    return int(number.group(1)).to_bytes(2, "little") + b"\r\n"


def _python_with_magic(magic: bytes) -> str | None:
    probe = "import importlib.util, sys; sys.stdout.write(importlib.util.MAGIC_NUMBER.hex())"
    for python in dict.fromkeys([sys.executable, shutil.which("python3.11") or ""]):
        if python and subprocess.run([python, "-c", probe], capture_output=True, text=True).stdout == magic.hex():
            return python
    return None


def compile_tree(paths: list[Path], magic: bytes = PY311_MAGIC) -> bool:
    """Byte-compile `paths` with a host Python of the same bytecode `magic`, so the guest never
    compiles under emulation. unchecked-hash: cpio mtimes are 0, which would make timestamp .pycs
    stale. Returns False (and compiles nothing) when no host Python has that magic."""
    python = _python_with_magic(magic)
    if python is None:
        return False
    subprocess.run([python, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash",
                    *map(str, paths)], capture_output=True)  # a file that does not compile stays source-only
    return True


def _prune(root: Path, keep: int) -> None:
    entries = sorted((p for p in root.iterdir() if (p / "manifest.json").is_file()), key=lambda p: p.stat().st_mtime)
    for old in entries[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


# --- the hvconf runtime for a payload -------------------------------------------------------------

def runtime_tree(dest: Path, magic: bytes = PY311_MAGIC) -> Path:
    """Copy hvconf/__init__.py and record.py, hvconf/abi/ (with data/) and hvconf/kvm/ (with cdefs/) from this
    repo into `dest`/hvconf, byte-compiled for `magic` (a Base's `.magic`); returns that folder."""
    src, pkg = REPO / "hvconf", Path(dest) / "hvconf"
    shutil.rmtree(pkg, ignore_errors=True)  # no stale modules from an earlier copy
    pkg.mkdir(parents=True)
    for part in RUNTIME:
        if (src / part).is_dir():
            shutil.copytree(src / part, pkg / part, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(src / part, pkg / part)
    compile_tree([pkg], magic)
    return pkg


# --- boot -------------------------------------------------------------------------------------------

def firmware(name: str) -> Path | None:
    return next((d / name for d in FIRMWARE_DIRS if (d / name).is_file()), None)


def unavailable_reason(mode: str = "nested") -> str | None:
    """Why `mode` cannot boot here (no QEMU, no firmware), or None."""
    if shutil.which(QEMU) is None:
        return f"{QEMU} not found: run tests/ppc/host/install-deps.sh as root"
    if firmware(MODES[mode].firmware) is None:
        return f"{MODES[mode].firmware} not found in {', '.join(map(str, FIRMWARE_DIRS))}: install qemu-system-data"
    return None


def qemu_command(base: Base, initrd: Path, mode: str, case_timeout: int) -> list[str]:
    m = MODES[mode]
    append = " ".join(filter(None, (CMDLINE, m.cmdline, f"hvconf_case_timeout={case_timeout}")))
    return [QEMU, *m.machine, *QEMU_COMMON, "-kernel", str(base.vmlinux), "-initrd", str(initrd), "-append", append]


def write_initrd(base: Base, payload_dir: Path | None, out: Path) -> None:
    """base.cpio.gz, zero padding to 4 bytes (else the kernel ignores what follows), then the
    payload as an uncompressed cpio under payload/."""
    with open(out, "wb") as dst:
        with open(base.initrd, "rb") as src:
            shutil.copyfileobj(src, dst)
        dst.write(b"\0" * cpio.pad(dst.tell()))
        if payload_dir is not None:
            cpio.write_to(dst, cpio.tree(Path(payload_dir), "payload"))


def boot(base: Base, payload_dir: Path | None, mode: str = "nested", timeout: float = 300.0,
         case_timeout: int = 60) -> Boot:
    """Boot the host in `mode` once and run every payload case (each bounded by `case_timeout` s,
    or by the number in cases/NAME/timeout). Raises PowerHostUnavailable, NoKvm or BootError
    (timeout after `timeout` s, crash, no @@DONE); a failing case is a Case, not an error."""
    if mode not in MODES:
        raise ValueError(f"mode {mode!r}: one of {', '.join(MODES)}")
    reason = unavailable_reason(mode)
    if reason is not None:
        raise PowerHostUnavailable(reason)
    with tempfile.TemporaryDirectory(prefix="hvconf-ppc-") as tmp:
        initrd = Path(tmp) / "initrd"
        write_initrd(base, payload_dir, initrd)
        t0 = time.monotonic()
        proc = subprocess.Popen(qemu_command(base, initrd, mode, case_timeout), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        timed_out = False
        try:
            raw, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            os.killpg(proc.pid, signal.SIGKILL)
            raw, _ = proc.communicate()  # what was read before the kill
        except BaseException:  # Ctrl-C, pytest timeout: never leave QEMU running
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise
        seconds = time.monotonic() - t0
    console = raw.decode(errors="replace").replace("\r", "")
    found = parse_console(console)
    if found.nokvm is not None:
        raise NoKvm(found.nokvm, console)
    if timed_out:
        where = f" in case {found.unfinished}" if found.unfinished else ""
        raise BootError(f"{mode} boot timed out after {timeout:.0f} s{where}", console)
    if found.done is None:
        where = f"case {found.unfinished} never ended" if found.unfinished else "no @@DONE"
        raise BootError(f"{mode} boot: {where}; QEMU exited {proc.returncode}", console)
    ran, expected = [c.name for c in found.cases], payload_cases(payload_dir)
    if ran != expected:  # e.g. an unaligned payload cpio, which the kernel skips without failing
        raise BootError(f"{mode} boot ran cases {ran}, the payload has {expected}", console)
    return Boot(mode, found.cases, found.host, console, proc.returncode, seconds)


def payload_cases(payload_dir: Path | None) -> list[str]:
    """The case names ./init will run, in its order (a C-locale glob of cases/*/ with a run)."""
    cases = Path(payload_dir) / "cases" if payload_dir is not None else None
    if cases is None or not cases.is_dir():
        return []
    return sorted(d.name for d in cases.iterdir() if not d.name.startswith(".") and (d / "run").exists())


# --- CLI ----------------------------------------------------------------------------------------------

EXIT = {"ok": 0, "case failed": 1, "boot error": 2, "unavailable": 3}


def _say(msg: str) -> None:
    print(f"power: {msg}", file=sys.stderr, flush=True)


def _cmd_run(args: argparse.Namespace) -> int:
    base = prepare(args.cache, _say)
    with tempfile.TemporaryDirectory(prefix="hvconf-payload-") as tmp:
        payload = args.payload
        if args.runtime and payload is not None:
            payload = Path(tmp) / "payload"
            shutil.copytree(args.payload, payload, symlinks=True)
            runtime_tree(payload / "lib", base.magic)
        result = boot(base, payload, args.mode, args.timeout, args.case_timeout)
    if args.console:
        Path(args.console).write_text(result.console)
    for key, value in result.host.items():
        print(f"host {key}: {value}")
    for case in result.cases:
        flag = " TIMEOUT" if case.timed_out else ""
        print(f"=== {case.name} rc={case.rc} ms={case.ms}{flag}\n{case.output.rstrip()}")
    print(f"{result.mode}: {len(result.cases) - len(result.failed)}/{len(result.cases)} cases ok "
          f"in {result.seconds:.1f} s (QEMU rc {result.qemu_rc})")
    return EXIT["case failed" if result.failed else "ok"]


def _cmd_check(args: argparse.Namespace) -> int:
    reason = unavailable_reason(args.mode)
    if reason is not None:
        raise PowerHostUnavailable(reason)
    if args.boot:
        return _cmd_run(argparse.Namespace(**vars(args), payload=None, runtime=False, case_timeout=60))
    print(f"{args.mode}: {QEMU} and {MODES[args.mode].firmware} present")
    return EXIT["ok"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="power.py", description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, help="cache folder (default $HVCONF_PPC_CACHE or ~/.cache/hvconf/ppc-host)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("prepare", help="build or find the cached base image")
    run = sub.add_parser("run", help="boot once and run PAYLOAD_DIR/cases/*/run")
    run.add_argument("payload", type=Path, metavar="PAYLOAD_DIR")
    run.add_argument("--runtime", action="store_true", help="add the hvconf runtime as PAYLOAD_DIR/lib/hvconf")
    run.add_argument("--case-timeout", type=int, default=60)
    run.add_argument("--console", type=Path, help="also write the whole console log here")
    check = sub.add_parser("check", help="is the host usable here? (--boot: boot it with no payload)")
    check.add_argument("--boot", action="store_true")
    check.add_argument("--console", type=Path)
    for p in (run, check):
        p.add_argument("--mode", choices=list(MODES), default="nested")
        p.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args(argv)
    try:
        if args.command == "prepare":
            base = prepare(args.cache, _say)
            print(f"{base.dir}\n  vmlinux {base.vmlinux.stat().st_size} bytes, base.cpio.gz {base.initrd.stat().st_size} bytes")
            return EXIT["ok"]
        return _cmd_run(args) if args.command == "run" else _cmd_check(args)
    except PowerHostUnavailable as err:
        print(f"power: unavailable: {err}", file=sys.stderr)
        return EXIT["unavailable"]
    except BootError as err:
        print(f"power: {err}", file=sys.stderr)
        return EXIT["boot error"]


if __name__ == "__main__":
    sys.exit(main())
