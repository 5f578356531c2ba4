"""`hvconf fmt`: the layout rules on small inputs, idempotence and meaning
preservation over every sample, every parsing tests/invalid input and every
docs/language.md example (same IR, same plan, same DTB, same diagnostics),
and the command's files, exit statuses and atomic writes.
"""

from __future__ import annotations

import argparse
import functools
import io
import os
import random
import re
import shutil
import stat
from pathlib import Path
from typing import Any

import pytest

from hvconf.cli import fmt as cli_fmt
from hvconf.syntax.comments import comments
from hvconf.compiler import build
from hvconf.diagnostics import HvconfError, Report
from hvconf.formatter import format_text
from hvconf.formatter.layout import tokens
from hvconf.syntax import ast
from hvconf.syntax.parser import parse
from test_docs import EXAMPLES, compile_example

REPO = Path(__file__).resolve().parent.parent
INVALID = REPO / "tests" / "invalid"


def fmt(text: str) -> str:
    out = format_text(text)
    assert format_text(out) == out, f"not idempotent:\n{out}"
    return out


# ---- the layout ---------------------------------------------------------------------


def test_settings_one_per_line_with_values_in_one_column() -> None:
    src = "vm a { arch x86_64 memory 2M\n\n\n\n vcpus 1  irqchip   kernel }"
    assert fmt(src) == ("vm a {\n    arch   x86_64\n    memory 2M\n\n"
                        "    vcpus   1\n    irqchip kernel\n}\n")


def test_blank_lines_kept_once_but_never_after_open_or_before_close() -> None:
    src = "vm a {\n\n    arch x86_64\n\n\n    memory 2M\n\n}\nvm b {\n}\n\n\n\nvm c { }"
    assert fmt(src) == "vm a {\n    arch x86_64\n\n    memory 2M\n}\n\nvm b { }\n\nvm c { }\n"


def test_format_then_includes_then_vms_with_the_file_header_kept_on_top() -> None:
    src = ('# file header\n\n# about a\nvm a { }\ninclude "x.hv"  # why\n# the version\nformat 1\n'
           'include "y.hv"\n')
    assert fmt(src) == ('# file header\n\n# the version\nformat 1\ninclude "x.hv"  # why\ninclude "y.hv"\n\n'
                        '# about a\nvm a { }\n')


def test_blocks_on_one_line_or_one_item_per_line() -> None:
    src = ("vm a {\nhcalls { preset qemu }\nhcalls { enable H_RANDOM  disable H_CEDE exit 0x58 enforce }\n"
           'rtas { token "ibm,set-xive" 0x2000 token "power-off" 0x2003 }\n'
           "tce t { liobn 0x71000000 window 256M }\ncap KVM_CAP_SW_TLB on vcpus {mmu e500v2 sets 128}\n"
           "pv_features {unhalt pv_eoi}\nhypervisor { idle compatible \"x\" hcall_instructions [1,2] }\n"
           "rtas { }\n}")
    assert fmt(src) == (
        "vm a {\n    hcalls { preset qemu }\n    hcalls {\n        enable  H_RANDOM\n        disable H_CEDE\n"
        "        exit    0x58\n        enforce\n    }\n"
        '    rtas {\n        token "ibm,set-xive" 0x2000\n        token "power-off"    0x2003\n    }\n'
        "    tce t { liobn 0x71000000  window 256M }\n    cap KVM_CAP_SW_TLB on vcpus { mmu e500v2  sets 128 }\n"
        '    pv_features { unhalt  pv_eoi }\n    hypervisor { idle  compatible "x"  hcall_instructions [1, 2] }\n'
        "    rtas { }\n}\n")


def test_a_comment_or_a_long_line_opens_a_block() -> None:
    names = "  ".join(f"feature_{i}" for i in range(9))
    out = fmt(f"vm a {{ pv_features {{ {names} }} tce t {{ liobn 1  # the bus\n window 4K }} }}")
    assert out == ("vm a {\n    pv_features {\n" + "".join(f"        feature_{i}\n" for i in range(9)) + "    }\n"
                   "    tce t {\n        liobn 1  # the bus\n        window 4K\n    }\n}\n")
    assert all(len(line) <= 100 for line in out.splitlines())


