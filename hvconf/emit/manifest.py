"""manifest.json: what went in (hvconf version, every input file's hash,
includes and guest sources too) and what came out (every output's hash).

No timestamps or absolute paths, so two builds of the same input are
byte-identical. Tested by tests/test_build.py.
"""

from __future__ import annotations

import hashlib
from typing import Mapping

from hvconf import __version__
from hvconf.emit import jsontext


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def render(vm: str, target: str, inputs: Mapping[str, str], outputs: Mapping[str, bytes]) -> bytes:
    """`inputs`: relative path -> sha256; `outputs`: file name -> content."""
    data = {
        "hvconf": __version__,
        "vm": vm,
        "target": target,
        "inputs": [{"path": p, "sha256": h} for p, h in sorted(inputs.items())],
        "outputs": [{"path": name, "sha256": sha256(blob)} for name, blob in sorted(outputs.items())],
    }
    return (jsontext.dumps(data) + "\n").encode()  # json.dumps(data, indent=2), faster
