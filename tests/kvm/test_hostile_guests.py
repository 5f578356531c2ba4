"""Hostile guests on this host's real /dev/kvm: the console cannot crash, wedge or fool the launcher.

Guests from guests/x86: flood.S writes its console forever, escapes.S prints
terminal escape sequences, bytes that are not UTF-8 and CI log commands, then
halts. Each run is a real generated launch.py (or `hvconf run`) in a real
pipe: `| head -c 100` closes the reader (EPIPE), stdout on /dev/full fails
(ENOSPC), a reader that stops reading must not hold the run past its watchdog
or a SIGINT (the kicks interrupt the waiting writer: EINTR), a stdout left
O_NONBLOCK by someone else must lose no byte (EAGAIN). A console failure ends
the run with status 8 and one line, every vCPU stopped and joined.
"""

from __future__ import annotations

import array
import fcntl
import io
import json
import os
import signal
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path

import pytest

from hvconf.kvm.output import OutputError
from hvconf.kvm.run import execute
from hvconf.kvm.status import Status

from .conftest import DEFINITIONS, REPO

pytestmark = pytest.mark.kvm

TIMEOUT = 60
LINE = b"hvconf flood 0123456789abcdefgh\n"  # what guests/x86/flood.S writes, forever
ESCAPES_SAFE = (
    "\\x1b]0;owned\\x07title\n"
    "\\x1b[2J\\x1b[31mred\\x1b[0m\n"
    "\\x9b31m\\u009b1m\n"
    "\\x3a:error file=a.c,line=1::owned\n"
    " \t\\x3a:warning::indented\n"
    "say ##\\x5berror]v1 and ##vso\\x5btask.complete]x\n"
    "hidden\\x0dshown\n"
    "\\u202etxt.exe\n"
    "\\x00\\x07\\x08\\x7f\\xff\\xc3\n"
    "café a::b # c [d] #[e]\n"
    ":"
).encode()


