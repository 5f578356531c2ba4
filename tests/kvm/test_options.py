"""Every option of launch.py and of `hvconf run` that takes a value, given a bad value: status 2, one line.

The launcher reads a plain command line itself (argparse costs more than a
guest's run) and leaves the rest to argparse: both paths must accept the same
lines with the same result and refuse the same values with the same words
(hvconf.kvm.options holds the checks; `hvconf run` uses them too). Then every
bad value, through a real generated launch.py and through `hvconf run` in
subprocesses: exit status 2, exactly one line on stderr, no traceback, nothing
on stdout, and no guest run. `--timeout inf` used to end in an OverflowError
traceback inside the watch, `--guest /dev/zero` in the OOM killer.
"""

from __future__ import annotations

import io
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from hvconf.kvm import options
from hvconf.kvm.launch import UsageError, _parse, plain_options
from hvconf.kvm.run import execute

from .conftest import DEFINITIONS, REPO

TIMEOUT = 60


def outcome(parse: Any, argv: list[str]) -> Any:
    """What a parser makes of `argv`: the options as a dict, or the error's message."""
    try:
        parsed = parse(argv)
    except UsageError as err:
        return f"error: {err}"
    return None if parsed is None else vars(parsed)


def argparse_outcome(argv: list[str]) -> Any:
    return outcome(lambda a: _parse("vm", a, io.StringIO()), argv)


PLAIN = [[], ["--dry-run"], ["--trace", "--quiet"], ["--timeout", "120"], ["--timeout=0.5", "--trace"],
         ["--timeout", "1e3"], ["--timeout", " 7 "], ["--dry-run", "--dry-run", "--trace", "--trace"],
         ["--console", "raw"], ["--console=safe", "--quiet"], ["--kernel", "vmlinux"], ["--guest=g.elf"],
         ["--trace-file", "t.log"], ["--timeout", str(options.MAX_TIMEOUT)], ["--on-reboot", "restart"],
         ["--on-reboot=exit", "--trace"]]  # fmt: skip
REFUSED = [["--timeout", "0"], ["--timeout", "nan"], ["--timeout", "inf"], ["--timeout", "1e309"], ["--timeout", "-1"],
           ["--timeout=-1"], ["--timeout", "x"], ["--timeout="], ["--timeout", str(options.MAX_TIMEOUT * 2)],
           ["--timeout", "1", "--timeout", "2"], ["--console", "RAW"], ["--console="], ["--kernel="],
           ["--guest", ""], ["--trace-file="], ["--console", "raw", "--console", "raw"], ["--on-reboot", "reset"],
           ["--on-reboot="], ["--on-reboot", "exit", "--on-reboot", "exit"]]  # fmt: skip
ARGPARSE = [["--help"], ["-h"], ["--time", "3"], ["--dry"], ["--timeout"], ["--bogus"], ["--"], ["extra"],
            ["--timeout", "--trace"], ["--kernel", "-h"]]  # fmt: skip


@pytest.mark.parametrize("argv", PLAIN + REFUSED, ids=" ".join)
def test_plain_command_lines_read_as_argparse_reads_them(argv):
    mine, theirs = outcome(plain_options, argv), argparse_outcome(argv)
    assert mine is not None, "the plain reader should handle this line"
    if isinstance(theirs, dict) and isinstance(mine, dict):
        assert mine.keys() == theirs.keys()
        assert all(mine[k] == theirs[k] or (mine[k] != mine[k] and theirs[k] != theirs[k]) for k in mine)
    else:
        assert mine == theirs
    assert (argv in REFUSED) == isinstance(mine, str)


@pytest.mark.parametrize("argv", ARGPARSE, ids=" ".join)
def test_every_other_command_line_goes_to_argparse(argv):
    assert plain_options(argv) is None


def test_the_checks():
    assert options.seconds("0.25") == 0.25 and options.seconds(" 7 ") == 7
    for bad in ("0", "-0", "-1", "nan", "inf", "-inf", "1e309", "31536001", "", "x", "0x10"):
        with pytest.raises(ValueError, match="expected a number of seconds above 0 and at most 31536000"):
            options.seconds(bad)
    assert [options.console_mode(m) for m in options.CONSOLE_MODES] == ["auto", "safe", "raw"]
    with pytest.raises(ValueError, match="expected auto, safe or raw, not 'loud'"):
        options.console_mode("loud")
    assert [options.on_reboot(a) for a in options.ON_REBOOT] == ["exit", "restart"]
    with pytest.raises(ValueError, match="expected exit or restart, not 'Restart'"):
        options.on_reboot("Restart")
    for check in (options.file_name, options.name):
        with pytest.raises(ValueError, match="not ''"):
            check("")
        with pytest.raises(ValueError):
            check("a\0b")
    assert math.isfinite(options.MAX_TIMEOUT)


