"""Render the Markdown docs to HTML in docs/_build/, `hv` blocks highlighted by
hvconf's own Pygments lexer (found through its `pygments.lexers` entry point).

    python docs/build.py            # writes docs/_build/<page>.html and style.css

Needs the `markdown` package (in the `test` extra). Tested by tests/test_docs_build.py.
"""

from __future__ import annotations

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>{title}</title><link rel="stylesheet" href="style.css"></head>
<body>
{body}
</body></html>
"""


def render(markdown_text: str) -> str:
    """The HTML body of one Markdown page."""
    import markdown

    return markdown.markdown(markdown_text, extensions=["fenced_code", "codehilite", "tables", "toc"],
                             extension_configs={"codehilite": {"guess_lang": False, "css_class": "highlight"}})


def build(out: Path) -> list[Path]:
    from pygments.formatters import HtmlFormatter

    out.mkdir(parents=True, exist_ok=True)
    (out / "style.css").write_text(HtmlFormatter().get_style_defs(".highlight"))
    written = []
    for page in sorted(DOCS.glob("*.md")):
        html = PAGE.format(title=page.stem, body=render(page.read_text(encoding="utf-8")))
        target = out / f"{page.stem}.html"
        target.write_text(html, encoding="utf-8")
        written.append(target)
    return written


if __name__ == "__main__":
    for path in build(Path(sys.argv[1]) if len(sys.argv) > 1 else DOCS / "_build"):
        print(f"wrote {path}")
