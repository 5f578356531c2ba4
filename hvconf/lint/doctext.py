"""The docs' Markdown as a reader sees it: without the lines that only tell tests/test_docs.py
how to check an example (`# fragment: TARGET`, `# file: PATH`, `# needs: PATH`, `# warns: CODE`),
and cut into the section of one heading. Used by the docs site (docs/hooks.py) and by the
language server's hover (hvconf/lsp/knowledge.py). Tested by tests/test_docs_site.py and
tests/test_lsp.py.
"""

from __future__ import annotations

import re

# The directives of tests/test_docs.py (_DIRECTIVE there), as whole lines inside ```hv blocks.
MARKER = re.compile(r"^#\s*(?:fragment|file|needs|warns):.*\n", re.M)
_FENCE = re.compile(r"^```hv\n.*?^```", re.M | re.S)
_HEADING = re.compile(r"^(#{1,6}) ", re.M)


def without_markers(markdown: str) -> str:
    """`markdown` with the test directives removed from its ```hv blocks (prose is untouched)."""
    return _FENCE.sub(lambda block: MARKER.sub("", block.group(0)), markdown)


def section(markdown: str, heading: str) -> str | None:
    """The text under the first heading whose title is `heading`, up to the next heading of
    the same or a higher level; None when there is no such heading."""
    found = re.search(rf"^(#{{1,6}}) {re.escape(heading)}[ \t]*\n", markdown, re.M)
    if found is None:
        return None
    level = len(found.group(1))
    end = len(markdown)
    for match in _HEADING.finditer(markdown, found.end()):
        if len(match.group(1)) <= level and not _in_fence(markdown, match.start()):
            end = match.start()
            break
    return markdown[found.end():end].strip()


def _in_fence(markdown: str, offset: int) -> bool:
    """Whether `offset` is inside a ``` block (a `# comment` line there is no heading)."""
    return markdown.count("\n```", 0, offset) % 2 == 1
