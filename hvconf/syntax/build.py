"""Turn a lark parse tree into hvconf.syntax.ast nodes with spans.

One method per grammar rule (dispatch by rule name, no reflection games).
Literal errors that the grammar cannot express (a number too long, a bad
string escape) become diagnostics in the report, never exceptions.
Tested by tests/test_syntax.py.
"""

from __future__ import annotations

import re
from typing import Any, Callable, ClassVar, cast

from lark import Token, Tree

from hvconf.diagnostics import Report, Span
from hvconf.syntax import ast

_SUFFIX = {"k": 10, "m": 20, "g": 30, "t": 40, "p": 50}
MAX_LIST_DEPTH = 16
_MAX_DIGITS = 40  # far beyond any 64-bit value, short enough to convert quickly
_ESCAPE = re.compile(r"\\(x[0-9a-fA-F]{2}|.)", re.DOTALL)
_SIMPLE_ESCAPES = {'"': '"', "\\": "\\", "n": "\n", "t": "\t", "r": "\r", "0": "\0"}


def _edge(tree: Tree, end: int) -> Token | None:
    """The first (end=0) or last (end=-1) token below `tree`, skipping placeholders (None)."""
    for child in tree.children if end == 0 else reversed(tree.children):
        found = child if isinstance(child, Token) else _edge(child, end) if isinstance(child, Tree) else None
        if found is not None:
            return found
    return None


