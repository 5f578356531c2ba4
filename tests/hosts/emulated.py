"""The emulated test hosts' harness: a Debian kernel with a real KVM, booted under QEMU's TCG.

One `Recipe` per architecture (ppc.py: KVM-HV in an emulated POWER9; x86.py: kvm_amd in an
emulated x86_64) says which kernel package, which modules in which order, which QEMU and how
to prove the right KVM loaded. `Host(recipe)` does the rest, alike for every architecture:
prepare() resolves and fetches the Debian packages (`apt-get download`, opened with
`dpkg-deb`), builds vmlinux/vmlinuz + base.cpio.gz (busybox, the modules, Python 3.11 + cffi,
./init) and caches it atomically under a key made of the resolved .debs and the recipe;
boot() appends a payload and runs all of its cases in ONE boot under a wall-clock bound,
parsing the @@ markers that ./init prints; runtime_tree() copies the hvconf runtime into a
payload. No root is needed (each recipe's install-deps.sh is the one root step), and hvconf/
is never edited. Tests: tests/hosts/test_emulated.py; README.md here.
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
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

from . import cpio

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
INIT = HERE / "init"
PY = "usr/lib/python3.11"
# The guest's Python 3.11 + cffi, per Debian architecture; the last three are Architecture: all.
PYTHON_PACKAGES = ("libc6", "libgcc-s1", "zlib1g", "libexpat1", "libffi8", "libssl3", "libbz2-1.0", "liblzma5",
                   "libuuid1", "libcrypt1", "libpython3.11-minimal", "python3.11-minimal", "libpython3.11-stdlib",
                   "python3-cffi-backend")
ALL_PACKAGES = ("python3-cffi", "python3-pycparser", "python3-ply")
STRIP_PY = (f"{PY}/test", f"{PY}/idlelib", f"{PY}/tkinter", f"{PY}/ensurepip", f"{PY}/lib2to3",
            f"{PY}/pydoc_data", f"{PY}/turtledemo", f"{PY}/*/test", f"{PY}/*/tests")
STRIP_SHARE = ("usr/share/doc", "usr/share/man", "usr/share/locale", "usr/share/lintian", "usr/share/info")
STRIP_LIB = ("gconv", "ossl-modules", "engines-3")  # under usr/lib/<triplet>
DEVICES = (cpio.device("dev/console", "c", 5, 1), cpio.device("dev/null", "c", 1, 3))
EMPTY_DIRS = ("proc", "sys", "dev", "tmp")
PY311_MAGIC = (3495).to_bytes(2, "little") + b"\r\n"  # every CPython 3.11 release; Debian 12's python3.11
RUNTIME = ("__init__.py", "record.py", "contract.py", "abi", "kvm")  # what a host runs (cffi only)
FIRMWARE_DIRS = (Path("/usr/share/qemu"), Path("/usr/local/share/qemu"), Path("/usr/share/seabios"))


@dataclass(frozen=True)
class Mode:
    """A way to boot a host: QEMU's machine options, the firmware it needs, extra kernel arguments."""

    machine: tuple[str, ...]
    firmware: str
    cmdline: str = ""


