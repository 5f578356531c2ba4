"""manifest.json: what went in (hvconf version, every input file's hash,
includes and guest sources too) and what came out (every output's hash).

No timestamps or absolute paths, so two builds of the same input are
byte-identical. Tested by tests/test_build.py.
"""

from __future__ import annotations

import hashlib
from json.encoder import encode_basestring_ascii
from typing import Any, Mapping

from hvconf import __version__


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def render(vm: str, target: str, inputs: Mapping[str, str], outputs: Mapping[str, bytes]) -> bytes:
    """`inputs`: relative path -> sha256; `outputs`: file name -> content. Exactly
    json.dumps(data, indent=2) + newline (see `data`), written out directly: the layout is
    fixed, and encoding it as a tree was a third of the instructions of a VM's manifest."""
    head = f'{{\n  "hvconf": {_text(__version__)},\n  "vm": {_text(vm)},\n  "target": {_text(target)},\n'
    rows = [(p, h) for p, h in sorted(inputs.items())], [(n, sha256(b)) for n, b in sorted(outputs.items())]
    return (head + f'  "inputs": {_files(rows[0])},\n  "outputs": {_files(rows[1])}\n}}\n').encode()


def data(vm: str, target: str, inputs: Mapping[str, str], outputs: Mapping[str, bytes]) -> dict[str, Any]:
    """The object `render` writes (what tests/test_build.py holds it to)."""
    return {
        "hvconf": __version__,
        "vm": vm,
        "target": target,
        "inputs": [{"path": p, "sha256": h} for p, h in sorted(inputs.items())],
        "outputs": [{"path": name, "sha256": sha256(blob)} for name, blob in sorted(outputs.items())],
    }


def _text(value: str) -> str:
    return encode_basestring_ascii(value)  # the json module's own string encoder (ensure_ascii)


def _files(rows: list[tuple[str, str]]) -> str:
    """A list of {"path", "sha256"} objects at the manifest's second level, as json.dumps(indent=2)."""
    if not rows:
        return "[]"
    items = ",\n".join(f'    {{\n      "path": {_text(path)},\n      "sha256": {_text(digest)}\n    }}'
                        for path, digest in rows)
    return f"[\n{items}\n  ]"
