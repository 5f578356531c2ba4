"""Inline suppressions through compiler.check: a trailing comment covers its
line, a comment line the next statement (a whole block); several codes;
unused, unknown, malformed and unsuppressible codes are `unused-suppression`
warnings; suppressions hold per file across includes and shared Loaders;
the comment scanner never reads a `#` inside a string.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from hvconf.syntax.comments import comments
from hvconf.compiler import build, check
from hvconf.diagnostics import Report
from hvconf.lint.explain import pages
from hvconf.formatter import format_text
from hvconf.check.suppress import UNSUPPRESSIBLE, apply
from hvconf.syntax.loader import Loader

REPO = Path(__file__).resolve().parent.parent

# Without suppressions: htab-too-small at 8:5, hcall-redundant at 10:21 and 11:21,
# kick-cpu-single-vcpu nowhere (this is ppc), rma-obsolete at 9:5.
BASE = """\
vm small {{
    arch   ppc64le
    kvm    book3s_hv
    memory 1G
    vcpus  2
    cap KVM_CAP_PPC_PAPR
{suppress_htab}
    htab   order 20{trailing}
    rma    128M
    hcalls {{
        enable H_ENTER
        enable H_REMOVE
    }}
}}
"""


def findings(tmp_path: Path, text: str, name: str = "vm.hv", **kw: object) -> list[tuple[str, int, int, str]]:
    path = tmp_path / name
    path.write_text(text)
    return [(d.code, d.span.line, d.span.col, d.message) for d in check([path], **kw).report if d.span]  # type: ignore[arg-type]


def codes_at(found: list[tuple[str, int, int, str]]) -> list[tuple[str, int, int]]:
    return [(c, line, col) for c, line, col, _ in found]


def source(suppress_htab: str = "", trailing: str = "") -> str:
    return BASE.format(suppress_htab=suppress_htab, trailing=trailing)


def test_the_base_text_has_the_findings_the_tests_suppress(tmp_path: Path) -> None:
    assert codes_at(findings(tmp_path, source())) == [
        ("htab-too-small", 8, 5), ("rma-obsolete", 9, 5), ("hcall-redundant", 11, 16), ("hcall-redundant", 12, 16)]


def test_a_trailing_comment_covers_its_line_only(tmp_path: Path) -> None:
    found = codes_at(findings(tmp_path, source(trailing="  # hvconf: ignore[htab-too-small]")))
    assert found == [("rma-obsolete", 9, 5), ("hcall-redundant", 11, 16), ("hcall-redundant", 12, 16)]


def test_a_comment_line_covers_the_next_statement(tmp_path: Path) -> None:
    text = source("    # reviewed: a small HPT on purpose\n    # hvconf: ignore[htab-too-small, rma-obsolete]")
    # rma-obsolete is on the line after the next statement: not covered, so unused
    assert codes_at(findings(tmp_path, text)) == [("unused-suppression", 8, 38), ("rma-obsolete", 10, 5),
                                                  ("hcall-redundant", 12, 16), ("hcall-redundant", 13, 16)]


def test_a_comment_line_above_a_block_covers_all_of_it(tmp_path: Path) -> None:
    text = source().replace("    hcalls {", "    # hvconf: ignore[hcall-redundant]\n    hcalls {")
    assert codes_at(findings(tmp_path, text)) == [("htab-too-small", 8, 5), ("rma-obsolete", 9, 5)]
    text = source().replace("        enable H_REMOVE", "        # hvconf: ignore[hcall-redundant]\n        enable H_REMOVE")
    assert codes_at(findings(tmp_path, text)) == [
        ("htab-too-small", 8, 5), ("rma-obsolete", 9, 5), ("hcall-redundant", 11, 16)]
    text = "# hvconf: ignore[htab-too-small, rma-obsolete, hcall-redundant]\n" + source()
    assert findings(tmp_path, text) == []


def test_errors_can_be_suppressed_and_the_build_goes_ahead(tmp_path: Path) -> None:
    text = "vm a {\n    arch x86_64\n    memory 2M\n    threads 2  # hvconf: ignore[setting-unsupported]\n}\n"
    path = tmp_path / "a.hv"
    path.write_text(text)
    assert [d.code for d in check([path], suppress=False).report.errors] == ["setting-unsupported"]
    result = build([path])
    assert result.report.diagnostics == [] and [b.vm.name for b in result.built] == ["a"]


def test_suppressions_that_hide_nothing_are_reported(tmp_path: Path) -> None:
    text = source("    # hvconf: ignore[htab-too-smal, syntax-error, kernel-missing]",
                  "  # hvconf: ignore[htab-too-small, cap-duplicate]")
    text = text.replace("    rma    128M", "    rma    128M  # hvconf: ignore[]") \
        .replace("    cap KVM_CAP_PPC_PAPR", "    cap KVM_CAP_PPC_PAPR  # hvconf: ignroe[x]") \
        .replace("    }\n}", "    }\n    # hvconf: ignore[hcall-redundant]\n}")
    found = [f for f in findings(tmp_path, text) if f[0] == "unused-suppression"]
    assert found == [
        ("unused-suppression", 6, 27, "malformed suppression: nothing is suppressed"),
        ("unused-suppression", 7, 22, "unknown code 'htab-too-smal' in suppression"),
        ("unused-suppression", 7, 37, "'syntax-error' cannot be suppressed"),
        ("unused-suppression", 7, 51, "'kernel-missing' cannot be suppressed"),
        ("unused-suppression", 8, 55, "nothing on this line reports 'cap-duplicate'"),
        ("unused-suppression", 9, 18, "suppression names no code"),
        ("unused-suppression", 14, 22, "nothing follows this suppression of 'hcall-redundant'"),
    ]
    report = check([tmp_path / "vm.hv"]).report
    helps = {(d.span.line, d.span.col): d.help for d in report if d.code == "unused-suppression" and d.span}
    assert helps[7, 22] == "did you mean 'htab-too-small'?"
    assert "not parsed" in (helps[7, 37] or "") and "after suppressions" in (helps[7, 51] or "")


def test_unused_suppression_can_be_suppressed_itself(tmp_path: Path) -> None:
    text = source(trailing="  # hvconf: ignore[htab-too-small, cap-duplicate, unused-suppression]")
    assert [c for c, *_ in findings(tmp_path, text)] == ["rma-obsolete", "hcall-redundant", "hcall-redundant"]
    text = source(trailing="  # hvconf: ignore[htab-too-small, unused-suppression]")
    assert ("unused-suppression", 8, 55, "nothing on this line reports 'unused-suppression'") \
        in findings(tmp_path, text)


def test_a_string_is_not_a_comment(tmp_path: Path) -> None:
    text = source().replace("    rma    128M", '    rma    128M\n    cmdline "# hvconf: ignore[rma-obsolete]"')
    assert ("rma-obsolete", 9, 5) in codes_at(findings(tmp_path, text))
    found = comments('a "#x \\" # y" # real "one"\n  # own\n"#" #')
    assert [(c.text, c.line, c.col, c.own_line) for c in found] == [
        ('# real "one"', 1, 15, False), ("# own", 2, 3, True), ("#", 3, 5, False)]


BASE_FILE = """\
abstract vm pseries_base {
    arch   ppc64le
    memory 1G
    cap KVM_CAP_PPC_PAPR
    # hvconf: ignore[htab-too-small]
    htab order 20
}
"""
DERIVED = """\
include "base.hv"

