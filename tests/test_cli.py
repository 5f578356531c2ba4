"""End-to-end tests of the `hvconf` command (check, plan, dts, run).

Exit statuses (0 clean, 1 findings, 2 usage or I/O), the diagnostic text
and JSON formats, folders, --select/--ignore/--werror/-q, colour on a pty,
--help and shell completion for every command, plan/dts output against what
`build` writes, and real runs of the x86 guests on /dev/kvm (marked `kvm`). No command may ever print a
Python traceback. Every subprocess is bounded by `timeout=`.
"""

from __future__ import annotations

import json
import os
import re
import select
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "samples"
SAMPLE_FILES = sorted(SAMPLES.glob("*.hv"))
AUDIT = REPO / "tests" / "data" / "open-audit"
TIMEOUT = 60

DIAGNOSTIC_FIELDS = {"code", "severity", "message", "file", "line", "column", "end_line", "end_column", "notes",
                     "help", "fix"}
# The error is on line 4, column 12 (`two`), so line, column and caret are all checkable.
BAD_HV = "format 1\nvm bad {\n    arch   x86_64\n    vcpus  two\n    memory 2M\n}\n"


def hvconf(*args: str, cwd: Path = REPO, log: Path | None = None,
           timeout: float = TIMEOUT) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    if log is not None:  # record opens of /dev/kvm, here and in the launcher `run` starts
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(AUDIT), env.get("PYTHONPATH")]))
        env["HVCONF_TEST_OPEN_LOG"] = str(log)
    done = subprocess.run([sys.executable, "-m", "hvconf", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)
    assert "Traceback" not in done.stderr + done.stdout, done.stderr
    return done


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`hvconf build samples/*.hv` into a fresh folder."""
    out = tmp_path_factory.mktemp("cli-build")
    done = hvconf("build", *map(str, SAMPLE_FILES), "-o", str(out))
    assert done.returncode == 0, done.stderr
    return out


# --- check ----------------------------------------------------------------------------------

def test_check_accepts_every_sample() -> None:
    done = hvconf("check", *map(str, SAMPLE_FILES))
    assert done.returncode == 0, done.stdout + done.stderr
    assert not re.search(r"error\[", done.stdout + done.stderr)


def test_check_json_of_the_samples_has_no_errors() -> None:
    done = hvconf("check", "--format", "json", *map(str, SAMPLE_FILES))
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert isinstance(found, list)
    assert all(set(d) == DIAGNOSTIC_FIELDS and d["severity"] != "error" for d in found), found


def test_check_reports_an_error_with_place_source_line_and_caret(tmp_path: Path) -> None:
    (tmp_path / "bad.hv").write_text(BAD_HV)
    done = hvconf("check", "bad.hv", cwd=tmp_path)
    assert done.returncode == 1
    lines = (done.stdout + done.stderr).splitlines()
    head = next(i for i, line in enumerate(lines) if re.match(r"^bad\.hv:\d+:\d+: error\[", line))
    assert re.match(r"^bad\.hv:4:12: error\[syntax-error\]: \S", lines[head]), lines[head]
    source, caret = lines[head + 2], lines[head + 3]
    assert re.match(r"^4 \|     vcpus  two$", source), source
    assert caret.index("^") == source.index("two") and caret.rstrip().endswith("^"), (source, caret)
    assert caret.count("^") == len("two")


def test_check_json_has_the_documented_fields(tmp_path: Path) -> None:
    (tmp_path / "bad.hv").write_text(BAD_HV)
    done = hvconf("check", "--format", "json", "bad.hv", cwd=tmp_path)
    assert done.returncode == 1
    found = json.loads(done.stdout)
    assert [set(d) for d in found] == [DIAGNOSTIC_FIELDS] * len(found) and found
    first = found[0]
    assert (first["code"], first["severity"], first["file"], first["line"], first["column"]) == (
        "syntax-error", "error", "bad.hv", 4, 12)
    assert (first["end_line"], first["end_column"]) == (4, 15)
    assert isinstance(first["message"], str) and first["message"]
    assert isinstance(first["notes"], list)
    assert first["help"] is None or isinstance(first["help"], str)


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_check_of_a_missing_file_is_one_line_and_status_2(tmp_path: Path, fmt: str) -> None:
    done = hvconf("check", "--format", fmt, "missing.hv", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("hvconf: error: ") and "missing.hv" in lines[0], done.stderr


def test_check_of_a_folder_without_hv_files_is_status_2(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a definition\n")
    done = hvconf("check", str(tmp_path))
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("hvconf: error: ") and len(done.stderr.splitlines()) == 1
    assert "no .hv files" in done.stderr


def test_check_of_a_folder_checks_every_hv_file_below_it(tmp_path: Path) -> None:
    (tmp_path / "vms" / "sub").mkdir(parents=True)
    (tmp_path / "vms" / "good.hv").write_text("format 1\nvm good {\n    arch x86_64\n    memory 2M\n}\n")
    (tmp_path / "vms" / "sub" / "bad.hv").write_text(BAD_HV)
    done = hvconf("check", "vms", cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    assert re.search(r"^vms/sub/bad\.hv:4:12: error\[syntax-error\]", done.stdout, re.MULTILINE), done.stdout
    assert done.stdout.splitlines()[-1] == "checked 2 files: 1 error, 0 warnings"


def test_an_unreadable_root_is_status_2_and_the_others_are_still_reported(tmp_path: Path) -> None:
    (tmp_path / "bad.hv").write_text(BAD_HV)
    os.mkfifo(tmp_path / "pipe.hv")  # not a regular file: hvconf must not block reading it
    done = hvconf("check", "--format", "json", ".", cwd=tmp_path)
    assert done.returncode == 2
    assert [d["file"] for d in json.loads(done.stdout)] == ["bad.hv"]
    assert done.stderr.splitlines() == ["hvconf: error: pipe.hv: is a FIFO"]


@pytest.mark.parametrize("flag", ["--select", "--ignore"])
def test_an_unknown_code_is_a_usage_error_with_a_suggestion(flag: str) -> None:
    done = hvconf("check", flag, "syntax-error,unknwon-cap", *map(str, SAMPLE_FILES))
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == "hvconf: error: unknown diagnostic code 'unknwon-cap' (did you mean 'unknown-cap'?)\n"


def test_jobs_must_be_a_count() -> None:
    done = hvconf("check", "--jobs", "many", str(SAMPLES))
    assert done.returncode == 2 and "not a number of processes" in done.stderr


def test_werror_and_quiet(tmp_path: Path) -> None:
    warned = SAMPLES / "e500.hv"  # warns abi-unmerged, no errors
    assert hvconf("check", str(warned)).returncode == 0
    assert hvconf("check", "--werror", str(warned)).returncode == 1
    quiet = hvconf("check", "-q", str(warned))
    assert quiet.returncode == 0 and quiet.stdout == ""  # no errors, and -q prints no summary
    failing = hvconf("check", "-q", "--werror", str(warned))
    assert failing.returncode == 1 and "warning[abi-unmerged]" in failing.stdout
    assert "checked" not in failing.stdout


@pytest.mark.parametrize("fmt", ["json", "sarif", "github", "gitlab", "junit"])
def test_machine_formats_have_the_same_exit_status_and_no_colour(tmp_path: Path, fmt: str) -> None:
    (tmp_path / "bad.hv").write_text(BAD_HV)
    done = hvconf("check", "--format", fmt, "--color", "always", "bad.hv", cwd=tmp_path)
    assert done.returncode == 1 and "\x1b[" not in done.stdout
    if fmt == "github":
        assert done.stdout.startswith("::error file=bad.hv,line=4,col=12,endLine=4,endColumn=15,"
                                      "title=hvconf (syntax-error)::")
    elif fmt == "junit":
        from xml.etree import ElementTree

        assert ElementTree.fromstring(done.stdout).get("failures") == "1"
    else:
        assert json.loads(done.stdout)


def _on_pty(args: list[str], env: dict[str, str], cwd: Path) -> str:
    """What hvconf writes to stdout when stdout is a terminal."""
    import pty

    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "hvconf", *args], cwd=cwd, env=env, stdout=slave,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    os.close(slave)
    seen = bytearray()
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        if not select.select([master], [], [], 0.5)[0]:
            continue
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO once the child has closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    os.close(master)
    assert proc.wait(timeout=TIMEOUT) == 1
    return seen.decode()


def test_text_is_coloured_on_a_terminal_unless_no_color(tmp_path: Path) -> None:
    (tmp_path / "bad.hv").write_text(BAD_HV)
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "TERM")} | {"TERM": "xterm"}
    assert "\x1b[1;31merror[syntax-error]\x1b[0m" in _on_pty(["check", "bad.hv"], env, tmp_path)
    assert "\x1b[" not in _on_pty(["check", "bad.hv"], env | {"NO_COLOR": "1"}, tmp_path)
    piped = hvconf("check", "bad.hv", cwd=tmp_path)
    assert "\x1b[" not in piped.stdout and "error[syntax-error]" in piped.stdout
    assert "\x1b[1;31m" in hvconf("check", "--color", "always", "bad.hv", cwd=tmp_path).stdout


# --- version, help, completion --------------------------------------------------------------

def test_version_through_python_m() -> None:
    from hvconf import __version__

    done = hvconf("--version")
    assert done.returncode == 0 and done.stdout == f"hvconf {__version__}\n"


def _commands() -> dict[str, Any]:
    import argparse

    from hvconf.cli.main import parser

    top = parser()
    sub = next(a for a in top._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def test_every_command_has_help_with_examples() -> None:
    commands = _commands()
    assert {"check", "build", "plan", "dts", "run", "completion"} <= set(commands)
    for name, sub in commands.items():
        text = sub.format_help()
        assert "examples:" in text and f"hvconf {name}" in text.split("examples:")[1], name


def _run_examples() -> list[list[str]]:
    """The commands under `examples:` of `hvconf run --help` (a comment follows after two spaces)."""
    from hvconf.cli.main import VM_EXAMPLES

    lines = VM_EXAMPLES["run"].split("examples:", 1)[1].splitlines()
    return [shlex.split(re.split(r"\s{2,}", line.strip())[0]) for line in lines if line.strip()]


def test_run_help_shows_the_examples_that_are_run_below() -> None:
    done = hvconf("run", "--help")
    assert done.returncode == 0
    shown = [line.split() for line in done.stdout.split("examples:", 1)[1].splitlines() if line.strip()]
    assert [words[: len(cmd)] for words, cmd in zip(shown, _run_examples())] == _run_examples()


@pytest.mark.parametrize("command", [
    pytest.param(cmd, marks=() if "--dry-run" in cmd else pytest.mark.kvm) for cmd in _run_examples()
], ids=lambda cmd: " ".join(cmd[2:]))
def test_every_run_example_runs_as_written_from_the_repository_root(command: list[str]) -> None:
    assert command[:2] == ["hvconf", "run"]
    for word in command[2:]:
        if word.endswith(".hv"):
            assert (REPO / word).is_file(), f"the example names {word}, which does not exist"
    done = hvconf(*command[1:], timeout=60)
    assert done.returncode == 0, f"{' '.join(command)}: status {done.returncode}\n{done.stderr}"


def test_check_help_through_the_command_shows_formats_and_exit_statuses() -> None:
    done = hvconf("check", "--help")
    assert done.returncode == 0 and "--format {text,json,sarif,github,gitlab,junit}" in done.stdout and "exit status" in done.stdout


def _bash_complete(script: str, *words: str) -> list[str]:
    """What bash offers for `hvconf WORDS...` (the last word is the one being completed)."""
    line = " ".join(f"'{w}'" for w in ("hvconf", *words))
    done = subprocess.run(["bash", "--norc", "-c", f'source /dev/stdin; COMP_WORDS=({line}); '
                           f'COMP_CWORD={len(words)}; _hvconf; printf "%s\\n" "${{COMPREPLY[@]}}"'],
                          input=script, capture_output=True, text=True, timeout=TIMEOUT, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_bash_completion_offers_commands_options_choices_and_codes() -> None:
    script = hvconf("completion", "bash").stdout
    assert set(_commands()) <= set(_bash_complete(script, ""))
    assert _bash_complete(script, "check", "--fo") == ["--format"]
    assert _bash_complete(script, "check", "--format", "") == ["text", "json", "sarif", "github", "gitlab", "junit"]
    assert "unknown-cap" in _bash_complete(script, "check", "--select", "unknown-c")
    assert _bash_complete(script, "completion", "") == ["bash", "zsh", "fish"]


@pytest.mark.skipif(shutil.which("fish") is None, reason="needs fish")
def test_fish_completion_offers_commands_and_choices() -> None:
    script = hvconf("completion", "fish").stdout
    done = subprocess.run(["fish", "--no-config", "-c", 'source; complete -C "hvconf check --format "; '
                           'complete -C "hvconf "'], input=script, capture_output=True, text=True,
                          timeout=TIMEOUT, check=False)
    assert done.returncode == 0, done.stderr
    offered = {line.split("\t")[0] for line in done.stdout.splitlines()}
    assert {"text", "json", "sarif", "github"} | set(_commands()) <= offered


@pytest.mark.skipif(shutil.which("zsh") is None, reason="needs zsh")
def test_zsh_completion_offers_the_format_choices(tmp_path: Path) -> None:
    # An interactive zsh on a zpty: load the script, type `hvconf check --format <TAB>`,
    # read until the choices are listed (the subprocess timeout bounds the wait).
    (tmp_path / "_hvconf").write_text(hvconf("completion", "zsh").stdout)
    driver = (
        "zmodload zsh/zpty\n"
        "zpty z zsh -f -i\n"
        f"zpty -w z 'autoload -Uz compinit; compinit -u -d {tmp_path}/dump; source {tmp_path}/_hvconf'\n"
        "zpty -w -n z $'hvconf check --format \\t'\n"
        "zpty -r z out '*sarif*' && print -r -- \"$out\"\n"
        "zpty -d z\n")
    done = subprocess.run(["zsh", "-f", "-c", driver], capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    listed = done.stdout.rsplit("--format", 1)[-1]
    assert re.search(r"github\s+gitlab\s+json\s+junit\s+sarif", listed), repr(done.stdout[-300:])


# --- plan and dts ---------------------------------------------------------------------------

@pytest.mark.parametrize("sample", ["pseries", "x86-hello"])
def test_plan_json_equals_the_built_plan_json(built: Path, sample: str) -> None:
    done = hvconf("plan", f"samples/{sample}.hv", "--format", "json")
    assert done.returncode == 0, done.stderr
    assert done.stdout == (built / sample / "plan.json").read_text()


@pytest.mark.parametrize("sample", ["pseries", "x86-hello"])
def test_plan_text_has_one_line_per_step(built: Path, sample: str) -> None:
    plan = json.loads((built / sample / "plan.json").read_text())
    done = hvconf("plan", f"samples/{sample}.hv")
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if re.match(r"^\s*\d+\s", line)]
    assert len(rows) == len(plan["steps"]) > 0
    for number, (row, step) in enumerate(zip(rows, plan["steps"]), 1):
        fields = row.split()
        assert fields[:4] == [str(number), step["fd"], step["ioctl"], f"0x{step['request']:08x}"], row
        assert row.endswith(f"# {step['source']}"), row


def test_dts_of_x86_says_in_one_line_there_is_no_device_tree() -> None:
    done = hvconf("dts", "samples/x86-hello.hv")
    assert done.returncode == 1
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and "device tree" in lines[0], done.stderr


@pytest.mark.skipif(shutil.which("dtc") is None, reason="needs dtc")
def test_dts_of_pseries_compiles_with_dtc_to_the_built_dtb(built: Path, tmp_path: Path) -> None:
    done = hvconf("dts", "samples/pseries.hv")
    assert done.returncode == 0, done.stderr
    assert "/dts-v1/;" in done.stdout

    def dtc(*args: str, stdin: str | None = None) -> str:
        run = subprocess.run(["dtc", "-q", *args], input=stdin, capture_output=True, text=True, timeout=TIMEOUT,
                             check=False)
        assert run.returncode == 0, run.stderr
        return run.stdout

    dtb = tmp_path / "from-dts.dtb"
    dtc("-I", "dts", "-O", "dtb", "-o", str(dtb), "-", stdin=done.stdout)
    # The same tree both ways: dtc's reading of our DTS equals its reading of our DTB.
    assert dtc("-I", "dtb", "-O", "dts", str(dtb)) == dtc("-I", "dtb", "-O", "dts", str(built / "pseries" / "pseries.dtb"))


# --- run ------------------------------------------------------------------------------------

def vmcall_definition(folder: Path) -> Path:
    path = folder / "vmcall.hv"
    guest = "vmcall.S"  # copied in: a definition reads only files of its project (its folder here)
    for name in (guest, "real16.inc"):  # and what it includes
        shutil.copy(REPO / "guests" / "x86" / name, folder / name)
    path.write_text(f'format 1\nvm vmcall {{\n    arch x86_64\n    memory 2M\n    vcpus 1\n    console serial\n'
                    f'    guest "{guest}" mode real at 0x7c00\n}}\n')
    return path


def test_run_dry_run_prints_the_plan_without_opening_kvm(built: Path, tmp_path: Path) -> None:
    log = tmp_path / "opens.log"
    done = hvconf("run", "samples/x86-hello.hv", "--dry-run", log=log)
    assert done.returncode == 0, done.stderr
    steps = json.loads((built / "x86-hello" / "plan.json").read_text())["steps"]
    lines = done.stdout.splitlines()
    assert [line.split("  ")[:2] for line in lines] == [[s["fd"], s["ioctl"]] for s in steps]
    assert not log.exists(), f"/dev/kvm was opened: {log.read_text()}"


@pytest.mark.kvm
def test_run_x86_hello_prints_the_greeting_and_halts(tmp_path: Path) -> None:
    log = tmp_path / "opens.log"
    done = hvconf("run", "samples/x86-hello.hv", log=log, timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "hello from hvconf guest\n"
    assert "/dev/kvm" in log.read_text()  # the audit helper works, so the dry-run check means something


@pytest.mark.kvm
def test_run_trace_names_the_source_of_each_ioctl() -> None:
    done = hvconf("run", "samples/x86-hello.hv", "--trace", timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "hello from hvconf guest\n"
    assert re.search(r"KVM_CREATE_VM\b.*# x86-hello\.hv:\d+:\d+$", done.stderr, re.MULTILINE), done.stderr
    assert re.search(r"KVM_RUN\b.*# x86-hello\.hv:\d+:\d+$", done.stderr, re.MULTILINE), done.stderr


@pytest.mark.kvm
def test_run_of_a_hanging_vmcall_guest_times_out_with_status_4(tmp_path: Path) -> None:
    vmcall_definition(tmp_path)
    started = time.monotonic()
    done = hvconf("run", "vmcall.hv", "--timeout", "1", cwd=tmp_path, timeout=30)
    elapsed = time.monotonic() - started
    assert done.returncode == 4, done.stderr
    assert elapsed < 6, f"took {elapsed:.1f} s for a 1 s watchdog"
    assert re.search(r"time(d)?[ -]?out", done.stderr, re.IGNORECASE), done.stderr
    assert done.stdout.startswith("before vmcall")  # the guest ran up to the vmcall


# --- a `check` command line builds only the `check` parser --------------------------------

@pytest.mark.parametrize("argv", [
    ["check", "x.hv"], ["check"], ["check", "-", "--stdin-filename", "vms/a.hv", "--color", "never"],
    ["check", "--format", "json", "--no-cache", "-j", "2", "--select", "E", "--ignore", "rma", "a", "b"],
    ["check", "--host-facts", "f.json", "--root", ".", "--allow-path", "samples", "-q", "--werror", "x.hv"],
    ["check", "--cache-dir", "c", "--fix", "--diff", "--show-settings", "a.hv", "--extend-select", "x"],
    ["check", "--format", "yaml", "x.hv"], ["check", "--jobs", "-1", "x.hv"], ["check", "--bogus"],
    ["check", "--no-cache", "--cache-dir", "c", "x.hv"], ["check", "--root", "no-such-folder", "x.hv"],
    ["check", "--help"],
])
def test_a_check_command_line_parses_as_with_every_command(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    from hvconf.cli.main import parser

    def parse(top: Any) -> tuple[Any, str, str]:
        try:
            value: Any = vars(top.parse_args(argv))
        except SystemExit as stop:
            value = ("exit", stop.code)
        out = capsys.readouterr()
        return value, out.out, out.err

    assert parse(parser("check")) == parse(parser())


def test_a_check_imports_no_other_commands_module() -> None:
    from hvconf.cli.main import COMMAND_MODULES

    code = ("import sys; from hvconf.cli.main import main; main(['check', sys.argv[1]]);"
            "print(sorted(m for m in sys.modules if m.startswith('hvconf.cli.')))")
    done = subprocess.run([sys.executable, "-c", code, str(SAMPLES / "x86-hello.hv")], capture_output=True, text=True,
                          timeout=TIMEOUT, check=False)
    loaded = set(json.loads(done.stdout.splitlines()[-1].replace("'", '"')))
    assert loaded & set(COMMAND_MODULES) == {"hvconf.cli.host", "hvconf.cli.cache"}  # they add `check` options
