"""The plan executor and launcher against this host's real /dev/kvm.

Plans are built by hand (conftest.make_plan) with request numbers from
hvconf.abi. Every real run is bounded by the launcher's own watchdog
(--timeout); the tests also check that it really ends them in time, that
several vCPUs run in threads of their own in plan order, and that no
thread or fd outlives a run. Guests built by the compiler: test_guests.py.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import os
import platform
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from hvconf.kvm.launch import main
from hvconf.kvm.run import RunResult, execute
from hvconf.kvm.status import MEANING, Status

x86_host = pytest.mark.skipif(platform.machine() != "x86_64", reason="plans here target an x86_64 host")


class Launch:
    """One launcher run: status, guest console bytes, stderr text, wall seconds."""

    def __init__(self, plan: dict[str, Any], base: Path, *argv: str) -> None:
        out, err = io.BytesIO(), io.StringIO()
        started = time.monotonic()
        self.status = main(plan, list(argv), base, out=out, stdout=io.StringIO(), stderr=err)
        self.seconds = time.monotonic() - started
        self.console = out.getvalue()
        self.stderr = err.getvalue()


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


@pytest.fixture
def no_leaks():
    """Fails the test if it leaves a thread, an fd, a blocked signal or a timer behind."""
    threads, fds, mask = threading.active_count(), open_fds(), signal.pthread_sigmask(signal.SIG_BLOCK, [])
    yield
    assert threading.active_count() == threads
    assert open_fds() == fds
    assert signal.pthread_sigmask(signal.SIG_BLOCK, []) == mask  # watchdog.InlineWatch blocked SIGALRM/INT/TERM
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)  # and set the deadline's timer


@pytest.mark.kvm
def test_hello_prints_and_halts(make_plan, no_leaks):
    run = Launch(*make_plan("hello"), "--timeout", "5")
    assert run.console == b"hello from hvconf guest\n"
    assert run.status == Status.HALTED == 0
    assert "guest halted" in run.stderr


@pytest.mark.kvm
def test_quiet_success_prints_nothing_on_stderr(make_plan):
    run = Launch(*make_plan("hello"), "--quiet")
    assert (run.status, run.stderr) == (0, "")


@pytest.mark.kvm
def test_spin_guest_ends_by_watchdog(make_plan, no_leaks):
    timeout = 0.5
    run = Launch(*make_plan("spin"), "--timeout", str(timeout))
    assert run.status == Status.TIMEOUT == 4
    assert run.seconds < timeout + 1
    assert run.stderr.startswith("launch: error: x86-spin: watchdog:")
    assert run.stderr.count("\n") == 1


@pytest.mark.kvm
def test_vmcall_guest_prints_then_times_out(make_plan, no_leaks):
    # On this host a vmcall never comes back from KVM_RUN; only the watchdog ends it.
    run = Launch(*make_plan("vmcall"), "--timeout", "0.5")
    assert run.console.startswith(b"before vmcall\n")
    assert run.status == Status.TIMEOUT
    assert run.seconds < 1.5


@pytest.mark.kvm
def test_full_x86_hello_sequence_with_irqchip_runs_the_guest(make_plan, no_leaks):
    # Every step kind of the design's x86-hello plan, issued for real. With an
    # in-kernel irqchip HLT waits inside KVM for an interrupt instead of
    # exiting, so a `cli; hlt` guest ends by the watchdog.
    run = Launch(*make_plan("hello", irqchip=True), "--timeout", "0.5", "--trace")
    assert run.console == b"hello from hvconf guest\n"
    assert run.status == Status.TIMEOUT
    for ioctl in ("KVM_CREATE_IRQCHIP", "KVM_CREATE_PIT2", "KVM_SET_CPUID2", "KVM_GET_SUPPORTED_CPUID"):
        assert f"  {ioctl}  " in run.stderr


@x86_host
def test_wrong_request_number_is_refused(make_plan, no_leaks):
    plan, base = make_plan("hello")
    plan["steps"][1]["request"] = 0x2000AE47  # KVM_SET_TSS_ADDR as powerpc encodes it
    run = Launch(plan, base, "--trace")
    assert run.status == Status.HOST == 3
    assert "KVM_SET_TSS_ADDR request 0x2000ae47 is not this host's 0x0000ae47" in run.stderr
    assert "test.hv:2:5" in run.stderr
    assert "KVM_CREATE_VM" not in run.stderr


@pytest.mark.kvm
def test_missing_cap_fails_the_host_check_before_any_vm(make_plan, no_leaks):
    plan, base = make_plan("hello", caps=[{"cap": "KVM_CAP_FROM_THE_FUTURE", "cap_nr": 1 << 30, "source": "x.hv:9:1"}])
    run = Launch(plan, base, "--trace")
    assert run.status == Status.HOST
    errors = [line for line in run.stderr.splitlines() if not line.startswith("trace:")]
    assert errors == [
        "launch: error: host cannot run the target: this host's KVM lacks KVM_CAP_FROM_THE_FUTURE "
        f"(cap {1 << 30}), required at x.hv:9:1"
    ]
    assert "KVM_CHECK_EXTENSION" in run.stderr and "KVM_CREATE_VM" not in run.stderr


@pytest.mark.kvm
def test_failed_ioctl_names_the_step(make_plan, no_leaks):
    plan, base = make_plan("hello")
    plan["steps"][2]["args"]["flags"] = 1  # KVM_ENABLE_CAP rejects any flag: EINVAL
    run = Launch(plan, base)
    assert run.status == Status.KVM_ERROR == 6
    assert run.stderr == "launch: error: KVM_ENABLE_CAP failed: EINVAL: Invalid argument (step at test.hv:3:5)\n"


def test_dry_run_is_one_line_per_step_and_parses_back(make_plan):
    plan, base = make_plan("hello", irqchip=True)
    out = io.StringIO()
    assert main(plan, ["--dry-run"], base, stdout=out, stderr=io.StringIO()) == 0
    lines = out.getvalue().splitlines()
    assert len(lines) == len(plan["steps"])
    for line, step in zip(lines, plan["steps"]):
        fd, ioctl, request, rest = line.split("  ", 3)
        args, end = json.JSONDecoder().raw_decode(rest)
        assert rest[end:].startswith("  # ")
        assert (fd, ioctl, int(request, 16), args, rest[end + 4 :]) == (
            step["fd"], step["ioctl"], step["request"], step["args"], step["source"]
        )  # fmt: skip
        assert request.startswith("0x") and len(request) == 10


def test_dry_run_needs_neither_cffi_nor_dev_kvm(make_plan):
    plan, base = make_plan("hello")
    code = (
        "import json, sys; from pathlib import Path; from hvconf.kvm.launch import main; "
        f"s = main(json.loads({json.dumps(json.dumps(plan))}), ['--dry-run'], Path('.')); "
        "assert 'cffi' not in sys.modules, 'dry run imported cffi'; raise SystemExit(s)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30,
                          cwd=Path(__file__).resolve().parents[2])  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == len(plan["steps"])


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda p: p["steps"][0].pop("request"), "plan step 0: missing 'request'"),
        (lambda p: p["steps"][0].update(ioctl="KVM_SMOKE"), "this runtime does not issue KVM_SMOKE"),
        (lambda p: p["steps"][3].update(fd="vcpu:0"), "KVM_SET_USER_MEMORY_REGION goes to a vm fd, not vcpu:0"),
        (lambda p: p["images"][0].update(sha256="0" * 64), "has sha256"),
        (lambda p: p["images"][0].update(guest_phys_addr=(2 << 20) - 4), "does not fit inside one memory slot"),
        (lambda p: p["steps"][-2]["args"].update(rip=-1), "is not a 64-bit unsigned integer"),
        (lambda p: p.update(format=2), "format 2 is not supported"),
    ],
)
def test_bad_plans_are_usage_errors(make_plan, mutate, message):
    plan, base = make_plan("hello")
    mutate(plan)
    run = Launch(plan, base)
    assert run.status == Status.USAGE == 2
    assert run.stderr.startswith("launch: error: bad plan: ") and run.stderr.count("\n") == 1
    assert message in run.stderr


def test_bad_timeout_is_a_usage_error(make_plan):
    run = Launch(*make_plan("hello"), "--timeout", "0")
    assert run.status == Status.USAGE
    assert run.stderr == ("launch: error: argument --timeout: expected a number of seconds above 0 and at most "
                          "31536000 (a year), not '0'\n")


def test_help_and_unknown_options_follow_argparse(make_plan):
    out, err = io.StringIO(), io.StringIO()
    assert main(*make_plan("hello")[:1], ["--help"], Path("."), stdout=out, stderr=err) == 0
    assert "--dry-run" in out.getvalue() and "--timeout SECONDS" in out.getvalue()
    run = Launch(*make_plan("hello"), "--bogus")
    assert run.status == Status.USAGE
    assert run.stderr.splitlines()[-1] == "launch: error: unrecognized arguments: --bogus"


def test_unknown_console_kind_is_a_bad_plan(make_plan):
    plan, base = make_plan("hello")
    plan["console"] = {"kind": "virtio", "port": 0}
    run = Launch(plan, base)
    assert run.status == Status.USAGE and "console kind 'virtio' is not one of serial, hvterm" in run.stderr


def test_a_console_of_another_family_is_a_bad_plan(make_plan):
    plan, base = make_plan("hello")
    plan["console"] = {"kind": "hvterm", "reg": 0x30000000}
    run = Launch(plan, base)
    assert run.status == Status.USAGE and "console kind 'hvterm' is not an x86 console (serial)" in run.stderr


def test_a_hypercall_console_without_its_handlers_is_a_bad_plan():
    # a PowerPC plan (checked here, as the launcher of a POWER host checks it before opening anything)
    from hvconf.contract import PlanError, read_plan
    from hvconf.kvm.steps import validate

    golden = Path(__file__).resolve().parents[1] / "golden" / "pseries-hello" / "pseries-hello" / "plan.json"
    plan = json.loads(golden.read_text())
    validate(read_plan(plan))
    del plan["launcher"]["papr"]
    with pytest.raises(PlanError, match="no papr or epapr section to serve them"):
        validate(read_plan(plan))


class ThreadedStream(io.StringIO):
    """A trace stream that remembers which thread wrote each line."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[tuple[int, str]] = []

    def write(self, text: str) -> int:
        self.lines += [(threading.get_ident(), line) for line in text.splitlines()]
        return super().write(text)