class AstBuilder:
    # rule name -> method, filled in below the class. A table of the class's functions, not of
    # bound methods in each builder: those would make every builder a reference cycle, and
    # checking a repo would leave one per file for the garbage collector.
    RULES: ClassVar[dict[str, Callable[[AstBuilder, Tree], Any]]]

    def __init__(self, file: str, report: Report) -> None:
        self.file = file
        self.report = report

    def _rule(self, tree: Tree) -> Any:
        return self.RULES[tree.data](self, tree)

    # -- entry point -------------------------------------------------------
    def source_file(self, tree: Tree) -> ast.SourceFile:
        return ast.SourceFile(self.file, tuple(self._rule(c) for c in tree.children))

    # -- spans and literals ------------------------------------------------
    def span(self, node: Tree | Token) -> Span:
        """From the node's first token to its last. The parser does not propagate positions
        into trees (lark's propagate_positions costs a third of parsing): every terminal is
        kept in the tree, so a rule spans exactly the tokens below it."""
        first: Token | None = node if isinstance(node, Token) else _edge(node, 0)
        last: Token | None = node if isinstance(node, Token) else _edge(node, -1)
        if first is None or last is None:  # only `start` can match nothing, and it has no span
            raise ValueError(f"{node!r} spans no token")
        # lark types token positions Optional (hand-made tokens lack them); the lexer sets all four.
        pos = cast(tuple[int, int, int, int], (first.line, first.column, last.end_line, last.end_column))
        return Span(self.file, *pos)

    def value(self, node: Tree | Token, depth: int = 0) -> ast.Value:
        if isinstance(node, Tree):  # only `list` is a tree among values
            if depth == MAX_LIST_DEPTH:
                # lark parses any depth iteratively; this builder and every later stage recurse.
                self.report.error("syntax-error", f"lists nest more than {MAX_LIST_DEPTH} deep", self.span(node),
                                  help="no value of the language is more than one list deep")
                return ast.List((), self.span(node))
            items = tuple(self.value(c, depth + 1) for c in node.children
                          if not (isinstance(c, Token) and c.type in ("LSQB", "RSQB", "COMMA")) and c is not None)
            return ast.List(items, self.span(node))
        if node.type == "INT":
            return self.int(node)
        if node.type == "STRING":
            return self.string(node)
        return ast.Name(str(node), self.span(node))

    def int(self, tok: Token) -> ast.Int:
        text = str(tok)
        body, shift = text, 0
        if body[-1].lower() in _SUFFIX:
            body, shift = body[:-1], _SUFFIX[body[-1].lower()]
        digits = body.replace("_", "")
        if len(digits) > _MAX_DIGITS:
            self.report.error("number-too-large", f"number literal has {len(digits)} digits; "
                              "hvconf values fit in 64 bits", self.span(tok))
            return ast.Int(0, text, self.span(tok))
        # Base from the prefix only: int(x, 0) would refuse a decimal with a leading zero.
        base = {"0x": 16, "0b": 2}.get(digits[:2].lower(), 10)
        return ast.Int(int(digits[2:] if base != 10 else digits, base) << shift, text, self.span(tok))

    def string(self, tok: Token) -> ast.Str:
        span = self.span(tok)

        def unescape(m: re.Match[str]) -> str:
            esc = m.group(1)
            if esc[0] == "x" and len(esc) == 3:
                return chr(int(esc[1:], 16))
            if esc in _SIMPLE_ESCAPES:
                return _SIMPLE_ESCAPES[esc]
            self.report.error("bad-escape", f"unknown escape sequence '\\{esc}' in string", span,
                              help='use \\" \\\\ \\n \\t \\r \\0 or \\xNN')
            return esc

        return ast.Str(_ESCAPE.sub(unescape, str(tok)[1:-1]), span)

    @staticmethod
    def _parts(tree: Tree) -> list[Any]:
        return [c for c in tree.children if c is not None]

    # -- rules ---------------------------------------------------------------
    def _format_decl(self, tree: Tree) -> ast.FormatDecl:
        return ast.FormatDecl(self.int(cast(Token, tree.children[1])), self.span(tree))

    def _include_decl(self, tree: Tree) -> ast.Include:
        return ast.Include(self.string(cast(Token, tree.children[1])), self.span(tree))

    def _vm_decl(self, tree: Tree) -> ast.VmDecl:
        abstract_tok, _vm, name, _ext, base, *rest = tree.children
        body = tuple(self._rule(c) for c in rest if isinstance(c, Tree))
        return ast.VmDecl(ast.Name(str(name), self.span(name)),
                          ast.Name(str(base), self.span(base)) if base is not None else None,
                          abstract_tok is not None, body, self.span(tree))

    def _setting(self, tree: Tree) -> ast.Setting:
        key, *values = tree.children
        # `htab order 25` keeps ORDER as a Name value so the model sees the form used.
        # An optional value the grammar leaves out (`kernel "f"` without `flat`) is a None placeholder.
        return ast.Setting(str(key).lower(), tuple(self.value(v) for v in values if v is not None),
                           self.span(tree), self.span(key))

    def _guest(self, tree: Tree) -> ast.Guest:
        mode = at = None
        for opt in tree.children[2:]:
            kw, val = cast(list[Token], opt.children)
            if kw.type == "MODE":
                mode = ast.Name(str(val), self.span(val))
            else:
                at = self.int(val)
        return ast.Guest(self.string(cast(Token, tree.children[1])), mode, at, self.span(tree))

    def _hcalls(self, tree: Tree) -> ast.Hcalls:
        ops = []
        for op in tree.children[2:-1]:
            action, *rest = op.children
            refs = tuple(self._hcall_ref(cast(Token, r.children[0] if isinstance(r, Tree) else r)) for r in rest)
            ops.append(ast.HcallOp(str(action), refs, self.span(op), self.span(action)))
        return ast.Hcalls(tuple(ops), self.span(tree))

    def _hcall_ref(self, tok: Token) -> ast.Int | ast.Name:
        return self.int(tok) if tok.type == "INT" else ast.Name(str(tok), self.span(tok))

    def _rtas(self, tree: Tree) -> ast.Rtas:
        tokens = tuple(ast.RtasToken(self.string(cast(Token, t.children[1])),
                                      self.int(cast(Token, t.children[2])), self.span(t))
                       for t in tree.children[2:-1])
        return ast.Rtas(tokens, self.span(tree))

    def _kv_block(self, tree: Tree | None) -> tuple[ast.KeyValue, ...]:
        if tree is None:
            return ()
        return tuple(ast.KeyValue(ast.Name(str(kv.children[0]), self.span(kv.children[0])),
                                  self.value(kv.children[1]), self.span(kv))
                     for kv in tree.children[1:-1])

    def _cap(self, tree: Tree) -> ast.Cap:
        _cap, name, target, args = tree.children
        cap_target = None
        if target is not None:
            kind_tok = target.children[1]
            index = self.int(cast(Token, target.children[2])) if len(target.children) > 2 else None
            cap_target = ast.CapTarget(str(kind_tok), index, self.span(target))
        return ast.Cap(ast.Name(str(name), self.span(name)), cap_target, self._kv_block(args), self.span(tree))

    def _tce(self, tree: Tree) -> ast.Tce:
        _tce, name, block = tree.children
        return ast.Tce(ast.Name(str(name), self.span(name)), self._kv_block(block), self.span(tree))

    def _hypervisor(self, tree: Tree) -> ast.Hypervisor:
        items = []
        for item in tree.children[2:-1]:
            name, value = item.children
            items.append(ast.HypervisorItem(ast.Name(str(name), self.span(name)),
                                            self.value(value) if value is not None else None, self.span(item)))
        return ast.Hypervisor(tuple(items), self.span(tree))

    def _pv(self, tree: Tree) -> ast.PvFeatures:
        names = tuple(ast.Name(str(t), self.span(t)) for t in tree.children[2:-1])
        return ast.PvFeatures(names, self.span(tree))


AstBuilder.RULES = {
    "format_decl": AstBuilder._format_decl,
    "include_decl": AstBuilder._include_decl,
    "vm_decl": AstBuilder._vm_decl,
    "setting": AstBuilder._setting,
    "guest_stmt": AstBuilder._guest,
    "hcalls_block": AstBuilder._hcalls,
    "rtas_block": AstBuilder._rtas,
    "cap_stmt": AstBuilder._cap,
    "tce_block": AstBuilder._tce,
    "hypervisor_block": AstBuilder._hypervisor,
    "pv_block": AstBuilder._pv,
}
