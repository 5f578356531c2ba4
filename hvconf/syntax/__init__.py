"""The syntax stage: .hv text to an AST whose every node carries its span.

parser.py wraps lark, build.py turns lark trees into hvconf.syntax.ast nodes,
errors.py turns lark exceptions into diagnostics, loader.py follows
`include`s. Nothing here knows about targets or KVM.
"""
