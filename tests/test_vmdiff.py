"""`hvconf diff`: changes by meaning between two revisions of real samples.

A scratch git repository holds a copy of samples/ and guests/; each test edits the working
tree as a pull request would and runs `hvconf diff --base HEAD` (or two folders) as a user
does. Comment-only and moved-line edits are no change (status 0); vCPUs, hcalls, a guest
image, VMs added and removed are reported in their sections (status 1); a side that does not
compile, a bad REF and a hostile REF tree are errors (status 2) that leak nothing.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import helpers

REPO = Path(__file__).resolve().parent.parent
GIT = shutil.which("git")
pytestmark = pytest.mark.skipif(GIT is None, reason="hvconf diff --base needs git")


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", *args], cwd=cwd, check=True,
                   capture_output=True, timeout=60)


def hvconf(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return helpers.hvconf(*args, cwd=cwd, timeout=300)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    shutil.copytree(REPO / "samples", root / "samples")
    shutil.copytree(REPO / "guests", root / "guests")
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "base")
    return root


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))


def diff_json(repo: Path, *paths: str) -> tuple[int, dict]:
    done = hvconf("diff", "--base", "HEAD", "--format", "json", *paths, cwd=repo)
    return done.returncode, json.loads(done.stdout) if done.stdout else {}


def test_comments_and_moved_lines_are_no_change(repo: Path) -> None:
    pseries = repo / "samples" / "pseries.hv"
    pseries.write_text("# a new first line moves every source location\n\n" + pseries.read_text())
    edit(pseries, "    rma    none\n", "    rma    none   # a new trailing comment\n")
    base = repo / "samples" / "base" / "pseries.hv"
    base.write_text("# moved too\n" + base.read_text())
    done = hvconf("diff", "--base", "HEAD", cwd=repo)
    assert (done.returncode, done.stdout) == (0, "No changes: the compiled VMs are the same.\n"), done.stderr
    # ... while the committed outputs would churn: the provenance the diff leaves out did move
    built = [hvconf("build", "samples/pseries.hv", "-o", str(repo / out), cwd=repo) for out in ("new",)]
    assert built[0].returncode == 0
    assert '"source": "pseries.hv:' in (repo / "new" / "pseries" / "plan.json").read_text()
    assert diff_json(repo) == (0, {"changed": False, "summary": {"add": 0, "change": 0, "remove": 0}, "vms": []})


def test_fewer_vcpus_is_steps_nodes_and_caps(repo: Path) -> None:
    edit(repo / "samples" / "pseries.hv", "vcpus  8", "vcpus  4")
    status, out = diff_json(repo, "samples")
    assert status == 1 and out["summary"] == {"add": 0, "change": 1, "remove": 0}
    (vm,) = out["vms"]
    assert (vm["vm"], vm["action"]) == ("pseries", "change")
    by = {(c["section"], c["change"]) for c in vm["changes"]}
    assert {("plan", "removed"), ("device tree", "removed"), ("caps", "changed"), ("images", "changed")} <= by
    whats = [c["what"] for c in vm["changes"]]
    assert any(re.match(r"step \d+ vm KVM_CREATE_VCPU \{\"vcpu_id\": 7\}", w) for w in whats)
    assert "/cpus/PowerPC,POWER9@4/" in whats and "fdt.sha256" in whats
    assert not any("source" in json.dumps(c) for c in vm["changes"])


def test_an_hcall_switched_and_a_cap_added(repo: Path) -> None:
    edit(repo / "samples" / "pseries.hv", "        disable H_CEDE", "        disable H_CEDE H_RANDOM")
    status, out = diff_json(repo)
    hcalls = [c for c in out["vms"][0]["changes"] if c["section"] == "hcalls"]
    # no longer enabled in-kernel: the launcher answers it from getrandom(2) (docs/linux-guests.md)
    assert status == 1 and hcalls == [{"section": "hcalls", "change": "changed", "what": "H_RANDOM",
                                       "old": "in-kernel", "new": "served by the launcher"}]
    done = hvconf("diff", "--base", "HEAD", cwd=repo)
    text = done.stdout
    assert "~ vm pseries (ppc64-spapr)\n" in text and "~ H_RANDOM: in-kernel -> served by the launcher" in text, done.stderr
    assert text.endswith("Plan: 0 VM(s) to add, 1 to change, 0 to remove.\n")


def test_a_guest_image_changed(repo: Path) -> None:
    hello = repo / "guests" / "x86" / "hello.S"
    text = hello.read_text()
    assert "hello from hvconf guest" in text
    hello.write_text(text.replace("hello from hvconf guest", "hello from a changed guest"))
    status, out = diff_json(repo, "samples/x86-hello.hv")
    changes = out["vms"][0]["changes"]
    assert status == 1 and {c["what"] for c in changes} >= {"guest.sha256"}
    assert {c["section"] for c in changes} <= {"images", "plan"}


def test_two_folders_with_vms_added_and_removed(repo: Path) -> None:
    for side, gone in (("old", "x86-pvspinlock.hv"), ("new", "x86-hello.hv")):
        shutil.copytree(repo / "samples", repo / side)
        (repo / side / gone).unlink()
    done = hvconf("diff", "old", "new", "--format", "markdown", cwd=repo)
    assert done.returncode == 1, done.stderr
    assert "| + | `x86-pvspinlock` |" in done.stdout and "| - | `x86-hello` |" in done.stdout
    assert done.stdout.startswith("### hvconf diff\n\nPlan: 1 VM(s) to add, 0 to change, 1 to remove.")
    assert hvconf("diff", "old", "old", cwd=repo).returncode == 0


def test_markdown_fences_outlast_backticks_in_values(repo: Path) -> None:
    edit(repo / "samples" / "pseries.hv", 'cmdline "console=hvc0"', 'cmdline "console=hvc0 ```` x"')
    done = hvconf("diff", "--base", "HEAD", "--format", "markdown", cwd=repo)
    assert done.returncode == 1 and "`````diff\n" in done.stdout and "\n`````\n" in done.stdout


def test_errors_are_status_2_in_one_line(repo: Path) -> None:
    edit(repo / "samples" / "pseries.hv", "vcpus  8", "vcpus  eight")
    done = hvconf("diff", "--base", "HEAD", cwd=repo)
    assert done.returncode == 2 and done.stdout == "" and "the working tree does not compile" in done.stderr
    git(repo, "checkout", "--", ".")
    for ref in ("no-such-ref", "--output=/tmp/x"):
        done = hvconf("diff", "--base", ref, cwd=repo)
        assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert hvconf("diff", "only-one", cwd=repo).returncode == 2
    assert hvconf("diff", "--base", "HEAD", str(REPO.parent), cwd=repo).returncode == 2


def test_a_hostile_base_tree_is_unpacked_safely_and_removed(repo: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.hv"
    secret.write_text("MARKER-SECRET\n")
    (repo / "evil").mkdir()
    (repo / "evil" / "link.hv").symlink_to(secret)
    (repo / "evil" / "a.hv").write_text('format 1\ninclude "link.hv"\n')
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "evil")
    before = set(Path("/tmp").glob("hvconf-diff-*"))
    done = hvconf("diff", "--base", "HEAD", "evil", cwd=repo)
    assert done.returncode == 2 and "MARKER" not in done.stdout + done.stderr
    assert "HEAD does not compile" in done.stderr and "include-not-found" in done.stderr  # the link was left out
    assert set(Path("/tmp").glob("hvconf-diff-*")) == before  # the unpacked tree is gone


def test_committed_build_outputs_are_compared_by_meaning_too(repo: Path) -> None:
    def build() -> None:
        assert hvconf("build", "samples/pseries.hv", "samples/x86-hello.hv", "-o", "out", cwd=repo).returncode == 0

    build()
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "outputs")
    pseries = repo / "samples" / "pseries.hv"
    pseries.write_text("# moved\n" + pseries.read_text())
    build()
    churn = subprocess.run(["git", "diff", "--numstat", "--", "out"], cwd=repo, capture_output=True, text=True,
                           timeout=60, check=True).stdout
    assert sum(int(line.split()[0]) for line in churn.splitlines()) > 50  # the source locations moved
    assert hvconf("diff", "--base", "HEAD", "out", cwd=repo).returncode == 0
    edit(pseries, "vcpus  8", "vcpus  4")
    build()
    status, out = diff_json(repo, "out")
    assert status == 1 and [v["vm"] for v in out["vms"]] == ["pseries"]
    assert "/cpus/PowerPC,POWER9@4/" in [c["what"] for c in out["vms"][0]["changes"]]
