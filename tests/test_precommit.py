""".pre-commit-hooks.yaml: it parses, each hook has what pre-commit needs, its
`files` pattern picks .hv files, and its entry is an hvconf command that works
the way pre-commit calls it (filenames appended, non-zero exit fails the commit).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from hvconf.cli.main import parser

REPO = Path(__file__).resolve().parent.parent
HOOKS = REPO / ".pre-commit-hooks.yaml"
REQUIRED = {"id", "name", "entry", "language"}  # pre-commit's required hook keys


def _flat_yaml(text: str) -> list[dict[str, str]]:
    """The subset of YAML the file uses: a list of flat `key: value` maps."""
    hooks: list[dict[str, str]] = []
    for row in text.splitlines():
        if not row.strip() or row.lstrip().startswith("#"):
            continue
        m = re.fullmatch(r"(- |  )([a-z_]+): (.+)", row)
        assert m, f"unexpected line: {row!r}"
        if m.group(1) == "- ":
            hooks.append({})
        hooks[-1][m.group(2)] = m.group(3)
    return hooks


def load_hooks() -> list[dict[str, Any]]:
    text = HOOKS.read_text(encoding="utf-8")
    try:
        import yaml
    except ImportError:
        return _flat_yaml(text)
    data = yaml.safe_load(text)
    assert data == _flat_yaml(text), "keep the file flat, so the fallback parser reads it too"
    return data


def subcommands() -> set[str]:
    sub = next(a for a in parser()._actions if a.dest == "command")
    return set(sub.choices)


def test_hooks_are_well_formed() -> None:
    hooks = load_hooks()
    assert [h["id"] for h in hooks] == ["hvconf-check", "hvconf-fmt"]
    for hook in hooks:
        assert REQUIRED <= set(hook), hook
        assert hook["language"] == "python"  # pre-commit pip-installs this repo (pyproject.toml) for it
        assert hook["entry"].split()[0] == "hvconf"  # [project.scripts]
        files = re.compile(hook["files"])
        assert files.search("vms/pseries.hv") and files.search("a.hv")
        assert not files.search("a.hv.bak") and not files.search("hv.py") and not files.search("a.hvx")


def test_check_hook_runs_as_pre_commit_calls_it() -> None:
    (hook,) = [h for h in load_hooks() if h["id"] == "hvconf-check"]
    command = [sys.executable, "-m", *hook["entry"].split()]  # `python -m hvconf` is the `hvconf` script
    assert command[3] in subcommands()
    clean = [REPO / "samples" / "x86-hello.hv", REPO / "samples" / "pseries.hv"]
    assert subprocess.run(command + [str(p) for p in clean], capture_output=True, timeout=60).returncode == 0
    bad = subprocess.run(command + [str(clean[0]), str(REPO / "tests" / "invalid" / "cap-required.hv")],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and "cap-required" in bad.stdout + bad.stderr


def test_fmt_hook_names_the_fmt_command(tmp_path: Path) -> None:
    (hook,) = [h for h in load_hooks() if h["id"] == "hvconf-fmt"]
    name = hook["entry"].split()[1]
    if name not in subcommands():
        pytest.skip(f"`hvconf {name}` is not wired into hvconf.cli.main yet (COMMAND_MODULES)")
    # pre-commit fails a hook that changes files; a second run over its output changes nothing.
    path = tmp_path / "x86-hello.hv"
    shutil.copy(REPO / "samples" / "x86-hello.hv", path)
    command = [sys.executable, "-m", *hook["entry"].split(), str(path)]
    assert subprocess.run(command, capture_output=True, timeout=60, cwd=tmp_path).returncode == 0
    once = path.read_bytes()
    assert subprocess.run(command, capture_output=True, timeout=60, cwd=tmp_path).returncode == 0
    assert path.read_bytes() == once
