"""The value-type rule of docs/architecture.md#value-types, held everywhere in hvconf/.

pydantic where data is validated at entry, hvconf.record.Record for immutable
values, a plain class with __slots__ for values filled in as they are used, and
no dataclasses: each @dataclass compiles its methods with `exec` at import.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
from collections.abc import Iterator
from pathlib import Path

import pytest

import hvconf
from hvconf.record import Record

PACKAGE = Path(hvconf.__file__).resolve().parent


def _imported(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name.partition(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.partition(".")[0])
    return found


def test_no_module_imports_dataclasses() -> None:
    offenders = [str(p.relative_to(PACKAGE)) for p in sorted(PACKAGE.rglob("*.py")) if "dataclasses" in _imported(p)]
    assert offenders == []


def _records() -> Iterator[type[Record]]:
    for info in pkgutil.walk_packages(hvconf.__path__, "hvconf."):
        if not info.name.endswith("__main__"):  # running it is the command line
            importlib.import_module(info.name)
    todo = [Record]
    while todo:
        for sub in todo.pop().__subclasses__():
            todo.append(sub)
            if sub.__module__.startswith("hvconf."):
                yield sub


@pytest.mark.parametrize("record", sorted(_records(), key=lambda c: (c.__module__, c.__qualname__)),
                         ids=lambda c: f"{c.__module__}.{c.__qualname__}")
def test_record_fields_are_its_slots(record: type[Record]) -> None:
    # A Record without its own __slots__ has a __dict__ and no constructor arguments; an annotated
    # field missing from __slots__ is one the constructor never takes.
    own = record.__dict__.get("__slots__")
    assert own is not None, "a Record subclass lists its fields in __slots__"
    annotations = record.__dict__.get("__annotations__", {})
    annotated = {name for name, kind in annotations.items() if "ClassVar" not in str(kind)}
    assert not annotated or annotated == set(own)