def test_literals_are_kept_as_written() -> None:
    src = 'vm a { memory 0x10m  cmdline "a\\x41\\"#b\\\\"  tce t_1-x { liobn 0b1010_1  window 1_024K } }'
    out = fmt(src)
    for literal in ("0x10m", '"a\\x41\\"#b\\\\"', "t_1-x", "0b1010_1", "1_024K"):
        assert literal in out
    assert comments(out) == []  # the `#` in the string stayed in the string


def test_trailing_comments_line_up_after_the_longest_line_of_a_run() -> None:
    src = "vm a {\n  arch x86_64 # one\n  memory 2M\n  vcpus 2 # three\n\n  pit on    # alone\n}\n"
    assert fmt(src) == ("vm a {\n    arch   x86_64  # one\n    memory 2M\n    vcpus  2       # three\n\n"
                        "    pit on  # alone\n}\n")


def test_comments_inside_statements_and_blocks_keep_their_place() -> None:
    src = ("vm a {   # after the brace\n  # above arch\n  arch x86_64 memory 2M # two statements\n"
           "  cap KVM_CAP_X86_DISABLE_EXITS # first\n  # between words\n  { exits [pause, # in a list\n"
           "  hlt] } # after\n  hcalls {\n    enable KVM_HC_KICK_CPU\n    # before the brace\n  }\n}\n# end\n")
    assert fmt(src) == (
        "vm a {  # after the brace\n    # above arch\n    arch   x86_64\n    memory 2M  # two statements\n"
        "    # between words\n    cap KVM_CAP_X86_DISABLE_EXITS {  # first\n"
        "        exits [pause, hlt]  # in a list\n    }  # after\n"
        "    hcalls {\n        enable KVM_HC_KICK_CPU\n        # before the brace\n    }\n}\n\n# end\n")


def test_two_trailing_comments_joined_on_one_line_keep_both() -> None:
    out = fmt("vm a {\n  cap KVM_CAP_HALT_POLL  # first\n    on vm  # second\n}\n")
    assert out == "vm a {\n    # first\n    cap KVM_CAP_HALT_POLL on vm  # second\n}\n"


def test_crlf_tabs_and_trailing_blanks_are_normalised() -> None:
    assert fmt("vm a {\r\n\tarch x86_64   # note   \r\n}\r\n") == "vm a {\n    arch x86_64  # note\n}\n"


def test_empty_and_comment_only_files() -> None:
    assert fmt("") == "" and fmt("\n\n") == ""
    assert fmt("# just\n\n\n# comments") == "# just\n\n# comments\n"


def test_a_file_that_does_not_parse_is_refused() -> None:
    with pytest.raises(HvconfError) as err:
        format_text("vm a { memory }", "x.hv")
    assert err.value.report.codes() == ["syntax-error"]


def test_the_example_of_docs_fmt_is_in_the_layout() -> None:
    block = re.search(r"```hv\n(.*?)```", (REPO / "docs" / "fmt.md").read_text(encoding="utf-8"), re.S)
    assert block is not None and fmt(block.group(1)) == block.group(1)


# ---- the same text in other spacing and with other comments ---------------------------------


@functools.lru_cache(maxsize=1)
def _corpus() -> list[str]:
    """Every sample, parsing tests/invalid input and docs example; each formats idempotently."""
    texts = [p.read_text(encoding="utf-8") for p in sorted((REPO / "samples").rglob("*.hv"))]
    texts += [p.read_text(encoding="utf-8", errors="replace") for p in sorted(INVALID.glob("*.hv"))]
    texts += [e.source() for e in EXAMPLES]
    out = []
    for text in texts:
        try:
            fmt(text)
        except HvconfError:
            continue
        out.append(text)
    assert len(out) >= len(texts) - 3  # syntax-error.hv and unknown-keyword.hv do not parse
    return out


def _shape(node: Any) -> Any:
    """An AST without positions, top-level items in the formatter's order."""
    if isinstance(node, ast.SourceFile):
        rank = {ast.FormatDecl: 0, ast.Include: 1, ast.VmDecl: 2}
        return [_shape(i) for i in sorted(node.items, key=lambda i: rank[type(i)])]
    if isinstance(node, ast.Node):
        return (type(node).__name__,) + tuple(_shape(getattr(node, name)) for name in node.__slots__
                                             if not name.endswith("span"))
    if isinstance(node, tuple):
        return tuple(_shape(n) for n in node)
    return node


