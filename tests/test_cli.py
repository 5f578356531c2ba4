"""End-to-end tests of the `hvconf` command (check, plan, dts, run).

Exit statuses (0 clean, 1 findings, 2 usage or I/O), the diagnostic text
and JSON formats, plan/dts output against what `build` writes, and real runs
of the x86 guests on /dev/kvm (marked `kvm`). No command may ever print a
Python traceback. Every subprocess is bounded by `timeout=`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "samples"
SAMPLE_FILES = sorted(SAMPLES.glob("*.hv"))
AUDIT = REPO / "tests" / "data" / "build" / "audit"
TIMEOUT = 60

DIAGNOSTIC_FIELDS = {"code", "severity", "message", "file", "line", "column", "end_line", "end_column", "notes",
                     "help"}
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


def test_check_of_a_directory_is_status_2(tmp_path: Path) -> None:
    done = hvconf("check", str(tmp_path))
    assert done.returncode == 2
    assert done.stderr.startswith("hvconf: error: ") and len(done.stderr.splitlines()) == 1


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
    guest = os.path.relpath(REPO / "guests" / "x86" / "vmcall.S", folder)
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