@dataclass(frozen=True)
class Recipe:
    """What differs between the emulated hosts; everything else is the harness's."""

    name: str  # "ppc": ~/.cache/hvconf/ppc-host, $HVCONF_PPC_CACHE, $HVCONF_PPC_REQUIRED
    title: str  # "the emulated POWER9", for messages
    arch: str  # the Debian architecture of every package
    triplet: str  # its multiarch folder, usr/lib/<triplet>
    kernel_meta: str  # the metapackage whose Depends names the current versioned kernel
    kernel_image: str  # the kernel's file in that package (fnmatch), booted by QEMU's -kernel
    modules: tuple[str, ...]  # under lib/modules/*/kernel/, in load order (their `depends=` is checked)
    kvm_module: str  # the /proc/modules name that proves a usable KVM (kvm.ko alone is not)
    host_fields: tuple[str, ...]  # /proc/cpuinfo fields ./init reports as @@HOST
    kvm_log: str  # an extended regex: the dmesg lines ./init reports as @@HOST kvm_log
    qemu: str
    qemu_common: tuple[str, ...]
    console: str  # the kernel's console device
    modes: Mapping[str, Mode]
    install: str  # the one root step, named in "unavailable" reasons
    layout: int = 1  # bump when the base changes in a way the cache key cannot see
    # kernel-package files under lib/modules/*/kernel/ kept beside the kernel (not in the base) for the guests
    # tests boot with it: Base.guest_file(name)
    guest_files: tuple[str, ...] = ()

    @property
    def default_mode(self) -> str:
        return next(iter(self.modes))

    @property
    def packages(self) -> tuple[str, ...]:
        return (f"busybox-static:{self.arch}", *(f"{p}:{self.arch}" for p in PYTHON_PACKAGES), *ALL_PACKAGES)

    @property
    def strip(self) -> tuple[str, ...]:
        return (*STRIP_SHARE, *(f"usr/lib/{self.triplet}/{d}" for d in STRIP_LIB), *STRIP_PY)

    @property
    def kernel_file(self) -> str:
        return Path(self.kernel_image).name.split("-")[0]  # "vmlinux" or "vmlinuz"

    def host_sh(self) -> str:
        """/etc/hvconf/host.sh, which ./init sources."""
        names = " ".join(Path(m).name for m in self.modules)
        return (f"HOST_FIELDS='{':'.join(self.host_fields)}'\nMODULES='{names}'\nKVM_MODULE='{self.kvm_module}'\n"
                f"KVM_LOG='{self.kvm_log}'\n")

    def key_material(self) -> str:
        """What of the recipe goes into the base: the cache key changes with it."""
        return repr((self.layout, self.arch, self.kernel_image, self.modules, self.host_sh(), self.strip,
                     EMPTY_DIRS, RUNTIME, *((self.guest_files,) if self.guest_files else ())))


class HostUnavailable(RuntimeError):
    """The emulated host cannot be prepared or booted here; str() is the one-line reason."""


class BootError(RuntimeError):
    """A boot did not complete the protocol. `console` is the whole log; str() ends with its tail."""

    def __init__(self, message: str, console: str, tail: int = 30) -> None:
        self.console = console
        lines = "\n".join(console.rstrip("\n").splitlines()[-tail:])
        super().__init__(f"{message}\n--- console tail ---\n{lines}")


class NoKvm(BootError):
    """init could not load the KVM modules (printed @@NOKVM); `reason` is its one-line reason."""

    def __init__(self, reason: str, console: str, title: str = "the emulated host") -> None:
        self.reason, self.title = reason, title
        super().__init__(f"KVM did not load in {title}: {reason}", console)


