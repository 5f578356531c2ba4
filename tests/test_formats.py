"""The `--format` renderers, field by field: json, sarif (validated against the
vendored SARIF 2.1.0 schema), github workflow commands and text; and the rules
table, kept complete against the codes the stages' sources emit.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import jsonschema
import pytest

from hvconf.check import CHECKS, by_code
from hvconf.diagnostics import Diagnostic, Note, Report, Severity, Span
from hvconf.lint.formats import FORMATS, render
from hvconf.lint.formats.github import command, escape_data, escape_property
from hvconf.codes import closest_code, known_codes
from hvconf.lint.formats.rules import DOCS_URL, rules
from hvconf.lint.formats.sarif import SRCROOT, log
from hvconf.lint.driver import LintResult, discover, lint

REPO = Path(__file__).resolve().parent.parent
SCHEMA = json.loads((REPO / "tests" / "data" / "sarif" / "sarif-schema-2.1.0.json").read_text())
INVALID = REPO / "tests" / "invalid"

SOURCE = "format 1\nvm a {\n    arch x86_64\n    memory 3%M\n}\n"
PLACE = Span("vms/a b.hv", 4, 12, 4, 15)
NOTE_PLACE = Span("base/x.hv", 2, 1, 2, 9)


def _result(*diagnostics: Diagnostic, files: int = 1, unreadable: list[str] | None = None) -> LintResult:
    report = Report(sources={"vms/a b.hv": SOURCE})
    for d in diagnostics:
        report.add(d)
    return LintResult(report, files, unreadable or [])


FULL = Diagnostic("memory-granularity", Severity.ERROR, "memory 3% is odd", PLACE,
                  (Note("placed note", NOTE_PLACE), Note("free note")), "write `memory 4M`")
BARE = Diagnostic("abi-overrides-invalid", Severity.WARNING, "no place", None)


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # SARIF's %SRCROOT% is the working directory
    monkeypatch.delenv("GITHUB_WORKSPACE", raising=False)  # set when the suite itself runs in Actions


# --- json ---------------------------------------------------------------------------------------

def test_json_gives_every_field_of_every_diagnostic() -> None:
    out = json.loads(render("json", _result(FULL, BARE)))
    assert out == [
        {"code": "abi-overrides-invalid", "severity": "warning", "message": "no place", "file": None, "line": None,
         "column": None, "end_line": None, "end_column": None, "notes": [], "help": None, "fix": None},
        {"code": "memory-granularity", "severity": "error", "message": "memory 3% is odd", "file": "vms/a b.hv",
         "line": 4, "column": 12, "end_line": 4, "end_column": 15,
         "notes": [{"message": "placed note", "location": {"file": "base/x.hv", "line": 2, "column": 1,
                                                           "end_line": 2, "end_column": 9}},
                   {"message": "free note", "location": None}],
         "help": "write `memory 4M`", "fix": None},  # a fix is attached by the driver, not by the format
    ]


def test_json_of_real_findings_points_at_the_sources() -> None:
    result = lint(discover([INVALID / "duplicate-vm.hv", INVALID / "include-cycle.hv"]))
    out = json.loads(render("json", result))
    assert [d["code"] for d in out] == ["duplicate-vm", "include-cycle"]
    dup = out[0]
    assert (dup["line"], dup["column"], dup["end_line"], dup["end_column"]) == (6, 4, 6, 5)
    assert dup["notes"] == [{"message": "first defined here", "location": {
        "file": dup["file"], "line": 2, "column": 4, "end_line": 2, "end_column": 5}}]
    assert out[1]["help"] and out[1]["notes"][0]["location"] is None


# --- sarif --------------------------------------------------------------------------------------

def _validate(document: dict[str, Any]) -> None:
    jsonschema.Draft4Validator(SCHEMA).validate(document)


def test_sarif_is_valid_against_the_schema_and_the_validator_can_fail() -> None:
    document = log(_result(FULL, BARE, unreadable=["big.hv: too large"]))
    _validate(document)
    broken = json.loads(json.dumps(document))
    del broken["runs"][0]["results"][0]["message"]
    with pytest.raises(jsonschema.ValidationError):
        _validate(broken)
    broken = json.loads(json.dumps(document))
    broken["runs"][0]["results"][0]["level"] = "fatal"
    with pytest.raises(jsonschema.ValidationError):
        _validate(broken)


def test_sarif_of_real_findings_is_valid() -> None:
    _validate(json.loads(render("sarif", lint(discover([INVALID])))))


def test_sarif_lists_every_code_as_a_rule_with_docs() -> None:
    driver = log(_result())["runs"][0]["tool"]["driver"]
    assert driver["name"] == "hvconf" and driver["version"]
    ids = [r["id"] for r in driver["rules"]]
    assert len(ids) == len(set(ids)) and set(ids) == known_codes()
    checks = by_code()
    for rule in driver["rules"]:
        code = rule["id"]
        assert rule["helpUri"] == f"{DOCS_URL}#{code}"
        url = urlparse(rule["helpUri"])
        assert url.scheme == "https" and url.netloc and url.fragment == code  # helpUri must be absolute
        assert rule["shortDescription"]["text"].endswith(".")
        assert rule["defaultConfiguration"]["level"] in ("error", "warning")
        assert rule["fullDescription"]["text"] == next(r.why for r in rules() if r.code == code) != ""
        if code in checks:
            assert rule["fullDescription"]["text"] == checks[code].why
            assert checks[code].summary[1:] in rule["shortDescription"]["text"]
            assert rule["defaultConfiguration"]["level"] == checks[code].severity.value


def test_sarif_result_fields(tmp_path: Path) -> None:
    run = log(_result(FULL, BARE, unreadable=["big.hv: too large"]))["runs"][0]
    rules_ = run["tool"]["driver"]["rules"]
    bare, full = run["results"]
    assert full["ruleId"] == "memory-granularity" and rules_[full["ruleIndex"]]["id"] == "memory-granularity"
    assert full["level"] == "error"
    assert full["message"]["text"] == "memory 3% is odd\nnote: free note\nhelp: write `memory 4M`"
    assert full["locations"] == [{"physicalLocation": {
        "artifactLocation": {"uri": "vms/a%20b.hv", "uriBaseId": SRCROOT},
        "region": {"startLine": 4, "startColumn": 12, "endLine": 4, "endColumn": 15}}}]
    assert full["relatedLocations"] == [{"id": 1, "message": {"text": "placed note"}, "physicalLocation": {
        "artifactLocation": {"uri": "base/x.hv", "uriBaseId": SRCROOT},
        "region": {"startLine": 2, "startColumn": 1, "endLine": 2, "endColumn": 9}}}]
    assert re.fullmatch(r"[0-9a-f]{64}", full["partialFingerprints"]["hvconf/v1"])
    assert bare["level"] == "warning" and "locations" not in bare
    assert rules_[bare["ruleIndex"]]["id"] == "abi-overrides-invalid"
    base = run["originalUriBaseIds"][SRCROOT]["uri"]
    assert base.endswith("/") and Path(unquote(urlparse(base).path)) == tmp_path.resolve()
    assert run["columnKind"] == "unicodeCodePoints"
    assert run["invocations"] == [{"executionSuccessful": False, "toolExecutionNotifications": [
        {"level": "error", "message": {"text": "big.hv: too large"}}]}]


def test_sarif_uses_file_uris_outside_the_working_directory() -> None:
    outside = Diagnostic("syntax-error", Severity.ERROR, "x", Span("/srv/vms/a.hv", 1, 1, 1, 2))
    location = log(_result(outside))["runs"][0]["results"][0]["locations"][0]["physicalLocation"]
    assert location["artifactLocation"] == {"uri": "file:///srv/vms/a.hv"}


def test_sarif_fingerprints_survive_a_line_move_and_tell_twins_apart() -> None:
    def prints(source: str, *lines: int) -> list[str]:
        report = Report(sources={"a.hv": source})
        for line in lines:
            report.add(Diagnostic("unknown-cap", Severity.ERROR, "m", Span("a.hv", line, 5, line, 9)))
        return [r["partialFingerprints"]["hvconf/v1"] for r in log(LintResult(report, 1))["runs"][0]["results"]]

    before = prints("cap X\ncap X\n", 1, 2)
    after = prints("\n\ncap X\ncap X\n", 3, 4)
    assert before == after and before[0] != before[1]


# --- github -------------------------------------------------------------------------------------

def test_github_commands_carry_place_title_and_escaped_message() -> None:
    lines = render("github", _result(FULL, BARE)).splitlines()
    assert lines == [
        "::warning title=hvconf (abi-overrides-invalid)::no place",
        "::error file=vms/a b.hv,line=4,col=12,endLine=4,endColumn=15,title=hvconf (memory-granularity)"
        "::memory 3%25 is odd%0Anote: placed note (base/x.hv:2:1)%0Anote: free note%0Ahelp: write `memory 4M`",
        "::notice title=hvconf check::checked 1 file: 1 error, 1 warning",
    ]


def test_github_escapes_properties_and_data_as_the_toolkit_does() -> None:
    assert escape_data("100% done\r\nnext: a,b") == "100%25 done%0D%0Anext: a,b"
    assert escape_property("a,b:c%\n") == "a%2Cb%3Ac%25%0A"
    odd = Diagnostic("syntax-error", Severity.NOTE, "two\nlines", Span("dir,x/a:b.hv", 1, 2, 1, 3))
    assert command(odd) == ("::notice file=dir%2Cx/a%3Ab.hv,line=1,col=2,endLine=1,endColumn=3,"
                            "title=hvconf (syntax-error)::two%0Alines")


def _github_files(tmp_path: Path, cwd: Path, *args: str, workspace: Path | None = None) -> list[str]:
    """The `file=` of each annotation of a real `hvconf check --format github ARGS` run in `cwd`."""
    env = {k: v for k, v in os.environ.items() if k != "GITHUB_WORKSPACE"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    if workspace is not None:
        env["GITHUB_WORKSPACE"] = str(workspace)
    done = subprocess.run([sys.executable, "-m", "hvconf", "check", "--format", "github", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    return re.findall(r"^::error file=([^,]*),", done.stdout, re.MULTILINE)


@pytest.fixture
def repository(tmp_path: Path) -> Path:
    """A git repository with a bad definition two folders down and an empty folder beside it."""
    if shutil.which("git") is None:
        pytest.skip("needs git")
    repo = tmp_path / "repo"
    (repo / "vms" / "pseries").mkdir(parents=True)
    (repo / "docs").mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True, timeout=60)
    (repo / "vms" / "pseries" / "bad.hv").write_text(SOURCE)
    return repo


@pytest.mark.parametrize("cwd, arg", [
    ("vms/pseries", "bad.hv"), ("docs", "../vms/pseries/bad.hv"), ("vms", "."), ("docs", "{repo}/vms/pseries/bad.hv"),
])
def test_github_paths_are_relative_to_the_repository_root_from_any_folder(repository: Path, tmp_path: Path,
                                                                          cwd: str, arg: str) -> None:
    assert _github_files(tmp_path, repository / cwd, arg.format(repo=repository)) == ["vms/pseries/bad.hv"]


def test_github_paths_start_at_the_actions_workspace_when_it_is_set(repository: Path, tmp_path: Path) -> None:
    # A checkout into a subfolder (actions/checkout `path:`): GITHUB_WORKSPACE is above the git top level.
    assert _github_files(tmp_path, repository / "docs", "../vms/pseries/bad.hv", workspace=tmp_path) == \
        ["repo/vms/pseries/bad.hv"]
    # Through a symlinked working copy the real paths still nest.
    link = tmp_path / "link"
    link.symlink_to(repository, target_is_directory=True)
    assert _github_files(tmp_path, link / "vms", "pseries/bad.hv", workspace=repository) == ["vms/pseries/bad.hv"]


def test_github_paths_outside_any_repository_stay_as_given(tmp_path: Path) -> None:
    (tmp_path / "loose").mkdir()
    (tmp_path / "loose" / "bad.hv").write_text(SOURCE)
    assert _github_files(tmp_path, tmp_path, "loose/bad.hv") == ["loose/bad.hv"]


# --- text ---------------------------------------------------------------------------------------

def test_text_ends_with_a_summary_and_colours_only_when_asked() -> None:
    plain = render("text", _result(FULL, BARE, files=3))
    assert "\x1b[" not in plain
    assert plain.splitlines()[-1] == "checked 3 files: 1 error, 1 warning"
    assert plain.startswith("warning[abi-overrides-invalid]: no place\n")
    assert "vms/a b.hv:4:12: error[memory-granularity]: memory 3% is odd" in plain
    coloured = render("text", _result(FULL, files=1), colour=True)
    assert "\x1b[1;31merror[memory-granularity]\x1b[0m" in coloured
    assert re.sub(r"\x1b\[[0-9;]*m", "", coloured) == render("text", _result(FULL, files=1))


def test_summary_counts_files_and_pluralises() -> None:
    assert render("text", _result(files=1)) == "checked 1 file: 0 errors, 0 warnings\n"


# --- rules --------------------------------------------------------------------------------------

def test_every_help_uri_anchor_is_a_heading_of_the_docs_page() -> None:
    # GitHub renders `## code` as the anchor #code, which helpUri points at.
    headings = set(re.findall(r"^## (\S+)$", (REPO / "docs" / "diagnostics.md").read_text(), re.MULTILINE))
    assert {urlparse(r.url).fragment for r in rules()} <= headings


def test_rules_have_unique_codes_and_did_you_mean_finds_typos() -> None:
    codes = [r.code for r in rules()]
    assert len(codes) == len(set(codes))
    assert closest_code("unknwon-cap") == "unknown-cap"
    assert closest_code("syntax-eror") == "syntax-error"
    assert closest_code("zzzz") is None


def test_every_format_is_registered_and_renders() -> None:
    assert set(FORMATS) == {"text", "json", "sarif", "github", "gitlab", "junit"}
    for name in FORMATS:
        out = render(name, _result(FULL))
        assert out.endswith("\n") and "memory 3" in out
