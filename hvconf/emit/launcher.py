"""Generate launch.py: a thin script that embeds the plan and calls hvconf.kvm.

jinja2 with StrictUndefined and no autoescape (the output is Python, not
HTML); the only value interpolated is the plan rendered by `pprint`, so
every user-provided string reaches the script as a Python literal, never as
code. jinja2 is imported lazily: linting never needs it.
Tested by tests/test_launcher.py.
"""

from __future__ import annotations

import pprint
from functools import lru_cache
from typing import Any

from hvconf import __version__


@lru_cache(maxsize=1)
def _template() -> Any:
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader("hvconf.emit", "templates"),
                             undefined=jinja2.StrictUndefined, autoescape=False,
                             keep_trailing_newline=True)
    return env.get_template("launch.py.j2")


class _Printer(pprint.PrettyPrinter):
    """pprint.pformat's output, with each object's repr made once. PrettyPrinter asks for the
    repr of every container again at each level above it (to see if it fits on one line), which
    was two thirds of its time on a plan; one printer per call, so ids are never reused."""

    def __init__(self) -> None:
        super().__init__(indent=1, width=100, sort_dicts=False)
        self._memo: dict[int, tuple[str, bool, bool]] = {}

    def format(self, obj: Any, context: dict[int, int], maxlevels: int, level: int) -> tuple[str, bool, bool]:
        key = id(obj)
        if key not in self._memo:
            self._memo[key] = super().format(obj, context, maxlevels, level)
        return self._memo[key]


def python_literal(value: Any) -> str:
    """A Python expression that evaluates to `value` (plain data only: a tree, no cycles);
    exactly pprint.pformat(value, indent=1, width=100, sort_dicts=False)."""
    return _Printer().pformat(value)


def render(plan_json: dict[str, Any]) -> str:
    return _template().render(version=__version__, plan_literal=python_literal(plan_json))
