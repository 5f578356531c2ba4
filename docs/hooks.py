"""MkDocs hooks of the docs site (mkdocs.yml `hooks:`).

- README.md becomes the home page (index.md), its `docs/PAGE.md` links made relative to the site,
- the lines that tell tests/test_docs.py how to check an example (`# fragment: TARGET`,
  `# file: PATH`, `# needs: PATH`, `# warns: CODE`) leave every ```hv block; what a reader
  needs of them becomes the block's title ("statements of a ppc64-spapr VM", "base/power9.hv").
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

from hvconf.lint.doctext import without_markers

README = Path(__file__).resolve().parent.parent / "README.md"
_BLOCK = re.compile(r"^```hv\n(.*?)^```", re.M | re.S)
_DIRECTIVE = re.compile(r"^#\s*(fragment|file):\s*(\S+)", re.M)
# The title a directive gives its block on the site.
TITLES = {"fragment": "statements of a {} VM", "file": "{}"}


def home_page(readme: str) -> str:
    """README.md as the site's index: links into docs/ point at the pages beside it."""
    return re.sub(r"\]\(docs/([^)]+)\)", r"](\1)", readme)


def titled(markdown: str) -> str:
    """Every ```hv block without its test directives, titled by its `fragment` or `file`."""
    def block(match: re.Match[str]) -> str:
        found = _DIRECTIVE.search(match.group(1))
        title = f' title="{TITLES[found.group(1)].format(found.group(2))}"' if found else ""
        return f"```hv{title}\n" + without_markers(match.group(0)).split("\n", 1)[1]

    return _BLOCK.sub(block, markdown)


def on_files(files: Files, config: Any) -> Files:
    files.append(File.generated(config, "index.md", content=home_page(README.read_text(encoding="utf-8"))))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Files) -> str:
    return titled(markdown)
