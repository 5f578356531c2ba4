"""Following includes: relative paths, each file parsed once, and every
broken include (missing, directory, FIFO, cycle) as a diagnostic."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hvconf.diagnostics import Report
from hvconf.syntax.loader import InputError, Loader


def write(root: Path, name: str, text: str) -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def findings(root: Path) -> Report:
    """The report of loading `root` and what it includes."""
    report = Report()
    Loader().load(root, report)
    return report


def test_includes_resolve_relative_to_the_including_file(tmp_path: Path) -> None:
    main = write(tmp_path, "vms/main.hv", 'include "lib/a.hv"\nvm m extends a { }\n')
    write(tmp_path, "vms/lib/a.hv", 'include "b.hv"\nabstract vm a extends b { }\n')
    write(tmp_path, "vms/lib/b.hv", "abstract vm b { arch x86_64 }\n")
    report = Report()
    program = Loader().load(main, report)
    assert not report.diagnostics
    assert sorted(program.vms) == ["a", "b", "m"]
    assert [vm.name.value for vm in program.own_vms] == ["m"]
    assert [f.path.name for f in program.files] == ["main.hv", "a.hv", "b.hv"]


def test_a_shared_file_is_parsed_once(tmp_path: Path) -> None:
    main = write(tmp_path, "main.hv", 'include "x.hv"\ninclude "y.hv"\n')
    write(tmp_path, "x.hv", 'include "common.hv"\n')
    write(tmp_path, "y.hv", 'include "common.hv"\n')
    write(tmp_path, "common.hv", "abstract vm c { }\n")
    loader = Loader()
    report = Report()
    first = loader.load(main, report)
    second = loader.load(main, report)
    assert not report.diagnostics
    common = [f for f in first.files if f.path.name == "common.hv"]
    assert len(common) == 1
    assert next(f for f in second.files if f.path.name == "common.hv").tree is common[0].tree


def test_include_cycle_shows_the_chain(tmp_path: Path) -> None:
    main = write(tmp_path, "a.hv", 'include "b.hv"\n')
    write(tmp_path, "b.hv", 'include "a.hv"\n')
    [diag] = findings(main).diagnostics
    assert diag.code == "include-cycle"
    assert diag.span is not None and diag.span.file.endswith("b.hv") and diag.span.line == 1
    assert len(diag.notes) == 2


def test_missing_directory_and_fifo_includes(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo.hv")
    (tmp_path / "dir.hv").mkdir()
    main = write(tmp_path, "main.hv", 'include "nope.hv"\ninclude "dir.hv"\ninclude "fifo.hv"\ninclude ""\n')
    report = findings(main)  # must not block on the FIFO
    assert report.codes() == ["include-not-found", "include-not-a-file", "include-not-a-file", "include-not-found"]
    assert [d.span.line for d in report] == [1, 2, 3, 4]


def test_duplicate_vm_names_point_at_both(tmp_path: Path) -> None:
    main = write(tmp_path, "main.hv", 'include "other.hv"\nvm a { }\n')
    write(tmp_path, "other.hv", "vm a { }\n")
    [diag] = findings(main).diagnostics
    assert diag.code == "duplicate-vm" and diag.notes[0].span is not None


def test_unsupported_format(tmp_path: Path) -> None:
    assert findings(write(tmp_path, "f.hv", "format 2\n")).codes() == ["unsupported-format"]


def test_invalid_utf8_is_located(tmp_path: Path) -> None:
    path = tmp_path / "bad.hv"
    path.write_bytes(b"vm a {\n  cmdline \"\xff\"\n}\n")
    [diag] = findings(path).diagnostics
    assert (diag.code, diag.span.line, diag.span.col) == ("invalid-utf8", 2, 12)


@pytest.mark.parametrize("make", ["missing", "directory"])
def test_unreadable_root_is_an_input_error(tmp_path: Path, make: str) -> None:
    path = tmp_path / "root.hv"
    if make == "directory":
        path.mkdir()
    with pytest.raises(InputError):
        Loader().load(path, Report())
