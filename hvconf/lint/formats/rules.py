"""Every diagnostic code hvconf can emit, as the machine formats describe it.

The facts (severity, summary, why, help) come from hvconf.explain.pages(),
the one table behind `hvconf explain` and docs/diagnostics.md; this module
only adds the docs URL and the lookups `--select`/`--ignore` and SARIF need.
Must not import the CLI. Tested by tests/test_formats.py.
"""

from __future__ import annotations

import os
from functools import lru_cache

from hvconf.diagnostics import Severity
from hvconf.record import Record

# Where the docs site (mkdocs.yml's site_url) is published; SARIF's helpUri must be an
# absolute URI. A team that hosts its own copy of the site (or a fork) points HVCONF_DOCS_URL
# at that copy's base. DOCS_URL is the diagnostics page, where each code is a heading (#code).
DOCS_BASE = os.environ.get("HVCONF_DOCS_URL", "https://hvconf.github.io/hvconf/").rstrip("/") + "/"
DOCS_URL = f"{DOCS_BASE}diagnostics/"


class Rule(Record):
    """What the machine formats say about one code."""

    __slots__ = ("code", "severity", "summary", "why", "help")
    _defaults = {"why": "", "help": None}

    code: str
    severity: Severity
    summary: str
    why: str
    help: str | None

    @property
    def url(self) -> str:
        return f"{DOCS_URL}#{self.code}"


@lru_cache(maxsize=1)
def rules() -> tuple[Rule, ...]:
    """Every code in pipeline order (checker codes in CHECKS order): the order of SARIF's ruleIndex."""
    from hvconf.lint.explain import pages

    return tuple(Rule(p.code, p.severity, p.summary, p.why, p.help) for p in pages().values())


def rule_index() -> dict[str, int]:
    return {rule.code: i for i, rule in enumerate(rules())}
