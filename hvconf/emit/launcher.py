"""Generate launch.py: a thin script that embeds the plan and calls hvconf.kvm.

jinja2 with StrictUndefined and no autoescape (the output is Python, not
HTML); the only value interpolated is the plan rendered as pprint would
(`python_literal`), so every user-provided string reaches the script as a
Python literal, never as code. The template is rendered once per process,
around a marker the plan then replaces. Building 10,000 VMs spent 38% of its
time in pprint and 3% in jinja2's set-up per render (cProfile); the literal
is now laid out here, with a memo of what VMs share (hvconf/emit/memo.py).
jinja2 is imported lazily: linting never needs it.
Tested by tests/test_launcher.py and tests/test_emit_text.py.
"""

from __future__ import annotations

import pprint
from functools import lru_cache
from typing import Any

from hvconf import __version__
from hvconf.emit.memo import Memo, fingerprint

_WIDTH = 100  # pprint's width for the plan literal
_MEMO = Memo(4096)
_SCALARS = frozenset({str, int, bool, float, type(None)})  # their pprint form is their repr


@lru_cache(maxsize=1)
def _template() -> tuple[str, str]:
    """launch.py before and after the plan literal."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader("hvconf.emit", "templates"),
                             undefined=jinja2.StrictUndefined, autoescape=False,
                             keep_trailing_newline=True)
    marker = "\0plan\0"  # no template text holds a NUL
    head, *tail = env.get_template("launch.py.j2").render(version=__version__, plan_literal=marker).split(marker)
    if len(tail) != 1:
        raise AssertionError("launch.py.j2 must show plan_literal exactly once")
    return head, tail[0]


class _NotPlain(Exception):
    """A value this printer does not lay out: pprint.pformat prints the whole value."""


def python_literal(value: Any) -> str:
    """A Python expression that evaluates to `value` (plain data only: a tree, no cycles);
    exactly pprint.pformat(value, indent=1, width=100, sort_dicts=False).

    pprint writes a value's repr when it fits in what is left of the line, and otherwise
    one item per line, each laid out the same way (Lib/pprint.py, PrettyPrinter._format,
    _pprint_dict, _pprint_list; indent 1 adds no padding). For dicts, lists and scalars,
    its repr is the builtin repr; strings it would split across lines, and any other
    type, go to pprint itself."""
    out: list[str] = []
    try:
        _layout(value, 0, 0, out)  # the whole document: not worth a memo entry
    except _NotPlain:
        return pprint.pformat(value, indent=1, width=_WIDTH, sort_dicts=False)
    return "".join(out)


def _format(value: Any, indent: int, allowance: int, out: list[str]) -> None:
    """`value` laid out at `indent`, from the memo when an equal value was laid out there."""
    key = fingerprint(value)
    text = _MEMO.get((key, indent, allowance)) if key is not None else None
    if text is None:
        parts: list[str] = []
        _layout(value, indent, allowance, parts)
        text = "".join(parts)
        if key is not None:
            _MEMO.put((key, indent, allowance), text)
    out.append(text)


def _layout(value: Any, indent: int, allowance: int, out: list[str]) -> None:
    room = _WIDTH - indent - allowance
    kind = type(value)
    if kind in _SCALARS:
        _scalar(value, room, out)
        return
    if not _longer_than(value, room):
        rep = repr(value)
        if len(rep) <= room:
            out.append(rep)
            return
    if kind is dict:
        out.append("{")
        _dict_items(value, indent + 1, allowance + 1, out)
        out.append("}")
    elif kind is list:
        out.append("[")
        _list_items(value, indent + 1, allowance + 1, out)
        out.append("]")
    else:
        raise _NotPlain  # a tuple, a set, a subclass, ...


def _scalar(value: Any, room: int, out: list[str]) -> None:
    """A scalar is its repr however long, but a string too long for `room` (pprint splits it)."""
    rep = repr(value)
    if len(rep) > room and type(value) is str:
        raise _NotPlain
    out.append(rep)


def _dict_items(value: dict[Any, Any], indent: int, allowance: int, out: list[str]) -> None:
    separator = ",\n" + " " * indent
    last = len(value) - 1
    for i, (key, item) in enumerate(value.items()):
        if type(key) not in _SCALARS:
            raise _NotPlain
        rep = repr(key)
        out.append(rep + ": ")
        if type(item) in _SCALARS:  # inline: most items are
            _scalar(item, _WIDTH - indent - len(rep) - 2 - (allowance if i == last else 1), out)
        else:
            _format(item, indent + len(rep) + 2, allowance if i == last else 1, out)
        if i != last:
            out.append(separator)


def _list_items(value: list[Any], indent: int, allowance: int, out: list[str]) -> None:
    separator = ",\n" + " " * indent
    last = len(value) - 1
    for i, item in enumerate(value):
        if i:
            out.append(separator)
        if type(item) in _SCALARS:
            _scalar(item, _WIDTH - indent - (allowance if i == last else 1), out)
        else:
            _format(item, indent, allowance if i == last else 1, out)


def _longer_than(value: Any, room: int) -> bool:
    """Whether `value`'s repr is surely longer than `room`, from a lower bound on its length
    (its keys' and strings' lengths), so the repr of a large container is never made only
    to be found too long."""
    kind = type(value)
    if kind is dict:
        items: Any = value.items()
        size = 2 * len(value) + sum(_least(k) + _least(v) + 2 for k, v in items)
    elif kind is list:
        size = 2 * len(value) + sum(_least(v) for v in value)
    else:
        return False
    return size > room


def _least(value: Any) -> int:
    """A lower bound on len(repr(value)) without making it."""
    return len(value) + 2 if type(value) is str else 1


def render(plan_json: dict[str, Any]) -> str:
    head, tail = _template()
    return head + python_literal(plan_json) + tail
