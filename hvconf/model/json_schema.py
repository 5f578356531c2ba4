"""`hvconf schema`: the JSON Schema (draft 2020-12) of the IR, for editors and
other tools that read `ir.Vm.model_dump(mode="json")`.

Generated from the pydantic models in hvconf/model/ir.py, so it cannot drift
from them; spans are excluded (serialization mode), keys are sorted so the
output is byte-stable. Never reads a definition. Tested by tests/test_schema.py.
"""

from __future__ import annotations

import json
from typing import Any

DIALECT = "https://json-schema.org/draft/2020-12/schema"


def vm_schema() -> dict[str, Any]:
    """The schema of one lowered VM, as pydantic emits it plus the dialect and a title."""
    from hvconf.model import ir

    ir.complete()
    schema = ir.Vm.model_json_schema(mode="serialization")
    schema["$schema"] = DIALECT
    schema["title"] = "hvconf VM"
    schema["description"] = ("One VM of a .hv file after `extends` is resolved and defaults are filled in "
                             "(hvconf's IR, hvconf/model/ir.py), as model_dump(mode='json') writes it.")
    return schema


def dumps() -> str:
    """`hvconf schema` output: indented, keys sorted, one final newline."""
    return json.dumps(vm_schema(), indent=2, sort_keys=True) + "\n"


__all__ = ["DIALECT", "dumps", "vm_schema"]
