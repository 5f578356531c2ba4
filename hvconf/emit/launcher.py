"""Generate launch.py: a thin script that embeds the plan and calls hvconf.kvm.

jinja2 with StrictUndefined and no autoescape (the output is Python, not
HTML); the only value interpolated is the plan as a Python literal
(`plan_literal`), so every user-provided string reaches the script as the
builtin `repr` of a str, never as code. The template is rendered once per
process, around a marker the plan then replaces. jinja2 is imported lazily:
linting never needs it. Tested by tests/test_launcher.py and tests/test_emit_text.py.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from hvconf import __version__


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


def plan_literal(plan: dict[str, Any]) -> str:
    """A Python expression that evaluates to `plan` (plain JSON data: dict, list, str, int,
    bool, None): one top-level key a line, and each item of a non-empty top-level list (the
    steps, the images) on a line of its own; every value is its builtin repr. Laying the plan
    out as pprint does, item by item in Python, was a fifth of the CPU time of building
    10,000 VMs; repr is C (Objects/dictobject.c dict_repr, Objects/unicodeobject.c
    unicode_repr, which escapes every non-printable character, quotes and backslashes)."""
    return "{" + ",\n ".join(_entry(key, value) for key, value in plan.items()) + "}"


def _entry(key: str, value: Any) -> str:
    if type(value) is list and value:
        return f"{key!r}: [\n  " + ",\n  ".join(map(repr, value)) + "]"
    return f"{key!r}: {value!r}"


def render(plan_json: dict[str, Any]) -> str:
    head, tail = _template()
    return head + plan_literal(plan_json) + tail
