"""The language server: LSP features over hvconf's compiler, formatter and knowledge base.

Every open buffer is linted on open and on each change (full text sync), as if saved at its
path, through the command line's own `check_text` (hvconf/lsp/buffers.py): includes resolve
against the file's real folder and the project configuration applies. The last result per
buffer answers hover, definition and code actions; a finding's fix (`hvconf check --fix`)
becomes a quick fix. LSP positions count UTF-16 code units (the protocol's default),
hvconf's spans characters: `_Lines` converts.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from urllib.parse import unquote, urlparse

from lsprotocol import types as lsp
from pygls.lsp.server import LanguageServer
from pygls.uris import from_fs_path

from hvconf import __version__
from hvconf.compiler import Result
from hvconf.diagnostics import Diagnostic, Severity, Span
from hvconf.lint.settings import ConfigError
from hvconf.lsp import cursor, knowledge
from hvconf.lsp.buffers import Linted, check_buffer
from hvconf.syntax.loader import InputError

SEVERITY = {Severity.ERROR: lsp.DiagnosticSeverity.Error, Severity.WARNING: lsp.DiagnosticSeverity.Warning,
            Severity.NOTE: lsp.DiagnosticSeverity.Information}
# What each completion context offers (hvconf/lsp/cursor.py CONTEXTS names them).
ITEM_KIND = {"keyword": lsp.CompletionItemKind.Keyword, "cap": lsp.CompletionItemKind.Constant,
             "hcall": lsp.CompletionItemKind.Function, "value": lsp.CompletionItemKind.EnumMember,
             "vm": lsp.CompletionItemKind.Class}


def path_of(uri: str) -> Path:
    """The file a `file:` URI names."""
    return Path(unquote(urlparse(uri).path))


class _Lines:
    """A buffer's lines, converting between LSP (UTF-16) and Python (character) columns."""

    def __init__(self, text: str) -> None:
        self.lines = text.split("\n")

    def line(self, row: int) -> str:
        return self.lines[row] if 0 <= row < len(self.lines) else ""

    def to_index(self, row: int, utf16: int) -> int:
        units, line = 0, self.line(row)
        for index, char in enumerate(line):
            if units >= utf16:
                return index
            units += 2 if ord(char) > 0xFFFF else 1
        return len(line)

    def to_utf16(self, row: int, index: int) -> int:
        return sum(2 if ord(c) > 0xFFFF else 1 for c in self.line(row)[:index])

    def position(self, line: int, col: int) -> lsp.Position:
        """An LSP position from hvconf's 1-based line and column."""
        return lsp.Position(max(line - 1, 0), self.to_utf16(line - 1, max(col - 1, 0)))

    def range(self, span: Span) -> lsp.Range:
        return lsp.Range(self.position(span.line, span.col), self.position(span.end_line, span.end_col))

    def whole(self) -> lsp.Range:
        last = len(self.lines) - 1
        return lsp.Range(lsp.Position(0, 0), lsp.Position(last, self.to_utf16(last, len(self.lines[last]))))


class Buffer:
    """One open document's last lint: the result, and its diagnostics as published."""

    def __init__(self, path: Path, result: Result | None, published: list[tuple[lsp.Diagnostic, Diagnostic]]) -> None:
        self.path = path
        self.result = result
        self.published = published


class HvconfServer(LanguageServer):
    def __init__(self) -> None:
        super().__init__("hvconf", __version__)
        self.shut_down = False
        self.buffers: dict[str, Buffer] = {}
        # VM name -> (target, flavour) from the last lint that lowered it: completion keeps
        # working while the buffer does not parse (half-typed statements).
        self.vm_targets: dict[str, dict[str, tuple[str | None, str | None]]] = {}
        # buffer URI -> (URI of the configuration file that could not be read, its message):
        # its diagnostic is published on that file until no buffer meets the error any more.
        self.bad_configs: dict[str, tuple[str, str]] = {}


server = HvconfServer()


