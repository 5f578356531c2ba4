"""The lint cache on the command line: `check --no-cache`, `check --cache-dir DIR`, `hvconf clean`.

The cache itself is hvconf/lint/cache.py; this module only turns options into one,
so hvconf/cli/main.py gains three lines. Tested by tests/test_lint_cache.py.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:
    from hvconf.lint.cache import LintCache

ENV = "HVCONF_CACHE_DIR"  # the folder --cache-dir names, for CI jobs that keep one between runs
CLEAN_EXAMPLES = """examples:
  hvconf clean                       remove the lint cache ($XDG_CACHE_HOME/hvconf/lint)
  hvconf clean --cache-dir .cache/   remove what hvconf wrote in that folder
"""


def add_cache_options(check_parser: argparse.ArgumentParser) -> None:
    """`--no-cache` and `--cache-dir DIR` for `hvconf check`."""
    group = check_parser.add_mutually_exclusive_group()
    group.add_argument("--no-cache", action="store_true",
                       help="check every file afresh; read and write no cache entry")
    group.add_argument("--cache-dir", metavar="DIR",
                       help=f"keep the lint cache in DIR (default: ${ENV}, else $XDG_CACHE_HOME/hvconf/lint)")


def _folder(args: argparse.Namespace) -> str | None:
    return getattr(args, "cache_dir", None) or os.environ.get(ENV) or None


def cache_from_args(args: argparse.Namespace, options: dict[str, Any], root: str | None,
                    allow: Sequence[str]) -> "LintCache | None":
    """The run's cache, or None (--no-cache, no usable folder). A named folder that cannot be
    used is a one-line warning, and the run goes on without a cache: it only costs speed."""
    if getattr(args, "no_cache", False):
        return None
    from hvconf.lint.cache import CacheDirError, open_cache

    try:
        return open_cache(_folder(args), options, root, allow)
    except CacheDirError as err:
        print(f"hvconf: warning: lint cache not used: {err}", file=sys.stderr)
        return None


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add `hvconf clean` to the top-level subparsers; returns its parser."""
    p = subparsers.add_parser("clean", help="remove the lint cache",
                              description="Remove the lint cache `hvconf check` keeps: the user's "
                                          "($XDG_CACHE_HOME/hvconf/lint), or what hvconf wrote in --cache-dir DIR.",
                              epilog=CLEAN_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cache-dir", metavar="DIR", help=f"the folder `check --cache-dir` used (default: ${ENV})")
    p.set_defaults(func=cmd_clean)
    return p


def cmd_clean(args: argparse.Namespace) -> int:
    from hvconf.lint.cache import CacheDirError, clean

    try:
        folder = clean(_folder(args))
    except (CacheDirError, OSError) as err:
        print(f"hvconf: error: cannot clean the lint cache: {err}", file=sys.stderr)
        return 2
    print(f"removed the lint cache in {folder}" if folder is not None else "no lint cache to remove")
    return 0
