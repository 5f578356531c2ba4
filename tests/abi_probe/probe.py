"""Compile-time extraction of C constant expressions from the installed kernel uapi headers.

Each expression becomes an initialised global in a generated C file that is
compiled with `<cc> -S` (nothing runs, so cross compilers work); the values are
read back from the assembly. Expressions that do not compile for that arch
(macro absent, struct incomplete) are reported as absent, found from the
compiler's per-line diagnostics. Used by tests/test_abi_headers.py and by the
recipe in hvconf/abi/GENERATING.md; it never edits the data tables.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

HEADERS = ("linux/errno.h", "linux/kvm.h", "linux/kvm_para.h", "asm/kvm_para.h", "asm/epapr_hcalls.h", "asm/virtio-ccw.h")


@dataclass(frozen=True)
class Toolchain:
    arch: str  # layout column: x86_64 / powerpc64 / s390x
    cc: str
    sysroot_include: str  # where the uapi headers live (for "does this header exist")
    flags: tuple[str, ...] = ()
    big_endian: bool = False  # only matters where a u64 is emitted as two .long words


TOOLCHAINS: dict[str, Toolchain] = {
    "x86_64": Toolchain("x86_64", "gcc", "/usr/include/x86_64-linux-gnu"),
    "powerpc64": Toolchain("powerpc64", "powerpc64le-linux-gnu-gcc", "/usr/powerpc64le-linux-gnu/include"),
    "s390x": Toolchain("s390x", "s390x-linux-gnu-gcc", "/usr/s390x-linux-gnu/include"),
    # 32-bit big-endian powerpc (an e500v2-class userspace): used only to show that
    # ppc-e500 can share the powerpc64 column (fixed-width __u32/__u64 fields).
    "powerpc32": Toolchain(
        "powerpc32", "powerpc64le-linux-gnu-gcc", "/usr/powerpc64le-linux-gnu/include",
        ("-m32", "-mbig-endian"), big_endian=True,
    ),
}

_LINE = re.compile(r"probe\.c:(\d+):")
_VALUE64 = re.compile(r"^v(\d+):\s*\n\s*\.(?:quad|8byte|xword)\s+(-?\w+)", re.M)
_ZERO = re.compile(r"^v(\d+):\s*\n\s*\.(?:zero|space)\s+8\s*$", re.M)  # a 0 initialiser
_VALUE32X2 = re.compile(r"^v(\d+):\s*\n\s*\.long\s+(-?\w+)\s*\n\s*\.long\s+(-?\w+)", re.M)


def _values(tc: Toolchain, asm: str) -> dict[int, int]:
    values = {int(m.group(1)): int(m.group(2), 0) for m in _VALUE64.finditer(asm)}
    values.update((int(m.group(1)), 0) for m in _ZERO.finditer(asm))
    for m in _VALUE32X2.finditer(asm):
        first, second = (int(g, 0) & 0xFFFF_FFFF for g in m.group(2, 3))
        hi, lo = (first, second) if tc.big_endian else (second, first)
        values[int(m.group(1))] = hi << 32 | lo
    return values


PACKAGES = {
    "gcc": "gcc linux-libc-dev",
    "powerpc64le-linux-gnu-gcc": "gcc-powerpc64le-linux-gnu linux-libc-dev-ppc64el-cross",
    "s390x-linux-gnu-gcc": "gcc-s390x-linux-gnu linux-libc-dev-s390x-cross",
}


def missing_reason(tc: Toolchain) -> str | None:
    """Why this toolchain cannot be used here, or None when it can."""
    packages = PACKAGES.get(tc.cc, tc.cc)
    if shutil.which(tc.cc) is None:
        return f"{tc.cc} not installed (Debian packages: {packages})"
    if not Path(tc.sysroot_include, "asm", "kvm.h").exists():
        return f"{tc.sysroot_include}/asm/kvm.h missing (Debian packages: {packages})"
    with tempfile.TemporaryDirectory(prefix="hvconf-abi-") as tmp:
        rc, _asm, err = _compile(tc, "#include <linux/kvm.h>\nint probe_ok;\n", Path(tmp))
    if rc != 0:
        first = err.strip().splitlines()[-1] if err.strip() else f"exit status {rc}"
        return f"{tc.cc} {' '.join(tc.flags)} cannot compile <linux/kvm.h>: {first}"
    return None


def _includes(tc: Toolchain) -> list[str]:
    # asm/* headers are per arch (only some arches have epapr_hcalls.h, virtio-ccw.h);
    # the native compiler finds linux/* in /usr/include, outside its asm directory.
    found = []
    for header in HEADERS:
        roots = [Path(tc.sysroot_include)]
        if header.startswith("linux/"):
            roots.append(Path("/usr/include"))
        if any((root / header).exists() for root in roots):
            found.append(header)
    return found


def _source(tc: Toolchain, exprs: list[str]) -> tuple[str, int]:
    head = [f"#include <{h}>" for h in _includes(tc)] + ["#include <stddef.h>"]
    body = [f"const unsigned long long v{i} = (unsigned long long)({e});" for i, e in enumerate(exprs)]
    return "\n".join(head + body) + "\n", len(head)


def _compile(tc: Toolchain, src: str, workdir: Path) -> tuple[int, str, str]:
    path = workdir / "probe.c"
    path.write_text(src)
    proc = subprocess.run(
        [tc.cc, *tc.flags, "-S", "-fmax-errors=0", "-w", "-o", "-", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    return proc.returncode, proc.stdout, proc.stderr


def evaluate(tc: Toolchain, exprs: list[str]) -> dict[str, int | None]:
    """Value of every expression on `tc`'s arch; None where it does not compile."""
    result: dict[str, int | None] = {e: None for e in exprs}
    todo = list(dict.fromkeys(exprs))
    with tempfile.TemporaryDirectory(prefix="hvconf-abi-") as tmp:
        for _attempt in range(3):
            src, nhead = _source(tc, todo)
            rc, asm, err = _compile(tc, src, Path(tmp))
            if rc == 0:
                values = _values(tc, asm)
                if len(values) != len(todo):
                    raise RuntimeError(f"{tc.cc}: parsed {len(values)} of {len(todo)} values")
                for i, expr in enumerate(todo):
                    result[expr] = values[i] & 0xFFFF_FFFF_FFFF_FFFF
                return result
            bad = {int(n) - nhead - 1 for n in _LINE.findall(err)}
            bad = {i for i in bad if 0 <= i < len(todo)}
            if not bad:
                raise RuntimeError(f"{tc.cc} failed without a line in probe.c:\n{err[:2000]}")
            todo = [e for i, e in enumerate(todo) if i not in bad]
    raise RuntimeError(f"{tc.cc}: could not converge on a compilable probe")


def main(argv: list[str]) -> int:
    """`python tests/abi_probe/probe.py COLUMN EXPR...`: print each value (or "absent")."""
    if len(argv) < 2 or argv[0] not in TOOLCHAINS:
        print(f"usage: probe.py {{{','.join(TOOLCHAINS)}}} EXPR...", file=sys.stderr)
        return 2
    tc = TOOLCHAINS[argv[0]]
    reason = missing_reason(tc)
    if reason:
        print(reason, file=sys.stderr)
        return 1
    for expr, value in evaluate(tc, argv[1:]).items():
        print(f"{expr} = {'absent' if value is None else hex(value)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
