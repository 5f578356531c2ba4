"""`json.dumps(value, indent=2)`, byte for byte, at a fraction of its cost.

With `indent`, CPython's json module encodes in pure Python, a generator per
container (Lib/json/encoder.py, _make_iterencode): a fifth of the time of
building 10,000 VMs went there (cProfile), for plan.json and manifest.json. This walks
plain data (dict with str keys, list, str, int, bool, None, float) directly,
encodes the scalars with the json module's own functions, and renders a
repeated subtree once (hvconf/emit/memo.py); anything else goes to
json.dumps, so the output is always json.dumps's. Tested by
tests/test_emit_text.py against json.dumps.
"""

from __future__ import annotations

import json
from json.encoder import encode_basestring_ascii
from typing import Any, Callable

from hvconf.emit.memo import Memo, fingerprint

_MEMO = Memo(4096)


class _NotPlain(Exception):
    """A value this encoder does not handle: json.dumps encodes the whole value."""


def _float(value: float) -> str:
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "Infinity" if value > 0 else "-Infinity"
    return float.__repr__(value)


_SCALARS: dict[type, Callable[[Any], str]] = {
    str: encode_basestring_ascii,
    int: int.__repr__,
    bool: lambda value: "true" if value else "false",
    type(None): lambda value: "null",
    float: _float,
}


def dumps(value: Any) -> str:
    """Exactly `json.dumps(value, indent=2)`."""
    out: list[str] = []
    try:
        _container(value, 0, out)  # the whole document: not worth a memo entry
    except _NotPlain:
        return json.dumps(value, indent=2)
    return "".join(out)


def _encode(value: Any, level: int, out: list[str]) -> None:
    """`value` at nesting `level`, from the memo when an equal value was encoded there."""
    scalar = _SCALARS.get(type(value))
    if scalar is not None:
        out.append(scalar(value))
        return
    key = fingerprint(value)
    text = _MEMO.get((key, level)) if key is not None else None
    if text is None:
        parts: list[str] = []
        _container(value, level, parts)
        text = "".join(parts)
        if key is not None:
            _MEMO.put((key, level), text)
    out.append(text)


def _container(value: Any, level: int, out: list[str]) -> None:
    kind = type(value)
    if kind is not dict and kind is not list:
        scalar = _SCALARS.get(kind)
        if scalar is None:
            raise _NotPlain
        out.append(scalar(value))
    elif not value:
        out.append("{}" if kind is dict else "[]")
    elif kind is dict:
        inner = "\n" + "  " * (level + 1)
        separator = "," + inner
        out.append("{" + inner)
        first = True
        for key, item in value.items():
            if type(key) is not str:
                raise _NotPlain
            if not first:
                out.append(separator)
            first = False
            out.append(encode_basestring_ascii(key) + ": ")
            scalar = _SCALARS.get(type(item))  # inline: most items are
            if scalar is not None:
                out.append(scalar(item))
            else:
                _encode(item, level + 1, out)
        out.append("\n" + "  " * level + "}")
    else:
        inner = "\n" + "  " * (level + 1)
        separator = "," + inner
        out.append("[" + inner)
        for i, item in enumerate(value):
            if i:
                out.append(separator)
            _encode(item, level + 1, out)
        out.append("\n" + "  " * level + "]")