# ---- diagnostics --------------------------------------------------------------------------


def _same_file(span_file: str, path: Path) -> bool:
    return os.path.realpath(os.path.abspath(span_file)) == os.path.realpath(path)


def _docs_link(code: str) -> lsp.CodeDescription:
    from hvconf.lint.formats.rules import DOCS_URL

    return lsp.CodeDescription(href=f"{DOCS_URL}#{code}")


def _to_lsp(diag: Diagnostic, path: Path, lines: _Lines) -> lsp.Diagnostic:
    """An LSP diagnostic; one located in another file (an include's) is shown on line 1 with its place."""
    here = diag.span is not None and _same_file(diag.span.file, path)
    span_range = lines.range(diag.span) if here and diag.span else lsp.Range(lsp.Position(0, 0), lsp.Position(0, 0))
    message = diag.message if here or diag.span is None else f"{diag.span}: {diag.message}"
    if diag.help:
        message += f"\nhelp: {diag.help}"
    related = [lsp.DiagnosticRelatedInformation(
        lsp.Location(from_fs_path(os.path.abspath(n.span.file)) or "", _Lines("").range(n.span)
                     if not _same_file(n.span.file, path) else lines.range(n.span)), n.message)
        for n in diag.notes if n.span is not None]
    return lsp.Diagnostic(range=span_range, message=message, severity=SEVERITY[diag.severity], code=diag.code,
                          code_description=_docs_link(diag.code), source="hvconf", related_information=related or None)


def lint(ls: HvconfServer, uri: str) -> None:
    """Lint the buffer `uri` as it is now and publish what `hvconf check` would say of it."""
    document = ls.workspace.get_text_document(uri)
    path, lines = path_of(uri), _Lines(document.source)
    linted: Linted | None = None
    try:
        linted = check_buffer(document.source, path)
    except InputError as err:
        ls.window_show_message(lsp.ShowMessageParams(lsp.MessageType.Warning, f"hvconf: {err}"))
    except Exception as err:  # a bug of hvconf's: one line for the user, the traceback in the server's log
        logging.getLogger(__name__).exception("linting %s", uri)
        ls.window_show_message(lsp.ShowMessageParams(lsp.MessageType.Error, f"hvconf: internal error while "
                                                     f"checking {path.name}: {type(err).__name__}: {err}"))
    result = linted.result if linted else None
    config_problem(ls, uri, linted.config_error if linted else None)
    published = [(_to_lsp(d, path, lines), d) for d in result.report] if result else []
    ls.buffers[uri] = Buffer(path, result, published)
    if result is not None and result.vms:
        ls.vm_targets[uri] = {vm.name: (vm.target, vm.flavour) for vm in result.vms}
    ls.text_document_publish_diagnostics(
        lsp.PublishDiagnosticsParams(uri=uri, version=document.version, diagnostics=[p[0] for p in published]))


def config_problem(ls: HvconfServer, uri: str, err: ConfigError | None) -> None:
    """Show a configuration the buffer `uri` could not be linted with (`hvconf check` stops with
    exit status 2 there; the editor lints with the defaults meanwhile): its diagnostic on the
    configuration file, and one message each time the error changes. A configuration no buffer
    meets any more loses its diagnostic."""
    before = ls.bad_configs.pop(uri, None)
    if err is not None:
        diag = err.diagnostic
        config = (from_fs_path(os.path.abspath(diag.span.file)) or "") if diag.span else ""
        ls.bad_configs[uri] = (config, str(err))
        if before is None or before[1] != str(err):
            ls.window_show_message(lsp.ShowMessageParams(lsp.MessageType.Error, f"hvconf: {err} "
                                                         "(linting with the default settings until it is fixed)"))
        if diag.span is not None:
            shown = _to_lsp(diag, Path(diag.span.file), _Lines(err.source or ""))
            ls.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(uri=config, diagnostics=[shown]))
    still = {config for config, _ in ls.bad_configs.values()}
    if before is not None and before[0] and before[0] not in still:
        ls.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(uri=before[0], diagnostics=[]))


