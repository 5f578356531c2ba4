"""`hvconf schema NAME`: JSON Schemas (draft 2020-12) of the files other tools consume.

- `vm`: one lowered VM (hvconf/model/json_schema.py, generated from the IR's pydantic models);
- `plan`: plan.json (hvconf/contract.py write_plan; README.md#outputs);
- `manifest`: manifest.json (hvconf/emit/manifest.py);
- `host-facts`: saved host facts, `hvconf host --format json` (generated from
  hvconf/model/host.py HostFacts, which reads them, so it cannot drift);
- `diagnostics`: `hvconf check --format json` (hvconf/lint/formats/json.py, docs/ci.md).

plan, manifest and diagnostics are written here by hand and closed (no property they do not
list), so tests/test_schemas.py, which validates real outputs of every sample against them,
fails when a writer adds a field the schema does not describe. Output is byte-stable.
"""

from __future__ import annotations

import json
from typing import Any, Callable

DIALECT = "https://json-schema.org/draft/2020-12/schema"

_INT = {"type": "integer"}
_STR = {"type": "string"}
_SHA256 = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
_SOURCE = {"type": ["string", "null"], "description": "`file:line:col` of the definition behind it, relative to "
                                                      "the root file's folder"}


def _closed(properties: dict[str, Any], required: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    return {"type": "object", "properties": properties,
            "required": sorted(properties) if required is None else required,
            "additionalProperties": False, **extra}


def plan_schema() -> dict[str, Any]:
    from hvconf.contract import CONSOLE_KINDS, IMAGE_FORMATS, PLAN_FORMAT

    cap = _closed({"cap": _STR, "cap_nr": {"type": ["integer", "null"],
                                          "description": "null: a cap of the unmerged ePAPR proposal"},
                   "source": _SOURCE})
    image = _closed({"name": _STR, "path": {"type": ["string", "null"],
                                            "description": "null: not part of the build (a missing kernel)"},
                     "guest_phys_addr": _INT, "size": _INT, "sha256": _SHA256, "hint": _STR, "source": _SOURCE,
                     "format": {"enum": list(IMAGE_FORMATS)}},
                    ["name", "path", "guest_phys_addr"])
    console = {"oneOf": [{"type": "null"},
                         _closed({"kind": {"enum": list(CONSOLE_KINDS)}, "port": _INT, "reg": _INT}, ["kind"])]}
    step = _closed({"fd": {"type": "string", "pattern": "^(system|vm|vcpu:(0|[1-9][0-9]*))$"},
                    "ioctl": {"type": "string", "pattern": "^KVM_[A-Z0-9_]+$"},
                    "request": {"type": "integer", "minimum": 0},
                    "args": {"type": "object", "description": "the ioctl's typed arguments"},
                    "source": _SOURCE})
    return {
        "$schema": DIALECT, "title": "hvconf plan.json",
        "description": "The KVM ioctl plan of one VM: what the launcher executes (README.md#outputs).",
        **_closed({
            "format": {"const": PLAN_FORMAT}, "vm": _STR, "target": _STR, "arch": _STR,
            "abi": {"type": "string", "description": "the arch's _IOC encoding"},
            "requires": _closed({"host_arch": _STR, "caps": {"type": "array", "items": cap},
                                 "unmerged": {"type": "array", "items": _STR}}),
            "images": {"type": "array", "items": image},
            "console": console,
            "launcher": {"type": "object", "description": "what the arch family's devices serve, by family"},
            "steps": {"type": "array", "items": step},
        }),
    }


def manifest_schema() -> dict[str, Any]:
    entry = _closed({"path": _STR, "sha256": _SHA256})
    return {
        "$schema": DIALECT, "title": "hvconf manifest.json",
        "description": "What went into one VM's outputs and what came out, by hash; no timestamps.",
        **_closed({"hvconf": {"type": "string", "description": "the version that built it"}, "vm": _STR,
                   "target": _STR, "inputs": {"type": "array", "items": entry},
                   "outputs": {"type": "array", "items": entry}}),
    }


def diagnostics_schema() -> dict[str, Any]:
    location = _closed({"file": _STR, "line": _INT, "column": _INT, "end_line": _INT, "end_column": _INT})
    nullable = {"type": ["integer", "null"]}
    fix = {"oneOf": [{"type": "null"}, _closed({
        "message": _STR,
        "edits": {"type": "array", "items": _closed({"location": location, "content": _STR})}})]}
    diagnostic = _closed({
        "code": {"type": "string", "pattern": "^[a-z0-9]+(-[a-z0-9]+)+$"},
        "severity": {"enum": ["error", "warning", "note"]}, "message": _STR,
        "file": {"type": ["string", "null"]}, "line": nullable, "column": nullable, "end_line": nullable,
        "end_column": nullable,
        "notes": {"type": "array", "items": _closed({"message": _STR,
                                                     "location": {"oneOf": [{"type": "null"}, location]}})},
        "help": {"type": ["string", "null"]}, "fix": fix})
    return {"$schema": DIALECT, "title": "hvconf check --format json",
            "description": "One object per diagnostic, in report order (docs/ci.md#json). Fields may be added "
                           "in later versions, none renamed or removed.",
            "type": "array", "items": diagnostic}


def host_facts_schema() -> dict[str, Any]:
    from hvconf.model.host import HostFacts

    schema = HostFacts.model_json_schema(mode="validation")
    schema["$schema"] = DIALECT
    schema["title"] = "hvconf host facts"
    schema["description"] = ("What one host's KVM offers, as `hvconf host --format json` saves it and "
                             "`hvconf check --host-facts FILE` reads it (docs/host.md).")
    return schema


def _vm_schema() -> dict[str, Any]:
    from hvconf.model.json_schema import vm_schema

    return vm_schema()


SCHEMAS: dict[str, Callable[[], dict[str, Any]]] = {
    "vm": _vm_schema,
    "plan": plan_schema,
    "manifest": manifest_schema,
    "host-facts": host_facts_schema,
    "diagnostics": diagnostics_schema,
}


def dumps(name: str) -> str:
    """The schema `name`, indented, keys sorted, one final newline."""
    return json.dumps(SCHEMAS[name](), indent=2, sort_keys=True) + "\n"