@dataclass(frozen=True)
class Base:
    """A prepared, cached host: its kernel, `initrd` (base.cpio.gz), the .deb files it came from."""

    dir: Path
    key: str
    packages: tuple[str, ...]
    magic: bytes  # the guest Python's bytecode magic
    compiled: bool  # whether its stdlib was byte-compiled on the host
    kernel_file: str = "vmlinux"

    @property
    def kernel(self) -> Path:
        return self.dir / self.kernel_file

    @property
    def vmlinux(self) -> Path:  # the name tests/ppc has always used
        return self.kernel

    @property
    def initrd(self) -> Path:
        return self.dir / "base.cpio.gz"

    def guest_file(self, name: str) -> Path:
        """A file of the recipe's `guest_files`, by its base name (pseries-rng.ko)."""
        return self.dir / "guest" / name

    @property
    def seconds(self) -> float | None:
        """How long the build took, as its manifest says."""
        return json.loads((self.dir / "manifest.json").read_text()).get("seconds")

    @classmethod
    def load(cls, path: Path) -> Base:
        m = json.loads((path / "manifest.json").read_text())
        return cls(path, m["key"], tuple(m["packages"]), bytes.fromhex(m["magic"]), m["compiled"],
                   m.get("kernel", "vmlinux"))


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
    """A completed boot: its cases in run order, the host's @@HOST facts, the console log
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

    @property
    def booted_ms(self) -> int | None:
        """Guest uptime when ./init started (@@BOOTED)."""
        found = BOOTED.search(self.console)
        return int(found.group(1)) if found else None


# --- the console protocol (printed by ./init) ---------------------------------------------------

BEGIN = re.compile(r"@@BEGIN (\S+)\n")
HOST = re.compile(r"@@HOST (\w+)=(.*)")
DONE = re.compile(r"@@DONE rc=(\d+)")
NOKVM = re.compile(r"@@NOKVM (.*)")
BOOTED = re.compile(r"@@BOOTED ms=(\d+)")


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

def run(argv: list[str], what: str, cwd: Path | None = None, timeout: float = 600) -> str:
    """`argv`'s stdout; any failure is HostUnavailable with apt's error line, not its warnings."""
    if shutil.which(argv[0]) is None:
        raise HostUnavailable(f"{argv[0]} not found ({what})")
    try:
        done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise HostUnavailable(f"{what}: timed out after {timeout:.0f} s") from None
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or ["(no message)"]
        errors = [line for line in lines if line.startswith("E:")]  # not apt's W: sandbox warnings
        raise HostUnavailable(f"{what} failed: {(errors or lines)[-1]}")
    return done.stdout


def spec(deb: str) -> str:
    """`name:arch=version` for a pool file name `name_version_arch.deb` (version %-quoted)."""
    name, version, arch = deb[: -len(".deb")].split("_")
    return f"{name}:{arch}={unquote(version)}" if arch != "all" else f"{name}={unquote(version)}"


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another pytest process preparing: wait for it
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


Builder = Callable[[Path, str, dict[str, str], Callable[[str], None]], None]


def cached(root: Path, key: str, debs: dict[str, str], build: Builder, log: Callable[[str], None]) -> Base:
    """The Base in `root`/`key`; else `build(folder, key, debs, log)` fills a fresh folder that is
    renamed into place whole, under a lock, so a killed or concurrent prepare is harmless."""
    root.mkdir(parents=True, exist_ok=True)
    final = root / key
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
            build(folder, key, debs, log)
            folder.rename(final)  # atomic: a reader sees all of the base or none of it
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        _prune(root, keep=3)
    return Base.load(final)


def _prune(root: Path, keep: int) -> None:
    entries = sorted((p for p in root.iterdir() if (p / "manifest.json").is_file()), key=lambda p: p.stat().st_mtime)
    for old in entries[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


def extract(deb: Path, wanted: dict[str, Path]) -> dict[str, Path]:
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
        raise HostUnavailable(f"dpkg-deb --fsys-tarfile {deb.name} failed")
    if len(found) != len(wanted):
        raise HostUnavailable(f"{deb.name} lacks {sorted(set(wanted) - set(found))}")
    return found


MODINFO_DEPENDS = re.compile(rb"(?:^|\0)depends=([^\0]*)\0")


def module_name(file: str) -> str:
    """The name a module has in /proc/modules and in `depends=`: kvm-amd.ko -> kvm_amd."""
    return Path(file).name.split(".ko")[0].replace("-", "_")


def check_load_order(modules: Mapping[str, bytes]) -> None:
    """Refuse an order in which a module comes before one its .modinfo `depends=` names: insmod
    resolves no dependencies, and the .deb has no modules.dep to ask modprobe."""
    loaded: set[str] = set()
    for file, data in modules.items():
        found = MODINFO_DEPENDS.search(data)
        needs = [d for d in (found.group(1).decode().split(",") if found else []) if d]
        missing = [d for d in needs if d not in loaded]
        if missing:
            raise HostUnavailable(f"{Path(file).name} needs {', '.join(missing)} loaded before it; "
                                  "fix the recipe's module order")
        loaded.add(module_name(file))


def target_magic(rootfs: Path) -> bytes:
    """The guest Python's MAGIC_NUMBER, read from its importlib source (it may not run here)."""
    source = (rootfs / PY / "importlib/_bootstrap_external.py").read_text()
    number = re.search(r"MAGIC_NUMBER = \((\d+)\)\.to_bytes\(2, 'little'\)", source)
    if number is None:
        raise HostUnavailable("cannot find MAGIC_NUMBER in the guest's importlib")
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


# --- payloads -------------------------------------------------------------------------------------