def traced_run(plan: dict[str, Any], base: Path, timeout: float = 5) -> tuple[RunResult, ThreadedStream, bytes]:
    stream, out = ThreadedStream(), io.BytesIO()
    result = execute(plan, base, timeout=timeout, trace=stream, out=out)
    return result, stream, out.getvalue()


@pytest.mark.kvm
def test_two_vcpus_each_print_and_the_run_ends_when_both_halted(make_plan, no_leaks):
    run = Launch(*make_plan("smp", vcpus=2), "--timeout", "5")
    assert sorted(run.console.splitlines()) == [b"vcpu 0: hello from protected mode",
                                                b"vcpu 1: hello from protected mode"]  # fmt: skip
    assert run.status == Status.HALTED
    assert "every vCPU halted (0, 1)" in run.stderr


@pytest.mark.kvm
def test_each_vcpu_is_created_set_up_and_run_by_one_thread_of_its_own(make_plan, no_leaks):
    plan, base = make_plan("smp", vcpus=3)
    result, stream, _ = traced_run(plan, base)
    assert result.status == Status.HALTED
    main = threading.get_ident()
    owner: dict[str, int] = {}
    for ident, line in stream.lines:
        fd = line.split()[1]
        if "KVM_CREATE_VCPU" in line and "issued by the runtime" not in line:
            owner[f"vcpu:{json.loads(line.split('  ')[3])['vcpu_id']}"] = ident
        elif fd.startswith("vcpu:"):
            assert owner[fd] == ident, line  # created before, by the same thread
        elif "issued by the runtime" not in line:
            assert ident == main, line  # system and vm steps stay in the calling thread
    assert len(set(owner.values())) == 3 and main not in owner.values()


