"""Hostile definitions: injection payloads, hostile paths, absurd sizes, depth.

Extends tests/test_launcher.py (whose 11 payloads and 5 vectors it reuses):
NUL bytes, device-tree syntax and format-string characters must reach
plan.json, the DTS/DTB and launch.py as inert data (the DTS is compiled back
with dtc); includes of devices, FIFOs, /proc files, folders, cycles, long
chains and files outside the repository are diagnostics; absurd sizes are
compile-time diagnostics, fast; guest sources cannot hang or bloat the build.
What a definition may read, class by class, is tests/test_paths.py.
"""

from __future__ import annotations

import json
import os
import py_compile
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

import test_launcher as lt  # the payload vectors and helpers of tests/test_launcher.py
from hvconf import compiler
from hvconf.emit.output import write_tree
from hvconf.syntax.loader import MAX_FILE_BYTES, Loader, repo_root

REPO = Path(__file__).resolve().parent.parent
TIMEOUT = 60

# Beyond test_launcher.PAYLOADS: what reaches a DTS, a format string or a C string.
PAYLOADS = {
    "nul-escape": "a\0b",
    "nul-only": "\0",
    "dts-comment": "a*/b/*c//d",
    "dts-string-end": 'x";\n\t/delete-node/ &{/};\n\tbootargs = "y',
    "dts-node": "}; / { evil = <1>; };",
    "dts-label-ref": "&{/} <&x> $x",
    "printf": "%s%d%n%x%%",
    "str-format": "{0}{}{x}{__class__.__mro__}{{",
    "percent-dict": "%(x)s%%(y)r",
    "shell": "$(touch SENTINEL)`touch SENTINEL`${IFS}",
    "bidi-bom": "\u202e\ufeffabc\u2028",
    "escape-seq": "\x1b[2J\x1b]0;t\x07",
}
PAYLOADS["all-but-nul"] = "".join(v for k, v in PAYLOADS.items() if not k.startswith("nul"))
PAYLOAD_COUNT = len(lt.PAYLOADS) + len(PAYLOADS)

# Where a string may be refused, and with which code: device-tree strings cannot hold NUL,
# RTAS names become property names ([A-Za-z0-9,._+?#-] only); paths cannot hold NUL;
# device-tree strings are ASCII.
REFUSALS = {"cmdline": {"dt-unrepresentable"}, "rtas": {"dt-unrepresentable", "invalid-value"}}


def _fs_safe(vector: str, payload: str) -> bool:
    return not (("\0" in payload or "/" in payload) and vector in ("guest-path", "include-path"))


def _dtc_bootargs(dts: bytes, tmp: Path) -> bytes:
    """/chosen/bootargs of the DTS after dtc compiles it: proves the DTS text is escaped right."""
    import libfdt

    (tmp / "v.dts").write_bytes(dts)
    subprocess.run(["dtc", "-q", "-I", "dts", "-O", "dtb", "-o", str(tmp / "v.dtb"), str(tmp / "v.dts")],
                   check=True, timeout=TIMEOUT, capture_output=True)
    fdt = libfdt.Fdt((tmp / "v.dtb").read_bytes())
    return bytes(fdt.getprop(fdt.path_offset("/chosen"), "bootargs"))


# File names cannot hold NUL or '/': those pairs are covered by test_nul_in_paths_is_a_diagnostic.
@pytest.mark.parametrize(("vector", "payload"), [(v, p) for v in sorted(lt.VECTORS) for p in sorted(PAYLOADS)
                                                 if _fs_safe(v, PAYLOADS[p])])
def test_more_hostile_strings_stay_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, vector: str,
                                        payload: str) -> None:
    monkeypatch.chdir(tmp_path)
    result, where = lt.build_hostile(tmp_path, vector, PAYLOADS[payload])
    if result.report.has_errors:
        codes = {d.code for d in result.report.errors}
        assert codes <= REFUSALS.get(vector, set()), [f"{d.code}: {d.message}" for d in result.report.errors]
        assert result.built == [] and all(d.span is not None for d in result.report.errors)
        # device-tree strings are NUL-free ASCII (hvconf/emit/fdt.py)
        assert vector == "rtas" or "\0" in PAYLOADS[payload] or not PAYLOADS[payload].isascii()
        return
    (built,) = result.built
    lt.assert_payload_intact(built, where, PAYLOADS[payload])
    if where == "dtb":
        assert _dtc_bootargs(built.files["v.dts"], tmp_path) == PAYLOADS[payload].encode() + b"\0"
    namespace: dict[str, object] = {"__name__": "not_main"}
    exec(compile(built.files["launch.py"].decode(), "launch.py", "exec"), namespace)
    assert namespace["PLAN"] == json.loads(built.files["plan.json"]) == built.plan
    assert not (tmp_path / "SENTINEL").exists()


