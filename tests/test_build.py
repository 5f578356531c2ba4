"""End-to-end tests of `compiler.build`, manifest.json and writing outputs.

Every sample builds with the expected files; the manifest hashes every
output and every input (includes, guest sources) with paths relative to the
root file's folder; builds are byte-for-byte reproducible across runs,
working directories, hash seeds and locales; writing is all or nothing.
Subprocesses use `python -m hvconf` and are bounded by `timeout=`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import hvconf
from hvconf import compiler
from hvconf.emit.artifacts import Built
from hvconf.emit.output import write_tree

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "samples"
SAMPLE_FILES = sorted(SAMPLES.glob("*.hv"))
HELLO_S = REPO / "guests" / "x86" / "hello.S"
TIMEOUT = 60

# Sample -> the files its one VM must produce (the VM is named after the file).
DT = ("{vm}.dts", "{vm}.dtb")
COMMON = ("plan.json", "launch.py", "manifest.json")
EXPECTED_FILES: dict[str, tuple[str, ...]] = {
    "e500": DT + COMMON + ("spin-table.bin",),  # 2 vCPUs: the ePAPR spin table image
    "pseries": DT + COMMON + ("rtas.bin",),  # a kernel: the RTAS blob Linux calls
    "pseries-hello": DT + COMMON + ("guest.bin",),
    "pseries-linux": DT + COMMON + ("rtas.bin",),  # vmlinux and initrd.img are given at run time
    "pseries-linux-hash": DT + COMMON + ("rtas.bin",),
    "pseries-linux-smp": DT + COMMON + ("rtas.bin",),
    "pseries-pr": DT + COMMON + ("rtas.bin",),
    "s390x": COMMON,
    "x86-hello": COMMON + ("guest.bin",),
    "x86-linux": COMMON,  # its kernel and initrd are the launcher's --kernel and --initrd
    "x86-pvspinlock": COMMON + ("guest.bin",),
}

GOOD_X86 = """format 1
vm good {{
    arch    x86_64
    memory  2M
    vcpus   1
    console serial
    guest   "{guest}" mode real at 0x7c00
}}
"""


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def hvconf_cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hvconf", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=TIMEOUT, check=False)


def tree_hashes(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): sha256(p.read_bytes()) for p in sorted(root.rglob("*")) if p.is_file()}


def quoted(text: str, keyword: str) -> list[str]:
    """The string arguments of `keyword "..."` statements (the samples use no escapes)."""
    return re.findall(rf'^\s*{keyword}\s+"([^"\\]*)"', re.sub(r"#[^\n]*", "", text), re.MULTILINE)


def expected_inputs(root: Path) -> dict[str, str]:
    """Every file a build of `root` reads, found independently of the loader:
    the file, its includes (recursively), its guest sources and what they include;
    path -> sha256."""
    found: dict[str, str] = {}
    todo = [root]
    while todo:
        path = todo.pop()
        rel = Path(os.path.relpath(path, root.parent)).as_posix()
        if rel in found:
            continue
        text = path.read_text()
        found[rel] = sha256(path.read_bytes())
        todo += [Path(os.path.normpath(path.parent / inc)) for inc in quoted(text, "include")]
        if path.suffix != ".hv":  # a guest source or what it includes: `.include` names its folder's files
            todo += [Path(os.path.normpath(path.parent / inc)) for inc in quoted(text, r"\.include")]
        todo += [Path(os.path.normpath(path.parent / guest)) for guest in quoted(text, "guest")]
    return found


@pytest.fixture(scope="module")
def built() -> dict[str, Built]:
    """Each sample built on its own: sample stem -> its one Built."""
    out = {}
    for path in SAMPLE_FILES:
        result = compiler.build([path])
        errors = [f"{d.span}: {d.code}: {d.message}" for d in result.report.errors]
        assert not errors, f"{path.name} does not build: {errors}"
        assert [b.vm.name for b in result.built] == [path.stem]
        out[path.stem] = result.built[0]
    return out


def test_the_sample_table_covers_every_sample() -> None:
    assert sorted(p.stem for p in SAMPLE_FILES) == sorted(EXPECTED_FILES)


@pytest.mark.parametrize("sample", sorted(EXPECTED_FILES))
def test_sample_builds_the_expected_files(built: dict[str, Built], sample: str) -> None:
    files = built[sample].files
    assert sorted(files) == sorted(name.format(vm=sample) for name in EXPECTED_FILES[sample])
    assert all(isinstance(blob, bytes) and blob for blob in files.values())
    assert json.loads(files["plan.json"]) == built[sample].plan


@pytest.mark.parametrize("sample", sorted(EXPECTED_FILES))
def test_manifest_hashes_outputs_and_inputs(built: dict[str, Built], sample: str) -> None:
    files = built[sample].files
    manifest = json.loads(files["manifest.json"])
    assert manifest["hvconf"] == hvconf.__version__
    assert manifest["vm"] == sample
    assert manifest["target"] == built[sample].plan["target"]
    outputs = {o["path"]: o["sha256"] for o in manifest["outputs"]}
    assert outputs == {name: sha256(blob) for name, blob in files.items() if name != "manifest.json"}
    inputs = {i["path"]: i["sha256"] for i in manifest["inputs"]}
    assert inputs == expected_inputs(SAMPLES / f"{sample}.hv")
    assert len(inputs) == len(manifest["inputs"]), "an input is listed twice"


@pytest.mark.parametrize("sample", sorted(EXPECTED_FILES))
def test_outputs_have_no_timestamps_or_absolute_paths(built: dict[str, Built], sample: str) -> None:
    files = built[sample].files
    manifest = json.loads(files["manifest.json"])
    for entry in manifest["inputs"] + manifest["outputs"]:
        assert not entry["path"].startswith("/") and "\\" not in entry["path"]
    # Nothing beyond version, names and hashes: no build time, host or user.
    assert sorted(manifest) == ["hvconf", "inputs", "outputs", "target", "vm"]
    assert {tuple(sorted(e)) for e in manifest["inputs"] + manifest["outputs"]} == {("path", "sha256")}
    for name, blob in files.items():
        if name.endswith((".dtb", ".bin")):
            continue
        text = blob.decode()
        assert str(REPO) not in text and os.path.expanduser("~") + "/" not in text, f"{name} names a local path"
        assert not re.search(r"\b20\d\d-\d\d-\d\d[T ]\d\d:\d\d", text), f"{name} has a timestamp"


def test_building_twice_is_byte_identical(built: dict[str, Built]) -> None:
    again = compiler.build(SAMPLE_FILES)
    assert not again.report.has_errors
    assert {b.vm.name: b.files for b in again.built} == {name: b.files for name, b in built.items()}


def test_cli_builds_are_reproducible_across_cwd_hash_seed_and_locale(
        tmp_path: Path, built: dict[str, Built]) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    base_env = {k: v for k, v in os.environ.items() if k not in ("PYTHONHASHSEED", "LC_ALL", "LANG")}
    runs = {
        # name: (cwd, sample paths as given, environment)
        "repo-seed1-C": (REPO, [str(p.relative_to(REPO)) for p in SAMPLE_FILES],
                         {"PYTHONHASHSEED": "1", "LC_ALL": "C"}),
        "elsewhere-seed1-C": (elsewhere, [str(p) for p in SAMPLE_FILES], {"PYTHONHASHSEED": "1", "LC_ALL": "C"}),
        "repo-seed2-utf8": (REPO, [str(p.relative_to(REPO)) for p in SAMPLE_FILES],
                            {"PYTHONHASHSEED": "2", "LC_ALL": "C.UTF-8"}),
    }
    hashes = {}
    for name, (cwd, paths, env) in runs.items():
        out = tmp_path / name
        done = hvconf_cli("build", *paths, "-o", str(out), cwd=cwd, env={**base_env, **env})
        assert done.returncode == 0, f"{name}: {done.stderr}"
        assert "Traceback" not in done.stderr
        hashes[name] = tree_hashes(out)
    first = hashes.pop("repo-seed1-C")
    for name, other in hashes.items():
        assert other == first, f"{name} differs from repo-seed1-C"
    # The CLI writes exactly what the compiler returns.
    assert first == {f"{vm}/{f}": sha256(blob) for vm, b in built.items() for f, blob in b.files.items()}


def test_manifest_records_what_the_guest_source_includes(tmp_path: Path) -> None:
    # `as --MD` lists what it read: an included file and an .incbin blob are inputs as the source is,
    # so an edit to either shows in manifest.json (and, here, in the image).
    (tmp_path / "lib").mkdir()
    (tmp_path / "guest.S").write_text('\t.code16\n\t.include "lib/halt.inc"\n\tcli\n\thalt_here\n'
                                      '\t.incbin "blob.bin"\n')
    (tmp_path / "lib" / "halt.inc").write_text("\t.macro halt_here\n\thlt\n\t.endm\n")
    (tmp_path / "blob.bin").write_bytes(b"\xaa")
    root = tmp_path / "good.hv"
    root.write_text(GOOD_X86.format(guest="guest.S"))

    def manifest() -> tuple[dict[str, str], bytes]:
        [vm] = compiler.build([root]).built
        return {i["path"]: i["sha256"] for i in json.loads(vm.files["manifest.json"])["inputs"]}, vm.files["guest.bin"]

    inputs, image = manifest()
    assert image == b"\xfa\xf4\xaa"  # cli, hlt from the macro, the blob
    assert inputs == expected_inputs(root) | {"blob.bin": sha256(b"\xaa")}
    assert sorted(inputs) == ["blob.bin", "good.hv", "guest.S", "lib/halt.inc"]
    (tmp_path / "lib" / "halt.inc").write_text("\t.macro halt_here\n\thlt\n\thlt\n\t.endm\n")
    changed, image = manifest()
    assert image == b"\xfa\xf4\xf4\xaa"
    assert {p for p in inputs if changed[p] != inputs[p]} == {"lib/halt.inc"}


# --- all or nothing -------------------------------------------------------------------------

def write_good(folder: Path, *, memory: str = "2M") -> Path:
    path = folder / "good.hv"
    shutil.copy(HELLO_S, folder / "hello.S")  # a definition reads only files of its project (its folder here)
    path.write_text(GOOD_X86.format(guest="hello.S").replace("2M", memory))
    return path


BAD = {
    # caught by the parser, before anything is built
    "syntax": 'format 1\nvm bad {\n    memory\n}\n',
    # caught while building artifacts, after the good file's VM was built
    "guest-build": 'format 1\nvm bad {\n    arch x86_64\n    memory 2M\n    vcpus 1\n'
                   '    guest "broken.S" mode real\n}\n',
}


def write_bad(folder: Path, kind: str) -> Path:
    (folder / "broken.S").write_text("\t.code16\n\t.text\n\tthis_is_not_an_instruction %ax\n")
    path = folder / "bad.hv"
    path.write_text(BAD[kind])
    return path


@pytest.mark.parametrize("kind", sorted(BAD))
def test_build_with_one_bad_file_builds_nothing(tmp_path: Path, kind: str) -> None:
    good, bad = write_good(tmp_path), write_bad(tmp_path, kind)
    result = compiler.build([good, bad])
    assert result.report.has_errors and result.built == []
    out = tmp_path / "out"
    done = hvconf_cli("build", "good.hv", "bad.hv", "-o", "out", cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert re.search(r"^bad\.hv:\d+:\d+: error\[", done.stderr, re.MULTILINE), done.stderr
    assert not out.exists() or list(out.iterdir()) == [], "a failed build left files or temp folders"


@pytest.mark.parametrize("kind", sorted(BAD))
def test_failing_rebuild_keeps_the_previous_output(tmp_path: Path, kind: str) -> None:
    write_good(tmp_path)
    out = tmp_path / "out"
    assert hvconf_cli("build", "good.hv", "-o", "out", cwd=tmp_path).returncode == 0
    before = tree_hashes(out)
    assert sorted(before) == ["good/guest.bin", "good/launch.py", "good/manifest.json", "good/plan.json"]
    write_good(tmp_path, memory="4M")  # a successful rebuild would change plan.json
    write_bad(tmp_path, kind)
    done = hvconf_cli("build", "good.hv", "bad.hv", "-o", "out", cwd=tmp_path)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert tree_hashes(out) == before
    assert [p.name for p in out.iterdir()] == ["good"], "temp folders left behind"


def test_successful_rebuild_replaces_the_output_and_leaves_no_temp_folders(tmp_path: Path) -> None:
    write_good(tmp_path)
    out = tmp_path / "out"
    assert hvconf_cli("build", "good.hv", "-o", "out", cwd=tmp_path).returncode == 0
    (out / "good" / "stale.txt").write_text("from an older build")
    before = tree_hashes(out)
    write_good(tmp_path, memory="4M")
    done = hvconf_cli("build", "good.hv", "-o", "out", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    after = tree_hashes(out)
    assert "good/stale.txt" not in after and after["good/plan.json"] != before["good/plan.json"]
    steps = json.loads((out / "good" / "plan.json").read_text())["steps"]
    assert [s["args"]["memory_size"] for s in steps if s["ioctl"] == "KVM_SET_USER_MEMORY_REGION"] == [4 << 20]
    assert [p.name for p in out.iterdir()] == ["good"]


def assert_nothing_written(tmp_path: Path) -> None:
    """At most an empty `out` folder under tmp_path: no files, no temp folders, nothing outside."""
    assert [p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")] in ([], ["out"])


@pytest.mark.parametrize("name", ["../x", "a/b", "..", ".", "", "/abs", "x/../../y"])
def test_write_tree_refuses_vm_names_that_leave_the_folder(tmp_path: Path, name: str) -> None:
    out = tmp_path / "out"
    with pytest.raises(ValueError):
        write_tree(out, {"fine": {"a.txt": b"a"}, name: {"a.txt": b"b"}})
    assert_nothing_written(tmp_path)


@pytest.mark.parametrize("name", ["../escape", "../../escape", "{tmp}/escape", "sub/../../escape"])
def test_write_tree_refuses_file_names_that_leave_the_vm_folder(tmp_path: Path, name: str) -> None:
    # File names come from the compiler today, but write_tree is the last line of
    # defence: an absolute or `..` name would write (and chmod) outside `out`.
    out = tmp_path / "out"
    with pytest.raises(ValueError):
        write_tree(out, {"vm": {"plan.json": b"{}", name.format(tmp=tmp_path): b"x"}})
    assert_nothing_written(tmp_path)


def test_write_tree_failing_midway_keeps_the_old_output(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert write_tree(out, {"a": {"f": b"old"}}) == [out / "a"]
    with pytest.raises((OSError, ValueError)):
        # the second VM's file cannot be created (no such sub-folder)
        write_tree(out, {"a": {"f": b"new"}, "b": {"missing-dir/f": b"x"}})
    assert (out / "a" / "f").read_bytes() == b"old"
    assert [p.name for p in out.iterdir()] == ["a"]


@pytest.mark.parametrize("where", ["file", "file/sub"])
def test_unwritable_output_folder_is_one_line_and_status_2(tmp_path: Path, where: str) -> None:
    # Root ignores permission bits, so "unwritable" is a path through a regular file.
    (tmp_path / "file").write_text("not a folder")
    done = hvconf_cli("build", str(SAMPLES / "x86-hello.hv"), "-o", str(tmp_path / where), cwd=tmp_path)
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("hvconf: error: "), done.stderr
    assert (tmp_path / "file").read_text() == "not a folder"


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o000, 0o027])
@pytest.mark.parametrize("known", [True, False], ids=["umask-read", "umask-unknown"])
def test_written_modes_do_not_depend_on_the_umask(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  umask: int, known: bool) -> None:
    # The folder and launch.py 0755, every other file 0644, as before a chmod per file was
    # skipped where the umask takes nothing away.
    from hvconf.emit import output

    if not known:  # /proc/self/status unreadable: a chmod for every file and folder
        monkeypatch.setattr(output, "_umask", lambda: None)
    old = os.umask(umask)
    try:
        write_tree(tmp_path / "out", {"vm": {"launch.py": b"#!", "plan.json": b"{}"}})
        write_tree(tmp_path / "out", {"vm": {"launch.py": b"#!", "plan.json": b"{}"}})  # over it
    finally:
        os.umask(old)
    modes = {p.name: oct(p.stat().st_mode & 0o7777) for p in [tmp_path / "out" / "vm", *(tmp_path / "out" / "vm").iterdir()]}
    assert modes == {"vm": "0o755", "launch.py": "0o755", "plan.json": "0o644"}
