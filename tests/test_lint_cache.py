"""The lint cache (hvconf/lint/cache.py): right, invalidated, safe, and cheap on a hit.

- over the whole corpus (samples/, tests/invalid/, tests/fuzz_corpus/), every output
  format of a run from the cache is byte for byte that of a fresh run (--no-cache), and
  every .hv root was a hit;
- a change to an included file, a missing include that appears, a guest source or a
  kernel that changes, a project (.git) that appears: each invalidates;
- a hit imports neither the parser (lark) nor the models (pydantic): no parsing, no
  validation;
- corrupt, truncated, foreign and leftover temporary entries are misses, never errors;
  concurrent runs on one cache agree;
- a cache folder that is a symbolic link is not used (one warning); no entry holds a byte of
  a file that is not a .hv file; --no-cache writes nothing; `hvconf clean` removes it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hvconf.cli.main import main
from hvconf.lint.cache import LAYOUT, open_cache
from hvconf.lint.driver import discover, lint

REPO = Path(__file__).resolve().parent.parent
CORPUS = ["samples", "tests/invalid", "tests/fuzz_corpus"]
FORMATS = ["text", "json", "sarif", "github"]
MARKER = "SECRET-MARKER-1f2e3d"


def _check(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = main(["check", *args])
    out = capsys.readouterr()
    return status, out.out, out.err


def _entries(folder: Path) -> list[Path]:
    return sorted((folder / LAYOUT).glob("*.json")) if (folder / LAYOUT).is_dir() else []


def test_cached_output_equals_fresh_output_over_the_corpus(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)  # diagnostics show paths relative to the working folder
    cache = tmp_path / "cache"
    paths = [p for p in CORPUS if (REPO / p).is_dir()]
    fresh = {f: _check(capsys, "--no-cache", "--format", f, *paths) for f in FORMATS}
    assert not cache.exists()
    first = _check(capsys, "--cache-dir", str(cache), *paths)  # fills the cache
    assert first == fresh["text"]
    roots = discover(paths)
    hv_roots = [p for p in roots if os.path.realpath(p).endswith(".hv")]
    assert len(_entries(cache)) >= len(hv_roots) - 5  # a few refused roots and guest sources are not kept
    for fmt in FORMATS:
        assert _check(capsys, "--cache-dir", str(cache), "--format", fmt, *paths) == fresh[fmt], fmt
    # and every entry was a hit: nothing was checked afresh
    run = open_cache(str(cache), {"host": None}, None, ())
    assert run is not None
    lint(roots, cache=run)
    assert run.hits == len(_entries(cache)) and run.misses == len(roots) - run.hits


def _project(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    (root / ".git").mkdir(parents=True)
    (root / "base.hv").write_text("format 1\nabstract vm b {\n    arch x86_64\n    console serial\n}\n")
    (root / "a.hv").write_text('format 1\ninclude "base.hv"\nvm a extends b {\n    memory 2M\n}\n')
    return root


def test_a_change_in_an_included_file_invalidates(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    root = _project(tmp_path)
    monkeypatch.chdir(root)
    cache = ["--cache-dir", str(tmp_path / "cache")]
    clean = _check(capsys, *cache, "a.hv")
    assert clean[0] == 0 and _check(capsys, *cache, "a.hv") == clean
    # a finding that only the included file's new text can cause
    (root / "base.hv").write_text("format 1\nabstract vm b {\n    arch x86_64\n    console serial\n    vcpus 0\n}\n")
    broken = _check(capsys, *cache, "a.hv")
    assert broken[0] == 1 and "base.hv:5" in broken[1] and broken == _check(capsys, "--no-cache", "a.hv")
    (root / "base.hv").write_text("format 1\nabstract vm b {\n    arch x86_64\n    console serial\n}\n")
    assert _check(capsys, *cache, "a.hv") == clean  # and back


def test_what_a_file_reads_invalidates_it(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    root = _project(tmp_path)
    monkeypatch.chdir(root)
    cache = ["--cache-dir", str(tmp_path / "cache")]

    def same_as_fresh() -> tuple[int, str, str]:
        cached = _check(capsys, *cache, "a.hv")
        assert cached == _check(capsys, "--no-cache", "a.hv")
        return cached

    (root / "a.hv").write_text('format 1\ninclude "later.hv"\nvm a {\n    arch x86_64\n    console serial\n'
                               '    guest "g.bin" mode real at 0x7c00\n}\n')
    missing = same_as_fresh()
    assert "include-not-found" in missing[1] and "guest-not-found" in missing[1]
    (root / "later.hv").write_text("format 1\n")  # the missing include appears
    (root / "g.bin").write_bytes(b"\xf4")  # and so does the guest
    found = same_as_fresh()
    assert "include-not-found" not in found[1] and "guest-not-found" not in found[1]
    (root / "later.hv").write_text("format 2\n")  # the included file's content changes
    assert "unsupported-format" in same_as_fresh()[1]
    (root / "g.bin").unlink()
    (root / "g.bin").mkdir()  # the guest becomes a folder
    assert "path-not-a-file" in same_as_fresh()[1]
    # the project grows: a .git above moves the scope, and the include above the old root changes meaning
    (root / ".git").rmdir()
    (tmp_path / ".git").mkdir()
    same_as_fresh()


def test_a_hit_parses_nothing_and_validates_nothing(tmp_path: Path) -> None:
    root = _project(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(REPO), "HVCONF_CACHE_DIR": str(tmp_path / "cache")}
    probe = ("import sys\nfrom hvconf.cli.main import main\nstatus = main(['check', 'a.hv'])\n"
             "print(status, sorted({m.split('.')[0] for m in sys.modules} & {'lark', 'pydantic', 'pydantic_core'}))")
    run = lambda: subprocess.run([sys.executable, "-c", probe], cwd=root, env=env, capture_output=True, text=True,
                                 timeout=120)
    first, second = run(), run()
    assert first.stdout.splitlines()[-1] == "0 ['lark', 'pydantic', 'pydantic_core']", first.stderr
    assert second.stdout.splitlines()[-1] == "0 []", second.stderr
    assert first.stdout.splitlines()[:-1] == second.stdout.splitlines()[:-1]


def test_corrupt_foreign_and_leftover_entries_are_misses(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    folder = tmp_path / "cache"
    cache = ["--cache-dir", str(folder)]
    fresh = _check(capsys, "--no-cache", "--format", "json", "samples")
    _check(capsys, *cache, "samples")
    entries = _entries(folder)
    assert entries
    damage = [b"", b"{", b"[]", b'{"key": 1}', b"\xff\xfe", b"[" * 100_000,
              b'{"key": "x", "deps": [], "diagnostics": [], "sources": {}, "spans": {}}']
    for i, entry in enumerate(entries):
        data = entry.read_bytes()
        entry.write_bytes(damage[i % len(damage)] if i % 3 else data[: len(data) // 2])
    (folder / LAYOUT / ".abc.123.tmp").write_bytes(b"half an entr")  # a write killed before its rename
    assert _check(capsys, *cache, "--format", "json", "samples") == fresh
    assert _check(capsys, *cache, "--format", "json", "samples") == fresh  # rewritten, then hit


def test_concurrent_runs_agree(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "HVCONF_CACHE_DIR": str(tmp_path / "cache")}
    cmd = [sys.executable, "-m", "hvconf", "check", "--format", "json", "samples", "tests/invalid"]
    fresh = subprocess.run([*cmd, "--no-cache"], cwd=REPO, env=env, capture_output=True, timeout=300)
    procs = [subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for _ in range(4)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(out == (fresh.stdout, fresh.stderr) for out in outs)
    again = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, timeout=300)
    assert (again.stdout, again.stderr) == (fresh.stdout, fresh.stderr)
    assert not list((tmp_path / "cache" / LAYOUT).glob(".*.tmp"))


def test_a_symlinked_cache_folder_is_not_used(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    root = _project(tmp_path)
    monkeypatch.chdir(root)
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / ".hvconf_cache").symlink_to(outside)
    status, out, err = _check(capsys, "--cache-dir", ".hvconf_cache", "a.hv")
    assert status == 0 and err == "hvconf: warning: lint cache not used: .hvconf_cache is a symbolic link\n"
    assert list(outside.iterdir()) == []
    assert (status, out) == _check(capsys, "--no-cache", "a.hv")[:2]


def test_entries_hold_no_byte_of_other_files(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    root = _project(tmp_path)
    monkeypatch.chdir(root)
    (root / "vmlinux").write_text(MARKER)
    (root / "g.S").write_text(f"# {MARKER}\n.code16\nhlt\n")
    (root / "notes.txt").write_text(f"{MARKER}\nformat 1\n")
    (root / "k.hv").write_text(f'format 1\nvm k {{\n    arch x86_64\n    console serial\n    kernel "vmlinux"\n'
                               f'    cmdline "x"\n    guest "g.S" mode real at 0x7c00\n}}\n')
    folder = tmp_path / "cache"
    _check(capsys, "--cache-dir", str(folder), "k.hv", "notes.txt", "a.hv")
    entries = _entries(folder)
    assert len(entries) == 2  # k.hv and a.hv; notes.txt is not a definition file: never kept
    assert all(MARKER not in e.read_text() for e in entries)
    assert {p.name for p in folder.iterdir()} == {LAYOUT, ".gitignore", "CACHEDIR.TAG"}
    assert (folder / ".gitignore").read_text().splitlines()[-1] == "*"
    (root / "g.S").write_text(".code16\nhlt\nhlt\n")  # a guest source is known by its stat: a change is a miss
    run = open_cache(str(folder), {"host": None}, None, ())
    assert run is not None
    lint(["k.hv", "a.hv"], cache=run)
    assert (run.hits, run.misses) == (1, 1)


def test_no_cache_writes_nothing_and_clean_removes_it(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    root = _project(tmp_path)
    monkeypatch.chdir(root)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("HVCONF_CACHE_DIR", raising=False)
    _check(capsys, "--no-cache", "a.hv")
    assert not (tmp_path / "xdg" / "hvconf" / "lint").exists()
    _check(capsys, "a.hv")  # the default: the user's cache folder
    assert len(_entries(tmp_path / "xdg" / "hvconf" / "lint")) == 1
    assert main(["clean"]) == 0
    assert not (tmp_path / "xdg" / "hvconf" / "lint").exists()
    folder = root / ".hvconf_cache"
    keep = folder / "mine.txt"
    _check(capsys, "--cache-dir", str(folder), "a.hv")
    keep.write_text("not hvconf's")
    assert main(["clean", "--cache-dir", str(folder)]) == 0
    assert [p.name for p in folder.iterdir()] == ["mine.txt"]  # only what hvconf wrote there is removed
    capsys.readouterr()
    shutil.rmtree(folder)


def test_an_entry_keeps_the_findings_of_includes_read_for_an_earlier_file(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    # One run parses a shared include once, and reports its syntax error with the first file
    # that includes it; the second file's entry must hold that finding all the same.
    root = _project(tmp_path)
    monkeypatch.chdir(root)
    (root / "base.hv").write_text("format 1\nabstract vm b {\n    arch x86_64\n    console serial\n    }}\n")
    (root / "c.hv").write_text((root / "a.hv").read_text().replace("vm a ", "vm c "))
    cache = ["--cache-dir", str(tmp_path / "cache")]
    both = _check(capsys, *cache, "a.hv", "c.hv")
    assert both[0] == 1 and "syntax-error" in both[1]
    alone = _check(capsys, *cache, "c.hv")
    assert alone == _check(capsys, "--no-cache", "c.hv") and "syntax-error" in alone[1]


def test_a_symlinked_entries_folder_is_not_read(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    root = _project(tmp_path)
    monkeypatch.chdir(root)
    folder = tmp_path / "cache"
    _check(capsys, "--cache-dir", str(folder), "a.hv")
    (folder / LAYOUT).rename(tmp_path / "elsewhere")
    (folder / LAYOUT).symlink_to(tmp_path / "elsewhere")  # entries that would still hit, behind a link
    status, out, err = _check(capsys, "--cache-dir", str(folder), "a.hv")
    assert status == 0 and err.startswith("hvconf: warning: lint cache not used: ") and "symbolic link" in err
