"""`hvconf explain CODE` and docs/diagnostics.md, from one source: a page per
diagnostic code with what it checks, why (the KVM or kernel behaviour behind
it), a bad and a good example, and the help.

Checker codes take summary, severity, why and help from their Check; the
codes of the other stages take them from hvconf/lint/explain.toml, which also
holds every good example. Bad examples are the shipped tests/invalid samples
(hvconf.resources.invalid_samples_dir) unless the table has one. Renders
text; never compiles anything. Tested by tests/test_explain.py.
"""

from __future__ import annotations

import textwrap
import tomllib
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

from hvconf.codes import CODES, STAGES
from hvconf.diagnostics import Severity, close_matches
from hvconf.record import Record

TABLE = Path(__file__).with_name("explain.toml")

FENCES = {".hv": "hv", ".toml": "toml", ".S": "gas"}  # code-fence languages by file suffix
WIDTH = 88


class Example(Record):
    """A .hv file as shown, and what has to sit next to it for it to compile as shown."""

    __slots__ = ("text", "name", "files", "path", "encoding", "overrides", "host")
    _defaults = {"files": (), "path": None, "encoding": "utf-8", "overrides": None, "host": None}

    text: str
    name: str
    files: tuple[tuple[str, str], ...]  # (file name, text) written next to it
    path: Path | None  # the shipped sample it was read from
    encoding: str  # how it is saved (invalid-utf8 shows a Latin-1 file)
    overrides: str | None  # the one of `files` given as --abi-overrides
    host: str | None  # the one of `files` given as --host-facts


class Page(Record):
    __slots__ = ("code", "stage", "severity", "summary", "why", "help", "bad", "good", "requires")
    _defaults = {"requires": ()}
    code: str
    stage: str
    severity: Severity
    summary: str
    why: str
    help: str | None
    bad: Example | None  # None only while a new code waits for its sample (tests fail until then)
    good: Example | None
    requires: tuple[str, ...]


class UnknownCode(LookupError):
    """`explain` of a code no stage emits; carries the nearest known codes."""

    def __init__(self, code: str, close: list[str]) -> None:
        tail = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        super().__init__(f"no diagnostic code {code!r}{tail}")
        self.code, self.close = code, close


def _table() -> dict[str, Any]:
    return tomllib.loads(TABLE.read_text(encoding="utf-8"))


def _sample(code: str) -> Example | None:
    from hvconf.resources import invalid_samples_dir

    path = invalid_samples_dir() / f"{code}.hv"
    if not path.is_file():
        return None
    # `# also: ...` is an instruction to tests/test_checks.py, not part of the example.
    lines = [row for row in path.read_text(encoding="utf-8").splitlines() if not row.startswith("# also:")]
    return Example("\n".join(lines) + "\n", path.name, path=path)


def _example(code: str, row: dict[str, Any], which: str) -> Example | None:
    text = row.get(which)
    if text is None:
        return None
    files = {**row.get("files", {}), **row.get(f"{which}_files", {})}
    return Example(text.lstrip("\n"), f"{code}.hv", tuple(sorted(files.items())),
                   encoding=row.get(f"{which}_encoding", "utf-8"), overrides=row.get("overrides"),
                   host=row.get("host"))


def _page(code: str, row: dict[str, Any], facts: dict[str, Any]) -> Page:
    return Page(code, facts["stage"], Severity(facts["severity"]), facts["summary"], facts["why"],
                facts.get("help"), _example(code, row, "bad") or _sample(code), _example(code, row, "good"),
                tuple(facts.get("requires", ())))


@lru_cache(maxsize=1)
def pages() -> Mapping[str, Page]:
    """Every page by code, in hvconf/codes.py's (pipeline) order. Stage and severity are the
    registry's; summary, why and help a Check's own, or the table's for the stages' codes."""
    from hvconf.check import CHECKS, HOST_CHECKS

    table = _table()
    out = {code: _page(code, row, {**row, **_declared(code)}) for code, row in table["stage"].items()}
    for check in CHECKS + HOST_CHECKS:
        row = table["check"].get(check.code, {})  # a new Check's page lacks its good example until added
        facts = {**_declared(check.code), "summary": check.summary, "why": check.why, "help": check.help,
                 "requires": check.requires}
        out[check.code] = _page(check.code, row, facts)
    return MappingProxyType({code: out[code] for code in CODES if code in out})


def _declared(code: str) -> dict[str, str]:
    """A page's stage and severity, from hvconf/codes.py (tests/test_codes.py: every page's code is there)."""
    declared = CODES[code]
    return {"stage": declared.stage, "severity": declared.severity.value}


def page(code: str) -> Page:
    """The page of `code`; raises UnknownCode with did-you-mean suggestions."""
    known = pages()
    if code in known:
        return known[code]
    close = close_matches(code, list(known), n=3, cutoff=0.6)
    raise UnknownCode(code, close or [c for c in known if code and code in c][:3])


