"""What keeps `hvconf check` fast to start, and that it changes no result.

The per-user cache: validated targets (hvconf/model/kbcache.py) and the parser's
LALR tables (hvconf/syntax/parser.py) are reused only when written for the same
inputs and private to the user, and a damaged entry is rebuilt; the spans the
AST builder works out from tokens are the ones lark's propagate_positions gave;
a one-file check loads neither the host-facts models nor the rule docs.
"""

from __future__ import annotations

import contextlib
import gc
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from lark import Lark, Token

from hvconf.diagnostics import Report, Span
from hvconf.model import kbcache
from hvconf.model.target import FILES, Target, TargetError, _assemble, target_names
from hvconf.resources import cache_dir, grammar_path, invalid_samples_dir, targets_dir
from hvconf.syntax import ast
from hvconf.syntax.build import AstBuilder
from hvconf.syntax.parser import cache_entry, parse, parser

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private XDG_CACHE_HOME; returns hvconf's folder in it."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    return tmp_path / "xdg" / "hvconf"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A copy of the packaged targets, free to edit."""
    shutil.copytree(targets_dir(), tmp_path / "targets")
    return tmp_path / "targets"


def _counting(root: Path) -> tuple[list[str], object]:
    built: list[str] = []

    def assemble(name: str) -> Target | None:
        built.append(name)
        try:
            return _assemble(root / name)
        except TargetError:
            return None

    return built, assemble


def test_validated_targets_come_back_from_the_cache_equal(cache: Path, root: Path) -> None:
    names = target_names(root)
    built, assemble = _counting(root)
    first = kbcache.cached_targets(root, names, FILES, assemble)  # type: ignore[arg-type]
    assert built == list(names) and (cache / kbcache.ENTRY).is_file()
    assert oct((cache / kbcache.ENTRY).stat().st_mode & 0o777) == "0o600"
    again = kbcache.cached_targets(root, names, FILES, assemble)  # type: ignore[arg-type]
    assert built == list(names), "the second load must not validate again"
    for name in names:
        assert again[name] is not first[name]
        assert again[name].model_dump() == first[name].model_dump()
        assert dict(again[name].name2cap) == dict(first[name].name2cap)
        assert type(again[name].vm_type).__name__ == "mappingproxy"  # still read-only


def test_any_change_to_the_data_validates_again(cache: Path, root: Path) -> None:
    names = target_names(root)
    built, assemble = _counting(root)
    kbcache.cached_targets(root, names, FILES, assemble)  # type: ignore[arg-type]
    caps = root / "x86_64" / "caps.toml"
    caps.write_text(caps.read_text().replace('doc = "', 'doc = "edited: ', 1))
    fresh = kbcache.cached_targets(root, names, FILES, assemble)  # type: ignore[arg-type]
    assert built == [*names, *names]
    assert any(c.doc.startswith("edited: ") for c in fresh["x86_64"].caps)


def test_a_target_that_does_not_validate_is_not_cached(cache: Path, root: Path) -> None:
    target = root / "s390x" / "target.toml"
    target.write_text(target.read_text().replace('name = "s390x"', 'name = "s390"'))
    names = target_names(root)
    built, assemble = _counting(root)
    first = kbcache.cached_targets(root, names, FILES, assemble)  # type: ignore[arg-type]
    again = kbcache.cached_targets(root, names, FILES, assemble)  # type: ignore[arg-type]
    assert "s390x" not in first and "s390x" not in again and "x86_64" in again
    assert built == list(names)  # the second load came from the cache, broken target and all


@pytest.mark.parametrize("damage", ["truncated", "group-writable", "symlink"])
def test_a_damaged_or_untrusted_entry_is_ignored_and_rebuilt(cache: Path, root: Path, damage: str) -> None:
    names = target_names(root)
    built, assemble = _counting(root)
    kbcache.cached_targets(root, names, FILES, assemble)  # type: ignore[arg-type]
    entry = cache / kbcache.ENTRY
    if damage == "truncated":
        entry.write_bytes(entry.read_bytes()[:200])
    elif damage == "group-writable":
        entry.chmod(0o664)
    else:
        real = cache / "elsewhere"
        entry.rename(real)
        entry.symlink_to(real)
    targets = kbcache.cached_targets(root, names, FILES, assemble)  # type: ignore[arg-type]
    assert built == [*names, *names] and set(targets) == set(names)
    assert entry.is_file() and not entry.is_symlink() and oct(entry.stat().st_mode & 0o777) == "0o600"


def test_no_usable_cache_folder_only_costs_time(tmp_path: Path, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))  # hvconf/ cannot be created under a file
    monkeypatch.setenv("TMPDIR", str(blocker))
    assert cache_dir() is None
    names = target_names(root)
    built, assemble = _counting(root)
    for _ in range(2):
        assert set(kbcache.cached_targets(root, names, FILES, assemble)) == set(names)  # type: ignore[arg-type]
    assert built == [*names, *names]