@pytest.mark.parametrize("payload", ["all-but-nul", "nul-escape"])
def test_hostile_kernel_string_dry_runs(tmp_path: Path, payload: str) -> None:
    result, where = lt.build_hostile(tmp_path, "kernel", PAYLOADS[payload])
    assert not result.report.has_errors
    write_tree(tmp_path / "out", {b.vm.name: b.files for b in result.built})
    launcher = tmp_path / "out" / "v" / "launch.py"
    py_compile.compile(str(launcher), cfile=str(tmp_path / "launch.pyc"), doraise=True)
    done = lt.run_launcher(launcher, "--dry-run", cwd=tmp_path)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert done.stdout == lt.dry_run_text(json.loads((tmp_path / "out" / "v" / "plan.json").read_text()))
    assert not (tmp_path / "SENTINEL").exists()


def test_the_payload_count() -> None:
    assert PAYLOAD_COUNT == 24 and len(lt.VECTORS) == 5  # docs/robustness.md states both


def test_nul_in_paths_is_a_diagnostic(tmp_path: Path) -> None:
    path = tmp_path / "n.hv"
    path.write_text('include "a\\0b.hv"\nvm v {\n    arch x86_64\n    memory 2M\n    guest "g\\x00.S"\n}\n')
    codes = [(d.code, d.span.line) for d in compiler.build([path]).report.errors]
    assert codes == [("include-not-found", 1), ("guest-not-found", 5)]


# --- paths ------------------------------------------------------------------------------------

def _check(tmp_path: Path, text: str, name: str = "main.hv") -> list[tuple[str, int]]:
    path = tmp_path / name
    path.write_text(text)
    start = time.monotonic()
    report = compiler.check([path]).report
    assert time.monotonic() - start < 10
    return [(d.code, d.span.line) for d in report if d.span is not None]