# ---- text -------------------------------------------------------------------------


def _wrap(text: str, indent: str = "  ") -> str:
    return textwrap.fill(text, WIDTH, initial_indent=indent, subsequent_indent=indent)


def _listing(example: Example | None) -> list[str]:
    if example is None:
        return ["  (none yet)"]
    out = [f"  | {row}".rstrip() for row in example.text.rstrip("\n").splitlines()]
    for name, text in example.files:
        out += [f"  with {name}:"] + [f"  | {row}".rstrip() for row in text.strip("\n").splitlines()]
    return out


FIX_NOTE = ("`hvconf check --fix` makes the edit the help states, where it is certain (`--diff` shows it "
            "first); comments and layout are kept.")


def _fixable(code: str) -> bool:
    from hvconf.lint.fixes import FIXABLE

    return code in FIXABLE


def to_text(p: Page) -> str:
    """The page for a terminal."""
    where = f" (tests/invalid/{p.bad.path.name})" if p.bad and p.bad.path else ""
    lines = [f"{p.code}: {p.summary}", _wrap(f"{p.severity.value}; {p.stage} stage: {STAGES[p.stage]}"), "",
             "Why", _wrap(p.why), "", f"Bad{where}"] + _listing(p.bad)
    if p.bad and p.bad.encoding != "utf-8":
        lines.append(f"  (saved as {p.bad.encoding})")
    lines += ["", "Good"] + _listing(p.good)
    if p.help:
        lines += ["", "Help", _wrap(p.help)]
    if _fixable(p.code):
        lines += ["", "Fix", _wrap(FIX_NOTE)]
    if p.requires:
        lines += ["", _wrap("Skipped when " + ", ".join(p.requires) + " fired.", "")]
    lines += ["", f"See docs/diagnostics.md#{p.code}"]
    return "\n".join(lines) + "\n"


# ---- markdown ---------------------------------------------------------------------


def _fence(name: str, text: str) -> list[str]:
    return [f"```{FENCES.get(Path(name).suffix, '')}", text.strip("\n"), "```"]


def _block(title: str, example: Example | None) -> list[str]:
    if example is None:
        return [f"{title}: none yet."]
    out = [f"{title}:", ""] + _fence(example.name, example.text)
    if example.encoding != "utf-8":
        out += ["", f"(saved as {example.encoding})"]
    for name, text in example.files:
        out += ["", f"with `{name}`:", ""] + _fence(name, text)
    return out


def _sentence(text: str) -> str:
    return text if text.endswith((".", "?", "!")) else text + "."


def to_markdown(p: Page) -> str:
    """One section of docs/diagnostics.md; the heading is the code, so the anchor is too."""
    lines = [f"## {p.code}", "", f"**{p.severity.value}** ({p.stage}): {_sentence(p.summary)}", "",
             f"Why: {p.why}", ""]
    lines += _block("Bad", p.bad) + [""] + _block("Good", p.good)
    if p.help:
        lines += ["", f"Help: {_sentence(p.help)}"]
    if _fixable(p.code):
        lines += ["", f"Fixable: {FIX_NOTE}"]
    if p.requires:
        lines += ["", "Skipped when " + ", ".join(f"`{r}`" for r in p.requires) + " fired."]
    return "\n".join(lines) + "\n"


def docs_markdown() -> str:
    """docs/diagnostics.md: a table of every code, then one section per code (tests keep the file current)."""
    lines = [
        "# hvconf diagnostics",
        "",
        "<!-- Generated by hvconf.explain.docs_markdown(); do not edit by hand. -->",
        "",
        "Every finding of hvconf has one of these codes; `hvconf explain CODE` prints the same page in a",
        "terminal. Errors stop a build; warnings do not. Stages run in this order:",
        "",
    ]
    lines += [f"- **{stage}**: {what}." for stage, what in STAGES.items()]
    lines += ["", "A code marked fixable has a fix: `hvconf check --fix` makes the edit its help states "
                  "(`--diff` shows it first), and the json format carries it as `fix`.", ""]
    lines += ["| code | stage | severity | fixable | summary |", "|---|---|---|---|---|"]
    lines += [f"| [`{p.code}`](#{p.code}) | {p.stage} | {p.severity.value} | {'yes' if _fixable(p.code) else ''} "
              f"| {p.summary} |" for p in pages().values()]
    for p in pages().values():
        lines += ["", to_markdown(p).rstrip("\n")]
    return "\n".join(lines) + "\n"


def index_text() -> str:
    """`hvconf explain` without a code: every code with its severity and summary."""
    width = max(len(code) for code in pages())
    return "".join(f"{p.code:<{width}}  {p.severity.value:<7}  {p.summary}\n" for p in pages().values())


__all__ = ["Example", "Page", "UnknownCode", "docs_markdown", "index_text", "page", "pages",
           "to_markdown", "to_text"]
