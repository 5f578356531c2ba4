"""The grammar and the syntax stage: LALR without conflicts, spans on every
node, literals, and syntax errors as diagnostics with exact wording."""

from __future__ import annotations

import re

import pytest
from lark import Lark

from hvconf.diagnostics import Report, Span
from hvconf.resources import grammar_path
from hvconf.syntax import ast
from hvconf.syntax.parser import parse


def parse_ok(text: str) -> ast.SourceFile:
    report = Report()
    tree = parse(text, "t.hv", report)
    assert not report.diagnostics, [d.message for d in report]
    assert tree is not None
    return tree


def parse_error(text: str) -> tuple[str, str, str | None]:
    report = Report()
    assert parse(text, "t.hv", report) is None or report.has_errors
    [diag] = report.diagnostics
    return str(diag.span), diag.message, diag.help


def test_grammar_is_lalr_without_conflicts_or_collisions() -> None:
    # strict=True fails on shift/reduce conflicts and on terminals that collide.
    Lark(grammar_path().read_text(), parser="lalr", strict=True)


def test_every_terminal_is_named() -> None:
    text = grammar_path().read_text()
    parser = Lark(text, parser="lalr")
    anonymous = [t.name for t in parser.terminals if t.name.startswith("__ANON")]
    assert anonymous == []
    # and every quoted literal inside a rule is a named terminal's definition instead
    rules = [line for line in text.splitlines() if re.match(r"^\s*[?]?[a-z_]+:", line) or line.strip().startswith("|")]
    assert not [line for line in rules if '"' in line]


def test_vm_with_every_statement_kind() -> None:
    tree = parse_ok('''format 1
include "base.hv"
abstract vm b { arch ppc64le }
vm p extends b {
    kvm book3s_hv memory 4G vcpus 8 threads 4 htab order 25 rma none mmu hash
    hcalls { preset kernel_default enable H_SET_MODE 0x3c disable H_CEDE exit H_RANDOM enforce }
    rtas { token "ibm,set-xive" 0x200a }
    cap KVM_CAP_PPC_PAPR on vcpus
    cap KVM_CAP_PPC_OSI on vcpu 0
    cap KVM_CAP_SW_TLB on vm { mmu e500v2 sets 128 ways [1, 2] }
    tce vio0 { liobn 0x71000000 window 256M page 4K }
    hypervisor { idle reset compatible "linux,kvm" hcall_instructions [1, 2] }
    pv_features { pv_unhalt }
    irqchip kernel pit speaker_dummy console hvterm kernel "vmlinux" cmdline "console=hvc0"
    guest "g.S" mode real at 0x7c00
}''')
    fmt, inc, base, vm = tree.items
    assert isinstance(fmt, ast.FormatDecl) and fmt.version.value == 1
    assert isinstance(inc, ast.Include) and inc.path.value == "base.hv"
    assert isinstance(base, ast.VmDecl) and base.abstract and base.base is None
    assert isinstance(vm, ast.VmDecl) and vm.base is not None and vm.base.value == "b" and not vm.abstract
    kinds = [type(s).__name__ for s in vm.body]
    assert kinds.count("Setting") == 12
    assert {"Hcalls", "Rtas", "Cap", "Tce", "Hypervisor", "PvFeatures", "Guest"} <= set(kinds)
    hcalls = next(s for s in vm.body if isinstance(s, ast.Hcalls))
    assert [(op.action, [r.value for r in op.refs]) for op in hcalls.ops] == [
        ("preset", ["kernel_default"]), ("enable", ["H_SET_MODE", 0x3C]), ("disable", ["H_CEDE"]),
        ("exit", ["H_RANDOM"]), ("enforce", [])]
    caps = [s for s in vm.body if isinstance(s, ast.Cap)]
    assert [(c.target.kind if c.target else None) for c in caps] == ["vcpus", "vcpu", "vm"]
    assert caps[1].target.index.value == 0
    assert isinstance(caps[2].args[2].value, ast.List)


