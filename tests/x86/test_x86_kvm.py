"""x86 for real on a complete KVM: launchers compiled here run their guests on kvm_amd inside the
emulated x86_64 host (tests/hosts/x86.py), where `vmmcall` returns, unlike on the development
machine's nested KVM.

Each test reads one case of the session's boot (conftest.py; x86_cases.py has the definitions).
What the guest printed on its serial port, the launcher's status and its exit statistics (the
summary line's exit count, and the --trace notes of what reached the launcher) are asserted. The
exit counts are exact: every byte a guest prints costs two exits (a line-status read, then the
write), and each way of ending costs one (HLT per vCPU without an in-kernel irqchip, or the
power-off write); anything the kernel serves itself costs none.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

import hvconf.abi
from hvconf.abi import hcalls

from .x86_cases import CASES, split

SUMMARY = re.compile(r"^launch: (\S+): (.+) after ([0-9.]+) s, (\d+) exits$", re.MULTILINE)
HELLO = "hello from hvconf guest\n"
CPUID = re.compile(r'cpuid 0x40000000: max (0x[0-9a-f]{8}) signature "([^"]*)"\n'
                   r"cpuid 0x40000001: eax (0x[0-9a-f]{8}) edx (0x[0-9a-f]{8})\n")


def run(x86_boot: Any, name: str) -> tuple[int, str, str]:
    """(status, guest console, launcher stderr with its trace) of case `name`."""
    boot, _ = x86_boot
    case = boot.case(name)
    assert not case.timed_out, f"{name} overran the harness's bound:\n{case.output[-2000:]}"
    console, trace = split(case.output)
    return case.rc, console, trace


def summary(trace: str) -> tuple[str, str, int]:
    """(vm, how it ended, exits handled) from the launcher's last line."""
    found = SUMMARY.findall(trace)
    assert len(found) == 1, trace[-1500:]
    vm, reason, _, exits = found[0]
    return vm, reason, int(exits)


def serial_exits(console: str) -> int:
    return 2 * len(console.encode())


def mask(*features: str) -> int:
    return sum(hvconf.abi.kvm_feature(f).mask for f in features)


def test_x86_hello_prints_and_halts(x86_boot: Any) -> None:
    status, console, trace = run(x86_boot, "x86-hello")
    assert (status, console) == (0, HELLO)
    assert summary(trace) == ("x86-hello", "guest halted", serial_exits(HELLO) + 1)


# the cases run as `launch.py --trace` (the Linux case keeps its long trace in the host, test_x86_linux.py)
LAUNCHERS = [c.name for c in CASES if (c.source is not None or c.text is not None) and not c.script]


@pytest.mark.parametrize("name", LAUNCHERS)
def test_every_plan_step_is_issued_in_order_with_the_plans_numbers(x86_boot: Any, name: str) -> None:
    _, built = x86_boot
    _, _, trace = run(x86_boot, name)
    issued = re.findall(r"^trace: (\S+)  (KVM_\w+)  (0x[0-9a-f]+)  .*# (\S+)$", trace, re.MULTILINE)
    steps = built[name].plan["steps"]
    assert [(fd, ioctl, int(req, 16), src) for fd, ioctl, req, src in issued] == \
        [(s["fd"], s["ioctl"], s["request"], s["source"]) for s in steps]


def test_pvspinlock_starts_its_second_vcpu_through_the_kernels_apic_and_powers_off(x86_boot: Any) -> None:
    status, console, trace = run(x86_boot, "x86-pvspinlock")
    assert status == 0, trace[-1500:]
    bits = mask("PV_UNHALT", "PV_EOI", "HC_MAP_GPA_RANGE")
    assert console.splitlines() == [f"vcpu {i}: APIC id {i}, KVM features {bits:#010x}" for i in (0, 1)]
    # INIT, SIPI and every APIC access stay in the kernel: only the serial port and the power-off exit
    assert summary(trace) == ("x86-pvspinlock", "guest powered off (SLP_EN at port 0x604)", serial_exits(console) + 1)
    enabled = {(fd, cap) for fd, cap in re.findall(r'^trace: (\S+)  KVM_ENABLE_CAP  .*"cap":"(\w+)"', trace, re.M)}
    assert enabled == {("vm", "KVM_CAP_EXIT_HYPERCALL"), ("vcpu:0", "KVM_CAP_ENFORCE_PV_FEATURE_CPUID"),
                       ("vcpu:1", "KVM_CAP_ENFORCE_PV_FEATURE_CPUID")}


