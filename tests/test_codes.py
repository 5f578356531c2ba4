"""hvconf/codes.py is the one registry of diagnostic codes: nothing emits a code it
does not declare, and everything it declares is documented and has a bad sample."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from hvconf.check import ABSTRACT_CODES, CHECKS, HOST_CHECKS
from hvconf.check.suppress import REFUSALS, UNSUPPRESSIBLE
from hvconf.codes import CODES, STAGES
from hvconf.lint.explain import pages

REPO = Path(__file__).resolve().parent.parent
LOOKS_LIKE_A_CODE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)+$")
EMITTERS = {"error", "warning", "Diagnostic", "Check"}  # report.error/warning, Diagnostic(...), Check(...)
CODE_NAMES = {"code", "CODE"}  # a variable that holds the code an emitter is then given


def _first_arg(call: ast.Call) -> ast.expr | None:
    if call.args:
        return call.args[0]
    return next((k.value for k in call.keywords if k.arg == "code"), None)


def _emitter(call: ast.Call) -> str | None:
    fn = call.func
    name = fn.attr if isinstance(fn, ast.Attribute) else fn.id if isinstance(fn, ast.Name) else None
    return name if name in EMITTERS else None


def codes_in(source: str, filename: str = "<source>") -> set[tuple[str, int]]:
    """(code, line) of every literal code given to an emitter, assigned to `code`/`CODE`,
    or named in a Check's `requires`."""
    found: set[tuple[str, int]] = set()
    for node in ast.walk(ast.parse(source, filename)):
        literals: list[ast.expr] = []
        if isinstance(node, ast.Call) and _emitter(node):
            first = _first_arg(node)
            literals += [first] if first is not None else []
            literals += [e for k in node.keywords if k.arg == "requires" and isinstance(k.value, ast.Tuple)
                         for e in k.value.elts]
        elif isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id in CODE_NAMES
                                                  for t in node.targets):
            literals.append(node.value)
        found |= {(e.value, e.lineno) for e in literals
                  if isinstance(e, ast.Constant) and isinstance(e.value, str) and LOOKS_LIKE_A_CODE.match(e.value)}
    return found


def _compiler_sources() -> list[Path]:
    # the runtime reports no diagnostic codes: its errors are exit statuses (README.md#outputs)
    return [p for p in sorted((REPO / "hvconf").rglob("*.py")) if "kvm" not in p.relative_to(REPO).parts]


def test_the_walk_finds_codes_and_typos() -> None:
    sample = ('report.error("include-cylce", "x", span)\nctx.report.warning(code="unused-suppression")\n'
              'Check("unknown-cap", E, "s", f, requires=("cap-bad-args",))\nCODE = "invalid-utf8"\n'
              'parser.error(f"given {twice}")\nlog.error("two words")\n')
    assert {c for c, _ in codes_in(sample)} == {"include-cylce", "unused-suppression", "unknown-cap",
                                                "cap-bad-args", "invalid-utf8"}


def test_every_code_emitted_anywhere_is_registered() -> None:
    seen: set[str] = set()
    unregistered = []
    for path in _compiler_sources():
        for code, line in codes_in(path.read_text(encoding="utf-8"), str(path)):
            seen.add(code)
            if code not in CODES:
                unregistered.append(f"{path.relative_to(REPO)}:{line}: {code}")
    assert unregistered == [], "declare these in hvconf/codes.py (or fix the spelling)"
    assert {"syntax-error", "include-cycle", "unknown-key", "dt-unrepresentable", "unused-suppression"} <= seen


def test_every_non_literal_code_comes_from_a_named_place() -> None:
    # an emitter given an expression (not a literal) must take it from a variable named code/CODE
    # or a Check's .code, all of which the walk above or the Check list covers
    odd = []
    for path in _compiler_sources():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and _emitter(node) in {"Diagnostic", "Check"}:
                first = _first_arg(node)
                if isinstance(first, ast.Constant) or (isinstance(first, ast.Name) and first.id in CODE_NAMES) \
                        or (isinstance(first, ast.Attribute) and first.attr == "code"):
                    continue
                odd.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert odd == []


def test_every_registered_code_is_emitted_by_something() -> None:
    emitted = {c for p in _compiler_sources() if p.name != "codes.py" for c, _ in codes_in(p.read_text())}
    assert set(CODES) - emitted == set(), "a declared code that nothing emits: drop it"


def test_every_registered_code_has_a_page_and_a_bad_example() -> None:
    # tests/test_explain.py runs each example; here: the registry and the pages are one set
    known = pages()
    assert list(known) == list(CODES)
    assert all(page.bad is not None and page.good is not None for page in known.values())
    assert {re.sub(r"-\d+$", "", p.stem) for p in (REPO / "tests" / "invalid").glob("*.hv")} <= set(CODES)


def test_checks_agree_with_the_registry() -> None:
    for stage, checks in (("check", CHECKS), ("host", HOST_CHECKS)):
        for check in checks:
            declared = CODES[check.code]
            assert (declared.stage, declared.severity) == (stage, check.severity), check.code
            assert set(check.requires) <= set(CODES), check.code
    assert ABSTRACT_CODES <= set(CODES)
    assert set(UNSUPPRESSIBLE) | set(REFUSALS) <= set(CODES)
    assert {c.stage for c in CODES.values()} <= set(STAGES)


def test_the_registry_is_in_pipeline_order() -> None:
    stages = [c.stage for c in CODES.values()]
    assert stages == sorted(stages, key=list(STAGES).index)
