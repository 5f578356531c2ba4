"""`hvconf check -` with --stdin-filename, and the project configuration (hvconf/lint/settings.py).

Stdin is checked as the file it stands for: includes, project, configuration and the name in
diagnostics are that file's. Configuration: found upward from each file up to the project
root, select/ignore by code, prefix and ALL (also on the command line), per-file-ignores,
exclude, .gitignore, werror, output-format, --show-settings; every bad configuration is a
located `invalid-config` with a caret and status 2; no configuration widens or hides what a
definition may read. The CLI runs in-process (hvconf.cli.main.main with argv) except where
stdin and the process's own exit are under test.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hvconf.codes import CODES
from hvconf.cli.main import main
from hvconf.lint.driver import check_text
from hvconf.lint.settings import ConfigError, Finder, Settings, glob_matches, locate

RMA = ("format 1\nvm {name} {{\n    arch ppc64le\n    kvm book3s_hv\n    memory 1G\n    vcpus 2\n"
       "    cap KVM_CAP_PPC_PAPR on vcpus\n    rma 128M\n}}\n")
TYPO = "format 1\nvm a {\n    arch x86_64\n    memroy 2M\n}\n"
CLEAN = "format 1\nvm a {\n    arch x86_64\n    memory 2M\n}\n"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return status, out, err


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project (it holds .git) with vms/new.hv and vms/legacy/old.hv, each with an rma-obsolete warning."""
    (tmp_path / ".git").mkdir()
    (tmp_path / "vms" / "legacy").mkdir(parents=True)
    (tmp_path / "vms" / "new.hv").write_text(RMA.format(name="new"))
    (tmp_path / "vms" / "legacy" / "old.hv").write_text(RMA.format(name="old"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def codes(out: str) -> list[tuple[str, str]]:
    return sorted((d["file"], d["code"]) for d in json.loads(out))


# ---- check - (stdin) ------------------------------------------------------------------------


def test_stdin_is_checked_as_the_file_it_stands_for(project: Path) -> None:
    (project / "vms" / "base.hv").write_text("format 1\nabstract vm base {\n    arch x86_64\n    memory 2M\n}\n")
    text = "format 1\ninclude \"base.hv\"\nvm a extends base {\n    memroy 2M\n}\n"
    done = subprocess.run([sys.executable, "-m", "hvconf", "check", "-", "--stdin-filename", "vms/unsaved.hv"],
                          input=text.encode(), capture_output=True, timeout=60, check=False)
    assert done.returncode == 1, done.stderr
    assert done.stdout.decode().startswith("vms/unsaved.hv:4:5: error[unknown-keyword]")
    # the include resolved against vms/, the file's folder (no include-not-found), though it does not exist
    assert b"include" not in done.stdout and not (project / "vms" / "unsaved.hv").exists()


def test_stdin_paths_are_confined_to_the_named_files_project(project: Path, tmp_path_factory: pytest.TempPathFactory
                                                              ) -> None:
    outside = tmp_path_factory.mktemp("outside")
    (outside / "secret.hv").write_text("MARKER-SECRET\n")
    text = f'format 1\ninclude "{outside}/secret.hv"\n'
    report = check_text(text, project / "vms" / "x.hv")
    assert [d.code for d in report] == ["path-outside-project"]
    assert "MARKER-SECRET" not in repr(report.sources) + repr(report.diagnostics)


def test_check_text_applies_suppressions_and_the_settings_found_for_the_path(project: Path) -> None:
    path = project / "vms" / "legacy" / "unsaved.hv"
    assert [d.code for d in check_text(RMA.format(name="x"), path)] == ["rma-obsolete"]
    (project / "hvconf.toml").write_text('per-file-ignores = { "legacy/" = ["rma-obsolete"] }\n')
    assert [d.code for d in check_text(RMA.format(name="x"), path)] == []
    # given settings win over the project's
    assert [d.code for d in check_text(RMA.format(name="x"), path, Settings())] == ["rma-obsolete"]
    suppressed = RMA.format(name="x").replace("rma 128M", "rma 128M  # hvconf: ignore[rma-obsolete]")
    assert [d.code for d in check_text(suppressed, path, Settings())] == []


def test_stdin_usage_errors(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run(capsys, "check", "-", "vms")
    assert (status, err.count("\n")) == (2, 1) and "'-' (stdin)" in err
    status, _, err = run(capsys, "check", "vms", "--stdin-filename", "x.hv")
    assert (status, err.count("\n")) == (2, 1) and "give '-'" in err
    status, _, err = run(capsys, "check")
    assert status == 2 and "give a PATH" in err


def test_stdin_larger_than_a_file_may_be_is_refused(project: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "hvconf", "check", "-"], input=b"#" * (300 << 10),
                          capture_output=True, timeout=60, check=False)
    assert done.returncode == 2 and done.stderr.count(b"\n") == 1 and b"at most" in done.stderr


# ---- selection --------------------------------------------------------------------------------


@pytest.mark.parametrize("config, expected", [
    ('ignore = ["rma-obsolete"]', []),
    ('ignore = ["rma-"]', []),  # a prefix
    ('select = ["unknown-"]', []),
    ('select = ["unknown-"]\nextend-select = ["rma"]', ["legacy", "new"]),
    ('select = ["ALL"]\nignore = ["ALL"]', []),
    ('per-file-ignores = { "vms/legacy/*.hv" = ["rma-obsolete"] }', ["new"]),
    ('per-file-ignores = { "legacy/*.hv" = ["rma-obsolete"] }', ["legacy", "new"]),  # anchored at the root
    ('per-file-ignores = { "old.hv" = ["ALL"] }', ["new"]),  # no '/': a name at any depth
    ('per-file-ignores = { "vms/**/old.hv" = ["rma-obsolete"] }', ["new"]),
])
def test_select_and_ignore_from_hvconf_toml(project: Path, capsys: pytest.CaptureFixture[str], config: str,
                                           expected: list[str]) -> None:
    (project / "hvconf.toml").write_text(config + "\n")
    status, out, _ = run(capsys, "check", "--format", "json", "vms")
    found = [Path(f).parent.name if "legacy" in f else "new" for f, c in codes(out) if c == "rma-obsolete"]
    assert sorted(found) == expected and status == 0


def test_the_command_line_overrides_and_extends_the_configuration(project: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    (project / "hvconf.toml").write_text('select = ["unknown-"]\n')
    assert codes(run(capsys, "check", "--format", "json", "vms")[1]) == []
    assert len(codes(run(capsys, "check", "--format", "json", "--extend-select", "rma-", "vms")[1])) == 2
    assert len(codes(run(capsys, "check", "--format", "json", "--select", "ALL", "vms")[1])) == 2
    assert codes(run(capsys, "check", "--format", "json", "--select", "ALL", "--ignore", "rma", "vms")[1]) == []


def test_nearest_configuration_wins_and_the_search_stops_at_the_project_root(project: Path,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    (project.parent / "hvconf.toml").write_text('ignore = ["ALL"]\n')  # above the project: never read
    (project / "pyproject.toml").write_text('[tool.hvconf]\nignore = ["rma-obsolete"]\n')
    (project / "vms" / "legacy" / "pyproject.toml").write_text('[project]\nname = "x"\n')  # no [tool.hvconf]
    (project / "vms" / "hvconf.toml").write_text('select = ["unknown-"]\n')
    finder = Finder()
    assert finder.for_file("vms/legacy/old.hv").source == str(project / "vms" / "hvconf.toml")
    assert finder.for_file("top.hv").source == str(project / "pyproject.toml")
    (project / "vms" / "pyproject.toml").write_text('[tool.hvconf]\nignore = ["x"]\n')  # hvconf.toml wins in one folder
    assert Finder().for_file("vms/new.hv").source == str(project / "vms" / "hvconf.toml")
    try:
        (project.parent / "hvconf.toml").unlink()
    except FileNotFoundError:
        pass


def test_a_configuration_cannot_hide_or_deselect_a_refusal(project: Path, tmp_path_factory: pytest.TempPathFactory,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    outside = tmp_path_factory.mktemp("outside")
    (outside / "x.hv").write_text("format 1\n")
    (project / "vms" / "out.hv").write_text(f'format 1\ninclude "{outside}/x.hv"\n')
    for config in ('ignore = ["ALL"]', 'select = ["rma-"]', 'per-file-ignores = { "*.hv" = ["path-"] }'):
        (project / "hvconf.toml").write_text(config + "\n")
        status, out, _ = run(capsys, "check", "--format", "json", "vms/out.hv")
        assert (status, [c for _, c in codes(out)]) == (1, ["path-outside-project"]), config
    # the command line, which the CI owner writes, still may
    assert run(capsys, "check", "--ignore", "path-outside-project", "vms/out.hv")[0] == 0


def test_werror_and_output_format_from_the_configuration(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "check", "vms")[0] == 0
    (project / "vms" / "legacy" / "hvconf.toml").write_text('werror = true\n')
    status, out, _ = run(capsys, "check", "-q", "vms")
    assert status == 1 and "legacy/old.hv" in out and "new.hv" not in out  # werror of old.hv's folder only
    (project / "hvconf.toml").write_text('output-format = "json"\n')
    status, out, _ = run(capsys, "check", "vms/new.hv")
    assert json.loads(out)[0]["code"] == "rma-obsolete"
    assert run(capsys, "check", "--format", "text", "vms/new.hv")[1].startswith("vms/new.hv:8:5: warning")


# ---- which files a folder search takes -----------------------------------------------------


def test_exclude_extend_exclude_and_gitignore(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "vms" / "gen").mkdir()
    (project / "vms" / "gen" / "g.hv").write_text(TYPO)
    (project / "vms" / "tmp.hv").write_text(TYPO)

    def checked() -> int:
        out = run(capsys, "check", "vms")[1]
        return int(out.rsplit("checked ", 1)[1].split()[0])

    assert checked() == 4
    (project / "hvconf.toml").write_text('exclude = ["vms/gen/"]\nextend-exclude = ["tmp.hv"]\n')
    assert checked() == 2
    # a file named on the command line is checked whatever the configuration says
    assert run(capsys, "check", "vms/tmp.hv")[0] == 1
    (project / "hvconf.toml").unlink()
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    subprocess.run(["git", "init", "-q", str(project)], check=True, timeout=60)
    (project / ".gitignore").write_text("gen/\n")
    assert checked() == 3
    (project / "hvconf.toml").write_text("respect-gitignore = false\n")
    assert checked() == 4


@pytest.mark.parametrize("pattern, path, hit", [
    ("legacy/", "vms/legacy/old.hv", True), ("*.hv", "a/b.hv", True), ("a/*.hv", "a/b/c.hv", False),
    ("a/**/c.hv", "a/b/x/c.hv", True), ("a/**/c.hv", "a/c.hv", True), ("/gen", "gen/x.hv", True),
    ("/gen", "a/gen/x.hv", False), ("b?.hv", "b1.hv", True), ("b?.hv", "b/x.hv", False),
])
def test_glob_patterns(pattern: str, path: str, hit: bool) -> None:
    assert glob_matches(pattern, path) is hit


def test_show_settings_says_where_they_come_from(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "check", "--show-settings", "vms/legacy/old.hv")
    assert status == 0 and "# from no configuration file (defaults)" in out and f"{len(CODES)} of {len(CODES)} codes reported\n" in out
    (project / "vms" / "hvconf.toml").write_text('per-file-ignores = { "legacy/" = ["rma-"] }\nwerror = true\n')
    status, out, _ = run(capsys, "check", "--show-settings", "vms/legacy/old.hv", "--ignore", "unknown-cap")
    assert status == 0
    assert "# from vms/hvconf.toml" in out and 'per-file-ignores = ["rma-"]' in out and "werror = true" in out
    assert 'ignore = ["unknown-cap"]' in out and "not reported: unknown-cap, rma-obsolete" in out


def test_settings_are_one_hashable_value_with_a_stable_key() -> None:
    a, b = Settings(ignore=("rma-",)), Settings(ignore=("rma-",))
    assert a == b and hash(a) == hash(b) and a.key() == b.key()
    assert a.key() != Settings().key() and a.with_cli(select=("ALL",)).key() != a.key()


# ---- bad configurations ---------------------------------------------------------------------------


BAD = [
    ('ignore = ["rma-obsolte"]\n', 1, 11, "unknown diagnostic code or prefix 'rma-obsolte'", "did you mean"),
    ('werror = true\nselct = ["ALL"]\n', 2, 1, "unknown configuration key 'selct'", "did you mean 'select'"),
    ('werror = "yes"\n', 1, 1, "'werror' takes true or false", None),
    ('output-format = "xml"\n', 1, 1, "'output-format' is one of", None),
    ('select = "ALL"\n', 1, 1, "'select' takes a list", None),
    ('[per-file-ignores]\n"a/*.hv" = ["nope"]\n', 2, 13, "unknown diagnostic code or prefix 'nope'", None),
    ('select = ["ALL"\n', 1, 16, "not valid TOML", None),
    ('allow-path = ["/etc"]\n', 1, 1, "'allow-path' is not a configuration key", "--allow-path DIR on the command"),
    ('root = "/"\n', 1, 1, "'root' is not a configuration key", "--root DIR"),
]


@pytest.mark.parametrize("text, line, col, message, help", BAD)
def test_a_bad_configuration_is_located_with_a_caret_and_status_2(project: Path, capsys: pytest.CaptureFixture[str],
                                                                 text: str, line: int, col: int, message: str,
                                                                 help: str | None) -> None:
    (project / "vms" / "hvconf.toml").write_text(text)
    status, out, err = run(capsys, "check", "vms")
    assert status == 2 and out == ""
    head = err.splitlines()[0]
    assert head.startswith(f"vms/hvconf.toml:{line}:{col}: error[invalid-config]: "), err
    assert message in head
    assert "^" in err and (help is None or help in err)


def test_a_bad_pyproject_table_is_located_in_it(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "pyproject.toml").write_text('[project]\nname = "x"\n\n[tool.hvconf]\nwerror = true\nignore = [1]\n')
    status, _, err = run(capsys, "check", "vms")
    assert status == 2 and err.startswith("pyproject.toml:6:1: error[invalid-config]: 'ignore' takes a list")


def test_a_configuration_linked_out_of_the_project_is_not_read(project: Path, tmp_path_factory: pytest.TempPathFactory,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    outside = tmp_path_factory.mktemp("outside") / "secret.toml"
    outside.write_text("MARKER-SECRET = [\n")
    (project / "hvconf.toml").symlink_to(outside)
    status, out, err = run(capsys, "check", "vms")
    assert status == 2 and "outside" in err and "MARKER" not in out + err
    (project / "hvconf.toml").unlink()
    os.mkfifo(project / "hvconf.toml")  # never opened for reading: it would block
    status, _, err = run(capsys, "check", "vms")
    assert status == 2 and "FIFO" in err


def test_locate_finds_keys_in_tables_dotted_keys_and_items() -> None:
    text = '[tool.hvconf]\nselect = ["a",\n  "b"]\n[tool.hvconf.per-file-ignores]\n"x/*.hv" = ["c"]\n'
    assert locate(text, ("tool", "hvconf", "select")) == (2, 1, 7)
    assert locate(text, ("tool", "hvconf", "select"), "b") == (3, 3, 6)
    assert locate(text, ("tool", "hvconf", "per-file-ignores", "x/*.hv"), "c") == (5, 13, 16)
    assert locate("tool.hvconf.werror = 1\n", ("tool", "hvconf", "werror")) == (1, 1, 19)


def test_check_text_raises_config_error_for_a_bad_configuration(project: Path) -> None:
    (project / "hvconf.toml").write_text("werror = 1\n")
    with pytest.raises(ConfigError) as err:
        check_text(CLEAN, project / "a.hv")
    assert err.value.diagnostic.code == "invalid-config" and err.value.diagnostic.span.line == 1
    assert [d.code for d in check_text(CLEAN, project / "a.hv", Settings())] == []


def test_stdin_through_main_uses_the_stdin_filename_settings(project: Path, capsys: pytest.CaptureFixture[str],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    (project / "vms" / "legacy" / "hvconf.toml").write_text('ignore = ["unknown-keyword"]\n')
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(TYPO.encode())))
    assert run(capsys, "check", "-", "--stdin-filename", "vms/legacy/x.hv")[0] == 0
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(TYPO.encode())))
    status, out, _ = run(capsys, "check", "-", "--stdin-filename", "vms/x.hv")
    assert status == 1 and out.startswith("vms/x.hv:4:5: error[unknown-keyword]")