def test_includes_of_devices_proc_fifos_and_folders_are_diagnostics(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo.hv")
    (tmp_path / "dir.hv").mkdir()
    found = _check(tmp_path, 'include "/dev/zero"\ninclude "/dev/null"\ninclude "/proc/self/pagemap"\n'
                             'include "fifo.hv"\ninclude "dir.hv"\ninclude "nope.hv"\n')
    # Outside the project (the file's folder) first; inside it, by what the stat says.
    assert found == [("path-outside-project", 1), ("path-outside-project", 2), ("path-outside-project", 3),
                     ("include-not-a-file", 4), ("include-not-a-file", 5), ("include-not-found", 6)]


def test_a_fifo_swapped_in_after_the_stat_does_not_block(tmp_path: Path) -> None:
    from hvconf.syntax.loader import read_regular

    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(OSError):  # opened O_NONBLOCK, refused by fstat
        read_regular(tmp_path / "fifo", 100)


@pytest.mark.parametrize("root", ["/dev/zero", "fifo"])
def test_cli_on_a_device_or_fifo_root_is_status_2(tmp_path: Path, root: str) -> None:
    os.mkfifo(tmp_path / "fifo")
    done = subprocess.run([sys.executable, "-m", "hvconf", "check", root], cwd=tmp_path, capture_output=True,
                          text=True, timeout=TIMEOUT, stdin=subprocess.DEVNULL)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr


def test_include_outside_the_repository_is_refused(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    (repo / "vms").mkdir()
    (repo / "common.hv").write_text("format 1\n")
    (tmp_path / "outside.hv").write_text("format 1\n")
    os.symlink(tmp_path / "outside.hv", repo / "vms" / "link.hv")
    found = _check(repo / "vms", 'include "../common.hv"\ninclude "../../outside.hv"\ninclude "link.hv"\n')
    assert found == [("path-outside-project", 2), ("path-outside-project", 3)]
    assert repo_root(repo / "vms" / "main.hv") == repo
    assert repo_root(tmp_path / "outside.hv") == tmp_path  # no .git above: the file's own folder


def test_include_cycle_through_three_files(tmp_path: Path) -> None:
    for a, b in (("a", "b"), ("b", "c"), ("c", "a")):
        (tmp_path / f"{a}.hv").write_text(f'include "{b}.hv"\n')
    assert _check(tmp_path, 'include "a.hv"\n') == [("include-cycle", 1)]


def test_a_chain_of_2000_includes_is_not_a_recursion_error(tmp_path: Path) -> None:
    for i in range(2000):
        (tmp_path / f"f{i}.hv").write_text(f'include "f{i + 1}.hv"\n' if i < 1999 else "vm last { }\n")
    path = tmp_path / "f0.hv"
    result = compiler.check([path])
    assert result.report.diagnostics == [] and len(result.checked[0].program.files) == 2000


def test_vm_names_longer_than_a_file_name_can_hold_are_diagnostics(tmp_path: Path) -> None:
    ok, long = "v" * 128, "v" * 129
    found = _check(tmp_path, f"vm {ok} {{\n    arch x86_64\n    memory 2M\n}}\nvm {long} {{\n    arch x86_64\n"
                             "    memory 2M\n}\n")
    assert found == [("invalid-value", 5)]
    built = compiler.build([tmp_path / "main.hv"])
    assert built.built == []
    (tmp_path / "one.hv").write_text(f"vm {ok} {{\n    arch x86_64\n    memory 2M\n}}\n")
    one = compiler.build([tmp_path / "one.hv"])
    assert write_tree(tmp_path / "out", {b.vm.name: b.files for b in one.built}) == [tmp_path / "out" / ok]


# --- limits -----------------------------------------------------------------------------------

PPC = "arch ppc64le\n    kvm book3s_hv\n    cap KVM_CAP_PPC_PAPR on vcpus\n"
LIMITS = [
    ("memory-16P", "arch x86_64\n    memory 16P\n", "memory-too-large"),
    ("memory-8T-x86", "arch x86_64\n    memory 8T\n", "memory-too-large"),  # 2^43 > (2^31 - 1) pages of 4K
    ("memory-2^64", "arch x86_64\n    memory 0x10000000000000000\n", "invalid-value"),
    ("memory-2^64-1", "arch x86_64\n    memory 0xffffffffffffffff\n", "memory-granularity"),
    ("vcpus-100000", "arch x86_64\n    memory 2M\n    vcpus 100000\n", "vcpus-too-many"),
    ("vcpus-2^32-1", PPC + "    memory 1G\n    vcpus 0xffffffff\n", "vcpus-too-many"),
    ("vcpus-2^32", "arch x86_64\n    memory 2M\n    vcpus 0x100000000\n", "invalid-value"),
    ("htab-60", PPC + "    memory 1G\n    htab order 60\n", "htab-order-range"),
    ("htab-2^63", PPC + "    memory 1G\n    htab order 0x8000000000000000\n", "htab-order-range"),
    ("tce-2^64", PPC + "    memory 1G\n    tce t { liobn 1  window 0x10000000000000000 }\n", "invalid-value"),
    ("tce-ends-at-2^64", PPC + "    memory 1G\n    tce t { liobn 1  window 0xfffffffffffff000  offset 4K }\n",
     "tce-window-overflow"),
    ("threads-2^32-1", PPC + "    memory 1G\n    threads 0xffffffff\n", "threads-too-many"),
    ("at-2^64-1", "arch x86_64\n    memory 2M\n    guest \"g.bin\" at 0xffffffffffffffff\n", "guest-out-of-reach"),
]


@pytest.mark.parametrize("name, body, code", LIMITS, ids=[n for n, _, _ in LIMITS])
def test_absurd_sizes_are_compile_time_diagnostics(tmp_path: Path, name: str, body: str, code: str) -> None:
    (tmp_path / "g.bin").write_bytes(b"\xf4")
    path = tmp_path / "l.hv"
    path.write_text(f"vm l {{\n    {body}}}\n")
    start = time.monotonic()
    result = compiler.build([path])
    assert time.monotonic() - start < 5, "a limit must be found without enumerating up to it"
    assert code in {d.code for d in result.report.errors}, [f"{d.code}: {d.message}" for d in result.report]
    assert result.built == []


@pytest.mark.parametrize("body", [
    "arch x86_64\n    memory 7T\n",  # just under one slot of 4 KiB pages
    "arch ppc64le\n    kvm book3s_hv\n    memory 64T\n    cap KVM_CAP_PPC_PAPR on vcpus\n",  # 64 KiB pages
    PPC + "    memory 1G\n    tce t { liobn 1  window 0xffffffffffffe000  offset 4K }\n",  # ends a page below
])
def test_large_but_possible_sizes_pass(tmp_path: Path, body: str) -> None:
    path = tmp_path / "l.hv"
    path.write_text(f"vm l {{\n    {body}}}\n")
    assert compiler.check([path]).report.errors == []


# --- depth and volume -------------------------------------------------------------------------

@pytest.mark.parametrize("depth", [17, 10_000, 100_000])
def test_deeply_nested_lists_are_a_syntax_error(tmp_path: Path, depth: int) -> None:
    found = _check(tmp_path, "vm a {\n    arch x86_64\n    memory 2M\n    cap KVM_CAP_HALT_POLL { max_ns "
                             + "[" * depth + "1" + "]" * depth + " }\n}\n")
    assert ("syntax-error", 4) in found


def test_sixteen_levels_still_parse(tmp_path: Path) -> None:
    found = _check(tmp_path, "vm a {\n    arch x86_64\n    memory 2M\n    cap KVM_CAP_HALT_POLL { max_ns "
                             + "[" * 16 + "1" + "]" * 16 + " }\n}\n")
    assert ("syntax-error", 4) not in found and ("invalid-value", 4) in found


def test_a_long_extends_chain_stops_at_32_bases_quickly(tmp_path: Path) -> None:
    text = "vm a0 {\n    arch x86_64\n    memory 2M\n}\n" + "".join(f"vm a{i} extends a{i - 1} {{ }}\n"
                                                                    for i in range(1, 1000))
    found = _check(tmp_path, text)
    assert {c for c, _ in found} == {"extends-too-deep"} and len(found) == 1000 - 33


def test_a_file_past_the_size_limit_is_refused_before_parsing(tmp_path: Path) -> None:
    path = tmp_path / "big.hv"
    path.write_text("[" * (MAX_FILE_BYTES + 1))
    done = subprocess.run([sys.executable, "-m", "hvconf", "check", "big.hv"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=TIMEOUT)
    assert done.returncode == 2 and "at most" in done.stderr and "Traceback" not in done.stderr


# --- guest sources and kernels --------------------------------------------------------------

GUEST_BOMBS = {
    "fill": ".code16\n.text\nhlt\n.fill 0x7fffffff, 8, 0\n",  # > RLIMIT_FSIZE of output
    "rept": ".code16\n.text\n.rept 1000000000\nnop\n.endr\n",  # > RLIMIT_AS
    # would wait on the terminal: a name built by a macro, so `as` opens it (and --MD says so)
    "stdin": '.code16\n.text\n.altmacro\n.macro inc f\n.include "f"\n.endm\ninc </dev/stdin>\nhlt\n',
}


@pytest.mark.parametrize("bomb", sorted(GUEST_BOMBS))
def test_guest_sources_cannot_hang_or_bloat_the_build(tmp_path: Path, bomb: str) -> None:
    (tmp_path / "g.S").write_text(GUEST_BOMBS[bomb])
    (tmp_path / "f").write_text("")  # stdin's decoy: the scan checks the literal name, `as` reads the macro's
    (tmp_path / "g.hv").write_text('vm g {\n    arch x86_64\n    memory 2M\n    guest "g.S"\n}\n')
    # stdin is a pipe nobody writes to or closes: `.include "/dev/stdin"` would block on it.
    proc = subprocess.Popen([sys.executable, "-m", "hvconf", "build", "g.hv", "-o", "out"], cwd=tmp_path,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=TIMEOUT + 30)
    finally:
        proc.kill()
    assert "Traceback" not in err
    code = "path-outside-project" if bomb == "stdin" else "guest-build-failed"  # /dev/stdin was read: no image
    assert proc.returncode == 1 and code in err, err


def test_a_proc_file_as_kernel_is_not_read_even_when_allowed(tmp_path: Path) -> None:
    path = tmp_path / "k.hv"
    path.write_text('vm k {\n    arch s390x\n    memory 16M\n    kernel "/proc/self/pagemap"\n}\n')
    assert [d.code for d in compiler.build([path]).report] == ["path-outside-project"]
    result = compiler.build([path], loader=Loader(allow=["/proc"]))
    assert [d.code for d in result.report] == ["path-not-a-file"] and result.built == []


def test_guest_assembly_is_shared_by_vms_of_one_build(tmp_path: Path) -> None:
    shutil.copy(REPO / "guests" / "x86" / "hello.S", tmp_path / "g.S")
    text = "".join(f'vm v{i} {{\n    arch x86_64\n    memory 2M\n    guest "g.S"\n}}\n' for i in range(200))
    (tmp_path / "many.hv").write_text(text)
    start = time.monotonic()
    result = compiler.build([tmp_path / "many.hv"])
    assert not result.report.has_errors and len(result.built) == 200
    assert time.monotonic() - start < 20  # 400 runs of as/objcopy took longer than this


def test_many_diagnostics_on_one_long_line_render_a_window_each(tmp_path: Path) -> None:
    # Each finding shows a bounded window around its caret, not the 10 KB line (999 of those
    # would print 10 MB); that the work is linear too is tests/test_scaling.py's, without a clock.
    from hvconf.lint.render import render_report

    path = tmp_path / "one-line.hv"
    path.write_text("vm a { arch x86_64 " + "memory 2M " * 1000 + "}")  # 10 KB, 999 duplicate-setting warnings
    report = compiler.check([path]).report
    assert len(report.diagnostics) == 999
    shown = [line for line in render_report(report).splitlines() if line.startswith("1 | ")]
    assert len(shown) == 999 and max(map(len, shown)) < 140
    assert all(line.startswith("1 | ...") and line.endswith("...") for line in shown[10:-10])
