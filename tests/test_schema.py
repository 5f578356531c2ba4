"""`hvconf schema`: a valid draft 2020-12 JSON Schema of the IR that accepts the
IR of every sample, docs example and explain page (model_dump(mode="json")),
rejects what the IR rejects, carries no spans, and prints byte-stable output.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest

from hvconf.lint import explain
from hvconf.cli.docs import register
from hvconf.diagnostics import Report
from hvconf.model import ir
from hvconf.model.lower import lower_program
from hvconf.model.json_schema import DIALECT, dumps, vm_schema
from hvconf.syntax.loader import Loader

jsonschema = pytest.importorskip("jsonschema", reason="validating needs jsonschema (pip install '.[test]')")

REPO = Path(__file__).resolve().parent.parent


def _vms(path: Path) -> list[ir.Vm]:
    report = Report()
    return lower_program(Loader().load(path, report), report)


def dumped_vms(tmp: Path) -> dict[str, dict[str, Any]]:
    """label -> model_dump(mode="json") of every VM the repo's .hv inputs lower to."""
    paths = sorted((REPO / "samples").rglob("*.hv")) + sorted((REPO / "tests" / "invalid").glob("*.hv"))
    for code, page in explain.pages().items():  # the good examples, with the files they include
        if page.good is None:
            continue  # tests/test_explain.py reports it
        folder = tmp / code
        folder.mkdir()
        for name, text in page.good.files:
            (folder / name).write_text(text, encoding="utf-8")
        (folder / page.good.name).write_text(page.good.text, encoding="utf-8")
        paths.append(folder / page.good.name)
    return {f"{path.parent.name}/{path.name}:{vm.name}": vm.model_dump(mode="json")
            for path in paths for vm in _vms(path)}


@pytest.fixture(scope="module")
def validator() -> Any:
    schema = vm_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_schema_is_draft_2020_12_with_the_ir_fields() -> None:
    schema = vm_schema()
    assert schema["$schema"] == DIALECT == "https://json-schema.org/draft/2020-12/schema"
    assert set(schema["properties"]) == set(ir.Vm.model_fields) - {"span", "spans"}
    assert schema["additionalProperties"] is False
    assert "Span" not in json.dumps(schema)


def test_schema_accepts_the_ir_of_every_input(validator: Any, tmp_path: Path) -> None:
    dumped = dumped_vms(tmp_path)
    assert len(dumped) > 100  # samples, the invalid corpus and ~84 good examples
    errors = {label: [e.message for e in validator.iter_errors(data)] for label, data in dumped.items()}
    assert {label: e for label, e in errors.items() if e} == {}


@pytest.mark.parametrize("change", [
    {"vcpus": 0},  # ge=1
    {"mmu": "segmented"},  # Literal
    {"colour": "blue"},  # extra="forbid"
    {"hcalls": {"ops": [{"action": "toggle", "ref": "H_CEDE"}]}},
    {"tces": [{"name": "t", "liobn": 1, "window": 0}]},  # gt=0
    {"rtas": [{"name": "x" * 120, "token": 0x2000}]},  # kvm_rtas_token_args.name is char[120]
])
def test_schema_rejects_what_the_ir_rejects(validator: Any, change: dict[str, Any]) -> None:
    data = ir.Vm(name="v", arch="x86_64", memory=2 << 20).model_dump(mode="json") | change
    assert list(validator.iter_errors(data)), change
    with pytest.raises(ValueError):  # pydantic's ValidationError is a ValueError
        ir.Vm.model_validate(data)


def test_schema_command_prints_stable_sorted_json(capsys: pytest.CaptureFixture[str]) -> None:
    top = argparse.ArgumentParser(prog="hvconf")
    register(top.add_subparsers(dest="command", required=True))
    args = top.parse_args(["schema"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert out == dumps() == dumps()
    assert out == json.dumps(json.loads(out), indent=2, sort_keys=True) + "\n"
