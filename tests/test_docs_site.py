"""The docs site (mkdocs.yml: MkDocs, Material theme), built and then read as a reader would.

Built once per run with `mkdocs build --strict` (a broken link or anchor between pages fails
the build); the HTML then shows `hv` blocks highlighted by hvconf's own lexer, no test
markers, and an anchor for every diagnostic code that SARIF's helpUri names. Headless Chromium
(Debian's `chromium`) then loads every page from a loopback HTTP server: each renders, every
link inside the site leads to a page and anchor that exist, and each screenshot is not blank.

Skipped where mkdocs or Chromium are missing; .ci/run installs both and sets
HVCONF_CHROMIUM_REQUIRED=1, making a missing browser a failure.
"""

from __future__ import annotations

import functools
import http.server
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from html.parser import HTMLParser
from pathlib import Path
from typing import Iterator
from urllib.parse import urldefrag, urljoin, urlparse

import pytest

from hvconf.lint.formats.rules import DOCS_BASE, rules

REPO = Path(__file__).resolve().parent.parent
PAGES = sorted(p.stem for p in (REPO / "docs").glob("*.md"))
MIN_STDDEV = 8.0  # grey levels: a blank (or single-colour) page has 0; a page of text ~50+


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    for module in ("mkdocs", "material"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed (pip install '.[docs]')")
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    return out


def page_html(site: Path, page: str) -> str:
    return (site / ("index.html" if page == "index" else f"{page}/index.html")).read_text(encoding="utf-8")


def test_every_page_is_built_with_navigation_and_search(site: Path) -> None:
    for page in PAGES + ["index"]:
        html = page_html(site, page)
        assert 'class="md-nav' in html and 'class="md-search' in html, page
    assert (site / "search" / "search_index.json").is_file()
    assert "Editors" in page_html(site, "index")  # README.md is the home page


def code_blocks(html: str) -> list[str]:
    return re.findall(r'<div class="language-hv highlight">(.*?)</div>', html, re.S)


def test_hv_blocks_are_highlighted_by_hvconf_and_show_no_test_markers(site: Path) -> None:
    blocks = code_blocks(page_html(site, "language"))
    assert len(blocks) > 30
    for block in blocks:
        assert '<span class="k' in block, block  # keywords recognised: the hvconf lexer, not plain text
        assert 'class="err"' not in block, block
    for page in PAGES:
        for block in code_blocks(page_html(site, page)):
            assert not re.search(r"#\s*(fragment|file|needs|warns):", re.sub(r"<[^>]+>", "", block)), (page, block)
    assert 'class="filename">statements of a ppc64-spapr VM<' in page_html(site, "language")


def test_sarif_help_uris_point_at_anchors_of_the_site(site: Path) -> None:
    config = (REPO / "mkdocs.yml").read_text()
    assert f"site_url: {DOCS_BASE}\n" in config
    ids = set(re.findall(r'id="([^"]+)"', page_html(site, "diagnostics")))
    for rule in rules():
        url = urlparse(rule.url)
        assert rule.url.startswith(DOCS_BASE) and url.path.endswith("/diagnostics/")
        assert url.fragment in ids, rule.code


# ---- as a reader: headless Chromium ------------------------------------------------------


def chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    if os.environ.get("HVCONF_CHROMIUM_REQUIRED"):
        pytest.fail("chromium is missing and HVCONF_CHROMIUM_REQUIRED is set (apt-get install chromium)")
    pytest.skip("chromium is not installed (Debian: apt-get install chromium)")


@pytest.fixture(scope="module")
def served(site: Path) -> Iterator[str]:
    """The site on a loopback HTTP server, as a host would serve it (directory URLs, search)."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    handler.log_message = lambda *args: None  # type: ignore[attr-defined]
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if found.get("id"):
            self.ids.add(found["id"] or "")
        if tag == "a" and found.get("href"):
            self.hrefs.append(found["href"] or "")


def render(browser: str, url: str, shot: Path, profile: Path) -> str:
    """The DOM Chromium built for `url`, with a screenshot of the first screen in `shot`."""
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", f"--user-data-dir={profile}", "--window-size=1280,900",
             f"--screenshot={shot}", "--dump-dom"]
    done = subprocess.run([browser, *flags, url], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
    return done.stdout


def grey_stddev(png: Path) -> float:
    from PIL import Image, ImageStat

    with Image.open(png) as image:
        return float(ImageStat.Stat(image.convert("L")).stddev[0])


def test_chromium_renders_every_page_with_working_links(served: str, tmp_path: Path) -> None:
    browser = chromium()
    pytest.importorskip("PIL", reason="pillow is not installed (pip install '.[test]')")
    urls = {page: urljoin(served, "" if page == "index" else f"{page}/") for page in ["index"] + PAGES}

    def load(page: str) -> tuple[str, str]:  # one browser profile per page: they run side by side
        return page, render(browser, urls[page], tmp_path / f"{page}.png", tmp_path / f"profile-{page}")

    doms: dict[str, _Links] = {}
    with ThreadPoolExecutor(max_workers=4) as pool:  # Chromium mostly waits while it starts
        for page, dom in pool.map(load, urls):
            assert "<h1" in dom and 'class="md-content"' in dom, f"{urls[page]} did not render"
            assert grey_stddev(tmp_path / f"{page}.png") > MIN_STDDEV, f"{urls[page]}: the screenshot is blank"
            doms[urls[page]] = _Links()
            doms[urls[page]].feed(dom)
    broken, checked = [], 0
    for url, links in doms.items():
        for href in links.hrefs:
            target, fragment = urldefrag(urljoin(url, href))
            if not target.startswith(served) or target.endswith((".css", ".js", ".xml", ".json", ".gz")):
                continue  # another site, or an asset (mkdocs --strict checked those)
            checked += 1
            if target not in doms:
                broken.append(f"{url}: {href} (no such page)")
            elif fragment and fragment not in doms[target].ids:
                broken.append(f"{url}: {href} (no such anchor)")
    assert not broken, "\n".join(broken[:30])
    assert checked > 500  # every page's navigation and table of contents: the check saw the links


def test_every_page_of_docs_is_in_the_navigation() -> None:
    # A page left out of mkdocs.yml's nav is built but reachable only by a link: readers of the
    # site would not find it (docs/linux-guests.md was, until this test).
    nav = re.findall(r"^\s+- [^:]+: (\S+\.md)$", (REPO / "mkdocs.yml").read_text(encoding="utf-8"), re.M)
    assert sorted(p.removesuffix(".md") for p in nav if p != "index.md") == PAGES
