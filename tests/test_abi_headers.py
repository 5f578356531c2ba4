"""hvconf.abi tables against the kernel's own uapi headers, compiled for each arch.

Every ioctl request, KVM_CAP_*, KVM_EXIT_*, KVM_HC_*, KVM_FEATURE_*/KVM_HINTS_*,
ePAPR constant and struct sizeof/offsetof in hvconf/abi/data is emitted as a C
global, compiled with `<cc> -S` (x86_64: gcc, powerpc64: powerpc64le-linux-gnu-gcc,
s390x: s390x-linux-gnu-gcc) and read back from the assembly
(tests/abi_probe/probe.py). Entries the tables say are absent on an arch, or newer
than the installed 6.1 headers (`since`), must NOT compile there. PAPR hcall numbers
and DIAG 0x500 subcodes 0-2, 4 live in kernel-internal or QEMU headers and are not
checked here. A missing cross compiler skips that arch with the reason.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

import hvconf.abi as abi
from hvconf.abi import hcalls, tables

sys.path.insert(0, str(Path(__file__).parent / "abi_probe"))
import probe  # noqa: E402

# The hvconf arch whose request numbers each 64-bit layout column must reproduce.
ARCH_OF_COLUMN = {"x86_64": "x86_64", "powerpc64": "ppc64le", "s390x": "s390x"}
# Values compared per column with the current tables (plus ~90-175 entries per column
# checked to be absent): x86_64 847, powerpc64 854, s390x 606. Fewer means the
# tables or the probe silently lost entries.
MIN_COMPARED = {"x86_64": 800, "powerpc64": 780, "s390x": 560}


@dataclass(frozen=True)
class Expect:
    what: str  # table entry, for the failure message
    expr: str  # C expression
    value: int | None  # None: must not compile on this arch


Compiled = Callable[[str, list[str]], dict[str, int | None]]


@pytest.fixture(scope="module")
def compiled() -> Compiled:
    """Compile each toolchain's probe once per module (the expensive part: ~0.3 s each)."""
    cache: dict[tuple[str, tuple[str, ...]], dict[str, int | None]] = {}

    def run(column: str, exprs: list[str]) -> dict[str, int | None]:
        tc = probe.TOOLCHAINS[column]
        reason = probe.missing_reason(tc)
        if reason:
            pytest.skip(reason)
        key = (column, tuple(exprs))
        if key not in cache:
            cache[key] = probe.evaluate(tc, exprs)
        return cache[key]

    return run


def _u64(value: int) -> int:
    return value & 0xFFFF_FFFF_FFFF_FFFF


def ioctl_expects(column: str) -> list[Expect]:
    arch = ARCH_OF_COLUMN[column]
    out = []
    for name, info in tables.ioctls().items():
        value = abi.request(name, arch) if arch in info.arches else None
        out.append(Expect(f"ioctl {name}", name, value))
    return out


def _numbered(kind: str, rows: dict, present_on: Callable) -> list[Expect]:
    out = []
    for name, row in rows.items():
        if row.since:  # newer than the 6.1 headers: must not be there
            out.append(Expect(f"{kind} {name} (since {row.since})", name, None))
        elif present_on(row):
            out.append(Expect(f"{kind} {name}", name, row.number))
    return out


def cap_exit_expects(column: str) -> list[Expect]:
    arch = ARCH_OF_COLUMN[column]
    # A cap must be defined on the header arches it lists; elsewhere it usually is too
    # (linux/kvm.h is shared) and is then compared by the "defined anywhere" test below.
    out = _numbered("cap", dict(tables.caps()), lambda c: arch in c.arches)
    out += _numbered("exit", dict(tables.exits()), lambda e: True)
    return out


def para_expects(column: str) -> list[Expect]:
    out = [Expect(f"hypercall {n}", n, h.number) for n, h in hcalls.x86_hypercalls().items()]
    out += [Expect(f"return code {n}", n, v) for n, v in hcalls.x86_data()["return_codes"].items()]
    if column == "x86_64":
        out += [Expect(f"feature {n}", n, f.bit) for n, f in hcalls.kvm_features().items()]
        cpuid = hcalls.x86_data()["cpuid"]
        out += [Expect(n, n, cpuid[n]) for n in ("KVM_CPUID_SIGNATURE", "KVM_CPUID_FEATURES")]
    if column == "powerpc64":
        data = hcalls.epapr_data()
        for table in ("vendors", "ev", "status", "kvm_para", "sw_tlb"):
            out += [Expect(f"epapr {n}", n, v) for n, v in data[table].items()]
        out.append(Expect("EV_BYTE_CHANNEL_MAX_BYTES", "EV_BYTE_CHANNEL_MAX_BYTES",
                          data["byte_channel_max_bytes"]))
        out.append(Expect("KVM_SC_MAGIC_R0", "KVM_SC_MAGIC_R0", data["kvm_sc_magic_r0"]))
        out.append(Expect("KVM_PPC_PVINFO_FLAGS_EV_IDLE", "KVM_PPC_PVINFO_FLAGS_EV_IDLE",
                          data["pvinfo"]["flags_ev_idle"]))
        for name, token in hcalls.epapr_tokens().items():
            macro = "EV_HCALL_TOKEN" if token.vendor == 1 else "KVM_HCALL_TOKEN"
            out.append(Expect(f"token {name}", f"{macro}({name})", token.token))
    if column == "s390x":
        for name, row in hcalls.s390_diag500().items():
            if name == "KVM_S390_VIRTIO_CCW_NOTIFY":  # the only uapi one
                out.append(Expect(f"diag500 {name}", name, row["number"]))
        out += [Expect(n, n, v) for n, v in tables.raw("s390")["reset_flags"].items()]
        out += [Expect(n, n, v) for n, v in tables.raw("s390")["mp_state"].items()]
    return out


