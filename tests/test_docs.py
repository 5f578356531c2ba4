"""Keeps docs/language.md true: every ```hv example parses, lowers, passes
hvconf.check with no unexpected warning and builds; every keyword of
grammar/hvconf.lark is documented and used in an example; the "Construct →
targets" table says `error` exactly where `setting-unsupported` refuses a
construct. Never edits the page.

Leading comment lines of an example say how to compile it:
  # fragment: TARGET   statements of one VM of TARGET (a targets/ folder name)
  # file: PATH         the block is written as PATH, so other blocks can need it
  # needs: PATH ...    written first: a `# file:` block of the page, else the repo's PATH
  # warns: CODE ...    check warnings the example is meant to show
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from hvconf.diagnostics import Report
from hvconf.model import ir
from hvconf.model.lower import lower_program
from hvconf.model.target import load_target, target_names
from hvconf.lint.render import render_report
from hvconf.syntax.loader import Loader

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "language.md"
GRAMMAR = REPO / "grammar" / "hvconf.lark"

_BLOCK = re.compile(r"^```hv[ \t]*\n(.*?)^```", re.M | re.S)
_DIRECTIVE = re.compile(r"#\s*(fragment|file|needs|warns):\s*(.*?)\s*$")
# Keyword terminals are the grammar's `NAME: "word"` lines.
_KEYWORD = re.compile(r'^([A-Z_]+)(?:\.\d+)?:\s*/([a-z_]+)\(\?!', re.M)
# Strings and comments first, so words inside them are not taken for code.
_TOKEN = re.compile(r'"(?:[^"\\\n]|\\.)*"|#[^\n]*|([A-Za-z_][A-Za-z0-9_\-]*)')

# The smallest VM of each target that the checks accept; a fragment extends it,
# so the fragment may override any of these settings without a duplicate warning.
BASES = {
    "x86_64": "arch x86_64  memory 16M",
    "ppc64-spapr": "arch ppc64le  memory 256M  cap KVM_CAP_PPC_PAPR",
    "ppc-e500": "arch ppc-e500  memory 64M  cap KVM_CAP_SW_TLB { mmu e500v2 }",
    "s390x": "arch s390x  memory 16M",
}
FRAGMENT_VM = "doc_example"


@dataclass(frozen=True)
class Example:
    line: int  # of the opening fence in docs/language.md
    text: str
    fragment: str | None
    file: str | None
    needs: tuple[str, ...]
    warns: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return f"language.md:{self.line}" + (f" ({self.fragment} fragment)" if self.fragment else "")

    def source(self) -> str:
        """The text written to disk: the block itself, or the fragment inside a VM of its target."""
        if self.fragment is None:
            return self.text
        return (f"abstract vm doc_base {{ {BASES[self.fragment]} }}\n"
                f"vm {FRAGMENT_VM} extends doc_base {{\n{self.text}}}\n")


def parse_examples(markdown: str) -> list[Example]:
    out = []
    for match in _BLOCK.finditer(markdown):
        body = match.group(1)
        found: dict[str, str] = {}
        for row in body.splitlines():
            if row.strip() and not row.lstrip().startswith("#"):
                break  # directives live in the leading comment lines only
            directive = _DIRECTIVE.match(row.strip())
            if directive:
                found[directive.group(1)] = directive.group(2)
        out.append(Example(markdown.count("\n", 0, match.start()) + 1, body, found.get("fragment"),
                           found.get("file"), tuple(found.get("needs", "").split()),
                           tuple(found.get("warns", "").split())))
    return out


EXAMPLES = parse_examples(DOC.read_text(encoding="utf-8"))
BY_FILE = {e.file: e for e in EXAMPLES if e.file}


def _write_needs(example: Example, root: Path, seen: set[str]) -> None:
    for need in example.needs:
        if need in seen:
            continue
        seen.add(need)
        dest = root / need
        dest.parent.mkdir(parents=True, exist_ok=True)
        if need in BY_FILE:
            _write_needs(BY_FILE[need], root, seen)
            dest.write_text(BY_FILE[need].source(), encoding="utf-8")
        elif (REPO / need).is_file():
            shutil.copyfile(REPO / need, dest)
        else:
            pytest.fail(f"{example.label}: `# needs: {need}` is neither a `# file:` block of the page "
                        "nor a file of the repository")


def compile_example(example: Example, root: Path) -> tuple[Report, list[ir.Vm]]:
    """Write the example (and what it needs) under `root`, then load and lower it."""
    if example.fragment is not None and example.fragment not in BASES:
        pytest.fail(f"{example.label}: unknown fragment target {example.fragment!r} (known: {', '.join(BASES)})")
    _write_needs(example, root, set())
    path = root / (example.file or "example.hv")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(example.source(), encoding="utf-8")
    report = Report()
    program = Loader().load(path, report)
    return report, lower_program(program, report)


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: f"line{e.line}")
def test_example_parses_and_lowers(example: Example, tmp_path: Path) -> None:
    report, vms = compile_example(example, tmp_path)
    assert not report.has_errors, f"{example.label}\n{render_report(report)}"
    assert vms, f"{example.label}: the example declares no VM"
    if example.fragment is not None:
        vm = next(v for v in vms if v.name == FRAGMENT_VM)
        assert vm.target == example.fragment, f"{example.label}: the fragment made a {vm.target} VM"


@pytest.fixture(params=EXAMPLES, ids=lambda e: f"line{e.line}")
def example_path(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Example, Path]:
    """An example written under tmp_path (with what it needs), and the path of its root file."""
    example: Example = request.param
    compile_example(example, tmp_path)
    return example, tmp_path / (example.file or "example.hv")


def _run_checks():  # -> the checker's entry point, or None while it is being written
    try:
        from hvconf.check import run_checks
    except ImportError:
        return None
    return run_checks


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: f"line{e.line}")
def test_example_passes_checks(example: Example, tmp_path: Path) -> None:
    run_checks = _run_checks()
    if run_checks is None:
        pytest.skip("hvconf.check.run_checks does not exist yet; examples are only parsed and lowered")
    report, vms = compile_example(example, tmp_path)
    for vm in vms:
        if vm.target is not None:  # an abstract VM without `arch` has nothing to check against
            run_checks(vm, load_target(vm.target), report)
    assert not report.has_errors, f"{example.label}\n{render_report(report)}"
    unexpected = sorted({d.code for d in report.warnings} - set(example.warns))
    assert not unexpected, f"{example.label}: add `# warns: {' '.join(unexpected)}` or fix it\n{render_report(report)}"
    unseen = sorted(set(example.warns) - {d.code for d in report.warnings})
    assert not unseen, f"{example.label}: `# warns:` lists {', '.join(unseen)}, which did not fire"


def test_example_builds(example_path: tuple[Example, Path]) -> None:
    if _run_checks() is None:
        pytest.skip("hvconf.compiler.build needs hvconf.check.run_checks, which does not exist yet")
    from hvconf.compiler import build

    example, path = example_path
    result = build([path])
    assert not result.report.has_errors, f"{example.label}\n{render_report(result.report)}"
    concrete = sorted(vm.name for vm in result.vms if not vm.abstract)
    assert sorted(b.vm.name for b in result.built) == concrete, f"{example.label}: not every VM was built"


def test_page_has_examples_of_every_kind() -> None:
    fragments = {e.fragment for e in EXAMPLES if e.fragment}
    assert len(EXAMPLES) >= 20, "docs/language.md lost its ```hv examples (or the fence pattern changed)"
    assert fragments == set(BASES), f"fragments exist for {sorted(fragments)}, bases for {sorted(BASES)}"
    assert any(e.needs for e in EXAMPLES) and BY_FILE, "the include example (`# file:` / `# needs:`) is gone"


def test_every_target_has_a_fragment_base() -> None:
    assert set(BASES) == set(target_names()), "add the new target to BASES and give it examples"


def grammar_keywords() -> dict[str, str]:
    """Keyword terminal name -> the word it matches."""
    return dict(_KEYWORD.findall(GRAMMAR.read_text(encoding="utf-8")))


def test_grammar_keywords_are_found() -> None:
    keywords = grammar_keywords()
    # Guards the pattern: a few that must be there, and no punctuation terminal.
    assert {"VM": "vm", "PV_FEATURES": "pv_features", "HTAB": "htab", "ON": "on"}.items() <= keywords.items()
    assert "LBRACE" not in keywords


def test_every_keyword_is_documented() -> None:
    text = DOC.read_text(encoding="utf-8")
    missing = sorted(word for word in grammar_keywords().values() if f"`{word}`" not in text)
    assert not missing, f"keywords never shown as `code` in docs/language.md: {', '.join(missing)}"


def _code_words(text: str) -> set[str]:
    return {m.group(1) for m in _TOKEN.finditer(text) if m.group(1)}


def test_every_keyword_is_used_in_an_example() -> None:
    used = set().union(*(_code_words(e.text) for e in EXAMPLES))
    missing = sorted(word for word in grammar_keywords().values() if word not in used)
    assert not missing, f"keywords no ```hv example uses: {', '.join(missing)}"


def test_directives_are_read_from_leading_comments_only() -> None:
    page = ("```hv\n# needs: a.hv b.hv\n# fragment: x86_64\n# warns: w-1 w-2\nvcpus 2\n# file: late.hv\n```\n"
            "text\n```hv\n# file: base.hv\nvm b { }\n```\n")
    first, second = parse_examples(page)
    assert (first.line, first.fragment, first.file, first.needs) == (1, "x86_64", None, ("a.hv", "b.hv"))
    assert first.warns == ("w-1", "w-2")
    assert (second.line, second.fragment, second.file, second.needs, second.warns) == (9, None, "base.hv", (), ())
    assert second.text == "# file: base.hv\nvm b { }\n"


# ---- the "Construct → targets" table against the checker ---------------------------------

# A statement of each table row that `setting-unsupported` decides, written as a fragment.
CONSTRUCT_STATEMENTS = {
    "`threads`": ["vcpus 2  threads 2"],
    "`htab`": ["htab auto"],
    "`rma`": ["rma none"],
    "`mmu`": ["mmu hash"],
    "`hcalls` `enforce`": ["hcalls { enforce }"],
    "`rtas`": ['rtas { token "power-off" 0x2003 }'],
    "`tce`": ["tce vio0 { liobn 0x71000000  window 256M }"],
    "`hypervisor`": ["hypervisor { idle }"],
    "`pv_features`": ["pv_features { pv_eoi }"],
    "`irqchip`": ["irqchip none"],
    "`pit`": ["pit on"],
    "`kernel`": ['kernel "vmlinux"'],
    "`initrd`": ['initrd "initrd.img"'],
    "`cmdline`": ['cmdline "console=hvc0"'],
    "`initrd`": ['initrd "initrd.img"'],
    "`guest`": ['guest "guest.bin"'],
}


def construct_table() -> dict[str, dict[str, str]]:
    """construct cell -> {target: cell} of the page's "Construct → targets" table."""
    text = DOC.read_text(encoding="utf-8").split("## Construct → targets", 1)[1]
    rows = [line for line in text.splitlines() if line.startswith("|")]
    split = [[cell.strip() for cell in row.strip("|").split("|")] for row in rows]
    header, body = split[0], split[2:]
    return {row[0]: dict(zip(header[1:], row[1:])) for row in body}