@server.feature(lsp.TEXT_DOCUMENT_DID_OPEN)
def did_open(ls: HvconfServer, params: lsp.DidOpenTextDocumentParams) -> None:
    lint(ls, params.text_document.uri)


@server.feature(lsp.TEXT_DOCUMENT_DID_CHANGE)
def did_change(ls: HvconfServer, params: lsp.DidChangeTextDocumentParams) -> None:
    lint(ls, params.text_document.uri)


@server.feature(lsp.TEXT_DOCUMENT_DID_SAVE)
def did_save(ls: HvconfServer, params: lsp.DidSaveTextDocumentParams) -> None:
    lint(ls, params.text_document.uri)  # an include it reads may have changed on disk too


@server.feature(lsp.TEXT_DOCUMENT_DID_CLOSE)
def did_close(ls: HvconfServer, params: lsp.DidCloseTextDocumentParams) -> None:
    ls.buffers.pop(params.text_document.uri, None)
    config_problem(ls, params.text_document.uri, None)
    ls.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(uri=params.text_document.uri, diagnostics=[]))


# ---- hover, completion, definition ---------------------------------------------------------


def _scope(ls: HvconfServer, uri: str, lines: _Lines, row: int) -> knowledge.Scope:
    """The targets of the VM the cursor is in, from the buffer's last lowering; when that
    never lowered it (the line being typed does not parse yet), from the buffer without that line."""
    name = cursor.enclosing_vm(lines.lines, row) or ""
    if name not in ls.vm_targets.get(uri, {}):
        result = _without_line(uri, lines, row)
        found = {vm.name: (vm.target, vm.flavour) for vm in result.vms} if result else {}
        ls.vm_targets.setdefault(uri, {}).update(found)
    target, flavour = ls.vm_targets[uri].get(name, (None, None))
    return knowledge.scope_for(target, flavour)


def _without_line(uri: str, lines: _Lines, row: int) -> Result | None:
    """The lint of the buffer with line `row` blanked: what the rest of a buffer says while
    the line being typed does not parse. None when even that cannot be read."""
    text = "\n".join(line if i != row else "" for i, line in enumerate(lines.lines))
    try:
        return check_buffer(text, path_of(uri)).result
    except InputError:
        return None


def _diagnostic_pages(ls: HvconfServer, uri: str, position: lsp.Position) -> list[str]:
    """The explain pages of the diagnostics published at `position`, once per code."""
    buffer = ls.buffers.get(uri)
    codes: list[str] = []
    for shown, _ in buffer.published if buffer else ():
        r = shown.range
        inside = (r.start.line, r.start.character) <= (position.line, position.character) <= (r.end.line, r.end.character)
        if inside and isinstance(shown.code, str) and shown.code not in codes:
            codes.append(shown.code)
    return [page for page in map(knowledge.code_doc, codes) if page]


@server.feature(lsp.TEXT_DOCUMENT_HOVER)
def hover(ls: HvconfServer, params: lsp.HoverParams) -> lsp.Hover | None:
    uri, position = params.text_document.uri, params.position
    lines = _Lines(ls.workspace.get_text_document(uri).source)
    row, line = position.line, lines.line(position.line)
    parts = _diagnostic_pages(ls, uri, position)
    found = cursor.word_at(line, lines.to_index(row, position.character))
    if found:
        word, start, _ = found
        text = knowledge.describe(word, cursor.word_before(line, start), _scope(ls, uri, lines, row),
                                  cursor.cap_block(line, start), cursor.block_keyword(line, start))
        if text and text not in parts:
            parts.append(text)
    if not parts:
        return None
    return lsp.Hover(contents=lsp.MarkupContent(kind=lsp.MarkupKind.Markdown, value="\n\n---\n\n".join(parts)))