@pytest.fixture(scope="module")
def launchers(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tests/data/guests/x86-{flood,escapes}.hv built, as `hvconf build` writes them."""
    out = tmp_path_factory.mktemp("hostile")
    subprocess.run([sys.executable, "-m", "hvconf", "build", str(DEFINITIONS / "x86-flood.hv"),
                    str(DEFINITIONS / "x86-escapes.hv"), "-o", str(out)],
                   check=True, capture_output=True, timeout=TIMEOUT)  # fmt: skip
    return out


def launch(launchers: Path, vm: str, *argv: str) -> list[str]:
    return [sys.executable, str(launchers / vm / "launch.py"), *argv]


def one_error(stderr: str, status: int) -> str:
    assert "Traceback" not in stderr and "Exception" not in stderr, stderr
    lines = stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("launch: error: "), stderr
    assert lines[0].endswith(f"(status {status}: " + {8: "output failed)", 4: "watchdog timeout)",
                                                      130: "interrupted)"}[status])  # fmt: skip
    return lines[0]


def test_a_reader_that_goes_away_ends_the_run_with_status_8(launchers, tmp_path):
    # A real shell pipe, as a user types it: `launch.py | head -c 100`.
    script = f"{' '.join(launch(launchers, 'x86-flood', '--timeout', '20'))} 2>{tmp_path}/err | head -c 100; " \
             "echo \" ${PIPESTATUS[0]}\""
    started = time.monotonic()
    done = subprocess.run(["bash", "-c", script], capture_output=True, timeout=TIMEOUT)
    assert time.monotonic() - started < 10  # ended by EPIPE, not by its 20 s watchdog
    head, status = done.stdout[:100], done.stdout[100:]
    assert head == (LINE * 4)[:100] and status == b" 8\n"
    line = one_error((tmp_path / "err").read_text(), 8)
    assert line == "launch: error: x86-flood: console output failed: Broken pipe (EPIPE) (status 8: output failed)"


def test_a_full_disk_ends_the_run_with_status_8(launchers):
    with open("/dev/full", "wb") as full:
        done = subprocess.run(launch(launchers, "x86-flood", "--timeout", "20"), stdout=full, stderr=subprocess.PIPE,
                              text=True, timeout=TIMEOUT)  # fmt: skip
    assert done.returncode == 8
    assert "console output failed: No space left on device (ENOSPC)" in one_error(done.stderr, 8)


def test_a_closed_stdout_ends_the_run_with_status_8(launchers):
    done = subprocess.run(launch(launchers, "x86-flood", "--timeout", "20"), stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True, timeout=TIMEOUT,
                          preexec_fn=lambda: os.close(1))  # fmt: skip
    assert done.returncode == 8
    assert "console output failed: Bad file descriptor (EBADF)" in one_error(done.stderr, 8)


def test_hvconf_run_passes_status_8_through(launchers, tmp_path):
    script = (f"{sys.executable} -m hvconf run {DEFINITIONS / 'x86-flood.hv'} --timeout 20 2>{tmp_path}/err "
              "| head -c 10 >/dev/null; echo ${PIPESTATUS[0]}")
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=TIMEOUT, cwd=REPO)
    assert done.stdout == "8\n"
    assert "console output failed: Broken pipe (EPIPE)" in one_error((tmp_path / "err").read_text(), 8)


@pytest.mark.parametrize(("signum", "status", "said"), [
    (signal.SIGINT, Status.INTERRUPTED, "interrupted by SIGINT"),  # Ctrl-C: the whole process group
    (signal.SIGTERM, Status.TERMINATED, "terminated by SIGTERM"),  # to hvconf alone, passed on
])  # fmt: skip
def test_hvconf_run_lets_the_launcher_stop_its_guest_on_a_signal(tmp_path, signum, status, said):
    log = tmp_path / "console"
    with open(log, "wb") as console:
        proc = subprocess.Popen([sys.executable, "-m", "hvconf", "run", str(DEFINITIONS / "x86-flood.hv"), "--timeout",
                                 "30"], stdout=console, stderr=subprocess.PIPE, text=True, cwd=REPO,
                                start_new_session=True)  # fmt: skip
        deadline = time.monotonic() + 20
        while log.stat().st_size == 0 and time.monotonic() < deadline:  # the guest runs
            time.sleep(0.05)
        if signum == signal.SIGINT:
            os.killpg(proc.pid, signum)
        else:
            proc.send_signal(signum)
        _, stderr = proc.communicate(timeout=20)
    assert proc.returncode == status, stderr
    assert "Traceback" not in stderr
    [line] = [line for line in stderr.splitlines() if line.startswith("launch:")]
    assert f"x86-flood: {said}; stopped vcpu:0" in line


def small_pipe() -> tuple[int, int]:
    """A pipe of two pages, which a flood fills at once. poll(2) calls a pipe writable while a page
    is free: two pages are full for the launcher's writer once more than one page is queued."""
    r, w = os.pipe()
    fcntl.fcntl(w, fcntl.F_SETPIPE_SZ, 8192)
    return r, w


def flood_into_small_pipe(launchers: Path, timeout: str, *,
                          blocking: bool = True) -> tuple[subprocess.Popen[str], int]:
    """The flooding guest's launcher with its stdout on a small pipe that nobody reads yet (left
    O_NONBLOCK when not `blocking`, as some parents share it): the process and the pipe's read end."""
    r, w = small_pipe()
    os.set_blocking(w, blocking)
    proc = subprocess.Popen(launch(launchers, "x86-flood", "--timeout", timeout), stdout=w, stderr=subprocess.PIPE,
                            text=True)  # fmt: skip
    os.close(w)
    return proc, r


def wait_until_full(r: int) -> None:
    deadline = time.monotonic() + 20
    while queued(r) <= 4096 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert queued(r) > 4096


def queued(fd: int) -> int:
    count = array.array("i", [0])
    fcntl.ioctl(fd, termios.FIONREAD, count)
    return count[0]


def test_a_reader_that_stops_reading_cannot_hold_the_run_past_its_watchdog(launchers):
    # The watchdog (4 s) must fire while the console waits for room: the pipe is full well before
    # it, even at CI's load (at 1 s, a loaded run once had not filled it yet and ended in KVM_RUN).
    started = time.monotonic()
    proc, r = flood_into_small_pipe(launchers, "4")
    try:
        wait_until_full(r)  # the writer waits from here on
        _, stderr = proc.communicate(timeout=20)  # before the fix: blocked in write(2) for ever
    finally:
        os.close(r)
    assert proc.returncode == Status.TIMEOUT and time.monotonic() - started < 12
    assert "the console had waited" in one_error(stderr, 4)


def test_sigint_ends_a_run_whose_reader_stopped_reading(launchers):
    proc, r = flood_into_small_pipe(launchers, "30")
    try:
        wait_until_full(r)  # the writer waits
        time.sleep(0.2)
        began = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=20)
    finally:
        os.close(r)
    assert proc.returncode == Status.INTERRUPTED and time.monotonic() - began < 3
    assert "interrupted by SIGINT" in one_error(stderr, 130)