vm one extends pseries_base {
    vcpus  2
    htab order 20  # the same line number as in base.hv, another file
}
"""


def test_a_suppression_in_an_included_file_holds_for_findings_located_there(tmp_path: Path) -> None:
    (tmp_path / "base.hv").write_text(BASE_FILE)
    (tmp_path / "one.hv").write_text(DERIVED.replace("htab order 20  #", "htab order 21  #"))
    one = check([tmp_path / "one.hv"], suppress=False).report
    assert codes_at([(d.code, d.span.line, d.span.col, "") for d in one if d.span]) == [("htab-too-small", 5, 5)]
    assert check([tmp_path / "one.hv"]).report.diagnostics != []  # the derived file's finding stays
    (tmp_path / "two.hv").write_text("include \"base.hv\"\nvm two extends pseries_base { vcpus 2 }\n")
    two = check([tmp_path / "two.hv"], suppress=False).report
    assert [(d.code, Path(d.span.file).name) for d in two if d.span] == [("htab-too-small", "base.hv")]
    assert check([tmp_path / "two.hv"]).report.diagnostics == []


def test_a_shared_loader_still_reads_suppressions_of_files_it_parsed_before(tmp_path: Path) -> None:
    (tmp_path / "base.hv").write_text(BASE_FILE)
    (tmp_path / "two.hv").write_text("include \"base.hv\"\nvm two extends pseries_base { vcpus 2 }\n")
    (tmp_path / "three.hv").write_text("include \"base.hv\"\nvm three extends pseries_base { vcpus 4 }\n")
    loader = Loader()
    assert check([tmp_path / "two.hv"], loader=loader).report.diagnostics == []
    assert check([tmp_path / "three.hv"], loader=loader).report.diagnostics == []


def test_apply_works_on_a_merged_report_without_trees(tmp_path: Path) -> None:
    # How a caller that merges several runs uses it: check(..., suppress=False), merge, apply once.
    (tmp_path / "base.hv").write_text(BASE_FILE)
    (tmp_path / "two.hv").write_text("include \"base.hv\"\nvm two extends pseries_base { vcpus 2 }\n")
    loader, merged = Loader(), Report()
    for root in ("base.hv", "two.hv"):
        merged.extend(check([tmp_path / root], loader=loader, suppress=False).report)
    assert [d.code for d in merged.diagnostics] == ["htab-too-small"]
    assert apply(merged, merged.sources).diagnostics == []
    alone = check([tmp_path / "base.hv"]).report  # checked alone, the base's suppression hides nothing
    assert [(d.code, d.message) for d in alone] == [("unused-suppression", "nothing in the statement below "
                                                     "reports 'htab-too-small'")]


def test_the_shipped_sample_yields_two_unused_suppressions() -> None:
    report = check([REPO / "tests" / "invalid" / "unused-suppression.hv"]).report
    assert [(d.code, d.severity.value, d.span.line if d.span else 0) for d in report] == [
        ("unused-suppression", "warning", 5), ("unused-suppression", "warning", 6)]
    assert [d.help for d in report][1] == "did you mean 'pit-needs-irqchip'?"


def test_parse_and_build_codes_cannot_be_suppressed(tmp_path: Path) -> None:
    by_stage = {code: p.stage for code, p in pages().items()}
    assert set(UNSUPPRESSIBLE) <= {c for c, stage in by_stage.items() if stage == "parse"}
    build_codes = sorted(c for c, stage in by_stage.items() if stage == "build")
    assert "kernel-missing" in build_codes
    found = findings(tmp_path, f"# hvconf: ignore[{', '.join(build_codes)}]\nvm a {{ arch x86_64 memory 2M }}\n")
    assert [m for *_, m in found] == [f"'{c}' cannot be suppressed" for c in build_codes]


def _language_examples() -> list[str]:
    page = (REPO / "docs" / "language.md").read_text(encoding="utf-8")
    section = page.split("## Suppressing a finding\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^```\n(.*?)^```", section, re.M | re.S)


def test_the_examples_of_docs_language_are_clean_only_thanks_to_their_suppressions(tmp_path: Path) -> None:
    examples = _language_examples()
    assert examples
    for n, text in enumerate(examples):
        path = tmp_path / f"ex{n}.hv"
        path.write_text(text)
        assert [d.code for d in check([path]).report] == []
        assert check([path], suppress=False).report.diagnostics, "the example suppresses nothing"
        assert format_text(text) == text, "keep the example in the `hvconf fmt` layout"


def test_suppressing_every_error_of_every_sample_never_crashes_the_build(tmp_path: Path) -> None:
    shutil.copytree(REPO / "tests" / "invalid", tmp_path / "tests" / "invalid")
    shutil.copytree(REPO / "guests", tmp_path / "guests")
    built = 0
    for path in sorted((tmp_path / "tests" / "invalid").glob("*.hv")):
        errors = check([path], suppress=False).report.errors
        codes = sorted({d.code for d in errors if d.span and Path(d.span.file).resolve() == path.resolve()})
        if not codes:
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        path.write_text(re.sub(r"^(?=(abstract )?vm )", f"# hvconf: ignore[{', '.join(codes)}]\n", text, flags=re.M))
        result = build([path])  # must not raise, whatever the IR holds
        built += bool(result.built)
    assert built > 40


@pytest.mark.parametrize("code", sorted(UNSUPPRESSIBLE))
def test_a_file_that_does_not_parse_keeps_its_error(code: str, tmp_path: Path) -> None:
    text = {"syntax-error": "vm a { memory }", "unknown-keyword": "vm a { memroy 2M }",
            "invalid-utf8": 'vm a { cmdline "caf\xe9" }'}[code]
    path = tmp_path / "a.hv"
    path.write_bytes(f"# hvconf: ignore[{code}]\n{text}  # hvconf: ignore[{code}]\n".encode("latin-1"))
    assert [d.code for d in check([path]).report] == [code]