def _unsupported(target: str, statement: str, tmp_path: Path) -> bool:
    from hvconf.compiler import check

    path = tmp_path / f"{target}.hv"
    path.write_text(f"vm doc_example {{\n{BASES[target]}\n{statement}\n}}\n", encoding="utf-8")
    return any(d.code == "setting-unsupported" for d in check([path]).report)


def test_construct_table_lists_the_rows_it_is_checked_by() -> None:
    table = construct_table()
    assert set(table[next(iter(table))]) == set(BASES), "the table's columns are no longer the targets"
    missing = sorted(set(CONSTRUCT_STATEMENTS) - set(table))
    assert not missing, f"rows gone from the table (or renamed): {missing}"


@pytest.mark.parametrize("construct", sorted(CONSTRUCT_STATEMENTS))
def test_construct_table_says_error_exactly_where_the_checker_refuses(construct: str, tmp_path: Path) -> None:
    """"error" in a cell means `setting-unsupported`; any other word (yes, ignored, ...) means accepted."""
    for target, cell in construct_table()[construct].items():
        for statement in CONSTRUCT_STATEMENTS[construct]:
            refused = _unsupported(target, statement, tmp_path)
            assert refused == cell.startswith("error"), \
                f"docs/language.md says {construct} on {target} is {cell!r}, but `{statement}` is " \
                f"{'refused' if refused else 'accepted'}"
