"""Where hvconf finds its data: the grammar, the target knowledge base and
the bad samples `hvconf explain` shows.

In a wheel they are packaged as hvconf/_data/{grammar,targets,examples/invalid};
in a source checkout they sit in the repo (grammar/, targets/, tests/invalid/).
This is the only module that knows both places. Tested by tests/test_resources.py.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


@lru_cache(maxsize=None)
def _data_dir(name: str) -> Path:
    packaged = _PACKAGE / "_data" / name
    if packaged.is_dir():
        return packaged
    checkout = _PACKAGE.parent / name
    if checkout.is_dir():
        return checkout
    raise FileNotFoundError(f"hvconf data folder {name!r} is missing from {packaged} and {checkout}")


def grammar_path() -> Path:
    """The path of grammar/hvconf.lark."""
    return _data_dir("grammar") / "hvconf.lark"


def targets_dir() -> Path:
    """The folder holding one sub-folder per target (targets/<name>/)."""
    return _data_dir("targets")


def invalid_samples_dir() -> Path:
    """tests/invalid/: one bad sample per diagnostic code (hvconf/_data/examples/invalid in a wheel)."""
    for folder in (_PACKAGE / "_data" / "examples" / "invalid", _PACKAGE.parent / "tests" / "invalid"):
        if folder.is_dir():
            return folder
    raise FileNotFoundError(f"hvconf's bad samples are missing from {_PACKAGE / '_data'} and "
                            f"{_PACKAGE.parent / 'tests'}")