def test_execute_refuses_a_timeout_it_cannot_wait_for_before_anything_runs(make_plan):
    # The API's own check: a caller that skips the launcher's options gets a ValueError, not a hang or
    # an OverflowError inside the watch.
    plan, base = make_plan("hello")
    for bad in (float("inf"), float("nan"), 0.0, -1.0, 1e12):
        with pytest.raises(ValueError, match="timeout"):
            execute(plan, base, timeout=bad, out=io.BytesIO())


# ---- through real processes ----


@pytest.fixture(scope="module")
def hello(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """samples/x86-hello.hv built, as `hvconf build` writes it."""
    out = tmp_path_factory.mktemp("options")
    subprocess.run([sys.executable, "-m", "hvconf", "build", str(REPO / "samples" / "x86-hello.hv"), "-o", str(out)],
                   check=True, capture_output=True, timeout=TIMEOUT)  # fmt: skip
    return out / "x86-hello" / "launch.py"


@pytest.fixture(scope="module")
def specials(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding a FIFO nobody opens, and a sparse file larger than any image the launcher reads."""
    folder = tmp_path_factory.mktemp("specials")
    os.mkfifo(folder / "fifo")
    with open(folder / "huge.bin", "wb") as huge:
        huge.truncate((1 << 30) + 1)
    return folder


def one_line_usage_error(done: subprocess.CompletedProcess[str], prefix: str) -> str:
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(prefix), done.stderr
    assert done.stdout == ""  # no guest ran, no help, no plan
    return lines[0]


def closed_pipe() -> int:
    r, w = os.pipe()
    os.close(r)
    return w


@pytest.mark.parametrize("argv", [["--dry-run"], ["--help"]], ids=" ".join)
@pytest.mark.parametrize("buffered", [True, False], ids=["buffered", "PYTHONUNBUFFERED"])
def test_a_dry_run_or_help_that_cannot_be_written_is_status_8(hello, argv, buffered):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    if not buffered:
        env["PYTHONUNBUFFERED"] = "1"  # argparse drops a failed write of the help: it must be seen anyway
    what = "dry run" if argv == ["--dry-run"] else "help"
    for stdout, said in ((open("/dev/full", "wb"), "No space left on device (ENOSPC)"),
                         (closed_pipe(), "Broken pipe (EPIPE)"), (None, "Bad file descriptor (EBADF)")):  # fmt: skip
        done = subprocess.run([sys.executable, str(hello), *argv], stdout=stdout, stderr=subprocess.PIPE, text=True,
                              env=env, timeout=TIMEOUT, preexec_fn=(lambda: os.close(1)) if stdout is None else None)
        if hasattr(stdout, "close"):
            stdout.close()
        elif stdout is not None:
            os.close(stdout)
        assert (done.returncode, done.stderr) == (8, f"launch: error: x86-hello: {what} output failed: {said}\n")


BAD_TIMEOUTS = ["inf", "1e309", "-1", "nan", "0", "-0", "31536001", "abc", "", "-inf", "1e-400"]
LAUNCHER_BAD = [
    *(([f"--timeout={v}"], "argument --timeout: expected a number of seconds") for v in BAD_TIMEOUTS),
    (["--timeout", "inf"], "argument --timeout: expected a number of seconds"),
    (["--timeout", "-1"], "argument --timeout: expected a number of seconds"),
    (["--timeout"], "argument --timeout: expected one argument"),
    (["--timeout", "1", "--timeout", "2"], "argument --timeout: given twice"),
    (["--time", "1", "--timeout", "2"], "argument --timeout: given twice"),
    (["--console", "loud"], "argument --console: expected auto, safe or raw, not 'loud'"),
    (["--console="], "argument --console: expected auto, safe or raw, not ''"),
    (["--console", "raw", "--console", "safe"], "argument --console: given twice"),
    (["--on-reboot", "reset"], "argument --on-reboot: expected exit or restart, not 'reset'"),
    (["--on-reboot", "exit", "--on-reboot", "restart"], "argument --on-reboot: given twice"),
    (["--kernel="], "argument --kernel: expected a file name, not ''"),
    (["--kernel", "vmlinux"], "argument --kernel: x86-hello has no kernel image (its images: guest)"),
    (["--guest="], "argument --guest: expected a file name, not ''"),
    (["--guest", "/dev/zero"], "argument --guest: cannot read /dev/zero: not a regular file"),
    (["--guest", "/"], "argument --guest: cannot read /: not a regular file"),
    (["--guest", "{specials}/fifo"], "argument --guest: cannot read {specials}/fifo: not a regular file"),
    (["--guest", "{specials}/huge.bin"], "argument --guest: cannot read {specials}/huge.bin: larger than"),
    (["--guest", "{specials}/missing"], "argument --guest: cannot read {specials}/missing: No such file"),
    (["--guest", "a", "--guest", "b"], "argument --guest: given twice"),
    (["--trace-file="], "argument --trace-file: expected a file name, not ''"),
    (["--trace-file", "/"], "argument --trace-file: cannot open /: Is a directory"),
    (["--trace-file", "{specials}/no/such/folder"], "argument --trace-file: cannot open"),
    (["--trace-file", "{specials}/fifo"], "argument --trace-file: cannot open {specials}/fifo: No such device"),
    (["--bogus"], "unrecognized arguments: --bogus"),
]  # fmt: skip


@pytest.mark.parametrize(("argv", "said"), LAUNCHER_BAD, ids=[" ".join(a) for a, _ in LAUNCHER_BAD])
def test_every_bad_launcher_option_is_one_line_and_status_2(hello, specials, argv, said):
    argv = [a.format(specials=specials) for a in argv]
    done = subprocess.run([sys.executable, str(hello), *argv], capture_output=True, text=True, timeout=TIMEOUT,
                          cwd=specials)  # fmt: skip
    line = one_line_usage_error(done, "launch: error: ")
    assert line.startswith(f"launch: error: {said.format(specials=specials)}"), line


def test_flags_given_twice_are_one_request(hello):
    done = subprocess.run([sys.executable, str(hello), "--dry-run", "--dry-run", "--quiet", "--quiet"],
                          capture_output=True, text=True, timeout=TIMEOUT)  # fmt: skip
    assert done.returncode == 0 and done.stderr == "" and "KVM_RUN" in done.stdout


RUN_BAD = [
    *(([f"--timeout={v}"], "hvconf run: error: argument --timeout: expected a number of seconds")
      for v in BAD_TIMEOUTS),
    (["--timeout", "5", "--timeout", "5"], "hvconf run: error: argument --timeout: given twice"),
    (["--console", "loud"], "hvconf run: error: argument --console: expected auto, safe or raw, not 'loud'"),
    (["--on-reboot", "loop"], "hvconf run: error: argument --on-reboot: expected exit or restart, not 'loop'"),
    (["--kernel="], "hvconf run: error: argument --kernel: expected a file name, not ''"),
    (["--kernel", "vmlinux"], "launch: error: argument --kernel: x86-hello has no kernel image"),
    (["--trace-file="], "hvconf run: error: argument --trace-file: expected a file name, not ''"),
    (["--trace-file", "/"], "launch: error: argument --trace-file: cannot open /: Is a directory"),
    (["--vm="], "hvconf run: error: argument --vm: expected a name, not ''"),
    (["--vm", "a", "--vm", "a"], "hvconf run: error: argument --vm: given twice"),
    (["--vm", "nope"], "hvconf: error: no VM named 'nope'"),
    (["--abi-overrides="], "hvconf run: error: argument --abi-overrides: expected a regular file, not ''"),
    (["--abi-overrides", "/dev/zero"], "hvconf run: error: argument --abi-overrides: expected a regular file"),
    (["--abi-overrides", "{specials}/fifo"], "hvconf run: error: argument --abi-overrides: expected a regular file"),
    (["--bogus"], "hvconf: error: unrecognized arguments: --bogus"),
]  # fmt: skip


@pytest.mark.parametrize(("argv", "said"), RUN_BAD, ids=[" ".join(a) for a, _ in RUN_BAD])
def test_every_bad_hvconf_run_option_is_one_line_and_status_2(specials, argv, said):
    argv = [a.format(specials=specials) for a in argv]
    done = subprocess.run([sys.executable, "-m", "hvconf", "run", str(REPO / "samples" / "x86-hello.hv"), *argv],
                          capture_output=True, text=True, timeout=TIMEOUT, cwd=specials)  # fmt: skip
    line = one_line_usage_error(done, said.split(":")[0])
    assert line.startswith(said.format(specials=specials)), line


def test_hvconf_run_of_an_empty_file_name_is_a_usage_error():
    done = subprocess.run([sys.executable, "-m", "hvconf", "run", ""], capture_output=True, text=True,
                          timeout=TIMEOUT)  # fmt: skip
    assert one_line_usage_error(done, "hvconf run: error: ") == (
        "hvconf run: error: argument FILE: expected a file name, not ''")


@pytest.mark.kvm
def test_hvconf_run_passes_good_values_through(tmp_path):
    trace = tmp_path / "trace.log"
    done = subprocess.run([sys.executable, "-m", "hvconf", "run", str(DEFINITIONS / "x86-escapes.hv"),
                           "--timeout", "20", "--console", "raw", "--trace-file", str(trace)],
                          capture_output=True, timeout=TIMEOUT)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(b"\x1b]0;owned\x07title\n")  # raw, as asked
    assert b"KVM_RUN" in trace.read_bytes() and b"trace:" not in done.stderr
