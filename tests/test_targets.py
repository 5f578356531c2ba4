"""Tests for the target knowledge base (targets/<name>/*.toml) and hvconf.model.target.

Every target loads; the folders hold the same four files; every cap, hcall,
feature, exit and instruction-sequence name resolves through hvconf.abi and
agrees with it; presets, hypertas sets and launcher handlers are consistent;
target_for maps arches/flavours; broken copies fail with TargetError naming the file.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
from pydantic import ValidationError

import hvconf.abi as abi
from hvconf.abi import hcalls as abi_hcalls
from hvconf.model.target import FILES, Target, TargetError, load_target, target_for, target_names
from hvconf.resources import targets_dir

NAMES = ("ppc-e500", "ppc64-spapr", "s390x", "x86_64")
PROPOSED = {item.name: item for item in abi.proposed().items}

# How each target's hcall names resolve in hvconf.abi (a new target must add a row).
HCALL_TABLE: dict[str, Callable[[str], Any]] = {
    "ppc64-spapr": abi.papr_hcall,
    "ppc-e500": abi.epapr_token,
    "x86_64": abi.x86_hypercall,
    "s390x": lambda name: abi_hcalls.s390_diag500()[name],
}

# The ibm,hypertas-functions strings QEMU spapr_dt_rtas advertises, minus watchdog
# (docs/kernel-facts.md#hypertas-function-sets).
HYPERTAS = {
    "hcall-pft", "hcall-term", "hcall-dabr", "hcall-interrupt", "hcall-tce", "hcall-vio",
    "hcall-splpar", "hcall-join", "hcall-bulk", "hcall-set-mode", "hcall-sprg0", "hcall-copy",
    "hcall-debug", "hcall-vphn", "hcall-multi-tce", "hcall-hpt-resize", "hcall-rpt-invalidate",
}


def targets() -> list[Target]:
    return [load_target(name) for name in target_names()]


def test_the_four_targets_exist_and_load() -> None:
    assert target_names() == NAMES
    for target in targets():
        assert isinstance(target, Target) and target.name in NAMES
        assert load_target(target.name, targets_dir()) == target
        assert load_target(target.name) is target  # cached


@pytest.mark.parametrize("name", NAMES)
def test_every_folder_holds_exactly_the_four_files(name: str) -> None:
    assert sorted(p.name for p in (targets_dir() / name).iterdir()) == sorted(FILES)


@pytest.mark.parametrize("name", NAMES)
def test_cap_names_resolve_and_scopes_agree_with_abi(name: str) -> None:
    target = load_target(name)
    for cap in target.caps:
        if cap.proposed:
            assert PROPOSED[cap.name].kind == "cap", cap.name
            continue
        info = abi.cap(cap.name)
        assert set(target.arches) <= set(info.arches), (cap.name, info.arches)
        if cap.abi_override_reason is None:
            assert cap.scope == info.enable, (cap.name, cap.scope, info.enable)
        else:  # a stale reason would hide a real disagreement later
            assert cap.scope != info.enable, (cap.name, "override reason but scopes agree")
    for cap_name in {n for caps in target.requires.values() for n in caps}:
        assert target.name2cap[cap_name].scope == "check", cap_name


@pytest.mark.parametrize("name", NAMES)
def test_hcall_names_resolve_through_abi(name: str) -> None:
    target = load_target(name)
    assert set(HCALL_TABLE) == set(NAMES)
    for hcall in target.hcalls:
        if hcall.proposed:
            assert PROPOSED[hcall.name].kind == "hcall", hcall.name
        else:
            HCALL_TABLE[name](hcall.name)


def test_x86_hcall_rows_agree_with_abi() -> None:
    target = load_target("x86_64")
    for hcall in target.hcalls:
        info = abi.x86_hypercall(hcall.name)
        assert hcall.feature == info.feature, hcall.name
        assert hcall.exit_capable == info.exits_to_userspace, hcall.name
        assert hcall.deprecated == info.deprecated, hcall.name
        assert (hcall.foreign_arch is None) == ("x86" in info.arches), hcall.name
        if hcall.foreign_arch:
            assert hcall.foreign_arch in info.arches and hcall.handler == "none"
    assert {h.name for h in target.hcalls if h.exit_capable} == {"KVM_HC_MAP_GPA_RANGE"}
    gates = {h.name: h.feature for h in target.hcalls if h.feature}
    assert gates["KVM_HC_KICK_CPU"] == "KVM_FEATURE_PV_UNHALT"
    assert gates["KVM_HC_SEND_IPI"] == "KVM_FEATURE_PV_SEND_IPI"
    assert gates["KVM_HC_SCHED_YIELD"] == "KVM_FEATURE_PV_SCHED_YIELD"


def test_epapr_and_s390_handlers_agree_with_abi() -> None:
    for hcall in load_target("ppc-e500").hcalls:
        in_kernel = not hcall.proposed and abi.epapr_token(hcall.name).kvm_handles
        assert (hcall.handler == "kernel") == in_kernel, hcall.name
        if hcall.handler == "launcher":  # upstream never exits for ePAPR hcalls
            assert "KVM_CAP_EXIT_EPAPR_HCALL" in hcall.requires, hcall.name
    diag = abi_hcalls.s390_diag500()
    assert {h.name for h in load_target("s390x").hcalls} == set(diag)
    for hcall in load_target("s390x").hcalls:
        assert (hcall.handler == "kernel") == (diag[hcall.name]["handled_by"] == "kernel"), hcall.name


def test_papr_kernel_rows_have_an_in_kernel_implementation() -> None:
    target = load_target("ppc64-spapr")
    in_kernel = target.kernel_hcalls("book3s_hv") | target.kernel_hcalls("book3s_pr")
    for hcall in target.hcalls:
        if hcall.handler == "kernel":
            assert hcall.name in in_kernel, hcall.name
    assert abi.papr_hcall("H_RTAS").platform and target.name2hcall["H_RTAS"].handler == "launcher"


def test_features_and_dt_names_resolve_through_abi() -> None:
    x86 = load_target("x86_64")
    rows = x86.features.pv_features.rows if x86.features.pv_features else ()
    assert rows
    for row in rows:
        assert abi.kvm_feature(row.name).name == row.name
    assert x86.name2pv_feature["unhalt"] is x86.name2pv_feature["KVM_FEATURE_PV_UNHALT"]
    assert x86.name2pv_feature["pv_eoi"].name == "KVM_FEATURE_PV_EOI"
    disable_exits = x86.name2cap["KVM_CAP_X86_DISABLE_EXITS"].name2arg["exits"].values or {}
    for row in rows:
        assert set(row.not_with_disable_exits) <= set(disable_exits), row.name

    e500 = load_target("ppc-e500")
    node = e500.features.hypervisor_node
    assert node is not None
    pvinfo = abi_hcalls.epapr_data()["pvinfo"]
    assert set(node.instructions.values()) | {node.instructions_fallback} <= set(pvinfo)
    mmus = e500.name2cap["KVM_CAP_SW_TLB"].name2arg["mmu"].values or {}
    assert set(node.instructions) == set(mmus)
    assert all(len(pvinfo[seq]) * 4 <= node.instructions_max_bytes for seq in node.instructions.values())
    for flag in node.flags:
        assert flag.proposed == (flag.property in PROPOSED), flag.property
        if flag.proposed:
            assert PROPOSED[flag.property].kind == "dt_property"

    spapr = load_target("ppc64-spapr")
    assert spapr.features.rtas is not None
    assert set(spapr.features.rtas.kernel_tokens) == set(abi_hcalls.rtas_in_kernel())


@pytest.mark.parametrize("name", NAMES)
def test_exits_and_uapi_agree_with_abi(name: str) -> None:
    target = load_target(name)
    if target.launcher.exit_proposed:
        assert PROPOSED[target.launcher.exit].kind == "exit"
    else:
        abi.exit_reason(target.launcher.exit)
    for console in target.consoles:
        if console.exit:
            abi.exit_reason(console.exit)
    for arch in target.arches:
        assert abi.ABI_OF_ARCH[arch] == target.uapi, arch


def test_every_abi_arch_belongs_to_one_target() -> None:
    owners = {arch: [t.name for t in targets() if arch in t.arches] for arch in abi.ARCHES}
    assert all(len(names) == 1 for names in owners.values()), owners


def test_hypertas_sets_and_launcher_handlers() -> None:
    spapr = load_target("ppc64-spapr")
    assert set(spapr.set2hcalls) == HYPERTAS
    for hcalls in spapr.set2hcalls.values():
        assert hcalls and all(h in spapr.name2hcall for h in hcalls)
    assert set(spapr.launcher.handlers) == {"H_PUT_TERM_CHAR", "H_GET_TERM_CHAR", "H_RTAS", "H_SET_MODE",
                                            "H_PUT_TCE", "H_GET_TCE", "H_STUFF_TCE", "H_PUT_TCE_INDIRECT",
                                            "H_REGISTER_PROC_TBL", "H_RANDOM", "H_CEDE"}  # what a Linux boot calls
    assert spapr.launcher.unknown == "H_FUNCTION"
    hvterm = spapr.name2console["hvterm"]
    assert hvterm.compatible == ("hvterm1",) and hvterm.node == "/vdevice/vty@30000000"
    assert set(hvterm.needs_hcalls) <= set(spapr.launcher.handlers)
    for target in targets():
        for hcall in target.hcalls:
            if hcall.handler == "launcher":
                assert hcall.name in target.launcher.handlers, (target.name, hcall.name)
        assert not target.hcall_sets or target.name == "ppc64-spapr"


def test_presets_resolve_for_each_flavour() -> None:
    spapr = load_target("ppc64-spapr")
    papr = abi.papr_hcalls().values()
    expected = {
        "book3s_hv": {h.name for h in papr if h.hv_default and not h.platform},
        "book3s_pr": {h.name for h in papr if h.pr_default and not h.platform},
    }
    qemu_add = set(spapr.presets["qemu"].add)
    for flavour in spapr.flavours:
        default = spapr.preset("kernel_default", flavour)
        assert default == expected[flavour] and default <= set(spapr.name2hcall)
        assert spapr.preset("qemu", flavour) == default | (qemu_add & spapr.kernel_hcalls(flavour))
        assert spapr.preset("none", flavour) == frozenset()
        for preset in spapr.presets:
            assert spapr.preset(preset, flavour) <= spapr.kernel_hcalls(flavour)
    assert qemu_add <= spapr.preset("qemu", "book3s_hv")
    assert "H_CLEAR_REF" not in spapr.preset("qemu", "book3s_pr")  # no PR in-kernel handler
    with pytest.raises(TargetError, match="did you mean 'qemu'"):
        spapr.preset("qemy", "book3s_hv")
    with pytest.raises(TargetError, match="not offered"):
        spapr.preset("qemu", "booke")
    assert all(not t.presets for t in targets() if t.name != "ppc64-spapr")


def test_key_platform_rows() -> None:
    spapr, e500, x86 = load_target("ppc64-spapr"), load_target("ppc-e500"), load_target("x86_64")
    assert spapr.vm_type == {"book3s_hv": 1, "book3s_pr": 2} and spapr.memory.granularity == 256 << 20
    assert spapr.name2cap["KVM_CAP_PPC_PAPR"].required_for == ("book3s_hv",)
    assert spapr.name2cap["KVM_CAP_PPC_ENABLE_HCALL"].managed == "hcalls"
    assert spapr.name2cap["KVM_CAP_PPC_OSI"].flavours == ("book3s_pr",)
    assert "KVM_CAP_PPC_OSI" not in {c.name for c in spapr.caps_for("book3s_hv")}
    assert e500.name2cap["KVM_CAP_SW_TLB"].encoder == "sw_tlb" and e500.memory.granularity == 64 << 20
    assert e500.name2cap["KVM_CAP_EXIT_EPAPR_HCALL"].proposed
    assert x86.name2cap["KVM_CAP_EXIT_HYPERCALL"].managed == "hcalls"
    assert x86.name2cap["KVM_CAP_ENFORCE_PV_FEATURE_CPUID"].managed == "enforce"
    assert not x86.has_device_tree and x86.no_device_tree and spapr.has_device_tree
    assert x86.name2console["serial"].io_port == 0x3F8


def test_lookups_are_read_only() -> None:
    target = load_target("x86_64")
    assert isinstance(target.name2cap, MappingProxyType) and isinstance(target.vm_type, MappingProxyType)
    with pytest.raises(TypeError):
        target.name2cap["KVM_CAP_X"] = target.caps[0]  # type: ignore[index]
    with pytest.raises(ValidationError):
        target.name = "other"  # type: ignore[misc]
    assert Target.model_json_schema()["title"] == "Target"
    assert target.model_dump()["vm_type"] == {"x86": 0}


@pytest.mark.parametrize(
    ("arch", "flavour", "expected"),
    [
        ("ppc64le", "book3s_hv", "ppc64-spapr"),
        ("ppc64", "book3s_pr", "ppc64-spapr"),
        ("ppc64le", None, "ppc64-spapr"),
        ("ppc-e500", None, "ppc-e500"),
        ("ppc-e500", "booke", "ppc-e500"),
        ("x86_64", None, "x86_64"),
        ("x86_64", "x86", "x86_64"),
        ("s390x", None, "s390x"),
    ],
)
def test_target_for(arch: str, flavour: str | None, expected: str) -> None:
    assert target_for(arch, flavour) == expected


@pytest.mark.parametrize(
    ("arch", "flavour", "message"),
    [
        ("ppc64el", None, "unknown arch 'ppc64el'.*did you mean 'ppc64le'"),
        ("x86-64", None, "did you mean 'x86_64'"),
        ("ppc64le", "book3s_hx", "not offered for arch ppc64le.*did you mean 'book3s_hv'"),
        ("ppc-e500", "book3s_hv", "not offered for arch ppc-e500 \\(offers: booke\\)"),
        ("ppc64le", "booke", "offers: book3s_hv, book3s_pr\\); booke is for ppc-e500"),
    ],
)
def test_target_for_rejects_with_a_suggestion(arch: str, flavour: str | None, message: str) -> None:
    with pytest.raises(TargetError, match=message):
        target_for(arch, flavour)


def test_unknown_target_name_suggests() -> None:
    with pytest.raises(TargetError, match="did you mean 'x86_64'"):
        load_target("x86-64")


def _broken_copy(tmp_path: Path, name: str, file: str, old: str, new: str) -> Path:
    shutil.copytree(targets_dir() / name, tmp_path / name)
    path = tmp_path / name / file
    text = path.read_text(encoding="utf-8")
    assert old in text, old  # the edit must really happen
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path


BROKEN = [  # (target, file, text, replacement, expected message)
    ("x86_64", "caps.toml", 'scope = "vm"', 'scope = "vms"',
     r"cap\[KVM_CAP_EXIT_HYPERCALL\]\.scope: Input should be"),
    ("x86_64", "caps.toml", 'managed = "hcalls"', 'managed = "hcalls"\ncolour = 1',
     r"cap\[KVM_CAP_EXIT_HYPERCALL\]\.colour: Extra inputs"),
    ("ppc64-spapr", "hcalls.toml", 'handler = "kernel"', 'handler = "launcher"',
     r"hcall\[H_ENTER\]: handler is launcher"),
    ("ppc64-spapr", "hcalls.toml", 'set = "hcall-pft"', 'set = "hcall-pfx"',
     r"hcall\[H_ENTER\]\.set: unknown hcall set 'hcall-pfx'; did you mean 'hcall-pft'"),
    ("ppc64-spapr", "target.toml", 'granularity = "256M"', 'granularity = "300M"',
     r"memory: granularity 0x12c00000 must be a power of two"),
    ("ppc64-spapr", "target.toml", '"H_PAGE_INIT",', '"H_PAGE_INT",',
     r"presets\.qemu: unknown hcall 'H_PAGE_INT'; did you mean 'H_PAGE_INIT'"),
    ("ppc64-spapr", "devices.toml", '"H_GET_TERM_CHAR",', '"H_GET_TERM_CHR",',
     r"console\[hvterm\]\.needs_hcalls: .*did you mean 'H_GET_TERM_CHAR'"),
    ("ppc-e500", "caps.toml", "values = { e500v2 = 0", "values = { e500v2 = 'zero'",
     r"cap\[KVM_CAP_SW_TLB\]\.args\[mmu\]\.values\.e500v2"),
    ("x86_64", "devices.toml", 'name = "serial"', 'name = "serial"\nnode = "/serial"',
     r"console\[serial\]\.node: a device-tree node on a target without a device tree"),
    ("s390x", "target.toml", 'outputs = ["plan", "launcher"]', 'outputs = ["plan", "dts"]',
     r"outputs list dts and dtb together"),
    ("s390x", "target.toml", 'name = "s390x"', 'name = "s390"', r"name: name 's390' differs"),
    ("s390x", "hcalls.toml", "[[hcall]]", "[[hcall]", r"Expected ']]'"),
    ("ppc-e500", "hcalls.toml", 'name = "EV_IDLE"', 'name = "EV_IDLE"\nset = "hcall-pft"',
     r"hcall\[EV_IDLE\]\.set: unknown hcall set"),
]


@pytest.mark.parametrize(("name", "file", "old", "new", "message"), BROKEN)
def test_broken_copy_names_the_file(
    tmp_path: Path, name: str, file: str, old: str, new: str, message: str
) -> None:
    path = _broken_copy(tmp_path, name, file, old, new)
    with pytest.raises(TargetError, match=message) as err:
        load_target(name, tmp_path)
    assert err.value.file == path and str(path) in str(err.value)


def test_missing_file_is_named(tmp_path: Path) -> None:
    shutil.copytree(targets_dir() / "x86_64", tmp_path / "x86_64")
    (tmp_path / "x86_64" / "devices.toml").unlink()
    with pytest.raises(TargetError, match="devices.toml: missing"):
        load_target("x86_64", tmp_path)


def test_cold_load_takes_milliseconds(tmp_path: Path) -> None:
    shutil.copytree(targets_dir(), tmp_path / "t")
    for name in NAMES:
        start = time.perf_counter()
        load_target(name, tmp_path / "t")  # a fresh root: nothing cached
        assert time.perf_counter() - start < 0.05, name