def struct_expects(column: str) -> list[Expect]:
    out = []
    for struct, row in tables.structs().items():
        size = row["size"].get(column)
        out.append(Expect(f"sizeof {struct}", f"sizeof(struct {struct})", size))
        if size is None:
            continue
        present = tables.struct_fields(struct, column)
        for field in row.get("fields", ()):
            name = field["name"]
            info = present.get(name)
            out.append(Expect(f"offsetof {struct}.{name}", f"offsetof(struct {struct}, {name})",
                              info.offset if info else None))
            if info and info.size is not None:
                out.append(Expect(f"sizeof {struct}.{name}",
                                  f"sizeof(((struct {struct} *)0)->{name})", info.size))
    return out


def all_expects(column: str) -> list[Expect]:
    return ioctl_expects(column) + cap_exit_expects(column) + para_expects(column) + struct_expects(column)


def _mismatches(expects: list[Expect], got: dict[str, int | None]) -> list[str]:
    bad = []
    for e in expects:
        value = got[e.expr]
        want = None if e.value is None else _u64(e.value)
        if value != want:
            show = lambda v: "absent" if v is None else hex(v)  # noqa: E731
            bad.append(f"{e.what}: table {show(want)}, header {show(value)}")
    return bad


@pytest.mark.parametrize("column", ["x86_64", "powerpc64", "s390x"])
def test_tables_equal_compiled_headers(column: str, compiled: Compiled):
    expects = all_expects(column)
    got = compiled(column, sorted({e.expr for e in expects}))
    bad = _mismatches(expects, got)
    assert not bad, f"{len(bad)} of {len(expects)} differ on {column}:\n" + "\n".join(bad[:40])
    compared = sum(e.value is not None for e in expects)
    assert compared >= MIN_COMPARED[column], f"only {compared} values compared on {column}"


def test_every_current_cap_and_exit_is_defined_somewhere(compiled: Compiled):
    names = [n for n, c in tables.caps().items() if not c.since]
    names += [n for n, e in tables.exits().items() if not e.since]
    seen: dict[str, int | None] = {n: None for n in names}
    # Uses whichever compilers are installed; the shared linux/kvm.h defines nearly all.
    columns = [c for c in ARCH_OF_COLUMN if probe.missing_reason(probe.TOOLCHAINS[c]) is None]
    if not columns:
        pytest.skip("no compiler for any layout column")
    for column in columns:
        got = compiled(column, sorted(names))
        for name in names:
            if got[name] is not None:
                seen[name] = got[name]
    numbers = {**{n: c.number for n, c in tables.caps().items()},
               **{n: e.number for n, e in tables.exits().items()}}
    assert [n for n in names if seen[n] is None] == []
    assert {n: v for n, v in seen.items() if v != numbers[n]} == {}
    assert len(names) > 150


def test_e500_shares_the_powerpc64_layout(compiled: Compiled):
    # A 32-bit big-endian powerpc build (e500v2-class userspace) gives every struct and
    # every ioctl listed for ppc-e500 the same value as the powerpc64 column.
    expects = [Expect(e.what, e.expr, e.value) for e in struct_expects("powerpc64")]
    for name, info in tables.ioctls().items():
        if "ppc-e500" in info.arches:
            expects.append(Expect(f"ioctl {name}", name, abi.request(name, "ppc-e500")))
    got = compiled("powerpc32", sorted({e.expr for e in expects}))
    bad = _mismatches(expects, got)
    assert not bad, "\n".join(bad[:40])
    # ...while the word-sized ioctls it leaves out really do differ there.
    left_out = sorted(
        n for n, i in tables.ioctls().items() if "ppc64" in i.arches and "ppc-e500" not in i.arches
    )
    assert left_out == ["KVM_S390_STORE_STATUS", "KVM_S390_VCPU_FAULT"]
    got = compiled("powerpc32", left_out)
    assert all(got[n] != abi.request(n, "ppc64") for n in left_out)
    assert len(expects) > 650  # 738 with the current tables
