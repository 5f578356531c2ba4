"""Render a lint result in one of the `--format` choices: text, json, sarif, github, gitlab, junit.

Each renderer is a pure function from a LintResult to the text printed on
stdout; none prints, reads files or decides the exit status (hvconf/cli/main.py
does). Field names of json and the SARIF layout are documented in docs/ci.md.
Tested by tests/test_formats.py.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from hvconf.lint.driver import LintResult

# Module of each format; each has `render(result, *, colour) -> str`.
FORMATS: dict[str, str] = {
    "text": "hvconf.lint.formats.text",
    "json": "hvconf.lint.formats.json",
    "sarif": "hvconf.lint.formats.sarif",
    "github": "hvconf.lint.formats.github",
    "gitlab": "hvconf.lint.formats.gitlab",
    "junit": "hvconf.lint.formats.junit",
}


def renderer(name: str) -> Callable[..., str]:
    """The render function of format `name` (imported only when used)."""
    render: Callable[..., str] = import_module(FORMATS[name]).render
    return render


def render(name: str, result: "LintResult", *, colour: bool = False) -> str:
    return renderer(name)(result, colour=colour)