@pytest.mark.kvm
def test_a_one_vcpu_run_issues_every_step_and_runs_its_vcpu_in_the_calling_thread(make_plan, no_leaks):
    # No thread hand-off for one vCPU: a launch starts no thread (and never imports threading).
    result, stream, console = traced_run(*make_plan("hello"))
    assert (result.status, console) == (Status.HALTED, b"hello from hvconf guest\n")
    assert {ident for ident, _ in stream.lines} == {threading.get_ident()}
    assert any("KVM_RUN" in line for _, line in stream.lines)


@pytest.mark.kvm
def test_a_one_vcpu_run_gives_the_caller_its_own_timer_back(make_plan):
    # The run's deadline is an ITIMER_REAL of its own; a caller's timer is re-armed with what was left.
    previous = signal.signal(signal.SIGALRM, lambda signum, frame: None)
    try:
        signal.setitimer(signal.ITIMER_REAL, 30, 7)
        assert execute(*make_plan("hello"), timeout=5, out=io.BytesIO()).status == Status.HALTED
        delay, interval = signal.getitimer(signal.ITIMER_REAL)
        assert 20 < delay <= 30 and interval == 7
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.kvm
def test_steps_are_issued_in_plan_order_across_threads(make_plan):
    plan, base = make_plan("smp", vcpus=3)
    _, stream, _ = traced_run(plan, base)
    issued = [line for _, line in stream.lines if line.endswith(tuple(s["source"] for s in plan["steps"]))
              and "issued by the runtime" not in line]  # fmt: skip
    assert [line.split("  ")[:2] for line in issued] == [
        [f"trace: {s['fd']}", s["ioctl"]] for s in plan["steps"]
    ]


