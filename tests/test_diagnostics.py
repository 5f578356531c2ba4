"""Rendering: `file:line:col: severity[code]: message`, source line, caret,
notes and help; control characters from hostile input never reach the terminal."""

from __future__ import annotations

from pathlib import Path

import pytest

from hvconf.diagnostics import Note, Report, Span
from hvconf.lint.render import render, render_report, summary


def report_for(source: str, span: Span, **kw: object) -> Report:
    report = Report(sources={"x.hv": source})
    report.error("hcall-not-toggleable", "H_RTAS cannot be enabled with KVM_CAP_PPC_ENABLE_HCALL", span, **kw)  # type: ignore[arg-type]
    return report


def test_layout_with_caret_notes_and_help() -> None:
    source = "vm a {\n    hcalls { enable H_RTAS }\n}\n"
    report = report_for(source, Span("x.hv", 2, 21, 2, 27), notes=[Note("H_RTAS is 0xf000", Span("x.hv", 1, 1, 1, 2))],
                        help="define RTAS tokens in an `rtas` block instead")
    assert render_report(report) == (
        "x.hv:2:21: error[hcall-not-toggleable]: H_RTAS cannot be enabled with KVM_CAP_PPC_ENABLE_HCALL\n"
        "  |\n"
        "2 |     hcalls { enable H_RTAS }\n"
        "  |                     ^^^^^^\n"
        "  = note: H_RTAS is 0xf000 (x.hv:1:1)\n"
        "  = help: define RTAS tokens in an `rtas` block instead"
    )


def test_tabs_expand_and_caret_follows() -> None:
    report = report_for("\tmemory 0\n", Span("x.hv", 1, 9, 1, 10))
    lines = render_report(report).splitlines()
    assert lines[2] == "1 |     memory 0"
    assert lines[3] == "  |            ^"


def test_control_characters_are_neutralised() -> None:
    report = Report(sources={"x.hv": 'cmdline "\x1b[31mred"\n'})
    report.error("bad", "value '\x1b[31m' is odd\x07", Span("x.hv", 1, 1, 1, 8))
    out = render_report(report)
    assert "\x1b" not in out and "\x07" not in out
    assert "value '?[31m' is odd?" in out


def test_multiline_span_underlines_to_end_of_line() -> None:
    report = report_for("vm a {\n  tce t {\n  }\n}\n", Span("x.hv", 2, 3, 3, 4))
    assert render_report(report).splitlines()[3] == "  |   ^^^^^^^"


@pytest.mark.parametrize("separator", ["\f", "\x1c", "\x85", "\u2028", "\u2029", "\r"])
def test_the_line_shown_is_the_line_the_parser_counted(tmp_path: Path, separator: str) -> None:
    # Lines end at \n only, for lark as for the excerpt: str.splitlines also splits at these,
    # so a comment holding one made every later finding show the wrong line.
    from hvconf import compiler

    path = tmp_path / "sep.hv"
    path.write_text(f"format 1\n# one{separator}two\nvm a {{ arch x86_64 memory 16M cap KVM_CAP_NOPE }}\n",
                    encoding="utf-8", newline="")
    report = compiler.check([path]).report
    [diag] = report.diagnostics
    _, _, shown, caret = render_report(report).splitlines()[:4]
    assert diag.span is not None and diag.span.line == 3
    assert shown == "3 | vm a { arch x86_64 memory 16M cap KVM_CAP_NOPE }"
    assert shown[caret.index("^"):caret.rindex("^") + 1] == "cap KVM_CAP_NOPE"


def test_a_crlf_line_is_shown_without_its_carriage_return() -> None:
    report = report_for("vm a {\r\n  memory 0\r\n}\r\n", Span("x.hv", 2, 3, 2, 9))
    assert render_report(report).splitlines()[2] == "2 |   memory 0"


def test_colour_only_when_asked() -> None:
    report = report_for("vm a { }\n", Span("x.hv", 1, 1, 1, 3))
    diag = next(iter(report))
    assert "\x1b[" not in render(diag, report.sources)
    assert "\x1b[1;31m" in render(diag, report.sources, colour=True)


def test_sorted_by_position_and_summary() -> None:
    report = Report(sources={"x.hv": "a\nb\n"})
    report.warning("w", "second", Span("x.hv", 2, 1, 2, 2))
    report.error("e", "first", Span("x.hv", 1, 1, 1, 2))
    assert [d.message for d in report] == ["first", "second"]
    assert summary(report) == "1 error, 1 warning"


def test_a_long_line_is_shown_as_a_window_around_the_span() -> None:
    line = "vm a { " + "x " * 200 + "memroy 4G " + "y " * 200 + "}"
    col = line.index("memroy") + 1
    report = Report(sources={"x.hv": line + "\n"})
    report.error("unknown-keyword", "unknown keyword 'memroy'", Span("x.hv", 1, col, 1, col + 6))
    _, _, shown, caret = render_report(report).splitlines()[:4]
    assert len(shown) < 140 and shown.startswith("1 | ...") and shown.endswith("...")
    assert shown[caret.index("^"):caret.index("^") + 6] == "memroy" and caret.count("^") == 6
