"""ioctl plans: the numbers of each target's ABI, the order KVM needs, and
names beside numbers, checked on the bundled samples."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest

from hvconf import abi, compiler
from hvconf.abi import ioc

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
ALL = sorted(p.name for p in SAMPLES.glob("*.hv"))


@lru_cache(maxsize=None)
def plan_of(sample: str) -> dict[str, Any]:
    result = compiler.build([SAMPLES / sample])
    assert not result.report.has_errors, [d.message for d in result.report]
    [built] = result.built
    return built.plan


def steps(sample: str, ioctl: str | None = None, fd: str | None = None) -> list[dict[str, Any]]:
    return [s for s in plan_of(sample)["steps"]
            if (ioctl is None or s["ioctl"] == ioctl) and (fd is None or s["fd"] == fd)]


@pytest.mark.parametrize("sample, create_vm, enable_cap", [
    ("x86-hello.hv", 0xAE01, None), ("x86-pvspinlock.hv", 0xAE01, 0x4068AEA3),
    ("pseries.hv", 0x2000AE01, 0x8068AEA3), ("e500.hv", 0x2000AE01, 0x8068AEA3), ("s390x.hv", 0xAE01, 0x4068AEA3),
])
def test_request_numbers_are_the_targets_abi(sample: str, create_vm: int, enable_cap: int | None) -> None:
    assert steps(sample, "KVM_CREATE_VM")[0]["request"] == create_vm
    if enable_cap is not None:
        assert {s["request"] for s in steps(sample, "KVM_ENABLE_CAP")} == {enable_cap}


@pytest.mark.parametrize("sample", ALL)
def test_every_request_decodes_to_its_declared_direction(sample: str) -> None:
    plan = plan_of(sample)
    layout = ioc.POWERPC if plan["abi"] == "powerpc" else ioc.GENERIC
    for step in plan["steps"]:
        info = abi.ioctl(step["ioctl"])
        decoded = ioc.decode(layout, step["request"])
        assert (decoded.direction, decoded.type_, decoded.nr) == (info.direction, 0xAE, info.nr), step["ioctl"]
        assert decoded.size == abi.arg_size(info, plan["arch"])


@pytest.mark.parametrize("sample", ALL)
def test_order_is_the_order_kvm_needs(sample: str) -> None:
    plan = plan_of(sample)
    names = [(s["fd"], s["ioctl"]) for s in plan["steps"]]
    assert names[0] == ("system", "KVM_CREATE_VM")
    first_vcpu = next(i for i, (_, n) in enumerate(names) if n == "KVM_CREATE_VCPU")
    memory = next(i for i, (_, n) in enumerate(names) if n == "KVM_SET_USER_MEMORY_REGION")
    assert memory < first_vcpu
    for i, (fd, name) in enumerate(names):
        if name in ("KVM_CREATE_IRQCHIP", "KVM_CREATE_PIT2", "KVM_PPC_ALLOCATE_HTAB", "KVM_CREATE_SPAPR_TCE",
                    "KVM_CREATE_SPAPR_TCE_64", "KVM_PPC_RTAS_DEFINE_TOKEN") or (fd == "vm" and name == "KVM_ENABLE_CAP"):
            assert i < first_vcpu, name
    created: set[str] = set()
    for step in plan["steps"]:
        if step["ioctl"] == "KVM_CREATE_VCPU":
            created.add(f"vcpu:{step['args']['vcpu_id']}")
        elif step["fd"].startswith("vcpu:"):
            assert step["fd"] in created, step
    runs = [i for i, (_, n) in enumerate(names) if n == "KVM_RUN"]
    assert runs == list(range(len(names) - len(runs), len(names)))
    # every vCPU runs, except those the guest starts itself (s390: SIGP START/RESTART)
    stopped = {f"vcpu:{i}" for i in plan["launcher"].get("s390", {}).get("stopped_until_sigp", ())}
    assert {plan["steps"][i]["fd"] for i in runs} == created - stopped and len(runs) == len(created - stopped)


@pytest.mark.parametrize("sample", ["x86-hello.hv", "x86-pvspinlock.hv"])
def test_x86_cpuid_comes_before_other_vcpu_state(sample: str) -> None:
    for vcpu in {s["fd"] for s in plan_of(sample)["steps"] if s["fd"].startswith("vcpu:")}:
        assert steps(sample, fd=vcpu)[0]["ioctl"] == "KVM_SET_CPUID2"


def test_pvspinlock_features_exit_mask_and_enforcement() -> None:
    [exit_cap] = [s for s in steps("x86-pvspinlock.hv", "KVM_ENABLE_CAP", "vm")]
    assert exit_cap["args"]["cap"] == "KVM_CAP_EXIT_HYPERCALL" and exit_cap["args"]["args"][0] == 1 << 12
    enforce = [s for s in steps("x86-pvspinlock.hv", "KVM_ENABLE_CAP") if s["fd"] != "vm"]
    assert [s["fd"] for s in enforce] == ["vcpu:0", "vcpu:1"]
    assert all(s["args"]["cap_nr"] == 190 and s["args"]["args"][0] == 1 for s in enforce)
    bits = abi.kvm_feature("PV_UNHALT").mask | abi.kvm_feature("PV_EOI").mask | abi.kvm_feature("HC_MAP_GPA_RANGE").mask
    assert {s["args"]["features"] for s in steps("x86-pvspinlock.hv", "KVM_SET_CPUID2")} == {bits}


def test_pseries_hcall_toggles_name_their_opcodes() -> None:
    toggle_steps = [s for s in steps("pseries.hv", "KVM_ENABLE_CAP", "vm") if s["args"]["cap"] == "KVM_CAP_PPC_ENABLE_HCALL"]
    toggles = [s["args"] for s in toggle_steps]
    # `preset qemu` in the base file first (QEMU's additions to the HV defaults), then the VM's own lines.
    from_preset = {a["hcall"] for a, s in zip(toggles, toggle_steps) if s["source"] == "base/pseries.hv:16:21"}
    assert from_preset == {"H_CLEAR_MOD", "H_CLEAR_REF", "H_LOGICAL_CI_LOAD", "H_LOGICAL_CI_STORE", "H_PAGE_INIT",
                           "H_PUT_TCE_INDIRECT", "H_SET_MODE", "H_STUFF_TCE"}
    assert [(a["hcall"], a["args"][1], s["source"]) for a, s in zip(toggles, toggle_steps)][-3:] == [
        ("H_RANDOM", 1, "pseries.hv:13:17"), ("H_RPT_INVALIDATE", 1, "pseries.hv:13:26"), ("H_CEDE", 0, "pseries.hv:14:17")]
    for args in toggles:
        assert args["args"][0] == abi.papr_hcall(args["hcall"]).opcode and args["cap_nr"] == 104
        assert args["flags"] == 0


def test_pseries_htab_tce_and_rtas_steps() -> None:
    assert steps("pseries.hv", "KVM_PPC_ALLOCATE_HTAB")[0]["args"] == {"order": 25}
    [legacy] = steps("pseries.hv", "KVM_CREATE_SPAPR_TCE")
    [wide] = steps("pseries.hv", "KVM_CREATE_SPAPR_TCE_64")
    assert legacy["args"] == {"liobn": 0x71000000, "window_size": 256 << 20, "table": "vio0"}
    assert wide["args"] == {"liobn": 0x71000100, "page_shift": 16, "flags": 0, "offset": 0, "size": (1 << 30) >> 16,
                            "table": "vio1"}
    tokens = [s["args"]["name"] for s in steps("pseries.hv", "KVM_PPC_RTAS_DEFINE_TOKEN")]
    assert tokens == ["ibm,set-xive", "ibm,get-xive"]  # the others are the launcher's
    assert plan_of("pseries.hv")["launcher"]["papr"]["rtas"] == {"power-off": 0x2003, "system-reboot": 0x2004}


def test_papr_enabled_on_every_vcpu_with_the_base_files_line() -> None:
    papr = [s for s in steps("pseries.hv", "KVM_ENABLE_CAP") if s["args"]["cap"] == "KVM_CAP_PPC_PAPR"]
    assert [s["fd"] for s in papr] == [f"vcpu:{i}" for i in range(8)]
    assert {s["source"] for s in papr} == {"base/pseries.hv:8:5"}


def test_sources_are_relative_to_the_root_file() -> None:
    for sample in ALL:
        for step in plan_of(sample)["steps"]:
            assert step["source"] and not step["source"].startswith("/"), step


def test_unmerged_proposal_is_carried_without_numbers() -> None:
    plan = plan_of("e500.hv")
    assert set(plan["requires"]["unmerged"]) == {"KVM_CAP_EXIT_EPAPR_HCALL", "KVM_HC_VM_RESET", "KVM_HC_VM_SHUTDOWN"}
    [cap] = [s for s in steps("e500.hv", "KVM_ENABLE_CAP", "vm")]
    assert cap["args"]["cap"] == "KVM_CAP_EXIT_EPAPR_HCALL" and cap["args"]["cap_nr"] is None


def test_unmerged_numbers_from_an_overrides_file(tmp_path: Path) -> None:
    overrides = tmp_path / "patched-kvm.toml"
    overrides.write_text("[numbers]\nKVM_CAP_EXIT_EPAPR_HCALL = 300\nKVM_EXIT_EPAPR_HCALL = 50\n"
                         "KVM_HC_VM_RESET = 13\nKVM_HC_VM_SHUTDOWN = 14\n")
    result = compiler.build([SAMPLES / "e500.hv"], proposed_overrides=overrides)
    [built] = result.built
    assert built.plan["requires"]["unmerged"] == []
    cap = next(s for s in built.plan["steps"] if s["ioctl"] == "KVM_ENABLE_CAP" and s["fd"] == "vm")
    assert cap["args"]["cap_nr"] == 300


def _plan_of_text(tmp_path: Path, body: str) -> dict[str, Any]:
    path = tmp_path / "vm.hv"
    path.write_text(f"vm smt {{\n    arch ppc64le  memory 1G  cap KVM_CAP_PPC_PAPR on vcpus\n{body}}}\n")
    result = compiler.build([path])
    assert not result.report.has_errors, [d.message for d in result.report]
    [built] = result.built
    plan: dict[str, Any] = built.plan
    plan["dts"] = built.files["smt.dts"].decode()
    return plan


def _smt_steps(plan: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in plan["steps"] if s["ioctl"] == "KVM_ENABLE_CAP" and s["args"]["cap"] == "KVM_CAP_PPC_SMT"]


def test_threads_set_kvms_virtual_smt_mode_before_the_vcpus(tmp_path: Path) -> None:
    """KVM-HV starts in SMT1; without KVM_CAP_PPC_SMT the tree's SMT4 cores are not KVM's."""
    plan = _plan_of_text(tmp_path, "    kvm book3s_hv  vcpus 8\n    threads 4\n")
    [smt] = _smt_steps(plan)
    assert (smt["fd"], smt["args"]["args"], smt["source"]) == ("vm", [4, 0, 0, 0], "vm.hv:4:5")
    first_vcpu = next(i for i, s in enumerate(plan["steps"]) if s["ioctl"] == "KVM_CREATE_VCPU")
    assert plan["steps"].index(smt) < first_vcpu
    assert "KVM_CAP_PPC_SMT" in {c["cap"] for c in plan["requires"]["caps"]}
    # the tree's cores have as many threads as the mode KVM is given
    servers = [len(m.split()) for m in re.findall(r"ibm,ppc-interrupt-server#s = <([^>]*)>", plan["dts"])]
    assert servers == [smt["args"]["args"][0]] * 2


def test_a_hand_written_smt_mode_is_the_only_one(tmp_path: Path) -> None:
    plan = _plan_of_text(tmp_path, "    kvm book3s_hv  vcpus 8  threads 4\n    cap KVM_CAP_PPC_SMT { vsmt_mode 8 }\n")
    assert [s["args"]["args"] for s in _smt_steps(plan)] == [[8, 0, 0, 0]]


@pytest.mark.parametrize("body", ["    kvm book3s_hv  vcpus 8\n", "    kvm book3s_pr  vcpus 2\n"])
def test_one_thread_per_core_leaves_the_smt_mode_alone(tmp_path: Path, body: str) -> None:
    assert _smt_steps(_plan_of_text(tmp_path, body)) == []


def _fwnmi_fds(plan: dict[str, Any]) -> list[str]:
    return [s["fd"] for s in plan["steps"] if s["ioctl"] == "KVM_ENABLE_CAP" and s["args"]["cap"] == "KVM_CAP_PPC_FWNMI"]


def test_a_vm_wide_vcpu_cap_is_enabled_once_on_vcpu_0(tmp_path: Path) -> None:
    """KVM_CAP_PPC_FWNMI goes to a vCPU fd but sets kvm->arch.fwnmi_enabled: once is the whole VM."""
    assert _fwnmi_fds(_plan_of_text(tmp_path, "    kvm book3s_hv  vcpus 4\n    cap KVM_CAP_PPC_FWNMI\n")) == ["vcpu:0"]
    assert _fwnmi_fds(plan_of("pseries.hv")) == ["vcpu:0"]
    # written for one vCPU it goes there (cap-vm-wide warns that it is still VM-wide)
    on_two = _plan_of_text(tmp_path, "    kvm book3s_hv  vcpus 4\n    cap KVM_CAP_PPC_FWNMI on vcpu 2\n")
    assert _fwnmi_fds(on_two) == ["vcpu:2"]


def test_s390_starts_the_ipl_vcpu_only_and_leaves_the_others_stopped() -> None:
    """Only vCPU 0 gets the IPL PSW and runs; the others wait stopped for the guest's SIGP."""
    mp = {s["fd"]: s["args"] for s in steps("s390x.hv", "KVM_SET_MP_STATE")}
    assert mp == {"vcpu:0": {"mp_state": 7, "state": "KVM_MP_STATE_OPERATING"},
                  "vcpu:1": {"mp_state": 5, "state": "KVM_MP_STATE_STOPPED"}}
    assert [s["fd"] for s in steps("s390x.hv", "KVM_S390_SET_INITIAL_PSW")] == ["vcpu:0"]
    vcpu0 = [s["ioctl"] for s in steps("s390x.hv", fd="vcpu:0")]
    # KVM_S390_SET_INITIAL_PSW answers EBUSY once the vCPU is operating
    assert vcpu0 == ["KVM_S390_SET_INITIAL_PSW", "KVM_SET_MP_STATE", "KVM_RUN"]
    assert [s["fd"] for s in steps("s390x.hv", "KVM_RUN")] == ["vcpu:0"]
    assert plan_of("s390x.hv")["launcher"] == {"s390": {"stopped_until_sigp": [1]}}
    assert "KVM_CAP_MP_STATE" in {c["cap"] for c in plan_of("s390x.hv")["requires"]["caps"]}


def test_span_files_are_relative_to_the_root_folder_from_any_working_folder(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    # relative_file is cached per file: the working folder is part of the key, since a relative
    # root folder means another folder from elsewhere.
    from hvconf.emit.plan import relative_file

    (tmp_path / "x").mkdir()
    (tmp_path / "y").mkdir()
    target = str(tmp_path / "x" / "a.hv")
    for where, expected in (("x", "a.hv"), ("y", "../x/a.hv"), ("x", "a.hv")):
        monkeypatch.chdir(tmp_path / where)
        assert relative_file(target, Path(".")) == expected
        assert relative_file("a.hv", Path(".")) == "a.hv"
        assert relative_file("a.hv", tmp_path / "x") == ("a.hv" if where == "x" else "../y/a.hv")
