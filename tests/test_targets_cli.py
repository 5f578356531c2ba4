"""`hvconf targets` and `hvconf caps --target T`, read back against the targets' own TOML
files (parsed here with tomllib, not through hvconf's loader) and the Linux numbers of
hvconf.abi; unknown names are usage errors with a suggestion; completion offers targets."""

from __future__ import annotations

import json
import subprocess
import tomllib
from pathlib import Path

import pytest

import helpers

REPO = Path(__file__).resolve().parent.parent
TARGETS = sorted(p.name for p in (REPO / "targets").iterdir() if (p / "target.toml").is_file())


def hvconf(*args: str) -> subprocess.CompletedProcess[str]:
    return helpers.hvconf(*args, timeout=60)


def _toml(target: str, name: str) -> dict:
    return tomllib.loads((REPO / "targets" / target / name).read_text(encoding="utf-8"))


def test_targets_lists_every_target_folder() -> None:
    listed = json.loads(hvconf("targets", "--format", "json").stdout)["targets"]
    assert [t["name"] for t in listed] == TARGETS
    for t in listed:
        spec = _toml(t["name"], "target.toml")
        assert (t["arches"], t["flavours"], t["default_flavour"], t["outputs"]) == \
               (spec["arches"], spec["flavours"], spec["default_flavour"], spec["outputs"])
        assert t["caps"] == len(_toml(t["name"], "caps.toml")["cap"])
    text = hvconf("targets").stdout
    for t in listed:
        assert f"\n{t['name']} " in text and t["description"] in text
    assert "in steps of 256M" in text  # sizes as .hv writes them


@pytest.mark.parametrize("target", TARGETS)
def test_caps_of_a_target_are_its_caps_toml_with_linux_numbers(target: str) -> None:
    from hvconf import abi

    done = hvconf("caps", "--target", target, "--format", "json")
    listed = json.loads(done.stdout)
    rows = {row["name"]: row for row in _toml(target, "caps.toml")["cap"]}
    assert listed["target"] == target and {c["name"] for c in listed["caps"]} == set(rows)
    for cap in listed["caps"]:
        assert cap["fd"] == rows[cap["name"]]["scope"]
        expected = abi.caps()[cap["name"]].number if not rows[cap["name"]].get("proposed") else None
        assert cap["number"] == expected
    text = hvconf("caps", "--target", target).stdout
    assert all(f"\n{c['name']} " in text for c in listed["caps"])


def test_caps_of_one_flavour() -> None:
    hv = {c["name"] for c in json.loads(hvconf("caps", "--target", "ppc64-spapr", "--flavour", "book3s_hv",
                                               "--format", "json").stdout)["caps"]}
    pr = {c["name"] for c in json.loads(hvconf("caps", "--target", "ppc64-spapr", "--flavour", "book3s_pr",
                                               "--format", "json").stdout)["caps"]}
    assert "KVM_CAP_PPC_FWNMI" in hv - pr and "KVM_CAP_PPC_OSI" in pr - hv and "KVM_CAP_PPC_PAPR" in hv & pr


@pytest.mark.parametrize("args, message", [
    (["--target", "ppc64-sapr"], "did you mean 'ppc64-spapr'?"),
    (["--target", "ppc64-spapr", "--flavour", "booke"], "flavours are: book3s_hv, book3s_pr"),
])
def test_unknown_names_are_usage_errors(args: list[str], message: str) -> None:
    done = hvconf("caps", *args)
    assert done.returncode == 2 and done.stdout == "" and message in done.stderr and done.stderr.count("\n") == 1


def test_bash_completes_target_names(tmp_path: Path) -> None:
    import shutil

    if shutil.which("bash") is None:
        pytest.skip("no bash")
    script = tmp_path / "c.bash"
    script.write_text(hvconf("completion", "bash").stdout)
    probe = (f'source {script}; COMP_WORDS=(hvconf caps --target ppc); COMP_CWORD=3; '
             '_hvconf 2>/dev/null || true; printf "%s\\n" "${COMPREPLY[@]}"')
    out = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, timeout=60, check=False).stdout
    assert out.split() == ["ppc-e500", "ppc64-spapr"]
