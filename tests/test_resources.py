"""An installed hvconf finds its grammar and targets outside the checkout:
build the wheel, install it into a scratch folder, and compile a sample from
a directory that has no repo in sight."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def test_wheel_carries_grammar_and_every_target(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "hvconf/_data/grammar/hvconf.lark" in names
    for target in (REPO / "targets").iterdir():
        for data in target.glob("*.toml"):
            assert f"hvconf/_data/targets/{target.name}/{data.name}" in names
    assert "hvconf/emit/templates/launch.py.j2" in names
    assert any(n.startswith("hvconf/abi/data/") for n in names)


def test_installed_copy_compiles_outside_the_checkout(installed: Path, tmp_path: Path) -> None:
    work = tmp_path / "elsewhere"
    work.mkdir()
    (work / "vm.hv").write_text("vm v { arch ppc64le memory 1G cap KVM_CAP_PPC_PAPR on vcpus }\n")
    code = ("import hvconf.resources as r, hvconf.compiler as c, pathlib;"
            "print(r.grammar_path()); res = c.build([pathlib.Path('vm.hv')]);"
            "print(sorted(res.built[0].files))")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(installed)
    out = subprocess.run([sys.executable, "-I", "-c", code.replace("import", "import sys; sys.path.insert(0, %r); import" % str(installed), 1)],
                         cwd=work, capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 0, out.stderr
    grammar, files = out.stdout.splitlines()
    assert grammar.startswith(str(installed)) and "_data" in grammar
    assert "v.dtb" in files and "plan.json" in files


# ---- the per-user cache folder ------------------------------------------------


def test_cache_folder_is_private_and_follows_xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from hvconf.resources import cache_dir

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    folder = cache_dir()
    assert folder == tmp_path / "xdg" / "hvconf" and oct(folder.stat().st_mode & 0o777) == "0o700"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/path")  # the XDG spec: ignored
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "hvconf"


def test_a_cache_folder_others_can_write_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from hvconf.resources import cache_dir

    shared = tmp_path / "xdg" / "hvconf"
    shared.mkdir(parents=True)
    shared.chmod(0o777)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    assert cache_dir() == tmp_path / "tmp" / f"hvconf-{os.getuid()}"  # its own folder in TMPDIR instead
    (tmp_path / "tmp" / f"hvconf-{os.getuid()}").chmod(0o775)
    assert cache_dir() is None


def test_cache_entries_are_read_back_only_for_their_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from hvconf.resources import cache_dir, read_cached, write_cached

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    write_cached("entry", b"k1", b"payload\nwith lines")
    assert read_cached("entry", b"k1") == b"payload\nwith lines"
    assert read_cached("entry", b"k2") is None and read_cached("absent", b"k1") is None
    entry = cache_dir() / "entry"  # type: ignore[operator]
    assert oct(entry.stat().st_mode & 0o777) == "0o600"
    assert [p.name for p in entry.parent.iterdir()] == ["entry"]  # no temporary file left behind
    entry.chmod(0o622)
    assert read_cached("entry", b"k1") is None  # others could have written it
