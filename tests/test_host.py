"""The host probe (`hvconf host`), the host-facts model and the host checks (`check --host-facts`).

The probe runs for real on this machine's KVM (marked `kvm`); tests/data/hosts/
x86_64-nested-kvm.json is its saved output. The handmade-*.json files are NOT
probes: they were written from powerpc.c's KVM_CHECK_EXTENSION cases (each says
so in its `note`), for hosts this machine is not. Every host check code fires
on a definition and facts file made for it, and stays quiet where it should.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import pytest

from hvconf import compiler
from hvconf.check import CHECKS, HOST_CHECKS
from hvconf.check.host import host_plan
from hvconf.check.registry import CheckContext
from hvconf.diagnostics import Diagnostic, Report
from hvconf.model.host import HostFacts, HostFactsError, dumps, host_facts, load_host_facts, to_text
from hvconf.model.target import load_target

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "samples"
HOSTS = REPO / "tests" / "data" / "hosts"
X86 = HOSTS / "x86_64-nested-kvm.json"
HV, PR, E500 = (HOSTS / f"handmade-{n}.json" for n in ("power9-hv", "power9-pr", "e500mc"))
HOST_CODES = {c.code for c in HOST_CHECKS}


def raw(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def cap_row(data: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in data["caps"] if c["name"] == name)


def host_findings(paths: list[Path], facts: HostFacts) -> list[Diagnostic]:
    result = compiler.check(paths, host=facts)
    return [d for d in result.report if d.code in HOST_CODES]


def edited(tmp_path: Path, source: Path, edit: Callable[[dict[str, Any]], None]) -> HostFacts:
    """A copy of `source` changed by `edit`, written to tmp_path and loaded back."""
    data = raw(source)
    edit(data)
    path = tmp_path / source.name
    path.write_text(json.dumps(data))
    return load_host_facts(path)


def line_of(path: Path, text: str) -> int:
    """The number of the first line of `path` containing `text` (samples change; their statements stay)."""
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def write_hv(tmp_path: Path, body: str) -> Path:
    """`body` after a `format 1` line (so its line N is the file's line N + 1)."""
    path = tmp_path / "vm.hv"
    path.write_text("format 1\n" + body)
    return path


# ---- the probe, for real -----------------------------------------------------


@pytest.mark.kvm
def test_probe_validates_round_trips_and_is_stable() -> None:
    from hvconf.kvm.probe import probe

    first, second = probe(), probe()
    facts = host_facts(first, "probe")
    assert dumps(facts) == dumps(host_facts(second, "probe")), "two probes differ: something volatile is recorded"
    assert host_facts(json.loads(dumps(facts)), "again") == facts
    assert (facts.format, facts.machine, facts.arch, facts.api_version) == (1, "x86_64", "x86_64", 12)
    assert facts.vcpu_mmap_size > 0 and facts.kernel_release == os.uname().release
    assert [(t.type, t.created) for t in facts.vm_types] == [(0, True)]
    # every x86_64 cap of hvconf.abi was asked, on both fds
    from hvconf import abi

    assert {c.name for c in facts.caps} == {c.name for c in abi.caps().values() if "x86_64" in c.arches}
    assert all(set(c.vm) == {0} for c in facts.caps)
    assert facts.cap_value("KVM_CAP_USER_MEMORY", 0) == (1, "a VM fd of type 0 (KVM_X86_DEFAULT_VM)")
    assert facts.pv_features is not None and facts.pv_features.supports("PV_UNHALT")
    assert "probed_at" not in first and "probed_at" in probe(timestamp=True)


@pytest.mark.kvm
def test_saved_probe_is_this_machine() -> None:
    from hvconf.kvm.probe import probe

    saved = load_host_facts(X86)
    if saved.kernel_release != os.uname().release:
        pytest.skip(f"{X86.name} was probed on Linux {saved.kernel_release}, this is {os.uname().release}")
    assert dumps(host_facts(probe(), "probe")) == X86.read_text()


def test_saved_probe_shows_the_sys_fd_vm_fd_difference() -> None:
    facts = load_host_facts(X86)
    # bit 2 of X2APIC_API is masked on a VM without split irqchip (docs/kernel-facts.md#x86-host-probe)
    assert facts.name2cap["KVM_CAP_X2APIC_API"].system == 15
    assert facts.cap_value("KVM_CAP_X2APIC_API", 0) == (11, "a VM fd of type 0 (KVM_X86_DEFAULT_VM)")
    assert facts.max_vcpus(0) == (1024, "KVM_CAP_MAX_VCPUS")
    line = next(x for x in to_text(facts).splitlines() if "KVM_CAP_X2APIC_API" in x)
    assert line.split()[-3:] == ["15", "11", "*"]
    assert "*" not in next(x for x in to_text(facts).splitlines() if "KVM_CAP_HLT" in x)


def test_probe_of_a_missing_device_is_an_oserror() -> None:
    from hvconf.kvm.probe import probe

    with pytest.raises(FileNotFoundError):
        probe("/nonexistent/kvm")


def test_cli_host_imports_no_runtime() -> None:
    code = ("import sys, hvconf.cli.host; "
            "print(sorted(m for m in sys.modules if m.startswith(('hvconf.kvm', 'cffi', 'pydantic'))))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


# ---- the `host` command and the check options ----------------------------------


def parser() -> argparse.ArgumentParser:
    from hvconf.cli import host as cli_host

    top = argparse.ArgumentParser(prog="hvconf")
    sub = top.add_subparsers(dest="command", required=True)
    cli_host.register(sub)
    check = sub.add_parser("check")
    check.add_argument("paths", nargs="+")
    cli_host.add_host_options(check)
    return top


@pytest.mark.kvm
@pytest.mark.parametrize("fmt", ["json", "text"])
def test_host_command(fmt: str, capsys: pytest.CaptureFixture[str]) -> None:
    args = parser().parse_args(["host", "--format", fmt])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    if fmt == "json":
        facts = host_facts(json.loads(out), "stdout")
        assert facts.machine == "x86_64" and "probed_at" not in json.loads(out)
    else:
        assert "KVM API version 12" in out and "VM type 0 KVM_X86_DEFAULT_VM: created, up to" in out
        assert any(line.split()[1:2] == ["KVM_CAP_MAX_VCPUS"] for line in out.splitlines())


def test_host_command_refuses_a_bad_overrides_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "numbers.toml"
    bad.write_text("[numbers]\nKVM_CAP_EXIT_EPAPR = 250\n")
    args = parser().parse_args(["host", "--abi-overrides", str(bad)])
    assert args.func(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "did you mean KVM_CAP_EXIT_EPAPR_HCALL" in err


def test_host_options_are_exclusive_and_read_files() -> None:
    from hvconf.cli.host import host_facts_from_args

    with pytest.raises(SystemExit):
        parser().parse_args(["check", "--host", "--host-facts", str(X86), "x.hv"])
    assert host_facts_from_args(parser().parse_args(["check", "x.hv"])) is None
    assert host_facts_from_args(parser().parse_args(["check", "--host-facts", str(HV), "x.hv"])) == load_host_facts(HV)


@pytest.mark.kvm
def test_check_host_probes_this_machine() -> None:
    from hvconf.cli.host import host_facts_from_args

    facts = host_facts_from_args(parser().parse_args(["check", "--host", "x.hv"]))
    assert facts is not None and facts.machine == "x86_64"
    assert host_findings([SAMPLES / "x86-hello.hv"], facts) == []


# ---- loading: one line per problem ----------------------------------------------

BAD_FACTS: list[tuple[str, Callable[[dict[str, Any]], Any], str]] = [
    ("format", lambda d: d.update(format=2), "format: format 2 is not supported (this hvconf reads host facts format 1)"),
    ("extra key", lambda d: d.update(cpus=4), "cpus: Extra inputs are not permitted"),
    ("cap number", lambda d: cap_row(d, "KVM_CAP_HLT").update(number=2), "caps: KVM_CAP_HLT is cap 1, not 2"),
    ("cap value", lambda d: cap_row(d, "KVM_CAP_HLT").update(system="1"),
     "caps[KVM_CAP_HLT].system: Input should be a valid integer"),
    ("vm type", lambda d: cap_row(d, "KVM_CAP_HLT")["vm"].update({"2": 1}),
     "caps: KVM_CAP_HLT: vm values for VM type 2, which vm_types does not list as created"),
    ("pv names", lambda d: d["pv_features"].update(eax=0),
     "pv_features: names ['KVM_FEATURE_CLOCKSOURCE'"),
    ("proposed", lambda d: d.update(proposed={"KVM_HC_VM_RESTART": 13}),
     "proposed: 'KVM_HC_VM_RESTART' is not a numbered name of the unmerged ePAPR proposal; did you mean"),
    ("missing", lambda d: d.pop("machine"), "machine: Field required"),
]


@pytest.mark.parametrize("edit, message", [(e, m) for _, e, m in BAD_FACTS], ids=[i for i, _, _ in BAD_FACTS])
def test_bad_facts_are_one_line(tmp_path: Path, edit: Callable[[dict[str, Any]], Any], message: str) -> None:
    with pytest.raises(HostFactsError) as info:
        edited(tmp_path, X86, edit)
    text = str(info.value)
    assert "\n" not in text and text.startswith(f"{tmp_path / X86.name}: ")
    assert message in text


def test_unreadable_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(HostFactsError, match=r"^cannot read host facts .*nope\.json: No such file or directory$"):
        load_host_facts(tmp_path / "nope.json")
    broken = tmp_path / "broken.json"
    broken.write_text('{"format": 1,\n  "machine": }\n')
    with pytest.raises(HostFactsError, match=r"broken\.json:2:14: not valid JSON: Expecting value$"):
        load_host_facts(broken)


def test_pv_names_may_be_omitted_and_are_derived(tmp_path: Path) -> None:
    facts = edited(tmp_path, X86, lambda d: d["pv_features"].pop("names"))
    assert facts == load_host_facts(X86)


def test_handmade_files_say_so_and_round_trip() -> None:
    for path in (HV, PR, E500):
        facts = load_host_facts(path)
        assert facts.note is not None and facts.note.startswith("HAND-MADE, NOT PROBED")
        assert dumps(facts) == path.read_text()
    assert load_host_facts(X86).note is None


# ---- host checks -----------------------------------------------------------------


def test_samples_pass_on_hosts_made_for_them() -> None:
    assert host_findings([SAMPLES / "x86-hello.hv", SAMPLES / "x86-pvspinlock.hv"], load_host_facts(X86)) == []
    assert host_findings([SAMPLES / "pseries.hv"], load_host_facts(HV)) == []
    assert host_findings([SAMPLES / "pseries-pr.hv"], load_host_facts(PR)) == []
    # x86-hello against its own host: no finding of any kind
    assert list(compiler.check([SAMPLES / "x86-hello.hv"], host=load_host_facts(X86)).report) == []


def test_host_checks_need_facts() -> None:
    assert not HOST_CODES & {d.code for d in compiler.check([SAMPLES / "pseries.hv"]).report}
    assert len(HOST_CODES) == len(HOST_CHECKS) and not HOST_CODES & {c.code for c in CHECKS}


def test_wrong_arch(tmp_path: Path) -> None:
    found = host_findings([SAMPLES / "pseries.hv"], load_host_facts(X86))
    assert [(d.code, Path(d.span.file).name, d.span.line) for d in found if d.span] == \
        [("host-wrong-arch", "pseries.hv", line_of(SAMPLES / "base" / "pseries.hv", "arch"))]
    assert "VM 'pseries' runs on ppc64le hosts only; the host facts are for x86_64" in found[0].message
    # a VM with errors has no plan: the arch still decides, and nothing else is held against the host
    bad = write_hv(tmp_path, "vm p {\n arch ppc64le\n memory 256M\n vcpus 3000\n}\n")
    assert [d.code for d in host_findings([bad], load_host_facts(X86))] == ["host-wrong-arch"]


def _wrong_arch_help(*options: str) -> str:
    done = subprocess.run([sys.executable, "-m", "hvconf", "check", "--format", "json", *options,
                           str(SAMPLES / "pseries.hv")], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    [finding] = [d for d in json.loads(done.stdout) if d["code"] == "host-wrong-arch"]
    return str(finding["help"])


def test_wrong_arch_help_fits_saved_facts() -> None:
    """It used to say "drop `--host`" to someone who had passed --host-facts."""
    help_ = _wrong_arch_help("--host-facts", str(X86))
    assert "a ppc64le host" in help_ and "without `--host` or `--host-facts`" in help_, help_


@pytest.mark.kvm
def test_wrong_arch_help_fits_a_probe() -> None:
    help_ = _wrong_arch_help("--host")
    assert "a ppc64le host" in help_ and "without `--host` or `--host-facts`" in help_, help_


def test_too_many_vcpus(tmp_path: Path) -> None:
    path = write_hv(tmp_path, "vm big {\n    arch x86_64\n    memory 2M\n    vcpus 100000\n}\n")
    found = host_findings([path], load_host_facts(X86))
    assert [(d.code, d.span.line if d.span else 0) for d in found] == [("host-too-many-vcpus", 5)]
    assert found[0].message == "100000 vCPUs exceed this host's limit of 1024 (KVM_CAP_MAX_VCPUS)"


def test_memory_beyond_the_host(tmp_path: Path) -> None:
    facts = load_host_facts(X86)
    assert facts.memory_bytes is not None and facts.memory_bytes > 1 << 30  # this machine's probe records it
    path = write_hv(tmp_path, "vm big {\n    arch x86_64\n    memory 1T\n}\n")
    found = host_findings([path], facts)
    assert [(d.code, d.span.line if d.span else 0) for d in found] == [("host-memory-too-small", 4)]
    assert found[0].message.startswith("0x10000000000 bytes of guest memory exceed this host's ")


def test_missing_cap_on_the_vm_fd_and_unlisted(tmp_path: Path) -> None:
    def no_exit_hypercall(d: dict[str, Any]) -> None:
        cap_row(d, "KVM_CAP_EXIT_HYPERCALL")["vm"]["0"] = 0
        d["caps"].remove(cap_row(d, "KVM_CAP_EXT_CPUID"))

    found = host_findings([SAMPLES / "x86-pvspinlock.hv"], edited(tmp_path, X86, no_exit_hypercall))
    exit_line = line_of(SAMPLES / "x86-pvspinlock.hv", "exit   KVM_HC_MAP_GPA_RANGE")
    arch_line = line_of(SAMPLES / "base" / "x86.hv", "arch")
    assert sorted((d.code, Path(d.span.file).name, d.span.line, d.message) for d in found if d.span) == [
        ("host-missing-cap", "x86-pvspinlock.hv", exit_line, "this host's KVM lacks KVM_CAP_EXIT_HYPERCALL (cap 201): "
         "KVM_CHECK_EXTENSION returns 0 on a VM fd of type 0 (KVM_X86_DEFAULT_VM)"),
        ("host-missing-cap", "x86.hv", arch_line, "the host facts do not list KVM_CAP_EXT_CPUID (cap 7), which this VM needs"),
    ]  # EXT_CPUID is for KVM_SET_CPUID2, caused by the arch line of samples/base/x86.hv


def test_missing_htab_cap(tmp_path: Path) -> None:
    facts = edited(tmp_path, HV, lambda d: cap_row(d, "KVM_CAP_PPC_ALLOC_HTAB")["vm"].update({"1": 0}))
    found = host_findings([SAMPLES / "pseries.hv"], facts)
    assert [(d.code, d.span.line if d.span else 0) for d in found] == [("host-missing-cap", line_of(SAMPLES / "pseries.hv", "htab"))]
    assert "KVM_CAP_PPC_ALLOC_HTAB (cap 80)" in found[0].message


def test_flavour_unavailable_hides_its_caps() -> None:
    found = host_findings([SAMPLES / "pseries.hv"], load_host_facts(PR))
    assert [d.code for d in found] == ["host-flavour-unavailable"]
    assert "`kvm book3s_hv` needs KVM_CREATE_VM type 1 (KVM_VM_PPC_HV)" in found[0].message
    found = host_findings([SAMPLES / "pseries-pr.hv"], load_host_facts(HV))
    assert [(d.code, d.span.line if d.span else 0) for d in found] == [("host-flavour-unavailable", line_of(SAMPLES / "pseries-pr.hv", "book3s_pr"))]


def test_pv_feature_unsupported(tmp_path: Path) -> None:
    unhalt = 1 << 7

    def clear_unhalt(d: dict[str, Any]) -> None:
        d["pv_features"]["eax"] &= ~unhalt
        del d["pv_features"]["names"]

    found = host_findings([SAMPLES / "x86-pvspinlock.hv"], edited(tmp_path, X86, clear_unhalt))
    line = line_of(SAMPLES / "x86-pvspinlock.hv", "pv_unhalt")
    col = (SAMPLES / "x86-pvspinlock.hv").read_text().splitlines()[line - 1].index("pv_unhalt") + 1
    assert [(d.code, d.span.line if d.span else 0, d.span.col if d.span else 0) for d in found] == \
        [("host-pv-feature-unsupported", line, col)]
    assert found[0].message.startswith("KVM_FEATURE_PV_UNHALT (CPUID 0x40000001 eax bit 7) is not supported")
    # this host's KVM leaves HC_MAP_GPA_RANGE to userspace: fine when the launcher serves the hypercall
    # (x86-pvspinlock routes it with `exit`), a finding when nobody does
    path = write_hv(tmp_path, "vm v {\n arch x86_64\n memory 2M\n pv_features { hc_map_gpa_range }\n}\n")
    found = host_findings([path], load_host_facts(X86))
    assert [(d.code, d.span.line if d.span else 0) for d in found] == [("host-pv-feature-unsupported", 5)]


def test_unmerged_abi_and_its_numbers(tmp_path: Path) -> None:
    found = host_findings([SAMPLES / "e500.hv"], load_host_facts(E500))
    e500 = SAMPLES / "e500.hv"
    cap_line, exit_line = line_of(e500, "cap KVM_CAP_EXIT_EPAPR_HCALL"), line_of(e500, "exit KVM_HC_VM_RESET")
    assert [(d.code, d.span.line if d.span else 0) for d in found] == \
        [("host-unmerged-abi", cap_line), ("host-unmerged-abi", exit_line), ("host-unmerged-abi", exit_line)]
    assert [d.message.split()[0] for d in found] == ["KVM_CAP_EXIT_EPAPR_HCALL", "KVM_HC_VM_RESET", "KVM_HC_VM_SHUTDOWN"]

    def patched(value: int) -> Callable[[dict[str, Any]], None]:
        def edit(d: dict[str, Any]) -> None:
            d["proposed"] = {"KVM_CAP_EXIT_EPAPR_HCALL": 250, "KVM_HC_VM_RESET": 13, "KVM_HC_VM_SHUTDOWN": 14}
            d["caps"].append({"name": "KVM_CAP_EXIT_EPAPR_HCALL", "number": 250, "system": value, "vm": {"0": value}})
        return edit

    assert host_findings([SAMPLES / "e500.hv"], edited(tmp_path, E500, patched(1))) == []
    found = host_findings([SAMPLES / "e500.hv"], edited(tmp_path, E500, patched(0)))
    assert [(d.code, d.span.line if d.span else 0) for d in found] == [("host-missing-cap", cap_line)]


def test_hash_guests_on_a_radix_only_host(tmp_path: Path) -> None:
    def nested(d: dict[str, Any]) -> None:
        d["ppc_mmu"] = {"radix": True, "hash": False,
                        "hash_probe": "KVM_PPC_ALLOCATE_HTAB(18) on a scratch VM failed: EOPNOTSUPP"}

    radix_only = edited(tmp_path, HV, nested)
    found = host_findings([SAMPLES / "pseries.hv"], radix_only)  # `htab order 25`: a hash guest
    assert [(d.code, d.span.line if d.span else 0) for d in found] == \
        [("host-no-hash-guests", line_of(SAMPLES / "pseries.hv", "htab   order"))]
    assert "EOPNOTSUPP" in found[0].message and "mmu radix" in (found[0].help or "")
    radix = write_hv(tmp_path, "vm v {\n arch ppc64le\n kvm book3s_hv\n memory 1G\n mmu radix\n"
                               " cap KVM_CAP_PPC_PAPR on vcpus\n}\n")
    assert [d.code for d in host_findings([radix], radix_only)] == []
    assert [d.code for d in host_findings([SAMPLES / "pseries.hv"], load_host_facts(HV))] == []  # no ppc_mmu: unknown


def test_powerpc_samples_lint_against_real_power_hosts() -> None:
    # facts probed inside the emulated POWER9 host (tests/ppc): the L1 has 1 GiB and no kvm_pr
    samples = [SAMPLES / n for n in ("pseries.hv", "pseries-hello.hv", "pseries-pr.hv", "pseries-linux.hv",
                                     "pseries-linux-hash.hv")]
    found = {}
    for mode in ("nested", "powernv9"):
        facts = load_host_facts(HOSTS / f"ppc64le-{mode}-kvm-hv.json")
        assert facts.note and "probed for real" in facts.note
        found[mode] = sorted((Path(d.span.file).name if d.span else "", d.code) for d in host_findings(samples, facts))
    common = [("pseries-pr.hv", "host-flavour-unavailable"), ("pseries-pr.hv", "host-memory-too-small"),
              ("pseries.hv", "host-memory-too-small")]
    assert found["powernv9"] == common  # pseries-hello and pseries-linux (256 MiB) run there
    # nested: no hash guests, and no RNG for an in-kernel H_RANDOM (KVM_CAP_PPC_HWRNG 0)
    assert found["nested"] == sorted([*common, ("pseries.hv", "host-no-hash-guests"), ("pseries.hv", "host-missing-cap"),
                                      ("pseries-linux-hash.hv", "host-no-hash-guests"),
                                      ("pseries-linux-hash.hv", "host-missing-cap")])


def test_every_host_code_is_exercised() -> None:
    # the tests above, by code; keep this list in step with HOST_CHECKS
    exercised = {"host-wrong-arch", "host-flavour-unavailable", "host-unmerged-abi", "host-missing-cap",
                 "host-too-many-vcpus", "host-pv-feature-unsupported", "host-memory-too-small",
                 "host-no-hash-guests"}
    assert exercised == HOST_CODES


def test_the_arch_records_name_the_machines_real_hosts_report() -> None:
    # host-wrong-arch and every plan's requires.host_arch take the machine from the arch's record
    # (hvconf/contract.py); the probe maps the machine back. Hosts probed for real must agree.
    from hvconf.contract import ARCHES, ARCH_OF_MACHINE, cap_arch_of_machine

    probed = [load_host_facts(p) for p in sorted((REPO / "tests" / "data" / "hosts").glob("*.json"))
              if not p.name.startswith("handmade-")]  # fmt: skip
    assert {f.machine for f in probed} == {"x86_64", "ppc64le"}
    for facts in probed:
        assert ARCHES[facts.arch].machine == facts.machine
        assert ARCH_OF_MACHINE[facts.machine] == cap_arch_of_machine(facts.machine) == facts.arch
    result = compiler.check(sorted(SAMPLES.glob("*.hv")))
    plans = {vm.arch: host_plan(CheckContext(vm, load_target(vm.target), Report(), host=load_host_facts(X86)))
             for vm in result.vms if not vm.abstract and vm.target is not None}  # fmt: skip
    assert {arch: plan.host_arch for arch, plan in plans.items() if plan is not None} == {
        "x86_64": "x86_64", "s390x": "s390x", "ppc64le": "ppc64le", "ppc-e500": "ppc"}


# ---- through `hvconf` itself, once hvconf/cli/main.py wires hvconf.cli.host in ---------


def _wired() -> bool:
    import contextlib
    import io

    from hvconf.cli.main import parser as hvconf_parser

    try:
        with contextlib.redirect_stderr(io.StringIO()):
            hvconf_parser().parse_args(["check", "--host-facts", "facts.json", "x.hv"])
            hvconf_parser().parse_args(["host", "--format", "json"])
    except SystemExit:
        return False
    return True


wired = pytest.mark.skipif(not _wired(), reason="hvconf/cli/main.py does not wire hvconf.cli.host in yet")


def hvconf(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """`hvconf ARGS` in this process: (status, stdout, stderr)."""
    from hvconf.cli.main import main

    capsys.readouterr()
    status = main(list(args))
    out, err = capsys.readouterr()
    return status, out, err


@wired
def test_cli_host_facts_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    for facts, start in ((tmp_path / "nope.json", "hvconf: error: cannot read host facts "),
                         (broken, f"hvconf: error: {broken}:1:2: not valid JSON")):
        status, out, err = hvconf(capsys, "check", "--host-facts", str(facts), str(SAMPLES / "x86-hello.hv"))
        assert status == 2 and out == ""
        assert err.startswith(start) and err.count("\n") == 1, err


@wired
def test_cli_check_host_facts(capsys: pytest.CaptureFixture[str]) -> None:
    assert hvconf(capsys, "check", "--host-facts", str(X86), str(SAMPLES / "x86-hello.hv"))[0] == 0
    status, out, _ = hvconf(capsys, "check", "--host-facts", str(X86), str(SAMPLES / "pseries.hv"))
    assert status == 1 and "error[host-wrong-arch]" in out


@wired
@pytest.mark.kvm
def test_cli_host_and_check_host(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = hvconf(capsys, "host", "--format", "json")
    assert status == 0 and host_facts(json.loads(out), "stdout").machine == "x86_64"
    assert hvconf(capsys, "check", "--host", str(SAMPLES / "x86-hello.hv"))[0] == 0