def test_a_later_process_uses_the_cache_without_building_a_schema(tmp_path: Path) -> None:
    code = ("from hvconf.model.target import load_target, target_for; from hvconf.model import target_toml as r;"
            "t = load_target(target_for('ppc64le')); print(t.name, r.TargetSpec.__pydantic_complete__)")
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path)}
    runs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
            for _ in range(2)]
    assert [r.stdout.split() for r in runs] == [["ppc64-spapr", "True"], ["ppc64-spapr", "False"]], runs[1].stderr


# ---- the parser --------------------------------------------------------------


def _sources() -> list[Path]:
    found = [*(REPO / "samples").rglob("*.hv"), *invalid_samples_dir().rglob("*.hv"), *(REPO / "tests").rglob("*.hv")]
    return sorted(set(found))


class _LarkSpans(AstBuilder):
    """The builder as it was: spans from the positions lark propagates into trees."""

    def span(self, node):  # type: ignore[no-untyped-def]
        if isinstance(node, Token):
            return Span(self.file, node.line, node.column, node.end_line, node.end_column)
        meta = node.meta
        return Span(self.file, meta.line, meta.column, meta.end_line, meta.end_column)


def test_spans_from_tokens_are_the_spans_lark_propagates() -> None:
    positions = Lark(grammar_path().read_text(encoding="utf-8"), parser="lalr", propagate_positions=True,
                     maybe_placeholders=True)
    compared = 0
    for path in _sources():
        try:
            text = path.read_text(encoding="utf-8")
            old, new = positions.parse(text), parser().parse(text)
        except Exception:  # not UTF-8, or a syntax error: nothing to build
            continue
        old_report, new_report = Report(), Report()
        assert AstBuilder(str(path), new_report).source_file(new) == \
            _LarkSpans(str(path), old_report).source_file(old), path
        assert new_report.diagnostics == old_report.diagnostics
        compared += 1
    assert compared > 40


def test_parser_tables_are_cached_privately_and_rebuilt_when_damaged(cache: Path) -> None:
    text = (REPO / "samples" / "x86-hello.hv").read_text()
    expected = parser().parse(text)
    for damage in (None, b"junk"):
        parser.cache_clear()
        if damage is not None:
            entry = cache / cache_entry()
            entry.write_bytes(entry.read_bytes().split(b"\n", 1)[0] + b"\n" + damage)
        try:
            assert parser().parse(text) == expected
        finally:
            parser.cache_clear()
        assert oct((cache / cache_entry()).stat().st_mode & 0o777) == "0o600"
    assert b"junk" not in (cache / cache_entry()).read_bytes()


def test_building_an_ast_leaves_no_garbage_cycles() -> None:
    text = (REPO / "samples" / "pseries.hv").read_text()
    parser()  # built (or loaded) first: lark's own tables are not the AST, and a test above clears them
    gc.collect()
    gc.disable()
    try:
        tree = parse(text, "pseries.hv", Report())
        assert isinstance(tree, ast.SourceFile)
        del tree
        assert gc.collect() == 0  # everything went with its last reference
    finally:
        gc.enable()


# ---- what a one-file check imports ------------------------------------------


def test_checking_one_file_loads_no_module_it_does_not_need(tmp_path: Path) -> None:
    code = ("import sys; from hvconf.cli.main import main; status = main(['check', sys.argv[1]]);"
            "print(*sorted(m for m in sys.modules if m.split('.')[0] in"
            " ('jinja2', 'cffi', 'pyfdt', 'hvconf') and m.startswith(('jinja2', 'cffi', 'pyfdt',"
            " 'hvconf.model.host', 'hvconf.lint.explain', 'hvconf.kvm', 'hvconf.emit', 'hvconf.platforms'))))")
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", code, str(REPO / "samples" / "x86-hello.hv")],
                          capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    *_, loaded = done.stdout.splitlines()
    assert loaded == "", f"imported to lint one file: {loaded}"


def test_a_vms_hcall_set_is_worked_out_once_and_per_vm() -> None:
    from hvconf import compiler
    from hvconf.model import hcallset
    from hvconf.model.target import load_target

    vms = compiler.check([REPO / "samples" / "pseries.hv", REPO / "samples" / "pseries-pr.hv"]).vms
    first, second = (vm for vm in vms if not vm.abstract)
    target = load_target("ppc64-spapr")
    assert hcallset.resolve(first, target) is hcallset.resolve(first, target)
    assert hcallset.resolve(first, target) is not hcallset.resolve(second, target)
    copy = first.model_copy()  # equal, but another object: worked out again, to the same answer
    assert hcallset.resolve(copy, target) is not hcallset.resolve(first, target)
    assert hcallset.resolve(copy, target) == hcallset.resolve(first, target)


def _garbage_after_lint(paths: list[Path]) -> int:
    from hvconf.lint.driver import lint

    gc.collect()
    gc.disable()
    try:
        lint(paths)
        return gc.collect()
    finally:
        gc.enable()


