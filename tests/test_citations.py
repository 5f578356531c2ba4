"""Citations a reader of the repository can follow.

1. No tracked file cites the working notes that sat beside the repository while
   hvconf was written; their facts are in docs/kernel-facts.md, with public sources.
2. Every `<page>.md#anchor` cited anywhere in the tree, and every `](#anchor)`
   link inside a Markdown page, names a heading of that page (GitHub's anchor
   rules, so the links work where the repository is read).
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# The notes' file names, the seed mails they came from (cited as "seed" and a
# three-digit number, or by their folder), and any path into the folder that held
# them; fuzzer seeds ("seed 777") are not notes. One letter of each name is
# bracketed so that this file does not match itself, nor the plain grep a reader
# would run.
EXTERNAL = re.compile(
    r"(?<!docs/)\b(?:desig[n]|styl[e]|ecosyste[m])\.md\b"
    r"|kvm-abi-fact[s]|ppc-ancho[r]s|ppc-kvm-in-tc[g]|x86-kvm-in-tc[g]|pseries-linux-boo[t]"
    r"|\bsee[d] 0\d\d\b|\bseed[s]?/"
    r"|share[d]/(?:reference|seeds)\b|\.\./share[d]\b|/work/share[d]\b"
)

# A page path with `.md#` and an anchor, in any file; a `](#` link inside a Markdown page.
PAGE_ANCHOR = re.compile(r"((?:[\w.-]+/)*[\w.-]+\.md)#([\w-]+)")
LOCAL_ANCHOR = re.compile(r"\]\(#([\w-]+)\)")
HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$")
FENCE = re.compile(r"^(```|~~~)")


def tracked_files() -> list[str]:
    """Paths git tracks, or, outside a git checkout (an unpacked sdist), every file but caches."""
    try:
        out = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z"], capture_output=True, check=True,
                             timeout=60).stdout
        return [p for p in out.decode().split("\0") if p]
    except (OSError, subprocess.CalledProcessError):
        skip = {".git", "__pycache__", ".venv", "_build", ".pytest_cache"}
        return [p.relative_to(REPO).as_posix() for p in REPO.rglob("*")
                if p.is_file() and not skip.intersection(p.relative_to(REPO).parts)]


def texts() -> Iterator[tuple[str, str]]:
    """(path, text) of every tracked text file; binaries (PNG, DTB) are skipped."""
    for path in tracked_files():
        try:
            yield path, (REPO / path).read_text(encoding="utf-8")
        except (UnicodeDecodeError, FileNotFoundError, IsADirectoryError):
            continue


def github_slug(heading: str) -> str:
    """The id GitHub gives a Markdown heading: the text without inline markup, lower case,
    punctuation other than `-` and `_` dropped, each space a `-` (not collapsed)."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # links and images keep their text
    text = re.sub(r"<[^>]+>", "", text).replace("`", "")
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def anchors(markdown: str) -> set[str]:
    """Every heading id of a page, duplicates numbered -1, -2 ... as GitHub numbers them."""
    seen: dict[str, int] = {}
    out: set[str] = set()
    in_fence = False
    for line in markdown.splitlines():
        if FENCE.match(line):
            in_fence = not in_fence
            continue
        match = None if in_fence else HEADING.match(line)
        if match:
            slug = github_slug(match.group(1))
            count = seen.get(slug, 0)
            seen[slug] = count + 1
            out.add(slug if count == 0 else f"{slug}-{count}")
    return out


def external_citations() -> set[tuple[str, str]]:
    """(path, stripped line) of every line that cites the notes."""
    return {(path, line.strip()) for path, text in texts()
            for line in text.splitlines() if EXTERNAL.search(line)}


def test_nothing_cites_the_notes_outside_the_repository() -> None:
    unexpected = sorted(f"{path}: {line}" for path, line in external_citations())
    assert not unexpected, ("cite docs/kernel-facts.md#<anchor> or the public source instead of:\n  "
                            + "\n  ".join(unexpected))


def cited_anchors() -> Iterator[tuple[str, str, str]]:
    """(citing file, page path relative to the repo, anchor) for every anchor citation."""
    for path, text in texts():
        here = Path(path).parent
        for page, anchor in PAGE_ANCHOR.findall(text):
            # Code cites from the repository root; a Markdown link is relative to its page.
            candidates = [Path(page), here / page]
            target = next((c for c in candidates if (REPO / c).is_file()), candidates[-1])
            yield path, os.path.normpath(target), anchor
        if path.endswith(".md"):
            for anchor in LOCAL_ANCHOR.findall(text):
                yield path, path, anchor


def test_every_cited_anchor_is_a_heading_of_its_page() -> None:
    pages: dict[str, set[str] | None] = {}
    broken = []
    cited = 0
    for path, page, anchor in cited_anchors():
        if page not in pages:
            file = REPO / page
            pages[page] = anchors(file.read_text(encoding="utf-8")) if file.is_file() else None
        cited += 1
        if pages[page] is None:
            broken.append(f"{path}: {page}#{anchor} (no such page)")
        elif anchor not in pages[page]:
            broken.append(f"{path}: {page}#{anchor} (no such heading)")
    assert cited > 50, "the scan found almost no anchor citations; is the pattern still right?"
    assert not broken, "\n".join(sorted(broken))


def test_the_facts_page_is_cited_and_linked_from_the_readme() -> None:
    citing = {path for path, page, _ in cited_anchors() if page == "docs/kernel-facts.md"}
    assert {"hvconf/abi/data/caps.toml", "targets/ppc64-spapr/target.toml"} <= citing
    assert "docs/kernel-facts.md" in (REPO / "README.md").read_text(encoding="utf-8")


def test_github_slugs() -> None:
    assert github_slug("`_IOC` encodings") == "_ioc-encodings"
    assert github_slug("KVM_CAP_PPC_ENABLE_HCALL rules") == "kvm_cap_ppc_enable_hcall-rules"
    assert github_slug("s390 DIAGNOSE 0x500") == "s390-diagnose-0x500"
    assert github_slug("sPAPR guests (QEMU, kvmtool)") == "spapr-guests-qemu-kvmtool"
    assert github_slug("A & B") == "a--b"
    assert github_slug("[link](x.md) text") == "link-text"
    assert anchors("# T\n## Same\n```\n## not a heading\n```\n## Same\n") == {"t", "same", "same-1"}


def test_the_scan_sees_a_citation_when_one_is_written() -> None:
    notes, seed, folder = "kvm-abi-" "facts.md", "seed " "002", "../" "share" "d/reference/x.md"
    assert EXTERNAL.search(f"see {notes} §2") and EXTERNAL.search(f"({seed})") and EXTERNAL.search(folder)
    assert EXTERNAL.search("desig" "n.md §6") and not EXTERNAL.search("docs/desig" "n.md")
    assert not EXTERNAL.search("12 min, seed 20261122")
