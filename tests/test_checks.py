"""The checker against its bad samples, good definitions and its own registry.

Every diagnostic code (each Check in hvconf.check.CHECKS and every code the
syntax and model stages emit) has a bad sample in tests/invalid/<code>.hv or
<code>-<n>.hv that must produce exactly that code; a first-line comment
`# also: a b` names other error codes the sample may produce. Two samples
that cannot live in git as files are written into tmp_path by the test.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hvconf.check import ABSTRACT_CODES, CHECKS, by_code, run_checks
from hvconf.compiler import check, check_text
from hvconf.diagnostics import Report, Severity
from hvconf.model.lower import lower_program
from hvconf.model.target import load_target
from hvconf.syntax.loader import MAX_FILE_BYTES, Loader

REPO = Path(__file__).resolve().parent.parent
INVALID = REPO / "tests" / "invalid"
SAMPLES = sorted(INVALID.glob("*.hv"))
CODE = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")


def code_of(path: Path) -> str:
    return re.sub(r"-\d+$", "", path.stem)


def also_of(text: str) -> set[str]:
    first = text.splitlines()[0] if text else ""
    return set(first.removeprefix("# also:").split()) if first.startswith("# also:") else set()


def _utf8(tmp: Path) -> Path:
    path = tmp / "invalid-utf8.hv"
    path.write_bytes(b"vm bad {\n    arch x86_64\n    cmdline \"caf\xe9\"\n}\n")
    return path


def _too_large(tmp: Path) -> Path:
    big = tmp / "big.hv"
    with big.open("wb") as f:
        f.truncate(MAX_FILE_BYTES + 1)  # sparse: nothing is written
    path = tmp / "include-too-large.hv"
    path.write_text('include "big.hv"\n')
    return path


GENERATED = {"invalid-utf8": _utf8, "include-too-large": _too_large}


def stage_codes() -> set[str]:
    """Every code string the syntax and model stages emit."""
    pattern = re.compile(r'(?:\.error|\.warning|Diagnostic)\(\s*"([a-z0-9]+(?:-[a-z0-9]+)+)"|code = "([a-z0-9-]+)"')
    codes: set[str] = set()
    for package in ("syntax", "model"):
        for source in (REPO / "hvconf" / package).glob("*.py"):
            for m in pattern.finditer(source.read_text(encoding="utf-8")):
                codes.add(m.group(1) or m.group(2))
    return codes


def _codes(report: Report, severity: Severity | None = None) -> set[str]:
    return {d.code for d in report if severity is None or d.severity is severity}


def _assert_sample(path: Path, code: str, also: set[str]) -> Report:
    report = check([path]).report
    assert code in _codes(report), f"{path.name}: expected {code}, got {[str(d.span) + ' ' + d.code for d in report]}"
    extra = _codes(report, Severity.ERROR) - {code} - also
    assert not extra, f"{path.name}: unexpected error codes {sorted(extra)}"
    return report


# ---- bad samples ------------------------------------------------------------------


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.stem)
def test_sample_yields_its_code(path: Path) -> None:
    _assert_sample(path, code_of(path), also_of(path.read_text(encoding="utf-8", errors="replace")))


@pytest.mark.parametrize("code", sorted(GENERATED))
def test_generated_sample_yields_its_code(code: str, tmp_path: Path) -> None:
    _assert_sample(GENERATED[code](tmp_path), code, set())


def test_every_code_has_a_sample() -> None:
    have = {code_of(p) for p in SAMPLES} | set(GENERATED)
    want = set(by_code()) | stage_codes()
    assert not want - have, f"codes without a bad sample: {sorted(want - have)}"
    assert not have - want, f"samples for codes nobody emits: {sorted(have - want)}"


def test_stage_codes_are_found() -> None:
    # Guards the regex above: if it stopped matching, the coverage test would pass vacuously.
    assert {"syntax-error", "unknown-keyword", "include-cycle", "duplicate-vm", "invalid-value",
            "unknown-flavour"} <= stage_codes()


def _spot(name: str, code: str) -> list[tuple[int, int]]:
    path = INVALID / name
    report = check([path]).report
    found = [d for d in report if d.code == code]
    assert found and all(Path(d.span.file).resolve() == path for d in found)
    return [(d.span.line, d.span.col) for d in found]


@pytest.mark.parametrize("name, code, where", [
    ("hcall-not-toggleable.hv", "hcall-not-toggleable", [(8, 21)]),  # the H_RTAS token
    ("cap-wrong-flavour.hv", "cap-wrong-flavour", [(8, 5)]),  # the `cap` statement
    ("unknown-pv-feature.hv", "unknown-pv-feature", [(5, 19)]),  # the feature name
    ("memory-granularity.hv", "memory-granularity", [(5, 5)]),  # the `memory` setting
    ("hypervisor-flag-unserved.hv", "hypervisor-flag-unserved", [(6, 18)]),  # `reset` in the block
    ("tce-liobn-duplicate.hv", "tce-liobn-duplicate", [(9, 5)]),  # the second table
    ("tce-phb-shared.hv", "tce-phb-shared", [(9, 5)]),  # the second table of PHB 0
    ("tce-window-overlap.hv", "tce-window-overlap", [(9, 5)]),  # the second window over the first
    ("cap-required.hv", "cap-required", [(4, 5)]),  # `kvm book3s_hv`
    ("hcall-set-unhandled.hv", "hcall-set-unhandled", [(8, 22)]),  # `disable H_PUT_TCE`
])
def test_spans_point_at_the_cause(name: str, code: str, where: list[tuple[int, int]]) -> None:
    assert _spot(name, code) == where


def test_notes_and_help() -> None:
    report = check([INVALID / "tce-liobn-duplicate.hv"]).report
    (dup,) = [d for d in report if d.code == "tce-liobn-duplicate"]
    assert [(n.message, n.span.line, n.span.col) for n in dup.notes] == [("first used here", 8, 5)]
    helps = {d.code: d.help for p in ("unknown-cap.hv", "unknown-hcall.hv", "unknown-mode.hv", "unknown-preset.hv",
                                      "hcall-not-toggleable.hv") for d in check([INVALID / p]).report}
    assert helps["unknown-cap"] == "did you mean 'KVM_CAP_PPC_OSI'?"
    assert helps["unknown-hcall"] == "did you mean 'H_LOGICAL_CI_LOAD'?"
    assert helps["unknown-mode"] == "did you mean 'kernel'?"
    assert helps["unknown-preset"] == "did you mean 'kernel_default'?"
    assert "rtas" in helps["hcall-not-toggleable"]


def test_run_checks_never_raises_on_any_sample(tmp_path: Path) -> None:
    paths = SAMPLES + [make(tmp_path) for make in GENERATED.values()]
    ran = 0
    for path in paths:
        report = Report()
        program = Loader().load(path, report)
        for vm in lower_program(program, report):
            if vm.target is None:
                continue
            for variant in (vm, vm.model_copy(update={"abstract": not vm.abstract})):
                run_checks(variant, load_target(vm.target), report)
                ran += 1
    assert ran > len(SAMPLES)


# ---- good definitions ---------------------------------------------------------------

GOOD = {
    "pseries-hv.hv": """
