"""`hvconf schema NAME`: each schema is a valid draft 2020-12 schema and accepts the real
outputs it describes: plan.json and manifest.json of every sample built, host facts saved by
`hvconf host` here and the shipped ones, `check --format json` of every bad sample. The hand
written ones are closed, so a writer adding a field fails here until the schema has it."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from helpers import hvconf

from hvconf.lint.schemas import SCHEMAS, dumps

jsonschema = pytest.importorskip("jsonschema", reason="validating needs jsonschema (pip install '.[test]')")

REPO = Path(__file__).resolve().parent.parent
SAMPLES = sorted((REPO / "samples").glob("*.hv"))


def validator(name: str) -> Any:
    schema = json.loads(hvconf("schema", name).stdout)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_the_command_prints_each_schema_stably() -> None:
    for name in SCHEMAS:
        assert hvconf("schema", name).stdout == dumps(name)
    assert hvconf("schema").stdout == dumps("vm")
    assert hvconf("schema", "nope").returncode == 2


@pytest.mark.parametrize("name", ["plan", "manifest"])
def test_every_built_sample_matches(built: Path, name: str) -> None:
    check = validator(name)
    files = sorted(built.glob(f"*/{name}.json"))
    assert len(files) == len({p.parent.name for p in built.glob("*/plan.json")}) >= 7
    for path in files:
        errors = [e.message for e in check.iter_errors(json.loads(path.read_text()))]
        assert errors == [], path


def test_the_plan_schema_is_closed(built: Path) -> None:
    check = validator("plan")
    plan = json.loads((built / "x86-hello" / "plan.json").read_text())
    assert check.is_valid(plan)
    for bad in ({**plan, "extra": 1}, {**plan, "format": 2}, {**plan, "steps": [{**plan["steps"][0], "fd": "vcpu"}]}):
        assert not check.is_valid(bad)


def test_host_facts_match(tmp_path: Path) -> None:
    check = validator("host-facts")
    shipped = sorted((REPO / "tests" / "data" / "hosts").glob("*.json"))
    assert shipped
    for path in shipped:
        assert [e.message for e in check.iter_errors(json.loads(path.read_text()))] == [], path
    if os.path.exists("/dev/kvm"):
        probed = hvconf("host", "--format", "json")
        if probed.returncode == 0:
            assert [e.message for e in check.iter_errors(json.loads(probed.stdout))] == []
    assert not check.is_valid({"format": 1})


def test_json_diagnostics_match(tmp_path: Path) -> None:
    check = validator("diagnostics")
    done = hvconf("check", "--format", "json", "tests/invalid")
    found = json.loads(done.stdout)
    assert len(found) > 100 and any(d["fix"] for d in found) and any(d["notes"] for d in found)
    assert [e.message for e in check.iter_errors(found)] == []
    assert not check.is_valid([{**found[0], "severity": "fatal"}])
