"""`hvconf check` over a generated repo of 500 definitions, and `build`'s progress bar.

The repo has every target, bases included by a dozen to two hundred files,
findings (some suppressed inline) at known places, so counts are exact. It
checks: one command lints all of it with the right counts and exit status;
each file is parsed once per run; --jobs 1 and --jobs 2 print byte-identical
output; suppressions in shared files are judged over the whole run;
discovery skips hidden folders; the progress bar appears on a pty only.
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from hvconf.diagnostics import Report
from hvconf.lint.driver import UsageError, discover, lint
from hvconf.syntax import ast

REPO = Path(__file__).resolve().parent.parent
TIMEOUT = 120
DEFINITIONS = 496  # plus the 4 bases: 500 files

BASES = {
    "common/x86.hv": "format 1\nabstract vm x86_base {\n    arch    x86_64\n    console serial\n}\n",
    "common/pseries.hv": (REPO / "samples" / "base" / "pseries.hv").read_text(),
    "common/e500.hv": ("format 1\nabstract vm e500_base {\n    arch ppc-e500\n    kvm  booke\n"
                       "    cap KVM_CAP_SW_TLB on vcpus { mmu e500v2  sets 128  ways 4 }\n}\n"),
    # A base with a finding of its own, shared by a dozen roots: reported once, not a dozen times.
    "common/legacy.hv": "format 1\nabstract vm legacy_base {\n    arch   x86_64\n    memory 2M\n    memory 4M\n}\n",
}


def _definition(i: int) -> tuple[str, str, str | None]:
    """(folder, text, expected code or None) of definition number i; targets rotate with i % 5."""
    kind = i % 5
    name = f"vm{i:03d}"
    if kind == 0 and i % 40 == 10:
        return "x86", f'format 1\ninclude "../common/legacy.hv"\nvm {name} extends legacy_base {{\n    vcpus 1\n}}\n', None
    if kind == 0:
        body = f"    memory {2 + i % 7 * 2}M\n    vcpus  {1 + i % 4}\n"
        code = None
        if i % 40 == 0:  # the same finding, suppressed on its line
            body = body + "    cap KVM_CAP_BOGUS  # hvconf: ignore[unknown-cap]\n"
        elif i % 20 == 0:
            body, code = body + "    cap KVM_CAP_BOGUS\n", "unknown-cap"
        elif i % 20 == 5:
            body = "    memory 2M\n    vcpus 1\n    pv_features { unhalt }\n    hcalls { enable KVM_HC_KICK_CPU }\n"
            code = "kick-cpu-single-vcpu"
        return "x86", f'format 1\ninclude "../common/x86.hv"\nvm {name} extends x86_base {{\n{body}}}\n', code
    if kind == 1:
        memory, code = ("300M", "memory-granularity") if i % 20 == 1 else (f"{1 + i % 3}G", None)
        return ("pseries", f'format 1\ninclude "../common/pseries.hv"\nvm {name} extends power9_base {{\n'
                f"    memory {memory}\n    vcpus  4\n}}\n", code)
    if kind == 2:
        return ("pseries", f'format 1\ninclude "../common/pseries.hv"\nvm {name} extends pseries_base {{\n'
                f"    kvm book3s_pr\n    memory 512M\n    vcpus {1 + i % 2}\n}}\n", None)
    if kind == 3:
        return ("e500", f'format 1\ninclude "../common/e500.hv"\nvm {name} extends e500_base {{\n'
                f"    memory 128M\n    vcpus 1\n}}\n", None)
    vcpus, code = ("two", "syntax-error") if i % 100 == 4 else ("2", None)
    return "s390x", f"format 1\nvm {name} {{\n    arch s390x\n    memory 256M\n    vcpus {vcpus}\n}}\n", code


def generate(root: Path) -> Counter[str]:
    """Write the 500-file repo under `root`; returns the expected count of each code."""
    expected: Counter[str] = Counter({"duplicate-setting": 1})  # in common/legacy.hv, once
    (root / ".git").mkdir()  # a repository: `include "../common/..."` stays inside it
    for rel, text in BASES.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    for i in range(DEFINITIONS):
        folder, text, code = _definition(i)
        (root / folder).mkdir(exist_ok=True)
        (root / folder / f"vm{i:03d}.hv").write_text(text)
        if code:
            expected[code] += 1
    hidden = root / ".cache"  # never linted: hidden folders are skipped
    hidden.mkdir()
    (hidden / "broken.hv").write_text("this is not hvconf\n")
    return expected


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Counter[str]]:
    root = tmp_path_factory.mktemp("lint-repo")
    return root, generate(root)


def hvconf(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    done = subprocess.run([sys.executable, "-m", "hvconf", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=TIMEOUT, check=False)
    assert "Traceback" not in done.stderr, done.stderr
    return done


def test_the_generated_repo_has_every_target_and_findings(repo: tuple[Path, Counter[str]]) -> None:
    root, expected = repo
    texts = [p.read_text() for p in root.rglob("*.hv") if ".cache" not in p.parts]
    assert len(texts) == 500
    for arch in ("x86_64", "ppc64le", "ppc-e500", "s390x"):
        assert any(f"arch {arch}" in t or f"arch    {arch}" in t for t in texts), arch
    assert sum(expected.values()) == 68 and len(expected) == 5
    assert sum("# hvconf: ignore[" in t for t in texts) == 13


def test_one_command_lints_the_whole_repo(repo: tuple[Path, Counter[str]]) -> None:
    root, expected = repo
    done = hvconf("check", "--format", "json", ".", cwd=root)
    assert done.returncode == 1, done.stderr
    found = json.loads(done.stdout)
    assert Counter(d["code"] for d in found) == expected
    assert all(not d["file"].startswith(".cache") for d in found)
    text = hvconf("check", ".", cwd=root)
    assert text.returncode == 1
    errors = sum(n for code, n in expected.items() if code not in ("duplicate-setting", "kick-cpu-single-vcpu"))
    assert text.stdout.splitlines()[-1] == f"checked 500 files: {errors} errors, 26 warnings"


def test_select_and_ignore_change_what_is_reported_and_the_status(repo: tuple[Path, Counter[str]]) -> None:
    root, expected = repo
    warnings_only = hvconf("check", "--format", "json", "--select", "duplicate-setting,kick-cpu-single-vcpu", ".",
                           cwd=root)
    assert warnings_only.returncode == 0, warnings_only.stderr  # warnings alone do not fail a run
    assert Counter(d["code"] for d in json.loads(warnings_only.stdout)) == Counter(
        {"duplicate-setting": 1, "kick-cpu-single-vcpu": expected["kick-cpu-single-vcpu"]})
    # With --werror, -q keeps the warnings too (they fail the run), and they make status 1.
    ignored = hvconf("check", "--format", "json", "-q", "--werror", "--ignore", "syntax-error", "--ignore",
                     "unknown-cap,memory-granularity", ".", cwd=root)
    assert ignored.returncode == 1, ignored.stderr
    assert Counter(d["code"] for d in json.loads(ignored.stdout)) == Counter(
        {c: n for c, n in expected.items() if c not in ("syntax-error", "unknown-cap", "memory-granularity")})


def test_each_file_is_parsed_once_per_run(repo: tuple[Path, Counter[str]], monkeypatch: pytest.MonkeyPatch) -> None:
    import hvconf.syntax.loader as loader
    import hvconf.syntax.parser as parser

    root, _ = repo
    parsed: Counter[str] = Counter()
    real = parser.parse

    def counting(text: str, file: str, report: Report) -> ast.SourceFile | None:
        parsed[file] += 1
        return real(text, file, report)

    # Both names: the loader's, and the module's (which suppressions would use to parse again).
    monkeypatch.setattr(loader, "parse", counting)
    monkeypatch.setattr(parser, "parse", counting)
    result = lint(discover([root]), jobs=1)
    assert result.files == 500
    assert len(parsed) == 500 and set(parsed.values()) == {1}, parsed.most_common(3)
    shared = [f for f in parsed if f.endswith("common/pseries.hv")]  # included by 198 roots, parsed once
    assert len(shared) == 1 and parsed[shared[0]] == 1


def test_the_run_keeps_findings_not_every_file(repo: tuple[Path, Counter[str]], monkeypatch: pytest.MonkeyPatch) -> None:
    """Of a clean definition nothing outlives its check: not its tree (the loader forgets it),
    not its text (kept only where a finding or an `# hvconf:` comment needs it)."""
    import hvconf.syntax.loader as loader

    root, _ = repo
    held: list[int] = []
    release = loader.Loader.release

    def counting(self: loader.Loader, path: Path) -> bool:
        forgotten = release(self, path)
        held.append(len(self._files))
        return forgotten

    monkeypatch.setattr(loader.Loader, "release", counting)
    result = lint(discover([root]), jobs=1)
    assert len(held) == DEFINITIONS and max(held) == len(BASES)  # bases are kept; they are never released
    with_findings = {d.span.file for d in result.report.diagnostics if d.span is not None}
    commented = {f for f, text in result.report.sources.items() if "hvconf" in text}
    bases = {loader.display_path(root / b) for b in BASES}
    assert with_findings <= set(result.report.sources) <= with_findings | commented | bases
    assert len(result.report.sources) < 100


def test_a_released_file_included_later_is_read_again_with_the_same_findings(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / "a.hv").write_text("format 1\nvm a {\n    arch x86_64\n    memory 2M\n    memory 4M\n}\n")
    (tmp_path / "b.hv").write_text('format 1\ninclude "a.hv"\nvm b {\n    arch s390x\n    memory 256M\n}\n')
    alone = lint([tmp_path / "a.hv"])
    both = lint([tmp_path / "a.hv", tmp_path / "b.hv"])
    assert [d.code for d in alone.report.diagnostics] == ["duplicate-setting"]
    assert both.report.diagnostics == alone.report.diagnostics and both.files == 2
    assert set(both.report.sources) == set(alone.report.sources)


def test_output_is_byte_identical_whatever_the_number_of_jobs(repo: tuple[Path, Counter[str]]) -> None:
    root, _ = repo
    one, two = (hvconf("check", "--jobs", jobs, ".", cwd=root) for jobs in ("1", "2"))
    assert one.returncode == two.returncode == 1
    assert one.stdout == two.stdout and one.stdout.count("error[") > 10


KICK_BASE = """format 1
abstract vm kick_base {
    arch x86_64
    memory 2M
    pv_features { unhalt }
    hcalls { enable KVM_HC_KICK_CPU }  # hvconf: ignore[kick-cpu-single-vcpu]
}
"""


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_shared_suppression_is_judged_over_the_whole_run(tmp_path: Path, jobs: int) -> None:
    # The suppression is used by a.hv's VM (one vCPU) and not by b.hv's (two): over the
    # run it is used, so neither the finding nor `unused-suppression` may appear,
    # whichever worker checks which root.
    (tmp_path / "base.hv").write_text(KICK_BASE)
    for name, vcpus in (("a", 1), ("b", 2)):
        (tmp_path / f"{name}.hv").write_text(f'format 1\ninclude "base.hv"\nvm {name} extends kick_base {{\n'
                                             f"    vcpus {vcpus}\n}}\n")
    for order in (["a.hv", "b.hv"], ["b.hv", "a.hv"]):
        result = lint([tmp_path / f for f in order], jobs=jobs)
        assert result.files == 2 and result.report.diagnostics == [], [str(d.span) + d.code for d in result.report]
    (tmp_path / "base.hv").write_text(KICK_BASE.replace("  # hvconf: ignore[kick-cpu-single-vcpu]", ""))
    assert [d.code for d in lint([tmp_path / "b.hv", tmp_path / "a.hv"], jobs=jobs).report] == [
        "kick-cpu-single-vcpu"]  # the control: without the comment the finding shows


def test_discovery_is_sorted_skips_hidden_and_rejects_empty_folders(tmp_path: Path) -> None:
    for rel in ("b/z.hv", "b/a.hv", "b-c.hv", "a.hv", ".hidden/x.hv", "b/.y.hv", "b/notes.txt"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("format 1\n")
    # Component by component, as Paths sort: b/ before b-c.hv, though "/" > "-" as characters.
    found = discover([tmp_path])
    assert all(type(p) is str for p in found)
    assert [Path(p).relative_to(tmp_path).as_posix() for p in found] == ["a.hv", "b/a.hv", "b/z.hv", "b-c.hv"]
    assert [Path(p) for p in found] == sorted(Path(p) for p in found)
    # A file named twice (directly and through its folder) is checked once; explicit files keep any name.
    assert [Path(p).name for p in discover([tmp_path / "b" / "notes.txt", tmp_path / "b", tmp_path / "b" / "a.hv"])] \
        == ["notes.txt", "a.hv", "z.hv"]
    (tmp_path / "empty").mkdir()
    for bad in (tmp_path / "empty", tmp_path / "missing.hv"):
        with pytest.raises(UsageError):
            discover([bad])


# --- progress bar on `hvconf build` -------------------------------------------------------------

def _build_on_pty(args: list[str], cwd: Path) -> tuple[int, str, str]:
    """Run hvconf with stderr on a pty (stdout piped); returns status, stdout and what the pty saw."""
    master, slave = pty.openpty()
    env = {**os.environ, "TERM": "xterm", "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "hvconf", *args], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=slave, stdin=subprocess.DEVNULL)
    os.close(slave)
    seen = bytearray()
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the child closed its end
                break
            if not chunk:
                break
            seen += chunk
        elif proc.poll() is not None:
            break
    os.close(master)
    out = proc.stdout.read().decode() if proc.stdout else ""
    return proc.wait(timeout=TIMEOUT), out, seen.decode(errors="replace")


@pytest.fixture(scope="module")
def buildable(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Twelve small s390x and e500 definitions: they build without assembling a guest."""
    root = tmp_path_factory.mktemp("build-many")
    (root / "common").mkdir()
    (root / "common" / "e500.hv").write_text(BASES["common/e500.hv"])
    names = []
    for i in range(12):
        if i % 2:
            text = f"format 1\nvm s{i} {{\n    arch s390x\n    memory 256M\n    vcpus 1\n    kernel \"image\"\n}}\n"
        else:
            text = (f'format 1\ninclude "common/e500.hv"\nvm e{i} extends e500_base {{\n    memory 128M\n'
                    f'    vcpus 1\n    kernel "uImage"\n}}\n')
        (root / f"vm{i:02d}.hv").write_text(text)
        names.append(str(root / f"vm{i:02d}.hv"))
    return names


def test_build_draws_a_progress_bar_on_a_terminal(buildable: list[str], tmp_path: Path) -> None:
    status, out, tty = _build_on_pty(["build", "-o", str(tmp_path / "out"), *buildable], cwd=tmp_path)
    assert status == 0, tty
    assert out.count("wrote ") == 12
    assert "\r[" in tty and "12/12 building" in tty, tty
    assert re.search(r"\r {20,}\r", tty), repr(tty[-200:])  # the bar is erased when the build ends


def test_build_draws_nothing_when_stderr_is_piped(buildable: list[str], tmp_path: Path) -> None:
    done = hvconf("build", "-o", str(tmp_path / "out"), *buildable, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "\r" not in done.stderr and "[#" not in done.stderr and "/12" not in done.stderr, done.stderr