vm pseries {
    arch ppc64le  kvm book3s_hv  memory 1G  vcpus 4  threads 2
    htab auto  rma none  mmu hash
    cap KVM_CAP_PPC_PAPR on vcpus
    cap KVM_CAP_PPC_SMT { vsmt_mode 2 }
    hcalls { preset qemu  disable H_CEDE }
    rtas { token "ibm,set-xive" 0x200a  token "power-off" 0x2003 }
    tce vio0 { liobn 0x71000000  window 256M  page 4K }
    tce pci0 { liobn 0x80000000  window 1G  page 64K }
    console hvterm
}
""",
    "pseries-pr.hv": """
vm pr {
    arch ppc64  kvm book3s_pr  memory 512M  vcpus 2
    cap KVM_CAP_PPC_PAPR on vcpus
    cap KVM_CAP_PPC_OSI on vcpu 0
    hcalls { enable H_LOGICAL_CI_LOAD }
}
""",
    "e500.hv": """
vm e500 {
    arch ppc-e500  kvm booke  memory 256M  vcpus 2
    cap KVM_CAP_SW_TLB on vcpus { mmu e500mc  sets 64  ways 4 }
    cap KVM_CAP_PPC_EPR on vcpus
    hypervisor { idle }
}
""",
    "x86.hv": """
