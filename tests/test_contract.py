"""hvconf/contract.py: plan.json written and read by one module, one record per arch, each format number once.

The compiler's plans of every sample read back into the runtime's records and
write out again as the same JSON object; no other module of hvconf defines a
format number, a plan step record or a table keyed by the arch names; the
views of hvconf.abi and the runtime's host arch are the records'.
"""

from __future__ import annotations

import ast
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest

from hvconf import abi, compiler
from hvconf.contract import (
    ARCH_OF_MACHINE, ARCHES, HOST_FACTS_FORMAT, LAYOUTS, PLAN_FORMAT, PlanError, read_plan, write_plan,
)  # fmt: skip

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "hvconf"
SAMPLES = sorted(p.name for p in (REPO / "samples").glob("*.hv"))


@lru_cache(maxsize=None)
def plan_of(sample: str) -> dict[str, Any]:
    result = compiler.build([REPO / "samples" / sample])
    assert not result.report.has_errors, [d.message for d in result.report]
    [built] = result.built
    return built.plan


@pytest.mark.parametrize("sample", SAMPLES)
def test_what_the_compiler_writes_the_runtime_reads_and_writes_again(sample: str) -> None:
    raw = plan_of(sample)
    plan = read_plan(raw)
    assert raw["format"] == PLAN_FORMAT and plan.arch == raw["arch"] and len(plan.steps) == len(raw["steps"])
    again = write_plan(vm=plan.vm, target=raw["target"], arch=plan.arch, host_arch=plan.host_arch, caps=plan.caps,
                       unmerged=plan.unmerged, images=raw["images"], console=raw["console"],
                       launcher=raw["launcher"], steps=plan.steps)  # fmt: skip
    assert again == raw
    assert list(again) == list(raw)  # the documented key order too


def test_another_format_is_refused_by_name() -> None:
    raw = dict(plan_of("x86-hello.hv"), format=PLAN_FORMAT + 1)
    with pytest.raises(PlanError, match=f"format {PLAN_FORMAT + 1} is not supported"):
        read_plan(raw)


def _assignments(path: Path) -> list[tuple[str, ast.expr]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Assign):
            found += [(t.id, node.value) for t in node.targets if isinstance(t, ast.Name)]
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            found.append((node.target.id, node.value))
    return found


def test_each_format_number_is_defined_once() -> None:
    numbers = {(str(p.relative_to(PACKAGE)), name) for p in PACKAGE.rglob("*.py") for name, value in _assignments(p)
               if name.endswith("FORMAT") and isinstance(value, ast.Constant) and isinstance(value.value, int)}
    assert numbers == {("contract.py", "PLAN_FORMAT"), ("contract.py", "HOST_FACTS_FORMAT")}
    assert PLAN_FORMAT == HOST_FACTS_FORMAT == 1


def test_one_plan_step_record() -> None:
    defining = sorted(str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
                      for node in ast.walk(ast.parse(p.read_text())) if isinstance(node, ast.ClassDef)
                      and node.name == "Step")  # fmt: skip
    assert defining == ["contract.py"]


def test_no_other_table_is_keyed_by_the_arch_names() -> None:
    # the byte order, layout, encoding, machine of an arch live in its record; a dict literal keyed by three
    # or more arch names elsewhere would be a second copy of them
    names = set(ARCHES)
    tables = []
    for path in PACKAGE.rglob("*.py"):
        if path.name in ("contract.py", "numbers.py"):  # the records; numbers.py is generated from them
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Dict):
                keys = {k.value for k in node.keys if isinstance(k, ast.Constant)}
                if len(keys & names) >= 3:
                    tables.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert tables == []


def test_the_abi_views_and_machines_are_the_records() -> None:
    assert abi.ARCHES == tuple(ARCHES)
    assert abi.ABI_OF_ARCH == {a.name: a.ioc for a in ARCHES.values()}
    assert abi.LAYOUT_OF_ARCH == {a.name: a.layout for a in ARCHES.values()}
    assert set(LAYOUTS) == set(abi.LAYOUT_OF_ARCH.values())
    assert {ARCH_OF_MACHINE[a.machine] for a in ARCHES.values()} == set(ARCHES)  # one arch per machine
    assert all(a.ioc in ("generic", "powerpc") and a.byteorder in ("little", "big") for a in ARCHES.values())