HOST_KERNEL = "payload/host-kernel"  # a payload file by this name carries the host's own kernel image


def write_initrd(base: Base, payload_dir: Path | None, out: Path) -> None:
    """base.cpio.gz, zero padding to 4 bytes (else the kernel ignores what follows), then the
    payload as an uncompressed cpio under payload/. A file `host-kernel` at the payload's top
    (empty: a placeholder) becomes the host's kernel image, for cases that boot it as a guest."""
    with open(out, "wb") as dst:
        with open(base.initrd, "rb") as src:
            shutil.copyfileobj(src, dst)
        dst.write(b"\0" * cpio.pad(dst.tell()))
        if payload_dir is not None:
            entries = (cpio.Entry(e.name, e.mode, base.kernel.read_bytes()) if e.name == HOST_KERNEL else e
                       for e in cpio.tree(Path(payload_dir), "payload"))
            cpio.write_to(dst, entries)


def payload_cases(payload_dir: Path | None) -> list[str]:
    """The case names ./init will run, in its order: a C-locale glob of cases/*/ with a run. The
    glob sorts the names with their trailing slash, so "vmcall-segment/" comes before "vmcall/"."""
    cases = Path(payload_dir) / "cases" if payload_dir is not None else None
    if cases is None or not cases.is_dir():
        return []
    names = (d.name for d in cases.iterdir() if not d.name.startswith(".") and (d / "run").exists())
    return sorted(names, key=lambda name: f"{name}/".encode())


def firmware(name: str) -> Path | None:
    return next((d / name for d in FIRMWARE_DIRS if (d / name).is_file()), None)


def run_qemu(argv: list[str], timeout: float,
             on_line: Callable[[str], None] | None = None) -> tuple[str, int, bool, float]:
    """QEMU's console (\\r stripped), exit status, whether `timeout` killed it, and its wall seconds.
    QEMU runs in a session of its own, so nothing it started outlives a kill. `on_line` sees each
    console line as it arrives (a long run's progress), from a reader thread."""
    t0 = time.monotonic()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        raw, timed_out = _collected(proc, timeout) if on_line is None else _streamed(proc, timeout, on_line)
    except BaseException:  # Ctrl-C, pytest timeout: never leave QEMU running
        _kill(proc)
        proc.wait()
        raise
    return raw.decode(errors="replace").replace("\r", ""), proc.returncode, timed_out, time.monotonic() - t0


def _collected(proc: subprocess.Popen[bytes], timeout: float) -> tuple[bytes, bool]:
    """QEMU's whole output once it exits, or what it wrote before `timeout` s ended it; timed out?"""
    try:
        return proc.communicate(timeout=timeout)[0], False
    except subprocess.TimeoutExpired:
        _kill(proc)
        return proc.communicate()[0], True  # what was read before the kill


def _streamed(proc: subprocess.Popen[bytes], timeout: float,
              on_line: Callable[[str], None]) -> tuple[bytes, bool]:
    """As _collected, handing each line to `on_line` as it arrives (a reader thread)."""
    lines: list[bytes] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            on_line(line.decode(errors="replace").rstrip("\r\n"))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        proc.wait(timeout=timeout)
        timed_out = False
    except subprocess.TimeoutExpired:
        _kill(proc)
        proc.wait()
        timed_out = True
    reader.join(5)  # the pipe ends with QEMU's session, which the kill took whole
    return b"".join(lines), timed_out