def test_checking_more_files_leaves_no_more_garbage_cycles(tmp_path: Path) -> None:
    """`hvconf check` runs without the cyclic collector (cli._pause_collector): that holds
    only while checking a file leaves no reference cycles behind."""
    (tmp_path / ".git").mkdir()
    (tmp_path / "base.hv").write_text((REPO / "samples" / "base" / "pseries.hv").read_text())
    paths = []
    for i in range(40):
        path = tmp_path / f"vm{i:02d}.hv"
        path.write_text(f'format 1\ninclude "base.hv"\nvm v{i} extends power9_base {{\n    memory {i + 1}G\n'
                        f'    vcpus 2\n    hcalls {{ enable H_RANDOM }}\n    tce t {{ liobn {i}  window 256M }}\n}}\n')
        paths.append(path)
    _garbage_after_lint(paths[:2])  # imports, caches: once
    assert _garbage_after_lint(paths[:5]) == _garbage_after_lint(paths)


def _garbage_after_build(source: Path, out: Path) -> int:
    from hvconf.cli.main import main

    gc.collect()
    gc.disable()
    try:
        assert main(["build", str(source), "-o", str(out)]) == 0
        return gc.collect()
    finally:
        gc.enable()


def test_building_more_vms_leaves_no_more_garbage_cycles(tmp_path: Path) -> None:
    """`hvconf build` runs without the cyclic collector too: building and writing a VM must
    leave no reference cycles behind, or 10,000 VMs would leave 10,000 times as many."""
    def vms(n: int) -> Path:
        path = tmp_path / f"vms{n}.hv"
        path.write_text("format 1\nabstract vm b {\n    arch x86_64\n    memory 16M\n    console serial\n}\n"
                        + "".join(f"vm v{i} extends b {{ vcpus {1 + i % 4} }}\n" for i in range(n)))
        return path

    _garbage_after_build(vms(60), tmp_path / "out0")  # imports, caches: once
    assert _garbage_after_build(vms(60), tmp_path / "out1") == _garbage_after_build(vms(240), tmp_path / "out2")


def test_only_a_check_or_build_of_its_own_process_pauses_the_collector(tmp_path: Path) -> None:
    from hvconf.cli.main import main

    assert gc.isenabled()
    assert main(["check", str(REPO / "samples" / "x86-hello.hv")]) == 0
    assert gc.isenabled()  # a caller's process keeps its collector
    # main() ends its own process with os._exit (cli._leave); the spy reports on the way out.
    code = ("import gc, os, sys; from hvconf.cli.main import main; leave = os._exit;"
            "os._exit = lambda status: (print(gc.isenabled(), status, flush=True), leave(status));"
            "sys.argv = ['hvconf', 'check', sys.argv[1]]; main()")
    done = subprocess.run([sys.executable, "-c", code, str(REPO / "samples" / "x86-hello.hv")], capture_output=True,
                          text=True, timeout=60)
    assert done.stdout.splitlines()[-1] == "False 0", done.stderr
    build = code.replace("'check', sys.argv[1]", "'build', sys.argv[1], '-o', sys.argv[2]")
    done = subprocess.run([sys.executable, "-c", build, str(REPO / "samples" / "x86-hello.hv"), str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=60)
    assert done.stdout.splitlines()[-1] == "False 0", done.stderr  # and `hvconf build`


@pytest.mark.parametrize("many", [False, True], ids=["small-output", "large-output"])
def test_a_process_that_ends_without_teardown_still_writes_everything(tmp_path: Path, many: bool) -> None:
    """`hvconf` ends with os._exit (no interpreter teardown): what it printed into pipes is all
    there (less than a pipe buffer stays in Python's buffer until the explicit flush), the status
    is the command's, and a caller passing argv gets the status back instead."""
    from hvconf.cli.main import main

    files = [str(p) for p in sorted((REPO / "tests" / "invalid").glob("*.hv"))[: 60 if many else 1]]
    args = ["check", "--format", "json" if many else "text", "--color", "never", *files]
    out = tmp_path / "in-process.txt"
    with open(out, "w") as stream, contextlib.redirect_stdout(stream):
        status = main(args)
    assert status in (0, 1)  # findings, and no usage error
    buffered = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # as a user's shell has it
    done = subprocess.run([sys.executable, "-m", "hvconf", *args], capture_output=True, text=True, timeout=120,
                          env=buffered)
    assert done.returncode == status, done.stderr
    assert (len(done.stdout) > 10_000) if many else (0 < len(done.stdout) < 8192)
    assert done.stdout == out.read_text()

    # A reader that stops early: no traceback, no "Exception ignored" noise on stderr.
    shell = subprocess.run(f"{shlex.quote(sys.executable)} -m hvconf {shlex.join(args)} | head -c 100 >/dev/null",
                           shell=True, capture_output=True, text=True, timeout=120, env=buffered)
    assert shell.returncode == 0 and shell.stderr == "", shell.stderr
