"""Real guests, built from guests/x86 by the compiler and run by their generated launch.py.

Each test compiles a definition (samples/ or tests/data/guests/), writes the
outputs as `hvconf build` does and runs `python launch.py` as a subprocess
with a timeout, then checks what the guest printed and how the run ended.
The vmcall guest also runs in-process through hvconf.kvm.run.execute, to
check that the watchdog leaves no thread or fd behind.
"""

from __future__ import annotations

import io
import json
import os
import re
import threading

import pytest

import hvconf.abi
from hvconf.kvm.run import execute
from hvconf.kvm.status import Status

from .conftest import DEFINITIONS, REPO

pytestmark = pytest.mark.kvm

CPUID_LINE = re.compile(
    rb'cpuid 0x40000000: max (0x[0-9a-f]{8}) signature "([^"]*)"\n'
    rb"cpuid 0x40000001: eax (0x[0-9a-f]{8}) edx (0x[0-9a-f]{8})\n"
)


def mask(*features: str) -> int:
    return sum(hvconf.abi.kvm_feature(f).mask for f in features)


def test_x86_hello_prints_and_halts(build_vm):
    ran = build_vm(REPO / "samples" / "x86-hello.hv").launch("--timeout", "10")
    assert (ran.status, ran.console) == (0, b"hello from hvconf guest\n")
    assert "launch: x86-hello: guest halted after" in ran.stderr


@pytest.mark.parametrize(("name", "features"), [
    ("none", ()),
    ("unhalt", ("PV_UNHALT",)),
    ("three", ("PV_UNHALT", "PV_EOI", "PV_SEND_IPI")),
])  # fmt: skip
def test_long_mode_guest_sees_exactly_the_declared_pv_features(build_vm, name, features):
    vm = build_vm(DEFINITIONS / f"cpuid-{name}.hv")
    ran = vm.launch("--timeout", "10")
    assert ran.status == 0, ran.stderr
    found = CPUID_LINE.fullmatch(ran.console)
    assert found is not None, ran.console
    top, signature, eax, edx = found.groups()
    assert (signature, int(top, 16)) == (b"KVMKVMKVM", 0x40000001)
    assert int(eax, 16) == mask(*features)  # exactly the declared bits, no more
    assert int(edx, 16) == 0  # no hints
    cpuid = next(s for s in vm.plan["steps"] if s["ioctl"] == "KVM_SET_CPUID2")
    assert cpuid["args"]["features"] == int(eax, 16)


def test_two_vcpus_both_print_and_the_run_ends_cleanly(build_vm):
    ran = build_vm(DEFINITIONS / "smp2.hv").launch("--timeout", "10")
    assert ran.status == 0, ran.stderr
    assert sorted(ran.console.splitlines()) == [b"vcpu 0: hello from protected mode",
                                                b"vcpu 1: hello from protected mode"]  # fmt: skip
    assert "every vCPU halted (0, 1)" in ran.stderr


def test_pvspinlock_sample_wakes_its_second_vcpu_and_powers_off(build_vm):
    ran = build_vm(REPO / "samples" / "x86-pvspinlock.hv").launch("--timeout", "10")
    assert ran.status == 0, ran.stderr
    bits = mask("PV_UNHALT", "PV_EOI", "HC_MAP_GPA_RANGE")
    assert ran.console.splitlines() == [
        f"vcpu {i}: APIC id {i}, KVM features {bits:#010x}".encode() for i in (0, 1)
    ]
    assert "guest powered off (SLP_EN at port 0x604)" in ran.stderr


def test_declared_caps_are_issued_and_traced(build_vm):
    vm = build_vm(REPO / "samples" / "x86-pvspinlock.hv")
    ran = vm.launch("--trace", "--timeout", "10")
    assert ran.status == 0, ran.stderr
    enabled = [line.split("  ") for line in ran.stderr.splitlines() if "  KVM_ENABLE_CAP  " in line]
    seen = {(fields[0].removeprefix("trace: "), json.loads(fields[3])["cap"]) for fields in enabled}
    assert seen == {("vm", "KVM_CAP_EXIT_HYPERCALL"), ("vcpu:0", "KVM_CAP_ENFORCE_PV_FEATURE_CPUID"),
                    ("vcpu:1", "KVM_CAP_ENFORCE_PV_FEATURE_CPUID")}  # fmt: skip
    exit_hc = next(f for f in enabled if "KVM_CAP_EXIT_HYPERCALL" in f[3])
    assert '"args":[4096,0,0,0]' in exit_hc[3]  # bit 12: KVM_HC_MAP_GPA_RANGE


def test_vmcall_guest_is_ended_by_the_watchdog_with_a_clear_message(build_vm):
    ran = build_vm(DEFINITIONS / "vmcall.hv").launch("--timeout", "0.5")
    if ran.status == 0:  # a host whose KVM returns from the hypercall
        assert ran.console == b"before vmcall\nvmcall returned 00000000\n"
        return
    assert ran.status == Status.TIMEOUT == 4
    assert ran.console == b"before vmcall\n"
    [line] = ran.stderr.splitlines()
    assert line.startswith("launch: error: vmcall: watchdog: the guest was still running after 0.5 s "
                           "(vcpu:0 had no exit")
    assert line.endswith("stopped vcpu:0 at rip 0x7c1d, a vmcall (status 4: watchdog timeout)")


def test_vmcall_watchdog_run_in_process_leaves_no_thread_or_fd(build_vm):
    vm = build_vm(DEFINITIONS / "vmcall.hv")
    threads, fds = threading.active_count(), sorted(os.listdir("/proc/self/fd"))
    for _ in range(3):
        out = io.BytesIO()
        result = execute(vm.plan, vm.folder, timeout=0.3, out=out)
        assert out.getvalue().startswith(b"before vmcall\n")
        assert result.status in (Status.TIMEOUT, Status.HALTED)
    assert threading.active_count() == threads
    assert sorted(os.listdir("/proc/self/fd")) == fds