@pytest.mark.kvm
def test_a_vcpu_still_running_keeps_the_machine_up_until_the_watchdog(make_plan, images, no_leaks):
    # vCPU 0 runs hello (halts), vCPU 1 spins: "every vCPU halted" never comes.
    plan, base = make_plan("hello", vcpus=2)
    (base / "spin.bin").write_bytes(images["spin"])
    plan["images"].append({"name": "spin", "path": "spin.bin", "guest_phys_addr": 0x9000,
                           "sha256": hashlib.sha256(images["spin"]).hexdigest()})  # fmt: skip
    regs = next(s for s in plan["steps"] if s["fd"] == "vcpu:1" and s["ioctl"] == "KVM_SET_REGS")
    regs["args"]["rip"] = 0x9000
    run = Launch(plan, base, "--timeout", "0.5")
    assert run.console == b"hello from hvconf guest\n"
    assert run.status == Status.TIMEOUT
    assert "vcpu:1 had no exit for" in run.stderr and "vcpu:0 halted" in run.stderr


@pytest.mark.kvm
def test_a_failing_vcpu_step_ends_every_thread_and_names_the_step(make_plan, no_leaks):
    plan, base = make_plan("smp", vcpus=2)
    cap = next(s for s in plan["steps"] if s["fd"] == "vcpu:1" and s["ioctl"] == "KVM_ENABLE_CAP")
    cap["args"]["flags"], cap["source"] = 1, "test.hv:42:1"
    run = Launch(plan, base)
    assert run.status == Status.KVM_ERROR
    assert run.stderr == "launch: error: KVM_ENABLE_CAP failed: EINVAL: Invalid argument (step at test.hv:42:1)\n"
    assert run.console == b""  # nothing ran: the failing step comes before every KVM_RUN