def _kill(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:  # it ended on its own meanwhile
        pass


# --- one host ---------------------------------------------------------------------------------------

class Host:
    """An emulated host made from `recipe`: prepare it, boot it, or drive it from the command line."""

    def __init__(self, recipe: Recipe) -> None:
        self.recipe = recipe

    @property
    def env(self) -> str:
        return f"HVCONF_{self.recipe.name.upper()}"

    def cache_root(self) -> Path:
        default = Path.home() / ".cache" / "hvconf" / f"{self.recipe.name}-host"
        return Path(os.environ.get(f"{self.env}_CACHE") or default)

    def required(self) -> bool:
        """Whether a missing host must fail the tests ($HVCONF_<NAME>_REQUIRED, set by CI)."""
        return bool(os.environ.get(f"{self.env}_REQUIRED"))

    # --- prepare

    def _native(self) -> bool:
        return run(["dpkg", "--print-architecture"], "dpkg").strip() == self.recipe.arch

    def resolve(self) -> dict[str, str]:
        """The .deb file name -> SHA256 that `apt-get download` would fetch now, kernel included."""
        r = self.recipe
        if not self._native() and r.arch not in run(["dpkg", "--print-foreign-architectures"], "dpkg").split():
            raise HostUnavailable(f"{r.arch} is not a dpkg architecture here: run {r.install}")
        meta = f"{r.kernel_meta}:{r.arch}"
        depends = run(["apt-cache", "depends", meta], f"apt-cache depends {meta} (apt-get update?)")
        flavour = r.kernel_meta.removeprefix("linux-image-")
        kernel = re.search(rf"Depends: (linux-image-\d\S*-{re.escape(flavour)})\b", depends)
        if kernel is None:
            raise HostUnavailable(f"{meta} names no versioned kernel: {depends.strip()!r}")
        wanted = (f"{kernel.group(1)}:{r.arch}", *r.packages)
        uris = run(["apt-get", "download", "--print-uris", *wanted], "apt-get download --print-uris (apt-get update?)")
        debs = dict(re.findall(r"^'\S+' (\S+\.deb) \d+ SHA256:([0-9a-f]+)$", uris, re.M))
        if len(debs) != len(wanted):
            raise HostUnavailable(f"apt-get download --print-uris listed {len(debs)} of {len(wanted)} packages")
        return debs

    def cache_key(self, debs: Mapping[str, str]) -> str:
        """Changes with any package version, init, cpio.py or the recipe."""
        h = hashlib.sha256(repr((self.recipe.key_material(), sorted(debs.items()))).encode())
        for source in (INIT, HERE / "cpio.py"):
            h.update(source.read_bytes())
        return h.hexdigest()[:20]

    def prepare(self, cache_dir: Path | None = None, log: Callable[[str], None] | None = None) -> Base:
        """The cached Base for the packages apt resolves now, building it (~10-60 s) when absent."""
        root = Path(cache_dir) if cache_dir is not None else self.cache_root()
        debs = self.resolve()
        return cached(root, self.cache_key(debs), debs, self._build, log or (lambda _msg: None))

    def _build(self, out: Path, key: str, debs: dict[str, str], say: Callable[[str], None]) -> None:
        r, t0 = self.recipe, time.monotonic()
        work, rootfs = out / "work", out / "work" / "root"
        (work / "debs").mkdir(parents=True)
        (work / "debs").chmod(0o755)  # lets apt's _apt sandbox user write there
        say(f"apt-get download: {len(debs)} packages")
        run(["apt-get", "download", *map(spec, debs)], "apt-get download", cwd=work / "debs", timeout=900)
        files = {name: work / "debs" / name for name in debs}
        missing = [n for n, p in files.items() if not p.is_file()]
        if missing:
            raise HostUnavailable(f"apt-get download did not produce {missing[0]}")
        for d in ("bin", "lib/modules", "etc/hvconf", *EMPTY_DIRS):
            (rootfs / d).mkdir(parents=True, exist_ok=True)
        for name, path in files.items():
            if name.startswith("linux-image-"):
                self._kernel(path, out / r.kernel_file, rootfs / "lib" / "modules")
            elif name.startswith("busybox-static_"):
                extract(path, {"./bin/busybox": rootfs / "bin" / "busybox"})
            else:
                run(["dpkg-deb", "-x", str(path), str(rootfs)], f"dpkg-deb -x {name}")
        (rootfs / "usr/bin/python3").symlink_to("python3.11")
        for pattern in r.strip:
            for path in rootfs.glob(pattern):
                shutil.rmtree(path)
        magic = target_magic(rootfs)
        say("byte-compiling the guest's Python")
        compiled = compile_tree([rootfs / PY, rootfs / "usr/lib/python3/dist-packages"], magic)
        shutil.copyfile(INIT, rootfs / "init")
        (rootfs / "init").chmod(0o755)
        (rootfs / "etc/hvconf/host.sh").write_text(r.host_sh())
        say("writing base.cpio.gz")
        cpio.write(out / "base.cpio.gz", [*cpio.tree(rootfs), *DEVICES], compress=True)
        shutil.rmtree(work)
        manifest = {"key": key, "packages": sorted(debs), "magic": magic.hex(), "compiled": compiled,
                    "kernel": r.kernel_file, "seconds": round(time.monotonic() - t0, 1),
                    "bytes": (out / "base.cpio.gz").stat().st_size}
        (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")

    def _kernel(self, deb: Path, kernel: Path, modules: Path) -> None:
        guest = kernel.parent / "guest"
        guest.mkdir(exist_ok=True)
        wanted = {f"./boot/{self.recipe.kernel_image}": kernel.parent,
                  **{f"*/kernel/{m}": modules for m in self.recipe.modules},
                  **{f"*/kernel/{m}": guest for m in self.recipe.guest_files}}
        found = extract(deb, wanted)
        found[f"./boot/{self.recipe.kernel_image}"].rename(kernel)
        check_load_order({m: (modules / Path(m).name).read_bytes() for m in self.recipe.modules})

    # --- boot

    def unavailable_reason(self, mode: str | None = None) -> str | None:
        """Why `mode` cannot boot here (no QEMU, no firmware), or None."""
        r = self.recipe
        if shutil.which(r.qemu) is None:
            return f"{r.qemu} not found: run {r.install} as root"
        fw = r.modes[mode or r.default_mode].firmware
        if firmware(fw) is None:
            return f"{fw} not found in {', '.join(map(str, FIRMWARE_DIRS))}: run {r.install} as root"
        return None

    def qemu_command(self, base: Base, initrd: Path, mode: str, case_timeout: int) -> list[str]:
        r, m = self.recipe, self.recipe.modes[mode]
        append = " ".join(filter(None, (f"console={r.console} rdinit=/init quiet panic=-1", m.cmdline,
                                        f"hvconf_case_timeout={case_timeout}")))
        return [r.qemu, *m.machine, *r.qemu_common, "-kernel", str(base.kernel), "-initrd", str(initrd),
                "-append", append]

    def boot(self, base: Base, payload_dir: Path | None, mode: str | None = None, timeout: float = 300.0,
             case_timeout: int = 60, on_line: Callable[[str], None] | None = None) -> Boot:
        """Boot the host in `mode` once and run every payload case (each bounded by `case_timeout` s,
        or by the number in cases/NAME/timeout). Raises HostUnavailable, NoKvm or BootError
        (timeout after `timeout` s, crash, no @@DONE); a failing case is a Case, not an error.
        `on_line` sees each console line as it comes (bench/race prints its progress so)."""
        mode = mode or self.recipe.default_mode
        if mode not in self.recipe.modes:
            raise ValueError(f"mode {mode!r}: one of {', '.join(self.recipe.modes)}")
        reason = self.unavailable_reason(mode)
        if reason is not None:
            raise HostUnavailable(reason)
        with tempfile.TemporaryDirectory(prefix=f"hvconf-{self.recipe.name}-") as tmp:
            initrd = Path(tmp) / "initrd"
            write_initrd(base, payload_dir, initrd)
            console, rc, timed_out, seconds = run_qemu(self.qemu_command(base, initrd, mode, case_timeout), timeout,
                                                        on_line)
        found = parse_console(console)
        if found.nokvm is not None:
            raise NoKvm(found.nokvm, console, self.recipe.title)
        if timed_out:
            where = f" in case {found.unfinished}" if found.unfinished else ""
            raise BootError(f"{mode} boot timed out after {timeout:.0f} s{where}", console)
        if found.done is None:
            where = f"case {found.unfinished} never ended" if found.unfinished else "no @@DONE"
            raise BootError(f"{mode} boot: {where}; QEMU exited {rc}", console)
        ran, expected = [c.name for c in found.cases], payload_cases(payload_dir)
        if ran != expected:  # e.g. an unaligned payload cpio, which the kernel skips without failing
            raise BootError(f"{mode} boot ran cases {ran}, the payload has {expected}", console)
        return Boot(mode, found.cases, found.host, console, rc, seconds)

    # --- CLI

    def main(self, argv: list[str] | None = None, prog: str | None = None) -> int:
        """`prepare | run PAYLOAD_DIR | check`; exit status as EXIT says."""
        r = self.recipe
        parser = argparse.ArgumentParser(prog=prog, description=f"{r.title[:1].upper()}{r.title[1:]} test host (tests/hosts).")
        parser.add_argument("--cache", type=Path,
                            help=f"cache folder (default ${self.env}_CACHE or ~/.cache/hvconf/{r.name}-host)")
        sub = parser.add_subparsers(dest="command", required=True)
        sub.add_parser("prepare", help="build or find the cached base image")
        run_p = sub.add_parser("run", help="boot once and run PAYLOAD_DIR/cases/*/run")
        run_p.add_argument("payload", type=Path, metavar="PAYLOAD_DIR")
        run_p.add_argument("--runtime", action="store_true", help="add the hvconf runtime as PAYLOAD_DIR/lib/hvconf")
        run_p.add_argument("--case-timeout", type=int, default=60)
        run_p.add_argument("--console", type=Path, help="also write the whole console log here")
        check = sub.add_parser("check", help="is the host usable here? (--boot: boot it with no payload)")
        check.add_argument("--boot", action="store_true")
        check.add_argument("--console", type=Path)
        for p in (run_p, check):
            p.add_argument("--mode", choices=list(r.modes), default=r.default_mode)
            p.add_argument("--timeout", type=float, default=300.0)
        args = parser.parse_args(argv)
        say = self._say
        try:
            if args.command == "prepare":
                t0 = time.monotonic()
                base = self.prepare(args.cache, say)
                print(f"{base.dir}\n  {base.kernel_file} {base.kernel.stat().st_size} bytes, base.cpio.gz "
                      f"{base.initrd.stat().st_size} bytes, ready in {time.monotonic() - t0:.1f} s")
                return EXIT["ok"]
            return self._cmd_run(args) if args.command == "run" else self._cmd_check(args)
        except HostUnavailable as err:
            print(f"{r.name}: unavailable: {err}", file=sys.stderr)
            return EXIT["unavailable"]
        except BootError as err:
            print(f"{r.name}: {err}", file=sys.stderr)
            return EXIT["boot error"]

    def _say(self, msg: str) -> None:
        print(f"{self.recipe.name}: {msg}", file=sys.stderr, flush=True)

    def _cmd_run(self, args: argparse.Namespace) -> int:
        base = self.prepare(args.cache, self._say)
        with tempfile.TemporaryDirectory(prefix="hvconf-payload-") as tmp:
            payload = args.payload
            if args.runtime and payload is not None:
                payload = Path(tmp) / "payload"
                shutil.copytree(args.payload, payload, symlinks=True)
                runtime_tree(payload / "lib", base.magic)
            result = self.boot(base, payload, args.mode, args.timeout, args.case_timeout)
        if args.console:
            Path(args.console).write_text(result.console)
        for key, value in result.host.items():
            print(f"host {key}: {value}")
        for case in result.cases:
            flag = " TIMEOUT" if case.timed_out else ""
            print(f"=== {case.name} rc={case.rc} ms={case.ms}{flag}\n{case.output.rstrip()}")
        print(f"{result.mode}: {len(result.cases) - len(result.failed)}/{len(result.cases)} cases ok "
              f"in {result.seconds:.1f} s, /init at {result.booted_ms} ms (QEMU rc {result.qemu_rc})")
        return EXIT["case failed" if result.failed else "ok"]

    def _cmd_check(self, args: argparse.Namespace) -> int:
        reason = self.unavailable_reason(args.mode)
        if reason is not None:
            raise HostUnavailable(reason)
        if args.boot:
            return self._cmd_run(argparse.Namespace(**vars(args), payload=None, runtime=False, case_timeout=60))
        print(f"{args.mode}: {self.recipe.qemu} and {self.recipe.modes[args.mode].firmware} present")
        return EXIT["ok"]


EXIT = {"ok": 0, "case failed": 1, "boot error": 2, "unavailable": 3}