def _items(ls: HvconfServer, uri: str, kind: str, argument: str | None, lines: _Lines,
           row: int) -> list[knowledge.Item]:
    scope = _scope(ls, uri, lines, row) if kind not in ("keyword", "arch", "extends") else knowledge.scope_for(None, None)
    offers = {
        "keyword": lambda: knowledge.keywords(),
        "cap": lambda: knowledge.caps(scope),
        "cap_on": lambda: knowledge.cap_targets(argument or "", scope),
        "hcall": lambda: knowledge.hcalls(scope, argument or "enable"),
        "preset": lambda: knowledge.presets(scope),
        "console": lambda: knowledge.consoles(scope),
        "arch": lambda: knowledge.arches(),
        "kvm": lambda: knowledge.flavours(scope),
        "extends": lambda: _vm_names(ls, uri, lines, row),
    }
    return offers[kind]()


def _vm_names(ls: HvconfServer, uri: str, lines: _Lines, row: int) -> list[knowledge.Item]:
    """The VMs the buffer sees (its own and its includes'), from the last lint that parsed it."""
    buffer = ls.buffers.get(uri)
    result = buffer.result if buffer else None
    if result is None or not result.checked or result.checked[0].program.root.tree is None:
        result = _without_line(uri, lines, row)
    if result is None or not result.checked:
        return []
    vms = result.checked[0].program.vms
    return [knowledge.Item(name, "vm", "abstract vm" if decl.abstract else "vm", decl.name.span.file)
            for name, decl in sorted(vms.items())]


@server.feature(lsp.TEXT_DOCUMENT_COMPLETION, lsp.CompletionOptions(trigger_characters=[" "]))
def completion(ls: HvconfServer, params: lsp.CompletionParams) -> lsp.CompletionList:
    uri, position = params.text_document.uri, params.position
    lines = _Lines(ls.workspace.get_text_document(uri).source)
    prefix = lines.line(position.line)[:lines.to_index(position.line, position.character)]
    context = cursor.completion_context(prefix)
    if context is None:
        return lsp.CompletionList(is_incomplete=False, items=[])
    items = _items(ls, uri, context[0], context[1], lines, position.line)
    return lsp.CompletionList(is_incomplete=False, items=[
        lsp.CompletionItem(label=i.label, kind=ITEM_KIND.get(i.kind, lsp.CompletionItemKind.Text), detail=i.detail,
                           documentation=lsp.MarkupContent(lsp.MarkupKind.Markdown, i.doc) if i.doc else None)
        for i in items])


def _location(path: str, line: int = 1, col: int = 1, end_line: int = 1, end_col: int = 1) -> lsp.Location:
    start, end = lsp.Position(line - 1, col - 1), lsp.Position(end_line - 1, end_col - 1)
    return lsp.Location(uri=from_fs_path(os.path.abspath(path)) or "", range=lsp.Range(start, end))


@server.feature(lsp.TEXT_DOCUMENT_DEFINITION)
def definition(ls: HvconfServer, params: lsp.DefinitionParams) -> lsp.Location | None:
    """An `include` path goes to the file; a VM name (after `extends`) to its declaration."""
    from hvconf.syntax.paths import folder_of

    uri, position = params.text_document.uri, params.position
    lines = _Lines(ls.workspace.get_text_document(uri).source)
    line, index = lines.line(position.line), lines.to_index(position.line, position.character)
    included = cursor.include_at(line, index)
    if included is not None:
        target = os.path.normpath(folder_of(path_of(uri)) / included)
        return _location(target) if os.path.isfile(target) else None
    found = cursor.word_at(line, index)
    buffer = ls.buffers.get(uri)
    if found is None or buffer is None or buffer.result is None or not buffer.result.checked:
        return None
    decl = buffer.result.checked[0].program.vms.get(found[0])
    if decl is None:
        return None
    s = decl.name.span
    return _location(s.file, s.line, s.col, s.end_line, s.end_col)


# ---- formatting and code actions -----------------------------------------------------------


