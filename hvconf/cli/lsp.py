"""The `hvconf lsp` command, added to the CLI's subparsers by `register` (hvconf/cli/main.py).

Serves the Language Server Protocol on stdin/stdout (hvconf/lsp/server.py). pygls and
lsprotocol come with the `lsp` extra; without them the command says how to install them
(one line, exit status 2). Tested by tests/test_lsp.py.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    SubParsers = argparse._SubParsersAction[argparse.ArgumentParser]

EXIT_USAGE = 2

LSP_EXAMPLES = """examples:
  hvconf lsp                 an editor starts it and speaks LSP on its stdin and stdout
  Neovim:  require("hvconf").setup() with editors/nvim/hvconf.lua       (README.md#editors)
  VS Code: the extension in editors/vscode/
"""


def cmd_lsp(args: argparse.Namespace) -> int:
    try:
        from hvconf.lsp.server import main
    except ImportError as err:  # pygls or lsprotocol missing, or unusable
        print(f"hvconf: error: `hvconf lsp` needs pygls and lsprotocol ({err.name or err}): "
              "pip install 'hvconf[lsp]'", file=sys.stderr)
        return EXIT_USAGE
    return main()


def register(sub: "SubParsers") -> None:
    """Add `lsp` to the `hvconf` subparsers."""
    p = sub.add_parser("lsp", help="a language server for .hv files (LSP over stdin/stdout)",
                       description="Serve the Language Server Protocol on stdin and stdout: diagnostics as you\n"
                                   "type, hover, completion, go-to-definition, formatting and quick fixes.",
                       epilog=LSP_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stdio", action="store_true", help="accepted for clients that pass it; stdio is the only transport")
    p.set_defaults(func=cmd_lsp)


__all__ = ["cmd_lsp", "register"]
