"""The TextMate grammar of .hv files (editors/vscode/syntaxes/hv.tmLanguage.json, what VS Code
and GitHub's linguist read), tested with vscode-tmgrammar-test from the npm registry:

- the scope assertions of tests/textmate/*.hv pass (`vscode-tmgrammar-test`),
- on every sample and every ```hv block of docs/language.md it classes each character as
  hvconf's Pygments lexer does (`vscode-tmgrammar-snap` writes the scopes; TOKEN_SCOPES maps),
- its keyword lists are grammar/hvconf.lark's keywords, split as the Pygments lexer splits them,
- the VS Code extension's package.json points at the grammar and its extension.js parses.

The npm tools are skipped with the reason where missing; .ci/run installs them
(`npm install -g vscode-tmgrammar-test`) and sets HVCONF_NPM_REQUIRED=1, making a skip a failure.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from pygments.token import Comment, Error, Keyword, Name, Number, Punctuation, String, Whitespace, _TokenType

from hvconf.syntax.highlight import DECLARATIONS, KEYWORDS, NAMESPACE, HvconfLexer

REPO = Path(__file__).resolve().parent.parent
VSCODE = REPO / "editors" / "vscode"
GRAMMAR = VSCODE / "syntaxes" / "hv.tmLanguage.json"
# The TextMate scope each Pygments token type of hvconf's lexer must carry.
TOKEN_SCOPES: dict[_TokenType, str] = {
    Comment.Special: "comment.line.number-sign.pragma.hv",
    Comment.Single: "comment.line.number-sign.hv",
    String.Double: "string.quoted.double.hv",
    String.Escape: "constant.character.escape.hv",
    Error: "invalid.illegal.escape.hv",
    Keyword: "keyword.other.hv",
    Keyword.Declaration: "storage.type.hv",
    Keyword.Namespace: "keyword.control.import.hv",
    Name.Class: "entity.name.type.vm.hv",
    Number.Hex: "constant.numeric.hex.hv",
    Number.Bin: "constant.numeric.binary.hv",
    Number.Integer: "constant.numeric.decimal.hv",
    Name.Constant: "support.constant.linux.hv",
    Name: "variable.other.hv",
    Punctuation: "punctuation.",
}


def tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        if os.environ.get("HVCONF_NPM_REQUIRED"):
            pytest.fail(f"{name} is missing and HVCONF_NPM_REQUIRED is set (npm install -g vscode-tmgrammar-test)")
        pytest.skip(f"{name} is not installed (npm install -g vscode-tmgrammar-test)")
    return found


def test_scope_assertions_pass() -> None:
    cases = sorted(str(p) for p in (REPO / "tests" / "textmate").glob("*.hv"))
    assert cases
    done = subprocess.run([tool("vscode-tmgrammar-test"), "-g", str(GRAMMAR), *cases],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr


def examples(folder: Path) -> list[Path]:
    """Every sample, and every ```hv block of docs/language.md, as files in `folder`."""
    out = []
    for path in sorted((REPO / "samples").rglob("*.hv")):
        out.append(folder / path.relative_to(REPO).as_posix().replace("/", "_"))
        shutil.copy(path, out[-1])
    blocks = re.findall(r"^```hv\n(.*?)^```", (REPO / "docs" / "language.md").read_text(), re.M | re.S)
    for i, block in enumerate(blocks):
        out.append(folder / f"language_{i}.hv")
        out[-1].write_text(block)
    return out


def snapshot_scopes(snap: str) -> dict[tuple[int, int], list[str]]:
    """(line, column) -> scopes, from a vscode-tmgrammar-snap file: `>` source lines, then `#`
    lines whose carets (one column right of the source) carry the scopes of those characters."""
    scopes: dict[tuple[int, int], list[str]] = {}
    line = -1
    for row in snap.splitlines():
        if row.startswith(">"):
            line += 1
            continue
        carets = re.match(r"#( *)(\^+) (.*)$", row)
        if carets:
            start = len(carets.group(1))
            for col in range(start, start + len(carets.group(2))):
                scopes[(line, col)] = carets.group(3).split()
    return scopes


def test_grammar_classes_text_as_the_pygments_lexer_does(tmp_path: Path) -> None:
    snap_tool = tool("vscode-tmgrammar-snap")
    files = examples(tmp_path)
    assert len(files) > 30
    done = subprocess.run([snap_tool, "--config", str(VSCODE / "package.json"), "-u", "-g", str(GRAMMAR),
                           str(tmp_path / "*.hv")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    lexer = HvconfLexer()
    differences = []
    for path in files:
        text = path.read_text()
        tm = snapshot_scopes(Path(f"{path}.snap").read_text())
        starts = [0] + [m.end() for m in re.finditer("\n", text)]
        for index, token, value in lexer.get_tokens_unprocessed(text):
            if token in (Whitespace, Error) and not value.strip():
                continue
            line = max(i for i, s in enumerate(starts) if s <= index)
            for offset in range(len(value)):
                col = index - starts[line] + offset
                want = TOKEN_SCOPES[token]
                got = tm.get((line, col), [])
                if not any(scope.startswith(want) for scope in got):
                    differences.append(f"{path.name}:{line + 1}:{col + 1} {value!r}: pygments {token} -> {want}, "
                                       f"textmate {got}")
                    break
    assert not differences, "\n".join(differences[:20])


def grammar_words(pattern_name: str) -> set[str]:
    repository = json.loads(GRAMMAR.read_text())["repository"]
    rules = repository[pattern_name].get("patterns", [repository[pattern_name]])
    words: set[str] = set()
    for rule in rules:
        if "name" in rule:
            words |= set(re.findall(r"\(\?:([a-z_|]+)\)", rule["match"])[0].split("|")) if "(?:" in rule["match"] else set()
    return words


def test_keyword_lists_are_the_lark_grammars() -> None:
    statements = set(KEYWORDS) - set(DECLARATIONS) - set(NAMESPACE)
    assert grammar_words("keyword") == statements
    assert grammar_words("declaration") == set(DECLARATIONS) | set(NAMESPACE)


def test_vscode_extension_registers_language_grammar_and_server() -> None:
    manifest = json.loads((VSCODE / "package.json").read_text())
    language = manifest["contributes"]["languages"][0]
    grammar = manifest["contributes"]["grammars"][0]
    assert language["extensions"] == [".hv"] and grammar["language"] == language["id"]
    assert (VSCODE / grammar["path"]).resolve() == GRAMMAR
    assert json.loads(GRAMMAR.read_text())["scopeName"] == grammar["scopeName"]
    assert json.loads((VSCODE / language["configuration"]).read_text())["comments"]["lineComment"] == "#"
    assert manifest["contributes"]["configuration"]["properties"]["hvconf.command"]["default"] == ["hvconf", "lsp"]
    assert f"onLanguage:{language['id']}" in manifest["activationEvents"]
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: extension.js not parsed")
    done = subprocess.run([node, "--check", str(VSCODE / manifest["main"])], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