@pytest.mark.kvm
def test_many_runs_in_one_process_leave_no_thread_or_fd(make_plan):
    threads, fds = threading.active_count(), open_fds()
    plan, base = make_plan("smp", vcpus=2)
    for _ in range(15):
        assert execute(plan, base, timeout=5, out=io.BytesIO()).status == Status.HALTED
    plan, base = make_plan("spin", vcpus=2)  # ended by the watchdog, mid KVM_RUN
    for _ in range(3):
        assert execute(plan, base, timeout=0.2, out=io.BytesIO()).status == Status.TIMEOUT
    assert threading.active_count() == threads
    assert open_fds() == fds


@pytest.mark.kvm
def test_plans_that_run_vcpus_before_set_up_ends_are_refused(make_plan):
    plan, base = make_plan("smp", vcpus=2)
    run0 = next(s for s in plan["steps"] if s["ioctl"] == "KVM_RUN")
    plan["steps"].remove(run0)
    plan["steps"].insert(5, run0)
    run = Launch(plan, base)
    assert run.status == Status.USAGE and "KVM_RUN steps must end the plan" in run.stderr
    plan["steps"].remove(run0)
    plan["steps"].append(copy.deepcopy(plan["steps"][-1]))
    run = Launch(plan, base)
    assert run.status == Status.USAGE and "a second KVM_RUN for vcpu 1" in run.stderr


def _launcher(plan: dict[str, Any], base: Path, *argv: str) -> subprocess.Popen[str]:
    code = ("import json, sys; from pathlib import Path; from hvconf.kvm.launch import main; "
            f"raise SystemExit(main(json.loads(sys.stdin.readline()), sys.argv[1:], Path({str(base)!r})))")
    proc = subprocess.Popen([sys.executable, "-c", code, *argv], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[2])
    assert proc.stdin is not None
    proc.stdin.write(json.dumps(plan) + "\n")
    proc.stdin.close()
    return proc


@pytest.mark.kvm
@pytest.mark.parametrize("vcpus", [1, 2])  # 1: the vCPU runs in the main thread (watchdog.InlineWatch)
@pytest.mark.parametrize(("sig", "status", "said"), [
    (signal.SIGINT, Status.INTERRUPTED, "interrupted by SIGINT"),
    (signal.SIGTERM, Status.TERMINATED, "terminated by SIGTERM"),
])  # fmt: skip
def test_sigint_and_sigterm_end_every_vcpu_cleanly(make_plan, sig, status, said, vcpus):
    plan, base = make_plan("spin", vcpus=vcpus)
    proc = _launcher(plan, base, "--trace", "--timeout", "20")
    assert proc.stderr is not None
    started = 0
    for line in proc.stderr:
        started += "KVM_RUN" in line
        if started == vcpus:
            break
    began = time.monotonic()
    proc.send_signal(sig)
    rest = proc.stderr.read()
    assert proc.wait(timeout=10) == status
    assert time.monotonic() - began < 2
    [line] = [line for line in rest.splitlines() if line.startswith("launch:")]
    assert line.startswith(f"launch: error: x86-spin: {said}; stopped vcpu:0 at rip 0x7c0")
    assert line.endswith(f"(status {int(status)}: {MEANING[status]})")
    assert "Traceback" not in rest


# The run's watch failing mid-run (as `--timeout inf` made it: sigtimedwait raised OverflowError) left
# the vCPU threads running: one stayed alive after execute() returned, or its last wake (SIGUSR1)
# arrived once the handler was gone and killed the process (status -10).
WATCH_FAILS = """
import io, json, sys, threading
import hvconf.kvm.run as run

def failing_watch(*args, **kwargs):
    raise OverflowError("timestamp out of range for platform time_t")  # what sigtimedwait(..., inf) raised

run.supervise = failing_watch
plan, base = json.loads(sys.argv[1]), sys.argv[2]
for _ in range(20):  # each vCPU thread halts at once: its last act is the wake that once killed us
    try:
        run.execute(plan, base, timeout=5, out=io.BytesIO())
    except OverflowError:
        pass
    assert threading.active_count() == 1, threading.enumerate()
print("survived")
"""