def _respaced(text: str, rng: random.Random, separators: list[str]) -> str:
    toks = tokens(text)
    return "".join(t.text + rng.choice(separators).format(n=n) for n, t in enumerate(toks))


def test_the_layout_does_not_depend_on_spacing() -> None:
    rng = random.Random(4)
    for text in _corpus():
        plain = fmt(" ".join(t.text for t in tokens(text)))
        assert fmt(_respaced(text, rng, [" ", "   ", "\n", "\t", "\n  \t", "\r\n"])) == plain


def test_comments_anywhere_are_all_kept_and_change_nothing() -> None:
    rng = random.Random(7)
    separators = [" ", "\n", "\n\n\n", "  # c{n}\n", "\n# c{n}\n", "\n\n  # c{n}\n\n"]
    for text in _corpus():
        want = _shape(parse(text, "x.hv", Report()))
        messy = _respaced(text, rng, separators)
        out = fmt(messy)
        assert _shape(parse(out, "x.hv", Report())) == want
        assert sorted(c.text for c in comments(out)) == sorted(c.text for c in comments(messy))


# ---- meaning: the same IR, plan, DTB and findings -------------------------------------------


def _strip_sources(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_sources(v) for k, v in value.items() if k != "source"}
    if isinstance(value, list):
        return [_strip_sources(v) for v in value]
    return value


def outcome(path: Path) -> tuple[Any, ...]:
    """What `path` means, without positions: findings, IR, plans, device trees, guest images."""
    result = build([path])
    findings = sorted((d.code, d.severity.value, d.message) for d in result.report)
    irs = [vm.model_dump(mode="json") for vm in result.vms]
    plans = [_strip_sources(b.plan) for b in result.built]
    blobs = [{n: data for n, data in b.files.items() if n.endswith((".dtb", ".bin"))} for b in result.built]
    return findings, irs, plans, blobs


def _format_tree(root: Path) -> int:
    """Format every .hv file under `root` in place (files that do not parse are left); how many changed."""
    changed = 0
    for path in sorted(root.rglob("*.hv")):
        text = path.read_text(encoding="utf-8", errors="surrogateescape")
        try:
            new = fmt(text)
        except (HvconfError, UnicodeEncodeError):
            continue
        if new != text:
            path.write_text(new, encoding="utf-8")
            changed += 1
    return changed


def _assert_same_meaning(roots: list[Path], tree: Path) -> dict[Path, tuple[Any, ...]]:
    before = {p: outcome(p) for p in roots}
    assert _format_tree(tree) > 0
    for p in roots:
        assert outcome(p) == before[p], f"formatting changed the meaning of {p.relative_to(tree)}"
    return before


def test_samples_keep_their_meaning(tmp_path: Path) -> None:
    shutil.copytree(REPO / "samples", tmp_path / "samples")
    shutil.copytree(REPO / "guests", tmp_path / "guests")
    (tmp_path / ".git").mkdir()  # a repository: the samples may read ../guests
    (tmp_path / "samples" / "x86-hello.hv").write_text(  # committed samples are formatted: mess one up
        re.sub(r"\s+", " ", (REPO / "samples" / "x86-hello.hv").read_text().split("format 1")[1]))
    before = _assert_same_meaning(sorted((tmp_path / "samples").rglob("*.hv")), tmp_path)
    assert sum(len(plans) for _, _, plans, _ in before.values()) >= 6  # every concrete sample was compared


def test_invalid_inputs_keep_their_meaning(tmp_path: Path) -> None:
    shutil.copytree(INVALID, tmp_path / "tests" / "invalid")
    shutil.copytree(REPO / "guests", tmp_path / "guests")
    (tmp_path / ".git").mkdir()  # a repository, as the samples' own: they may read ../../guests
    before = _assert_same_meaning(sorted((tmp_path / "tests" / "invalid").glob("*.hv")), tmp_path)
    assert sum(bool(irs) for _, irs, _, _ in before.values()) > 80  # most lower to a VM


def test_docs_examples_keep_their_meaning(tmp_path: Path) -> None:
    roots = []
    for n, example in enumerate(EXAMPLES):
        folder = tmp_path / f"ex{n}"
        folder.mkdir()
        compile_example(example, folder)
        roots.append(folder / (example.file or "example.hv"))
    before = _assert_same_meaning(roots, tmp_path)
    assert sum(bool(plans) for _, _, plans, _ in before.values()) >= 30  # the concrete ones built


