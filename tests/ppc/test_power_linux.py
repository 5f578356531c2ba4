"""An unmodified Linux on pseries under real KVM-HV: Debian's ppc64el kernel (the emulated host's own
vmlinux) boots from hvconf's tree and plan, entered with a flattened tree, to a busybox /init that
prints facts from the guest's own userspace and powers off through RTAS (tests/ppc/linux_guest.py).

Cases (ppc_cases.py), run in the shared boots of conftest.py: nested 1 vCPU radix (H_RANDOM in the
launcher; H_CEDE disabled, and served by KVM anyway), nested 2 vCPUs on the kernel's XICS, powernv9 hash on the HPT KVM_PPC_ALLOCATE_HTAB made (H_RANDOM in
the kernel, from the CPU's DARN; H_CEDE disabled). Assertions are on what the guest printed and on the launcher's
trace and exit statistics, never on time; the times are printed.
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from typing import Any

import pytest

import linux_guest
from ppc_cases import split

SUMMARY = re.compile(r"launch: (\S+): guest powered off \(RTAS power-off\) after ([0-9.]+) s, (\d+) exits")
ICP = {"H_CPPR", "H_EOI", "H_XIRR", "H_XIRR_X", "H_IPI", "H_IPOLL"}


def booted(boots: dict[str, Any], mode: str, name: str) -> tuple[dict[str, str], Counter[str], str]:
    """(the guest's facts, hcalls that reached the launcher by name, the trace) of a Linux case that
    powered off; prints the boot's figures."""
    boot, _ = boots[mode]
    case = boot.case(name)
    console, trace = split(case.output)
    assert not case.timed_out and case.rc == 0, f"{mode}/{name} rc {case.rc}:\n{case.output[-3000:]}"
    summary = SUMMARY.search(trace)
    assert summary is not None and summary.group(1) == name, trace[-2000:]
    facts = linux_guest.facts(console)
    print(f"linux {mode}/{name}: /init at guest uptime {facts.get('uptime')} s, launcher {summary.group(2)} s, "
          f"{summary.group(3)} exits; the case took {case.ms / 1000:.1f} s of the boot", file=sys.stderr)
    calls = Counter(re.findall(r"hcall (\w+) \(0x[0-9a-f]+\) reached the launcher", trace))
    return facts, calls, trace


def host_kernel(boots: dict[str, Any], mode: str) -> str:
    return boots[mode][0].host["kernel"]


def test_linux_boots_radix_on_one_vcpu_and_its_userspace_reports_the_machine(boots: dict[str, Any]) -> None:
    facts, calls, trace = booted(boots, "nested", "linux-radix")
    assert facts["uname"] == host_kernel(boots, "nested")  # the same Debian kernel, now the guest
    assert (facts["platform"], facts["MMU"], facts["cpus"]) == ("pSeries", "Radix", "1")
    # the process table went to KVM through the launcher, once, and KVM took it
    assert calls["H_REGISTER_PROC_TBL"] == 1
    found = re.search(r"H_REGISTER_PROC_TBL \(0x37c\) reached the launcher -> 0 \(KVM_PPC_CONFIGURE_V3_MMU\(flags 0x3, "
                      r"process_table (0x[0-9a-f]+)\)", trace)  # RADIX|GTSE
    assert found is not None, trace[-2000:]
    entry = int(found.group(1), 16)  # PATB_GR | base | log2(size) - 12, as QEMU builds it
    assert entry >> 63 == 1 and 0 < entry & 0xFFF <= 24 and 0 < entry & ~(1 << 63) & ~0xFFF < 256 << 20
    assert calls["H_RTAS"] >= 2 and "RTAS get-time-of-day" in trace  # the RTAS blob and the tokens work
    assert not ICP & set(calls)  # the kernel's XICS answered every interrupt hcall


def test_dev_hwrng_reads_h_random_from_the_launcher_or_the_kernel(boots: dict[str, Any]) -> None:
    # pseries-rng (bound to the ibm,random-v1 node) gives 64 bytes of /dev/hwrng: 8 H_RANDOM calls
    facts, calls, _ = booted(boots, "nested", "linux-radix")
    assert facts["hwrng"] == "64"
    # not enabled in the kernel: every call reached the launcher, which answered from getrandom (the
    # platform also seeds its pool from H_RANDOM at boot)
    assert calls["H_RANDOM"] >= 8 + 8
    facts, calls, _ = booted(boots, "powernv", "linux-hash")
    assert facts["hwrng"] == "64" and calls["H_RANDOM"] == 0  # `enable H_RANDOM`: KVM served them (DARN)


def test_in_kernel_h_random_is_refused_on_a_host_without_an_rng(boots: dict[str, Any]) -> None:
    # nested: KVM_CAP_PPC_HWRNG 0, so the kernel would answer H_HARDWARE; the launcher refuses first
    boot, _ = boots["nested"]
    case = boot.case("hwrng-refused")
    console, trace = split(case.output)
    assert case.rc == 3 and console == ""
    assert "KVM_CAP_PPC_HWRNG" in trace and "KVM_CREATE_VM  0x2000ae01  {\"type\":1}" not in trace


@pytest.mark.parametrize(("mode", "name"), [("nested", "linux-radix"), ("powernv", "linux-hash")])
def test_disabled_h_cede_is_still_served_by_kvm_on_power9_radix_and_hash_guests(boots: dict[str, Any], mode: str,
                                                                                name: str) -> None:
    # The guest does cede: hcall-splpar is advertised, so its idle driver is pseries_idle, whose CEDE state
    # is an H_CEDE (drivers/cpuidle/cpuidle-pseries.c dedicated_cede_loop). KVM-HV on an ISA v3.0 host runs
    # every guest, radix or hash, through kvmhv_run_single_vcpu (book3s_hv.c kvmppc_vcpu_run_hv), and its
    # kvmhv_p9_guest_entry serves H_CEDE before the enabled-hcall bitmap is looked at: `disable H_CEDE` is
    # issued and accepted, yet no idle call reaches the launcher (docs/linux-guests.md)
    facts, calls, trace = booted(boots, mode, name)
    assert '"enable":false,"flags":0,"hcall":"H_CEDE"' in trace
    # the cede state ("CEDE" on a dedicated vCPU, "Shared Cede" on a shared one) was entered during /init's
    # 0.1 s sleep: H_CEDE calls, none of which left the kernel
    cedes = {k: tuple(map(int, v.split())) for k, v in facts.items() if k.startswith("idle_") and "cede" in k.lower()}
    assert facts["idle"] == "pseries_idle" and len(cedes) == 1, facts
    (before, after), = cedes.values()
    print(f"linux {mode}/{name}: {after} cedes ({after - before} in a 0.1 s sleep), {calls['H_CEDE']} in the launcher",
          file=sys.stderr)
    assert after > before and calls["H_CEDE"] == 0


def test_two_vcpus_boot_on_the_kernels_xics(boots: dict[str, Any]) -> None:
    facts, calls, trace = booted(boots, "nested", "linux-smp")
    assert (facts["platform"], facts["MMU"], facts["cpus"], facts["online"]) == ("pSeries", "Radix", "2", "0-1")
    assert not ICP & set(calls)  # IPIs and EOIs stayed in KVM
    assert "KVM_CREATE_DEVICE" in trace and trace.count("KVM_CAP_IRQ_XICS") == 2


def test_linux_runs_on_the_hash_page_table_allocate_htab_made(boots: dict[str, Any]) -> None:
    facts, calls, trace = booted(boots, "powernv", "linux-hash")
    assert (facts["platform"], facts["MMU"], facts["cpus"]) == ("pSeries", "Hash", "1")
    assert re.search(r"KVM_PPC_ALLOCATE_HTAB  0x[0-9a-f]+  \{\"order\":21\}", trace)  # log2(256M) - 7
    assert calls["H_REGISTER_PROC_TBL"] == 1 and "process_table 0x0)" in trace  # flags 0: keep the HPT
    assert calls["H_RANDOM"] == 0  # served in the kernel from the CPU's RNG (KVM_CAP_PPC_HWRNG 1 on powernv9)