def test_spans_point_at_the_source() -> None:
    tree = parse_ok('vm a {\n    memory 64M\n    tce t { liobn 1 window 4K }\n}\n')
    vm = tree.items[0]
    memory, tce = vm.body
    assert (memory.span.line, memory.span.col, memory.span.end_col) == (2, 5, 15)
    assert (memory.values[0].span.col, memory.values[0].span.end_col) == (12, 15)
    assert (tce.span.line, tce.items[1].key.span.col) == (3, 21)
    assert (vm.span.line, vm.span.end_line) == (1, 4)


@pytest.mark.parametrize("text, value", [
    ("4K", 4096), ("256M", 256 << 20), ("4G", 4 << 30), ("1T", 1 << 40), ("2p", 2 << 50),
    ("0x7c00", 0x7C00), ("0b101", 5), ("1_000", 1000), ("0x71_000_000", 0x71000000), ("0", 0),
])
def test_number_literals(text: str, value: int) -> None:
    vm = parse_ok(f"vm a {{ memory {text} }}").items[0]
    assert vm.body[0].values[0].value == value


def test_string_escapes() -> None:
    vm = parse_ok(r'vm a { cmdline "a\"b\\c\n\t\x41" }').items[0]
    assert vm.body[0].values[0].value == 'a"b\\c\n\tA'


def test_keywords_are_reserved_only_where_expected() -> None:
    tree = parse_ok("vm memory { hcalls { enable exit } }")
    vm = tree.items[0]
    assert vm.name.value == "memory"


@pytest.mark.parametrize("text, where, message, help_", [
    ("vm a { memroy 4G }", "t.hv:1:8", "unknown keyword 'memroy'", "did you mean 'memory'?"),
    ("vm a { frobnicate 1 }", "t.hv:1:8", "unknown statement 'frobnicate'", None),
    ("vm a { arch x86_64 ", "t.hv:1:19", "unexpected end of file, expected a statement or '}'", None),
    ('vm a { vcpus "x" }', "t.hv:1:14", "expected a number, found string '\"x\"'", None),
    ('vm a { kernel "abc }', "t.hv:1:15", "unterminated string", 'strings end on the same line with \'"\''),
    ("vm a { memory 4Gb }", "t.hv:1:15", "invalid number '4Gb'", None),
    ("vm a { cap X on vcpu }", "t.hv:1:22", "expected a number, found '}'", None),
    ("vm ../x { }", "t.hv:1:4", "unexpected character '.'", None),
])
def test_syntax_errors_are_diagnostics(text: str, where: str, message: str, help_: str | None) -> None:
    got_where, got_message, got_help = parse_error(text)
    assert (got_where, got_message) == (where, message)
    if help_ is not None:
        assert got_help == help_


def test_statement_list_in_help() -> None:
    _, _, help_ = parse_error("vm a { frobnicate 1 }")
    assert help_ is not None and "memory" in help_ and "hcalls" in help_


def test_huge_number_is_a_diagnostic_not_a_crash() -> None:
    report = Report()
    parse("vm a { memory " + "9" * 5000 + " }", "t.hv", report)
    assert report.codes() == ["number-too-large"]


def test_unknown_escape_is_reported() -> None:
    report = Report()
    parse(r'vm a { cmdline "\q" }', "t.hv", report)
    assert report.codes() == ["bad-escape"]


def test_ast_nodes_are_immutable_values_that_survive_pickling():
    """Nodes are hvconf.record.Records with explicit __init__s: what frozen dataclasses gave."""
    import pickle

    here = Span("a.hv", 1, 1, 1, 2)
    one, same, other = ast.Name("x", here), ast.Name("x", here), ast.Str("x", here)
    assert one == same and hash(one) == hash(same) and one != other  # same fields, another kind
    assert repr(one) == f"Name(value='x', span={here!r})"
    with pytest.raises(AttributeError, match="immutable Name"):
        one.value = "y"  # type: ignore[misc]
    with pytest.raises(TypeError):
        ast.Name("x")  # type: ignore[call-arg]
    tree = ast.List((ast.Int(1, "1", here), one), here)
    assert pickle.loads(pickle.dumps(tree)) == tree  # `check --jobs` sends trees between processes
