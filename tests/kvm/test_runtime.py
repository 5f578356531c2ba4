"""The plan executor and launcher against this host's real /dev/kvm.

Plans are built by hand (conftest.make_plan) with request numbers from
hvconf.abi. Every real run is bounded by the launcher's own watchdog
(--timeout); the tests also check that it really ends them in time and
that no thread or fd outlives a run.
"""

from __future__ import annotations

import copy
import io
import json
import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from hvconf.kvm.launch import main
from hvconf.kvm.status import Status

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
    """Fails the test if it leaves a thread or an fd behind."""
    threads, fds = threading.active_count(), open_fds()
    yield
    assert threading.active_count() == threads
    assert open_fds() == fds


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


@x86_host
def test_two_vcpus_are_refused_with_a_clear_line(make_plan):
    plan, base = make_plan("hello")
    second = copy.deepcopy(plan["steps"][4])
    second["args"]["vcpu_id"] = 1
    plan["steps"].insert(5, second)
    run = Launch(plan, base)
    assert run.status == Status.HOST
    assert "creates 2 vCPUs; this runtime runs one vCPU per VM" in run.stderr


def test_bad_timeout_is_a_usage_error(make_plan):
    run = Launch(*make_plan("hello"), "--timeout", "0")
    assert run.status == Status.USAGE
    assert run.stderr == "launch: error: --timeout must be a positive number of seconds, not 0\n"


def test_help_and_unknown_options_follow_argparse(make_plan):
    out, err = io.StringIO(), io.StringIO()
    assert main(*make_plan("hello")[:1], ["--help"], Path("."), stdout=out, stderr=err) == 0
    assert "--dry-run" in out.getvalue() and "--timeout SECONDS" in out.getvalue()
    run = Launch(*make_plan("hello"), "--bogus")
    assert run.status == Status.USAGE
    assert run.stderr.splitlines()[-1] == "launch: error: unrecognized arguments: --bogus"


def test_unknown_console_kind_is_a_bad_plan(make_plan):
    plan, base = make_plan("hello")
    plan["console"] = {"kind": "hvterm", "port": 0}
    run = Launch(plan, base)
    assert run.status == Status.USAGE and "console kind 'hvterm' is not one of serial" in run.stderr
