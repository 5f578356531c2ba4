"""The emulated x86_64 host itself, from the session's boot (conftest.py): kvm_amd with nested paging
in an AMD CPU that QEMU's TCG emulates, the harness's case protocol (status, a case that overruns
its bound and its orphans, the next case), and the host's KVM as hvconf's probe sees it, compared
with the saved facts that `hvconf check --host-facts` lints x86 definitions against."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from hvconf import compiler
from hvconf.check import HOST_CHECKS
from hvconf.model.host import dumps, host_facts, load_host_facts

from .x86_cases import CASES, split

REPO = Path(__file__).resolve().parents[2]
SAVED = REPO / "tests" / "data" / "hosts" / "x86_64-emulated-kvm-amd.json"
NOTE = ("probed for real by `python -m hvconf.kvm.probe` inside the emulated x86_64 host (tests/x86: Debian's amd64 "
        "kernel with kvm_amd under qemu-system-x86_64 -accel tcg -cpu max); refresh with "
        "`python -m pytest tests/x86 --update-golden`")


def test_the_host_is_an_amd_cpu_with_kvm_amd_and_nested_paging(x86_boot: Any) -> None:
    boot, _ = x86_boot
    assert boot.host["vendor_id"] == "AuthenticAMD"  # TCG emulates SVM, not VMX: kvm_amd, never kvm_intel
    log = boot.host["kvm_log"].split(";")
    assert "kvm: Nested Virtualization enabled" in log and "SVM: kvm: Nested Paging enabled" in log
    assert re.fullmatch(r"6\.\d+\.\d+-\d+-amd64", boot.host["kernel"])
    assert boot.qemu_rc == 0 and boot.booted_ms is not None
    assert 0 < boot.booted_ms < int(boot.host["kvm_ms"])


def test_the_harness_runs_each_case_in_order_with_its_bound(x86_boot: Any) -> None:
    boot, _ = x86_boot
    status = boot.case("host-1-status")
    assert (status.rc, status.output, status.timed_out) == (3, "hi\n", False)
    overrun = boot.case("host-2-overrun")
    assert overrun.timed_out and overrun.rc == 137 and 2000 <= overrun.ms < 10000
    assert overrun.output == "sleeping\nKilled\n" or overrun.output == "sleeping\n"
    assert boot.case("host-3-after").output == "0\n/payload/lib"  # the orphan sleep was killed too
    assert [c.name for c in boot.cases] == sorted((c.name for c in CASES), key=lambda n: f"{n}/")


def _probe(x86_boot: Any) -> dict[str, Any]:
    boot, _ = x86_boot
    case = boot.case("probe")
    assert case.rc == 0, case.output[-1500:]
    console, _ = split(case.output)
    return json.loads(console)


def test_the_probe_sees_a_complete_kvm(x86_boot: Any) -> None:
    data = _probe(x86_boot)
    caps = {c["name"]: c["system"] for c in data["caps"]}
    assert (data["machine"], data["api_version"]) == ("x86_64", 12)
    assert caps["KVM_CAP_EXIT_HYPERCALL"] == 1 << 12  # only KVM_HC_MAP_GPA_RANGE can reach userspace
    assert caps["KVM_CAP_X86_DISABLE_EXITS"] == 15  # MWAIT, HLT, PAUSE and CSTATE exits can be disabled
    assert caps["KVM_CAP_SYNC_REGS"] == 7  # regs, sregs, events
    assert caps["KVM_CAP_SPLIT_IRQCHIP"] == 1 and caps["KVM_CAP_ENFORCE_PV_FEATURE_CPUID"] == 1


def test_the_probe_matches_the_saved_host_facts(x86_boot: Any, request: pytest.FixtureRequest) -> None:
    data = _probe(x86_boot)
    live = host_facts({"format": data.pop("format"), "note": NOTE, **data}, "x86 probe")
    if request.config.getoption("--update-golden"):
        SAVED.write_text(dumps(live))
    saved = load_host_facts(SAVED)
    assert live.machine == saved.machine == "x86_64"
    assert [(c.name, c.system, c.vm) for c in live.caps] == [(c.name, c.system, c.vm) for c in saved.caps]


def test_the_x86_samples_lint_clean_against_this_host() -> None:
    samples = sorted((REPO / "samples").glob("x86-*.hv"))
    result = compiler.check(samples, host=load_host_facts(SAVED))
    host_codes = {check.code for check in HOST_CHECKS}
    assert [d.code for d in result.report if d.code in host_codes] == []
    assert load_host_facts(SAVED).note == NOTE


def test_every_case_is_checked() -> None:
    tested = {"x86-hello", "x86-pvspinlock", "cpuid-none", "cpuid-unhalt", "cpuid-three", "smp2", "smp4", "vmcall",
              "vmcall-segment", "hypercalls-plain", "hypercalls-gated", "hypercalls-ipi", "kick", "kick-gated", "probe",
              "host-1-status", "host-2-overrun", "host-3-after", "linux"}
    assert {c.name for c in CASES} == tested


@pytest.mark.parametrize(("required", "outcome"), [("", "1 skipped"), ("1", "1 error")])
def test_a_missing_host_is_a_skip_here_and_a_failure_where_it_is_required(tmp_path: Path, required: str,
                                                                          outcome: str) -> None:
    # a PATH without QEMU: the suite's boot cannot start, and its tests say why
    env = {**os.environ, "PATH": str(tmp_path), "HVCONF_X86_REQUIRED": required}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rsf",
                           f"{Path(__file__)}::test_the_host_is_an_amd_cpu_with_kvm_amd_and_nested_paging"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert re.search(rf"^{outcome} in ", done.stdout, re.MULTILINE), done.stdout[-2000:]
    reason = "qemu-system-x86_64 not found: run tests/hosts/install-deps.sh as root"
    if required:
        assert f"HVCONF_X86_REQUIRED is set but the emulated x86_64 host is unavailable: {reason}" in done.stdout
    else:
        assert f"emulated x86_64 host unavailable ({reason}); HVCONF_X86_REQUIRED=1 makes this a failure" in done.stdout