@pytest.mark.parametrize(("name", "features"), [
    ("cpuid-none", ()),
    ("cpuid-unhalt", ("PV_UNHALT",)),
    ("cpuid-three", ("PV_UNHALT", "PV_EOI", "PV_SEND_IPI")),
])  # fmt: skip
def test_a_long_mode_guest_sees_exactly_the_declared_pv_features(x86_boot: Any, name: str,
                                                                 features: tuple[str, ...]) -> None:
    status, console, trace = run(x86_boot, name)
    assert status == 0, trace[-1500:]
    found = CPUID.fullmatch(console)
    assert found is not None, console
    top, signature, eax, edx = found.groups()
    assert (signature, int(top, 16), int(eax, 16), int(edx, 16)) == ("KVMKVMKVM", 0x40000001, mask(*features), 0)
    assert summary(trace) == (name, "guest halted", serial_exits(console) + 1)


@pytest.mark.parametrize("vcpus", [2, 4])
def test_several_vcpus_each_print_and_halt(x86_boot: Any, vcpus: int) -> None:
    status, console, trace = run(x86_boot, f"smp{vcpus}")
    assert status == 0, trace[-1500:]
    assert sorted(console.splitlines()) == [f"vcpu {i}: hello from protected mode" for i in range(vcpus)]
    every = ", ".join(map(str, range(vcpus)))
    assert summary(trace) == (f"smp{vcpus}", f"every vCPU halted ({every})", serial_exits(console) + vcpus)


def test_a_real_mode_vmcall_returns_here(x86_boot: Any) -> None:
    # the guest that only the watchdog ends on the development machine: on AMD, KVM rewrites the
    # Intel `vmcall` to `vmmcall` and serves KVM_HC_VAPIC_POLL_IRQ (0) without an exit
    status, console, trace = run(x86_boot, "vmcall")
    assert (status, console) == (0, "before vmcall\nvmcall returned 00000000\n")
    assert "real-mode-hypercall-segment" not in x86_boot[1]["vmcall"].codes  # CS stays 0: no warning
    assert summary(trace) == ("vmcall", "guest halted", serial_exits(console) + 1)


def test_a_vmcall_with_a_cs_base_never_returns_and_the_watchdog_ends_it(x86_boot: Any) -> None:
    # KVM writes the patched `vmmcall` at linear IP, not at CS.base + IP: the guest meets its
    # `vmcall` again and again, and only the launcher's watchdog ends the run, with status 4
    _, built = x86_boot
    status, console, trace = run(x86_boot, "vmcall-segment")
    assert (status, console) == (4, "before vmcall\n")
    assert "real-mode-hypercall-segment" in built["vmcall-segment"].codes  # the rule that says so statically
    at = (built["vmcall-segment"].folder / "guest.bin").read_bytes().index(b"\x0f\x01\xc1")  # IP: CS.base is the load address
    last = trace.strip().splitlines()[-1]
    assert re.fullmatch(r"launch: error: vmcall-segment: watchdog: the guest was still running after 3 s \(vcpu:0 "
                        rf"had no exit for [0-9.]+ s\); stopped vcpu:0 at rip {at:#x}, a vmcall "
                        r"\(status 4: watchdog timeout\)", last), last


ENOSYS, EINVAL = (-int(hcalls.x86_data()["return_codes"][n]) for n in ("KVM_ENOSYS", "KVM_EINVAL"))
EOPNOTSUPP = -95  # Linux's -EOPNOTSUPP, which kvm_pv_send_ipi() returns as is when the VM has no APIC map
# guests/x86/hypercalls.S's table: (hypercall, arguments 1-4), in order
CALLS: list[tuple[str | int, tuple[int, ...]]] = [
    ("KVM_HC_VAPIC_POLL_IRQ", (0, 0, 0, 0)),
    ("KVM_HC_KICK_CPU", (0, 0, 0, 0)),
    ("KVM_HC_SEND_IPI", (1, 0, 0, 0x30)),
    ("KVM_HC_SCHED_YIELD", (0, 0, 0, 0)),
    ("KVM_HC_MAP_GPA_RANGE", (0x200000, 1, 0, 0)),  # a page in guest memory
    ("KVM_HC_MAP_GPA_RANGE", (0x40000000, 1, 0, 0)),  # beyond the 4 MiB of guest memory
    ("KVM_HC_MAP_GPA_RANGE", (0x200800, 1, 0, 0)),  # not page aligned
    (99, (0, 0, 0, 0)),  # no such hypercall
]
ANSWERS = {
    # nothing gated, no irqchip (so no APIC map for SEND_IPI), MAP_GPA_RANGE not forwarded
    "hypercalls-plain": [0, 0, EOPNOTSUPP, 0, ENOSYS, ENOSYS, ENOSYS, ENOSYS],
    # enforce with pv_unhalt and hc_map_gpa_range: SEND_IPI and SCHED_YIELD are gated off; the two
    # well-formed MAP_GPA_RANGE calls reach the launcher, which answers 0 and -KVM_EINVAL (outside
    # guest memory); the kernel refuses the misaligned one itself
    "hypercalls-gated": [0, 0, ENOSYS, ENOSYS, 0, EINVAL, EINVAL, ENOSYS],
    # enforce with pv_send_ipi and pv_sched_yield, in-kernel irqchip: the IPI reaches one APIC
    "hypercalls-ipi": [0, ENOSYS, 1, 0, ENOSYS, ENOSYS, ENOSYS, ENOSYS],
}
FORWARDED = {"hypercalls-gated": [("0x200000", 0), ("0x40000000", EINVAL)]}
MMIO = {"hypercalls-plain": 2}  # the SVR read and write: no in-kernel APIC, the launcher ignores them


