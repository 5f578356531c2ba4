"""PowerPC for real: sPAPR launchers compiled here run real guests on a real ppc64le KVM-HV, inside
the emulated POWER9 host (tests/ppc/host), nested (radix only) and powernv9 (hash and radix).

Each test reads one case of the two shared boots (conftest.py); ppc_cases.py has the definitions.
The guest (guests/ppc64/papr.S) reports every hcall's return value on the hvterm console, the
launcher's --trace says which hcalls reached userspace, and the run's status says how it ended.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from hvconf.model.host import dumps, host_facts, load_host_facts
from ppc_cases import CASES, split

REPO = Path(__file__).resolve().parents[2]
HOSTS = REPO / "tests" / "data" / "hosts"
SAVED = {"nested": HOSTS / "ppc64le-nested-kvm-hv.json", "powernv": HOSTS / "ppc64le-powernv9-kvm-hv.json"}
H_SUCCESS, H_FUNCTION, H_PARAMETER = "0x0000000000000000", "0xfffffffffffffffe", "0xfffffffffffffffc"
HELLO = "hello from hvconf ppc64le guest\n"


def run(boots: dict[str, Any], mode: str, name: str) -> tuple[int, str, str]:
    """(status, guest console, launcher stderr with its trace) of case `name` in the `mode` boot."""
    boot, _ = boots[mode]
    case = boot.case(name)
    assert not case.timed_out, f"{mode}/{name} timed out:\n{case.output[-2000:]}"
    console, trace = split(case.output)
    return case.rc, console, trace


def reached(trace: str) -> list[str]:
    """The hcalls that reached the launcher, in order, by name."""
    return re.findall(r"hcall (\w+) \(0x[0-9a-f]+\) reached the launcher", trace)


def reported(console: str) -> dict[str, str]:
    """What the guest printed as `NAME = VALUE` lines."""
    return dict(re.findall(r"^(.+?) = (0x[0-9a-f]{16})$", console, re.MULTILINE))


def source_line(built: Any, needle: str) -> str:
    lines = built.source.read_text().splitlines()
    row = next(i for i, line in enumerate(lines, 1) if needle in line)
    return f"{built.source.name}:{row}:{lines[row - 1].index(needle) + 1}"


@pytest.mark.parametrize("mode", ["nested", "powernv"])
def test_the_sample_prints_through_hvterm_and_powers_off_through_rtas(boots: dict[str, Any], mode: str) -> None:
    status, console, trace = run(boots, mode, "sample")
    assert status == 0, trace[-1500:]
    assert console.startswith(HELLO)
    assert re.search(r"launch: pseries-hello: guest powered off \(RTAS power-off\) after [0-9.]+ s, \d+ exits", trace)
    # every plan step was issued, in order, with the plan's request numbers
    plan = boots[mode][1]["sample"].plan
    issued = re.findall(r"^trace: (\S+)  (KVM_\w+)  (0x[0-9a-f]+)  .*# (\S+)$", trace, re.MULTILINE)
    assert [(fd, name, int(req, 16), src) for fd, name, req, src in issued] == \
        [(s["fd"], s["ioctl"], s["request"], s["source"]) for s in plan["steps"]]
    calls = reached(trace)
    assert calls[-1] == "H_RTAS" and set(calls) == {"H_PUT_TERM_CHAR", "H_PUT_TCE", "H_RTAS"}


def test_an_rtas_token_is_the_definitions(boots: dict[str, Any]) -> None:
    # the guest finds "power-off" in /rtas of the tree the definition produced: 0x2103 here
    status, console, trace = run(boots, "nested", "other-token")
    assert (status, console) == (0, HELLO)
    assert "guest powered off (RTAS power-off)" in trace
    assert boots["nested"][1]["other-token"].plan["launcher"]["papr"]["rtas"] == {"power-off": 0x2103}


def test_the_definition_decides_where_an_hcall_is_served(boots: dict[str, Any]) -> None:
    # the same guest: H_SET_MODE enabled in the kernel (sample) vs left off (hcall-in-launcher)
    _, kernel_console, kernel_trace = run(boots, "nested", "sample")
    status, user_console, user_trace = run(boots, "nested", "hcall-in-launcher")
    assert status == 0
    assert reported(kernel_console)["H_SET_MODE(CIABR)"] == H_SUCCESS  # kvmppc_h_set_mode: CIABR set
    assert "H_SET_MODE" not in reached(kernel_trace)
    assert reported(user_console)["H_SET_MODE(CIABR)"] == H_FUNCTION  # the launcher serves LE only
    assert "H_SET_MODE" in reached(user_trace)
    assert "hcall H_SET_MODE (0x31c) reached the launcher -> -2" in user_trace


@pytest.mark.parametrize("case", ["einval-rtas", "einval-not-in-kernel", "einval-unaligned"])
def test_what_the_checker_refuses_the_kernel_refuses_too(boots: dict[str, Any], case: str) -> None:
    built = boots["nested"][1][case]
    status, console, trace = run(boots, "nested", case)
    assert status == 6 and console == ""
    where = source_line(built, "H_SET_MODE")  # the step's source: the hcall named in `enable`
    assert trace.strip().splitlines()[-1] == f"launch: error: KVM_ENABLE_CAP failed: EINVAL: Invalid argument " \
                                             f"(step at {where})"


def test_tce_calls_are_served_in_the_kernel_for_declared_liobns_only(boots: dict[str, Any]) -> None:
    _, console, trace = run(boots, "nested", "sample")
    values = reported(console)
    assert values["H_PUT_TCE(0x80000000)"] == H_SUCCESS and values["H_GET_TCE(0x80000000)"] == H_SUCCESS
    assert values["TCE read back"] == "0x0000000000008003"
    assert values["H_PUT_TCE(0x12340000)"] == H_PARAMETER
    assert reached(trace).count("H_PUT_TCE") == 1 and "no TCE table has LIOBN 0x12340000" in trace
    # without the table, the same calls reach the launcher and get H_PARAMETER
    status, console, trace = run(boots, "nested", "no-tce")
    assert status == 0
    values = reported(console)
    assert values["H_PUT_TCE(0x80000000)"] == values["H_GET_TCE(0x80000000)"] == H_PARAMETER
    assert [c for c in reached(trace) if "TCE" in c] == ["H_PUT_TCE", "H_GET_TCE", "H_PUT_TCE"]


def test_a_64_bit_dma_window_of_16m_pages_is_filled_in_the_kernel_and_read_back(boots: dict[str, Any]) -> None:
    status, console, trace = run(boots, "nested", "dma64")
    assert status == 0, trace[-1500:]
    # the plan issued KVM_CREATE_SPAPR_TCE_64 with the declared geometry: 16M pages (shift 24), the window
    # from bus address 2^59 (in pages: 2^35), 4G long (256 pages)
    step = next(s for s in boots["nested"][1]["dma64"].plan["steps"] if s["ioctl"] == "KVM_CREATE_SPAPR_TCE_64")
    assert {k: step["args"][k] for k in ("liobn", "page_shift", "offset", "size")} == \
        {"liobn": 0x80000100, "page_shift": 24, "offset": 1 << 35, "size": 256}
    assert re.search(r'trace: vm  KVM_CREATE_SPAPR_TCE_64  0x[0-9a-f]+  \{"flags":0,"liobn":2147483904,'
                     r'"offset":34359738368,"page_shift":24,"size":256,', trace)
    # the guest's side: every call served, what it wrote read back, a put past the window refused
    values = reported(console)
    assert [values[k] for k in ("H_PUT_TCE(64-bit window)", "H_GET_TCE(64-bit window)", "H_PUT_TCE_INDIRECT",
                                "H_STUFF_TCE")] == [H_SUCCESS] * 4  # fmt: skip
    assert (values["TCE64 entry 1"], values["TCE64 entry 5"], values["TCE64 entry 6"]) == \
        ("0x0000000001000003", "0x0000000003000001", "0x0000000000000000")
    assert values["H_PUT_TCE(past the window)"] == H_PARAMETER
    # the launcher's side: no TCE call left the kernel, and the table KVM holds (the fd's mmap, after the
    # run) has the guest's entries: 1 by H_PUT_TCE, 4-7 by H_PUT_TCE_INDIRECT, 6 cleared by H_STUFF_TCE
    assert set(reached(trace)) == {"H_PUT_TERM_CHAR", "H_RTAS"}
    assert "trace: tce:0x80000100: 4 of 256 entries in use (0x1000000-byte pages from bus address " \
           "0x800000000000000; read through the table's mmap): [1] 0x1000003, [4] 0x2000003, [5] 0x3000001, " \
           "[7] 0x5000003\n" in trace


def test_a_reboot_ends_the_run_with_status_9_or_restarts_the_guest_when_asked(boots: dict[str, Any]) -> None:
    # papr.S `reboot` counts its boots in RAM: RTAS system-reboot on the first, power-off on the second
    status, console, trace = run(boots, "nested", "reboot-exit")
    assert (status, console) == (9, HELLO + "boot = 0x0000000000000001\n")
    assert trace.strip().splitlines()[-1] == "launch: error: reboot-exit: vcpu:0: guest asked for a reboot " \
                                             "(RTAS system-reboot) (status 9: guest rebooted)"
    status, console, trace = run(boots, "nested", "reboot")  # --on-reboot restart
    assert status == 0, trace[-1500:]
    assert console == HELLO + "boot = 0x0000000000000001\n" + HELLO + "boot = 0x0000000000000002\n"
    assert trace.count("KVM_CREATE_VM  0x2000ae01") == 2  # a new VM, the plan issued again
    assert "trace: reboot: restart 1 (--on-reboot restart): vcpu:0: guest asked for a reboot (RTAS system-reboot)" \
        in trace
    assert re.search(r"launch: reboot: guest powered off \(RTAS power-off\) after [0-9.]+ s, 14 exits, 1 restarts",
                     trace)
    # a guest that reboots on every boot: 16 restarts, then the 17th reboot ends the run with its status
    status, console, trace = run(boots, "nested", "reboot-loop")
    assert status == 9 and console == "".join(f"{HELLO}boot = 0x{n:016x}\n" for n in range(1, 18))
    assert trace.strip().splitlines()[-1] == (
        "launch: error: reboot-loop: vcpu:0: guest asked for a reboot (RTAS system-reboot), after 16 restarts "
        "(the most --on-reboot restart makes) (status 9: guest rebooted)")


def test_two_vcpus_run_in_their_own_threads(boots: dict[str, Any]) -> None:
    status, console, trace = run(boots, "nested", "smp")
    assert status == 0
    # vCPU 1's line is one hcall; it may land between the two 16-byte chunks of vCPU 0's first line
    assert "secondary up\n" in console
    assert console.replace("secondary up\n", "", 1) == HELLO + "vcpu 1 reported in\n"
    assert "vcpu:1: hcall H_PUT_TERM_CHAR (0x58) reached the launcher -> 0" in trace


def test_h_set_mode_le_switches_every_vcpus_interrupt_endianness(boots: dict[str, Any]) -> None:
    status, console, trace = run(boots, "nested", "little-endian")
    assert status == 0
    assert reported(console)["H_SET_MODE(LE)"] == H_SUCCESS
    assert "hcall H_SET_MODE (0x31c) reached the launcher -> 0 (H_SET_MODE: interrupts little-endian" in trace
    switched = re.findall(r"trace: (vcpu:\d): LPCR (0x[0-9a-f]+) -> (0x[0-9a-f]+) \(interrupts little-endian", trace)
    assert sorted(v for v, _, _ in switched) == ["vcpu:0", "vcpu:1"]  # the caller and the other vCPU
    ile = 1 << 25
    assert all(int(new, 16) == int(old, 16) | ile and not int(old, 16) & ile for _, old, new in switched)


def test_htab_is_allocated_on_powernv_and_refused_before_the_guest_on_nested(boots: dict[str, Any]) -> None:
    status, console, trace = run(boots, "powernv", "hash")
    assert status == 0 and console.startswith(HELLO), trace[-1500:]
    assert re.search(r"trace: vm  KVM_PPC_ALLOCATE_HTAB  0xc004aea7  \{\"order\":19\}", trace)
    assert reported(console)["H_SET_MODE(CIABR)"] == H_SUCCESS
    status, console, trace = run(boots, "nested", "hash-on-nested")
    assert status == 3 and console == ""
    assert "KVM_CREATE_VM  0x2000ae01  {\"type\":1}" not in trace  # refused before the guest's VM existed
    assert "this host cannot run hash-MMU guests" in trace and "build it with `mmu radix`" in trace


NOTE = ("probed for real by `python -m hvconf.kvm.probe` inside the emulated POWER9 host (tests/ppc, {mode} mode: "
        "{what}); refresh with `python -m pytest tests/ppc --update-golden`")
WHAT = {"nested": "QEMU pseries with cap-nested-hv, KVM-HV nested in an LPAR",
        "powernv": "QEMU powernv9, bare-metal KVM-HV"}


@pytest.mark.parametrize("mode", ["nested", "powernv"])
def test_the_probe_matches_the_saved_host_facts(boots: dict[str, Any], mode: str,
                                                request: pytest.FixtureRequest) -> None:
    status, console, _ = run(boots, mode, "probe")
    assert status == 0
    data = json.loads(console)
    live = host_facts({"format": data.pop("format"), "note": NOTE.format(mode=mode, what=WHAT[mode]), **data},
                      f"{mode} probe")
    if request.config.getoption("--update-golden"):
        SAVED[mode].write_text(dumps(live))
    saved = load_host_facts(SAVED[mode])
    assert live.machine == saved.machine == "ppc64le"
    assert live.ppc_mmu == saved.ppc_mmu and live.ppc_mmu is not None
    assert live.ppc_mmu.hash is (mode == "powernv")
    assert [(c.name, c.system, c.vm) for c in live.caps] == [(c.name, c.system, c.vm) for c in saved.caps]


def test_every_case_was_checked() -> None:
    tested = {"sample", "other-token", "hcall-in-launcher", "einval-rtas", "einval-not-in-kernel",
              "einval-unaligned", "no-tce", "smp", "little-endian", "hash", "hash-on-nested", "probe",
              "linux-radix", "linux-smp", "linux-hash", "hwrng-refused",  # these four: test_power_linux.py
              "dma64", "reboot", "reboot-exit", "reboot-loop"}
    assert {c.name for c in CASES} == tested
