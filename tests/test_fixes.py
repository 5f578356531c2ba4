"""`hvconf check --fix` and `--diff` (hvconf/lint/fixes.py): one case per fixable code.

Each case is a bad definition (the shipped tests/invalid sample where it yields the fixable
form, else a small one here) and the text its fix writes. Per case: the finding carries the
fix, applying it changes exactly that text and removes the finding, every comment and the
layout of the other lines stay, and fixing the result changes nothing (idempotent). The CLI
tests run --fix, --diff, stdin and the json `fix` field as a user would.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from hvconf.lint.driver import check_text
from hvconf.lint.fixes import FIXERS, apply_edits, fix_text
from hvconf.lint.settings import Settings
from hvconf.diagnostics import Edit, Span

import helpers

REPO = Path(__file__).resolve().parent.parent
INVALID = REPO / "tests" / "invalid"
PPC = "vm bad {\n    arch ppc64le\n    kvm book3s_hv\n    memory 1G\n    vcpus 2\n    cap KVM_CAP_PPC_PAPR on vcpus\n"

# code: (sample name or text, the line before, the line after)
CASES: dict[str, tuple[str, str, str]] = {
    "unknown-keyword": ("unknown-keyword.hv", "memroy", "memory"),
    "unknown-base": ("abstract vm base {\n    arch x86_64\n    memory 2M\n}\nvm a extends bsae {  # keep\n}\n",
                     "vm a extends bsae {  # keep", "vm a extends base {  # keep"),
    "unknown-key": (PPC + "    tce vio0 { liobn 0x71000000  windw 256M }\n}\n", "windw 256M", "window 256M"),
    "unknown-cap": ("unknown-cap.hv", "KVM_CAP_PPC_OSII on vcpu 0", "KVM_CAP_PPC_OSI on vcpu 0"),
    "unknown-hcall": ("unknown-hcall.hv", "H_LOGICAL_CI_LAOD", "H_LOGICAL_CI_LOAD"),
    "unknown-preset": ("unknown-preset.hv", "qemu_default", "kernel_default"),
    "unknown-pv-feature": ("unknown-pv-feature.hv", "pv_unhalted", "pv_unhalt"),
    "unknown-mode": ("unknown-mode.hv", "irqchip kernal", "irqchip kernel"),
    "unknown-console": ("unknown-console.hv" if False else PPC + "    console hvtrem   # the sPAPR one\n}\n",
                        "console hvtrem   # the sPAPR one", "console hvterm   # the sPAPR one"),
    "invalid-value": (PPC + "    mmu hsah\n}\n", "mmu hsah", "mmu hash"),
    "cap-bad-args": ("vm bad {\n    arch x86_64\n    memory 2M\n    cap KVM_CAP_HALT_POLL { max_nss 1 }\n}\n",
                     "{ max_nss 1 }", "{ max_ns 1 }"),
    "cap-vm-wide": ("cap-vm-wide.hv", "cap KVM_CAP_PPC_FWNMI on vcpu 1", "cap KVM_CAP_PPC_FWNMI"),
    "cap-wrong-fd": ("cap-wrong-fd-2.hv", "cap KVM_CAP_PPC_PAPR on vm", "cap KVM_CAP_PPC_PAPR on vcpus"),
    "htab-order-range": ("htab-order-range.hv", "htab order 50", "htab auto"),
    "htab-too-small": ("htab-too-small.hv", "htab order 20", "htab order 23"),
    "htab-too-large": ("htab-too-large.hv", "htab order 46", "htab order 23"),
    "mmu-radix-needs-hv": ("mmu-radix-needs-hv.hv", "mmu radix", "mmu hash"),
    "rma-obsolete": ("rma-obsolete.hv", "rma 128M", "rma none"),
    "memory-too-small": ("memory-too-small.hv", "memory 32M", "memory 64M"),
    "memory-granularity": ("memory-granularity.hv", "memory 300M", "memory 512M"),  # rounds up
    "vsmt-below-threads": ("vsmt-below-threads.hv", "vsmt_mode 2", "vsmt_mode 4"),
    "threads-wrong-flavour": ("threads-wrong-flavour.hv", "threads 4", "threads 1"),
    "unused-suppression": ("unused-suppression.hv", "memory 16M  # hvconf: ignore[duplicate-setting]", "memory 16M"),
}


def _text(source: str) -> tuple[str, str]:
    """(text, path) of a case: a shipped sample, or text saved as a file of a scratch project."""
    if source.endswith(".hv") and "\n" not in source:
        return (INVALID / source).read_text(encoding="utf-8"), str(INVALID / source)
    return source, "/nonexistent-project/case.hv"


def test_every_fixable_code_has_a_case() -> None:
    assert set(CASES) == set(FIXERS)


@pytest.mark.parametrize("code", sorted(CASES))
def test_the_fix_makes_the_stated_edit_keeps_the_rest_and_is_idempotent(code: str) -> None:
    source, before, after = CASES[code]
    text, path = _text(source)
    found = [d for d in check_text(text, path, Settings()) if d.code == code]
    assert any(d.fix is not None for d in found), f"{code}: no fix attached"
    fixed = fix_text(text, path, Settings())
    assert before in text and after in fixed
    old_lines, new_lines = text.split("\n"), fixed.split("\n")
    changed = [line for line in old_lines if line not in new_lines]
    assert all(before in line or "hvconf: ignore" in line for line in changed), changed
    comments = [line for line in old_lines if line.lstrip().startswith("#") and "hvconf:" not in line]
    assert all(c in new_lines for c in comments)  # every ordinary comment kept, in place
    assert [d for d in check_text(fixed, path, Settings()) if d.code == code] == []
    assert fix_text(fixed, path, Settings()) == fixed


def test_unused_suppressions_go_code_by_code_and_the_comment_with_the_last() -> None:
    text = ("vm a {\n    arch x86_64\n    memory 2M  # hvconf: ignore[rma-obsolete, pit-needs-irqchip]\n"
            "    # hvconf: ignore[cap-duplicate]\n    vcpus 1\n}\n")
    assert fix_text(text, "/nonexistent/a.hv", Settings()) == "vm a {\n    arch x86_64\n    memory 2M\n    vcpus 1\n}\n"
    one = text.replace("rma-obsolete, ", "rma-obsolete, duplicate-setting, ").replace("memory 2M", "memory 2M\n"
                                                                                     "    memory 2M")
    fixed = fix_text(one, "/nonexistent/a.hv", Settings())
    assert "# hvconf: ignore[duplicate-setting]\n" in fixed and "rma-obsolete" not in fixed


@pytest.mark.parametrize("text", [
    # two unequal choices (2 or 4): no certain edit
    "vm bad {\n    arch ppc64le\n    kvm book3s_hv\n    memory 1G\n    vcpus 6\n    threads 3\n"
    "    cap KVM_CAP_PPC_PAPR on vcpus\n}\n",
    # the replacement would drop the statement's block
    "vm bad {\n    arch x86_64\n    memory 2M\n    cap KVM_CAP_HALT_POLL on vcpus { max_ns 10000 }\n}\n",
])
def test_no_fix_where_the_edit_is_not_certain(text: str) -> None:
    report = check_text(text, "/nonexistent/a.hv", Settings())
    assert report.diagnostics and all(d.fix is None for d in report)
    assert fix_text(text, "/nonexistent/a.hv", Settings()) == text


def test_overlapping_edits_wait_for_the_next_pass() -> None:
    edits = [Edit(Span("f", 1, 1, 1, 4), "X"), Edit(Span("f", 1, 3, 1, 5), "Y"), Edit(Span("f", 2, 1, 3, 1), "")]
    assert apply_edits("abcdef\nline\nend", edits) == "Xdef\nend"


def hvconf(*args: str, cwd: Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return helpers.hvconf(*args, cwd=cwd, stdin=stdin, timeout=60)


def test_cli_diff_fix_stdin_and_json(tmp_path: Path) -> None:
    for name in ("rma-obsolete.hv", "unknown-cap.hv", "cap-required.hv"):
        (tmp_path / name).write_text((INVALID / name).read_text())
    before = {p.name: p.read_text() for p in tmp_path.glob("*.hv")}
    done = hvconf("check", "--diff", ".", cwd=tmp_path)
    assert done.returncode == 1 and "-    rma 128M\n+    rma none\n" in done.stdout
    assert "+++ b/unknown-cap.hv" in done.stdout and "cap-required" not in done.stdout
    assert {p.name: p.read_text() for p in tmp_path.glob("*.hv")} == before  # --diff writes nothing
    listed = json.loads(hvconf("check", "--format", "json", "rma-obsolete.hv", cwd=tmp_path).stdout)
    assert listed[0]["fix"] == {"message": "write `rma none`", "edits": [
        {"location": {"file": "rma-obsolete.hv", "line": 8, "column": 5, "end_line": 8, "end_column": 13},
         "content": "rma none"}]}
    text = hvconf("check", ".", cwd=tmp_path).stdout
    assert "2 fixable with `hvconf check --fix`" in text
    done = hvconf("check", "-", "--fix", "--stdin-filename", "x.hv", cwd=tmp_path, stdin=before["unknown-cap.hv"])
    assert done.returncode == 0 and done.stdout == before["unknown-cap.hv"].replace("OSII", "OSI")
    done = hvconf("check", "--fix", ".", cwd=tmp_path)
    assert done.returncode == 1 and "cap-required" in done.stdout and "rma-obsolete" not in done.stdout
    assert (tmp_path / "rma-obsolete.hv").read_text() == before["rma-obsolete.hv"].replace("rma 128M", "rma none")
    assert (tmp_path / "cap-required.hv").read_text() == before["cap-required.hv"]
    assert not list(tmp_path.glob(".hvconf-fix-*"))
    assert hvconf("check", "--diff", ".", cwd=tmp_path).stdout == ""


def test_fix_neither_reads_nor_writes_through_a_link_out_of_the_project(tmp_path: Path) -> None:
    project, outside = tmp_path / "project", tmp_path / "outside"
    project.mkdir()
    outside.mkdir()
    (project / ".git").mkdir()
    host = outside / "host.hv"
    host.write_text("MARKER-SECRET\n" + (INVALID / "rma-obsolete.hv").read_text())
    (project / "vms").mkdir()
    (project / "vms" / "evil.hv").symlink_to(host)
    (project / "vms" / "ok.hv").write_text((INVALID / "rma-obsolete.hv").read_text())
    before = host.read_text()
    for flags in (["--diff"], ["--fix"]):
        done = hvconf("check", *flags, "vms", cwd=project)
        assert "MARKER" not in done.stdout + done.stderr
    assert host.read_text() == before
    assert "rma none" in (project / "vms" / "ok.hv").read_text()
