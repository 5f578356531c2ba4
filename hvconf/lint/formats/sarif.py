"""The sarif format: one SARIF 2.1.0 log for GitHub code scanning and other viewers.

The run lists every hvconf code as a rule (id, short and full description,
help text and helpUri to the docs site's diagnostics page, #<code>); each result points at
its rule by ruleId and ruleIndex and at its place by a physical location
whose uri is relative to the working directory (uriBaseId %SRCROOT%).
Columns count Unicode code points, end columns are exclusive, as in SARIF.
Tested against the vendored schema by tests/test_formats.py.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from hvconf.diagnostics import Diagnostic, Report, Span
from hvconf.lint.formats.rules import DOCS_BASE, Rule, rule_index, rules
from hvconf.lint.render import source_line

if TYPE_CHECKING:
    from hvconf.lint.driver import LintResult

SCHEMA = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
SRCROOT = "%SRCROOT%"
FINGERPRINT = "hvconf/v1"


def _rule(rule: Rule) -> dict[str, Any]:
    text = rule.summary[:1].upper() + rule.summary[1:] + "."
    more = [text] + ([f"Help: {rule.help}"] if rule.help else []) + ([f"Why: {rule.why}"] if rule.why else [])
    return {
        "id": rule.code,
        "name": rule.code,
        "shortDescription": {"text": text},
        "fullDescription": {"text": rule.why or text},
        "help": {"text": "\n\n".join(more), "markdown": "\n\n".join(more) + f"\n\n[{rule.code}]({rule.url})"},
        "helpUri": rule.url,
        "defaultConfiguration": {"level": rule.severity.value},
    }


def artifact(file: str) -> dict[str, str]:
    """An artifactLocation: relative paths (the working directory's) under %SRCROOT%."""
    path = Path(file)
    if path.is_absolute():
        return {"uri": path.as_uri()}
    return {"uri": quote(path.as_posix()), "uriBaseId": SRCROOT}


def physical(span: Span) -> dict[str, Any]:
    return {"artifactLocation": artifact(span.file),
            "region": {"startLine": span.line, "startColumn": span.col,
                       "endLine": span.end_line, "endColumn": span.end_col}}


def _message(d: Diagnostic) -> str:
    # Notes that have a place become relatedLocations; the others, and help, stay in the text.
    extra = [f"note: {n.message}" for n in d.notes if n.span is None]
    extra += [f"help: {d.help}"] if d.help else []
    return "\n".join([d.message, *extra])


# A line longer than this enters the fingerprint as its hash: many findings on one long line
# would otherwise hash the whole line once each, quadratic in the line's length.
LONG_LINE = 1024


def _line_text(d: Diagnostic, sources: dict[str, str], memo: dict[tuple[str, int], str]) -> str:
    """The stripped text of the diagnostic's line (its sha256 for a long line), once per line."""
    if d.span is None:
        return ""
    key = (d.span.file, d.span.line)
    if key not in memo:
        line = (source_line(sources.get(d.span.file, ""), d.span.line) or "").strip()
        memo[key] = line if len(line) <= LONG_LINE else "sha256:" + hashlib.sha256(line.encode()).hexdigest()
    return memo[key]


def _result(d: Diagnostic, index: int | None, fingerprint: str) -> dict[str, Any]:
    result: dict[str, Any] = {"ruleId": d.code}
    if index is not None:
        result["ruleIndex"] = index
    result |= {
        "level": d.severity.value,
        "message": {"text": _message(d)},
        "partialFingerprints": {FINGERPRINT: fingerprint},
    }
    if d.span is not None:
        result["locations"] = [{"physicalLocation": physical(d.span)}]
    placed = [(n.message, n.span) for n in d.notes if n.span is not None]
    related = [{"id": i, "physicalLocation": physical(span), "message": {"text": message}}
               for i, (message, span) in enumerate(placed, 1)]
    if related:
        result["relatedLocations"] = related
    return result


def fingerprints(report: Report) -> list[tuple[Diagnostic, str]]:
    """Each diagnostic, in report order, with a digest stable across runs and line moves: what,
    where (file and line text), and which occurrence. SARIF's partialFingerprints and GitLab's
    fingerprint."""
    seen: Counter[str] = Counter()
    lines: dict[tuple[str, int], str] = {}
    out = []
    for d in report:
        basis = "\0".join([d.code, d.span.file if d.span else "", d.message, _line_text(d, report.sources, lines)])
        seen[basis] += 1
        out.append((d, hashlib.sha256(f"{basis}\0{seen[basis]}".encode()).hexdigest()))
    return out


def log(result: "LintResult") -> dict[str, Any]:
    """The SARIF log as a JSON-ready dict."""
    from hvconf import __version__

    index = rule_index()
    results = [_result(d, index.get(d.code), digest) for d, digest in fingerprints(result.report)]
    invocation: dict[str, Any] = {"executionSuccessful": not result.unreadable}
    if result.unreadable:
        invocation["toolExecutionNotifications"] = [
            {"level": "error", "message": {"text": text}} for text in result.unreadable]
    run: dict[str, Any] = {
        "tool": {"driver": {"name": "hvconf", "version": __version__, "semanticVersion": __version__,
                            "informationUri": DOCS_BASE,
                            "rules": [_rule(r) for r in rules()]}},
        "invocations": [invocation],
        "originalUriBaseIds": {SRCROOT: {"uri": Path(os.getcwd()).as_uri().rstrip("/") + "/"}},
        "columnKind": "unicodeCodePoints",
        "results": results,
    }
    return {"$schema": SCHEMA, "version": "2.1.0", "runs": [run]}


def render(result: "LintResult", *, colour: bool = False) -> str:
    return json.dumps(log(result), indent=2) + "\n"