@server.feature(lsp.TEXT_DOCUMENT_FORMATTING)
def formatting(ls: HvconfServer, params: lsp.DocumentFormattingParams) -> list[lsp.TextEdit] | None:
    """`hvconf fmt` of the buffer as one edit; nothing when it does not parse (the diagnostics say why)."""
    from hvconf.diagnostics import HvconfError
    from hvconf.formatter import format_text

    document = ls.workspace.get_text_document(params.text_document.uri)
    try:
        formatted = format_text(document.source, str(path_of(params.text_document.uri)))
    except HvconfError:
        return None
    if formatted == document.source:
        return []
    return [lsp.TextEdit(range=_Lines(document.source).whole(), new_text=formatted)]


def fix_edits(diag: Diagnostic, lines: _Lines, path: Path) -> tuple[str, list[lsp.TextEdit]] | None:
    """The fix a finding carries (hvconf/lint/fixes.py, what `hvconf check --fix` applies) as a
    title and the edits of the buffer at `path`: each Edit replaces the text of its span (columns
    in characters, here in UTF-16 units) with its content. None without a fix, or when an edit
    is in another file (an include's finding)."""
    fix = diag.fix
    if fix is None or not fix.edits or not all(_same_file(e.span.file, path) for e in fix.edits):
        return None
    return fix.message, [lsp.TextEdit(range=lines.range(edit.span), new_text=edit.content) for edit in fix.edits]


def suppress_edit(diag: Diagnostic, lines: _Lines) -> lsp.TextEdit | None:
    """`# hvconf: ignore[CODE]` on a line of its own above the finding's line (it covers the next
    statement: hvconf/check/suppress.py); None for codes a comment cannot hide."""
    from hvconf.check.suppress import UNSUPPRESSIBLE

    if diag.span is None or diag.code in UNSUPPRESSIBLE:
        return None
    row = diag.span.line - 1
    line = lines.line(row)
    indent = line[:len(line) - len(line.lstrip())]
    at = lsp.Position(row, 0)
    return lsp.TextEdit(range=lsp.Range(at, at), new_text=f"{indent}# hvconf: ignore[{diag.code}]\n")


@server.feature(lsp.TEXT_DOCUMENT_CODE_ACTION)
def code_action(ls: HvconfServer, params: lsp.CodeActionParams) -> list[lsp.CodeAction]:
    uri = params.text_document.uri
    buffer = ls.buffers.get(uri)
    if buffer is None:
        return []
    lines = _Lines(ls.workspace.get_text_document(uri).source)
    asked = {(d.range.start.line, d.range.start.character, str(d.code)) for d in params.context.diagnostics}
    actions = []
    for shown, diag in buffer.published:
        if (shown.range.start.line, shown.range.start.character, str(shown.code)) not in asked:
            continue
        fix = fix_edits(diag, lines, buffer.path) if _same_file(diag.span.file if diag.span else "", buffer.path) else None
        if fix is not None:
            actions.append(lsp.CodeAction(title=fix[0], kind=lsp.CodeActionKind.QuickFix, diagnostics=[shown],
                                          is_preferred=True, edit=lsp.WorkspaceEdit(changes={uri: fix[1]})))
        suppress = suppress_edit(diag, lines) if _same_file(diag.span.file if diag.span else "", buffer.path) else None
        if suppress is not None:
            actions.append(lsp.CodeAction(title=f"Ignore {diag.code} here (# hvconf: ignore[{diag.code}])",
                                          kind=lsp.CodeActionKind.QuickFix, diagnostics=[shown],
                                          edit=lsp.WorkspaceEdit(changes={uri: [suppress]})))
    return actions


@server.feature(lsp.SHUTDOWN)
def shutdown(ls: HvconfServer, params: None) -> None:
    ls.shut_down = True


def main() -> int:
    """Serve LSP on stdin and stdout until the client says exit (or closes stdin). The exit
    status is 0 after a `shutdown` request, 1 without one (the protocol's `exit` notification)."""
    server.start_io()
    return 0 if server.shut_down else 1
