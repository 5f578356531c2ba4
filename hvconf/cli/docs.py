"""The `hvconf explain` and `hvconf schema` commands, added to the CLI's
subparsers by `register` (hvconf/cli/main.py calls it).

Thin shells over hvconf/lint/explain.py and hvconf/lint/schemas.py: they print to
stdout, report usage errors on stderr, and return the exit status (0, or 2
for an unknown code). They never read a definition or open a device.
Tested by tests/test_explain.py and tests/test_schema.py.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    SubParsers = argparse._SubParsersAction[argparse.ArgumentParser]

EXIT_OK, EXIT_USAGE = 0, 2

EXPLAIN_EXAMPLES = """examples:
  hvconf explain hcall-not-toggleable      what the rule checks, why, a bad and a good example
  hvconf explain                           every code with its severity and summary
  hvconf explain cap-required --format markdown
  hvconf explain --format markdown > docs/diagnostics.md
"""

SCHEMA_EXAMPLES = """examples:
  hvconf schema > hvconf-vm.schema.json           JSON Schema (draft 2020-12) of one lowered VM
  hvconf schema plan > plan.schema.json           of plan.json; also manifest, host-facts, diagnostics
  hvconf schema diagnostics                       of `hvconf check --format json`
"""


def cmd_explain(args: argparse.Namespace) -> int:
    from hvconf.lint import explain

    if args.code is None:
        sys.stdout.write(explain.docs_markdown() if args.format == "markdown" else explain.index_text())
        return EXIT_OK
    try:
        page = explain.page(args.code)
    except explain.UnknownCode as err:
        print(f"hvconf: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    sys.stdout.write(explain.to_markdown(page) if args.format == "markdown" else explain.to_text(page))
    return EXIT_OK


def cmd_schema(args: argparse.Namespace) -> int:
    from hvconf.lint.schemas import dumps

    sys.stdout.write(dumps(args.name))
    return EXIT_OK


def register(sub: "SubParsers") -> None:
    """Add `explain` and `schema` to the `hvconf` subparsers."""
    raw = argparse.RawDescriptionHelpFormatter
    p = sub.add_parser("explain", help="what a diagnostic code means, why, with a bad and a good example",
                       description="Explain a diagnostic code: what the rule checks, the KVM or kernel\n"
                                   "behaviour behind it, a bad and a good example, and the fix.",
                       epilog=EXPLAIN_EXAMPLES, formatter_class=raw)
    p.add_argument("code", nargs="?", metavar="CODE", help="a diagnostic code; without one, list them all")
    p.add_argument("--format", choices=["text", "markdown"], default="text",
                   help="text for a terminal, markdown as in docs/diagnostics.md (default: text)")
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser("schema", help="print a JSON Schema: of the IR, plan.json, manifest.json, host facts, "
                                      "json diagnostics",
                       description="Print the JSON Schema (draft 2020-12) of what hvconf writes for others:\n"
                                   "vm (one lowered VM, the IR), plan (plan.json), manifest (manifest.json),\n"
                                   "host-facts (hvconf host --format json), diagnostics (check --format json).\n"
                                   "Keys are sorted; the output is stable.",
                       epilog=SCHEMA_EXAMPLES, formatter_class=raw)
    p.add_argument("name", nargs="?", default="vm", choices=["vm", "plan", "manifest", "host-facts", "diagnostics"],
                   help="which schema (default: vm)")
    p.set_defaults(func=cmd_schema)


__all__ = ["cmd_explain", "cmd_schema", "register"]
