"""The `unused-suppression` rule, registered with the checks so its code,
docs page, SARIF rule and `--select` name come from the one Check list.

Comments are not in the IR, so the rule has nothing to do per VM:
hvconf/check/suppress.py decides it over a run's whole report, after every check
has run. Tested by tests/test_suppress.py and tests/invalid/unused-suppression.hv.
"""

from __future__ import annotations

from hvconf.check.registry import Check, CheckContext
from hvconf.diagnostics import Severity


def decided_over_the_report(ctx: CheckContext) -> None:
    """Per VM there is nothing to see: hvconf.suppress.apply emits this code."""


CHECKS: tuple[Check, ...] = (
    Check("unused-suppression", Severity.WARNING, "a `# hvconf: ignore[...]` comment suppresses nothing",
          decided_over_the_report, help="remove the code from the suppression, or fix its spelling",
          why="A suppression is a promise that a reviewed finding is expected at that place. Once the "
              "finding is fixed, the statement moves or the code is misspelt, the comment hides nothing "
              "today but would silently hide a new finding there tomorrow (ruff's RUF100 and "
              "shellcheck's unused-disable reports exist for the same reason), so hvconf reports it."),
)