@pytest.mark.kvm
def test_a_failed_watch_still_stops_every_vcpu_before_the_kick_handler_goes(make_plan):
    plan, base = make_plan("smp", vcpus=2)
    done = subprocess.run([sys.executable, "-c", WATCH_FAILS, json.dumps(plan), str(base)], capture_output=True,
                          text=True, timeout=60, cwd=Path(__file__).resolve().parents[2])  # fmt: skip
    assert done.returncode == 0, (done.returncode, done.stderr)  # -10 was SIGUSR1
    assert done.stdout == "survived\n"


def test_a_sigint_outside_the_run_is_status_130_without_a_traceback():
    # The run catches its own SIGINT; one that lands after it (a second Ctrl-C while the launcher
    # reports the first) reached Python's top level as a KeyboardInterrupt traceback.
    code = ("import hvconf.kvm.launch as l\n"
            "def main(*args, **kwargs):\n    raise KeyboardInterrupt\n"
            "l.main = main\nl.run_as_process({}, [], '.')\n")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          cwd=Path(__file__).resolve().parents[2])  # fmt: skip
    assert (done.returncode, done.stderr) == (130, "launch: error: interrupted\n")


def uart_io(direction: str, reg: int, value: int | None = None) -> Any:
    from hvconf.kvm.ioctls.kvm_run import Io

    data = b"" if value is None else bytes([value])
    return Io(direction, 1, 0x3F8 + reg, 1, data, 4096)  # type: ignore[arg-type]


def test_serial_registers_behave_as_linux_probes_them():
    from hvconf.kvm.x86.serial import Serial16550

    out = io.BytesIO()
    uart = Serial16550(0x3F8, out)

    def read_plan(reg: int) -> int:
        return uart.handle(uart_io("in", reg))[0]  # type: ignore[index]

    def write(reg: int, value: int) -> None:
        assert uart.handle(uart_io("out", reg, value)) == b""

    write(7, 0xA5)  # scratch register
    assert read_plan(7) == 0xA5
    write(1, 0xFF)  # IER keeps its 4 defined bits
    assert read_plan(1) == 0x0F
    assert read_plan(2) == 0x01  # IIR: no interrupt pending
    write(2, 0x07)  # FCR: FIFOs on (and reset)
    assert read_plan(2) == 0xC1
    write(3, 0x83)  # DLAB on: offsets 0/1 are the divisor
    write(0, 0x01), write(1, 0x00)
    assert (read_plan(0), read_plan(1), read_plan(3)) == (0x01, 0x00, 0x83)
    write(3, 0x03)
    assert read_plan(1) == 0x0F  # IER again, untouched by the divisor write
    assert (read_plan(5), read_plan(6)) == (0x60, 0xB0)  # LSR: transmitter empty; MSR: DCD, DSR, CTS
    write(4, 0x1A)  # MCR: loopback with RTS and OUT2
    assert read_plan(6) == 0x90  # CTS <- RTS, DCD <- OUT2
    write(0, ord("x"))  # looped back, never on the wire
    write(4, 0x03)
    write(5, 0x00)  # LSR is read-only
    write(0, ord("k"))
    assert out.getvalue() == b"k" and read_plan(5) == 0x60 and read_plan(0) == 0


def test_serial_keeps_whole_writes_from_several_threads():
    from hvconf.kvm.x86.serial import Serial16550
    from hvconf.kvm.ioctls.kvm_run import Io

    out = io.BytesIO()
    uart = Serial16550(0x3F8, out)

    def send(letter: bytes) -> None:
        for _ in range(200):
            uart.handle(Io("out", 1, 0x3F8, 4, letter * 4, 4096))

    workers = [threading.Thread(target=send, args=(c,)) for c in (b"a", b"b")]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    data = out.getvalue()
    assert len(data) == 1600 and {data[i : i + 4] for i in range(0, 1600, 4)} == {b"aaaa", b"bbbb"}


