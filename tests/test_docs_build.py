"""The docs are rendered with hvconf's own lexer: every ```hv block of
docs/language.md comes out highlighted, with no error tokens."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"


@pytest.fixture(scope="module")
def build():  # type: ignore[no-untyped-def]
    if importlib.util.find_spec("markdown") is None:
        pytest.skip("the markdown package is not installed (pip install '.[test]')")
    spec = importlib.util.spec_from_file_location("docs_build", DOCS / "build.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_hv_blocks_are_highlighted_by_the_hvconf_lexer(build) -> None:  # type: ignore[no-untyped-def]
    text = (DOCS / "language.md").read_text(encoding="utf-8")
    blocks = re.findall(r"^```hv\n(.*?)^```", text, re.M | re.S)
    assert len(blocks) > 10
    for block in blocks:
        html = build.render(f"```hv\n{block}```\n")
        assert 'class="k' in html, block  # keywords recognised: the hvconf lexer, not plain text
        assert 'class="err"' not in html, block


def test_every_page_renders(build, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    written = build.build(tmp_path)
    assert {p.stem for p in written} == {p.stem for p in DOCS.glob("*.md")}
    assert ".highlight .k " in (tmp_path / "style.css").read_text()
