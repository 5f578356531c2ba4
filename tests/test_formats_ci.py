"""The CI formats beside json/sarif/github: GitLab Code Quality and JUnit XML, the summary
line of the github format, and the colour decision (--color, NO_COLOR, FORCE_COLOR,
CLICOLOR_FORCE) on every command that prints diagnostics. Real `hvconf check` runs on the
shipped bad samples, read back with json and xml.etree as GitLab and a JUnit reader would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from hvconf.diagnostics import Diagnostic, Report, Severity, Span
from hvconf.lint.driver import LintResult
from hvconf.lint.formats import render
from hvconf.lint.render import use_colour

REPO = Path(__file__).resolve().parent.parent
INVALID = REPO / "tests" / "invalid"
SAMPLES = ["rma-obsolete.hv", "unknown-cap.hv", "duplicate-vm.hv"]


def hvconf(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR", "CLICOLOR_FORCE",
                                                             "GITHUB_WORKSPACE", "CI_PROJECT_DIR")}
    done = subprocess.run([sys.executable, "-m", "hvconf", *args], cwd=cwd, env={**base, **(env or {})},
                          capture_output=True, text=True, timeout=60, check=False)
    assert "Traceback" not in done.stdout + done.stderr, done.stderr
    return done


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    (tmp_path / ".git").mkdir()
    (tmp_path / "vms").mkdir()
    for name in SAMPLES:
        (tmp_path / "vms" / name).write_text((INVALID / name).read_text())
    return tmp_path


def test_gitlab_code_quality_report(repo: Path) -> None:
    done = hvconf("check", "--format", "gitlab", ".", cwd=repo / "vms")
    issues = json.loads(done.stdout)
    assert done.returncode == 1
    assert [(i["check_name"], i["severity"], i["location"]["path"]) for i in issues] == [
        ("duplicate-vm", "major", "vms/duplicate-vm.hv"), ("rma-obsolete", "minor", "vms/rma-obsolete.hv"),
        ("unknown-cap", "major", "vms/unknown-cap.hv")]  # relative to the repository root, from any folder
    for i in issues:
        assert set(i) == {"type", "description", "check_name", "categories", "fingerprint", "severity", "location"}
        assert len(i["fingerprint"]) == 64 and i["description"].startswith(f"[{i['check_name']}] ")
    assert issues[1]["location"]["positions"] == {"begin": {"line": 8, "column": 5}, "end": {"line": 8, "column": 13}}
    assert len({i["fingerprint"] for i in issues}) == 3
    # stable when lines move: the same fingerprints after a comment is added at the top
    path = repo / "vms" / "rma-obsolete.hv"
    path.write_text("# moved\n" + path.read_text())
    again = json.loads(hvconf("check", "--format", "gitlab", ".", cwd=repo / "vms").stdout)
    assert [i["fingerprint"] for i in again] == [i["fingerprint"] for i in issues]
    moved = hvconf("check", "--format", "gitlab", "vms", cwd=repo, env={"CI_PROJECT_DIR": str(repo / "vms")})
    assert json.loads(moved.stdout)[0]["location"]["path"] == "duplicate-vm.hv"


def test_junit_xml_report(repo: Path) -> None:
    done = hvconf("check", "--format", "junit", "vms", cwd=repo)
    root = ET.fromstring(done.stdout)
    suite = root.find("testsuite")
    assert suite is not None and (root.get("tests"), root.get("failures")) == ("3", "3")
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == ["vms/duplicate-vm.hv:6:4 duplicate-vm",
                                             "vms/rma-obsolete.hv:8:5 rma-obsolete",
                                             "vms/unknown-cap.hv:7:5 unknown-cap"]
    failure = cases[1].find("failure")
    assert failure is not None and failure.get("type") == "warning[rma-obsolete]"
    assert "^^^^^^^^" in (failure.text or "") and "\x1b" not in done.stdout
    clean = hvconf("check", "--format", "junit", str(REPO / "samples" / "x86-hello.hv"), cwd=repo)
    case = ET.fromstring(clean.stdout).find("testsuite/testcase")
    assert clean.returncode == 0 and case is not None and case.get("name") == "hvconf check" and len(case) == 0


def test_junit_escapes_what_xml_cannot_hold() -> None:
    hostile = Diagnostic("syntax-error", Severity.ERROR, "bad \x1b[31m\x00 <&> ]]>", Span("a\x07.hv", 1, 1, 1, 2))
    text = render("junit", LintResult(Report([hostile], {"a\x07.hv": "x\x1b\n"}), 1))
    failure = ET.fromstring(text).find("testsuite/testcase/failure")
    assert failure is not None and failure.get("message") == "bad \\x1b[31m\\x00 <&> ]]>"


def test_github_ends_with_a_summary_that_counts_what_is_not_annotated() -> None:
    many = [Diagnostic("rma-obsolete", Severity.WARNING, f"w{i}", Span("a.hv", i + 1, 1, i + 1, 2)) for i in range(12)]
    lines = render("github", LintResult(Report(many), 3)).splitlines()
    assert len(lines) == 13 and lines[-1] == ("::notice title=hvconf check::checked 3 files: 0 errors, 12 warnings; "
                                              "2 more than GitHub annotates: see this step's log")


class _Tty:
    def __init__(self, tty: bool) -> None:
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


@pytest.mark.parametrize("choice, env, tty, expected", [
    ("auto", {}, True, True), ("auto", {}, False, False),
    ("auto", {"NO_COLOR": "1"}, True, False), ("auto", {"NO_COLOR": ""}, True, True),
    ("auto", {"FORCE_COLOR": "1"}, False, True), ("auto", {"FORCE_COLOR": "0"}, False, False),
    ("auto", {"CLICOLOR_FORCE": "1"}, False, True), ("auto", {"TERM": "dumb"}, True, False),
    ("auto", {"FORCE_COLOR": "1", "NO_COLOR": "1"}, False, False),  # NO_COLOR first, as CPython's _colorize
    ("always", {"NO_COLOR": "1"}, False, True), ("never", {"FORCE_COLOR": "1"}, True, False),
])
def test_the_colour_decision(choice: str, env: dict[str, str], tty: bool, expected: bool) -> None:
    assert use_colour(_Tty(tty), choice, env) is expected


@pytest.mark.parametrize("command", [["check", "vms/unknown-cap.hv"], ["build", "vms/unknown-cap.hv", "-o", "out"],
                                     ["plan", "vms/unknown-cap.hv"], ["dts", "vms/unknown-cap.hv"],
                                     ["run", "--dry-run", "vms/unknown-cap.hv"]])
def test_every_command_that_prints_diagnostics_colours_on_request(repo: Path, command: list[str]) -> None:
    forced = hvconf(*command, cwd=repo, env={"FORCE_COLOR": "1"})
    assert "\x1b[1;31merror" in forced.stdout + forced.stderr
    assert "\x1b[" not in (lambda d: d.stdout + d.stderr)(hvconf(*command, "--color", "never", cwd=repo,
                                                                 env={"FORCE_COLOR": "1"}))
    assert "\x1b[1;31merror" in (lambda d: d.stdout + d.stderr)(hvconf(*command, "--color", "always", cwd=repo))
    plain = hvconf(*command, cwd=repo, env={"CLICOLOR_FORCE": "1", "NO_COLOR": "1"})
    assert "\x1b[" not in plain.stdout + plain.stderr


def test_fmt_colours_its_syntax_errors_on_request(repo: Path) -> None:
    (repo / "bad.hv").write_text("vm {\n")
    assert "\x1b[1;31merror" in hvconf("fmt", "--check", "bad.hv", cwd=repo, env={"FORCE_COLOR": "1"}).stderr
    assert "\x1b[" not in hvconf("fmt", "--check", "--color", "never", "bad.hv", cwd=repo,
                                 env={"FORCE_COLOR": "1"}).stderr