ENDINGS = {
    # vCPU 1 powers off while vCPU 0 spins: one vCPU ends the machine for all
    "power-off": (".code32\n test %edi, %edi\n jz 1f\n mov $0x604, %dx\n mov $0x2000, %ax\n out %ax, %dx\n"
                  "1: jmp 1b\n", Status.HALTED, "launch: x86-test: guest powered off (SLP_EN at port 0x604)"),
    "i8042-reset": (".code32\n mov $0xfe, %al\n out %al, $0x64\n hlt\n", Status.REBOOTED,
                    "launch: error: x86-test: vcpu:0: guest asked for a reset (0xfe to i8042 port 0x64)"),
    # an IDT of limit 0: #UD cannot be delivered, nor the #DF after it
    "triple-fault": (".code32\n lidt (zero - _start)(%edi)\n ud2\n zero: .word 0\n .long 0\n", Status.GUEST_SHUTDOWN,
                     "launch: error: x86-test: vcpu:0: guest shut down (KVM_EXIT_SHUTDOWN, e.g. a triple fault)"),
}  # fmt: skip


@pytest.mark.kvm
@pytest.mark.parametrize("case", sorted(ENDINGS))
def test_how_the_machine_ends(make_plan, tmp_path, case, no_leaks):
    from hvconf.emit.guest import assemble

    source, status, said = ENDINGS[case]
    (tmp_path / "end.S").write_text(f"\t.text\n_start:\n{source}")
    vcpus = 2 if case == "power-off" else 1
    plan, base = make_plan(image=assemble(tmp_path / "end.S", code16=False), mode="prot32", vcpus=vcpus)
    for step in plan["steps"]:
        if step["ioctl"] == "KVM_SET_REGS" and case == "triple-fault":
            step["args"]["rdi"] = step["args"]["rip"]  # the load address, for the lidt operand
    run = Launch(plan, base, "--timeout", "5")
    assert run.status == status
    assert run.stderr.startswith(said)


# Counts its boots at 0x500, in RAM a restart keeps (the plan writes only the image), prints the
# count, and resets through the i8042 on its first boot, powers off on its second.
REBOOTS_ONCE = (".code32\n incb 0x500\n mov 0x500, %al\n add $'0', %al\n mov $0x3f8, %dx\n out %al, %dx\n"
                " cmpb $2, 0x500\n jae 1f\n mov $0xfe, %al\n out %al, $0x64\n hlt\n"
                "1: mov $0x604, %dx\n mov $0x2000, %ax\n out %ax, %dx\n hlt\n")


@pytest.mark.kvm
@pytest.mark.parametrize("on_reboot", ["exit", "restart"])
def test_an_i8042_reset_is_a_reboot_that_restarts_when_asked(make_plan, tmp_path, on_reboot, no_leaks):
    from hvconf.emit.guest import assemble

    (tmp_path / "reboot.S").write_text(f"\t.text\n_start:\n{REBOOTS_ONCE}")
    plan, base = make_plan(image=assemble(tmp_path / "reboot.S", code16=False), mode="prot32")
    run = Launch(plan, base, "--timeout", "5", "--on-reboot", on_reboot)
    if on_reboot == "exit":
        assert (run.status, run.console) == (Status.REBOOTED, b"1")
        assert run.stderr.startswith("launch: error: x86-test: vcpu:0: guest asked for a reset (0xfe to i8042")
    else:  # the second boot saw the first one's count: the same RAM, the image written again
        assert (run.status, run.console) == (Status.HALTED, b"12")
        assert re.match(r"launch: x86-test: guest powered off \(SLP_EN at port 0x604\) after [0-9.]+ s, "
                        r"\d+ exits, 1 restarts", run.stderr), run.stderr


