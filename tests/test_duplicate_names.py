"""One build, one VM per name: two root files of `hvconf build` that define the same concrete
VM would both write `out/NAME/` (one silently won). That is `duplicate-vm`, naming both places;
the same file named twice (`a.hv a.hv`, `a.hv ./a.hv`, a symbolic or hard link) is one file.
`check` takes each file alone, so files that are built apart may share names (docs/ci.md).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hvconf import compiler

A = "vm x {\n    arch x86_64\n    memory 2M\n}\n"
B = "format 1\n\nvm x {\n    arch x86_64\n    memory 4M\n}\n"


def hvconf(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hvconf", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120)


def hashes(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def two(tmp_path: Path) -> Path:
    (tmp_path / "a.hv").write_text(A)
    (tmp_path / "b.hv").write_text(B)
    return tmp_path


def test_the_same_vm_in_two_files_of_one_build_is_an_error_at_both(two: Path) -> None:
    done = hvconf("build", "a.hv", "b.hv", "-o", "out", cwd=two)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    first, *rest = done.stderr.splitlines()
    assert first.startswith("b.hv:3:4: error[duplicate-vm]: VM 'x' is also defined in 'a.hv'")
    assert "  = note: first defined here (a.hv:1:4)" in rest
    assert rest[-1] == "1 error, 0 warnings"
    assert not (two / "out").exists() and done.stdout == ""


def test_a_failed_build_of_duplicates_keeps_the_previous_output(two: Path) -> None:
    assert hvconf("build", "a.hv", "-o", "out", cwd=two).returncode == 0
    before = hashes(two / "out")
    assert hvconf("build", "b.hv", "a.hv", "-o", "out", cwd=two).returncode == 1
    assert hashes(two / "out") == before


def test_the_order_on_the_command_line_decides_which_is_first(two: Path) -> None:
    report = compiler.build([two / "b.hv", two / "a.hv"]).report
    [diag] = report.diagnostics
    assert diag.span is not None and diag.span.file.endswith("a.hv") and (diag.span.line, diag.span.col) == (1, 4)
    [note] = diag.notes
    assert note.span is not None and note.span.file.endswith("b.hv") and (note.span.line, note.span.col) == (3, 4)


@pytest.mark.parametrize("second", ["a.hv", "./a.hv", "{root}/a.hv", "sub/../a.hv", "link.hv", "hard.hv"])
def test_one_file_named_twice_is_built_once(two: Path, second: str) -> None:
    (two / "sub").mkdir()
    os.symlink("a.hv", two / "link.hv")
    os.link(two / "a.hv", two / "hard.hv")
    done = hvconf("build", "a.hv", second.format(root=two), "-o", "out", cwd=two)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "wrote out/x/\n" and done.stderr == ""
    assert sorted(p.name for p in (two / "out").iterdir()) == ["x"]


def test_check_takes_each_file_alone(two: Path) -> None:
    # Two definitions of a repo may share a VM name as long as they are built apart.
    done = hvconf("check", "a.hv", "b.hv", cwd=two)
    assert done.returncode == 0 and "duplicate-vm" not in done.stdout, done.stdout


def test_bases_of_the_same_name_in_two_files_are_no_clash(tmp_path: Path) -> None:
    # Abstract VMs write nothing: each file may have its own `base`.
    for name, vm in (("a", "x"), ("b", "y")):
        (tmp_path / f"{name}.hv").write_text(f"abstract vm base {{\n    arch x86_64\n}}\n"
                                             f"vm {vm} extends base {{\n    memory 2M\n}}\n")
    done = hvconf("build", "a.hv", "b.hv", "-o", "out", cwd=tmp_path)
    assert done.returncode == 0 and done.stdout == "wrote out/x/\nwrote out/y/\n", done.stderr


def test_a_name_repeated_through_an_include_is_reported_once(two: Path) -> None:
    # c.hv includes b.hv and defines x again: the loader's duplicate-vm; building b.hv along
    # with it adds no second report of the same clash.
    (two / "c.hv").write_text('include "b.hv"\n' + A)
    for order in (["b.hv", "c.hv"], ["c.hv", "b.hv"]):
        report = compiler.build([two / p for p in order]).report
        assert [(d.code, d.message) for d in report] == [("duplicate-vm", "VM 'x' is defined twice")]