def answered(console: str) -> list[tuple[int, tuple[int, ...], int]]:
    """The guest's lines as (number, arguments, rax as a signed 64-bit value)."""
    rows = re.findall(r"^hypercall (0x[0-9a-f]+) \((0x[0-9a-f]+), (0x[0-9a-f]+), (0x[0-9a-f]+), (0x[0-9a-f]+)\) "
                      r"= (0x[0-9a-f]+)$", console, re.MULTILINE)
    signed = [(int(nr, 16), tuple(int(a, 16) for a in args), int(rax, 16)) for nr, *args, rax in rows]
    return [(nr, args, rax - (1 << 64) if rax >> 63 else rax) for nr, args, rax in signed]


def number(name: str | int) -> int:
    return name if isinstance(name, int) else hvconf.abi.x86_hypercall(name).number


@pytest.mark.parametrize("name", ANSWERS)
def test_hypercalls_return_what_the_kernel_and_the_launcher_answer(x86_boot: Any, name: str) -> None:
    status, console, trace = run(x86_boot, name)
    assert status == 0, trace[-1500:]
    assert answered(console) == [(number(nr), args, rax) for (nr, args), rax in zip(CALLS, ANSWERS[name])]
    forwarded = re.findall(r"^trace: vcpu:0: hypercall 12 args \['(0x[0-9a-f]+)', '0x1', '0x0', '0x0'\] -> (-?\d+)$",
                           trace, re.MULTILINE)
    assert [(gpa, int(ret)) for gpa, ret in forwarded] == FORWARDED.get(name, [])
    assert summary(trace) == (name, "guest powered off (SLP_EN at port 0x604)",
                              serial_exits(console) + 1 + len(forwarded) + MMIO.get(name, 0))


def test_a_kick_wakes_a_vcpu_halted_with_interrupts_off(x86_boot: Any) -> None:
    status, console, trace = run(x86_boot, "kick")
    assert status == 0, trace[-1500:]
    lines = console.splitlines()
    assert sorted(lines) == ["vcpu 0: KVM_HC_KICK_CPU(1) = 0x00000000", "vcpu 1: halting", "vcpu 1: woken"]
    assert lines.index("vcpu 1: halting") < lines.index("vcpu 1: woken")
    # the halt, the kick and the wake-up all stay in the kernel
    assert summary(trace) == ("kick", "guest powered off (SLP_EN at port 0x604)", serial_exits(console) + 1)


def test_without_pv_unhalt_the_kick_is_refused_and_nothing_wakes_the_vcpu(x86_boot: Any) -> None:
    status, console, trace = run(x86_boot, "kick-gated")
    assert status == 4, trace[-1500:]
    assert console.splitlines() == ["vcpu 1: halting", f"vcpu 0: KVM_HC_KICK_CPU(1) = {ENOSYS & 0xFFFFFFFF:#010x}"]
    last = trace.strip().splitlines()[-1]
    assert re.fullmatch(r"launch: error: kick-gated: watchdog: the guest was still running after 3 s \(vcpu:0 had no "
                        r"exit for [0-9.]+ s; vcpu:1 had no exit for [0-9.]+ s\); stopped vcpu:0 at rip 0x[0-9a-f]+, "
                        r"vcpu:1 at rip 0x[0-9a-f]+ \(status 4: watchdog timeout\)", last), last