class _CountingSink(io.RawIOBase):
    """A console that keeps a count and the first bytes, so a flood costs no memory."""

    def __init__(self) -> None:
        self.count, self.head = 0, b""

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.head = (self.head + bytes(data))[:16] if len(self.head) < 16 else self.head
        self.count += len(data)
        return len(data)


@pytest.mark.kvm
def test_a_guest_flooding_the_console_ends_by_watchdog_without_leaks(make_plan, tmp_path, no_leaks):
    from hvconf.emit.guest import assemble

    (tmp_path / "flood.S").write_text("\t.text\n_start:\n.code32\n mov $0x3f8, %dx\n mov $'A', %al\n"
                                      "1: out %al, %dx\n jmp 1b\n")
    plan, base = make_plan(image=assemble(tmp_path / "flood.S", code16=False), mode="prot32")
    sink = _CountingSink()
    started = time.monotonic()
    status = main(plan, ["--timeout", "1"], base, out=sink, stdout=io.StringIO(), stderr=io.StringIO())
    assert status == Status.TIMEOUT
    assert time.monotonic() - started < 5
    assert sink.count > 1000 and sink.head == b"A" * 16  # it really flooded, and every byte got through


def test_guest_memory_beyond_the_host_is_refused_before_anything_is_mapped(make_plan, monkeypatch):
    import hvconf.kvm.run as run

    plan, base = make_plan("hello")
    region = next(s for s in plan["steps"] if s["ioctl"] == "KVM_SET_USER_MEMORY_REGION")
    region["args"]["memory_size"] = 1 << 40
    monkeypatch.setattr(run, "host_memory", lambda: 64 << 30)
    monkeypatch.setattr(run, "Kvm", None)  # opening /dev/kvm would fail the test loudly
    run_ = Launch(plan, base)
    assert run_.status == Status.HOST
    assert run_.stderr.strip() == ("launch: error: host cannot run the target: x86-hello needs 0x10000000000 bytes "
                                   f"of guest memory ({region['source']}); this host has 0x1000000000")


@pytest.mark.kvm
def test_a_host_with_less_memory_than_the_image_limit_still_loads_its_images(make_plan, tmp_path):
    # The image limit is the larger of guest memory and 1 GiB; reading a 512-byte image used to allocate
    # the whole limit first (read(limit + 1)), a MemoryError on the emulated POWER9 of tests/ppc (1 GiB of
    # RAM). An address space of 768 MiB here is that host.
    plan, base = make_plan("hello")
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    code = ("import json, resource, sys; resource.setrlimit(resource.RLIMIT_AS, (768 << 20, 768 << 20)); "
            "from hvconf.kvm.launch import main; "
            f"sys.exit(main(json.load(open({str(tmp_path / 'plan.json')!r})), ['--quiet'], {str(base)!r}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60,
                          cwd=Path(__file__).resolve().parents[2])  # fmt: skip
    assert (done.returncode, done.stderr, done.stdout) == (0, b"", b"hello from hvconf guest\n")


@pytest.mark.kvm
def test_vcpu_threads_never_look_up_their_familys_parts(make_plan, monkeypatch, no_leaks):
    # Each vCPU thread once imported its family's exits.py itself; on a slow host (the emulated x86 of
    # tests/x86) one thread got the module another was still importing, half made: AttributeError
    # handle_exit. The run resolves its family in the main thread; the lookup refuses any other here.
    import hvconf.kvm.families as families

    real = families.part

    def main_thread_only(arch: str, name: str) -> Any:
        assert threading.current_thread() is threading.main_thread(), f"{name} looked up by a vCPU thread"
        return real(arch, name)

    monkeypatch.setattr(families, "part", main_thread_only)
    run = Launch(*make_plan("smp", vcpus=4), "--timeout", "10")
    assert run.status == Status.HALTED, run.stderr
    assert sorted(run.console.splitlines()) == [f"vcpu {i}: hello from protected mode".encode() for i in range(4)]
