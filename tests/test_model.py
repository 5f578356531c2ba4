"""Lowering to the pydantic IR: extends merging, typing, defaults, and
validation errors reported at the span of what caused them."""

from __future__ import annotations

from pathlib import Path

from hvconf.diagnostics import Report
from hvconf.model import ir
from hvconf.model.lower import lower_program
from hvconf.syntax.loader import Loader


def lower(tmp_path: Path, text: str, **files: str) -> tuple[list[ir.Vm], Report]:
    for name, body in files.items():
        (tmp_path / f"{name}.hv").write_text(body)
    path = tmp_path / "main.hv"
    path.write_text(text)
    report = Report()
    return lower_program(Loader().load(path, report), report), report


def test_settings_are_typed_and_defaulted(tmp_path: Path) -> None:
    [vm], report = lower(tmp_path, "vm a { arch ppc64le memory 4G vcpus 8 threads 4 htab auto }")
    assert not report.diagnostics
    assert (vm.target, vm.flavour, vm.memory, vm.vcpus, vm.threads, vm.htab) == (
        "ppc64-spapr", "book3s_hv", 4 << 30, 8, 4, "auto")
    assert vm.span_of("memory").col == 21


def test_extends_merges_base_first(tmp_path: Path) -> None:
    base = """abstract vm base {
        arch ppc64le memory 1G
        hcalls { preset qemu enable H_SET_MODE }
        cap KVM_CAP_PPC_PAPR on vcpus
        cap KVM_CAP_HALT_POLL { max_ns 1000 }
        tce t { liobn 1 window 4K }
        rtas { token "power-off" 0x2003 }
    }"""
    [base_vm, vm], report = lower(tmp_path, base + """
    vm child extends base {
        memory 2G
        hcalls { disable H_CEDE }
        cap KVM_CAP_HALT_POLL { max_ns 5 }
        tce t { liobn 2 window 8K }
        rtas { token "system-reboot" 0x2004 }
    }""")
    assert not report.has_errors, [d.message for d in report]
    assert base_vm.abstract and not vm.abstract
    assert vm.memory == 2 << 30 and vm.arch == "ppc64le"
    assert vm.hcalls.preset == "qemu"
    assert [(op.action, op.ref) for op in vm.hcalls.ops] == [("enable", "H_SET_MODE"), ("disable", "H_CEDE")]
    assert [(c.name, c.arg_dict) for c in vm.caps] == [("KVM_CAP_PPC_PAPR", {}), ("KVM_CAP_HALT_POLL", {"max_ns": 5})]
    assert [(t.name, t.liobn) for t in vm.tces] == [("t", 2)]
    assert [t.name for t in vm.rtas] == ["power-off", "system-reboot"]


def test_unknown_and_cyclic_bases(tmp_path: Path) -> None:
    _, report = lower(tmp_path, "vm a extends bse { } abstract vm base { } vm x extends y { } vm y extends x { }")
    codes = report.codes()
    assert "unknown-base" in codes and codes.count("extends-cycle") == 2
    unknown = next(d for d in report if d.code == "unknown-base")
    assert unknown.help == "did you mean 'base'?"


def test_missing_required_settings(tmp_path: Path) -> None:
    _, report = lower(tmp_path, "vm a { vcpus 2 }")
    assert report.codes() == ["missing-setting", "missing-setting"]


def test_unknown_arch_and_flavour(tmp_path: Path) -> None:
    _, report = lower(tmp_path, "vm a { arch ppc64el memory 1G } vm b { arch ppc64le kvm booke memory 1G }")
    assert report.codes() == ["unknown-arch", "unknown-flavour"]


def test_unknown_keys_have_did_you_mean(tmp_path: Path) -> None:
    _, report = lower(tmp_path, "vm a { arch ppc64le memory 1G tce t { liobn 1 windw 4K } }")
    codes = report.codes()
    assert "unknown-key" in codes
    diag = next(d for d in report if d.code == "unknown-key")
    assert diag.help == "did you mean 'window'?" and (diag.span.col, diag.span.end_col) == (47, 52)


def test_validation_errors_land_on_the_value(tmp_path: Path) -> None:
    _, report = lower(tmp_path, "vm a {\n arch x86_64\n memory 0\n guest \"g.S\" mode protected\n}")
    by_code = {(d.code, d.span.line) for d in report}
    assert ("invalid-value", 3) in by_code
    mode = next(d for d in report if d.span.line == 4)
    assert "expected one of: real, prot32, long64" in mode.message


def test_duplicate_settings_warn_and_last_wins(tmp_path: Path) -> None:
    [vm], report = lower(tmp_path, "vm a { arch x86_64 memory 1M memory 2M }")
    assert report.codes() == ["duplicate-setting"] and vm.memory == 2 << 20


def test_ir_is_frozen_and_rejects_unknown_fields() -> None:
    import pydantic
    import pytest

    tce = ir.Tce(name="t", liobn=1, window=4096)
    with pytest.raises(pydantic.ValidationError):
        ir.Tce(name="t", liobn=1, window=4096, colour="red")
    with pytest.raises(pydantic.ValidationError):
        tce.liobn = 2  # type: ignore[misc]
