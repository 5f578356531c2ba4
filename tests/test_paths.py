"""What a definition may make hvconf read (hvconf/syntax/paths.py, docs/robustness.md
"Paths are diagnostics"), one test per class of hole:

- symlink fan-out: files are keyed by their real path and read once, so two symlinks to `.`
  cannot turn 40 includes into 2^40 (the CLI run below used to never end);
- host files: a path outside the project, through every construct that takes one (include,
  kernel, guest, a guest source's `.include`/`.incbin`, a symlinked root), is refused at its
  line and nothing of the file reaches any output (text, JSON, SARIF, GitHub, build outputs);
  each special-file kind (/proc, /sys, /dev, character and block devices, FIFO, socket,
  folder) is refused even inside the project or an allowed folder; `--allow-path` and
  `--root` widen the scope; `hvconf run --kernel` stays the user's own choice;
- path errors: ENAMETOOLONG, ELOOP, ENOTDIR, not a regular file, and EACCES (as a non-root
  user), through every construct, in both `check` and `build`: a located diagnostic, never a
  traceback.
The CLI runs are real subprocesses; `as` is the real GNU as.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Iterator

import pytest

from hvconf import compiler
from hvconf.syntax import loader as loader_module
from hvconf.syntax.loader import Loader

TIMEOUT = 120
SECRET = "SECRET-0f3c9a"  # in every file outside the project: no output may ever show it
LONG = "a" * 300  # longer than any file name (NAME_MAX 255): stat(2) fails with ENAMETOOLONG

PSERIES = "    arch ppc64le\n    memory 256M\n    cap KVM_CAP_PPC_PAPR on vcpus\n"
X86 = "    arch x86_64\n    memory 2M\n"


def hvconf(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hvconf", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=TIMEOUT, stdin=subprocess.DEVNULL)


def located(output: str, code: str, file: str, line: int) -> bool:
    """Whether `output` (text format) has `code` at `file:line`."""
    return any(row.startswith(f"{file}:{line}:") and f"[{code}]" in row for row in output.splitlines())


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, Path]:
    """A repository (`repo/`, with .git) and, beside it, a folder of host files holding SECRET."""
    repo, outside = tmp_path / "repo", tmp_path / "outside"
    (repo / ".git").mkdir(parents=True)
    outside.mkdir()
    (outside / "base.hv").write_text(f"abstract vm base {{ {SECRET} }}\n")  # a syntax error that would quote it
    (outside / "secret.txt").write_text(f"{SECRET}\n{SECRET} two\n")
    (outside / "secret.inc").write_text(f"{SECRET} is no instruction\n")
    (outside / "vmlinux").write_text(f"{SECRET}\n")
    return repo, outside


# ---- 1. symlink fan-out ------------------------------------------------------------------


def test_two_symlinks_to_the_folder_end_at_once_in_a_cycle(tmp_path: Path) -> None:
    # The tree: `check root.hv` expanded 2^40 include paths and never ended.
    os.symlink(".", tmp_path / "l1")
    os.symlink(".", tmp_path / "l2")
    (tmp_path / "a.hv").write_text('include "l1/a.hv"\ninclude "l2/a.hv"\nabstract vm a { }\n')
    (tmp_path / "root.hv").write_text('include "a.hv"\n')
    done = hvconf("check", "root.hv", cwd=tmp_path)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert located(done.stdout, "include-cycle", "a.hv", 1) and located(done.stdout, "include-cycle", "a.hv", 2)
    assert done.stdout.splitlines()[-1] == "checked 1 file: 2 errors, 0 warnings"


def test_a_fan_out_of_40_levels_reads_each_file_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    os.symlink(".", tmp_path / "l1")
    os.symlink(".", tmp_path / "l2")
    for i in range(40):  # f_i includes f_i+1 by two names: 2^40 include paths, 41 files
        (tmp_path / f"f{i}.hv").write_text(f'include "l1/f{i + 1}.hv"\ninclude "l2/l1/f{i + 1}.hv"\n')
    (tmp_path / "f40.hv").write_text("abstract vm last { }\n")
    parsed: list[str] = []
    real_parse = loader_module.parse
    monkeypatch.setattr(loader_module, "parse", lambda text, file, report: parsed.append(file)
                        or real_parse(text, file, report))
    result = compiler.check([tmp_path / "f0.hv"])
    assert result.report.diagnostics == []
    assert len(parsed) == 41 == len(set(parsed)) == len(result.checked[0].program.files)


def test_one_file_reached_by_several_names_is_one_file(tmp_path: Path) -> None:
    os.symlink(".", tmp_path / "l1")
    (tmp_path / "sub").mkdir()
    (tmp_path / "b.hv").write_text(f"vm b {{\n{X86}}}\n")  # read twice, it would be a duplicate-vm
    (tmp_path / "root.hv").write_text('include "b.hv"\ninclude "./b.hv"\ninclude "l1/b.hv"\n'
                                      'include "l1/l1/sub/../b.hv"\n')
    result = compiler.check([tmp_path / "root.hv"])
    assert result.report.diagnostics == []
    assert [f.path.name for f in result.checked[0].program.files] == ["root.hv", "b.hv"]


def test_a_symlinked_file_resolves_its_paths_from_its_target(tmp_path: Path) -> None:
    (tmp_path / "lib").mkdir()
    (tmp_path / "vms").mkdir()
    (tmp_path / "lib" / "x.hv").write_text('include "y.hv"\n')
    (tmp_path / "lib" / "y.hv").write_text("abstract vm y { }\n")
    os.symlink("../lib/x.hv", tmp_path / "vms" / "x.hv")  # vms/y.hv does not exist
    (tmp_path / "root.hv").write_text('include "vms/x.hv"\ninclude "lib/x.hv"\n')
    result = compiler.check([tmp_path / "root.hv"])
    assert result.report.diagnostics == []
    assert len(result.checked[0].program.files) == 3


# ---- 2. host files -----------------------------------------------------------------------


def _outside_definition(repo: Path, outside: Path) -> Path:
    """One definition reaching `outside` through every construct, one line each."""
    os.symlink(outside / "base.hv", repo / "link.hv")
    os.symlink(outside, repo / "out-dir")
    (repo / "s.S").write_text(f'.code16\n.include "{outside}/secret.inc"\n.incbin "../outside/secret.txt"\nhlt\n')
    path = repo / "root.hv"
    path.write_text(
        f'include "{outside}/base.hv"\n'       # 1: absolute
        'include "../outside/base.hv"\n'        # 2: ..
        'include "link.hv"\n'                   # 3: a symlink inside the project leading out
        'include "out-dir/base.hv"\n'           # 4: through a symlinked folder
        f"vm k {{\n{PSERIES}"
        f'    kernel "{outside}/vmlinux"\n}}\n'  # 9
        f"vm g {{\n{X86}"
        '    guest "out-dir/secret.bin"\n}\n'   # 14
        f"vm s {{\n{X86}"
        '    guest "s.S" mode real\n}\n')      # 19; s.S:2 and s.S:3
    (outside / "secret.bin").write_bytes(SECRET.encode())
    return path


EXPECTED_OUTSIDE = [("root.hv", 1), ("root.hv", 2), ("root.hv", 3), ("root.hv", 4), ("root.hv", 9),
                    ("root.hv", 14), ("s.S", 2), ("s.S", 3)]


def test_every_construct_reaching_outside_is_refused_at_its_line(tree: tuple[Path, Path]) -> None:
    repo, outside = tree
    _outside_definition(repo, outside)
    for command in (["check"], ["build", "-o", "out"]):
        done = hvconf(*command, "root.hv", cwd=repo)
        assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
        text = done.stdout if command == ["check"] else done.stderr
        for file, line in EXPECTED_OUTSIDE:
            assert located(text, "path-outside-project", file, line), (command, file, line, text)
        assert SECRET not in done.stdout + done.stderr
    assert not (repo / "out").exists()


@pytest.mark.parametrize("fmt", ["text", "json", "sarif", "github"])
def test_no_report_format_carries_a_byte_of_an_outside_file(tree: tuple[Path, Path], fmt: str) -> None:
    repo, outside = tree
    _outside_definition(repo, outside)
    (repo / "notes.hv").write_text('include "notes.txt"\n')  # inside the project, but no definition
    (repo / "notes.txt").write_text(f"{SECRET}\n")
    os.symlink(outside / "base.hv", repo / "evil.hv")  # a root file `check .` finds
    done = hvconf("check", "--format", fmt, ".", cwd=repo)
    assert done.returncode == 2 and "Traceback" not in done.stderr  # 2: the symlinked root was refused
    assert "evil.hv: is outside the project" in done.stderr
    assert SECRET not in done.stdout + done.stderr
    if fmt == "json":
        found = {(d["code"], d["file"], d["line"]) for d in json.loads(done.stdout)}
        assert ("include-not-hv", "notes.hv", 1) in found
        assert {("path-outside-project", f, n) for f, n in EXPECTED_OUTSIDE} <= found


def test_a_refusal_cannot_be_suppressed_by_the_definition(tree: tuple[Path, Path]) -> None:
    repo, outside = tree
    (repo / "s.hv").write_text('include "../outside/base.hv"  # hvconf: ignore[path-outside-project]\n')
    report = compiler.check([repo / "s.hv"]).report
    assert [(d.code, d.span.line) for d in report] == [("path-outside-project", 1), ("unused-suppression", 1)]
    assert "cannot be suppressed" in report.diagnostics[-1].message


def test_fmt_does_not_read_a_symlink_out_of_the_project(tree: tuple[Path, Path]) -> None:
    repo, outside = tree
    os.symlink(outside / "base.hv", repo / "evil.hv")
    done = hvconf("fmt", "--check", ".", cwd=repo)
    assert done.returncode == 2 and "evil.hv: is outside the project" in done.stderr
    assert SECRET not in done.stdout + done.stderr


def test_as_reading_outside_through_a_macro_discards_the_image(tree: tuple[Path, Path]) -> None:
    # The name is built by a macro, so no scan can see it (`f` is a decoy for the scan): `as
    # --MD` says what it read.
    repo, outside = tree
    (repo / "f").write_text("")
    (repo / "g.S").write_text(f'.code16\n.altmacro\n.macro inc f\n.incbin "f"\n.endm\ninc <{outside}/secret.bin>\nhlt\n')
    (outside / "secret.bin").write_bytes(SECRET.encode())
    (repo / "g.hv").write_text(f'vm g {{\n{X86}    guest "g.S" mode real\n}}\n')
    done = hvconf("build", "g.hv", "-o", "out", cwd=repo)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert located(done.stderr, "path-outside-project", "g.hv", 4)
    assert not (repo / "out").exists() and SECRET not in done.stderr


def test_as_failing_on_an_outside_file_never_echoes_its_lines(tree: tuple[Path, Path]) -> None:
    repo, outside = tree
    (repo / "f").write_text("")  # a decoy for the scan: `as` reads what the macro names
    (repo / "g.S").write_text(f'.code16\n.altmacro\n.macro inc f\n.include "f"\n.endm\ninc <{outside}/secret.inc>\n'
                              "movx %ax\nhlt\n")
    (repo / "g.hv").write_text(f'vm g {{\n{X86}    guest "g.S" mode real\n}}\n')
    done = hvconf("build", "g.hv", "-o", "out", cwd=repo)
    assert done.returncode == 1 and "guest-build-failed" in done.stderr
    assert SECRET not in done.stderr and "withheld" in done.stderr
    assert "g.S:7: Error: no such instruction: `movx %ax'" in done.stderr  # the project's own lines stay


def test_names_make_must_quote_are_read_back_from_as(tmp_path: Path) -> None:
    # `as --MD` writes make syntax: spaces escaped, `$` doubled. Parsed wrong, a file of the
    # project would look like one outside and a good guest would be refused.
    folder = tmp_path / "a b$c#d\\"
    folder.mkdir()
    (folder / "x y$#.bin").write_bytes(b"\x90\x90")
    (folder / "g.S").write_text('.code16\n.incbin "x y$#.bin"\nhlt\n')
    (folder / "g.hv").write_text(f'vm g {{\n{X86}    guest "g.S" mode real\n}}\n')
    result = compiler.build([folder / "g.hv"])
    assert result.report.diagnostics == [] and result.built[0].files["guest.bin"] == b"\x90\x90\xf4"


def test_a_guest_name_that_is_no_plain_string_is_refused(tmp_path: Path) -> None:
    (tmp_path / "g.S").write_text('.code16\n.macro inc f\n.incbin "\\f"\n.endm\ninc "/etc/passwd"\nhlt\n')
    (tmp_path / "g.hv").write_text(f'vm g {{\n{X86}    guest "g.S" mode real\n}}\n')
    done = hvconf("build", "g.hv", "-o", "out", cwd=tmp_path)
    assert done.returncode == 1 and located(done.stderr, "guest-build-failed", "g.S", 3), done.stderr


def test_allow_path_and_root_widen_the_scope(tree: tuple[Path, Path]) -> None:
    repo, outside = tree
    (outside / "base.hv").write_text(f"abstract vm base {{\n{PSERIES}}}\n")
    (repo / "k.hv").write_text(f'include "../outside/base.hv"\nvm k extends base {{\n    kernel "../outside/vmlinux" flat\n}}\n')
    assert hvconf("check", "k.hv", cwd=repo).returncode == 1
    for option in (["--allow-path", str(outside)], ["--root", str(repo.parent)]):
        done = hvconf("build", *option, "k.hv", "-o", "out", cwd=repo)
        assert done.returncode == 0, done.stderr
        assert (repo / "out" / "k" / "kernel.img").read_text() == f"{SECRET}\n"  # the user allowed it
    done = hvconf("check", "--allow-path", str(repo / "nope"), "k.hv", cwd=repo)
    assert done.returncode == 2 and "is not a folder" in done.stderr


def test_a_root_file_outside_the_given_root_is_refused(tree: tuple[Path, Path]) -> None:
    repo, outside = tree
    (repo / "vms").mkdir()
    (repo / "x.hv").write_text("format 1\n")
    done = hvconf("check", "--root", "vms", "x.hv", cwd=repo)
    assert done.returncode == 2 and "x.hv: is outside the project" in done.stderr


def test_run_kernel_on_the_command_line_stays_allowed(tree: tuple[Path, Path]) -> None:
    repo, outside = tree
    (repo / "p.hv").write_text(f'vm p {{\n{PSERIES}    kernel "vmlinux"\n}}\n')
    done = hvconf("run", "--dry-run", "--kernel", str(outside / "vmlinux"), "p.hv", cwd=repo)
    assert done.returncode == 0 and "path-outside-project" not in done.stderr, done.stderr


def _make_device(path: Path, kind: int) -> None:
    try:
        os.mknod(path, kind | 0o600, os.makedev(1, 3))  # the numbers of /dev/null: never opened anyway
    except PermissionError:
        pytest.skip("mknod needs CAP_MKNOD (the /dev case covers devices without it)")


def _first_sys_file() -> str:
    for candidate in ("/sys/kernel/mm/transparent_hugepage/enabled", "/sys/power/state", "/sys/kernel/uevent_seqnum"):
        if os.path.exists(candidate):
            return candidate
    pytest.skip("no /sys file to point at")


# kind -> how to make it at a path; /proc, /sys and /dev ones are symlinks (refused as outside
# by default, and as kernel interfaces where the folder is allowed).
SPECIAL = {
    "proc": lambda p: os.symlink("/proc/self/environ", p),
    "sys": lambda p: os.symlink(_first_sys_file(), p),
    "dev": lambda p: os.symlink("/dev/null", p),
    "char-device": lambda p: _make_device(p, stat.S_IFCHR),
    "block-device": lambda p: _make_device(p, stat.S_IFBLK),
    "fifo": os.mkfifo,
    "socket": lambda p: socket.socket(socket.AF_UNIX).bind(str(p)),
    "directory": os.mkdir,
}
CONSTRUCTS = {  # construct -> (file name, definition naming it, its line, code for a special file)
    "include": ("x.hv", 'include "x.hv"\n', 1, "include-not-a-file"),
    "kernel": ("x.img", f'vm k {{\n{PSERIES}    kernel "x.img"\n}}\n', 5, "path-not-a-file"),
    "guest": ("x.bin", f'vm g {{\n{X86}    guest "x.bin"\n}}\n', 4, "path-not-a-file"),
    "incbin": ("x.bin", f'vm g {{\n{X86}    guest "g.S" mode real\n}}\n', 2, "path-not-a-file"),
}


@pytest.mark.parametrize("construct", sorted(CONSTRUCTS))
@pytest.mark.parametrize("kind", sorted(SPECIAL))
def test_special_files_are_refused_in_check_and_build(tmp_path: Path, kind: str, construct: str) -> None:
    name, text, line, code = CONSTRUCTS[construct]
    SPECIAL[kind](tmp_path / name)
    (tmp_path / "g.S").write_text('.code16\n.incbin "x.bin"\nhlt\n')
    (tmp_path / "root.hv").write_text(text)
    interface = kind in ("proc", "sys", "dev")
    for allow in ([], ["/proc", "/sys", "/dev"]):
        for job in (compiler.check, compiler.build):
            report = job([tmp_path / "root.hv"], loader=Loader(allow=allow)).report
            want = "path-outside-project" if interface and not allow else code
            where = "g.S" if construct == "incbin" else "root.hv"
            assert [(d.code, Path(d.span.file).name, d.span.line) for d in report.errors] == [(want, where, line)], \
                (job.__name__, allow, [f"{d.code} {d.message}" for d in report])


# ---- 3. path errors ----------------------------------------------------------------------


def _errno_case(folder: Path, errno_name: str, suffix: str) -> str:
    """A name ending in `suffix` whose stat(2) fails with `errno_name` in `folder`."""
    if errno_name == "ENAMETOOLONG":
        return LONG + suffix
    if errno_name == "ELOOP":
        os.symlink(f"loop{suffix}", folder / f"loop{suffix}")
        return f"loop{suffix}"
    if errno_name == "ENOTDIR":
        (folder / "file").write_text("")
        return f"file/x{suffix}"
    (folder / f"dir{suffix}").mkdir()  # "EISDIR": a folder, not a regular file
    return f"dir{suffix}"


# construct -> (definition with NAME, line of the diagnostic, file it is in, suffix of the name)
ERRNO_CONSTRUCTS = {
    "include": ('include "NAME"\n', 1, "root.hv", ".hv"),
    "kernel": (f'vm k {{\n{PSERIES}    kernel "NAME"\n}}\n', 5, "root.hv", ""),
    "guest": (f'vm g {{\n{X86}    guest "NAME"\n}}\n', 4, "root.hv", ".bin"),
    "incbin": (f'vm g {{\n{X86}    guest "g.S" mode real\n}}\n', 2, "g.S", ""),
}
# (construct, errno) -> code; where `check` reports nothing, build's (code, exit status) differ.
ERRNO_CODES = {
    ("include", "ENAMETOOLONG"): "include-unreadable", ("include", "ELOOP"): "include-unreadable",
    ("include", "ENOTDIR"): "include-not-found", ("include", "EISDIR"): "include-not-a-file",
    ("kernel", "ENAMETOOLONG"): "path-unreadable", ("kernel", "ELOOP"): "path-unreadable",
    ("kernel", "ENOTDIR"): None, ("kernel", "EISDIR"): "path-not-a-file",
    ("guest", "ENAMETOOLONG"): "path-unreadable", ("guest", "ELOOP"): "path-unreadable",
    ("guest", "ENOTDIR"): "guest-not-found", ("guest", "EISDIR"): "path-not-a-file",
    ("incbin", "ENAMETOOLONG"): "path-unreadable", ("incbin", "ELOOP"): "path-unreadable",
    ("incbin", "ENOTDIR"): "guest-not-found", ("incbin", "EISDIR"): "path-not-a-file",
}
# A missing kernel is no error to `check`: build warns (the launcher takes --kernel FILE).
BUILD_ONLY = {"kernel": ("kernel-missing", 0, 5, "root.hv")}


@pytest.mark.parametrize("construct", sorted(ERRNO_CONSTRUCTS))
@pytest.mark.parametrize("errno_name", ["ENAMETOOLONG", "ELOOP", "ENOTDIR", "EISDIR"])
def test_path_errors_are_located_in_check_and_build(tmp_path: Path, errno_name: str, construct: str) -> None:
    text, line, file, suffix = ERRNO_CONSTRUCTS[construct]
    name = _errno_case(tmp_path, errno_name, suffix)
    (tmp_path / "g.S").write_text(f'.code16\n.incbin "{name}"\nhlt\n')
    (tmp_path / "root.hv").write_text(text.replace("NAME", name))
    code = ERRNO_CODES[(construct, errno_name)]
    for command in (["check"], ["build", "-o", "out"]):
        done = hvconf(*command, "root.hv", cwd=tmp_path)
        assert "Traceback" not in done.stdout + done.stderr, done.stderr
        text_out = done.stdout if command == ["check"] else done.stderr
        if code is not None:
            assert done.returncode == 1 and located(text_out, code, file, line), text_out
        elif command == ["check"]:
            assert done.returncode == 0, text_out
        else:
            want, status, want_line, want_file = BUILD_ONLY[construct]
            assert done.returncode == status and located(text_out, want, want_file, want_line), text_out


# EACCES: the same constructs naming a file (or below a folder) only its owner may read, as a
# user who is not its owner and not root.
_UNPRIVILEGED = r"""
import contextlib, io, os, sys
from hvconf.cli.main import main
argv, scratch = sys.argv[2:], sys.argv[1]
# First as root, into a scratch output: imports every module the command needs while the
# interpreter (under /root) is still readable. Then as nobody, for real.
warm = [scratch if arg == "out" else arg for arg in argv]
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    main(warm)
os.setgroups([])
os.setresgid(65534, 65534, 65534)
os.setresuid(65534, 65534, 65534)
sys.exit(main(argv))
"""


def run_unprivileged(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    if os.geteuid() != 0:  # already no root: run as is
        return hvconf(*args, cwd=cwd)
    scratch = tempfile.mkdtemp(prefix="hvconf-warm-")
    try:
        return subprocess.run([sys.executable, "-c", _UNPRIVILEGED, scratch, *args], cwd=cwd, capture_output=True,
                              text=True, timeout=TIMEOUT, stdin=subprocess.DEVNULL, env={**os.environ, "HOME": str(cwd)})
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


@pytest.fixture
def shared_folder() -> Iterator[Path]:
    """A folder the unprivileged user can reach (pytest's tmp_path is private to root)."""
    folder = Path(tempfile.mkdtemp(prefix="hvconf-eacces-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


EACCES_CODES = {"include": "include-unreadable", "kernel": "path-unreadable", "guest": "path-unreadable",
                "incbin": "path-unreadable"}


@pytest.mark.parametrize("locked", ["file", "folder"])
@pytest.mark.parametrize("construct", sorted(ERRNO_CONSTRUCTS))
def test_eacces_as_a_user_is_located_in_check_and_build(shared_folder: Path, construct: str, locked: str) -> None:
    text, line, file, suffix = ERRNO_CONSTRUCTS[construct]
    (shared_folder / "locked").mkdir()
    name = f"locked/x{suffix}"
    (shared_folder / name).write_text(f"{SECRET}\n")
    (shared_folder / "g.S").write_text(f'.code16\n.incbin "{name}"\nhlt\n')
    (shared_folder / "root.hv").write_text(text.replace("NAME", name))
    for path in shared_folder.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    (shared_folder / name).chmod(0o000) if locked == "file" else (shared_folder / "locked").chmod(0o000)
    for command in (["check", "root.hv"], ["build", "root.hv", "-o", "out"]):
        done = run_unprivileged(command, shared_folder)
        assert "Traceback" not in done.stdout + done.stderr, done.stderr
        output = done.stdout if command[0] == "check" else done.stderr
        assert done.returncode == 1 and located(output, EACCES_CODES[construct], file, line), output
        assert "Permission denied" in output and SECRET not in output