vm x86 {
    arch x86_64  memory 64M  vcpus 2
    irqchip kernel  pit speaker_dummy
    pv_features { unhalt  KVM_FEATURE_PV_EOI  hc_map_gpa_range }
    hcalls { enforce  enable KVM_HC_KICK_CPU  exit KVM_HC_MAP_GPA_RANGE }
    cap KVM_CAP_HALT_POLL { max_ns 200000 }
    guest "guest.S" mode long64
}
""",
    "s390x.hv": """
vm s390 {
    arch s390x  memory 1G  vcpus 2
    cap KVM_CAP_S390_USER_SIGP
    cap KVM_CAP_S390_CSS_SUPPORT on vcpus
}
""",
}


@pytest.mark.parametrize("name", sorted(GOOD))
def test_good_definitions_are_clean(name: str, tmp_path: Path) -> None:
    (tmp_path / "guest.S").write_text("hlt\n")
    path = tmp_path / name
    path.write_text("format 1\n" + GOOD[name])
    result = check([path])
    assert len(result.vms) == 1 and result.vms[0].target is not None
    assert [f"{d.span} {d.code}: {d.message}" for d in result.report] == []


def test_shipped_samples_have_no_errors() -> None:
    samples = sorted((REPO / "samples").glob("*.hv"))
    if not samples:
        pytest.skip("no samples/ in this checkout")
    report = check(samples).report
    assert [f"{d.span} {d.code}: {d.message}" for d in report.errors] == []


# ---- TCE windows on a PHB's bus -------------------------------------------------------------

def _pseries(tmp_path: Path, tces: str) -> Path:
    path = tmp_path / "tce.hv"
    path.write_text("vm t {\n    arch ppc64le  kvm book3s_hv  memory 1G  cap KVM_CAP_PPC_PAPR on vcpus\n"
                    f"{tces}}}\n")
    return path


def _tce_codes(path: Path) -> list[str]:
    return [d.code for d in check([path]).report if d.code.startswith("tce-")]


def test_vio_windows_may_share_bus_addresses(tmp_path: Path) -> None:
    # Every VIO device has its own LIOBN and address space; QEMU starts them all at 0.
    path = _pseries(tmp_path, "tce vio0 { liobn 0x71000000  window 1G }\ntce vio1 { liobn 0x71000001  window 1G }\n")
    assert _tce_codes(path) == []


def test_a_phb_window_may_sit_just_below_the_mmio_window_or_above_4g(tmp_path: Path) -> None:
    path = _pseries(tmp_path, "tce a { liobn 0x80000000  window 2G }\n"
                              "tce b { liobn 0x80000100  window 4G  offset 4G }\n")
    assert _tce_codes(path) == []
    path = _pseries(tmp_path, "tce a { liobn 0x80000000  window 2G  offset 64K  page 64K }\n")
    assert _tce_codes(path) == ["tce-window-overlap"]


def test_the_suggested_liobn_gives_the_table_a_phb_of_its_own(tmp_path: Path) -> None:
    source = (INVALID / "tce-phb-shared.hv").read_text()
    (finding,) = [d for d in check([INVALID / "tce-phb-shared.hv"]).report if d.code == "tce-phb-shared"]
    liobn = re.search(r"`liobn (0x[0-9a-f]+)`", finding.help or "").group(1)  # type: ignore[union-attr]
    fixed = tmp_path / "fixed.hv"
    fixed.write_text(source.replace("liobn 0x80000001", f"liobn {liobn}"))
    assert _tce_codes(fixed) == []


def test_the_checks_see_the_phbs_and_mmio_window_the_tree_writes(tmp_path: Path) -> None:
    """tce-phb-shared and tce-window-overlap read the PHB index and the 32-bit MMIO window from
    target data; the device tree places them with its own constants. They must agree."""
    from hvconf.platforms import spapr_tree
    from hvconf.compiler import build

    tce_data = load_target("ppc64-spapr").features.tce
    assert tce_data is not None
    path = _pseries(tmp_path, "tce a { liobn 0x80000000  window 1G }\ntce b { liobn 0x80000300  window 1G }\n")
    [built] = build([path]).built
    dts = built.files["t.dts"].decode()
    for liobn in (0x80000000, 0x80000300):
        node = dts.split(f"pci@{liobn:x} {{", 1)[1].split("};", 1)[0]
        cells = [int(c, 0) for c in re.search(r"ranges = <([^>]*)>", node).group(1).split()]  # type: ignore[union-attr]
        bus, cpu, size = cells[1] << 32 | cells[2], cells[3] << 32 | cells[4], cells[5] << 32 | cells[6]
        assert (bus, bus + size) == (tce_data.pci_mem32_bus, 1 << 32)
        phb = tce_data.phb(liobn)
        assert phb is not None and cpu == spapr_tree.PCI_BASE + (phb + 1) * spapr_tree.PCI_MEM32_SIZE


# ---- VM-wide caps issued on a vCPU fd ----------------------------------------------------------

@pytest.mark.parametrize("statements, codes", [
    ("cap KVM_CAP_PPC_FWNMI", []),
    ("cap KVM_CAP_PPC_FWNMI on vcpu 0", ["cap-vm-wide"]),
    ("cap KVM_CAP_PPC_FWNMI on vcpus", ["cap-vm-wide"]),
    ("cap KVM_CAP_PPC_FWNMI\n    cap KVM_CAP_PPC_FWNMI on vcpu 0", ["cap-duplicate", "cap-vm-wide"]),  # both vCPU 0
    ("cap KVM_CAP_PPC_FWNMI on vm", ["cap-wrong-fd"]),
])
def test_fwnmi_is_written_once_for_the_vm(tmp_path: Path, statements: str, codes: list[str]) -> None:
    path = tmp_path / "fwnmi.hv"
    path.write_text("vm t {\n    arch ppc64le  kvm book3s_hv  memory 1G  vcpus 4  cap KVM_CAP_PPC_PAPR on vcpus\n"
                    f"    {statements}\n}}\n")
    found = [d for d in check([path]).report if d.code.startswith("cap-")]
    assert sorted(d.code for d in found) == codes
    for d in found:
        assert "VM-wide" in d.message and "without `on`" in (d.help or "") or d.code == "cap-duplicate", d


# ---- HTAB size against memory ----------------------------------------------------------------

@pytest.mark.parametrize("memory, order, codes", [
    ("1G", 23, []), ("1G", 27, []), ("1G", 28, ["htab-too-large"]), ("1G", 46, ["htab-too-large"]),
    ("256M", 25, []), ("256M", 26, ["htab-too-large"]), ("1T", 37, []), ("1T", 38, ["htab-too-large"]),
    ("1G", 47, ["htab-order-range"]),  # out of range: said once, by the range rule
])
def test_htab_far_above_auto_warns(tmp_path: Path, memory: str, order: int, codes: list[str]) -> None:
    # auto = log2(pow2ceil(RAM)) - 7: 23 for 1G, 21 for 256M, 33 for 1T; the warning starts 5 above it
    path = tmp_path / "htab.hv"
    path.write_text(f"vm t {{\n    arch ppc64le  kvm book3s_hv  memory {memory}  cap KVM_CAP_PPC_PAPR on vcpus\n"
                    f"    htab order {order}\n}}\n")
    assert [d.code for d in check([path]).report if d.code.startswith("htab-")] == codes


def test_htab_too_large_is_not_said_where_the_htab_itself_is_wrong(tmp_path: Path) -> None:
    for flavour_or_mmu in ("kvm book3s_pr", "kvm book3s_hv  mmu radix"):
        path = tmp_path / "htab.hv"
        path.write_text(f"vm t {{\n    arch ppc64le  {flavour_or_mmu}  memory 1G  cap KVM_CAP_PPC_PAPR on vcpus\n"
                        "    htab order 46\n}\n")
        assert "htab-too-large" not in {d.code for d in check([path]).report}, flavour_or_mmu


# ---- abstract VMs and deduplication ----------------------------------------------------


def test_abstract_vm_gets_name_checks_only(tmp_path: Path) -> None:
    path = tmp_path / "base.hv"
    path.write_text("abstract vm base {\n    arch ppc64le\n    kvm book3s_hv\n    memory 300M\n"
                    "    cap KVM_CAP_PPC_PAPRR on vcpus\n}\n")
    assert _codes(check([path]).report) == {"unknown-cap"}  # no cap-required, no memory-granularity


def test_a_base_statement_is_reported_once(tmp_path: Path) -> None:
    path = tmp_path / "two.hv"
    path.write_text("abstract vm base {\n    arch x86_64\n    memory 2M\n    htab auto\n}\n"
                    "vm a extends base {\n}\nvm b extends base {\n}\n")
    found = [d for d in check([path]).report if d.code == "setting-unsupported"]
    assert len(found) == 1 and found[0].span.line == 4


# ---- the registry itself ------------------------------------------------------------------


def test_registry_is_well_formed() -> None:
    codes = [c.code for c in CHECKS]
    assert len(codes) == len(set(codes))
    for c in CHECKS:
        assert CODE.match(c.code), c.code
        assert c.summary and not c.summary.endswith("."), c.code
        assert len(c.why) > 40, f"{c.code}: `why` must say which KVM doc or kernel behaviour backs the rule"
        assert set(c.requires) <= set(codes), c.code
        assert codes.index(c.code) > max((codes.index(r) for r in c.requires), default=-1), \
            f"{c.code} must come after its prerequisites"
    assert ABSTRACT_CODES <= set(codes)
    assert not set(codes) & stage_codes(), "a check reuses a code of an earlier stage"


def test_docs_are_current() -> None:
    committed = (REPO / "docs" / "diagnostics.md").read_text(encoding="utf-8")
    from hvconf.lint.explain import docs_markdown

    assert committed == docs_markdown(), "regenerate: python -c 'import hvconf.lint.explain as e; " \
        "open(\"docs/diagnostics.md\", \"w\").write(e.docs_markdown())'"
    for c in CHECKS:
        assert f"## {c.code}\n" in committed


# ---- a real-mode hypercall after a far transfer ------------------------------------------------

@pytest.mark.parametrize("guest, codes", [("vmcall.S", []),
                                          ("vmcall-segment.S", ["real-mode-hypercall-segment"])])
def test_only_the_real_mode_guest_that_reloads_cs_is_warned(guest: str, codes: list[str]) -> None:
    # The two share all but their far return through guests/x86/real16.inc's macros; the rule reads
    # only the guest's own source, so each writes out its vmcall (and its far return) there.
    text = f'vm v {{\n    arch x86_64\n    memory 2M\n    guest "../../guests/x86/{guest}" mode real at 0x7c00\n}}\n'
    report = check_text(text, REPO / "tests" / "invalid" / "unsaved.hv").report
    assert [d.code for d in report] == codes