def test_an_o_nonblock_stdout_loses_no_byte(launchers):
    # A parent may leave O_NONBLOCK on the pipe it shares (node, some CI runners): writes then fail
    # with EAGAIN when it is full. Before the fix, bytes were lost; now the writer waits for room.
    proc, r = flood_into_small_pipe(launchers, "3", blocking=False)
    got = bytearray()
    try:
        wait_until_full(r)
        time.sleep(0.3)  # full for a while
        while chunk := os.read(r, 1 << 16):
            got += chunk
        _, stderr = proc.communicate(timeout=20)
    finally:
        os.close(r)
    assert proc.returncode == Status.TIMEOUT, stderr
    assert len(got) > 4096 and bytes(got) == (LINE * (len(got) // len(LINE) + 1))[: len(got)]


def test_two_flooding_vcpus_are_both_stopped_and_joined_when_the_console_fails(make_plan, images):
    plan, base = make_plan("flood", vcpus=2)
    r, w = os.pipe()
    os.close(r)
    threads, fds = threading.active_count(), set(os.listdir("/proc/self/fd"))
    try:
        with open(w, "wb", closefd=False) as out, pytest.raises(OutputError, match="EPIPE"):
            execute(plan, base, timeout=20, out=out)
    finally:
        os.close(w)
    assert threading.active_count() == threads
    assert set(os.listdir("/proc/self/fd")) == fds - {str(w)}


@pytest.mark.parametrize(("argv", "console"), [
    ((), ESCAPES_SAFE),  # a pipe is not a terminal: safe by default
    (("--console", "safe"), ESCAPES_SAFE),
    (("--console", "raw"), None),  # None: the bytes as the guest sent them
])  # fmt: skip
def test_escape_sequences_and_ci_commands_are_rendered_harmless(launchers, argv, console):
    done = subprocess.run(launch(launchers, "x86-escapes", "--timeout", "20", *argv), capture_output=True,
                          timeout=TIMEOUT)  # fmt: skip
    assert done.returncode == 0, done.stderr
    if console is None:  # raw: every byte of the message that ends the guest image, in order
        plan = json.loads((launchers / "x86-escapes" / "plan.json").read_text())
        image = (launchers / "x86-escapes" / plan["images"][0]["path"]).read_bytes()
        assert done.stdout == image[image.index(b"\x1b]0;owned") :]
    else:
        assert done.stdout == console


def test_on_a_terminal_the_console_is_raw_by_default(launchers):
    leader, follower = os.openpty()
    attrs = termios.tcgetattr(follower)
    attrs[1] &= ~termios.OPOST  # no NL -> CR NL on the way out: the bytes as the guest sent them
    termios.tcsetattr(follower, termios.TCSANOW, attrs)
    proc = subprocess.Popen(launch(launchers, "x86-escapes", "--timeout", "20"), stdout=follower,
                            stderr=subprocess.PIPE)  # fmt: skip
    os.close(follower)
    got = bytearray()
    try:
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # EIO: the terminal's last writer is gone
                break
            if not chunk:
                break
            got += chunk
        assert proc.wait(timeout=TIMEOUT) == 0
    finally:
        os.close(leader)
    assert got.startswith(b"\x1b]0;owned\x07title\n\x1b[2J")


def test_trace_lines_go_to_stderr_or_a_file_never_into_the_console(launchers, tmp_path):
    done = subprocess.run(launch(launchers, "x86-escapes", "--trace", "--console", "raw"), capture_output=True,
                          timeout=TIMEOUT)  # fmt: skip
    assert done.returncode == 0
    assert b"trace:" not in done.stdout and done.stdout.startswith(b"\x1b]0;owned")
    assert b"trace: vcpu:0  KVM_RUN" in done.stderr
    trace = tmp_path / "trace.log"
    done = subprocess.run(launch(launchers, "x86-escapes", "--trace-file", str(trace)), capture_output=True,
                          timeout=TIMEOUT)  # fmt: skip
    assert done.returncode == 0 and done.stdout == ESCAPES_SAFE
    assert b"trace:" not in done.stderr and done.stderr.startswith(b"launch: x86-escapes: guest halted")
    assert b"trace: vcpu:0  KVM_RUN" in trace.read_bytes()


def test_a_trace_that_cannot_be_written_is_status_8(launchers):
    with open("/dev/full", "wb") as full:
        done = subprocess.run(launch(launchers, "x86-escapes", "--trace-file", "/dev/full"), stdout=full,
                              stderr=subprocess.PIPE, text=True, timeout=TIMEOUT)  # fmt: skip
    assert done.returncode == 8
    assert "trace output failed: No space left on device (ENOSPC)" in one_error(done.stderr, 8)