# ---- the command -------------------------------------------------------------------------


def run_fmt(*argv: str) -> int:
    top = argparse.ArgumentParser(prog="hvconf")
    cli_fmt.register(top.add_subparsers(dest="command", required=True))
    args = top.parse_args(["fmt", *argv])
    return int(args.func(args))


UGLY = "vm a { arch x86_64   memory 2M }\n"
PRETTY = "vm a {\n    arch   x86_64\n    memory 2M\n}\n"


def test_committed_samples_pass_check(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_fmt("--check", str(REPO / "samples")) == 0, capsys.readouterr().out


def test_check_and_diff_write_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "a.hv"
    path.write_text(UGLY)
    assert run_fmt("--check", str(path)) == 1
    assert capsys.readouterr().out == f"would reformat {path}\n"
    assert run_fmt("--diff", str(path)) == 1
    out = capsys.readouterr().out
    assert out.startswith(f"--- a/{path}\n+++ b/{path}\n") and "-vm a { arch x86_64   memory 2M }\n" in out
    assert "+    arch   x86_64\n" in out
    assert path.read_text() == UGLY
    path.write_text(PRETTY)
    assert run_fmt("--check", "--diff", str(path)) == 0 and capsys.readouterr().out == ""


def test_rewrite_in_place_keeps_mode_and_symlinks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    real = tmp_path / "real.hv"
    real.write_text(UGLY)
    real.chmod(0o640)
    link = tmp_path / "link.hv"
    link.symlink_to(real)
    assert run_fmt(str(link)) == 0
    assert capsys.readouterr().out == f"reformatted {link}\n"
    assert real.read_text() == PRETTY and link.is_symlink()
    assert stat.S_IMODE(real.stat().st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.hv", "real.hv"]  # no temporary file left
    mtime = real.stat().st_mtime_ns
    assert run_fmt(str(real)) == 0 and capsys.readouterr().out == ""
    assert real.stat().st_mtime_ns == mtime  # a formatted file is not rewritten


def test_folders_are_searched_for_hv_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for rel in ("b.hv", "sub/a.hv", ".hidden/c.hv", "notes.txt"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(UGLY)
    assert run_fmt("--check", str(tmp_path)) == 1
    assert capsys.readouterr().out == f"would reformat {tmp_path / 'b.hv'}\nwould reformat {tmp_path / 'sub/a.hv'}\n"
    assert run_fmt(str(tmp_path)) == 0
    assert (tmp_path / "sub/a.hv").read_text() == PRETTY
    assert (tmp_path / ".hidden/c.hv").read_text() == UGLY and (tmp_path / "notes.txt").read_text() == UGLY


def test_bad_files_are_reported_and_left_alone(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.hv"
    bad.write_text("vm a { memory }\n")
    good = tmp_path / "good.hv"
    good.write_text(UGLY)
    assert run_fmt(str(bad), str(good)) == 1
    err = capsys.readouterr().err
    assert f"{bad}:1:15: error[syntax-error]" in err
    assert bad.read_text() == "vm a { memory }\n" and good.read_text() == PRETTY
    assert run_fmt(str(tmp_path / "missing.hv"), str(good)) == 2
    assert "missing.hv: No such file or directory" in capsys.readouterr().err
    notutf8 = tmp_path / "latin1.hv"
    notutf8.write_bytes(b'vm a { cmdline "caf\xe9" }\n')
    assert run_fmt(str(notutf8)) == 1 and "invalid-utf8" in capsys.readouterr().err


def test_standard_input_to_standard_output(monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(UGLY.encode())))
    assert run_fmt("-") == 0 and capsys.readouterr().out == PRETTY
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(UGLY.encode())))
    assert run_fmt("--check", "-") == 1 and capsys.readouterr().out == ""


def test_write_atomically_leaves_the_old_file_when_it_fails(tmp_path: Path) -> None:
    path = tmp_path / "a.hv"
    path.write_text(UGLY)
    with pytest.raises(TypeError):
        cli_fmt.write_atomically(path, None)  # type: ignore[arg-type]
    assert path.read_text() == UGLY and os.listdir(tmp_path) == ["a.hv"]
