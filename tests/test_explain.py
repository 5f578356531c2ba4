"""`hvconf explain` and docs/diagnostics.md: every code anything in hvconf emits
has a page; every page's bad example yields its code (at the page's severity)
and its good example compiles clean; the docs file is the pages rendered; the
command prints pages, lists codes and refuses unknown ones with a suggestion;
an installed wheel carries the bad samples it shows.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from hvconf.codes import CODES, STAGES
from hvconf.lint import explain
from hvconf.check import CHECKS, HOST_CHECKS
from hvconf.cli.docs import EXIT_USAGE, register
from hvconf.compiler import build, check
from hvconf.diagnostics import Report
from hvconf.lint.driver import check_text
from hvconf.lint.settings import ConfigError
from hvconf.model.host import load_host_facts
from hvconf.syntax.loader import MAX_FILE_BYTES

REPO = Path(__file__).resolve().parent.parent
INVALID = REPO / "tests" / "invalid"
PAGES = explain.pages()
# A code literal where a diagnostic is made: report.error("x-y", ...), Diagnostic("x-y", ...),
# Check("x-y", ...), or `code = "x-y"` (hvconf/syntax/errors.py picks one of two codes).
_EMIT = re.compile(r'(?:\.error|\.warning|\.note|\bDiagnostic|\bCheck)\(\s*"([a-z0-9]+(?:-[a-z0-9]+)+)"'
                   r'|\bcode\s*=\s*"([a-z0-9]+(?:-[a-z0-9]+)+)"')
# Bad examples that need a file no table can hold: (file name, size), made sparse here.
OVERSIZED = {"include-too-large": ("huge.hv", MAX_FILE_BYTES + 1),
             "boot-images-overlap": ("big.img", 192 << 20),  # from 64 MiB up to the RTAS blob below 256 MiB
             "linux-does-not-fit": ("initrd.img", 0x380000)}  # 3.5 MiB: the ramdisk of its bad example


def emitted_codes() -> dict[str, set[str]]:
    """code -> the hvconf source files that emit it."""
    found: dict[str, set[str]] = {}
    for source in sorted((REPO / "hvconf").rglob("*.py")):
        for m in _EMIT.finditer(source.read_text(encoding="utf-8")):
            found.setdefault(m.group(1) or m.group(2), set()).add(str(source.relative_to(REPO)))
    return found


def compile_example(page: explain.Page, example: explain.Example, tmp: Path) -> Report:
    """Compile an example as a user would: with its side files, through build for build-stage codes."""
    for name, text in example.files:
        (tmp / name).write_text(text.lstrip("\n"), encoding="utf-8")
    if example is page.bad and page.code in OVERSIZED:
        name, size = OVERSIZED[page.code]
        with (tmp / name).open("wb") as f:
            f.truncate(size)
    main = example.path
    if main is None:
        main = tmp / example.name
        main.write_bytes(example.text.encode(example.encoding))
    if page.stage == "config":  # the configuration beside it, read as `hvconf check` reads it
        try:
            return check_text(main.read_bytes(), main)
        except ConfigError as err:
            return Report([err.diagnostic])
    if page.stage == "build":
        overrides = tmp / example.overrides if example.overrides else None
        return build([main], proposed_overrides=overrides).report
    host = load_host_facts(tmp / example.host) if example.host else None
    return check([main], host=host).report


# ---- coverage -----------------------------------------------------------------------


def test_the_code_scan_finds_every_stage() -> None:
    # Guards the regex: if it stopped matching, the coverage tests would pass vacuously.
    codes = emitted_codes()
    assert {"syntax-error", "unknown-keyword", "include-cycle", "invalid-value", "duplicate-setting",
            "kernel-missing", "dt-unrepresentable", "abi-overrides-invalid", "unknown-cap"} <= set(codes)
    assert {c.code for c in CHECKS + HOST_CHECKS} <= set(codes)


def test_every_emitted_code_has_a_page() -> None:
    missing = {code: sorted(files) for code, files in emitted_codes().items() if code not in PAGES}
    assert missing == {}, "add a [stage.CODE] (or, for a Check, [check.CODE]) page to hvconf/lint/explain.toml"


def test_every_page_is_for_an_emitted_code() -> None:
    assert sorted(set(PAGES) - set(emitted_codes())) == []


def test_every_check_has_a_page_with_its_own_facts() -> None:
    for stage, checks in (("check", CHECKS), ("host", HOST_CHECKS)):
        for c in checks:
            p = PAGES[c.code]
            assert (p.stage, p.severity, p.summary, p.why, p.help, p.requires) == \
                   (stage, c.severity, c.summary, c.why, c.help, c.requires)


# ---- examples -------------------------------------------------------------------------


@pytest.mark.parametrize("code", list(PAGES))
def test_bad_example_yields_its_code(code: str, tmp_path: Path) -> None:
    page = PAGES[code]
    assert page.bad is not None, f"{code}: add tests/invalid/{code}.hv (or `bad` to its page in hvconf/lint/explain.toml)"
    found = [d for d in compile_example(page, page.bad, tmp_path) if d.code == code]
    assert found, f"{code}: the bad example does not yield it"
    assert {d.severity for d in found} == {page.severity}, f"{code}: page says {page.severity.value}"


@pytest.mark.parametrize("code", list(PAGES))
def test_good_example_is_clean(code: str, tmp_path: Path) -> None:
    page = PAGES[code]
    assert page.good is not None, f"{code}: add `good` to its page in hvconf/lint/explain.toml"
    report = compile_example(page, page.good, tmp_path)
    assert [f"{d.span} {d.code}: {d.message}" for d in report] == []


def test_bad_examples_are_the_shipped_samples() -> None:
    # One source: a code with a tests/invalid sample shows that sample, and the table repeats none.
    table = tomllib.loads(explain.TABLE.read_text(encoding="utf-8"))
    rows = {**table["stage"], **table["check"]}
    for code, page in PAGES.items():
        sample = INVALID / f"{code}.hv"
        if page.bad is None:
            continue  # test_bad_example_yields_its_code says what is missing
        if sample.is_file():
            assert page.bad.path is not None and page.bad.path.resolve() == sample.resolve(), code
            assert "bad" not in rows.get(code, {}), f"{code}: its bad example is {sample.name}; drop `bad`"
            assert "# also:" not in page.bad.text
        else:
            assert page.bad.path is None and "bad" in rows.get(code, {}), code


def test_table_rows_are_well_formed() -> None:
    table = tomllib.loads(explain.TABLE.read_text(encoding="utf-8"))
    assert set(table) == {"stage", "check"}
    example_keys = {"good", "bad", "files", "good_files", "bad_files", "bad_encoding", "overrides", "host"}
    checks = {c.code for c in CHECKS + HOST_CHECKS}
    for code, row in table["stage"].items():
        assert code not in checks, f"{code} is a Check: its page belongs under [check.{code}]"
        assert {"summary", "why", "good"} <= set(row), code
        # stage and severity are declared once, in hvconf/codes.py
        assert set(row) <= example_keys | {"summary", "why", "help"}, code
        assert CODES[code].stage not in ("check", "host"), code
        assert not row["summary"][0].isupper() and not row["summary"].endswith("."), code
        assert len(row["why"]) > 80, f"{code}: `why` must say what behaviour backs the code"
    for code, row in table["check"].items():
        assert code in checks, f"[check.{code}] names no Check"
        # summary, why and help live in the Check itself: one source.
        assert set(row) <= example_keys, f"{code}: {sorted(set(row) - example_keys)}"
    for code, page in PAGES.items():
        if page.good is None or page.bad is None:
            continue  # test_*_example_* say what is missing
        assert page.good.text.startswith("#"), f"{code}: start the good example with a comment saying the fix"
        for example in (page.bad, page.good):
            for name in (example.overrides, example.host):
                assert name is None or name in dict(example.files), f"{code}: {name} is not among its files"


def test_pages_come_in_pipeline_order() -> None:
    stages = [p.stage for p in PAGES.values()]
    assert stages == sorted(stages, key=list(STAGES).index)
    assert [p.code for p in PAGES.values() if p.stage == "check"] == [c.code for c in CHECKS]
    assert [p.code for p in PAGES.values() if p.stage == "host"] == [c.code for c in HOST_CHECKS]


# ---- rendering and docs ---------------------------------------------------------------


def test_docs_are_current() -> None:
    committed = (REPO / "docs" / "diagnostics.md").read_text(encoding="utf-8")
    assert committed == explain.docs_markdown(), "regenerate: hvconf explain --format markdown > docs/diagnostics.md"
    for code in PAGES:
        assert f"\n## {code}\n" in committed and f"](#{code})" in committed, code


def test_text_page_has_every_part() -> None:
    page = PAGES["hcall-not-toggleable"]
    text = explain.to_text(page)
    assert text.startswith("hcall-not-toggleable: KVM_CAP_PPC_ENABLE_HCALL would refuse this hcall\n")
    assert "MAX_HCALL_OPCODE" in text  # the why
    assert "| # H_RTAS is controlled by RTAS tokens" in text and "enable H_RTAS" in text  # bad
    assert 'rtas { token "ibm,set-xive" 0x200a }' in text  # good
    assert text.index("Why") < text.index("Bad") < text.index("Good")
    assert "docs/diagnostics.md#hcall-not-toggleable" in text


def test_text_page_shows_side_files_and_help() -> None:
    text = explain.to_text(PAGES["abi-overrides-invalid"])
    assert "with overrides.toml:" in text and "KVM_CAP_EXIT_EPAPR_HCAL = 250" in text
    assert "build stage" in text and "not by check" in text
    text = explain.to_text(PAGES["cap-check-only"])
    assert "Help\n  remove the statement" in text
    assert "Skipped when htab-order-range fired." in explain.to_text(PAGES["htab-too-small"])


def test_markdown_page_fences_each_file() -> None:
    md = explain.to_markdown(PAGES["guest-build-failed"])
    assert md.startswith("## guest-build-failed\n\n**error** (build): ")
    assert md.count("```hv\n") == 2 and md.count("```gas\n") == 2


def test_unknown_code_suggests_the_nearest() -> None:
    with pytest.raises(explain.UnknownCode) as err:
        explain.page("hcall-not-togglable")
    assert err.value.close[0] == "hcall-not-toggleable"
    with pytest.raises(explain.UnknownCode) as err:
        explain.page("tce")
    assert err.value.close and all(c.startswith("tce-") for c in err.value.close)
    with pytest.raises(explain.UnknownCode) as err:
        explain.page("zzzz")
    assert err.value.close == [] and "did you mean" not in str(err.value)


# ---- the command ----------------------------------------------------------------------


def run(argv: list[str]) -> int:
    top = argparse.ArgumentParser(prog="hvconf")
    register(top.add_subparsers(dest="command", required=True))
    args = top.parse_args(argv)
    return int(args.func(args))


def test_explain_prints_the_page(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["explain", "memory-granularity"]) == 0
    assert capsys.readouterr().out == explain.to_text(PAGES["memory-granularity"])
    assert run(["explain", "memory-granularity", "--format", "markdown"]) == 0
    out = capsys.readouterr().out
    assert out == explain.to_markdown(PAGES["memory-granularity"]) and out in explain.docs_markdown()


def test_explain_without_a_code_lists_them_all(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["explain"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert [r.split()[0] for r in rows] == list(PAGES)
    assert run(["explain", "--format", "markdown"]) == 0
    assert capsys.readouterr().out == explain.docs_markdown()


def test_explain_unknown_code_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["explain", "unknown-kee"]) == EXIT_USAGE
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("hvconf: error: no diagnostic code 'unknown-kee'; did you mean 'unknown-key' or ")


# ---- the installed wheel ----------------------------------------------------------------


def test_the_wheel_carries_the_pages_and_their_bad_samples(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "hvconf/lint/explain.toml" in names
    assert {f"hvconf/_data/examples/invalid/{p.name}" for p in INVALID.glob("*.hv")} <= names


def test_installed_copy_explains_from_its_own_samples(installed: Path, tmp_path: Path) -> None:
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import hvconf.lint.explain as e; p = e.page('unknown-cap');"
            "print(p.bad.path); print(e.to_text(p))")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([sys.executable, "-I", "-c", code, str(installed)], cwd=tmp_path, capture_output=True,
                         text=True, timeout=60, env=env)
    assert out.returncode == 0, out.stderr
    path, text = out.stdout.split("\n", 1)
    assert path == str(installed / "hvconf" / "_data" / "examples" / "invalid" / "unknown-cap.hv")
    assert "cap KVM_CAP_PPC_OSII on vcpu 0" in text and "cap KVM_CAP_PPC_OSI on vcpu 0" in text
