"""The Pygments lexer for .hv: its keywords are the grammar's, every sample and
example tokenizes without Error tokens (the one bad escape aside), tokens are
classified as the docs expect, and Pygments finds it through the entry point.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

pygments = pytest.importorskip("pygments", reason="the lexer needs Pygments (pip install '.[test]')")

from pygments.token import Comment, Error, Keyword, Name, Number, Punctuation, String  # noqa: E402

from hvconf.lint import explain  # noqa: E402
from hvconf.syntax.highlight import KEYWORDS, HvconfLexer  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
GRAMMAR = REPO / "grammar" / "hvconf.lark"


def tokens(text: str) -> list[tuple[Any, str]]:
    return [(t, v) for t, v in HvconfLexer().get_tokens(text) if v.strip()]


def inputs() -> dict[str, str]:
    """Every .hv text of the repo: samples, bad samples, docs examples, explain examples."""
    out = {str(p.relative_to(REPO)): p.read_text(encoding="utf-8")
           for p in sorted((REPO / "samples").rglob("*.hv")) + sorted((REPO / "tests" / "invalid").glob("*.hv"))}
    doc = (REPO / "docs" / "language.md").read_text(encoding="utf-8")
    for n, block in enumerate(re.findall(r"^```hv[ \t]*\n(.*?)^```", doc, re.M | re.S)):
        out[f"language.md#{n}"] = block
    for code, page in explain.pages().items():
        for which, example in (("good", page.good), ("bad", page.bad)):
            if example is not None:  # tests/test_explain.py reports a missing one
                out[f"explain:{code}:{which}"] = example.text
    return out


def test_keywords_are_the_grammars_keyword_terminals() -> None:
    grammar = GRAMMAR.read_text(encoding="utf-8")
    terminals = re.findall(r"^([A-Z_]+)\.2: /([a-z_]+)\(\?!", grammar, re.M)
    assert len(terminals) > 30
    assert set(KEYWORDS) == {word for _, word in terminals}
    assert all(name.lower() == word for name, word in terminals)


def test_every_input_tokenizes_without_errors() -> None:
    texts = inputs()
    assert len(texts) > 150
    bad = {label: [v for t, v in tokens(text) if t in Error] for label, text in texts.items()}
    # bad-escape shows `\q`, which hvconf refuses: the lexer marks it as the one error.
    assert {label: e for label, e in bad.items() if e} == {
        "tests/invalid/bad-escape.hv": ["\\q"], "explain:bad-escape:bad": ["\\q"]}


def test_round_trip_keeps_the_text() -> None:
    for label, text in inputs().items():
        assert "".join(v for _, v in HvconfLexer().get_tokens(text)) == text.rstrip("\n") + "\n", label


def test_tokens_are_classified() -> None:
    text = ('# a comment\nformat 1\ninclude "base.hv"\nabstract vm memory extends base {\n'
            '    memory 4G  vcpus 0x10  threads 0b10  # SMT2\n'
            '    cap KVM_CAP_PPC_SMT on vm { vsmt_mode 2 }\n'
            '    hcalls { enable H_RANDOM  exit EV_IDLE  disable KVM_HC_KICK_CPU }  # hvconf: ignore[hcall-redundant]\n'
            '    cmdline "console=hvc0\\n\\x41"\n    vma 1\n}\n')
    got = tokens(text)
    assert got[:3] == [(Comment.Single, "# a comment"), (Keyword.Namespace, "format"), (Number.Integer, "1")]
    assert (Keyword.Namespace, "include") in got and (String.Double, "base.hv") in got
    assert got[got.index((Keyword.Declaration, "vm")) + 1] == (Name.Class, "memory")  # a VM may be called memory
    assert got[got.index((Keyword.Declaration, "extends")) + 1] == (Name.Class, "base")
    assert (Keyword.Declaration, "abstract") in got
    assert [(Keyword, "memory"), (Number.Integer, "4G"), (Keyword, "vcpus"), (Number.Hex, "0x10"),
            (Keyword, "threads"), (Number.Bin, "0b10"), (Comment.Single, "# SMT2")] == \
        got[got.index((Keyword, "memory")):got.index((Keyword, "memory")) + 7]
    assert [(Keyword, "on"), (Keyword, "vm")] == got[got.index((Keyword, "on")):got.index((Keyword, "on")) + 2]
    for constant in ("KVM_CAP_PPC_SMT", "H_RANDOM", "EV_IDLE", "KVM_HC_KICK_CPU"):
        assert (Name.Constant, constant) in got
    assert (Name, "vsmt_mode") in got and (Punctuation, "{") in got
    assert (Comment.Special, "# hvconf: ignore[hcall-redundant]") in got
    assert [(String.Escape, "\\n"), (String.Escape, "\\x41")] == [(t, v) for t, v in got if t is String.Escape]
    assert (Name, "vma") in got  # a keyword prefix is not a keyword


def test_unterminated_string_is_an_error() -> None:
    assert any(t in Error for t, _ in HvconfLexer().get_tokens('cmdline "oops\nmemory 1M\n'))


# ---- registration ---------------------------------------------------------------------


def test_pyproject_registers_the_lexer() -> None:
    data = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    assert data["project"]["entry-points"]["pygments.lexers"] == {"hvconf": "hvconf.syntax.highlight:HvconfLexer"}


def test_pygments_finds_it_by_name_and_file_name() -> None:
    from importlib.metadata import entry_points

    if not any(ep.value == "hvconf.syntax.highlight:HvconfLexer" for ep in entry_points(group="pygments.lexers")):
        pytest.skip("this environment's hvconf metadata predates the entry point: re-run `pip install -e .`")
    from pygments.lexers import get_lexer_by_name, get_lexer_for_filename

    assert isinstance(get_lexer_by_name("hvconf"), HvconfLexer)
    assert isinstance(get_lexer_by_name("hv"), HvconfLexer)
    assert isinstance(get_lexer_for_filename("pseries.hv"), HvconfLexer)


def test_an_installed_wheel_registers_it(tmp_path: Path) -> None:
    # Independent of how this checkout is installed: build, install aside, ask Pygments.
    pytest.importorskip("hatchling", reason="building the wheel needs hatchling (pip install '.[test]')")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path), str(REPO)], check=True, timeout=120, capture_output=True)
    [wheel] = tmp_path.glob("hvconf-*.whl")
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
                   check=True, timeout=120, capture_output=True)
    code = ("import sys; sys.path.insert(0, sys.argv[1]); from pygments.lexers import get_lexer_by_name;"
            "from pygments import highlight; from pygments.formatters import NullFormatter;"
            "lexer = get_lexer_by_name('hvconf'); print(type(lexer).__module__, lexer.name);"
            "print(sys.modules['hvconf'].__file__)")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([sys.executable, "-I", "-c", code, str(site)], cwd=tmp_path, capture_output=True, text=True,
                         timeout=60, env=env)
    assert out.returncode == 0, out.stderr
    lexer, module = out.stdout.splitlines()
    assert lexer == "hvconf.syntax.highlight hvconf" and module.startswith(str(site))

